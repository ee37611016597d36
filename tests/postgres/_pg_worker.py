"""A child process for the PostgreSQL tests (run as a script, never collected).

python _pg_worker.py append URL WRITER N      append N events from 2 threads (sync and not), print "done"
python _pg_worker.py loop URL                 append from 3 threads forever; print each durable event_id
                                               (the parent kills this with SIGKILL)
"""

from __future__ import annotations

import sys
import threading

from guardrail.audit import AuditLog

SEED = bytes(range(32))
RECORD_KEY = bytes(range(2, 34))
ORIGIN = "test.example/guardrail.audit/1"


def event(writer: str, i: int) -> dict[str, object]:
    return {
        "event": {"category": "rag.retrieval", "action": "R", "outcome": "success"},
        "actor": {"ref": f"{writer}-{i}", "type": "service", "roles": ["indexer"]},
        "purpose": {"code": "OPERATIONS"},
        "retrieval": {"k": 5, "returned": 5, "denied": 0, "redacted": 1},
    }


def append(url: str, writer: str, count: int) -> None:
    with AuditLog(url, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, checkpoint_every=100) as log:
        print("started", flush=True)

        def work(part: int) -> None:
            for i in range(part, count, 2):
                log.append(event(writer, i), sync=i % 3 != 0)

        threads = [threading.Thread(target=work, args=(p,)) for p in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    print("done", flush=True)


def loop(url: str) -> None:
    log = AuditLog(url, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, checkpoint_every=50)
    out = threading.Lock()

    def work(part: int) -> None:
        i = 0
        while True:
            event_id = log.append(event(f"loop{part}", i))  # returns once committed
            i += 1
            with out:
                sys.stdout.write(event_id + "\n")
                sys.stdout.flush()

    threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "append":
        append(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif mode == "loop":
        loop(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {mode}")
