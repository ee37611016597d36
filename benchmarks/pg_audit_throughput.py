"""PostgreSQL audit log throughput against the file log, and verification speed (one run, ratios).

What is measured (a private PostgreSQL cluster started for the run: initdb + pg_ctl in a temporary
directory, 127.0.0.1, ``fsync`` and ``synchronous_commit`` on, as the tests use):

* ``append_file``  2 processes x 4 threads (8 threads) append to one file log directory, each call
                   ``append(event, sync=True)``: it returns once the record is fdatasync'ed (group commit).
* ``append_pg``    the same 2 x 4 threads on one PostgreSQL log (the writer role over TCP): each call
                   returns once its transaction committed. Targets: >= 3,000 events/s and >= 0.5x the
                   file log.
* ``append_*_async``  the same 8 threads with ``sync=False`` and a ``flush()`` at the end (batches of up
                   to 512 records): what the backends absorb when callers do not wait one by one.
* ``verify_pg``    :func:`guardrail.audit.verify` of the PostgreSQL log (``--records`` total, default
                   100,000): a consistent snapshot exported to a temporary file log, then the file
                   verifier (leaves, seq, ids, roots, signatures). Target >= 50,000 records/s.
* ``verify_pg_keyring``  the same with ``record_key=`` (every record's MAC too).

The event is the realistic ``rag.retrieval`` record of ``benchmarks/audit_throughput.py``. The machine
load (``os.getloadavg``) is printed with the numbers: this host is shared. It reports; it never fails.

Run it::

    .venv/bin/python benchmarks/pg_audit_throughput.py [--per-thread 1500] [--records 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "postgres"))
sys.path.insert(0, str(REPO / "benchmarks"))

from audit_throughput import RECORD_KEY, SEED, make_event  # noqa: E402 - after the path set-up

from guardrail.audit import AuditLog, verify  # noqa: E402

TARGET_APPEND = 3_000.0
TARGET_RATIO = 0.5
TARGET_VERIFY = 50_000.0
PROCESSES = 2
THREADS = 4


def child(location: str, per_thread: int, sync: bool) -> None:
    """One writer process: 4 threads, each ``per_thread`` appends after "go" (then a flush)."""
    with AuditLog(location, signing_key=SEED, record_key=RECORD_KEY) as log:
        log.append(make_event(0))  # connected and caught up before the clock starts
        print("ready", flush=True)
        sys.stdin.readline()
        start = time.monotonic()

        def work(t: int) -> None:
            for i in range(per_thread):
                log.append(make_event(t * per_thread + i), sync=sync)
            log.flush()

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = time.monotonic()
    print(json.dumps({"start": start, "end": end}), flush=True)


def run_writers(location: str, per_thread: int, *, sync: bool = True) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", location, "--per-thread", str(per_thread)]
            + ([] if sync else ["--async"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"writer did not start: {line!r}")
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    spans = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        spans.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    return PROCESSES * THREADS * per_thread / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-thread", type=int, default=1500)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--async", dest="async_", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.per_thread, not args.async_)
        return

    from pgcluster import WRITER, WRITER_PASSWORD, Cluster

    from guardrail.db.schema import init

    results: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count()}
    cluster = Cluster()
    workdir = Path(tempfile.mkdtemp(prefix="guardrail-bench-"))
    try:
        cluster.start()
        cluster.setup_roles_and_db()
        init(cluster.admin_url("guardrail") + "&schema=bench", writer=WRITER)
        pg = cluster.url(WRITER, WRITER_PASSWORD, schema="bench")
        file_log = workdir / "audit"
        AuditLog(file_log, signing_key=SEED, record_key=RECORD_KEY).close()
        AuditLog(pg, signing_key=SEED, record_key=RECORD_KEY).close()
        results["append_file"] = run_writers(str(file_log), args.per_thread)
        results["append_pg"] = run_writers(pg, args.per_thread)
        results["ratio_pg_to_file"] = results["append_pg"] / results["append_file"]
        results["append_file_async"] = run_writers(str(file_log), args.per_thread, sync=False)
        results["append_pg_async"] = run_writers(pg, args.per_thread, sync=False)
        # fill up to --records with asynchronous appends (batched), then verify
        with AuditLog(pg, signing_key=SEED, record_key=RECORD_KEY) as log:
            for i in range(max(0, args.records - log.size)):
                log.append(make_event(i), sync=False)
        start = time.perf_counter()
        report = verify(pg)
        seconds = time.perf_counter() - start
        results["verify_pg"] = report.records / seconds
        results["verify_ok"] = report.ok
        results["records"] = report.records
        start = time.perf_counter()
        report = verify(pg, record_key=RECORD_KEY)
        results["verify_pg_keyring"] = report.records / (time.perf_counter() - start)
        results["load_after"] = os.getloadavg()
    finally:
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results))
        return
    print(f"cpus {results['cpus']}, load average before {results['load_before']}")
    print(f"load average after {results['load_after']}")
    rows = [
        ("append_file (2 procs x 4 threads, sync)", results["append_file"], None),
        ("append_pg   (2 procs x 4 threads, sync)", results["append_pg"], TARGET_APPEND),
        ("append_file_async (sync=False, flush)", results["append_file_async"], None),
        ("append_pg_async   (sync=False, flush)", results["append_pg_async"], TARGET_APPEND),
        ("verify_pg   (export + verify)", results["verify_pg"], TARGET_VERIFY),
        ("verify_pg_keyring (+ every MAC)", results["verify_pg_keyring"], TARGET_VERIFY),
    ]
    for name, value, target in rows:
        ratio = f"  {value / target:.2f}x target {target:,.0f}/s" if target else ""
        print(f"{name:44s} {value:12,.0f}/s{ratio}")
    print(
        f"pg / file append ratio {results['ratio_pg_to_file']:.2f} (target >= {TARGET_RATIO}); "
        f"verified {results['records']:,} records, ok={results['verify_ok']}"
    )


if __name__ == "__main__":
    main()
