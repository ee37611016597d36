"""The HTML report in real headless Chromium: it loads with no console error and no request beyond the
file itself, its charts are drawn, a screenshot is not blank, it prints to PDF, and a damaged log shows
as FAILED at the top of the page."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from _chromium import AVAILABLE, Rendered, render
from _report_helpers import synthetic_events, write_log
from PIL import Image

from guardrail.reports import build_report, write_report

pytestmark = pytest.mark.skipif(
    not AVAILABLE, reason="Chromium is not installed (apt-get install chromium; CI installs it)"
)

PROBES = {
    "charts": "document.querySelectorAll('svg.chart').length",
    "bars": "[...document.querySelectorAll('svg.chart rect.bar')]"
    ".filter(r => r.getBoundingClientRect().width > 0 && r.getBoundingClientRect().height > 0).length",
    "chart_width": "Math.round(document.querySelector('svg.chart').getBoundingClientRect().width)",
    "banner": "document.getElementById('integrity-banner').innerText",
    "banner_top": "Math.round(document.getElementById('integrity-banner').getBoundingClientRect().top)",
    "banner_colour": "getComputedStyle(document.getElementById('integrity-banner')).backgroundColor",
    "sections": "[...document.querySelectorAll('main > section')].map(s => s.id)",
}


def _not_blank(png: bytes) -> tuple[int, float]:
    """(distinct colours, share of non-white pixels) of a screenshot."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24) or []
    total = image.width * image.height
    non_white = sum(n for n, rgb in colours if sum(rgb) < 720) / total
    return len(colours), non_white


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    root = tmp_path_factory.mktemp("html")
    report = build_report(write_log(root / "audit", synthetic_events()))
    path = write_report(report, root / "report.html")
    return render(path, expressions=PROBES, pdf=True)


class TestReportInChromium:
    """A self-contained page that a browser renders fully, offline."""

    def test_loads_without_errors_or_network(self, page: Rendered) -> None:
        assert page.errors == []
        assert all(url.startswith("file://") for url in page.requests), page.requests
        assert len(page.requests) == 1

    def test_charts_are_drawn(self, page: Rendered) -> None:
        assert page.values["charts"] == 2
        # one visible bar per non-zero value: 5 time buckets x outcome, 3 entity bars (PERSON x2, MRN)
        assert page.values["bars"] == 8
        assert page.values["chart_width"] > 500
        assert page.values["sections"] == ["integrity", "overview", "access", "exposure", "datasets", "keys"]

    def test_screenshot_is_not_blank(self, page: Rendered) -> None:
        colours, ink = _not_blank(page.screenshot)
        assert colours > 20
        assert ink > 0.05

    def test_prints(self, page: Rendered) -> None:
        assert page.pdf.startswith(b"%PDF")
        assert len(page.pdf) > 20_000

    def test_verified_banner(self, page: Rendered) -> None:
        assert page.values["banner"].startswith("INTEGRITY VERIFIED")
        assert page.values["banner_colour"] == "rgb(46, 125, 50)"


def test_damaged_log_shows_failed_at_the_top(tmp_path: Path) -> None:
    audit = write_log(tmp_path / "audit", synthetic_events())
    segment = audit / "segment-000001.jsonl"
    data = bytearray(segment.read_bytes())
    data[data.index(b'"dr-chen"') + 3] ^= 0x04
    segment.write_bytes(bytes(data))
    path = write_report(build_report(audit), tmp_path / "report.html")
    shown = render(path, expressions=PROBES)
    assert shown.errors == []
    assert shown.values["banner"].startswith("INTEGRITY FAILED")
    assert shown.values["banner_top"] < 200  # above the fold
    assert shown.values["banner_colour"] == "rgb(198, 40, 40)"


def test_the_harness_sees_errors_and_requests(tmp_path: Path) -> None:
    """The checks above can fail: a page with a script error and an external image is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><p>x</p><img src='https://example.invalid/x.png'>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>",
        "utf-8",
    )
    shown = render(bad)
    assert any("boom" in e for e in shown.errors)
    assert any("undefinedFunction" in e for e in shown.errors)
    assert any(url.startswith("https://example.invalid") for url in shown.requests)
