"""The README's report and erasure commands run as written, in order, and leave what they promise."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from guardrail.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Compliance reports") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None, "the Compliance reports section has a sh block"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def test_readme_report_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guardrail.erasure import verify_certificate

    monkeypatch.chdir(tmp_path)
    commands = _commands()
    assert [c[:2] for c in commands][:2] == [["guardrail", "demo"], ["guardrail", "report"]]
    for command in commands:
        assert command[0] == "guardrail"
        monkeypatch.setattr(sys, "argv", command)
        with pytest.raises(SystemExit) as exit_info:
            main()
        output = capsys.readouterr()
        assert exit_info.value.code in (0, None), f"{shlex.join(command)}: {output.err}"
    for name in ("report.html", "ropa.md", "dsar.html", "disclosures.md", "erasure.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    public = (tmp_path / "demo-output" / "audit" / "audit.pub").read_text()
    assert verify_certificate(tmp_path / "erasure.json", public)


_OVERFLOW = (
    "(() => { const w = document.documentElement.clientWidth;"
    " const wide = [...document.querySelectorAll('table, dl, svg, .note, pre')]"
    ".filter(e => e.getBoundingClientRect().right > w + 1).length;"
    " return {page: document.documentElement.scrollWidth - w, wide: wide}; })()"
)


_PRINT_STYLES = "getComputedStyle(document.querySelector('nav') || document.body).display"
# printable width at 96 px/in inside the reports' 12 mm @page margins: A4 186 mm, Letter 191.9 mm
_PAPER: dict[str, tuple[int, dict[str, float]]] = {
    "a4": (703, {"paperWidth": 8.27, "paperHeight": 11.69}),
    "letter": (725, {"paperWidth": 8.5, "paperHeight": 11.0}),
}
_REPORTS = ("activity.html", "ropa.html", "dsar.html", "disclosures.html", "activity-damaged.html")


@pytest.fixture(scope="module")
def demo_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every HTML report from a fresh `guardrail demo` log, written by the CLI as a user runs it."""
    import os
    import subprocess

    root = tmp_path_factory.mktemp("demo-reports")
    subject = ["--subject", "discharge_summary_chf", "--keyring", "demo-output/keys"]
    runs = [
        ["demo", "-o", "demo-output"],
        ["report", "demo-output/audit", "-o", "activity.html"],
        ["report", "ropa", "demo-output/audit", "-o", "ropa.html"],
        ["report", "dsar", "demo-output/audit", *subject, "-o", "dsar.html", "--with-principals"],
        ["report", "disclosures", "demo-output/audit", *subject, "-o", "disclosures.html"],
    ]
    html_runs = runs[1:]
    for suffix in (".md", ".json"):  # the same reports in the text formats
        runs += [[a.replace(".html", suffix) for a in args] for args in html_runs]
    for args in runs:
        done = subprocess.run(
            [sys.executable, "-m", "guardrail.cli", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={k: v for k, v in os.environ.items() if k != "GUARDRAIL_KEYRING"},
        )
        assert done.returncode == 0, (args, done.stderr)
    # the same log damaged early on: every table gains an integrity column and flags
    import shutil

    shutil.copytree(root / "demo-output" / "audit", root / "damaged")
    segment = sorted((root / "damaged").glob("segment-*.jsonl"))[0]
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"success"', b'"denied"', 1)
    segment.write_bytes(b"".join(lines))
    done = subprocess.run(
        [sys.executable, "-m", "guardrail.cli", "report", "damaged", "-o", "activity-damaged.html"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr  # written, and the exit code says the log is damaged
    assert "UNVERIFIED" in (root / "activity-damaged.html").read_text()
    return root


@pytest.mark.parametrize("suffix", [".md", ".json"])
def test_the_text_formats_open_in_chromium_without_overflow(suffix: str, demo_reports: Path) -> None:
    """Markdown and JSON reports open as text in the browser: wrapped, nothing wider than an A4 page."""
    from _chromium import AVAILABLE, render

    if not AVAILABLE:
        pytest.skip("Chromium is not installed (apt-get install chromium; CI installs it)")
    for name in _REPORTS[:4]:
        path = demo_reports / name.replace(".html", suffix)
        page = render(
            path,
            width=703,
            media="print",
            expressions={"overflow": _OVERFLOW, "chars": "document.body.innerText.length"},
        )
        assert page.errors == [], path.name
        assert page.values["chars"] > 200, path.name  # positive control: the text is shown, not downloaded
        assert page.values["overflow"] == {"page": 0, "wide": 0}, path.name


@pytest.mark.parametrize("name", _REPORTS)
def test_every_html_report_from_the_demo_fits_a_1280px_screen(name: str, demo_reports: Path) -> None:
    from _chromium import AVAILABLE, render

    if not AVAILABLE:
        pytest.skip("Chromium is not installed (apt-get install chromium; CI installs it)")
    page = render(demo_reports / name, width=1280, expressions={"overflow": _OVERFLOW})
    assert page.errors == [], name
    assert page.values["overflow"] == {"page": 0, "wide": 0}, name


@pytest.mark.parametrize("paper", sorted(_PAPER))
@pytest.mark.parametrize("name", _REPORTS)
def test_every_html_report_from_the_demo_prints_on_a4_and_letter(
    name: str, paper: str, demo_reports: Path
) -> None:
    """Laid out with the print style sheet at the paper's printable width, nothing is wider than the
    page (what would be cut off on paper), and Chromium prints it to a PDF of that paper size."""
    from _chromium import AVAILABLE, render

    if not AVAILABLE:
        pytest.skip("Chromium is not installed (apt-get install chromium; CI installs it)")
    width, paper_size = _PAPER[paper]
    page = render(
        demo_reports / name,
        width=width,
        media="print",
        expressions={"overflow": _OVERFLOW, "nav": _PRINT_STYLES},
        pdf=True,
        pdf_options=dict(paper_size),
    )
    assert page.errors == [], name
    assert page.values["nav"] == "none", "positive control: the print style sheet is in force"
    assert page.values["overflow"] == {"page": 0, "wide": 0}, (name, paper)
    assert page.pdf.startswith(b"%PDF-")
    # the PDF's pages are the paper asked for (points: A4 595 x 842, Letter 612 x 792)
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", page.pdf)
    assert box is not None
    expected = (595, 842) if paper == "a4" else (612, 792)
    assert abs(float(box.group(1)) - expected[0]) < 2, box.group(0)
    assert abs(float(box.group(2)) - expected[1]) < 2, box.group(0)


@pytest.mark.parametrize("media", [None, "print"])
def test_the_overflow_check_sees_a_wide_table(media: str | None, tmp_path: Path) -> None:
    from _chromium import AVAILABLE, render

    if not AVAILABLE:
        pytest.skip("Chromium is not installed")
    page = tmp_path / "wide.html"
    page.write_text("<table><tr><td>" + "x" * 400 + "</td></tr></table>")
    values = render(page, width=703, media=media, expressions={"overflow": _OVERFLOW}).values["overflow"]
    assert values["page"] > 0
    assert values["wide"] == 1
