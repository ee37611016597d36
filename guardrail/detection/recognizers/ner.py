"""spaCy NER findings, filtered: durations and relative dates are not identifiers, and field labels
("MRN", "DOB") tagged as organisations are not organisations."""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guardrail.detection.recognizers.base import result_metadata
from guardrail.detection.recognizers.dates import MONTHS
from guardrail.detection.recognizers.gazetteers import given_names

__all__ = ["CALENDAR_NAME", "NerRecognizer"]

_DATE_EVIDENCE = re.compile(
    rf"(?<!\d)(?:1[89]|20)\d\d(?!\d)|\d{{1,2}}[/.-]\d{{1,2}}|{MONTHS}|\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day\b",
    re.IGNORECASE,
)
_NOT_ENTITIES = frozenset(
    """
    dob mrn ssn id dx hpi pcp er ed icu bp hr rr ct mri ekg ecg cbc copd chf htn dm oa ra uti uri npo prn bid
    tid qid po iv im sc hipaa gdpr pii phi fax tel a/p s o p patient sincerely dear regards note progress
    assessment plan subjective objective history date email e-mail phone address name mr mrs ms dr
    daughter son wife husband mother father sister brother spouse partner guardian caregiver parent
    grandmother grandfather aunt uncle niece nephew cousin friend neighbor neighbour nurse doctor
    """.split()
)
_RELATIVE = re.compile(r"(?i)(?:the\s+)?(?:last|next|this|every|each|previous|following|coming)\s+\D*$")
_NAMED = frozenset({"PERSON", "ORGANIZATION", "LOCATION"})
# the parts of an entity between CSV separators (a comma without a space) and key=value fields
_CELL = re.compile(r"(?:[^,=\s]|,(?=\s)|\s(?![\w.-]+=))+")

# A weekday, a time of day or a duration alone is not a date of a person's life ("ships on Monday",
# "at 10:00"); a month or a holiday alone is weak evidence (0.45): the Safe Harbor pack (threshold
# 0.4) removes it as a date element, the default pack (0.5) keeps it.
_LEAD = r"(?:(?:on|in|by|from|until|till|since|before|after|during|this|next|last|every|each|the|a|an|of|early|late|mid|end|beginning|start|between|and|or|to)[\s-]+)*"
_WEEKDAY = (
    r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day)?s?|(?:mon|tues|wednes|thurs|fri|satur|sun)days?"
)
_TIME_OF_DAY = (
    r"(?:\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?|h|hrs)?|\d{1,2}:\d{2}(?::\d{2})?|noon|midnight|morning|afternoon|"
    r"evening|night|tonight|today|tomorrow|yesterday|arvo|weekend|lunchtime|overnight)"
)
_CALENDAR_WORD = re.compile(
    rf"(?i)^{_LEAD}(?:(?:{_WEEKDAY})(?:(?:\s*[/,&–-]\s*|\s+(?:or|and|to)\s+)(?:{_WEEKDAY}))*(?:[\s,]+(?:at\s+)?{_TIME_OF_DAY})*"
    rf"|{_TIME_OF_DAY}(?:\s*(?:-|–|to|and|until|at)\s*{_TIME_OF_DAY})*(?:\s+(?:time|local))?)$"
)
_HOLIDAYS = (
    r"christmas(?:\s+eve|\s+day)?|xmas|easter|orthodox\s+easter|new\s+year(?:'s|’s)?(?:\s+(?:eve|day))?|"
    r"thanksgiving|halloween|diwali|holi|eid(?:\s+al-\w+)?|ramadan|hanukkah|passover|lunar\s+new\s+year|"
    r"chinese\s+new\s+year|golden\s+week|black\s+friday|boxing\s+day|labou?r\s+day|memorial\s+day|"
    r"independence\s+day|bank\s+holiday|black\s+history\s+month|summer|winter|spring|autumn|fall|"
    r"good\s+friday|easter\s+(?:monday|sunday)|whitsun|pentecost|advent|lent|ash\s+wednesday|carnival|"
    r"mardi\s+gras|sinterklaas|st\.?\s+patrick(?:'s|’s)?\s+day|valentine(?:'s|’s)?\s+day|"
    r"mother(?:'s|’s)\s+day|father(?:'s|’s)\s+day|cyber\s+monday|prime\s+day|singles(?:'|’)?\s+day|"
    r"yom\s+kippur|rosh\s+hashanah|purim|sukkot|hanukah|chanukah|nowruz|vesak|songkran|chuseok|obon|"
    r"mid-autumn\s+festival|qingming|onam|pongal|navratri|durga\s+puja|raksha\s+bandhan|"
    r"eid\s+al-(?:fitr|adha)|eid\s+ul-(?:fitr|adha)|kwanzaa|juneteenth|oktoberfest|pride\s+month|"
    r"king(?:'s|’s)\s+day|national\s+day|victoria\s+day|canada\s+day|australia\s+day|anzac\s+day|"
    r"bastille\s+day|hogmanay|midsummer|new\s+year(?:'s|’s)?"
)
_MONTH_ONLY = re.compile(rf"(?i)^{_LEAD}(?:{MONTHS}\.?|{_HOLIDAYS})(?:\s*(?:-|–|to|/)\s*{MONTHS}\.?)?$")
#: A holiday or a weekday alone (in any case): never a person, place or organisation.
CALENDAR_NAME = re.compile(
    rf"(?i)^(?:the\s+)?(?:orthodox\s+|catholic\s+|lunar\s+)?(?:{_HOLIDAYS}|{_WEEKDAY})$"
)
_NAME_JUNK = re.compile(r"^[\W\d_]+$")
_TRAILING_WORD = re.compile(r"\s+(?:and|or|&|of|in|at|on|the|with|to)$")


