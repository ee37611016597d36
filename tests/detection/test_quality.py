"""Detection quality by family (issue 12): what is personal data and what is not.

Each family has positive rows (the value must be redacted) and negative rows (a look-alike that is not
personal data must survive), through the ``default`` and ``hipaa-safe-harbor`` packs. The sentences are
written for these tests, not taken from the evaluation corpora.
"""

from __future__ import annotations

import re

import pytest

from guardrail import Guardrail


def covered(gr: Guardrail, text: str, value: str) -> bool:
    """Whether some finding overlaps ``value`` (its first occurrence) in ``text``."""
    assert value in text, "bad test: the value is not in the text"
    start = text.index(value)
    end = start + len(value)
    return any(f.start < end and start < f.end for f in gr.detect(text))


def fully_covered(gr: Guardrail, text: str, value: str) -> bool:
    """Whether the findings together cover every non-space character of ``value``."""
    assert value in text, "bad test: the value is not in the text"
    start = text.index(value)
    hit = [False] * len(value)
    for f in gr.detect(text):
        for i in range(max(start, f.start), min(start + len(value), f.end)):
            hit[i - start] = True
    return all(h or c.isspace() for h, c in zip(hit, value, strict=True))


@pytest.fixture(params=["default", "hipaa"])
def gr(request: pytest.FixtureRequest) -> Guardrail:
    return request.getfixturevalue(f"gr_{request.param}")  # type: ignore[no-any-return]


def table(rows: dict[str, tuple[str, str]]) -> dict[str, object]:
    return {"argvalues": list(rows.values()), "ids": list(rows)}


# --------------------------------------------------------------------------- precision: not personal data

COMMERCE = {
    "carrier": ("The parcel is with UPS now, it left the depot at noon.", "UPS"),
    "bought at": ("honestly I should have bought the shelf at Walmart instead", "Walmart"),
    "headphones": ("My Sennheiser headphones stopped charging after a week.", "Sennheiser"),
    "brand and model": ("I traded in my Samsung Galaxy S23 for store credit.", "Samsung Galaxy S23"),
    "software": ("We track every deal in HubSpot and export to Excel weekly.", "HubSpot"),
    "messaging": ("Send me the code on Telegram, not by e-mail.", "Telegram"),
    "airline": ("Our flight with Emirates was delayed by four hours.", "Emirates"),
    "car model": ("The rental was a Volkswagen Golf or similar.", "Volkswagen Golf"),
    "shop car park": ("I can meet you at the Lidl car park after work.", "Lidl"),
    "supplier to": ("They are a supplier to Heineken and two local breweries.", "Heineken"),
    "ambiguous with context": ("Message me on Signal if the call drops.", "Signal"),
}
CALENDAR = {
    "weekday": ("The technician can come on Thursday between 9 and 12.", "Thursday"),
    "abbreviated weekday": ("On Wed, the office closes early.", "Wed"),
    "weekday list": ("Dialysis is Mon/Wed/Fri in the afternoon.", "Mon/Wed/Fri"),
    "time": ("The call is at 10:30 tomorrow.", "10:30"),
}
CLINICAL = {
    "drug brand": ("Continue Lipitor 40 mg nightly and Lasix 20 mg daily.", "Lipitor"),
    "drug generic capitalised": ("Started Apixaban 5 mg BID after the event.", "Apixaban"),
    "eponymous sign": ("Murphy's sign negative, no rebound.", "Murphy"),
    "score": ("Wells score 1, D-dimer ordered.", "Wells"),
    "disease": ("History of Crohn's disease, in remission.", "Crohn"),
    "gleason": ("Biopsy: Gleason 3+4 in two cores.", "Gleason"),
    "device maker": ("Wears a Dexcom G7 sensor, readings stable.", "Dexcom"),
    "payer": ("Insurance: Aetna, prior authorisation pending.", "Aetna"),
    "guideline body": ("Statin started per ACC/AHA guidance.", "ACC"),
}


@pytest.mark.parametrize(("text", "value"), **table({**COMMERCE, **CALENDAR, **CLINICAL}))
def test_not_personal_data_survives(gr: Guardrail, text: str, value: str) -> None:
    assert not covered(gr, text, value)


