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


_HOLIDAY_NAMES = (
    r"Christmas(?:\s+Eve|\s+Day)?|Xmas|Easter|Thanksgiving|Halloween|Diwali|Ramadan|Hanukkah|Passover|"
    r"New\s+Year(?:'s|’s)?(?:\s+(?:Eve|Day))?|Lunar\s+New\s+Year|Chinese\s+New\s+Year|Eid(?:\s+al-\w+)?|"
    r"Labou?r\s+Day|Memorial\s+Day|Independence\s+Day|Boxing\s+Day|Good\s+Friday|Yom\s+Kippur|"
    r"Rosh\s+Hashanah|Valentine(?:'s|’s)?\s+Day|Mother(?:'s|’s)\s+Day|Father(?:'s|’s)\s+Day"
)

# scores, ratios and vitals written like dates: "pain 7/10", "power 4/5", "BP 120/80", "ratio 1/3"
_SCORE_BEFORE = (
    r"(?:\b(?:pain|mood|sleep|fatigue|anxiety|score[sd]?|scale|rated?|rating|ratio|grade|power|strength|motor|reflexes|vision|"
    r"acuity|BP|blood\s+pressure|GCS|APGARs?|murmur|odds|dose|doses|tabs?|out\s+of|VAS|NRS|"
    r"level|stage|gleason|fraction|split|lanes?|rounds?|sets?|games?|vote[sd]?)\b[\s:=]*(?:was\s+|is\s+|of\s+)?)$"
)


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
            Rule(
                "md",
                r"(?<![\w/.-])(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])(?![\w/]|\.\d)",
                0.4,
                not_after=_SCORE_BEFORE,
            ),
            # day/month without a year, where the first number cannot be a month ("19/11", "23.04."), or
            # with a leading zero and a full stop ("05.03", "16.04."): weak alone, stronger after "on" or
            # at the start of a log line
            Rule(
                "dm",
                r"(?<![\w/.,-])(?:1[3-9]|2\d|3[01])/(?:0?[1-9]|1[0-2])(?![\w/]|[.,]\d)",
                0.4,
                not_after=_SCORE_BEFORE,
            ),
            Rule(
                "dm dotted",
                r"(?<![\w/.,$€£¥-])(?:0[1-9]|[12]\d|3[01])\.(?:0[1-9]|1[0-2])\.?(?![\w/]|[.,]?\d|\s*(?:%|€|\$|£|EUR|USD|"
                r"kg|g|mg|ml|km|m|cm|mm|h|hrs?|min|x|pts?|points?))",
                0.4,
                not_after=r"(?:\b(?:version|v|ver|release|rel|build|fw|firmware|score|rated?|rating|grade|price|"
                r"total|cost|sum|amount|balance|paid|eur|usd|gbp|chf|nok|sek|dkk|pln|czk)\b[\s:=]*)$",
            ),
            # "21.05. at the notary", "am 03.11. um 10 Uhr": the German form with a closing full stop
            # inside a sentence
            Rule(
                "dm dotted closed",
                r"(?<![\w/.,$€£¥-])(?:0?[1-9]|[12]\d|3[01])\.(?:0?[1-9]|1[0-2])\.(?=[ \t]+[a-zäöü0-9])",
                0.6,
            ),
            Rule(
                "log line day month",
                r"(?m)^[ \t]*(?:[-•*·][ \t]*)?(?P<v>(?:0?[1-9]|[12]\d|3[01])[/.](?:0?[1-9]|1[0-2])\.?)(?=[ \t]+[\w(])",
                0.6,
            ),
            # ranges: "3/4-3/9/2024", "11/2023 - 1/2024", "Mar 3-9, 2024", "12.-15.03.2024"
            Rule(
                "md range",
                rf"{w}(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])(?:/(?:\d{{4}}|\d{{2}}))?\s?[-–—]\s?"
                rf"(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:\d{{4}}|\d{{2}}){e}",
                0.85,
            ),
            Rule(
                "month/year range",
                rf"{w}(?:0?[1-9]|1[0-2])/{_YEAR4}\s?[-–—]\s?(?:0?[1-9]|1[0-2])/{_YEAR4}{e}",
                0.85,
            ),
            Rule(
                "month day range",
                rf"\b{MONTHS}\.?\s+{_DAY}\s?[-–—]\s?{_DAY}(?:,?\s+{_YEAR4})?\b",
                0.8,
                flags=re.IGNORECASE,
            ),
            Rule(
                "day range month",
                rf"\b{_DAY}\.?\s?[-–—]\s?{_DAY}\.?\s+{MONTHS}\b(?:\.?,?\s+{_YEAR4}\b)?",
                0.8,
            ),
            # "01Dec2023", "3MAR24": day, month name and year written together
            Rule(
                "compact day-mon-year",
                rf"(?<![\w/.-])(?:0?[1-9]|[12]\d|3[01]){MONTHS}(?:{_YEAR4}|\d{{2}})(?!\w)",
                0.85,
                flags=re.IGNORECASE,
            ),
            # "11/98", "06/87": a month and a two-digit number that cannot be a day is a month and year
            Rule(
                "month/yy",
                r"(?<![\w/.-])(?:0?[1-9]|1[0-2])/(?:3[2-9]|[4-9]\d)(?![\w/]|\.\d)",
                0.55,
                not_after=_SCORE_BEFORE,
            ),
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
            # a month or a holiday alone after "since", "until", "in" ...: a date element for Safe Harbor (0.45,
            # under the default pack's threshold)
            Rule(
                "month after preposition",
                rf"(?i:\b(?:since|until|till|from|before|after|during|through|in|by|last|next|early|late|mid)"
                rf"[ \t-]+)(?P<v>(?-i:{MONTHS}|Sept)\.?)(?![\w/-])(?![ \t]+\d)",
                0.45,
            ),
            Rule(
                "holiday after preposition",
                r"(?i:\b(?:since|until|till|before|after|during|over|at|around|by)[ \t]+(?:the[ \t]+)?)"
                rf"(?P<v>{_HOLIDAY_NAMES})(?![\w-])",
                0.45,
                flags=re.IGNORECASE,
            ),
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
_UNITS_WORD = r"(?:one|two|three|four|five|six|seven|eight|nine)"
# ninety and up, in words (ages up to 89 are not identifiers under Safe Harbor, so they are not matched)
_WORDS_90 = rf"(?:ninety(?:[- ]{_UNITS_WORD})?|(?:one|a)\s+hundred(?:\s+(?:and\s+)?(?:{_UNITS_WORD}|ten|eleven|twelve))?)"


