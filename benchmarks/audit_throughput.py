"""Audit log throughput: appends with group commit, and verification, against the targets.

What is measured (one process, a fresh log directory under ``--dir`` or a temporary one):

* ``append_threads_sync``  ``--threads`` threads (default 8) each call ``AuditLog.append(event)`` with
                           ``sync=True``: every call returns only once its record is fsync'ed (group commit
                           shares one ``fdatasync`` among the records queued meanwhile). Target >= 5,000/s.
* ``append_single_async``  one thread calls ``append(event, sync=False)`` then ``flush()`` (batches of up to
                           512 records or 5 ms). Target >= 5,000/s.
* ``fdatasync_ms_p50``     the disk's median ``fdatasync`` (10 KB appends) in the same directory: every
                           synchronous append waits for one, shared by the records of its batch.
* ``verify``               :func:`guardrail.audit.verify` over the whole log (``--records``, default
                           200,000, written by the two runs above plus single-thread async appends):
                           leaves, seq, event ids, Merkle roots at every checkpoint, signatures
                           (checkpoints and the last seal: the public key alone). Target >= 100,000/s.
* ``verify_keyring``       the same with ``record_key=``: also every record's MAC. Target >= 100,000/s.

The event is a realistic ``rag.retrieval`` record (actor, purpose, policy, two resources, query MAC,
retrieval and PII counts), about 1.2 KB stored (with its MAC; a seal on each batch's last record).
Checkpoints every 1,000 records (the default). Timings use
``time.perf_counter``; each run also reports records per second of the process's CPU time
(``time.process_time``, all threads), the rate an idle core would give: on a machine shared with other
work the wall-clock rate measures the share of CPU it got as much as the code. The script prints
records/s and the ratio to each target; with ``--json`` one JSON object. It reports; it never fails
(exit status 0).

Run it::

    .venv/bin/python benchmarks/audit_throughput.py [--records 200000] [--threads 8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guardrail.audit import AuditLog, verify  # noqa: E402 - after the path set-up

TARGET_APPEND = 5_000.0
TARGET_VERIFY = 100_000.0
SEED = bytes(range(32))
RECORD_KEY = bytes(range(2, 34))


def make_event(i: int) -> dict[str, Any]:
    return {
        "event": {"category": "rag.retrieval", "action": "R", "outcome": "success"},
        "source": {"app": "guardrail@0.1.0", "component": "guard"},
        "actor": {"ref": f"user-{i % 97}", "type": "user", "roles": ["clinician"]},
        "purpose": {"code": "TREAT", "gdpr_basis": "6(1)(c)", "art9_basis": "9(2)(h)"},
        "policy": {
            "id": "hipaa-safe-harbor",
            "version": "1",
            "sha256": "ab" * 32,
            "decision": "allow",
            "rule_ids": ["r1", "r2"],
            "redaction_profile": "safe-harbor",
        },
        "subjects": [f"p-{i % 1009:05d}"],
        "resources": [
            {
                "type": "chunk",
                "id": f"n-{i}-{j}",
                "collection": "notes",
                "labels": ["phi"],
                "key_id": "9f2c4e1a",
            }
            for j in range(2)
        ],
        "query": {"mac": "cd" * 32, "chars": 42},
        "retrieval": {"k": 5, "returned": 5, "denied": 0, "redacted": 2},
        "pii": {"detector": "presidio", "counts": {"PERSON": 2}, "operators": {"PERSON": "replace"}},
    }


@dataclass
class Measurement:
    """One timed run."""

    name: str
    description: str
    target: float
    records: int = 0
    seconds: float | None = None
    cpu_seconds: float | None = None  # this process's CPU time (all threads): what the load cannot take
    error: str | None = None

    @property
    def per_s(self) -> float | None:
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.records / self.seconds

    @property
    def per_cpu_s(self) -> float | None:
        """Records per second of this process's CPU time: the rate on an otherwise idle core (for the
        CPU-bound runs; a synchronous append mostly waits for the disk, not the CPU)."""
        if self.cpu_seconds is None or self.cpu_seconds <= 0:
            return None
        return self.records / self.cpu_seconds

    @property
    def ratio(self) -> float | None:
        rate = self.per_s
        return None if rate is None else rate / self.target


@dataclass
class Report:
    """Everything the script measured."""

    python: str = platform.python_version()
    machine: str = platform.machine()
    cpus: int = os.cpu_count() or 1
    bytes_per_record: float | None = None
    load_average: float = field(default_factory=lambda: os.getloadavg()[0])
    fdatasync_ms_p50: float | None = None
    measurements: list[Measurement] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        for m, d in zip(self.measurements, data["measurements"], strict=True):
            d["per_s"] = m.per_s
            d["per_cpu_s"] = m.per_cpu_s
            d["ratio_to_target"] = m.ratio
        return json.dumps(data, indent=1)


def fdatasync_p50(directory: Path, samples: int = 50) -> float:
    """The median time of one ``fdatasync`` of a 10 KB append in ``directory`` (ms): the floor of a
    synchronous group commit, so the sync numbers can be read against the disk they ran on."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(samples):
            os.write(fd, b"x" * 10_000)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    return sorted(times)[len(times) // 2] * 1000


def run(measurement: Measurement, action: Any) -> None:
    try:
        started, cpu = time.perf_counter(), time.process_time()
        measurement.records = action()
        measurement.seconds = time.perf_counter() - started
        measurement.cpu_seconds = time.process_time() - cpu
    except Exception:  # noqa: BLE001 - a benchmark reports failures, it does not stop on them
        measurement.error = traceback.format_exc(limit=3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000, help="Records in the log that is verified.")
    parser.add_argument("--threads", type=int, default=8, help="Threads appending with sync=True.")
    parser.add_argument("--sync-records", type=int, default=20_000, help="Records appended by the threads.")
    parser.add_argument("--async-records", type=int, default=50_000, help="Records appended sync=False.")
    parser.add_argument(
        "--dir", type=Path, default=None, help="Where to create the log (default: a temp dir)."
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="audit-bench-", dir=args.dir))
    directory = base / "log"
    report = Report()
    events = [make_event(i) for i in range(1000)]
    try:
        report.fdatasync_ms_p50 = fdatasync_p50(base)
        log = AuditLog(directory, signing_key=SEED, record_key=RECORD_KEY)
        per_thread = max(args.sync_records // args.threads, 1)

        def threads_sync() -> int:
            def work(t: int) -> None:
                for i in range(per_thread):
                    log.append(events[(t * per_thread + i) % len(events)])

            workers = [threading.Thread(target=work, args=(t,)) for t in range(args.threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            return per_thread * args.threads

        def single_async() -> int:
            for i in range(args.async_records):
                log.append(events[i % len(events)], sync=False)
            log.flush()
            return args.async_records

        sync_m = Measurement(
            "append_threads_sync", f"{args.threads} threads, append(sync=True), group commit", TARGET_APPEND
        )
        async_m = Measurement("append_single_async", "1 thread, append(sync=False) + flush()", TARGET_APPEND)
        run(sync_m, threads_sync)
        run(async_m, single_async)
        report.measurements += [sync_m, async_m]
        remaining = args.records - log.size
        for i in range(max(remaining, 0)):  # fill up to --records (not timed)
            log.append(events[i % len(events)], sync=False)
        log.close()
        size = sum(p.stat().st_size for p in directory.glob("segment-*.jsonl"))
        verify_m = Measurement("verify", "verify(): leaves, seq, ids, roots, signatures", TARGET_VERIFY)

        def verify_all() -> int:
            result = verify(directory)
            if not result.ok:
                raise RuntimeError(f"the benchmark log does not verify: {result.message}")
            return result.records

        run(verify_m, verify_all)
        report.measurements.append(verify_m)
        keyed_m = Measurement(
            "verify_keyring", "verify(record_key=...): the same plus every record's MAC", TARGET_VERIFY
        )

        def verify_keyed() -> int:
            result = verify(directory, record_key=RECORD_KEY)
            if not result.ok:
                raise RuntimeError(f"the benchmark log does not verify: {result.message}")
            return result.records

        run(keyed_m, verify_keyed)
        report.measurements.append(keyed_m)
        if verify_m.records:
            report.bytes_per_record = size / verify_m.records
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(report.to_json())
        return
    print(
        f"python {report.python} on {report.machine}, {report.cpus} CPU(s), load {report.load_average:.2f} "
        f"at the start, {os.getloadavg()[0]:.2f} at the end; fdatasync p50 {report.fdatasync_ms_p50:.2f} ms "
        "(each synchronous append waits for one)"
    )
    if report.bytes_per_record:
        print(f"stored record: {report.bytes_per_record:.0f} bytes")
    for m in report.measurements:
        if m.error:
            print(f"{m.name:22} FAILED\n{m.error}")
            continue
        rate, ratio = m.per_s or 0.0, m.ratio or 0.0
        verdict = "meets" if ratio >= 1 else "MISSES"
        print(
            f"{m.name:22} {m.records:>8} records in {m.seconds or 0:6.2f}s = {rate:>9,.0f}/s  "
            f"({ratio:4.1f}x the {m.target:,.0f}/s target: {verdict}; {m.per_cpu_s or 0:>9,.0f}/CPU-s)  "
            f"{m.description}"
        )


if __name__ == "__main__":
    main()
