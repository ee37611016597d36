"""Dates in the common written forms, and ages (HIPAA: ages over 89 are identifiers).

spaCy also tags dates, but misses numeric forms and tags durations ("5 days") and ages as dates;
these rules cover numeric, ISO (with times), month-name and labelled-year forms, validate the ranges,
and report ages as ``AGE`` so the Safe Harbor pack can generalise them.
"""

from __future__ import annotations

import re

from guardrail.detection.recognizers.base import Rule, RuleRecognizer

__all__ = ["MONTHS", "age_recognizer", "date_recognizer", "parse_year"]

MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
_YEAR4 = r"(?:1[89]\d\d|20\d\d|21\d\d)"
_TIME = r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:\s?[AaPp]\.?[Mm]\.?)?(?:Z|[+-]\d{2}:?\d{2})?)?"


def _numeric_ok(value: str) -> bool:
    parts = [p for p in re.split(r"[-/.]", value.split(maxsplit=1)[0].split("T", maxsplit=1)[0]) if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return True
    a, b, c = (int(p) for p in parts)
    if len(parts[0]) == 4:  # Y-M-D
        return 1 <= b <= 12 and 1 <= c <= 31
    # M/D/Y or D/M/Y
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def date_recognizer() -> RuleRecognizer:
    """Dates: numeric (M/D/Y, D.M.Y, Y-M-D, with 2- or 4-digit years, with times), month names, years."""
    w = r"(?<![\w/.-])"
    e = r"(?![\w/-]|\.\d)"
    return RuleRecognizer(
        entity="DATE_TIME",
        name="DateRecognizer",
        rules=[
            Rule(
                "iso",
                rf"{w}{_YEAR4}-(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01]){_TIME}{e}",
                0.9,
                validate=_numeric_ok,
            ),
            Rule(
                "ymd",
                rf"{w}{_YEAR4}[/.](?:0?[1-9]|1[0-2])[/.](?:0?[1-9]|[12]\d|3[01]){e}",
                0.85,
                validate=_numeric_ok,
            ),
            Rule(
                "mdy",
                rf"{w}\d{{1,2}}([/.-])\d{{1,2}}\1(?:\d{{4}}|\d{{2}}){_TIME}{e}",
                0.8,
                validate=_numeric_ok,
            ),
            Rule("md", r"(?<![\w/.-])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])(?![\w/]|\.\d)", 0.4),
            Rule(
                "month day year",
                rf"\b{MONTHS}\.?\s+{_DAY},?\s+{_YEAR4}{_TIME}\b",
                0.9,
                flags=re.IGNORECASE,
            ),
            Rule(
                "day month year",
                rf"\b{_DAY}\s+(?:of\s+)?{MONTHS}\.?,?\s+{_YEAR4}\b",
                0.9,
                flags=re.IGNORECASE,
            ),
            Rule(
                "day-mon-year",
                rf"\b{_DAY}[-/ ]{MONTHS}[-/ ](?:{_YEAR4}|\d{{2}})\b",
                0.85,
                flags=re.IGNORECASE,
            ),
            Rule("month year", rf"\b{MONTHS}\.?,?\s+(?:of\s+)?{_YEAR4}\b", 0.8, flags=re.IGNORECASE),
            Rule("month day", rf"\b{MONTHS}\.?\s+{_DAY}\b(?!\s*(?:%|percent))", 0.6),
            Rule("day of month", rf"\b{_DAY}\s+(?:of\s+)?{MONTHS}\b", 0.6),
            Rule("month/year", rf"{w}(?:0?[1-9]|1[0-2])/{_YEAR4}{e}", 0.6),
            # a bare year: personal data when it dates an event of a person's life; weak alone
            Rule(
                "year",
                r"(?<![\w$#.,/-])(?:19\d\d|20\d\d)(?![\w%/-]|[.,]\d|\s*(?:mg|mcg|ml|kg|units|USD|EUR|dollars|people|patients))",
                0.5,
            ),
            # a bare year after a date label (DOB, born, admitted ...)
            Rule(
                "labelled year",
                rf"(?i:\b(?:DOB|D\.O\.B\.|born|birth|date\s+of\s+\w+|admitted|admission|discharged|discharge|died|"
                rf"deceased|death|since|in|year)\b)\s*[:]?\s*(?:in\s+)?(?P<v>{_YEAR4})\b",
                0.6,
            ),
        ],
        context=["date", "dob", "born", "birth", "admitted", "discharged", "visit", "seen", "died", "on"],
    )


def parse_year(value: str) -> int | None:
    """The year a date string names, if any (4-digit, or the last 2-digit group of a numeric date)."""
    m = re.search(rf"(?<!\d){_YEAR4}(?!\d)", value)
    if m:
        return int(m.group())
    m = re.fullmatch(r"\s*\d{1,2}([/.-])\d{1,2}\1(\d{2})\b.*", value)
    if m:
        yy = int(m.group(2))
        return 2000 + yy if yy <= 30 else 1900 + yy
    return None


_NUM = r"(?P<v>\d{1,3}(?:\.\d)?)"


def _age_ok(value: str) -> bool:
    try:
        return 0 < float(value) <= 125
    except ValueError:
        return False


def age_recognizer() -> RuleRecognizer:
    """Ages: "72 years old", "72-year-old", "aged 72", "age: 72", "72 y/o", "72yo", "72M"."""
    return RuleRecognizer(
        entity="AGE",
        name="AgeRecognizer",
        rules=[
            Rule("years old", rf"\b{_NUM}(?:\s+|-)(?:years?|yrs?|y)(?:\s+|-)old\b", 0.9, validate=_age_ok),
            Rule("year-old", rf"\b{_NUM}[- ](?:year|yr|month|week)s?[- ]old\b", 0.9, validate=_age_ok),
            Rule("y/o", rf"\b{_NUM}\s?(?:y/?o|yo|y\.o\.)(?!\w)", 0.85, validate=_age_ok),
            Rule(
                "aged",
                rf"(?i:\b(?:aged?|age\s+of|age\s*:)\s*){_NUM}\b(?!\s*(?:%|mg|kg|cm|mm))",
                0.85,
                validate=_age_ok,
            ),
            Rule(
                "am years",
                rf"(?i:\b(?:I\s+am|I'm|he\s+is|she\s+is|they\s+are|turned|turning)\s+){_NUM}\b(?![.,]\d)",
                0.55,
                validate=_age_ok,
            ),
            Rule("sex age", rf"\b{_NUM}\s?(?:M|F|yo[MF])\b", 0.5, validate=_age_ok),
            Rule(
                "in nineties",
                r"\b(?:in\s+(?:his|her|their)\s+)(?P<v>(?:late\s+|early\s+|mid-?)?(?:9|10)0s|nineties)\b",
                0.8,
            ),
        ],
        context=["age", "aged", "old", "years", "yo", "birthday"],
    )
