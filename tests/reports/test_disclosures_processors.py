"""The 164.528 accounting counts chunks sent to a processor outside the organisation (an LLM, an embedding
service: a business associate) as disclosures, excluded for treatment, payment and operations by the
purpose's recorded HIPAA basis, and windowed from --requested-on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _report_helpers import SOURCE, write_log

from guardrail.reports import Table, build_disclosures, render_markdown

REF = "0123456789abcdef"
AZURE = {"name": "Azure OpenAI (EU)", "kind": "llm", "role": "business-associate", "region": "EU",
         "agreement": "BAA-2025-07", "received": "chunks"}  # fmt: skip


def _retrieval(
    at: str, purpose: dict[str, Any], processors: list[dict[str, Any]], returned: int = 2
) -> dict[str, Any]:
    return {
        "occurred_at": at,
        "event": {"category": "rag.retrieval", "action": "R", "outcome": "success"},
        "source": SOURCE,
        "actor": {"ref": "r-17", "type": "user", "roles": ["researcher"]},
        "purpose": purpose,
        "policy": {
            "id": "clinic",
            "version": "2.0.0",
            "sha256": "0" * 64,
            "decision": "allow",
            "rule_ids": ["r"],
            "redaction_profile": ["redact"],
        },
        "subjects": [REF],
        "resources": [{"type": "chunk", "id": f"c-{at}", "labels": ["phi"], "decision": "allow"}],
        "retrieval": {"k": 5, "returned": returned, "denied": 0, "redacted": 0},
        "processors": processors,
    }


RESEARCH = {
    "code": "HRESCH",
    "name": "clinical research",
    "hipaa_basis": "research-waiver",
    "agreement": "IRB-1",
}
TREAT = {"code": "TREAT", "name": "treatment of the patient", "hipaa_basis": "treatment"}
# a purpose whose code looks like TPO but whose recorded basis is an authorization: accounted for
SUPPORT = {"code": "OPERATIONS", "name": "marketing follow-up", "hipaa_basis": "authorization"}


def _rows(audit: Path, **options: Any) -> list[dict[str, Any]]:
    report = build_disclosures(audit, subject_ref=REF, clock=datetime(2025, 6, 1, tzinfo=UTC), **options)
    table = report.block("disclosures")
    assert isinstance(table, Table)
    return [dict(zip((c.key for c in table.columns), r, strict=True)) for r in table.rows]


def test_chunks_sent_to_a_business_associate_are_accounted_unless_tpo(tmp_path: Path) -> None:
    audit = write_log(
        tmp_path / "audit",
        [
            _retrieval("2025-01-10T09:00:00.000Z", RESEARCH, [AZURE]),
            _retrieval("2025-01-11T09:00:00.000Z", TREAT, [AZURE]),  # TPO: excluded
            _retrieval("2025-01-12T09:00:00.000Z", SUPPORT, [AZURE]),  # basis says authorization
            _retrieval("2025-01-13T09:00:00.000Z", RESEARCH, [dict(AZURE, role="internal")]),  # in-house
            _retrieval("2025-01-14T09:00:00.000Z", RESEARCH, [AZURE], returned=0),  # nothing released
            _retrieval(
                "2025-01-15T09:00:00.000Z",
                RESEARCH,
                [{"name": "undeclared", "kind": "llm", "class": "OpenAI", "model": "gpt-4o"}],
            ),
        ],
    )
    listed = _rows(audit)
    assert [(r["date"], r["recipient"].split(" (")[0]) for r in listed] == [
        ("2025-01-10", "Azure OpenAI"),
        ("2025-01-12", "Azure OpenAI"),
        ("2025-01-15", "UNDECLARED llm OpenAI gpt-4o"),
    ]
    assert "BAA-2025-07" in listed[0]["recipient"]
    assert listed[0]["description"] == "2 record chunk(s) sent to the language model with the request"
    assert "45 CFR 164.512(i)(1)(i)" in listed[0]["purpose"]
    assert "164.508" in listed[1]["purpose"]
    text = render_markdown(build_disclosures(audit, subject_ref=REF, clock=datetime(2025, 6, 1, tzinfo=UTC)))
    assert "1 disclosure(s) for treatment, payment or health care operations (TREAT)" in text
    assert "3 of the disclosures listed are record chunks sent" in text


def test_the_window_ends_on_the_request_date(tmp_path: Path) -> None:
    audit = write_log(
        tmp_path / "audit",
        [
            _retrieval("2018-12-01T09:00:00.000Z", RESEARCH, [AZURE]),  # 6 years before the request
            _retrieval("2019-02-01T09:00:00.000Z", RESEARCH, [AZURE]),
            _retrieval("2025-03-01T09:00:00.000Z", RESEARCH, [AZURE]),  # after the request
        ],
    )
    assert [r["date"] for r in _rows(audit, requested_on="2025-01-15")] == ["2019-02-01"]
    # without a request date the window ends today (the clock, 2025-06-01): 2019-02-01 falls out of it
    assert [r["date"] for r in _rows(audit)] == ["2025-03-01"]
