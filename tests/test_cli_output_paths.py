"""Every command that writes an output refuses a path it cannot write before doing any work (issue 11):
a missing directory, a directory where a file is expected, a parent that is a file, an unwritable
directory. Exit 2, one line naming the path and the fix, no traceback, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardrail.errors import ConfigError
from guardrail.io import check_output_path


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def _one_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"Call Alice Smith at alice{i}@example.com"}) + "\n" for i in range(3))
    )
    (tmp_path / "note.txt").write_text("Alice Smith, alice@example.com\n")
    (tmp_path / "a-file").write_text("x")
    return tmp_path


@pytest.mark.parametrize("source", ["train.jsonl", "note.txt"])
def test_redact_missing_output_directory(work: Path, source: str) -> None:
    before = _files(work)
    done = run("redact", source, "-o", f"missing_dir/out{Path(source).suffix}", cwd=work)
    _one_line(done, "missing_dir", "mkdir -p missing_dir")
    assert _files(work) == before  # nothing written, not even a partial file or an audit record


def test_redact_output_is_a_directory(work: Path) -> None:
    (work / "outdir").mkdir()
    before = _files(work)
    _one_line(run("redact", "train.jsonl", "-o", "outdir", cwd=work), "outdir", "is a directory")
    assert _files(work) == before


def test_redact_parent_is_a_file(work: Path) -> None:
    before = _files(work)
    _one_line(run("redact", "train.jsonl", "-o", "a-file/out.jsonl", cwd=work), "a-file", "not a directory")
    assert _files(work) == before


def test_report_missing_output_directory(work: Path) -> None:
    (work / "log").mkdir()
    before = _files(work)
    _one_line(run("report", "build", "log", "-o", "nowhere/report.html", cwd=work), "nowhere", "mkdir -p")
    assert _files(work) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere: the permission check cannot fail")
def test_unwritable_directory(work: Path) -> None:
    locked = work / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="not writable"):
        check_output_path(locked / "out.jsonl")


def test_check_output_path_messages(tmp_path: Path) -> None:
    """The library check behind the commands (runs as root too, unlike the permission case)."""
    check_output_path(tmp_path / "fine.jsonl")  # positive control
    check_output_path(tmp_path, directory=True)  # a dataset directory may exist
    with pytest.raises(ConfigError, match="no such directory"):
        check_output_path(tmp_path / "a" / "b.jsonl")
    with pytest.raises(ConfigError, match="is a directory"):
        check_output_path(tmp_path)