# Positive controls for the same mechanisms: the look-alike lists must not swallow real personal data.
PERSONAL = {
    "surname that is an eponym": ("Referred by Dr. Murphy for a second opinion.", "Murphy"),
    "employer that is a bank": ("She joined Barclays as a graduate analyst in 2021.", "Barclays"),
    "given name that is a brand": ("Mercedes Alvarado called to reschedule.", "Mercedes Alvarado"),
    "legal name": ("The claimant works for Northwind Traders Ltd.", "Northwind Traders Ltd"),
    "weekday with date": ("The incident happened on Monday 3 March 2025.", "3 March 2025"),
}


@pytest.mark.parametrize(("text", "value"), **table(PERSONAL))
def test_personal_data_next_to_look_alikes_is_found(gr: Guardrail, text: str, value: str) -> None:
    assert covered(gr, text, value)


@pytest.mark.parametrize("text", ["We ship in December.", "The deductible resets in January."])
def test_month_alone_is_a_date_element_for_safe_harbor_only(
    gr_default: Guardrail, gr_hipaa: Guardrail, text: str
) -> None:
    month = text.rsplit(maxsplit=1)[-1].rstrip(".")
    assert not covered(gr_default, text, month)
    assert covered(gr_hipaa, text, month)


# --------------------------------------------------------------------------- recall: identifiers

from guardrail.detection.recognizers.national import (  # noqa: E402
    aadhaar_ok,
    bsn_ok,
    cpf_ok,
    dni_ok,
    jmbg_ok,
    pesel_ok,
    steuer_id_ok,
)

IDENTIFIERS = {
    # context ids: the label tells what the value is
    "order": ("Hi, my order #B-90412 still has not shipped.", "B-90412"),
    "tracking with spaces": ("It's with the courier, tracking 8812 4471 0093.", "8812 4471 0093"),
    "customer number with filler": ("Your customer number for all queries is QX-7712-009.", "QX-7712-009"),
    "booking answer": ("Agent: What is your booking reference?\nUser: P4KD9Z", "P4KD9Z"),
    "order answer": ("Agent: Order number?\nUser: WX-55120-77, thanks", "WX-55120-77"),
    "employee no": ("Employee no.: E-22815\nName: J. Doe", "E-22815"),
    "case": ("Fraud case FRD-209914 opened by the night team.", "FRD-209914"),
    "payment key": ('{"customer": "cus_Q8fT2kLm90", "amount": 1200}', "cus_Q8fT2kLm90"),
    # clinical ids
    "room": ("Pt moved to Rm 7W-220 overnight.", "7W-220"),
    "bed": ("Admitted to ICU bed 12-C, sedated.", "12-C"),
    "interpreter": ("Interpreter Lucia (#58812) used for consent.", "58812"),
    "job number": ("Dictated 05/08  JOB #: 7731190", "7731190"),
    "emr label": ("Pt: T. Nakamura   EMR: K7713390   41 yo F", "K7713390"),
    "hosp number": ("Hosp # 55102983, admitted via ED.", "55102983"),
    # national ids: labelled (a typo still counts) and checksum-verified formats
    "pesel labelled": ("Name: Anna Nowak, PESEL 90010112345", "90010112345"),
    "bsn with filler": ("For the form you asked his BSN, it is 111222333.", "111222333"),
    "nie": ("Titular: Mark Hughes, NIE X1234567L, pasaporte aparte.", "X1234567L"),
    "cpf unlabelled": ("Segue o documento: 111.444.777-35, obrigado.", "111.444.777-35"),
    "uk nino": ("NI no: QQ 12 34 56 C, tax code 1257L", "QQ 12 34 56 C"),
    "codice fiscale": ("Il mio codice è RSSMRA85T10A562S per la fattura.", "RSSMRA85T10A562S"),
    "passport": ("Passport no. K4477120, expires 2031.", "K4477120"),
    # usernames and handles
    "mention": ("thanks @maria_runs for the tip!", "@maria_runs"),
    "reddit": ("Posted by u/quiet_fox_22 in r/legaladvice", "u/quiet_fox_22"),
    "labelled username": ("Your username is jtorres88 and the password is sent separately.", "jtorres88"),
    "author line": ("night_owl_77 replied:\nSame problem here.", "night_owl_77"),
    "chat author": ("pixel_pete — Today at 20:14\nanyone else lagging?", "pixel_pete"),
}


