"""The README's Python examples run, and print what the README says they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs_and_prints_what_it_says(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrail.keys import Keyring

    monkeypatch.chdir(tmp_path)  # examples write relative paths (keys/, kb/)
    Keyring.create(tmp_path / "keys")  # what `guardrail keys init keys/` does before them
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, str(README), "exec"), {})  # noqa: S102 - our own README
    # a trailing "# ..." comment line after print(...) states the expected last line of output
    expected = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    if expected:
        assert printed.getvalue().splitlines()[-1] == expected[-1]


@pytest.mark.parametrize(
    "block",
    re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S),
)
def test_readme_policy_example_is_valid(block: str) -> None:
    from guardrail.policy import parse_policy

    policy = parse_policy(block, source="README.md")
    assert policy.redaction.operator_for("PERSON").operator == "pseudonymize"


def test_example_scan_finetune_dataset_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy
    import sys

    example = README.parent / "examples" / "scan_finetune_dataset.py"
    argv = sys.argv
    sys.argv = [str(example), str(tmp_path)]
    try:
        runpy.run_path(str(example), run_name="__main__")
    finally:
        sys.argv = argv
    printed = capsys.readouterr().out
    assert "residual findings 0" in printed
    assert "manifest verified" in printed
    text = (tmp_path / "train.redacted.jsonl").read_text(encoding="utf-8")
    assert "Olivia Bennett" not in text
    assert re.search(r"<PERSON_[a-z2-7]{10}>", text)
    assert "You are a helpful clinic scheduling assistant." in text  # system prompts untouched
    events = (tmp_path / "audit" / "segment-000001.jsonl").read_text()
    assert '"ft.export"' in events
    assert "Olivia" not in events


def test_example_encrypted_store_over_chroma_runs(tmp_path: Path) -> None:
    import runpy
    import sys

    example = README.parent / "examples" / "encrypted_store.py"
    argv = sys.argv
    sys.argv = [str(example), str(tmp_path)]
    try:
        runpy.run_path(str(example), run_name="__main__")
    finally:
        sys.argv = argv
    for path in (tmp_path / "chroma").rglob("*"):
        if path.is_file():
            assert b"Harold Finch" not in path.read_bytes(), path
