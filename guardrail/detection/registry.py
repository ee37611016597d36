"""Which recognizers serve a policy: Presidio's checksum-validated ones, guardrail's, and the policy's own."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

from guardrail.detection.nlp import SpacyNerEngine
from guardrail.detection.recognizers.base import Rule, RuleRecognizer
from guardrail.policy import Policy

__all__ = ["build_analyzer"]


@cache
def _offline_extractor() -> Any:
    import tldextract

    # the bundled public-suffix snapshot; never fetch the list over the network
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def _email_recognizer() -> Any:
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer, validating domains against the bundled suffix list."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(_offline_extractor()(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _presidio_recognizers(entities: frozenset[str]) -> list[Any]:
    from presidio_analyzer.predefined_recognizers import (
        CryptoRecognizer,
        IbanRecognizer,
        IpRecognizer,
        NhsRecognizer,
        UrlRecognizer,
        UsBankRecognizer,
        UsItinRecognizer,
        UsLicenseRecognizer,
        UsPassportRecognizer,
        UsSsnRecognizer,
    )

    table: dict[str, Any] = {
        "CRYPTO": CryptoRecognizer,
        "IBAN_CODE": IbanRecognizer,
        "IP_ADDRESS": IpRecognizer,
        "UK_NHS": NhsRecognizer,
        "URL": UrlRecognizer,
        "US_BANK_NUMBER": UsBankRecognizer,
        "US_ITIN": UsItinRecognizer,
        "US_DRIVER_LICENSE": UsLicenseRecognizer,
        "US_PASSPORT": UsPassportRecognizer,
        "US_SSN": UsSsnRecognizer,
    }
    out = [factory() for entity, factory in table.items() if entity in entities]
    if "EMAIL_ADDRESS" in entities:
        out.append(_email_recognizer())
    return out


def _guardrail_recognizers(entities: frozenset[str]) -> list[Any]:
    from guardrail.detection.recognizers.dates import age_recognizer, date_recognizer
    from guardrail.detection.recognizers.identifiers import identifier_recognizers
    from guardrail.detection.recognizers.location import location_recognizers, zip_recognizer
    from guardrail.detection.recognizers.misc import DemonymRecognizer, card_recognizer, company_recognizer
    from guardrail.detection.recognizers.ner import NerRecognizer
    from guardrail.detection.recognizers.person import GivenNameRecognizer, person_recognizer

    candidates: list[Any] = [
        *identifier_recognizers(),
        *location_recognizers(),
        zip_recognizer(),
        date_recognizer(),
        age_recognizer(),
        person_recognizer(),
        GivenNameRecognizer(),
        company_recognizer(),
        DemonymRecognizer(),
        card_recognizer(),
    ]
    out = [r for r in candidates if r.supported_entities[0] in entities]
    ner = sorted(entities & {"PERSON", "ORGANIZATION", "LOCATION", "NRP", "DATE_TIME"})
    if ner:
        out.append(NerRecognizer(entities=ner))
    return out


def _custom_recognizers(policy: Policy) -> list[RuleRecognizer]:
    return [
        RuleRecognizer(
            entity=spec.entity,
            name=f"custom:{spec.name}",
            rules=[
                Rule(p.name or spec.name, p.regex, p.score, flags=re.IGNORECASE if spec.ignore_case else 0)
                for p in spec.patterns
            ],
            context=spec.context,
        )
        for spec in policy.detection.custom_recognizers
    ]


def build_analyzer(policy: Policy, model: str) -> Any:
    """A Presidio ``AnalyzerEngine`` with the recognizers ``policy`` selects, over ``model``.

    Raises:
        DetectorUnavailable: the spaCy model is not installed.
    """
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    entities = policy.detection.all_entities
    nlp_engine = SpacyNerEngine(model)
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in [
        *_presidio_recognizers(entities),
        *_guardrail_recognizers(entities),
        *_custom_recognizers(policy),
    ]:
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=["en"],
        context_aware_enhancer=_NoContextEnhancer(),
    )


class _NoContextEnhancer(ContextAwareEnhancer):
    """The detector applies context words itself (see ``engine``); Presidio's enhancer needs lemmas."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0.0,
            min_score_with_context_similarity=0.0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self, text: str, raw_results: list[Any], *args: Any, **kwargs: Any
    ) -> list[Any]:
        return raw_results