@pytest.mark.parametrize(("text", "value"), **table(IDENTIFIERS))
def test_identifier_found(gr: Guardrail, text: str, value: str) -> None:
    assert fully_covered(gr, text, value)


NOT_IDENTIFIERS = {
    "chat speaker": ("User: thanks, that works", "thanks"),
    "mention of a word in prose": ("Meet me at 5, bring the charger.", "charger"),
    "room without digits": ("The waiting room was full.", "full"),
    "order without an id": ("My order arrived broken.", "broken"),
    "email is not a handle": ("write to ana@example.org today", "example"),
}


@pytest.mark.parametrize(("text", "value"), **table(NOT_IDENTIFIERS))
def test_not_an_identifier(gr: Guardrail, text: str, value: str) -> None:
    assert value in text
    start = text.index(value)
    assert not any(
        f.entity in {"USERNAME", "ACCOUNT_NUMBER", "OTHER_ID", "NATIONAL_ID"}
        and f.start < start + len(value)
        and start < f.end
        for f in gr.detect(text)
    )


@pytest.mark.parametrize(
    ("check", "valid", "invalid"),
    [
        (cpf_ok, "111.444.777-35", "111.444.777-36"),
        (pesel_ok, "44051401359", "44051401358"),
        (bsn_ok, "111222333", "111222334"),
        (steuer_id_ok, "86095742719", "86095742718"),
        (dni_ok, "12345678Z", "12345678A"),
        (dni_ok, "X1234567L", "X1234567M"),
        (jmbg_ok, "0101006500006", "0101006500007"),
        (aadhaar_ok, "2341 2341 2346", "2341 2341 2347"),
    ],
    ids=["cpf", "pesel", "bsn", "steuer-id", "dni", "nie", "jmbg", "aadhaar"],
)
def test_national_id_checksums(check: object, valid: str, invalid: str) -> None:
    assert callable(check)
    assert check(valid)
    assert not check(invalid)


def test_checksum_gates_unlabelled_formats(gr: Guardrail) -> None:
    good, bad = "Ref 111.444.777-35 ok", "Ref 111.444.777-36 ok"
    assert any(f.entity == "NATIONAL_ID" for f in gr.detect(good))
    assert not any(f.entity == "NATIONAL_ID" for f in gr.detect(bad))


# --------------------------------------------------------------------------- recall: names

NAMES = {
    "thanks": ("Agent: Thanks Siobhan. I found the parcel.", "Siobhan"),
    "thank you comma": ("Thank you, Themba! Have a good day.", "Themba"),
    "self named": ("Hello, I'm Oisin. Can you check my account?", "Oisin"),
    "call me": ("My full name is long, you can call me Thu.", "Thu"),
    "lower-case my name is": ("ok. my name is priya natarajan", "priya natarajan"),
    "lower-case thanks": ("thx david", "david"),
    "native script": ("Name: Chen Jing (陈静), room 4", "陈静"),
    "nickname": ('Pt: OKONKWO, CHINEDU ("Chi")   44 yo M', "Chi"),
    "caps surname first": ("Patient: LINDQVIST, ASTRID M   MRN 88120", "LINDQVIST, ASTRID M"),
    "caps full name": ("Pt: HAROLD JAMES BECKETT   age: 77", "HAROLD JAMES BECKETT"),
    "dictation initials": ("Electronically signed.\nRTW/pkm\n", "RTW/pkm"),
    "sign-off": ("see you all soon\n– Saoirse", "Saoirse"),
    "json name": ('{"id": 1, "name": "Tomasz Wrona", "role": "admin"}', "Tomasz Wrona"),
    "csv given name": ("id,first_name,last_name,email\n7,Ayumi,Kobayashi,ak@example.jp\n", "Ayumi"),
    "csv surname": ("id,first_name,last_name,email\n7,Ayumi,Kobayashi,ak@example.jp\n", "Kobayashi"),
}


