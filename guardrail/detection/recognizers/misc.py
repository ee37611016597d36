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
