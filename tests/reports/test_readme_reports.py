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


@pytest.mark.parametrize("width", [1280, 720], ids=["screen-1280px", "print-width-a4-letter"])
def test_every_html_report_from_the_demo_fits_without_horizontal_overflow(
    width: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from _chromium import AVAILABLE, render

    if not AVAILABLE:
        pytest.skip("Chromium is not installed (apt-get install chromium; CI installs it)")
    monkeypatch.chdir(tmp_path)
    subject = ["--subject", "discharge_summary_chf", "--keyring", "demo-output/keys"]
    runs = [
        ["demo", "-o", "demo-output"],
        ["report", "demo-output/audit", "-o", "activity.html"],
        ["report", "ropa", "demo-output/audit", "-o", "ropa.html"],
        ["report", "dsar", "demo-output/audit", *subject, "-o", "dsar.html", "--with-principals"],
        ["report", "disclosures", "demo-output/audit", *subject, "-o", "disclosures.html"],
    ]
    for args in runs:
        monkeypatch.setattr(sys, "argv", ["guardrail", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code in (0, None), capsys.readouterr().err
    # A4 and Letter print about 718 px wide (96 dpi) inside 12 mm margins: 720 px stands for both
    for name in ("activity.html", "ropa.html", "dsar.html", "disclosures.html"):
        page = render(tmp_path / name, width=width, expressions={"overflow": _OVERFLOW})
        assert page.errors == [], name
        assert page.values["overflow"] == {"page": 0, "wide": 0}, name


def test_the_overflow_check_sees_a_wide_table(tmp_path: Path) -> None:
    from _chromium import AVAILABLE, render

    if not AVAILABLE:
        pytest.skip("Chromium is not installed")
    page = tmp_path / "wide.html"
    page.write_text("<table><tr><td>" + "x" * 400 + "</td></tr></table>")
    values = render(page, width=720, expressions={"overflow": _OVERFLOW}).values["overflow"]
    assert values["page"] > 0
    assert values["wide"] == 1
