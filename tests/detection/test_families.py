"""Detection families added in issue 12's second pass: phone numbers validated by libphonenumber, ages
over 89 in words and shorthand, partial dates and date ranges, a place before its country, a name that
lives somewhere, names listed with other names. Each family has positives and look-alike negatives; the
sentences are written for these tests."""

from __future__ import annotations

import pytest

from guardrail import Guardrail
from guardrail.findings import Finding


def findings_over(gr: Guardrail, text: str, value: str) -> list[Finding]:
    assert value in text, "bad test: the value is not in the text"
    start = text.index(value)
    end = start + len(value)
    return [f for f in gr.detect(text) if f.start < end and start < f.end]


def covers(gr: Guardrail, text: str, value: str) -> bool:
    """Every non-space character of ``value`` (first occurrence) is inside some finding."""
    start = text.index(value)
    hit = [False] * len(value)
    for f in gr.detect(text):
        for i in range(max(start, f.start), min(start + len(value), f.end)):
            hit[i - start] = True
    return all(h or c.isspace() for h, c in zip(hit, value, strict=True))


# --------------------------------------------------------------------------- phone numbers

PHONES = [
    ("My number is 13912345678, text me after lunch.", "13912345678"),  # Chinese mobile, no separators
    ("Call (415)555-2671EXT204 before noon.", "(415)555-2671EXT204"),
    ("whatsapp: 98765 43210", "98765 43210"),  # Indian mobile
    ("The landlord's line is 0044 20 7946 0958.", "0044 20 7946 0958"),
    ("Her office phone: 030 901820 (Berlin).", "030 901820"),
    ("You can reach Tomás on +52 33 3615 0072 ext. 114.", "+52 33 3615 0072 ext. 114"),
]


@pytest.mark.parametrize(("text", "value"), PHONES)
def test_phone_numbers_found(gr_default: Guardrail, text: str, value: str) -> None:
    assert covers(gr_default, text, value)


@pytest.mark.parametrize(
    "text",
    [
        "The invoice total was 1234567890 rupees.",
        "Population grew from 1200 to 2400 between the two counts.",
        "Scores were 3 4 5 6 7 8 9 in the trial.",
        "Version 10.2.3.4567 fixed the crash.",
    ],
)
def test_numbers_that_are_not_phones(gr_default: Guardrail, text: str) -> None:
    assert not [f for f in gr_default.detect(text) if f.entity == "PHONE_NUMBER"]


# --------------------------------------------------------------------------- ages (HIPAA: over 89)

AGES = [
    ("Mrs. Lindqvist is a ninety-two year old woman with CHF.", "ninety-two year old"),
    ("He is ninety-seven years old and walks daily.", "ninety-seven years old"),
    ("She turned ninety last spring.", "ninety"),
    ("Pt is 94/F, brought in after a fall.", "94"),
    ("DOB 4/9/1928 (95), lives with her son.", "95"),
    ("My grandfather, who is 96, still drives to church.", "96"),
    ("F/91 with new confusion.", "91"),
]


@pytest.mark.parametrize(("text", "value"), AGES)
def test_ages_over_89_found(gr_hipaa: Guardrail, text: str, value: str) -> None:
    assert any(f.entity == "AGE" for f in findings_over(gr_hipaa, text, value))


CHILD_AGES = [
    ("Dependants: my son Oleksii, 8 years, and my daughter Mila, 3 years.", "8 years"),
    ("Children: Jonah (6 years), second child due in May.", "6 years"),
    ("Travelling with our daughter (4 yrs) and the dog.", "4 yrs"),
]


@pytest.mark.parametrize(("text", "value"), CHILD_AGES)
def test_childrens_ages_found(gr_default: Guardrail, text: str, value: str) -> None:
    assert covers(gr_default, text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("The meeting ran ninety minutes and a hundred people came.", "ninety minutes"),
        ("Order size M, 32 pieces per box.", "32"),
        ("Project history (4 years) is in the appendix.", "4 years"),
        ("The queue, who is 30 minutes behind, waited.", "30 minutes"),
    ],
)
def test_not_ages(gr_hipaa: Guardrail, text: str, value: str) -> None:
    assert not any(f.entity == "AGE" for f in findings_over(gr_hipaa, text, value))


# --------------------------------------------------------------------------- partial dates and ranges

DATES = [
    ("Labs from 10/2022-3/2023 are attached.", "10/2022-3/2023"),
    ("Rash first seen 11/97, again in the spring.", "11/97"),
    ("Admitted 07Feb2024, discharged 12FEB2024.", "07Feb2024"),
    ("Admitted 07Feb2024, discharged 12FEB2024.", "12FEB2024"),
    ("Inpatient 6/2-6/8/2023 on the cardiac ward.", "6/2-6/8/2023"),
    ("We stayed with them Aug 3-9, 2022 in the cabin.", "Aug 3-9, 2022"),
]


@pytest.mark.parametrize(("text", "value"), DATES)
def test_partial_dates_and_ranges_found(gr_hipaa: Guardrail, text: str, value: str) -> None:
    assert covers(gr_hipaa, text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Rate your pain 8/10 and your mood 3/5.", "8/10"),
        ("Rate your pain 8/10 and your mood 3/5.", "3/5"),
        ("Power 4/5 in the left arm, reflexes 2/4 symmetric.", "4/5"),
        ("BP 142/88, HR 76.", "142/88"),
        ("Score 2/4 on the screening scale.", "2/4"),
    ],
)
def test_scores_and_vitals_are_not_dates(gr_hipaa: Guardrail, text: str, value: str) -> None:
    assert not any(f.entity == "DATE_TIME" for f in findings_over(gr_hipaa, text, value))


# --------------------------------------------------------------------------- places and their country


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Send it to: Nomvula Dube, Soshanguve, South Africa", "Soshanguve, South Africa"),
        ("She grew up near Castelsaraceno Italy before the move.", "Castelsaraceno Italy"),
        ("Residence: Tartu, Estonia (since 2019)", "Tartu, Estonia"),
    ],
)
def test_place_before_its_country(gr_default: Guardrail, text: str, value: str) -> None:
    assert covers(gr_default, text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("In Italy shops close at one.", "In"),
        ("Samsung Korea announced a new phone.", "Samsung"),
        ("Welcome Spain, the new market for our app.", "Welcome"),
    ],
)
def test_words_before_a_country_that_are_not_places(gr_default: Guardrail, text: str, value: str) -> None:
    assert not findings_over(gr_default, text, value)


# --------------------------------------------------------------------------- names by what they do


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ilka lives on Rákóczi út 12 with her aunt.", "Ilka"),
        ("Last year Dumisani moved to Durban.", "Durban"),
        ("Tell me about Radu. Radu works at the depot now.", "Radu"),
    ],
)
def test_name_that_lives_or_works_somewhere(gr_default: Guardrail, text: str, value: str) -> None:
    assert covers(gr_default, text, value)


@pytest.mark.parametrize(
    "text",
    [
        "The legend lives on in his songs.",
        "Our data lives in a Frankfurt region.",
        "Everyone works from home on Fridays.",
    ],
)
def test_subjects_that_are_not_names(gr_default: Guardrail, text: str) -> None:
    assert not [f for f in gr_default.detect(text) if f.entity == "PERSON"]


def test_common_word_names_in_a_list_of_people(gr_default: Guardrail) -> None:
    text = "They invited 4: Omar, Hope, Jin and Lucas."
    assert covers(gr_default, text, "Hope")
    # a list of things is not a list of people
    assert not gr_default.detect("We stock Ruby, Hope and Crystal glassware.")
