"""Reports over a real scenario (keyring, encrypted store, guarded retrieval, erasure, dataset export,
re-identification, a disclosure): the exact command lines, exit codes, subject reports, and no raw PII in
any report, in any format."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _report_helpers import SEEDED_PII, Scenario, build_scenario, disclosure, write_log

from guardrail.cli import main
from guardrail.reports import Report, Table, build_disclosures, build_dsar, build_ropa, render_markdown

FORMATS = (".html", ".md", ".json")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return build_scenario(tmp_path_factory.mktemp("scenario"))


def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: object
) -> tuple[int, str]:
    """Run ``guardrail ARGS`` in-process through ``guardrail.cli.main`` (its exit-code mapping)."""
    monkeypatch.setattr(sys, "argv", ["guardrail", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), captured.out + captured.err


def subject_args(s: Scenario) -> list[object]:
    return ["--subject", "patient-88412095", "--keyring", s.keys, "--tenant", s.tenant]


def rows(report: Report, block_id: str) -> list[dict[str, object]]:
    table = report.block(block_id)
    assert isinstance(table, Table)
    return [dict(zip((c.key for c in table.columns), r, strict=True)) for r in table.rows]


class TestCommandLines:
    """The command lines of the issue, their outputs and exit codes."""

    def test_report_as_a_real_process(self, scenario: Scenario, tmp_path: Path) -> None:
        out = tmp_path / "report.html"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "guardrail.cli",
                "report",
                scenario.audit,
                "-o",
                out,
                "--since",
                "2020-01-01",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "audit log verified" in proc.stderr
        assert out.read_text("utf-8").startswith("<!DOCTYPE html>")

    @pytest.mark.parametrize("suffix", FORMATS)
    def test_every_report_in_every_format(
        self,
        scenario: Scenario,
        tmp_path: Path,
        suffix: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        commands: dict[str, list[object]] = {
            "activity": ["report", scenario.audit, "--policy", "hipaa-safe-harbor"],
            "build": ["report", "build", scenario.audit, "--until", "2100-01-01"],
            "ropa": ["report", "ropa", scenario.audit],
            "dsar": ["report", "dsar", scenario.audit, *subject_args(scenario)],
            "disclosures": ["report", "disclosures", scenario.audit, *subject_args(scenario), "--years", "6"],
        }
        texts = {}
        for name, args in commands.items():
            out = tmp_path / f"{name}{suffix}"
            code, output = cli(capsys, monkeypatch, *args, "-o", out)
            assert code == 0, output
            texts[name] = out.read_text("utf-8")
        # no seeded value, in any report, in any format: not the patient's id, not the text, not the query
        for name, text in texts.items():
            for value in SEEDED_PII:
                assert value.lower() not in text.lower(), (name, value)
        assert scenario.subject_ref in texts["dsar"]
        assert "State cancer registry" in texts["disclosures"]
        assert "notes-export" in texts["activity"]
        if suffix == ".json":
            assert {json.loads(t)["kind"] for t in texts.values()} == {
                "activity",
                "ropa",
                "dsar",
                "disclosures",
            }

    def test_damaged_log_writes_the_report_and_exits_5(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        audit = write_log(
            tmp_path / "audit",
            [
                disclosure(
                    "2025-01-01T00:00:00.000Z", "0123456789abcdef", recipient="x", purpose="y", code="Z"
                )
            ],
        )
        segment = audit / "segment-000001.jsonl"
        data = bytearray(segment.read_bytes())
        data[data.index(b'"recipient":"x"') + 13] ^= 0x02
        segment.write_bytes(bytes(data))
        out = tmp_path / "r.md"
        code, output = cli(capsys, monkeypatch, "report", audit, "-o", out)
        assert code == 5
        assert "INTEGRITY FAILED" in output
        assert "**integrity**: FAILED" in out.read_text("utf-8")

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["report", "{audit}", "-o", "{tmp}/r.pdf"], "the extension must be .html, .md or .json"),
            (["report", "{tmp}/missing", "-o", "{tmp}/r.md"], "not an audit log directory"),
            (["report", "{audit}", "-o", "{tmp}/r.md", "--since", "last week"], "use an ISO date or time"),
            (["report", "dsar", "{audit}", "-o", "{tmp}/r.md"], "give --subject S (with --keyring DIR)"),
            (
                ["report", "dsar", "{audit}", "-o", "{tmp}/r.md", "--subject", "p"],
                "--subject needs --keyring",
            ),
            (
                ["report", "dsar", "{audit}", "-o", "{tmp}/r.md", "--subject-ref", "Finch"],
                "not a subject reference",
            ),
            (
                [
                    "report",
                    "disclosures",
                    "{audit}",
                    "-o",
                    "{tmp}/r.md",
                    "--subject-ref",
                    "0" * 16,
                    "--years",
                    "0",
                ],
                "--years must be",
            ),
            (
                ["report", "ropa", "{audit}", "-o", "{tmp}/r.md", "--policy", "no-such-pack"],
                "no such policy pack",
            ),
        ],
        ids=[
            "extension",
            "missing-dir",
            "bad-time",
            "no-subject",
            "no-keyring",
            "bad-ref",
            "years",
            "policy",
        ],
    )
    def test_user_errors_exit_2_without_traceback(
        self,
        scenario: Scenario,
        tmp_path: Path,
        args: list[str],
        message: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        filled = [a.format(audit=scenario.audit, tmp=tmp_path) for a in args]
        code, output = cli(capsys, monkeypatch, *filled)
        assert code == 2, output
        assert message in output
        assert "Traceback" not in output
        assert not (tmp_path / "r.md").exists()

    def test_existing_output_needs_force(
        self,
        scenario: Scenario,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        out = tmp_path / "r.json"
        out.write_text("keep me")
        code, output = cli(capsys, monkeypatch, "report", scenario.audit, "-o", out)
        assert code == 2
        assert "pass --force" in output
        assert out.read_text() == "keep me"
        code, _ = cli(capsys, monkeypatch, "report", scenario.audit, "-o", out, "--force")
        assert code == 0
        assert json.loads(out.read_text())["kind"] == "activity"


class TestSubjectReports:
    """DSAR and disclosures find the subject's events by reference; principals only on request."""

    def test_dsar(self, scenario: Scenario) -> None:
        report = build_dsar(scenario.audit, subject_ref=scenario.subject_ref)
        events = rows(report, "subject_events")
        kinds = [e["event"] for e in events]
        assert kinds[0] == "rag.ingest"
        assert kinds.count("rag.retrieval") >= 3  # clinician, researcher, the disclosure
        assert "reidentify" in kinds
        assert "principal" not in events[0]
        purposes = " ".join(e["purpose"] for e in events)
        assert "treatment of the patient (TREAT)" in purposes  # in words, with the code
        assert "(HRESCH)" in purposes
        assert "(PUBHLTH)" in purposes
        assert [d["dataset"] for d in rows(report, "subject_datasets")] == ["notes-export"]
        assert len(rows(report, "subject_erasures")) == 1
        text = render_markdown(report)
        assert "dr-chen" not in text  # employee identities omitted by default
        named = build_dsar(scenario.audit, subject_ref=scenario.subject_ref, with_principals=True)
        assert "dr-chen" in {e["principal"] for e in rows(named, "subject_events")}

    def test_dsar_of_someone_else_is_empty(self, scenario: Scenario) -> None:
        report = build_dsar(scenario.audit, subject_ref="0" * 16)
        assert rows(report, "subject_events") == []
        assert report.ok

    def test_disclosures_window_and_tpo_exclusion(self, tmp_path: Path) -> None:
        ref = "0123456789abcdef"
        audit = write_log(
            tmp_path / "audit",
            [
                disclosure(
                    "2018-01-01T00:00:00.000Z", ref, recipient="Old Co", purpose="research", code="HRESCH"
                ),
                disclosure(
                    "2024-05-01T00:00:00.000Z", ref, recipient="Registry", purpose="public health", code="X"
                ),
                disclosure(
                    "2024-06-01T00:00:00.000Z", ref, recipient="Dr. Out", purpose="treatment", code="TREAT"
                ),
                disclosure(
                    "2024-07-01T00:00:00.000Z", "f" * 16, recipient="Other", purpose="audit", code="X"
                ),
            ],
        )
        clock = datetime(2025, 1, 1, tzinfo=UTC)
        report = build_disclosures(audit, subject_ref=ref, years=6, clock=clock)
        listed = rows(report, "disclosures")
        assert [(d["date"], d["recipient"], d["purpose"]) for d in listed] == [
            ("2024-05-01", "Registry", "public health (X)")
        ]
        assert "excluded from the accounting (164.528(a)(1)(i))" in render_markdown(report)
        assert len(rows(build_disclosures(audit, subject_ref=ref, years=7, clock=clock), "disclosures")) == 2

    def test_ropa_marks_what_the_log_cannot_know(self, scenario: Scenario) -> None:
        report = build_ropa(scenario.audit)
        text = render_markdown(report)
        assert text.count("TO BE COMPLETED") >= 8
        purposes = {r["purpose"] for r in rows(report, "processing_activities")}
        assert {"treatment of the patient (TREAT)", "health research (HRESCH)"} <= purposes
        assert not any("MODEL-TRAINING" in str(p) for p in purposes)  # never invented
        categories = {r["entity"] for r in rows(report, "data_categories")}
        assert {"PERSON", "MEDICAL_RECORD_NUMBER"} <= categories
        recipients = {r["recipient"] for r in rows(report, "recipients")}
        assert "external: State cancer registry" in recipients
        assert "internal role: clinician" in recipients
