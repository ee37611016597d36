"""Detection quality by family (issue 12): what is personal data and what is not.

Each family has positive rows (the value must be redacted) and negative rows (a look-alike that is not
personal data must survive), through the ``default`` and ``hipaa-safe-harbor`` packs. The sentences are
written for these tests, not taken from the evaluation corpora.
"""

from __future__ import annotations

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
