"""examples/wrap_existing_rag.py runs, and each principal gets what the hipaa-safe-harbor policy says."""

from __future__ import annotations

import runpy
from pathlib import Path

from guardrail.audit import verify

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "wrap_existing_rag.py"
PII = ("Harold Finch", "88412095", "Grace Finch", "grace.finch@example.com")


def test_wrap_existing_rag_example(tmp_path: Path) -> None:
    main = runpy.run_path(str(EXAMPLE))["main"]
    seen = main(tmp_path)

    clinician = "\n".join(seen["clinician"])
    assert "Harold Finch" in clinician  # treatment: the note as written

    researcher = "\n".join(seen["researcher"])
    assert "DISCHARGE SUMMARY" in researcher  # the note is released, de-identified
    for value in PII:
        assert value not in researcher
    assert "<PERSON_1>" in researcher  # names as codes (164.514(c)), consistent within a retrieval
    assert "90+" in researcher  # ages over 89

    support = "\n".join(seen["support"])
    assert "Harold Finch" not in support
    assert "DISCHARGE SUMMARY" not in support
    assert "furosemide" not in support
    assert all("Visiting hours" in text for text in seen["support"])  # public text only, or nothing

    assert verify(tmp_path / "audit").ok is True
