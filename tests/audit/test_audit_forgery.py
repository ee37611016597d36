"""Attacks by someone who can write the audit directory but has no keyring (issue 11, point 1).

Each attack is checked where it matters: the next writer (it must refuse before appending or signing
anything after a foreign record), ``verify`` with the public key (and exported checkpoints) and ``verify``
with the keyring, and the CLI a user runs. Positive controls show the same paths accept an honest log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _audit_helpers import (
    ORIGIN,
    RECORD_KEY,
    SEED,
    SEGMENT,
    checkpoint_sizes,
    event,
    forge,
    forge_legacy,
    lines,
    make_log,
    record_of,
    write_lines,
)

from guardrail.audit import AuditIntegrityError, AuditLog, AuditWriteError, verify
from guardrail.audit.ids import Uuid7
from guardrail.audit.note import split_notes

N = 25


def _open(directory: Path, **options: object) -> AuditLog:
    return AuditLog(directory, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, **options)  # type: ignore[arg-type]


def _fake_dpo(stored: list[bytes]) -> dict[str, object]:
    """A well-formed record that continues the log: next seq, fresh event id, actor 'dpo'."""
    last = record_of(stored[-1])
    fake = {k: v for k, v in last.items() if k != "integrity"}
    fake["seq"] = last["seq"] + 1
    fake["event_id"] = Uuid7()(1_700_000_000_000)
    fake["actor"] = {"ref": "dpo", "type": "user", "roles": ["dpo"]}
    return fake


def _keep_checkpoints(directory: Path, count: int) -> None:
    notes = split_notes((directory / "checkpoints").read_text("utf-8"))
    (directory / "checkpoints").write_text("".join(notes[:count]), "utf-8")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    directory = tmp_path / "log"
    make_log(directory, N, checkpoint_every=10)
    return directory


@pytest.fixture
def exported(log: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "exported-checkpoints"
    shutil.copy(log / "checkpoints", copy)
    return copy


FORGERIES = {
    "guessed-mac": forge,
    "legacy-format": forge_legacy,
    "copied-seal": None,  # built in the test: the last real line's seal and MAC pasted on the fake
}


def _append_forgery(log: Path, how: str) -> None:
    stored = lines(log)
    fake = _fake_dpo(stored)
    if how == "copied-seal":
        real = record_of(stored[-1])["integrity"]
        line = forge(fake, mac=real["mac"])
        line = line.replace(b'"},', f'","seal":"{real["seal"]}"}},'.encode(), 1)
    else:
        line = FORGERIES[how](fake)  # type: ignore[misc]
    write_lines(log, [*stored, line])


class TestForgedRecordAfterTheLastCheckpoint:
    @pytest.mark.parametrize("how", sorted(FORGERIES))
    def test_next_writer_refuses_and_signs_nothing(self, log: Path, how: str) -> None:
        _append_forgery(log, how)
        before = (log / "checkpoints").read_bytes(), (log / SEGMENT).read_bytes()
        with pytest.raises(AuditIntegrityError) as caught:
            _open(log)
        assert (caught.value.index, caught.value.kind) == (N, "unauthentic")
        assert f"record {N}" in str(caught.value)
        assert "dpo" not in str(caught.value)  # never the record's content
        # nothing appended, nothing signed over the forged record
        assert ((log / "checkpoints").read_bytes(), (log / SEGMENT).read_bytes()) == before

    @pytest.mark.parametrize("how", sorted(FORGERIES))
    def test_verify_with_public_key_and_exported_checkpoints(
        self, log: Path, exported: Path, how: str
    ) -> None:
        _append_forgery(log, how)
        pub = (log / "audit.pub").read_text()
        for report in (verify(log), verify(log, public_key=pub, checkpoints=[exported])):
            assert not report.ok
            assert report.kind in {"unsigned-tail", "unauthentic"}
            assert report.first_bad_index == N
            assert report.signed == N
            assert report.unsigned_tail == 1

    @pytest.mark.parametrize("how", sorted(FORGERIES))
    def test_verify_with_keyring(self, log: Path, how: str) -> None:
        _append_forgery(log, how)
        report = verify(log, record_key=RECORD_KEY)
        assert (report.ok, report.kind, report.first_bad_index) == (False, "unauthentic", N)

    def test_positive_control(self, log: Path, exported: Path) -> None:
        with _open(log) as writer:
            writer.append(event(99))
        assert verify(log).ok
        assert verify(log, record_key=RECORD_KEY).ok
        report = verify(log, checkpoints=[exported])
        assert report.ok
        assert report.signed == report.records == N + 1
        assert report.unsigned_tail == 0

    def test_live_writer_refuses_a_record_added_behind_its_back(self, tmp_path: Path) -> None:
        directory = tmp_path / "live"
        writer = _open(directory, checkpoint_every=1000)
        for i in range(3):
            writer.append(event(i))
        _append_forgery(directory, "guessed-mac")
        with pytest.raises(AuditIntegrityError, match=r"record 3 .*not authenticated"):
            writer.append(event(3))
        with pytest.raises(AuditWriteError):
            writer.append(event(4))  # the log stays closed to appends
        with pytest.raises(AuditWriteError):
            writer.close()
        assert len(lines(directory)) == 4  # three honest records and the forgery: nothing after it
        assert checkpoint_sizes(directory) == [0]

    def test_record_copied_from_another_log_with_the_same_keyring(self, tmp_path: Path) -> None:
        """The MAC binds the log's origin: a line lifted from another log of the same keyring is foreign."""
        other = tmp_path / "other"
        with AuditLog(other, signing_key=SEED, record_key=RECORD_KEY, origin="other.example/audit") as o:
            for i in range(4):
                o.append(event(i))
        mine = tmp_path / "mine"
        make_log(mine, 3)
        write_lines(mine, [*lines(mine), lines(other)[3]])
        with pytest.raises(AuditIntegrityError, match="record 3"):
            _open(mine)

    def test_a_writer_with_another_keyring_refuses(self, log: Path) -> None:
        with pytest.raises(AuditIntegrityError, match="unauthentic"):
            AuditLog(log, signing_key=SEED, record_key=bytes(32), origin=ORIGIN)


