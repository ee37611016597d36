"""The audit log on a real PostgreSQL server: concurrent writers in several processes, a writer killed
mid-batch, the writer role's missing privileges, a superuser's edit detected, export verified offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from _pg_worker import ORIGIN, RECORD_KEY, SEED, event
from pgcluster import PgLog
from pgcluster import spawn as run_worker

from guardrail.audit import AuditLog, AuditWriteError, iter_records, prove, verify, verify_proof
from guardrail.audit.pg import PgAuditLog, export, read_verifier_key
from guardrail.errors import ConfigError

WORKER = Path(__file__).with_name("_pg_worker.py")
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def open_log(url: str, **options: object) -> AuditLog:
    return AuditLog(url, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, **options)  # type: ignore[arg-type]


def spawn(*args: str) -> subprocess.Popen[str]:
    return run_worker(WORKER, *args)


def test_round_trip_prove_and_export_verifies_offline(pg: PgLog, tmp_path: Path) -> None:
    with open_log(pg.writer, checkpoint_every=10) as log:
        assert isinstance(log, PgAuditLog)
        assert "writer-secret" not in repr(log)
        ids = [log.append(event("w", i)) for i in range(25)]
        log.append(event("w", 99), sync=False)
    report = verify(pg.writer, record_key=RECORD_KEY)
    assert report.ok, report.message
    assert (report.records, report.covered, report.macs_checked) == (26, 26, True)
    # the auditor's read-only role verifies too, with the public key alone
    assert verify(pg.reader).ok
    assert [r["seq"] for r in iter_records(pg.reader)] == list(range(26))
    proof = prove(pg.reader, ids[7])
    assert verify_proof(proof, read_verifier_key(pg.reader))
    # the export is an ordinary file log: the same verifier, offline
    assert export(pg.reader, tmp_path / "evidence") == 26
    offline = verify(tmp_path / "evidence", record_key=RECORD_KEY)
    assert offline.ok, offline.message
    assert (offline.records, offline.checkpoints_verified >= 3) == (26, True)
    with pytest.raises(ConfigError, match="not empty"):
        export(pg.reader, tmp_path / "evidence")
    # reopening continues the same tree
    with open_log(pg.writer) as log:
        assert log.size == 26
        log.append(event("w", 100))
    assert verify(pg.writer, record_key=RECORD_KEY).records == 27


def test_four_writer_processes_one_total_order(pg: PgLog) -> None:
    open_log(pg.writer).close()  # the verifier key is stored before the race
    per_writer = 250
    children = [spawn("append", pg.writer, f"p{n}", str(per_writer)) for n in range(4)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert "done" in out
    report = verify(pg.reader, record_key=RECORD_KEY)
    assert report.ok, report.message
    assert report.records == 4 * per_writer
    records = list(iter_records(pg.reader))
    assert [r["seq"] for r in records] == list(range(4 * per_writer))  # no gap, no duplicate
    assert len({r["event_id"] for r in records}) == len(records)
    refs = [r["actor"]["ref"] for r in records]
    assert len(set(refs)) == 4 * per_writer  # every event exactly once
    writers = {ref.split("-")[0] for ref in refs}
    assert writers == {"p0", "p1", "p2", "p3"}
    # the writers interleaved (one order across processes, not one after another)
    first_of = {w: next(i for i, ref in enumerate(refs) if ref.startswith(w + "-")) for w in writers}
    last_of = {w: max(i for i, ref in enumerate(refs) if ref.startswith(w + "-")) for w in writers}
    assert (
        sum(first_of[a] < last_of[b] and first_of[b] < last_of[a] for a in writers for b in writers if a < b)
        >= 1
    )
    rows = pg.sql(
        "SELECT count(*), min(seq), max(seq), (SELECT next_seq FROM {s}.audit_head) FROM {s}.audit_records"
    )
    assert rows[0] == (1000, 0, 999, 1000)


def test_writer_killed_mid_batch_loses_nothing_acknowledged(pg: PgLog) -> None:
    open_log(pg.writer).close()
    child = spawn("loop", pg.writer)
    assert child.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(child.pid, signal.SIGKILL)  # three threads are mid-append: a batch is in flight
    rest, _ = child.communicate(timeout=30)
    acked += [x for x in rest.split("\n") if len(x) == 36]
    assert len(acked) >= 300
    report = verify(pg.reader, record_key=RECORD_KEY)
    assert report.ok, report.message  # no torn record in a database: the open transaction rolled back
    stored = {r["event_id"] for r in iter_records(pg.reader)}
    assert set(acked) <= stored
    # the next writer goes on from there, gap-free
    with open_log(pg.writer) as log:
        log.append(event("after", 0))
    after = verify(pg.reader, record_key=RECORD_KEY)
    assert after.ok
    assert after.records == len(stored) + 1


def test_writer_role_cannot_update_delete_or_truncate(pg: PgLog) -> None:
    with open_log(pg.writer) as log:
        log.append(event("w", 0))
        log.append(event("w", 1))
    conninfo = pg.writer.split("?")[0]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        s = f'"{pg.schema}"'
        for statement in (
            f"UPDATE {s}.audit_records SET line = line || ' ' WHERE seq = 0",
            f"DELETE FROM {s}.audit_records WHERE seq = 1",
            f"TRUNCATE {s}.audit_records",
            f"DELETE FROM {s}.audit_checkpoints",
            f"UPDATE {s}.audit_meta SET verifier_key = 'x'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        with pytest.raises(psycopg.errors.CheckViolation):  # the head never moves back
            conn.execute(f"UPDATE {s}.audit_head SET next_seq = 0")
        with pytest.raises(psycopg.errors.CheckViolation):  # a seq not allocated from the head
            conn.execute(f"INSERT INTO {s}.audit_records (seq, line) VALUES (50, '{{}}')")
        with conn.transaction():
            conn.execute(f"UPDATE {s}.audit_head SET next_seq = next_seq + 1")
            with pytest.raises(psycopg.errors.UniqueViolation):  # a duplicate seq
                conn.execute(f"INSERT INTO {s}.audit_records (seq, line) VALUES (0, '{{}}')")
            raise psycopg.Rollback
    # the triggers refuse the table owner too (only a superuser who disables them gets through)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        pg.sql("DELETE FROM {s}.audit_records WHERE seq = 0")
    assert verify(pg.reader, record_key=RECORD_KEY).ok


def test_superuser_alteration_is_detected(pg: PgLog) -> None:
    with open_log(pg.writer, checkpoint_every=10) as log:
        for i in range(30):
            log.append(event("w", i))
    line = str(pg.sql("SELECT line FROM {s}.audit_records WHERE seq = 17")[0][0])
    altered = line.replace('"OPERATIONS"', '"TREAT"')
    assert altered != line
    pg.tamper("UPDATE {s}.audit_records SET line = %s WHERE seq = 17", altered)  # triggers off
    report = verify(pg.reader)
    assert (report.ok, report.first_bad_index, report.kind) == (False, 17, "edited"), report.message
    # a writer refuses to append after a record it cannot authenticate
    pg.tamper("DELETE FROM {s}.audit_state")
    with pytest.raises(Exception, match=r"damaged|not authenticated|edited"):
        open_log(pg.writer).close()


def test_unreachable_server_fails_closed_and_recovers(pg: PgLog) -> None:
    log = open_log(pg.writer)
    try:
        log.append(event("w", 0))
        pg.cluster.stop()
        with pytest.raises(AuditWriteError) as info:
            log.append(event("w", 1))
        message = str(info.value)
        assert "127.0.0.1" in message
        assert "writer-secret" not in message
        pg.cluster.restart()
        log.append(event("w", 2))  # the same object, no restart of the process
    finally:
        log.close()
    records = list(iter_records(pg.reader))
    assert [r["actor"]["ref"] for r in records] == ["w-0", "w-2"]
    assert verify(pg.reader, record_key=RECORD_KEY).ok


def test_missing_schema_is_a_clear_error(cluster: object) -> None:
    from pgcluster import WRITER, WRITER_PASSWORD

    url = cluster.url(WRITER, WRITER_PASSWORD, schema="nothing_here")  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="guardrail db init"):
        open_log(url)


def test_cli_verify_and_export(pg: PgLog, tmp_path: Path) -> None:
    with open_log(pg.writer, checkpoint_every=5) as log:
        for i in range(12):
            log.append(event("w", i))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = [sys.executable, "-c", "from guardrail.cli import main; main()", "audit"]
    done = subprocess.run(
        [*run, "verify", pg.reader, "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["records"] == 12
    done = subprocess.run(
        [*run, "export", pg.reader, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "12 records" in done.stdout
    done = subprocess.run(
        [*run, "verify", str(tmp_path / "out")], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    # the same through GUARDRAIL_AUDIT_LOG-style env and a damaged log exits 5
    pg.tamper("DELETE FROM {s}.audit_records WHERE seq = 3")
    done = subprocess.run([*run, "verify", pg.reader], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 5, done.stderr
    assert "deleted" in done.stderr


def test_server_crash_loses_nothing_acknowledged(pg: PgLog) -> None:
    """The head lock is released at an asynchronous commit; appenders are told only after a synchronous
    barrier flushed the WAL. A server crash (``pg_ctl stop -m immediate``: no shutdown checkpoint, WAL
    replay at restart) mid-stream must keep every acknowledged record."""
    open_log(pg.writer).close()
    child = spawn("loop", pg.writer)
    assert child.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 200 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    pg.cluster.stop("immediate")
    try:
        rest, _ = child.communicate(timeout=30)  # its appends fail now: it stops
        acked += [x for x in rest.split("\n") if len(x) == 36]
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        pg.cluster.restart()
    assert len(acked) >= 200
    report = verify(pg.reader, record_key=RECORD_KEY)
    assert report.ok, report.message
    stored = {r["event_id"] for r in iter_records(pg.reader)}
    assert set(acked) <= stored
