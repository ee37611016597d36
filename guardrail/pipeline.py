"""Batched detection over record streams, in-process or in N worker processes (order preserved).

Workers only detect; redaction happens in the parent, so pseudonyms are consistent across the whole
dataset and the output is identical whatever the number of jobs.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from guardrail.findings import Finding
from guardrail.policy import Policy

__all__ = ["detect_stream"]

_worker_detector: Any = None


def _init_worker(policy: Policy) -> None:
    global _worker_detector  # noqa: PLW0603 - one detector per worker process, by design
    from guardrail.core import _shared_detector

    _worker_detector = _shared_detector(policy)


def _detect_chunk(texts: list[str]) -> list[list[Finding]]:
    return _worker_detector.detect_batch(texts)  # type: ignore[no-any-return]


def _chunks(items: Iterable[Any], texts_of: Any, *, max_records: int, max_chars: int) -> Iterator[list[Any]]:
    """Records grouped into batches of at most ``max_records`` records or about ``max_chars`` characters.

    Small batches for worker processes keep both cores busy to the end (the last batch of a large
    one leaves the other worker idle); spaCy batches efficiently from a few dozen texts up.
    """
    chunk: list[Any] = []
    chars = 0
    for record in items:
        chunk.append(record)
        chars += sum(len(t) for t in texts_of(record))
        if len(chunk) >= max_records or chars >= max_chars:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


def detect_stream(
    records: Iterable[Any],
    texts_of: Any,
    *,
    policy: Policy,
    detector: Any = None,
    jobs: int = 1,
    batch_size: int = 64,
) -> Iterator[tuple[Any, list[list[Finding]]]]:
    """Yield ``(record, findings per text)`` for each record, in input order.

    ``texts_of(record)`` returns the record's texts. With ``jobs > 1`` detection runs in that many
    worker processes, each loading the model once.
    """
    if jobs <= 1:
        if detector is None:
            from guardrail.core import _shared_detector

            detector = _shared_detector(policy)
        for chunk in _chunks(records, texts_of, max_records=batch_size, max_chars=128_000):
            yield from _split(chunk, texts_of, detector.detect_batch)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(policy,)) as pool:
        pending = _chunks(records, texts_of, max_records=batch_size, max_chars=16_000)
        chunks: list[list[Any]] = []
        # the pool's feeder thread would read the whole input ahead: keep a few chunks in flight only
        in_flight = threading.BoundedSemaphore(jobs * 3)

        failure: list[BaseException] = []

        def texts_stream() -> Iterator[list[str]]:
            try:
                for chunk in pending:
                    in_flight.acquire()
                    chunks.append(chunk)
                    yield [t for r in chunk for t in texts_of(r)]
            except Exception as exc:  # noqa: BLE001 - re-raised below, in order, in the caller's thread
                failure.append(exc)

        for i, found in enumerate(pool.imap(_detect_chunk, texts_stream(), chunksize=1)):
            chunk = chunks[i]
            chunks[i] = []  # release memory as we go
            in_flight.release()
            yield from _regroup(chunk, texts_of, found)
        if failure:
            raise failure[0]


def _split(chunk: list[Any], texts_of: Any, detect: Any) -> Iterator[tuple[Any, list[list[Finding]]]]:
    found = detect([t for r in chunk for t in texts_of(r)])
    yield from _regroup(chunk, texts_of, found)


def _regroup(
    chunk: list[Any], texts_of: Any, found: list[list[Finding]]
) -> Iterator[tuple[Any, list[list[Finding]]]]:
    pos = 0
    for record in chunk:
        n = len(texts_of(record))
        yield record, found[pos : pos + n]
        pos += n
