"""PII detection: a Presidio-based detector with guardrail's recognizers, windowing and batching.

The public entry point is :class:`PresidioDetector` (built once per policy and reused); the
:class:`Detector` protocol is what the rest of guardrail depends on, so a fake can stand in for tests.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from guardrail.findings import Finding

__all__ = ["Detector", "PresidioDetector"]


@runtime_checkable
class Detector(Protocol):
    """Anything that finds personal data in text."""

    name: ClassVar[str]

    def detect(self, text: str) -> list[Finding]:
        """Findings in ``text``, non-overlapping and sorted by offset."""
        ...

    def detect_batch(self, texts: list[str]) -> list[list[Finding]]:
        """``detect`` for many texts at once (faster: the NLP model runs batched)."""
        ...


def __getattr__(name: str) -> object:
    # the engine imports presidio and spaCy: load it only when asked for
    if name == "PresidioDetector":
        from guardrail.detection.engine import PresidioDetector

        return PresidioDetector
    raise AttributeError(name)
