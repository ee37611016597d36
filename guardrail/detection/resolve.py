"""Deterministic resolution of overlapping and adjacent findings.

Overlapping findings are merged into one span covering all of them (so a redaction can never leave a
fragment of a value behind), labelled with the entity of the strongest member. Adjacent findings of
the same entity are merged too. The result does not depend on the order findings arrived in.
"""

from __future__ import annotations

from collections.abc import Iterable

from guardrail.findings import Finding

__all__ = ["resolve"]

# When two members tie on score and length, the more specific entity wins (earlier in this list).
_PRIORITY = {
    name: i
    for i, name in enumerate(
        [
            "US_SSN",
            "CREDIT_CARD",
            "IBAN_CODE",
            "MEDICAL_RECORD_NUMBER",
            "HEALTH_PLAN_ID",
            "ACCOUNT_NUMBER",
            "LICENSE_NUMBER",
            "VEHICLE_ID",
            "DEVICE_ID",
            "EMAIL_ADDRESS",
            "URL",
            "IP_ADDRESS",
            "FAX_NUMBER",
            "PHONE_NUMBER",
            "AGE",
            "US_ZIP_CODE",
            "DATE_TIME",
            "PERSON",
            "LOCATION",
            "ORGANIZATION",
            "NRP",
        ]
    )
}


# Entity types that NER guesses; a pattern-based identifier overlapping one of them names the span.
_NER_TYPES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME"})


_GUESSES = frozenset({"SpacyNerRecognizer", "Propagation"})


def _strength(f: Finding, union: int) -> tuple[bool, float, int, int, str, str]:
    # the label comes from a member that covers most of the merged span; among those, pattern-based
    # identifiers beat NER guesses of the same strength
    # the small model's label is the weakest evidence: a title, a field, "my name is" or a given-name
    # list outranks it ("my name is Jonas Eklund" is a person whatever the model guessed)
    bonus = 0.25 if f.entity not in _NER_TYPES else 0.0 if f.recognizer in _GUESSES else 0.2
    covers = len(f) >= 0.6 * union
    return (covers, f.score + bonus, len(f), -_PRIORITY.get(f.entity, len(_PRIORITY)), f.entity, f.recognizer)


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Merge overlapping (and same-entity adjacent) findings; sorted by offset."""
    ordered = sorted(findings, key=lambda f: (f.start, -f.end, f.entity))
    out: list[Finding] = []
    group: list[Finding] = []
    end = -1
    for f in ordered:
        if group and (f.start < end or (f.start == end and f.entity == group[0].entity and _same(group, f))):
            group.append(f)
            end = max(end, f.end)
            continue
        if group:
            out.append(_merge(group, end))
        group, end = [f], f.end
    if group:
        out.append(_merge(group, end))
    return out


def _same(group: list[Finding], f: Finding) -> bool:
    return all(g.entity == f.entity for g in group)


def _merge(group: list[Finding], end: int) -> Finding:
    if len(group) == 1:
        return group[0]
    union = end - group[0].start
    best = max(group, key=lambda f: _strength(f, union))
    return Finding(group[0].start, end, best.entity, max(g.score for g in group), best.recognizer)
