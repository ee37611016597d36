"""Result types shared by detection and redaction: immutable, and never holding raw values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Finding", "RedactionResult"]


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One detected span of personal data: where it is and what it is, never what it says.

    Attributes:
        start: offset of the first character (inclusive).
        end: offset after the last character (exclusive).
        entity: entity type, e.g. ``PERSON`` or ``MEDICAL_RECORD_NUMBER``.
        score: confidence in [0, 1].
        recognizer: name of the recognizer that produced it.
    """

    start: int
    end: int
    entity: str
    score: float = field(compare=False)
    recognizer: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready view (offsets, entity, score): what ``--findings`` writes."""
        return {"start": self.start, "end": self.end, "entity": self.entity, "score": round(self.score, 4)}


@dataclass(frozen=True, slots=True)
class RedactionResult:
    """A redacted text and the findings that were redacted in it.

    ``text`` is the redacted text; ``findings`` are offsets into the *original* text (which the result
    does not keep). The repr shows counts only, so logging a result leaks nothing.
    """

    text: str
    findings: tuple[Finding, ...]
    # where each replacement sits in ``text`` (output offsets, in order), for re-scans of the output
    spans: tuple[tuple[int, int], ...] = ()

    def counts(self) -> dict[str, int]:
        """Number of findings per entity type."""
        return dict(Counter(f.entity for f in self.findings))

    def __repr__(self) -> str:
        return f"RedactionResult(chars={len(self.text)}, findings={self.counts()})"