class TestCheckpointsFile:
    def test_deleted(self, log: Path) -> None:
        (log / "checkpoints").unlink()
        report = verify(log)
        assert (report.ok, report.kind) == (False, "truncated")
        assert "checkpoints file is missing" in report.message
        assert "--allow-missing-checkpoints" in report.message
        assert verify(log, record_key=RECORD_KEY).kind == "truncated"  # the keyring does not excuse it
        allowed = verify(log, allow_missing_checkpoints=True)
        assert allowed.ok
        assert "no checkpoints file" in allowed.message

    def test_emptied(self, log: Path) -> None:
        (log / "checkpoints").write_bytes(b"")
        report = verify(log)
        assert (report.ok, report.kind) == (False, "truncated")
        assert "empty" in report.message

    def test_truncated_to_its_first_notes(self, log: Path) -> None:
        _keep_checkpoints(log, 1)  # the empty-tree checkpoint only
        assert checkpoint_sizes(log) == [0]
        report = verify(log)
        assert (report.ok, report.kind) == (False, "truncated")
        assert "checkpoints were removed" in report.message

    def test_cut_mid_note(self, log: Path) -> None:
        data = (log / "checkpoints").read_bytes()
        (log / "checkpoints").write_bytes(data[: len(data) - 20])
        assert not verify(log).ok

    def test_a_new_log_has_one_before_its_first_record(self, tmp_path: Path) -> None:
        """So a writer killed before its first checkpoint leaves no excuse for a missing file."""
        writer = _open(tmp_path / "new")
        writer.append(event(0))
        assert checkpoint_sizes(tmp_path / "new") == [0]
        report = verify(tmp_path / "new")
        assert report.ok, report.message
        assert report.signed == 1  # the seal covers the live record
        writer.close()


