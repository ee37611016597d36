"""CLI conventions a new user relies on: ``--version``, ``policy list``, flags that are flags, readable help
at 80 columns, outputs that keep their format, empty inputs reported, errors naming the CLI option,
progress (bar on a terminal, lines in a log, nothing with ``--quiet``) and a gate that says where.

Commands run in this process through :func:`guardrail.cli.main` (the real entry point, with its exit-code
mapping), so the spaCy model loads once for the module.
"""

from __future__ import annotations

import io
import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer

from guardrail import cli
from guardrail.findings import Finding
from guardrail.progress import Progress, count_records

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "guardrail" / "data"
SECRET_NAME = "Harold Finch"
SECRET_PHONE = "555-867-5309"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``run(*args)``: ``guardrail ARGS`` in this process, in ``tmp_path``; exit code and output."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("GUARDRAIL_KEYRING", raising=False)
    monkeypatch.delenv("GUARDRAIL_HMAC_KEY", raising=False)

    def invoke(*args: object) -> Ran:
        capsys.readouterr()
        try:
            cli.main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:  # pragma: no cover - main always exits
            code = 0
        got = capsys.readouterr()
        assert "Traceback" not in got.err, got.err
        return Ran(code, got.out, got.err)

    return invoke


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text(
        f"Call {SECRET_NAME} at {SECRET_PHONE} about the appointment.\n"
        "The weather was fine today.\n"
        f"Send the results to {SECRET_NAME}.\n",
        encoding="utf-8",
    )
    return path


def _all_commands() -> list[list[str]]:
    """Every command path of the app (``[]`` is the root), from the click tree users get."""
    root = typer.main.get_command(cli.app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(root, [])
    return paths


# --------------------------------------------------------------------------- version, policy list


def test_version_is_the_distributions(run: Any) -> None:
    got = run("--version")
    assert got.code == 0
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert got.out.strip() == f"guardrail {version} (distribution guardrail-privacy)"
    assert metadata.version("guardrail-privacy") == version


def test_policy_list_shows_every_shipped_pack(run: Any) -> None:
    got = run("policy", "list")
    assert got.code == 0
    for pack in ("default", "gdpr", "hipaa-safe-harbor"):
        assert pack in got.out
    rows = json.loads(run("policy", "list", "--json").out)
    assert {r["name"] for r in rows} >= {"default", "gdpr", "hipaa-safe-harbor"}
    assert all(r["version"] and len(r["sha256"]) == 64 for r in rows)


# --------------------------------------------------------------------------- help and flags


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "root")
def test_help_is_readable_at_80_columns(run: Any, path: list[str]) -> None:
    got = run(*path, "--help")
    assert got.code == 0, got.err
    lines = got.out.splitlines()
    assert lines[0].startswith("Usage: guardrail"), lines[0]
    assert max(len(line) for line in lines) <= 80, got.out
    assert "<bool>" not in got.out  # flags are shown as flags
    assert "list[str]" not in "\n".join(line for line in lines if line.lstrip().startswith("-"))
    # no python types anywhere (`INPUTS <list[Path]>`, `<path>`), no braces in the usage line
    assert not re.search(r"<(list\[|path|str|int|float|Path|text)", got.out, re.IGNORECASE), got.out
    assert "{" not in lines[0], lines[0]
    assert not re.search(r"--(keyring|audit-log|store) [A-Z_]*(KEYRING|AUDIT_LOG|STORE)\b", got.out), got.out
    # the description column starts early enough to leave room for words (click's plain layout)
    for line in lines:
        described = re.match(r"  -\S.*?  +(\S)", line)
        if described:
            assert described.start(1) <= 34, line


def test_help_names_what_each_value_is(run: Any) -> None:
    scan = run("scan", "--help").out
    assert scan.splitlines()[0] == "Usage: guardrail scan [OPTIONS] FILE..."
    assert "-k, --keyring DIR" in scan
    assert "--findings FILE" in scan
    assert "--fail-on N" in scan
    assert "--on-error stop|skip " in scan
    assert "Usage: guardrail keys init [OPTIONS] DIR" in run("keys", "init", "--help").out
    assert "-s, --store DIR" in run("keys", "reencrypt", "--help").out
    assert "--engine local|ray" in run("redact", "--help").out