def _kin_age_ok(value: str) -> bool:
    m = re.match(r"\d+", value)
    return m is not None and 0 < int(m.group()) < 60


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
            Rule("sex age", rf"\b{_NUM}\s?/?\s?(?:M|F|yo[MF])\b(?!/)", 0.5, validate=_age_ok),
            # "F/96"
            Rule("sex then age", rf"\b[MF]\s?/\s?{_NUM}\b(?![/.]\d)", 0.45, validate=_age_ok),
            # HIPAA: ages over 89 written in words ("ninety-one year old", "a hundred and two")
            Rule(
                "age in words",
                rf"(?i:\b(?P<v>{_WORDS_90}(?:[- ](?:years?|yrs?)(?:[- ]old)|\s+(?:y/?o|yo)))(?!\w))",
                0.5,
            ),
            Rule("aged in words", rf"(?i:\b(?:aged?|turned|turning|turns)\s+(?P<v>{_WORDS_90})\b)", 0.5),
            # the age after a date of birth: "DOB 3/3/1929 (94)", "born 1931 (93 y)"
            Rule(
                "age after dob",
                r"(?i:\b(?:DOB|D\.O\.B\.|born|date\s+of\s+birth)\b)[:\s]*[\w/.,-]{4,20}\s*\((?P<v>\d{1,3})"
                r"(?:\s?(?:y|yo|y/o|yrs?|years?))?\)",
                0.85,
                validate=_age_ok,
            ),
            # "age next birthday 38", "age last birthday: 61"
            Rule(
                "age birthday",
                rf"(?i:\bage\s+(?:next|last|at\s+next|at\s+last)\s+birthday\s*:?\s*){_NUM}\b",
                0.85,
                validate=_age_ok,
            ),
            # an event of a life and the age it happened at: "diagnosed at 52", "had breast cancer at 47"
            Rule(
                "event at age",
                r"(?i:\b(?:diagnosed|died|passed\s+away|widowed|retired|emigrated|cancer|stroke|heart\s+attack|"
                r"MI|CVA|dementia|diabetes|surgery|transplant)\b(?:\s+\w+){0,3}?\s+at\s+(?:the\s+age\s+of\s+|age\s+)?)"
                rf"{_NUM}\b(?!\s*(?:%|am|pm|[ap]\.m\.|:\d|h\b|hrs?|hours?|o'clock|mg|kg|weeks?|days?|months?|cm|mm|"
                r"floor|ward|room|bed|unit|level|clinic|site|station))(?![.:]\d)",
                0.7,
                validate=lambda v: _age_ok(v) and float(v) >= 10,
            ),
            # "my mother, who is 91", "she is now 93"
            Rule(
                "who is",
                rf"(?i:\b(?:who\s+is|who's|who\s+turned|is\s+now|now\s+aged?)\s+){_NUM}\b"
                r"(?![.,]\d|\s*(?:%|percent|kg|lbs?|cm|mg|minutes|min|days|weeks|am|pm|[ap]\.m\.))",
                0.6,
                validate=_age_ok,
            ),
            # a child's age after a kinship word: "my son Maksym, 9 years", "daughter (5 yrs)", "DD (7)"
            Rule(
                "kin age",
                r"(?=[sdckbgtnSDCKBGTN])(?i:\b(?:son|daughter|child|children|kids?|dependants?|dependents?|boy|girl|baby|toddler|grandson|granddaughter|grandchild|"
                r"brother|sister|nephew|niece|twins?|DD|DS|DD\d|DS\d)\b):?(?:\s+[A-ZÀ-ÞĀ-Ž][\w'’-]+){0,3}"
                r"\s*[,(]\s*(?P<v>\d{1,2}(?:\s?(?:years?|yrs?|y/?o|yo|months?|mos?)(?:\s+old)?)?)\s*[,)]",
                0.7,
                validate=_kin_age_ok,
            ),
            Rule(
                "in nineties",
                r"\b(?:in\s+(?:his|her|their)\s+)(?P<v>(?:late\s+|early\s+|mid-?)?(?:9|10)0s|nineties)\b",
                0.8,
            ),
        ],
        context=["age", "aged", "old", "years", "yo", "birthday"],
    )
