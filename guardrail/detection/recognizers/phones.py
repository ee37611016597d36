"""Phone numbers validated by Google's libphonenumber metadata (the ``phonenumbers`` package).

guardrail's shape rules (``identifiers``) find numbers written in groups or after a label; this recognizer
finds the rest the way Presidio's ``PhoneRecognizer`` does, by asking libphonenumber whether a digit
sequence is a valid number: international numbers (``+`` or ``00``) for any country, and national forms
for the regions in :data:`REGIONS` ("13812345678" is a valid Chinese mobile number, "(523)222-8888EXT623"
a US number with an extension). A valid international number is strong evidence on its own; a valid
national one is weak (many 10-digit ids are valid US numbers), so it needs a context word ("call",
"phone", "mobile", ...) or a lower pack threshold to be reported.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guardrail.detection.recognizers.base import result_metadata
from guardrail.detection.recognizers.identifiers import PHONE_CONTEXT, phone_ok

__all__ = ["REGIONS", "PhoneLibraryRecognizer"]

# national formats tried, in this order (the first region that validates the number wins); NANP numbers
# (US, Canada, Caribbean) validate as US
REGIONS = ("US", "GB", "IN", "DE", "FR", "BR", "CN", "MX", "AU", "ES", "IT", "NL", "JP", "NG", "ZA", "PL")

_CANDIDATE = re.compile(
    r"(?<![\w+@./:#-])(?P<v>(?:\+|00)?(?:\(\d{1,5}\)[ .-]?)?\d[\d .()-]{5,22}\d"
    r"(?:[ ]?(?i:ext\.?|x|extension)[ ]?\d{1,6})?)(?![\w@/-]|[.,]\d)"
)
_INTERNATIONAL_SCORE = 0.75
_NATIONAL_SCORE = 0.45


class PhoneLibraryRecognizer(LocalRecognizer):
    """PHONE_NUMBER: digit sequences libphonenumber validates (international, or national in REGIONS)."""

    def __init__(self, regions: tuple[str, ...] = REGIONS) -> None:
        self._regions = regions
        super().__init__(
            supported_entities=["PHONE_NUMBER"],
            supported_language="en",
            context=PHONE_CONTEXT,
            name="PhoneLibraryRecognizer",
        )

    def load(self) -> None:
        """Nothing to load: libphonenumber's metadata is read on first use."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        metadata = result_metadata(self)
        for m in _CANDIDATE.finditer(text):
            value = m.group("v")
            if not phone_ok(value):
                continue
            score = _score(value, self._regions)
            if score:
                start, end = m.span("v")
                results.append(
                    RecognizerResult("PHONE_NUMBER", start, end, score, recognition_metadata=dict(metadata))
                )
        return results


@lru_cache(maxsize=8192)
def _score(value: str, regions: tuple[str, ...]) -> float:
    """The score of a candidate: international and valid, national and valid in one of ``regions``, or 0."""
    import phonenumbers

    if value.startswith(("+", "00")):
        number = _parse("+" + value[2:] if value.startswith("00") else value, None)
        return _INTERNATIONAL_SCORE if number is not None and phonenumbers.is_valid_number(number) else 0.0
    if sum(c.isdigit() for c in value) < 8:
        return 0.0
    for region in regions:
        number = _parse(value, region)
        if number is not None and phonenumbers.is_valid_number(number):
            return _NATIONAL_SCORE
    return 0.0


def _parse(value: str, region: str | None) -> Any:
    import phonenumbers

    try:
        return phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
