"""The activity report's figures over a synthetic log with known content, its filters, its bounded
aggregates, and the three renderers carrying the same content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _report_helpers import GDPR, HIPAA, RECORD_KEY, SEED, ft_export, retrieval, synthetic_events, write_log

from guardrail.audit import AuditLog
from guardrail.errors import OutputExistsError
from guardrail.reports import (
    Chart,
    Facts,
    Report,
    ReportError,
    Table,
    build_report,
    render_html,
    render_json,
    render_markdown,
    write_report,
)
from guardrail.reports.activity import _Principals

CLOCK = datetime(2025, 4, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(tmp_path_factory.mktemp("synthetic") / "audit", synthetic_events())


@pytest.fixture(scope="module")
def report(log_dir: Path) -> Report:
    return build_report(log_dir, clock=CLOCK)


def rows(report: Report, block_id: str) -> list[dict[str, Any]]:
    table = report.block(block_id)
    assert isinstance(table, Table)
    return [dict(zip((c.key for c in table.columns), r, strict=True)) for r in table.rows]


def by(report: Report, block_id: str, key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in rows(report, block_id)}


class TestActivity:
    """Each section counts what the log holds, per role, purpose, outcome, rule, entity and key."""

    def test_integrity_and_period(self, report: Report) -> None:
        assert report.ok
        assert report.integrity.status == "VERIFIED"
        assert report.integrity.records == len(synthetic_events())
        assert report.integrity.covered == report.integrity.records
        assert report.period.first_event == "2025-03-01T08:00:00.000Z"
        assert report.period.last_event == "2025-03-03T12:00:00.000Z"
        assert report.sections[0].id == "integrity"
        assert [s.id for s in report.sections] == [
            "integrity", "overview", "access", "exposure", "datasets", "keys",
        ]  # fmt: skip

    def test_access_by_role_purpose_and_outcome(self, report: Report) -> None:
        roles = by(report, "retrievals_by_role", "role")
        assert roles["clinician"]["retrievals"] == 3
        assert roles["researcher"]["chunks_released"] == 1
        assert roles["support"] == {
            "role": "support", "retrievals": 3, "denied": 2, "chunks_released": 1, "chunks_denied": 3,
            "chunks_withheld": 0,
        }  # fmt: skip
        assert roles["engineer"]["retrievals"] == 1  # the unguarded one
        purposes = by(report, "retrievals_by_purpose", "purpose")
        assert purposes["treat (TREAT)"]["retrievals"] == 4
        assert purposes["operations (OPERATIONS)"]["denied"] == 2
        outcomes = by(report, "retrievals_by_outcome", "what")
        assert outcomes["outcome: success"]["retrievals"] == 5
        assert outcomes["outcome: denied"]["retrievals"] == 2
        assert outcomes["outcome: unguarded"]["retrievals"] == 1
        assert outcomes["decision: partial"]["retrievals"] == 1

    def test_denials_name_deny_rules_only(self, report: Report) -> None:
        rules = by(report, "denials_by_rule", "rule")
        assert set(rules) == {"support-no-phi"}  # public-to-all allowed a chunk: not a denial rule
        assert rules["support-no-phi"]["events"] == 3
        assert by(report, "denied_chunks_by_classification", "classification")["phi"]["chunks"] == 3

    def test_timeline_per_hour_contiguous_and_stacked(self, report: Report) -> None:
        chart = report.block("retrievals_over_time")
        assert isinstance(chart, Chart)
        assert chart.title.endswith("(per hour)")  # 28 hours of activity
        assert (chart.labels[0], chart.labels[-1], len(chart.labels)) == (
            "2025-03-01 09:00", "2025-03-02 13:00", 29,
        )  # fmt: skip
        series = {s.name: s.values for s in chart.series}
        assert [sum(v) for v in series.values()] == [5, 2, 1]
        assert series["released (guarded)"][0] == 3
        assert series["denied"][chart.labels.index("2025-03-02 11:00")] == 2

    def test_unguarded_and_top_principals(self, report: Report) -> None:
        unguarded = rows(report, "unguarded_retrievals")
        assert unguarded == [{"occurred_at": "2025-03-02T13:00:00.000Z", "actor": "dev-1", "returned": 1}]
        top = rows(report, "top_principals")
        assert [(r["principal"], r["retrievals"], r["denied"]) for r in top[:2]] == [
            ("agent-5", 3, 2),
            ("dr-chen", 3, 0),
        ]

    def test_exposure(self, report: Report) -> None:
        chart = report.block("entities_released_vs_redacted")
        assert isinstance(chart, Chart)
        values = {s.name: dict(zip(chart.labels, s.values, strict=True)) for s in chart.series}
        assert values["redacted at release"]["PERSON"] == 3
        assert values["re-identified"]["PERSON"] == 2  # the denied request released nothing
        assert values["redacted at release"]["MEDICAL_RECORD_NUMBER"] == 1
        released = {(r["classification"], r["profile"]): r["chunks"] for r in rows(report, "chunks_released")}
        assert released[("phi", "none")] == 3
        assert released[("phi", "redact")] == 1
        reids = rows(report, "reidentifications")
        assert [r["outcome"] for r in reids] == ["denied", "success"]  # most recent first
        assert reids[1]["vault"] == "vault-default"

    def test_datasets_and_safe_harbor(self, report: Report) -> None:
        events = rows(report, "dataset_events")
        assert [e["event"] for e in events] == ["ft.scan", "ft.export"]
        export = events[1]
        assert (export["input_records"], export["output_records"], export["rejects"]) == (120, 118, 2)
        assert (export["findings_before"], export["findings_after"], export["residual"]) == (59, 1, 1)
        assert export["policy"] == "hipaa-safe-harbor@1.0.0"
        assert export["manifest"].startswith("chats-2025-03.manifest.json sha256:3333")
        harbor = by(report, "safe_harbor_1", "id")
        assert len(harbor) == 18
        assert list(harbor) == [chr(c) for c in range(ord("A"), ord("R") + 1)]
        assert harbor["A"]["status"] == "RESIDUAL: 1 remaining"
        assert harbor["C"]["status"] == "handled (generalize)"
        assert harbor["F"]["status"] == "handled (replace)"
        assert harbor["J"]["status"].startswith("PARTLY KEPT (mask)")
        assert harbor["D"]["status"] == "none found"
        assert harbor["P"]["status"].startswith("HUMAN REVIEW")
        assert "human review" in harbor["R"]["status"]

    def test_keys_erasures_and_policy_versions(self, report: Report) -> None:
        assert rows(report, "key_rotations")[0]["key_ids"] == "k-2 (version-2)"
        assert rows(report, "key_shreds")[0]["key_ids"] == "k-1 (retired)"
        erasure = rows(report, "erasures")[0]
        assert erasure["subjects"] == "0123456789abcdef"
        assert (erasure["deleted_nodes"], erasure["deleted_records"], erasure["keys"]) == (3, 4, 1)
        versions = {r["policy"]: r for r in rows(report, "policy_versions")}
        assert versions["hipaa-safe-harbor"]["sha256"] == HIPAA.sha256
        assert versions["hipaa-safe-harbor"]["first_seen"] == "2025-03-01T08:00:00.000Z"
        assert versions["gdpr"]["version"] == GDPR.version


class TestFilters:
    """--since inclusive, --until exclusive (a bare date: the end of that day), --policy by name or id."""

    def test_window(self, log_dir: Path) -> None:
        r = build_report(log_dir, since="2025-03-02", until="2025-03-02")
        assert r.period.since == "2025-03-02T00:00:00.000Z"
        assert r.period.until == "2025-03-03T00:00:00.000Z"
        assert (r.period.first_event, r.period.last_event) == (
            "2025-03-02T11:00:00.000Z",
            "2025-03-02T13:00:00.000Z",
        )
        assert set(by(r, "retrievals_by_role", "role")) == {"support", "engineer"}
        assert rows(r, "dataset_events") == []

    def test_policy(self, log_dir: Path) -> None:
        r = build_report(log_dir, policy="gdpr@1.0.0")
        assert rows(r, "retrievals_by_role") == []  # every retrieval ran under hipaa-safe-harbor
        assert [v["policy"] for v in rows(r, "policy_versions")] == ["gdpr"]
        assert len(rows(r, "erasures")) == 1  # events without a policy are kept
        assert dict(r.filters) == {"policy": "gdpr@1.0.0"}

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"since": "yesterday"}, "--since 'yesterday': use an ISO date"),
            ({"since": "2025-03-03", "until": "2025-03-01"}, "is not before --until"),
        ],
        ids=["bad-time", "empty-window"],
    )
    def test_bad_options(self, log_dir: Path, kwargs: dict[str, str], match: str) -> None:
        with pytest.raises(ReportError, match=match):
            build_report(log_dir, **kwargs)

    def test_not_a_log(self, tmp_path: Path) -> None:
        with pytest.raises(ReportError, match="not an audit log directory"):
            build_report(tmp_path / "missing")


class TestRenderers:
    """HTML, Markdown and JSON carry the same tables; the format follows the extension."""

    def test_json_is_the_report(self, report: Report) -> None:
        data = json.loads(render_json(report))
        assert data["format"] == "guardrail.report/1"
        assert data["integrity"]["ok"] is True
        blocks = {b["id"]: b for s in data["sections"] for b in s["blocks"] if "id" in b}
        assert blocks["retrievals_by_role"]["rows"] == rows(report, "retrievals_by_role")
        denied = blocks["retrievals_over_time"]["series"][1]
        assert (denied["name"], sum(denied["values"])) == ("denied", 2)

    def test_every_table_in_markdown_and_html(self, report: Report) -> None:
        md, html = render_markdown(report), render_html(report)
        for section in report.sections:
            for block in section.blocks:
                if isinstance(block, Table | Chart | Facts):
                    assert f"### {block.title}" in md
                    assert f'id="{block.id}"' in html
        assert "| support | 3 | 2 | 1 | 3 |" in md
        assert html.count('<svg class="chart"') == 2
        assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in html
        assert "<script" not in html

    @pytest.mark.parametrize("suffix", [".html", ".md", ".json"])
    def test_write_by_extension(self, report: Report, tmp_path: Path, suffix: str) -> None:
        path = write_report(report, tmp_path / f"r{suffix}")
        text = path.read_text("utf-8")
        assert {".html": "<!DOCTYPE html>", ".md": "# guardrail", ".json": '"format"'}[suffix] in text
        with pytest.raises(OutputExistsError):
            write_report(report, path)
        write_report(report, path, force=True)

    def test_unknown_extension(self, report: Report, tmp_path: Path) -> None:
        with pytest.raises(ReportError, match=r"\.html, \.md or \.json"):
            write_report(report, tmp_path / "r.pdf")
        assert not (tmp_path / "r.pdf").exists()


class TestBounded:
    """Memory stays bounded: lists keep the latest events, principals are pruned with a stated error."""

    def test_principal_table_prunes_and_states_the_error(self) -> None:
        p = _Principals(cap=3)
        for ref, n in (("a", 50), ("b", 40), ("c", 30)):
            for _ in range(n):
                p.add(ref, False, "r")
        for i in range(10):
            p.add(f"rare-{i}", False, "r")
        assert len(p.counts) <= 6
        assert [ref for ref, _ in p.top(3)] == ["a", "b", "c"]
        assert p.error == 1

    def test_lists_keep_the_latest(self, tmp_path: Path) -> None:
        events = [
            retrieval(f"2025-03-01T10:{i // 60:02d}:{i % 60:02d}.000Z", category="rag.unguarded")
            for i in range(130)
        ]
        r = build_report(write_log(tmp_path / "audit", events))
        table = r.block("unguarded_retrievals")
        assert isinstance(table, Table)
        assert (len(table.rows), table.total) == (100, 130)
        assert table.rows[0][0] == "2025-03-01T10:02:09.000Z"  # the latest first
        assert "_showing 100 of 130_" in render_markdown(r)

    def test_timeline_rebins_long_periods(self, tmp_path: Path) -> None:
        events = [retrieval(f"2025-{m:02d}-15T10:00:00.000Z") for m in (1, 6, 12)]
        events.append(retrieval("2027-01-01T10:00:00.000Z"))
        chart = build_report(write_log(tmp_path / "audit", events)).block("retrievals_over_time")
        assert isinstance(chart, Chart)
        assert chart.title.endswith("(per month)")
        assert chart.labels[0] == "2025-01"
        assert chart.labels[-1] == "2027-01"
        assert len(chart.labels) == 25
        assert sum(chart.series[0].values) == 4


class TestIntegrity:
    """A damaged log is reported as FAILED, first, in every format."""

    def test_flipped_byte(self, tmp_path: Path) -> None:
        audit = write_log(tmp_path / "audit", synthetic_events())
        segment = audit / "segment-000001.jsonl"
        data = bytearray(segment.read_bytes())
        at = data.index(b'"agent-5"') + 2
        data[at] ^= 0x01  # agent-5 -> agent-4 in one record
        segment.write_bytes(bytes(data))
        r = build_report(audit)
        assert not r.ok
        assert r.integrity.status == "FAILED"
        assert r.integrity.kind == "edited"
        first = r.sections[0]
        assert first.id == "integrity"
        assert "INTEGRITY FAILED" in first.blocks[0].text  # type: ignore[union-attr]
        md = render_markdown(r)
        assert md.index("INTEGRITY FAILED") < md.index("## Access")
        assert 'data-integrity="FAILED"' in render_html(r)
        assert json.loads(render_json(r))["integrity"]["ok"] is False

    def test_uncovered_tail_is_a_warning(self, tmp_path: Path) -> None:
        audit = tmp_path / "audit"
        log = AuditLog(audit, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=1000)
        log.append(ft_export("2025-03-03T08:10:00.000Z", "d", {"PERSON": 1}, {}, {"PERSON": "replace"}))
        log.checkpoint()
        log.append(retrieval("2025-03-03T09:00:00.000Z"))
        r = build_report(audit)  # the writer is still open: the last record has no checkpoint yet
        log.close()
        assert r.ok
        assert (r.integrity.records, r.integrity.covered) == (2, 1)
        assert "not yet covered by a signed checkpoint" in render_markdown(r)
