"""`guardrail audit verify/show/prove` through typer's CliRunner: output and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _audit_helpers import OTHER_SEED, SEGMENT, event, lines, make_log, record_of, write_lines
from typer.testing import CliRunner

from guardrail.audit import AuditLog
from guardrail.audit.cli import EXIT_DAMAGED, EXIT_TORN_TAIL, audit_app
from guardrail.audit.note import VerifierKey, public_key_of
from guardrail.errors import ConfigError

runner = CliRunner()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    d = tmp_path / "log"
    make_log(d, 12, checkpoint_every=5)
    return d


class TestVerify:
    """Exit 0 intact, 5 damaged (naming the first bad record and the kind), 6 torn final record."""

    def test_intact(self, log_dir: Path) -> None:
        result = runner.invoke(audit_app, ["verify", str(log_dir)])
        assert result.exit_code == 0, result.output
        assert "12 records intact" in result.output

    def test_damaged(self, log_dir: Path) -> None:
        stored = lines(log_dir)
        del stored[4]
        write_lines(log_dir, stored)
        result = runner.invoke(audit_app, ["verify", str(log_dir)])
        assert result.exit_code == EXIT_DAMAGED
        assert "damaged: record 4 (deleted)" in result.output

    def test_torn_tail(self, log_dir: Path) -> None:
        with (log_dir / SEGMENT).open("ab") as f:
            f.write(b'{"integrity":')
        result = runner.invoke(audit_app, ["verify", str(log_dir)])
        assert result.exit_code == EXIT_TORN_TAIL
        assert "torn final record in segment-000001.jsonl at byte" in result.output

    def test_json(self, log_dir: Path) -> None:
        result = runner.invoke(audit_app, ["verify", str(log_dir), "--json"])
        assert result.exit_code == 0
        data = json.loads(result.output)
        assert data["ok"] is True
        assert data["records"] == 12
        assert data["covered"] == 12

    def test_public_key_option(self, log_dir: Path, tmp_path: Path) -> None:
        good = tmp_path / "good.pub"
        shutil.copy(log_dir / "audit.pub", good)
        assert runner.invoke(audit_app, ["verify", str(log_dir), "--public-key", str(good)]).exit_code == 0
        origin = VerifierKey.parse(good.read_text()).name
        wrong = tmp_path / "wrong.pub"
        wrong.write_text(VerifierKey(origin, public_key_of(OTHER_SEED)).encode())
        result = runner.invoke(audit_app, ["verify", str(log_dir), "--public-key", str(wrong)])
        assert result.exit_code == EXIT_DAMAGED
        assert "bad-signature" in result.output

    def test_exported_checkpoints(self, log_dir: Path, tmp_path: Path) -> None:
        exported = tmp_path / "exported"
        shutil.copy(log_dir / "checkpoints", exported)
        write_lines(log_dir, lines(log_dir)[:3])
        (log_dir / "checkpoints").write_text("")
        result = runner.invoke(audit_app, ["verify", str(log_dir), "--checkpoints", str(exported)])
        assert result.exit_code == EXIT_DAMAGED
        assert "record 3 (truncated)" in result.output

    def test_not_a_log(self, tmp_path: Path) -> None:
        result = runner.invoke(audit_app, ["verify", str(tmp_path / "missing")])
        assert isinstance(result.exception, ConfigError)  # guardrail.cli.main maps it to exit 2


class TestShow:
    """Filters by principal, category, subject and time; a table or JSON lines."""

    def test_table(self, log_dir: Path) -> None:
        result = runner.invoke(audit_app, ["show", str(log_dir)])
        assert result.exit_code == 0
        assert "12 event(s)" in result.output
        assert "user-1" in result.output
        assert "TREAT" in result.output

    def test_filters_and_json(self, tmp_path: Path) -> None:
        d = tmp_path / "log"
        with AuditLog(d, signing_key=bytes(range(32)), record_key=bytes(range(2, 34))) as log:
            log.append(event(1, occurred_at="2025-01-01T00:00:00.000Z"))
            log.append(event(2, occurred_at="2025-03-01T00:00:00.000Z"))
            log.append(
                {
                    "event": {"category": "key.rotate", "action": "U", "outcome": "success"},
                    "actor": {"ref": "user-1", "type": "user"},
                    "occurred_at": "2025-03-02T00:00:00.000Z",
                }
            )

        def show(*args: str) -> list[dict[str, object]]:
            result = runner.invoke(audit_app, ["show", str(d), "--json", *args])
            assert result.exit_code == 0, result.output
            return [json.loads(x) for x in result.output.splitlines()]

        assert [r["seq"] for r in show()] == [0, 1, 2]
        assert [r["seq"] for r in show("--principal", "user-1")] == [0, 2]
        assert [r["seq"] for r in show("--event", "key.rotate")] == [2]
        assert [r["seq"] for r in show("--since", "2025-02-01")] == [1, 2]
        assert [r["seq"] for r in show("--subject", "p-0002")] == [1]
        result = runner.invoke(audit_app, ["show", str(d), "--since", "yesterday"])
        assert isinstance(result.exception, ConfigError)


class TestProve:
    """Prints the proof JSON; exit 0 when it verifies."""

    def test_prove(self, log_dir: Path) -> None:
        event_id = record_of(lines(log_dir)[6])["event_id"]
        result = runner.invoke(audit_app, ["prove", str(log_dir), event_id])
        assert result.exit_code == 0, result.output
        proof = json.loads(result.output)
        assert proof["format"] == "guardrail.audit.proof/1"
        assert (proof["leaf_index"], proof["tree_size"]) == (6, 12)

    def test_prove_against_another_key_fails(self, log_dir: Path, tmp_path: Path) -> None:
        event_id = record_of(lines(log_dir)[6])["event_id"]
        origin = VerifierKey.parse((log_dir / "audit.pub").read_text()).name
        wrong = tmp_path / "wrong.pub"
        wrong.write_text(VerifierKey(origin, public_key_of(OTHER_SEED)).encode())
        result = runner.invoke(audit_app, ["prove", str(log_dir), event_id, "--public-key", str(wrong)])
        assert isinstance(result.exception, ConfigError)  # no checkpoint verifies under that key

    def test_unknown_event(self, log_dir: Path) -> None:
        result = runner.invoke(audit_app, ["prove", str(log_dir), "01941234-5678-7abc-8def-0123456789ab"])
        assert isinstance(result.exception, ConfigError)
