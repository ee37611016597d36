"""A child process for the audit tests (run as a script, never collected).

python _audit_worker.py append DIR N         append N events (sync), print "started" first, then close
python _audit_worker.py loop DIR ACKS        append forever; after each durable append, add its
                                              event_id to ACKS (the parent kills this with SIGKILL)
python _audit_worker.py fsize DIR            append under RLIMIT_FSIZE until a write fails; print JSON
"""

from __future__ import annotations

import json
import resource
import signal
import sys

from guardrail.audit import AuditLog, AuditWriteError, verify

SEED = bytes(range(32))
RECORD_KEY = bytes(range(2, 34))
EVENT = {
    "event": {"category": "rag.retrieval", "action": "R", "outcome": "success"},
    "actor": {"ref": "worker", "type": "service", "roles": ["indexer"]},
    "purpose": {"code": "OPERATIONS"},
    "retrieval": {"k": 5, "returned": 5, "denied": 0, "redacted": 1},
}


def append(directory: str, count: int) -> None:
    with AuditLog(directory, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=100) as log:
        print("started", flush=True)
        for i in range(count):
            log.append({**EVENT, "actor": {"ref": f"proc-{i}", "type": "service"}})


def loop(directory: str, acks: str) -> None:
    log = AuditLog(directory, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=50)
    with open(acks, "a", encoding="utf-8") as ack:
        while True:
            event_id = log.append(EVENT)  # returns once durable
            ack.write(event_id + "\n")
            ack.flush()  # the page cache survives SIGKILL; no fsync needed for the test


def fsize(directory: str) -> None:
    log = AuditLog(directory, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=10_000)
    acked = [log.append(EVENT) for _ in range(5)]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    segment = f"{directory}/segment-000001.jsonl"
    with open(segment, "rb") as f:
        size = len(f.read())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1500, hard))  # about three more records fit
    error = None
    try:
        for _ in range(100):
            acked.append(log.append(EVENT))
    except AuditWriteError as exc:
        error = type(exc).__name__
    report_during = verify(directory)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    acked.append(log.append(EVENT))  # the log recovered: the failed batch was rolled back
    log.close()
    print(
        json.dumps(
            {
                "error": error,
                "acked": acked,
                "records_during": report_during.records,
                "torn_during": len(report_during.torn_tail),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    mode, directory = sys.argv[1], sys.argv[2]
    if mode == "append":
        append(directory, int(sys.argv[3]))
    elif mode == "loop":
        loop(directory, sys.argv[3])
    elif mode == "fsize":
        fsize(directory)
    else:
        raise SystemExit(f"unknown mode {mode}")