class TestCrashLeavesUnsealedRecords:
    """A batch cut short by a crash leaves complete records without their batch's seal."""

    def _crashed(self, tmp_path: Path) -> Path:
        directory = tmp_path / "crash"
        with _open(directory, batch_delay=10.0) as writer:
            writer.append(event(0))
            for i in range(1, 4):
                writer.append(event(i), sync=False)
            writer.flush()
        stored = lines(directory)
        assert "seal" in record_of(stored[3])["integrity"]
        assert "seal" not in record_of(stored[2])["integrity"]
        write_lines(directory, stored[:3])  # the write stopped before the batch's last (sealed) record
        (directory / "state.json").unlink()
        _keep_checkpoints(directory, 1)  # the crash came before the final checkpoint
        return directory

    def test_public_key_reports_the_tail_and_the_keyring_authenticates_it(self, tmp_path: Path) -> None:
        directory = self._crashed(tmp_path)
        report = verify(directory)
        assert (report.ok, report.kind, report.first_bad_index, report.unsigned_tail) == (
            False, "unsigned-tail", 1, 2,
        )  # fmt: skip
        assert "--keyring" in report.message
        keyed = verify(directory, record_key=RECORD_KEY)
        assert keyed.ok
        assert keyed.unsigned_tail == 2
        assert "MACs" in keyed.message

    def test_the_next_writer_accepts_it_and_seals_over_it(self, tmp_path: Path) -> None:
        directory = self._crashed(tmp_path)
        with _open(directory) as writer:
            writer.append(event(9))
        report = verify(directory)
        assert report.ok
        assert report.unsigned_tail == 0
        assert report.records == 4


class TestStateCache:
    def test_forged_state_is_not_trusted(self, log: Path) -> None:
        """state.json is MACed: an attacker's tree (size, range) is ignored and the log rescanned."""
        state = json.loads((log / "state.json").read_text())
        assert "mac" in state
        state["range"] = ["00" * 32]
        state["size"] = 1
        (log / "state.json").write_text(json.dumps(state))
        with _open(log) as writer:
            assert writer.size == N
            writer.append(event(0))
        assert verify(log, record_key=RECORD_KEY).ok


class TestOlderLogs:
    """Logs written before records carried MACs keep opening when a signed checkpoint covers them."""

    def _legacy(self, log: Path) -> None:
        write_lines(log, [forge_legacy(record_of(x)) for x in lines(log)])
        (log / "state.json").unlink()

    def test_covered_legacy_records_open_and_verify(self, log: Path) -> None:
        self._legacy(log)
        assert verify(log).ok
        assert verify(log, record_key=RECORD_KEY).ok
        with _open(log) as writer:
            writer.append(event(0))
        assert verify(log, record_key=RECORD_KEY).ok

    def test_an_uncovered_legacy_record_is_refused(self, log: Path) -> None:
        self._legacy(log)
        _append_forgery(log, "legacy-format")
        with pytest.raises(AuditIntegrityError, match="unauthentic"):
            _open(log)
        assert verify(log, record_key=RECORD_KEY).kind == "unauthentic"