@pytest.mark.parametrize(("text", "value"), **table(NAMES))
def test_name_found(gr: Guardrail, text: str, value: str) -> None:
    assert fully_covered(gr, text, value)


STRUCTURED = {
    "json id": ('{"user_id": 55120, "plan": "pro"}', "55120"),
    "json email": ('{"email": "k.ito@example.jp"}', "k.ito@example.jp"),
    "key=value user": ("level=warn user=mtanaka action=login", "mtanaka"),
    "key=value ip": ("src_ip=10.20.30.40 status=403", "10.20.30.40"),
    "csv dob": ("name,dob,city\nA. Berg,1988-02-14,Malmö\n", "1988-02-14"),
    "csv city": ("name,dob,city\nA. Berg,1988-02-14,Malmö\n", "Malmö"),
    "gps": ("Last ping from the phone: 48.8584, 2.2945 at night.", "48.8584, 2.2945"),
}


@pytest.mark.parametrize(("text", "value"), **table(STRUCTURED))
def test_structured_value_found(gr: Guardrail, text: str, value: str) -> None:
    assert fully_covered(gr, text, value)


NOT_NAMES = {
    "greeting to all": ("Hi All, the release notes are attached.", "All"),
    "thanks team": ("Thanks Team! Great sprint.", "Team"),
    "csv title column": ("id,first_name,title\n7,Ayumi,Data Engineer\n", "Engineer"),
    "json plan value": ('{"id": 1, "plan": "Premium"}', "Premium"),
    "bracketed role": ("Posted by Jo Baker (admin) today", "admin"),
}


@pytest.mark.parametrize(("text", "value"), **table(NOT_NAMES))
def test_not_a_name(gr: Guardrail, text: str, value: str) -> None:
    assert not covered(gr, text, value)


# --------------------------------------------------------------------------- type stability, own tokens

PLACEHOLDERS = [
    "Hi <PERSON>, your order is ready.",
    "Thanks <PERSON_3>, I sent it to <EMAIL_ADDRESS_2>.",
    "Call <PERSON_3ffsbnqyim> back about <LOCATION_7Q2K9XMMPA>.",
    "Meeting with PERSON_3ffsbnqyim moved.",
]


@pytest.mark.parametrize("text", PLACEHOLDERS, ids=["replace", "numbered", "keyed and vault", "bare token"])
def test_own_placeholders_are_never_findings(gr: Guardrail, text: str) -> None:
    token = re.compile(r"<[A-Z_0-9a-z]+>|PERSON_[a-z0-9]+")
    spans = [m.span() for m in token.finditer(text)]
    for f in gr.detect(text):
        assert not any(f.start < b and a < f.end for a, b in spans), (text[f.start : f.end], f.entity)


def test_placeholder_next_to_a_real_name_keeps_the_name(gr: Guardrail) -> None:
    text = "Dear <PERSON_2> and Dr. Ingrid Halvorsen, see attached."
    assert covered(gr, text, "Ingrid Halvorsen")  # positive control: detection still runs


def test_one_value_one_type_in_a_document(gr: Guardrail) -> None:
    text = "My name is Jonas Eklund. Later that day Jonas Eklund called again about the refund."
    types = {f.entity for f in gr.detect(text) if "Jonas" in text[f.start : f.end]}
    assert types == {"PERSON"}


POSTCODES = {
    "polish": ("Ship it to ul. Lipowa 3/2, 31-042 Kraków.", "31-042 Kraków"),
    "swedish": ("Adress: Storgatan 12, 114 51 Stockholm", "114 51 Stockholm"),
    "danish": ("Home address: Nørrebrogade 40, 2200 København N", "2200 København N"),
}


@pytest.mark.parametrize(("text", "value"), **table(POSTCODES))
def test_postcode_and_city_after_an_address(gr: Guardrail, text: str, value: str) -> None:
    assert fully_covered(gr, text, value)


def test_year_after_a_comma_is_not_a_postcode(gr: Guardrail) -> None:
    text = "We bought it in March, 2019 Toyota Corolla, still running."
    assert not any(f.entity == "LOCATION" and "2019" in text[f.start : f.end] for f in gr.detect(text))