class NerRecognizer(LocalRecognizer):
    """Entities from the NLP engine's artifacts (spaCy NER, labels already mapped to Presidio names)."""

    def __init__(self, *, entities: list[str], score: float = 0.85) -> None:
        self._score = score
        super().__init__(supported_entities=entities, supported_language="en", name="SpacyNerRecognizer")

    def load(self) -> None:
        """Nothing to load: the NLP engine ran the model."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        if nlp_artifacts is None:
            return []
        meta = result_metadata(self)
        results = []
        for ent in nlp_artifacts.entities:
            label = ent.label_
            if label not in self.supported_entities:
                continue
            start, end = ent.start_char, ent.end_char
            value = text[start:end]
            # trim leading articles and possessives spaCy includes ("the Acme Corp", "John's")
            lead = re.match(r"(?i)(?:the|a|an)\s+", value)
            if lead and label != "DATE_TIME":
                start += lead.end()
            if value.endswith(("'s", "’s")):
                end -= 2
            # a conjunction or preposition the model ran on with ("Uppingham Road and")
            tail = _TRAILING_WORD.search(text, start, end)
            if tail is not None and label != "DATE_TIME":
                end = tail.start()
            if label in {"PERSON", "ORGANIZATION"}:
                # a name ends at a line break or a run of spaces (form fields: "Chidi  Sex: M")
                cut = re.search(r"\n|[ \t]{2,}", text[start:end])
                if cut is not None and cut.start() > 1:
                    end = start + cut.start()
            # a CSV cell or a key=value field ends an entity: "Nishimura,1997-03-22" is two values
            cells = [(m.start(), m.end()) for m in _CELL.finditer(text, start, end)]
            if len(cells) > 1:
                start, end = max(cells, key=lambda c: sum(ch.isalpha() for ch in text[c[0] : c[1]]))
            value = text[start:end]
            if not value.strip() or _NAME_JUNK.match(value) or value.casefold() in _NOT_ENTITIES:
                continue
            if (
                label in _NAMED
                and " " not in value
                and text[end : end + 1] == ":"
                and value.lower() not in given_names()
                and not text[end + 1 : end + 3].strip().startswith(('"', "“", "'"))
            ):
                continue  # a field label at the start of a line ("Vehicle:", "Pacemaker:")
            score = self._score
            if _CALENDAR_WORD.match(value.strip()):
                continue  # "Monday", "Mon/Wed/Fri", "at 10:00": no date of a person's life, no name
            if label in _NAMED and CALENDAR_NAME.match(value.strip()):
                # "Diwali", "Golden Week" as a place or a person: a holiday, a date element alone
                label, score = "DATE_TIME", 0.45
            elif label == "DATE_TIME":
                if _MONTH_ONLY.match(value.strip()):
                    score = 0.45
                elif not _DATE_EVIDENCE.search(value) or _RELATIVE.match(value):
                    continue  # "5 days", "yesterday", "the last Sunday": no calendar date
            if label in {"ORGANIZATION", "PERSON", "LOCATION"} and value.isupper() and len(value) <= 4:
                score = 0.35  # short all-caps tokens are mostly abbreviations (CAP, GERD, ...)
            results.append(RecognizerResult(label, start, end, score, recognition_metadata=dict(meta)))
        return results
