"""Every report from the audit log of ``guardrail demo`` (a fresh run, as from a fresh clone): the demo's
own report.html renders in Chromium without errors, and the activity, ROPA, DSAR and disclosure reports
are produced in every format from the same log, with the demo's datasets in them and no sample PII."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _chromium import AVAILABLE, render

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / "guardrail" / "data"
# values the bundled samples contain (checked below) and no report may
SAMPLE_PII = [
    "Harold Finch",
    "Lucia Moreno",
    "Olivia Bennett",
    "078-05-1120",
    "88412095",
    "o.bennett@example.com",
]


def guardrail(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GUARDRAIL_KEYRING", "GUARDRAIL_DEBUG")}
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    done = guardrail("demo", "-o", "out", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "out"


def test_samples_hold_the_pii_the_reports_must_not() -> None:
    raw = "".join(p.read_text(encoding="utf-8") for p in DATA.rglob("*") if p.is_file())
    assert all(value in raw for value in SAMPLE_PII)


def test_the_demo_ends_with_a_report_that_renders(demo: Path) -> None:
    report = demo / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "INTEGRITY VERIFIED" in html
    assert "ft.export" in html
    assert "sha256:" in html  # datasets are named by their hash id, never by content
    if not AVAILABLE:
        pytest.skip("Chromium is not installed (apt-get install chromium; CI installs it)")
    page = render(report, expressions={"charts": "document.querySelectorAll('svg.chart').length"})
    assert page.errors == []
    assert all(url.startswith("file:") for url in page.requests)  # nothing from the network
    assert page.values["charts"] >= 2


@pytest.mark.parametrize("suffix", [".html", ".md", ".json"])
def test_every_report_from_the_demo_log(demo: Path, tmp_path: Path, suffix: str) -> None:
    audit, keys = demo / "audit", demo / "keys"
    subject = ("--subject", "discharge_summary_chf", "--keyring", keys, "--tenant", "riverside")
    runs = {
        "activity": ("report", audit, "-o", tmp_path / f"activity{suffix}"),
        "ropa": ("report", "ropa", audit, "-o", tmp_path / f"ropa{suffix}", "--policy", "hipaa-safe-harbor"),
        "dsar": ("report", "dsar", audit, *subject, "-o", tmp_path / f"dsar{suffix}"),
        "disclosures": (
            "report",
            "disclosures",
            audit,
            *subject,
            "--years",
            "6",
            "-o",
            tmp_path / f"d{suffix}",
        ),
    }
    texts = {}
    for name, args in runs.items():
        done = guardrail(*args, cwd=tmp_path)
        assert done.returncode == 0, (name, done.stderr)
        texts[name] = Path(str(args[args.index("-o") + 1])).read_text(encoding="utf-8")
    for name, text in texts.items():
        for value in SAMPLE_PII:
            assert value not in text, f"{value!r} in the {name} report"
    if suffix == ".json":
        activity = json.loads(texts["activity"])
        assert activity["integrity"]["ok"] is True
        dumped = json.dumps(activity)
        assert "ft.export" in dumped
        assert "gdpr" in dumped
    # the DSAR finds the demo's retrievals of that patient's summary
    assert "rag.retrieval" in texts["dsar"] or "retrieval" in texts["dsar"].lower()
