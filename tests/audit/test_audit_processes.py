"""Several processes on one log, a writer killed mid-append, and a write that fails for real (a file-size
limit, which the kernel enforces even for root): gap-free, nothing acknowledged is lost, fail closed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _audit_helpers import RECORD_KEY, SEED, event, lines

from guardrail.audit import AuditLog, iter_records, verify

WORKER = Path(__file__).with_name("_audit_worker.py")
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_threads_and_processes_share_one_log(tmp_path: Path) -> None:
    """8 threads here and 2 child processes append at the same time: exact count, gap-free, verified."""
    per_thread, per_process = 150, 400
    AuditLog(
        tmp_path, signing_key=SEED, record_key=RECORD_KEY
    ).close()  # create it (audit.pub) before the children race
    children = [spawn("append", str(tmp_path), str(per_process)) for _ in range(2)]
    try:
        for child in children:  # both are appending before the threads start
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "started", child.stderr.read() if child.stderr else ""
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=100) as log:

            def work(t: int) -> None:
                for i in range(per_thread):
                    log.append(event(t * 1000 + i))

            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for child in children:
            _, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate(timeout=10)
    total = 8 * per_thread + 2 * per_process
    report = verify(tmp_path)
    assert report.ok, report.message
    assert report.records == total
    assert report.covered == total
    records = list(iter_records(tmp_path))
    assert [r["seq"] for r in records] == list(range(total))
    assert len({r["event_id"] for r in records}) == total
    actors = [r["actor"]["ref"] for r in records]
    assert sum(a.startswith("proc-") for a in actors) == 2 * per_process
    # the processes really interleaved with the threads
    first_thread = next(i for i, a in enumerate(actors) if a.startswith("user-"))
    last_process = max(i for i, a in enumerate(actors) if a.startswith("proc-"))
    assert first_thread < last_process


def test_writer_killed_mid_append_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """SIGKILL a writer in a loop: every acknowledged record is there, at most a torn tail, verify passes."""
    log_dir, acks = tmp_path / "log", tmp_path / "acks"
    acks.touch()
    child = spawn("loop", str(log_dir), str(acks))
    try:
        deadline = time.monotonic() + 30
        while len(acks.read_text().splitlines()) < 200:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child did not append in time"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    acknowledged = [line for line in acks.read_text().splitlines() if len(line) == 36]
    report = verify(log_dir)
    assert report.ok, report.message
    assert report.kind in (None, "torn-tail")
    assert len(report.torn_tail) <= 1
    present = {r["event_id"] for r in iter_records(log_dir)}
    assert set(acknowledged) <= present
    assert report.records >= len(acknowledged)
    # and the log goes on: a new writer continues the sequence after the crash
    with AuditLog(log_dir, signing_key=SEED, record_key=RECORD_KEY) as log:
        log.append(event(0))
    after = verify(log_dir)
    assert after.ok
    assert after.records == report.records + 1
    assert after.covered == after.records


def test_a_failing_write_raises_and_is_rolled_back(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes write() fail mid-batch: the caller gets AuditWriteError, the partial bytes are
    rolled back (no torn record), and the log works again once the limit is lifted."""
    child = spawn("fsize", str(tmp_path))
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["error"] == "AuditWriteError"
    acked = result["acked"]
    assert 5 <= len(acked) - 1 <= 10  # the writes that fitted under the limit, then the failure
    assert result["records_during"] == len(acked) - 1
    assert result["torn_during"] == 0
    report = verify(tmp_path)
    assert report.ok, report.message
    assert report.kind is None
    stored = [json.loads(x)["event_id"] for x in lines(tmp_path)]
    assert stored == acked  # exactly the acknowledged records, in order: the failed one is not there
