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
