"""A small regex recognizer base: rules with an optional capture group, a validator and context words.

Presidio's ``PatternRecognizer`` reports whole matches; identifiers are usually found by their label
("MRN: ...", "Member ID ..."), so a rule here can report just one named group of the match (``(?P<v>...)``)
and keep the label out of the finding. A rule's validator (a checksum, a range check) returns false to
drop a match; the rule's score says how strong a validated match is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

__all__ = ["Rule", "RuleRecognizer", "luhn_ok", "result_metadata"]

Validator = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    """One regular expression; the span reported is group ``v`` when the regex has one."""

    name: str
    regex: str
    score: float
    flags: int = 0
    validate: Validator | None = None
    # a regex searched in the 32 characters before a match (anchor it with ``$``): a hit drops the match
    not_after: str | None = None

    def compile(self) -> re.Pattern[str]:
        return re.compile(self.regex, self.flags)


class RuleRecognizer(LocalRecognizer):
    """A recognizer made of :class:`Rule` s for one entity type."""

    def __init__(
        self,
        *,
        entity: str,
        rules: Sequence[Rule],
        context: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        self._rules = [
            (rule, rule.compile(), re.compile(rule.not_after, re.IGNORECASE) if rule.not_after else None)
            for rule in rules
        ]
        super().__init__(
            supported_entities=[entity],
            supported_language="en",
            context=list(context),
            name=name or f"{entity.title().replace('_', '')}Recognizer",
        )

    def load(self) -> None:
        """Nothing to load: the rules are compiled in the constructor."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        results: list[RecognizerResult] = []
        metadata = result_metadata(self)
        for rule, regex, guard in self._rules:
            for match in regex.finditer(text):
                start, end = match.span("v") if "v" in regex.groupindex else match.span()
                if start < 0 or start == end:
                    continue
                score = rule.score
                if rule.validate is not None and not rule.validate(text[start:end]):
                    continue
                if guard is not None and guard.search(text, max(0, start - 32), start):
                    continue
                results.append(
                    RecognizerResult(entity, start, end, score, recognition_metadata=dict(metadata))
                )
        return results


def result_metadata(recognizer: Any) -> dict[str, str]:
    """The metadata Presidio expects on a result: the recognizer's name and id."""
    return {
        RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id,
    }


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check over the digits of ``digits``."""
    nums = [int(c) for c in digits if c.isdigit()]
    if len(nums) < 2:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        doubled = n * 2 if i % 2 == 1 else n
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0
