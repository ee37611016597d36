"""Storage overhead of the encrypted LlamaIndex stores: ingestion, and opening retrieved nodes.

What is measured, in one process, on the same nodes:

* ``ingest plain``      ``VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(), ...)``:
                        SimpleVectorStore + SimpleDocumentStore, nothing encrypted.
* ``ingest encrypted``  the same with ``Guardrail(policy="default", keyring=..., tenant="acme")
                        .storage_context()`` (EncryptedVectorStore over SimpleVectorStore, encrypted
                        document and index stores), on a fresh keyring in a temporary directory.

  Best of 3 runs each, fresh stores every run, runs interleaved (plain, encrypted, plain, ...). Before the
  timed runs one encrypted ingestion of the same nodes creates the tenant's and the data subjects' keys
  (``cold``, reported separately: creating a subject key writes and fsyncs ``keyring.json``, once per
  subject); the timed runs reuse those keys, as every ingestion after a subject's first does.
  overhead = encrypted / plain - 1 (target <= 15%).

* ``query``  ``vector_store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=5))`` on each
  store (median over the queries): the difference per node is the cost of opening a retrieved node at
  the store's release point, plus the tenant filter the encrypted store adds; the two are also timed
  apart (``inner query with tenant filter`` and ``_release`` of the top-5 result). ``retrieve`` does the
  same through ``index.as_retriever(similarity_top_k=5)`` (the plain index reads its nodes back from the
  document store; the encrypted one opens them from the vector store).

* ``open_text``  ``Sealer.open_text`` on one sealed node JSON, median of 10,000 calls, in µs (target
  <= 100 µs): a ~1 KB node JSON, the benchmark's node without its embedding, and the node as
  EncryptedVectorStore actually seals it (with its embedding inside, ~10 KB).

Nodes: ``--nodes`` (default 10,000) TextNodes of ~1,000 characters of seeded pseudo-clinical text, each
with a precomputed unit-norm embedding of dim 384 from a seeded NumPy generator, metadata
``{"subjects": [1-2 of --subjects patient ids], "classification": "phi"}`` and a source document (10
chunks per document). The embed model is ``MockEmbedding(embed_dim=384)``; it is never called (checked).

Run it::

    .venv/bin/python benchmarks/storage_overhead.py [--nodes 10000] [--subjects 1000] [--json] [--profile]

``--profile`` adds a cProfile of one encrypted ingestion (top functions by own time). It reports; it never
fails (exit status 0).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import random
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGET_OVERHEAD = 0.15
TARGET_OPEN_US = 100.0
DIM = 384
SEED = 20240607
RUNS = 3
QUERIES = 30
OPEN_CALLS = 10_000
TENANT = "acme"

WORDS = (
    "patient presented with acute chest pain shortness of breath history of hypertension diabetes mellitus "
    "type two medication metformin lisinopril aspirin daily follow up in clinic blood pressure heart rate "
    "respiratory rate temperature oxygen saturation laboratory results hemoglobin creatinine glucose "
    "potassium sodium imaging chest radiograph echocardiogram ejection fraction normal mild moderate severe "
    "assessment plan discharge admitted observation cardiology consult nursing notes allergies penicillin "
    "denies fever chills nausea vomiting abdominal pain reports fatigue dizziness family history smoking"
).split()


def log(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def make_nodes(count: int, subjects: int) -> list[Any]:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    rnd = random.Random(SEED)
    rng = np.random.default_rng(SEED)
    embeddings = rng.standard_normal((count, DIM))
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    nodes = []
    for i in range(count):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 1000:
            words.append(rnd.choice(WORDS))
        who = sorted({f"patient-{rnd.randrange(subjects):05d}" for _ in range(rnd.choice((1, 2)))})
        node = TextNode(
            id_=f"node-{i:06d}",
            text=" ".join(words)[:1000],
            metadata={"subjects": who, "classification": "phi"},
            embedding=embeddings[i].tolist(),
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{i // 10:05d}")
        nodes.append(node)
    return nodes


def build(nodes: Sequence[Any], storage: Any) -> tuple[float, Any]:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    t0 = time.perf_counter()
    index = VectorStoreIndex(list(nodes), storage_context=storage, embed_model=MockEmbedding(embed_dim=DIM))
    return time.perf_counter() - t0, index


def once(fn: Callable[[Any], object], arg: Any) -> float:
    """Seconds one call ``fn(arg)`` takes."""
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


def median_open_us(sealer: Any, payload: bytes, context: Any, calls: int) -> tuple[float, float, int]:
    """(median open µs, median seal µs, sealed text length) over ``calls`` calls."""
    token = sealer.seal_text(payload, context=context, subjects=["patient-00001"])
    opens, seals = [], []
    clock = time.perf_counter_ns
    for _ in range(calls):
        t0 = clock()
        sealer.open_text(token, context=context)
        opens.append(clock() - t0)
    for _ in range(min(calls, 2000)):
        t0 = clock()
        sealer.seal_text(payload, context=context, subjects=["patient-00001"])
        seals.append(clock() - t0)
    return statistics.median(opens) / 1e3, statistics.median(seals) / 1e3, len(token)


def run(n_nodes: int, n_subjects: int, profile: bool) -> dict[str, Any]:
    from llama_index.core.schema import QueryBundle, TextNode
    from llama_index.core.storage.storage_context import StorageContext
    from llama_index.core.vector_stores.types import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
    )

    from guardrail import Guardrail
    from guardrail.crypto import Context
    from guardrail.keys import Keyring

    report: dict[str, Any] = {"nodes": n_nodes, "subjects": n_subjects, "dim": DIM, "runs": RUNS}
    log(f"making {n_nodes:,} nodes")
    nodes = make_nodes(n_nodes, n_subjects)
    report["mean_text_chars"] = statistics.mean(len(n.text) for n in nodes)
    with tempfile.TemporaryDirectory(prefix="guardrail-bench-") as tmp:
        keyring = Keyring.create(Path(tmp) / "keyring")
        gr = Guardrail(policy="default", keyring=keyring, tenant=TENANT)

        log("cold encrypted ingestion (creates the tenant's and subjects' keys)")
        cold, _ = build(nodes, gr.storage_context())
        report["ingest_encrypted_cold_s"] = cold
        report["subject_keys_created"] = sum(1 for k in keyring.list_keys() if k.scope == "subject")

        plain_times, enc_times = [], []
        plain_index = enc_index = None
        for run_no in range(RUNS):
            log(f"run {run_no + 1}/{RUNS}: plain")
            secs, plain_index = build(nodes, StorageContext.from_defaults())
            plain_times.append(secs)
            log(f"run {run_no + 1}/{RUNS}: encrypted")
            secs, enc_index = build(nodes, gr.storage_context())
            enc_times.append(secs)
        assert plain_index is not None
        assert enc_index is not None
        # the embed model was not called: the stored vectors are the precomputed ones
        stored = plain_index.vector_store.data.embedding_dict[nodes[0].node_id]
        report["embed_model_called"] = stored != nodes[0].embedding
        report["ingest_plain_runs_s"] = plain_times
        report["ingest_encrypted_runs_s"] = enc_times
        report["ingest_plain_s"] = min(plain_times)
        report["ingest_encrypted_s"] = min(enc_times)
        report["ingest_overhead"] = min(enc_times) / min(plain_times) - 1

        if profile:
            log("profiling one encrypted ingestion")
            prof = cProfile.Profile()
            storage = gr.storage_context()
            prof.enable()
            build(nodes, storage)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
            report["profile"] = out.getvalue()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(40)
            report["profile_cumulative"] = out.getvalue()

        log("queries")
        plain_vs = plain_index.vector_store
        enc_vs = enc_index.vector_store
        rng = np.random.default_rng(SEED + 1)
        qs = rng.standard_normal((QUERIES, DIM))
        qs /= np.linalg.norm(qs, axis=1, keepdims=True)
        query_list = [q.tolist() for q in qs]
        top = 5

        def per_query(fn: Callable[[list[float]], object]) -> float:
            fn(query_list[0])  # warm-up
            return statistics.median(once(fn, q) for q in query_list)

        plain_q = per_query(
            lambda q: plain_vs.query(VectorStoreQuery(query_embedding=q, similarity_top_k=top))
        )
        enc_q = per_query(lambda q: enc_vs.query(VectorStoreQuery(query_embedding=q, similarity_top_k=top)))
        tenant_filter = MetadataFilters(
            filters=[MetadataFilter(key="tenant", value=TENANT, operator=FilterOperator.EQ)]
        )

        def inner(q: list[float]) -> Any:
            return enc_vs.inner.query(
                VectorStoreQuery(query_embedding=q, similarity_top_k=top, filters=tenant_filter)
            )

        inner_q = per_query(inner)
        results = [inner(q) for q in query_list]
        release = statistics.median(once(enc_vs._release, r) for r in results)
        # the ids match: both stores hold the same vectors
        same = [
            plain_vs.query(VectorStoreQuery(query_embedding=q, similarity_top_k=top)).ids
            == enc_vs.query(VectorStoreQuery(query_embedding=q, similarity_top_k=top)).ids
            for q in query_list[:5]
        ]
        plain_r = plain_index.as_retriever(similarity_top_k=top)
        enc_r = enc_index.as_retriever(similarity_top_k=top)
        plain_ret = per_query(lambda q: plain_r.retrieve(QueryBundle(query_str="q", embedding=q)))
        enc_ret = per_query(lambda q: enc_r.retrieve(QueryBundle(query_str="q", embedding=q)))
        report.update(
            {
                "top_k": top,
                "query_plain_ms": plain_q * 1e3,
                "query_encrypted_ms": enc_q * 1e3,
                "query_open_us_per_node": (enc_q - plain_q) / top * 1e6,
                "inner_query_with_tenant_filter_ms": inner_q * 1e3,
                "tenant_filter_ms": (inner_q - plain_q) * 1e3,
                "release_us_per_node": release / top * 1e6,
                "same_ids": all(same),
                "retrieve_plain_ms": plain_ret * 1e3,
                "retrieve_encrypted_ms": enc_ret * 1e3,
                "retrieve_open_us_per_node": (enc_ret - plain_ret) / top * 1e6,
            }
        )

        log(f"open_text: {OPEN_CALLS:,} calls per payload")
        sealer = enc_vs._sealer
        context = Context(store="vector", namespace="default", key="node-000000", tenant=TENANT)
        small = TextNode(
            id_="node-000000",
            text=nodes[0].text[:600],
            metadata={"subjects": ["patient-00001"], "classification": "phi"},
        )
        without = nodes[0].model_copy()
        without.embedding = None
        payloads = {
            "1kb_node_json": small.to_json().encode(),
            "node_without_embedding": without.to_json().encode(),
            "node_as_sealed_by_store": nodes[0].to_json().encode(),
        }
        report["open"] = {}
        for name, payload in payloads.items():
            open_us, seal_us, sealed_len = median_open_us(sealer, payload, context, OPEN_CALLS)
            report["open"][name] = {
                "payload_bytes": len(payload),
                "sealed_text_bytes": sealed_len,
                "open_us": open_us,
                "seal_us": seal_us,
            }
        report["persisted_bytes"] = persisted_sizes(plain_index, enc_index, Path(tmp))
    return report


def persisted_sizes(plain_index: Any, enc_index: Any, tmp: Path) -> dict[str, int]:
    """Bytes on disk after ``persist()`` of each storage context."""
    sizes = {}
    for name, index in (("plain", plain_index), ("encrypted", enc_index)):
        target = tmp / f"persist-{name}"
        index.storage_context.persist(persist_dir=str(target))
        sizes[name] = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    return sizes


def print_report(r: dict[str, Any]) -> None:
    print(
        f"{r['nodes']:,} nodes, ~{r['mean_text_chars']:.0f} chars of text each, embeddings of dim {r['dim']} "
        f"(precomputed; embed model called: {r['embed_model_called']}), {r['subject_keys_created']} data "
        f"subjects; python {platform.python_version()}, cpus {os.cpu_count()}"
    )
    print()
    print(f"{'ingestion (VectorStoreIndex)':<44}{'best of ' + str(r['runs']):>12}{'runs (s)':>28}")
    print("-" * 84)
    for label, key in (
        ("plain (StorageContext.from_defaults)", "plain"),
        ("encrypted (gr.storage_context)", "encrypted"),
    ):
        runs = ", ".join(f"{s:.2f}" for s in r[f"ingest_{key}_runs_s"])
        print(f"{label:<44}{r[f'ingest_{key}_s']:>11.2f}s{runs:>28}")
    print(f"{'encrypted, cold (creates the subject keys)':<44}{r['ingest_encrypted_cold_s']:>11.2f}s")
    verdict = "met" if r["ingest_overhead"] <= TARGET_OVERHEAD else "NOT met"
    print(
        f"overhead: {r['ingest_overhead'] * 100:+.1f}%  (encrypted/plain = "
        f"{r['ingest_encrypted_s'] / r['ingest_plain_s']:.2f}x; target <= {TARGET_OVERHEAD:.0%}: {verdict})"
    )
    print()
    k = r["top_k"]
    print(f"top-{k} query, median over {QUERIES} queries ({r['nodes']:,} nodes; same ids: {r['same_ids']})")
    print("-" * 84)
    print(f"{'vector_store.query plain':<44}{r['query_plain_ms']:>11.2f} ms")
    print(f"{'vector_store.query encrypted':<44}{r['query_encrypted_ms']:>11.2f} ms")
    print(f"{'  difference per node':<44}{r['query_open_us_per_node']:>11.1f} µs")
    print(
        f"{'  of which the tenant filter (per query)':<44}{r['tenant_filter_ms']:>11.2f} ms"
        f"   (inner query with filter {r['inner_query_with_tenant_filter_ms']:.2f} ms)"
    )
    print(f"{'  of which _release (open + parse), per node':<44}{r['release_us_per_node']:>11.1f} µs")
    print(f"{'retriever.retrieve plain':<44}{r['retrieve_plain_ms']:>11.2f} ms")
    print(f"{'retriever.retrieve encrypted':<44}{r['retrieve_encrypted_ms']:>11.2f} ms")
    print(f"{'  difference per node':<44}{r['retrieve_open_us_per_node']:>11.1f} µs")
    print()
    print(f"Sealer.open_text, median of {OPEN_CALLS:,} calls (target <= {TARGET_OPEN_US:.0f} µs)")
    print(f"{'payload':<28}{'bytes':>8}{'sealed text':>13}{'open µs':>10}{'seal µs':>10}")
    print("-" * 84)
    for name, o in r["open"].items():
        flag = "" if o["open_us"] <= TARGET_OPEN_US else "  (over target)"
        print(
            f"{name:<28}{o['payload_bytes']:>8,}{o['sealed_text_bytes']:>13,}{o['open_us']:>10.1f}"
            f"{o['seal_us']:>10.1f}{flag}"
        )
    sizes = r["persisted_bytes"]
    print()
    print(
        f"persisted: plain {sizes['plain'] / 1e6:.1f} MB, encrypted {sizes['encrypted'] / 1e6:.1f} MB "
        f"({sizes['encrypted'] / sizes['plain']:.2f}x)"
    )
    if "profile" in r:
        print()
        print("cProfile of one encrypted ingestion (by own time):")
        print(r["profile"])
        print(r["profile_cumulative"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=10_000, help="nodes to ingest (default 10,000)")
    parser.add_argument("--subjects", type=int, default=1000, help="distinct data subjects (default 1,000)")
    parser.add_argument("--profile", action="store_true", help="cProfile one encrypted ingestion")
    parser.add_argument("--json", action="store_true", help="Also print every number as one final JSON line.")
    args = parser.parse_args(argv)
    try:
        report = run(args.nodes, args.subjects, args.profile)
    except Exception:  # noqa: BLE001 - a benchmark reports its failure and exits 0
        traceback.print_exc()
        print("benchmark could not run (see the error above)")
        return 0
    print_report(report)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if not k.startswith("profile")}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
