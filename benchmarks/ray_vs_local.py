"""Dataset redaction throughput: the Ray engine (local Ray, 2 CPUs) versus the local engine (``--jobs 2``).

What is measured (in this one process, on the same input, one after the other):

* ``local``  ``redact_file(..., engine="local", jobs=2)``: detection in two worker processes, redaction here.
* ``ray``    ``redact_file(..., engine="ray", jobs=2)`` on a local Ray started with ``num_cpus=2``: two
             actors detect, redact and re-scan.

Both timings are whole runs as ``guardrail redact`` does them: reading, worker start-up and model loads,
detection, redaction with keyed pseudonyms (the ``gdpr`` pack), the re-scan, the signed manifest and the
atomic publish. Starting Ray itself (``ray.init``, once per process) is timed apart and shown as well.
The input is a chat-format JSONL (system, user and assistant turns) of about ``--mb`` million characters,
built deterministically (fixed seed) from the development corpora ``../shared/eval/*.jsonl`` (or
guardrail's bundled sample data). The script prints chars/s (characters of the selected texts) of both
engines, the ratio ray/local (target >= 0.75: within 25%), and checks that both outputs are identical.
It reports; it never fails (exit status 0).

Run it::

    .venv/bin/python benchmarks/ray_vs_local.py [--mb 5] [--policy gdpr]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""  # no network: tldextract keeps its bundled list

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from detection_throughput import _corpus_texts  # noqa: E402 - after the path and environment set-up

SEED = 20240601
TARGET = 0.75  # Ray within 25% of the local engine


def build_chat(path: Path, total_chars: int, *, seed: int = SEED) -> int:
    """Write chat records (a system turn, then user and assistant turns from the corpora); their size."""
    texts, _ = _corpus_texts()
    rng = random.Random(seed)
    written = 0
    with path.open("w", encoding="utf-8") as f:
        i = 0
        while written < total_chars:
            user = " ".join(rng.choice(texts) for _ in range(rng.randint(1, 4)))
            assistant = " ".join(rng.choice(texts) for _ in range(rng.randint(1, 3)))
            record = {
                "id": i,
                "messages": [
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": assistant},
                ],
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += len(user) + len(assistant)
            i += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=5.0, help="million characters of selected text")
    parser.add_argument("--policy", default="gdpr", help="policy pack (default: gdpr, keyed pseudonyms)")
    args = parser.parse_args(argv)

    import ray

    from guardrail.datasets.run import redact_file
    from guardrail.keys import Keyring

    with tempfile.TemporaryDirectory(prefix="guardrail-ray-bench-") as tmp:
        work = Path(tmp)
        src = work / "chat.jsonl"
        chars = build_chat(src, int(args.mb * 1_000_000))
        keyring = Keyring.create(work / "keys")
        print(f"input: {src.stat().st_size / 1e6:.1f} MB chat JSONL, {chars:,} chars of user/assistant text")
        print(f"policy: {args.policy}; CPUs on this machine: {os.cpu_count()}")

        results: dict[str, Any] = {}
        started = time.perf_counter()
        local = redact_file(src, work / "local.jsonl", keyring=keyring, policy=args.policy, jobs=2)
        results["local"] = time.perf_counter() - started

        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        ray_init = time.perf_counter() - started
        started = time.perf_counter()
        on_ray = redact_file(
            src, work / "ray.jsonl", keyring=keyring, policy=args.policy, engine="ray", jobs=2
        )
        results["ray"] = time.perf_counter() - started
        ray.shutdown()

        identical = local.output.read_bytes() == on_ray.output.read_bytes()
        n = local.chars
        for name, seconds in results.items():
            print(f"{name:>6}: {seconds:7.1f} s  {n / seconds:10,.0f} chars/s")
        ratio = results["local"] / results["ray"]
        with_init = results["local"] / (results["ray"] + ray_init)
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"ray.init: {ray_init:.1f} s (once per process)")
        print(f"ray / local: {ratio:.2f} ({verdict} the target >= {TARGET}); {with_init:.2f} with ray.init")
        print(f"outputs identical: {identical}; records {local.manifest.output_records}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
