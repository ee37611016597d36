"""Compliance report over a large audit log: wall time and peak memory of ``guardrail report``.

What is measured: ``guardrail report LOG -o FILE`` run as a separate process (as a user runs it), over a
log of ``--records`` events (default 1,000,000) and over one a tenth that size. For each: the wall time
(Python start-up and the verification pass included) and the process's peak resident memory
(``ru_maxrss`` of the finished child). The report streams the log and aggregates into bounded counters, so
the peak memory should not grow with the log: the two runs show it. Target: under 30 s at 1M events.

The event mix is realistic: guarded retrievals by ~2,000 principals in 6 roles and 5 purposes (about 8%
denied, some partial), unguarded retrievals, re-identifications, dataset exports, key rotations and
shreds, erasures, over 90 days; ~1 KB stored per event. The logs are generated once
(``AuditLog.append(sync=False)``, checkpoints every 10,000 records) into ``--dir`` (default
``$TMPDIR/guardrail-report-bench``, reused when present; delete it to regenerate).

Run it::

    .venv/bin/python benchmarks/report_throughput.py [--records 1000000] [--format html] [--json]

It reports; it never fails (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guardrail.audit import AuditLog  # noqa: E402 - after the path set-up

TARGET_SECONDS = 30.0
SEED = bytes(range(32))
RECORD_KEY = bytes(range(2, 34))
ROLES = (("clinician", "TREAT"), ("nurse", "TREAT"), ("researcher", "HRESCH"), ("support", "OPERATIONS"),
         ("billing", "HPAYMT"), ("dpo", "LEGAL"))  # fmt: skip
POLICY = {"id": "hipaa-safe-harbor", "version": "1.0.0", "sha256": "ab" * 32}
START = datetime(2025, 1, 1, tzinfo=UTC)


def make_event(i: int, total: int) -> dict[str, Any]:
    """Event ``i`` of ``total``: mostly guarded retrievals, with every other category mixed in."""
    at = START + timedelta(days=90) * (i / total)
    occurred = f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"
    source = {"app": "guardrail@0.1.0", "component": "bench"}
    if i % 10_000 == 5_000:
        before = {"PERSON": 400 + i % 7, "DATE_TIME": 120, "EMAIL_ADDRESS": 30, "MEDICAL_RECORD_NUMBER": 25}
        return {
            "occurred_at": occurred,
            "event": {"category": "ft.export", "action": "C", "outcome": "success"},
            "source": source,
            "actor": {"ref": "svc-train", "type": "service"},
            "policy": POLICY,
            "resources": [{"type": "dataset", "id": f"chats-{i}"}],
            "dataset": {
                "id": f"chats-{i}", "input_sha256": "11" * 32, "output_sha256": "22" * 32, "records": 998,
                "input_records": 1000, "rejects": 2, "residual": i % 3, "findings_before": before,
                "findings_after": {"PERSON": i % 3}, "format": "jsonl-chat", "token_method": "vault",
                "manifest": {"file": f"chats-{i}.manifest.json", "sha256": "33" * 32, "key_id": "k1"},
            },
            "pii": {"detector": "presidio", "counts": before,
                    "operators": {"PERSON": "pseudonymize", "DATE_TIME": "generalize"}},
        }  # fmt: skip
    if i % 10_000 == 7_000:
        category, action = ("key.rotate", "U") if i % 20_000 else ("key.shred", "D")
        return {
            "occurred_at": occurred,
            "event": {"category": category, "action": action, "outcome": "success"},
            "source": source,
            "resources": [{"type": "key", "id": f"k-{i}", "labels": ["version-2"]}],
        }
    if i % 5_000 == 100:
        return {
            "occurred_at": occurred,
            "event": {"category": "dsar.erasure", "action": "D", "outcome": "success"},
            "source": source,
            "subjects": [f"{i:016x}"],
            "resources": [{"type": "key", "id": f"ks-{i}", "labels": ["destroyed"]}],
            "retrieval": {"deleted_nodes": 3, "deleted_records": 3},
        }
    role, purpose = ROLES[i % len(ROLES)]
    actor = {"ref": f"user-{(i * 7919) % 2003}", "type": "user", "roles": [role]}
    if i % 1_000 == 10:
        outcome = "success" if i % 3 else "denied"
        return {
            "occurred_at": occurred,
            "event": {"category": "reidentify", "action": "R", "outcome": outcome},
            "source": source,
            "actor": actor,
            "purpose": {"code": purpose},
            "policy": {
                **POLICY,
                "decision": "allow" if outcome == "success" else "deny",
                "rule_ids": ["r-reid"],
            },
            "resources": [{"type": "vault", "id": "vault-default"}],
            "pii": {"counts": {"PERSON": 1 + i % 3}},
            "subjects": [f"{i % 50_000:016x}"],
        }
    denied = role == "support" and i % 4 == 0
    unguarded = i % 997 == 0
    partial = not denied and i % 11 == 0
    decisions = ["deny"] if denied else (["allow", "deny"] if partial else ["allow", "allow"])
    profile = {"clinician": "none", "nurse": "limited"}.get(role, "redact")
    return {
        "occurred_at": occurred,
        "event": {
            "category": "rag.unguarded" if unguarded else "rag.retrieval",
            "action": "R",
            "outcome": "denied" if denied else "success",
        },
        "source": source,
        "actor": actor,
        "purpose": {"code": purpose},
        "policy": {**POLICY, "decision": "deny" if denied else ("partial" if partial else "allow"),
                   "rule_ids": ["support-no-phi"] if denied else ["clinician-treatment", "public-to-all"],
                   "redaction_profile": [profile], "prefilter": "none"},
        "subjects": [f"{(i * 31) % 50_000:016x}"],
        "resources": [{"type": "chunk", "id": f"n-{i}-{j}", "labels": ["phi"], "decision": d}
                      for j, d in enumerate(decisions)],
        "query": {"mac": "cd" * 16, "chars": 30 + i % 50},
        "retrieval": {"k": 2, "returned": decisions.count("allow"), "denied": decisions.count("deny"),
                      "redacted": 0 if profile == "none" else 1},
        "pii": {"detector": "presidio",
                "counts": {} if profile == "none" or denied else {"PERSON": 1 + i % 4, "DATE_TIME": i % 3}},
    }  # fmt: skip


def ensure_log(directory: Path, records: int) -> float | None:
    """Generate the log unless a complete one is there; return the seconds spent generating (or None)."""
    done = directory / "complete"
    if done.exists() and done.read_text() == str(records):
        return None
    if directory.exists():
        import shutil

        shutil.rmtree(directory)
    started = time.perf_counter()
    with AuditLog(
        directory, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=10_000, batch_records=4096
    ) as log:
        for i in range(records):
            log.append(make_event(i, records), sync=False)
            if i % 100_000 == 99_999:
                print(f"  generated {i + 1:,} events", file=sys.stderr, flush=True)
    done.write_text(str(records))
    return time.perf_counter() - started


def measure(log: Path, output: Path) -> dict[str, Any]:
    """Run ``guardrail report`` in a child process; its wall time, exit code and peak RSS."""
    cmd = [sys.executable, "-m", "guardrail.cli", "report", str(log), "-o", str(output), "--force"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    return {
        "log": str(log),
        "seconds": round(seconds, 2),
        "exit_code": os.waitstatus_to_exitcode(status),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "report_bytes": output.stat().st_size if output.exists() else 0,
        "message": stderr.strip().splitlines()[-1] if stderr.strip() else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="Events in the large log.")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "guardrail-report-bench",
        help="Where the logs live (generated once, then reused).",
    )
    parser.add_argument("--format", choices=("html", "md", "json"), default="html", help="Report format.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "target_seconds": TARGET_SECONDS,
        "runs": [],
    }
    for records in (args.records // 10, args.records):
        log = args.dir / f"log-{records}"
        generated = ensure_log(log, records)
        if generated is not None:
            print(f"generated {records:,} events in {generated:.1f}s", file=sys.stderr)
        run = measure(log, args.dir / f"report-{records}.{args.format}")
        run["records"] = records
        run["within_target"] = run["seconds"] < TARGET_SECONDS
        results["runs"].append(run)
    results["own_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    for run in results["runs"]:
        verdict = "ok" if run["within_target"] else "SLOWER THAN TARGET"
        print(
            f"{run['records']:>10,} events: {run['seconds']:6.2f} s, "
            f"peak RSS {run['peak_rss_mib']:6.1f} MiB, exit {run['exit_code']}, "
            f"report {run['report_bytes']:,} bytes ({verdict}; target < {TARGET_SECONDS:.0f} s)"
        )


if __name__ == "__main__":
    main()
