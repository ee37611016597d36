"""Canary watch overhead: what ``gr.canaries()`` adds to a guarded retrieval, and the matcher's speed.

What is measured, in one process (a temporary keyring and audit log under ``--dir``):

* ``scan``: :meth:`CanaryMatcher.scan` of a ~1 KB clinical text that holds no canary (the common case),
  with ``--canaries`` canaries registered (default 100 notes: 600 planted values). Per call, p50/p95.
* ``retrieval``: a guarded top-5 retrieval (``hipaa-safe-harbor``, encrypted SimpleVectorStore, ~1 KB
  nodes annotated at ingestion, the clinician: released in clear, so every released node is scanned)
  timed with the watch on and off, alternating, paired per query (``--queries``, default 100). The
  watch's overhead = on - off of the same query; p50/p95, and the ratio of the p50s.

The corpus holds no canary, so nothing trips: this is the price of watching. It reports; it never fails.

Run it::

    .venv/bin/python benchmarks/canary_overhead.py [--queries 100] [--canaries 100] [--dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SEED = 20261202
TEXT = (
    "Progress note. The patient was seen in the cardiology clinic for follow-up of heart failure with "
    "reduced ejection fraction. She reports improved exercise tolerance and no orthopnea. Weight is stable. "
    "Blood pressure 118/72, heart rate 68. Lungs clear, no peripheral edema. Continue sacubitril-valsartan "
    "and metoprolol succinate; increase spironolactone to 25 mg daily after potassium check. "
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--canaries", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from guardrail import Guardrail
    from guardrail.access import Principal
    from guardrail.canaries import CanaryRegistry, make_canaries
    from guardrail.keys import Keyring
    from guardrail.llama_index.hashing import HashingEmbedding

    rng = random.Random(SEED)
    tmp = Path(tempfile.mkdtemp(dir=args.dir))
    ring = Keyring.create(tmp / "keys")
    started = time.perf_counter()
    make_canaries("note", args.canaries, tmp / "canaries.jsonl", keyring=ring, tenant="acme")
    make_seconds = time.perf_counter() - started
    matcher = CanaryRegistry(ring).matcher()
    text = (TEXT * 3)[:1024]
    scans = []
    for _ in range(2000):
        t = time.perf_counter()
        matcher.scan(text)
        scans.append((time.perf_counter() - t) * 1000)

    gr = Guardrail("hipaa-safe-harbor", keyring=ring, audit_log=tmp / "audit", tenant="acme")
    words = TEXT.split()
    docs = [Document(text=" ".join(rng.sample(words, len(words))) * 2) for _ in range(200)]
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=gr.storage_context(),
        transformations=[SentenceSplitter(chunk_size=1024), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=5))
    queries = [" ".join(rng.sample(words, 3)) for _ in range(args.queries)]
    on: list[float] = []
    off: list[float] = []
    watch = gr.canaries()
    with gr.acting_as(Principal("c1", ["clinician"], "treatment")):
        retriever.retrieve("warm up")
        for i, query in enumerate(queries):
            for watching in (True, False) if i % 2 else (False, True):
                watch.closed = not watching  # the hooks skip a closed watch: off without re-installing
                t = time.perf_counter()
                retriever.retrieve(query)
                (on if watching else off).append((time.perf_counter() - t) * 1000)
    watch.close()
    gr.close()
    overhead = [a - b for a, b in zip(on, off, strict=True)]
    result = {
        "canaries": args.canaries,
        "planted_values": len(matcher),
        "make_seconds": round(make_seconds, 2),
        "scan_1kb_ms_p50": round(statistics.median(scans), 3),
        "scan_1kb_ms_p95": round(_pct(scans, 0.95), 3),
        "retrieval_off_ms_p50": round(statistics.median(off), 3),
        "retrieval_on_ms_p50": round(statistics.median(on), 3),
        "overhead_ms_p50": round(statistics.median(overhead), 3),
        "overhead_ms_p95": round(_pct(overhead, 0.95), 3),
        "ratio_p50": round(statistics.median(on) / statistics.median(off), 3),
    }
    for key, value in result.items():
        print(f"{key:24} {value}")
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
