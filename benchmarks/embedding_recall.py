"""Recall of a search over shielded embeddings (``guardrail.embeddings``), with and without exact re-rank.

What is measured, on one deterministic synthetic dataset:

* ``exact``        cosine top-k over the plain vectors: the ground truth.
* ``shielded``     cosine top-k of ``shield.transform_query(q)`` over ``shield.transform_batch(vectors)``
                   (what the vector database would compute), at strengths 0.5, 1 and 2.
* ``+ re-rank``    the same search fetching ``factor * k`` candidates (3x by default), re-ranked by exact
                   cosine similarity with ``OverfetchReranker`` (in the store, the exact vectors come from
                   the sealed nodes) and cut to k.

recall@k = |found top-k ∩ exact top-k| / k, averaged over the queries. The table also shows the mean
cosine between each stored vector's exact and shielded directions (how far the noise moves a vector: the
lower, the more it hides).

The dataset (``--seed``) imitates the neighbourhood structure of sentence embeddings: 50 topics x 10
subtopics, each vector a normalised mix of its subtopic direction and its own noise with a per-vector
spread, so a document's nearest neighbours have cosine ~0.5-0.8 and unrelated ones ~0. Queries are drawn
the same way and are not in the collection. This is a proxy: recall on real embeddings depends on how
close their neighbours crowd, so measure on your own data before choosing a strength. The shield's noise
seeds come from a seeded generator so runs are reproducible (production uses ``os.urandom``).

Run it::

    .venv/bin/python benchmarks/embedding_recall.py [--n 10000] [--dim 384] [--queries 200] [--json]

It reports; it never fails (exit status 0).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from guardrail.embeddings import EmbeddingShield, OverfetchReranker

Matrix = npt.NDArray[np.float64]

STRENGTHS = (0.5, 1.0, 2.0)
SEED = 20240607


@dataclass(frozen=True)
class Profile:
    """How a synthetic collection crowds: topics x subtopics, and each vector's spread around its subtopic."""

    name: str
    topics: int
    subtopics: int
    spread: tuple[float, float]
    description: str


PROFILES = (
    Profile("clustered", 50, 10, (0.5, 1.3), "500 subtopics of ~20 documents, spreads vary"),
    Profile("crowded", 20, 5, (0.9, 1.1), "100 subtopics of ~100 documents, equal spreads"),
)


def _normalise(m: Matrix) -> Matrix:
    out: Matrix = m / np.linalg.norm(m, axis=-1, keepdims=True)
    return out


def synthetic_embeddings(
    profile: Profile, n: int, dim: int, queries: int, *, seed: int = SEED
) -> tuple[Matrix, Matrix]:
    """``n`` collection vectors and ``queries`` query vectors, unit-norm, clustered (topics > subtopics)."""
    rng = np.random.default_rng(seed)
    count = profile.topics * profile.subtopics
    topics = _normalise(rng.standard_normal((profile.topics, dim)))
    subtopics = _normalise(
        np.repeat(topics, profile.subtopics, axis=0) + _normalise(rng.standard_normal((count, dim)))
    )

    def draw(size: int) -> Matrix:
        which = rng.integers(0, count, size=size)
        spread = rng.uniform(*profile.spread, size=(size, 1))
        return _normalise(subtopics[which] + spread * _normalise(rng.standard_normal((size, dim))))

    return draw(n), draw(queries)