def test_cli_verify_and_writer_refusal(log: Path, tmp_path: Path) -> None:
    """As a user runs it: `audit verify` exits 5 naming the record; a writing command exits 5, one line."""
    from guardrail.keys import Keyring

    ring_dir = tmp_path / "keys"
    ring = Keyring.create(ring_dir)
    ring.prepare("default", ["p-1"])  # a tenant key to rotate and a subject key to shred
    audit = tmp_path / "cli-log"
    with AuditLog.for_keyring(audit, ring) as writer:
        writer.append(event(0))

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "guardrail.cli", *map(str, args)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    assert cli("audit", "verify", audit, "--keyring", ring_dir).returncode == 0
    stored = lines(audit)
    fake = _fake_dpo(stored)
    write_lines(audit, [*stored, forge(fake)])
    for args in (("audit", "verify", audit), ("audit", "verify", audit, "--keyring", ring_dir)):
        done = cli(*args)
        assert done.returncode == 5, done.stderr
        assert "record 1" in done.stderr
        assert "Traceback" not in done.stderr
    keyring_before = (ring_dir / "keyring.json").read_bytes()
    done = cli("keys", "rotate", "--keyring", ring_dir, "--audit-log", audit)
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert "record 1" in done.stderr
    assert "unauthentic" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines(audit)) == 2
    # fail closed: the log is opened before the keyring changes, so nothing was rotated or shredded
    assert (ring_dir / "keyring.json").read_bytes() == keyring_before
    done = cli("keys", "shred", "--keyring", ring_dir, "--tenant", "default", "--audit-log", audit)
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert (ring_dir / "keyring.json").read_bytes() == keyring_before
    # positive control: with an honest log, the rotation happens and is recorded
    clean = tmp_path / "clean-log"
    done = cli("keys", "rotate", "--keyring", ring_dir, "--audit-log", clean)
    assert done.returncode == 0, done.stderr
    assert (ring_dir / "keyring.json").read_bytes() != keyring_before
    assert [record_of(x)["event"]["category"] for x in lines(clean)] == ["key.rotate"]


class TestShowFlagsWhatIsNotAuthentic:
    """`audit show` lists a forged record as NOT AUTHENTIC / unsigned, never like a real one, exits 5."""

    def _show(self, log: Path, *args: str) -> tuple[int, list[dict[str, object]], str]:
        from typer.testing import CliRunner

        from guardrail.audit.cli import audit_app

        result = CliRunner().invoke(audit_app, ["show", str(log), "--json", *args])
        rows = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
        return result.exit_code, rows, result.stderr

    def test_positive_control(self, log: Path) -> None:
        code, rows, _ = self._show(log)
        assert code == 0
        assert len(rows) == N
        assert {r["_verified"] for r in rows} == {"ok"}

    @pytest.mark.parametrize("how", sorted(FORGERIES))
    def test_forged_record_is_flagged(self, log: Path, how: str) -> None:
        _append_forgery(log, how)
        code, rows, stderr = self._show(log)
        assert code == 5
        assert [r["_verified"] for r in rows[:N]] == ["ok"] * N
        assert rows[N]["actor"] == {"ref": "dpo", "type": "user", "roles": ["dpo"]}
        assert rows[N]["_verified"] in {"unsigned", "NOT AUTHENTIC"}
        assert "not verified" in stderr

    def test_with_the_keyring_the_forgery_is_not_authentic(self, log: Path, tmp_path: Path) -> None:
        from typer.testing import CliRunner

        from guardrail.audit.cli import audit_app
        from guardrail.keys import Keyring

        ring_dir = tmp_path / "keys"
        ring = Keyring.create(ring_dir)
        audit = tmp_path / "ring-log"
        with AuditLog.for_keyring(audit, ring) as writer:
            for i in range(3):
                writer.append(event(i))
        stored = lines(audit)
        write_lines(audit, [*stored, forge(_fake_dpo(stored)), *stored[:0]])
        code, rows, _ = self._show(audit, "--keyring", str(ring_dir))
        assert code == 5
        assert [r["_verified"] for r in rows] == ["ok", "ok", "ok", "NOT AUTHENTIC"]
        table = CliRunner().invoke(
            audit_app, ["show", str(audit), "-k", str(ring_dir)], env={"COLUMNS": "200"}
        )
        assert table.exit_code == 5
        assert "NOT AUTHENTIC" in table.stdout
        assert "1 NOT AUTHENTIC record(s) listed" in table.stderr

    def test_records_after_a_forged_one_are_untrusted(self, log: Path) -> None:
        stored = lines(log)
        fake = _fake_dpo(stored[:10])
        write_lines(log, [*stored[:10], forge(fake), *stored[10:]])
        code, rows, _ = self._show(log)
        assert code == 5
        assert [r["_verified"] for r in rows[:10]] == ["ok"] * 10
        assert rows[10]["_verified"] != "ok"
        assert {r["_verified"] for r in rows[11:]} == {"untrusted"}
