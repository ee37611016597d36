"""Organisations by legal form, nationalities and other groups (NRP), payment cards."""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult

from guardrail.detection.recognizers.base import Rule, RuleRecognizer, luhn_ok, result_metadata
from guardrail.detection.recognizers.gazetteers import COMPANY_SUFFIXES, demonym_forms

__all__ = ["DemonymRecognizer", "card_recognizer", "company_recognizer"]

_CAP = r"(?:[A-ZÀ-ÞĀ-Ž0-9][\w&'’.-]*|&|of|and|the|de|du|des|der|für|y|e|et|für)"


def company_recognizer() -> RuleRecognizer:
    """Capitalised words ending in a legal form or an institution word: "Vergnet SA", "Ontodia Inc."."""
    return RuleRecognizer(
        entity="ORGANIZATION",
        name="CompanyRecognizer",
        rules=[
            Rule(
                "legal form",
                rf"\b[A-ZÀ-ÞĀ-Ž][A-Za-zß-ÿ&'’-]*\.?(?:[ \t]+{_CAP}){{0,5}},?[ \t]+(?:{COMPANY_SUFFIXES})\b\.?",
                0.6,
            ),
            Rule(
                "work for",
                r"(?i:\b(?:work(?:s|ed|ing)?\s+(?:for|at)|employed\s+(?:by|at)|employer\s*(?:is|:)|join(?:s|ed)|hired\s+by)\s+)(?P<v>[A-Z][\w&'’.-]*(?:[ \t]+[A-Z0-9][\w&'’./-]*){0,6})",
                0.6,
            ),
        ],
        context=["company", "employer", "work", "firm", "corporation", "organisation", "organization"],
    )


# Facilities named by a distinctive word before their kind ("Twin Cities Spine Center", "Lakeside Recovery
# Center", "Al-Furqan Mosque") identify where a person is treated, lives, studies or worships; a generic
# department ("the Cancer Center", "Urgent Care Center") does not, so at least one word before the head must
# be outside the generic words.
_FACILITY_HEAD = (
    r"Center|Centre|Clinic|Clinics|Pharmacy|Hospital|Hospice|Mosque|Masjid|Church|Cathedral|Temple|Synagogue|"
    r"Gurdwara|Academy|School|College|Nursing\s+Home|Care\s+Home|Rehab|Medical\s+Group|Health\s+System|"
    r"Surgery\s+Center|Dialysis|Infusion\s+Center|Senior\s+Living|Assisted\s+Living|Memory\s+Care"
)
_GENERIC_FACILITY_WORDS = frozenset(
    """
    the a an our your their cancer heart vascular medical health community regional general children's
    childrens women's womens veterans va surgical surgery urgent care primary family specialty recovery
    rehabilitation dialysis infusion imaging sleep spine eye dental behavioral behavioural mental memorial
    university state national county city poison control trauma burn transplant wellness wound main
    emergency outpatient inpatient day ambulatory diagnostic radiology oncology cardiology orthopedic
    orthopaedic pediatric paediatric neurology psychiatric maternity birth breast kidney liver lung
    diabetes endocrine fertility hearing vision skin laser pain sports physical therapy high middle
    elementary primary secondary public private catholic christian islamic jewish baptist methodist
    lutheran evangelical orthodox st st. saint new old north south east west central
    """.split()
)


_GUIDANCE_AFTER = re.compile(
    r"['’]?s?[ \t]+(?:guidelines?|criteria|protocols?|recommendations?|score|scale|classification|study|"
    r"studies|trial|research|website|app|newsletter|podcast|foundation|press)\b",
    re.IGNORECASE,
)


class FacilityRecognizer(RuleRecognizer):
    """Facilities: capitalised words then a facility kind, at least one of them distinctive."""

    _MATCH = re.compile(
        rf"(?<![\w'’-])((?:[A-ZÀ-ÞĀ-Ž][\w'’.&-]*[ \t]+(?:(?:of|de|du|la)[ \t]+)?){{1,4}})(?:{_FACILITY_HEAD})\b"
        r"|(?<![\w'’-])(?:Universidade|Universidad|Université|Universität|Università|Universiteit|University|"
        r"Hôpital|Hospital|Clínica|Clinica|Klinikum|Instituto|Institut|Istituto|Escola|Escuela|École|Colegio|"
        r"Liceo|Lycée|Gymnasium)[ \t]+(?:de|do|da|dos|das|of|di|der|des|du|la|del|della|degli|van|von|zu)"
        r"[ \t]+[A-ZÀ-ÞĀ-Ž][\w'’-]+(?:[ \t]+[A-ZÀ-ÞĀ-Ž][\w'’-]+)?"
    )

    def __init__(self) -> None:
        super().__init__(entity="ORGANIZATION", rules=[], name="FacilityRecognizer")

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        meta = result_metadata(self)
        out = []
        for m in self._MATCH.finditer(text):
            words = m.group(1).split() if m.group(1) else ["x"]
            if m.group(1) and all(w.lower().strip(".,") in _GENERIC_FACILITY_WORDS for w in words):
                continue
            if _GUIDANCE_AFTER.match(text, m.end()):
                continue  # "the Mayo Clinic guidelines": a source of guidance, not where someone is
            start = m.start()
            # a leading article or possessive is not part of the name
            lead = re.match(r"(?:The|Our|Your|Their|A|An)[ \t]+", text[start : m.end()])
            if lead:
                start += lead.end()
            # above the model's 0.85, so that Presidio keeps this span when the model's covers it too
            out.append(
                RecognizerResult("ORGANIZATION", start, m.end(), 0.86, recognition_metadata=dict(meta))
            )
        return out


class DemonymRecognizer(RuleRecognizer):
    """Nationalities, ethnic and religious groups (in any case, singular or plural)."""

    _WORD = re.compile(r"\b[A-Za-z]+\b")

    def __init__(self) -> None:
        super().__init__(
            entity="NRP",
            rules=[],
            name="DemonymRecognizer",
            context=["nationality", "citizen", "ethnic", "religion"],
        )

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        forms = demonym_forms()
        meta = result_metadata(self)
        return [
            RecognizerResult("NRP", m.start(), m.end(), 0.65, recognition_metadata=dict(meta))
            for m in self._WORD.finditer(text)
            if m.group().lower() in forms
        ]


def card_recognizer() -> RuleRecognizer:
    """Payment card numbers: 12 to 19 digits (optionally grouped) passing Luhn, or labelled as a card."""
    number = r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])"
    return RuleRecognizer(
        entity="CREDIT_CARD",
        name="CardNumberRecognizer",
        rules=[
            Rule("luhn", number, 0.8, validate=luhn_ok),
            Rule(
                "labelled",
                rf"(?i:\b(?:card|cc|visa|mastercard|amex|maestro|debit|credit)\b)(?:\s+(?i:number|no\.?|#))?\s*(?:(?i:is)|:)?\s*(?P<v>{number})",
                0.85,
            ),
        ],
        context=["card", "credit", "debit", "visa", "mastercard", "amex", "cc", "charge", "billing"],
    )