def top_k(queries: Matrix, collection: Matrix, k: int) -> npt.NDArray[np.int64]:
    """Indices of the k most cosine-similar collection vectors per query, best first."""
    sims = _normalise(queries) @ _normalise(collection).T
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(sims, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    """Mean fraction of each query's exact top-k found."""
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def _rerank(
    reranker: OverfetchReranker, queries: Matrix, collection: Matrix, fetched: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.int64]:
    return np.asarray(
        [
            [r.item for r in reranker.rerank(q, [(int(i), collection[i]) for i in cand], k)]
            for q, cand in zip(queries, fetched, strict=True)
        ]
    )


def run_profile(
    profile: Profile, n: int, dim: int, n_queries: int, k: int, factors: Sequence[int]
) -> dict[str, Any]:
    collection, queries = synthetic_embeddings(profile, n, dim, n_queries)
    truth = top_k(queries, collection, k)
    exact_sims = queries @ collection.T
    truth_sims = np.take_along_axis(exact_sims, truth, axis=1)
    entropy = random.Random(SEED).randbytes  # reproducible noise seeds, for the benchmark only
    key = bytes(range(32))
    rows = []
    for strength in STRENGTHS:
        shield = EmbeddingShield(key, strength=strength, entropy=entropy)
        stored = np.asarray(shield.transform_batch(collection.tolist()))
        shielded_q = np.asarray([shield.transform_query(q) for q in queries.tolist()])
        row: dict[str, Any] = {
            "strength": strength,
            "recall": recall(top_k(shielded_q, stored, k), truth),
            # how far the noise moves a stored vector's direction (the lower, the more it hides)
            "cos_exact_vs_stored": float(np.mean(np.sum(_normalise(stored) * collection, axis=1))),
        }
        for factor in factors:
            reranker = OverfetchReranker(factor=factor)
            fetched = top_k(shielded_q, stored, reranker.overfetch(k))
            row[f"recall_rerank_{factor}x"] = recall(
                _rerank(reranker, queries, collection, fetched, k), truth
            )
        rows.append(row)
    return {
        "profile": profile.name,
        "description": profile.description,
        "neighbour_cos_top1": float(truth_sims[:, 0].mean()),
        "neighbour_cos_topk": float(truth_sims[:, -1].mean()),
        "abs_cos_any_pair": float(np.abs(exact_sims).mean()),
        "rows": rows,
    }


def timings(dim: int, k: int, factor: int) -> dict[str, float]:
    """Per-call costs: transforming one vector (as ingestion does, node by node) and one re-rank."""
    rng = np.random.default_rng(SEED)
    vectors = _normalise(rng.standard_normal((1000, dim))).tolist()
    shield = EmbeddingShield(bytes(range(32)))
    t0 = time.perf_counter()
    for v in vectors:
        shield.transform(v)
    transform_us = (time.perf_counter() - t0) / len(vectors) * 1e6
    t0 = time.perf_counter()
    shield.transform_batch(vectors)
    batch_us = (time.perf_counter() - t0) / len(vectors) * 1e6
    reranker = OverfetchReranker(factor=factor)
    candidates = [(i, vectors[i]) for i in range(reranker.overfetch(k))]
    t0 = time.perf_counter()
    for q in vectors[:200]:
        reranker.rerank(q, candidates, k)
    rerank_us = (time.perf_counter() - t0) / 200 * 1e6
    return {"transform_us": transform_us, "transform_batch_us": batch_us, "rerank_us": rerank_us}


def print_report(report: dict[str, Any]) -> None:
    k, factors = report["k"], report["overfetch"]
    print(
        f"{report['n']:,} unit vectors of dim {report['dim']}, {report['queries']} queries (not in the "
        f"collection), seed {report['seed']}; synthetic, a proxy for real embeddings"
    )
    for prof in report["profiles"]:
        print()
        print(
            f"profile {prof['profile']}: {prof['description']}; exact neighbour cosine top-1 "
            f"{prof['neighbour_cos_top1']:.2f}, top-{k} {prof['neighbour_cos_topk']:.2f}, "
            f"any pair |cos| {prof['abs_cos_any_pair']:.2f}"
        )
        header = (
            f"{'strength':>8}  {f'recall@{k}':>10}"
            + "".join(f"  {f'{f}x + re-rank':>14}" for f in factors)
            + f"  {'cos(exact, stored)':>18}"
        )
        print(header)
        print("-" * len(header))
        for r in prof["rows"]:
            print(
                f"{r['strength']:>8.1f}  {r['recall']:>10.3f}"
                + "".join(f"  {r[f'recall_rerank_{f}x']:>14.3f}" for f in factors)
                + f"  {r['cos_exact_vs_stored']:>18.3f}"
            )
    t = report["timings"]
    print()
    print(
        f"cost: transform {t['transform_us']:.1f} µs per vector one by one ({t['transform_batch_us']:.1f} µs "
        f"in a batch of 1,000, list conversion included); re-rank of {k * factors[0]} candidates "
        f"{t['rerank_us']:.0f} µs per query"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=10_000, help="collection size (default 10,000)")
    parser.add_argument("--dim", type=int, default=384, help="embedding dimension (default 384)")
    parser.add_argument("--queries", type=int, default=200, help="number of queries (default 200)")
    parser.add_argument("--k", type=int, default=10, help="results per query (default 10)")
    parser.add_argument(
        "--overfetch", default="3,5", help="over-fetch factors to re-rank with, comma-separated (default 3,5)"
    )
    parser.add_argument("--json", action="store_true", help="Also print every number as one final JSON line.")
    args = parser.parse_args(argv)
    try:
        factors = [int(f) for f in str(args.overfetch).split(",") if f.strip()]
        report: dict[str, Any] = {
            "n": args.n,
            "dim": args.dim,
            "queries": args.queries,
            "k": args.k,
            "overfetch": factors,
            "seed": SEED,
            "python": platform.python_version(),
            "profiles": [run_profile(p, args.n, args.dim, args.queries, args.k, factors) for p in PROFILES],
            "timings": timings(args.dim, args.k, factors[0]),
        }
    except Exception:  # noqa: BLE001 - a benchmark reports its failure and exits 0
        traceback.print_exc()
        print("benchmark could not run (see the error above)")
        return 0
    print_report(report)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