def test_python_dash_m_guardrail_runs_the_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "guardrail", "--version"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("guardrail ")


def test_flags_are_parsed_as_flags_and_a_value_after_one_is_refused(run: Any, notes: Path) -> None:
    got = run("scan", notes, "--json", "true")
    assert got.code == 2
    assert "--json is a flag: write --json alone" in got.err
    assert not Path("true").exists()
    ok = run("scan", notes, "--json")
    assert ok.code == 0, ok.err
    assert json.loads(ok.out)["records"] == 3
    assert run("report", "audit", "-o", "r.html", "--force", "yes").code == 2  # a default sub-command too


# --------------------------------------------------------------------------- outputs keep their format


def test_outputs_must_keep_their_format(run: Any, notes: Path, tmp_path: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_bytes((DATA / "finetune_chat.jsonl").read_bytes())
    got = run("redact", train, "-o", "out.pdf")
    assert got.code == 2
    assert "name it with .jsonl or .ndjson (-o/--output)" in got.err
    got = run("redact", notes, "-o", "notes.csv")
    assert got.code == 2
    assert "name it with .txt (-o/--output)" in got.err
    got = run("report", "audit", "-o", "report.pdf")
    assert got.code == 2
    assert ".html, .md or .json" in got.err
    assert not any(p.suffix in (".pdf", ".csv") for p in tmp_path.iterdir())


# --------------------------------------------------------------------------- empty inputs


def test_empty_inputs_are_reported(run: Any, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "empty.jsonl").write_text("")
    got = run("scan", "empty.txt")
    assert got.code == 0
    assert "warning: empty.txt: no records (an empty input)" in got.err
    got = run("scan", "empty.jsonl", "--fail-on", "0")
    assert got.code == 0
    assert "warning: empty.jsonl: no records" in got.err
    got = run("redact", "empty.jsonl", "-o", "out.jsonl")
    assert got.code == 0, got.err
    assert "warning: empty.jsonl: no records (an empty input); the output is empty too" in got.err
    got = run("redact", "empty.txt", "-o", "out.txt")
    assert "warning: empty.txt: no records" in got.err
    # a file with records gets no such remark
    (tmp_path / "one.txt").write_text("nothing personal here\n")
    assert "warning" not in run("scan", "one.txt").err


# --------------------------------------------------------------------------- errors name the CLI option


def test_missing_csv_column_names_the_field_option(run: Any, tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("id,body\n1,Call Harold Finch\n")
    got = run("scan", "data.csv")
    assert got.code == 2
    assert "--field" in got.err
    assert "Harold" not in got.err
    assert run("scan", "data.csv", "--field", "body").code == 0


def test_hash_operator_error_names_keyring_option_and_the_keyring_works_for_text(
    run: Any, notes: Path, tmp_path: Path
) -> None:
    from guardrail.keys import Keyring

    policy = tmp_path / "hashing.yaml"
    policy.write_text(
        'name: hashing\nversion: "1"\ndetection:\n  entities: [PERSON, PHONE_NUMBER]\n'
        "redaction:\n  default: {operator: hash}\n",
        encoding="utf-8",
    )
    got = run("redact", notes, "-o", "out.txt", "--policy", policy)
    assert got.code == 2
    assert "--keyring DIR" in got.err
    Keyring.create(tmp_path / "keys")
    got = run("redact", notes, "-o", "out.txt", "--policy", policy, "--keyring", "keys")
    assert got.code == 0, got.err
    text = (tmp_path / "out.txt").read_text()
    assert SECRET_NAME not in text
    assert SECRET_PHONE not in text
    assert text.count("\n") == 3


# --------------------------------------------------------------------------- gate diagnostics


def test_failing_scan_gate_names_records_and_types_never_values(
    run: Any, notes: Path, tmp_path: Path
) -> None:
    train = tmp_path / "train.jsonl"
    train.write_bytes((DATA / "finetune_chat.jsonl").read_bytes())
    got = run("scan", notes, "--fail-on", "0", "--gate-report", "gate.jsonl")
    assert got.code == 1
    assert "in 2 record(s): line 1: PERSON 1, PHONE_NUMBER 1; line 3: PERSON 1" in got.err
    assert "line 2" not in got.err  # the clean line is not named
    rows = [json.loads(line) for line in (tmp_path / "gate.jsonl").read_text().splitlines()]
    assert [(r["line"], r["entities"]) for r in rows] == [
        (1, {"PERSON": 1, "PHONE_NUMBER": 1}),
        (3, {"PERSON": 1}),
    ]
    got = run("scan", notes, train, "--fail-on", "0", "--gate-report", "gate.jsonl", "--force")
    assert "notes.txt line 1" in got.err
    assert "train.jsonl line 1 (id ft-001)" in got.err
    for text in (got.err, (tmp_path / "gate.jsonl").read_text()):
        assert SECRET_NAME not in text
        assert "Finch" not in text
        assert SECRET_PHONE not in text
    # passing the gate: the report is still written on request, and exit 0
    assert run("scan", notes, "--fail-on", "10", "--gate-report", "gate.jsonl", "--force").code == 0


class _SecondLook:
    """The real detector, plus a finding the first pass missed on record 2: what the re-scan exists for."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def detect_batch(self, texts: Sequence[str]) -> list[list[Finding]]:
        self.calls += 1
        found = self.real.detect_batch(texts)
        if self.calls % 2 == 0:  # the re-scan
            for i, text in enumerate(texts):
                at = text.find("Thanks")
                if at >= 0:
                    found[i] = [*found[i], Finding(at, at + 6, "PERSON", 0.9)]
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_failing_redact_gate_names_residual_records(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import guardrail.core
    from guardrail.keys import Keyring
    from guardrail.policy import load_policy

    rows = [
        {"id": "a-1", "messages": [{"role": "user", "content": "Hello, I need an appointment."}]},
        {
            "id": "b-2",
            "messages": [{"role": "user", "content": "Thanks, write to me at jo.park@example.org."}],
        },
        {"id": "c@3 x", "messages": [{"role": "user", "content": "Thanks again, Harold Finch."}]},
    ]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    Keyring.create(tmp_path / "keys")
    real = guardrail.core._shared_detector(load_policy("gdpr"))
    monkeypatch.setattr(guardrail.core, "_shared_detector", lambda policy: _SecondLook(real))
    args = ("redact", "chat.jsonl", "-o", "out.jsonl", "--policy", "gdpr", "--keyring", "keys")
    got = run(*args, "--fail-on", "0", "--gate-report", "residual.jsonl")
    assert got.code == 1
    # an id that is not a plain identifier is not printed (it could be anything)
    assert "2 record(s): line 2 (id b-2): PERSON 1; line 3: PERSON 1; nothing was written" in got.err
    assert not (tmp_path / "out.jsonl").exists()
    rows_out = [json.loads(line) for line in (tmp_path / "residual.jsonl").read_text().splitlines()]
    assert rows_out == [
        {"file": "chat.jsonl", "line": 2, "id": "b-2", "entities": {"PERSON": 1}},
        {"file": "chat.jsonl", "line": 3, "id": None, "entities": {"PERSON": 1}},
    ]
    assert "Finch" not in got.err + (tmp_path / "residual.jsonl").read_text()
    got = run(*args, "--fail-on", "5", "--gate-report", "residual.jsonl", "--force")
    assert got.code == 0, got.err
    assert (tmp_path / "out.jsonl").exists()
    assert len((tmp_path / "residual.jsonl").read_text().splitlines()) == 2


# --------------------------------------------------------------------------- progress


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_on_a_log_every_interval_with_total_and_eta() -> None:
    clock, stream = _Clock(), io.StringIO()
    p = Progress("redacting train.jsonl", total=4000, stream=stream, terminal=False, interval=5, clock=clock)
    p(0)  # the first update (after the model loaded): rates count from here
    for k in range(1, 41):
        clock.now = 100 + 0.5 * k  # 100 records every 0.5 s: 200 records/s
        p(100 * k)
    p.finish(4000)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4  # one per 5 s of a 20 s run; the last one already says 4,000
    assert lines[0] == (
        "redacting train.jsonl: 1,000 of 4,000 records (25%), 200 records/s, 0:00:05 elapsed, "
        "about 0:00:15 left"
    )
    assert lines[-1].startswith("redacting train.jsonl: 4,000 of 4,000 records (100%)")
    assert "left" not in lines[-1]


def test_progress_without_total_quiet_and_short_runs() -> None:
    clock, stream = _Clock(), io.StringIO()
    p = Progress("scanning data", total=None, stream=stream, terminal=False, interval=5, clock=clock)
    clock.now += 30  # loading the model
    p(0)
    clock.now += 6
    p(10)
    p.finish()
    assert stream.getvalue() == "scanning data: 10 records, 2 records/s, 0:00:36 elapsed\n"
    short = io.StringIO()
    q = Progress("x", total=10, stream=short, terminal=False, clock=clock)
    q(10)
    q.finish()
    assert short.getvalue() == ""  # under the interval: silent
    quiet = io.StringIO()
    r = Progress("x", total=10, stream=quiet, terminal=True, quiet=True, clock=clock)
    clock.now += 60
    r(5)
    r.finish()
    assert quiet.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar_with_total_and_eta() -> None:
    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    p = Progress("redacting train.jsonl", total=4000, stream=screen, terminal=True, console=console)
    p(1000)
    task = p._bar.tasks[0]
    assert (task.total, task.completed) == (4000, 1000)
    columns = [type(c).__name__ for c in p._bar.columns]
    assert "BarColumn" in columns
    assert "TimeRemainingColumn" in columns
    assert "MofNCompleteColumn" in columns
    p.finish()
    assert p._bar is None


def test_record_pre_count(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}')  # no final newline
    (tmp_path / "b.csv").write_text("text\nx\ny\n")
    (tmp_path / "c.txt").write_text("")
    assert count_records(tmp_path / "a.jsonl", "jsonl") == 3
    assert count_records(tmp_path / "b.csv", "csv") == 2
    assert count_records(tmp_path / "c.txt", "txt") == 0
    assert count_records(tmp_path / "missing.jsonl", "jsonl") is None
    assert count_records(tmp_path, "hf-disk") is None


def test_cli_progress_lines_in_a_log_and_quiet_silences_them(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = tmp_path / "train.jsonl"
    rows = [{"id": i, "text": f"Ticket {i}: the printer on floor {i % 7} is jammed."} for i in range(300)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("GUARDRAIL_PROGRESS_SECONDS", "0")  # a line at every update after the first
    got = run("redact", train, "-o", "out.jsonl")
    assert got.code == 0, got.err
    lines = [line for line in got.err.splitlines() if line.startswith("redacting train.jsonl: ")]
    assert len(lines) >= 2  # chunks of at most 64 records
    assert " of 300 records (" in lines[0]
    assert "left" in lines[0]
    assert lines[-1].startswith("redacting train.jsonl: 300 of 300 records (100%)")
    got = run("scan", train)
    assert any(line.startswith("scanning train.jsonl: ") for line in got.err.splitlines())
    got = run("redact", train, "-o", "out2.jsonl", "--quiet")
    assert got.code == 0
    assert "records/s," not in got.err
    got = run("scan", train, "-q")
    assert "records/s," not in got.err


def test_gate_report_never_overwrites_an_output(run: Any, tmp_path: Path, notes: Path) -> None:
    train = tmp_path / "train.jsonl"
    train.write_bytes((DATA / "finetune_chat.jsonl").read_bytes())
    for clash in ("out.jsonl", "out.jsonl.manifest.json", "out.jsonl.card.md", "train.jsonl"):
        got = run("redact", train, "-o", "out.jsonl", "--gate-report", clash)
        assert got.code == 2, clash
        assert "must not be the input, the output or its sidecars" in got.err
    assert not (tmp_path / "out.jsonl").exists()
    got = run("scan", notes, "--findings", "f.jsonl", "--gate-report", "f.jsonl")
    assert got.code == 2
    assert "need two files" in got.err
