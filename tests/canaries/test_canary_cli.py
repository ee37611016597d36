"""``guardrail canary make / list / check`` and the dataset gate, run as real subprocesses: exit codes,
files, and no planted value on stdout or stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardrail.canaries import CanaryRegistry
from guardrail.keys import Keyring

pytestmark = pytest.mark.slow


def run(*args: object, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("GUARDRAIL_DEBUG", None)
    env.pop("GUARDRAIL_KEYRING", None)
    cmd = [sys.executable, "-m", "guardrail.cli", *(str(a) for a in args)]
    return subprocess.run(
        cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=180, check=False
    )


def test_make_check_round_trip_and_gate(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    made = run("canary", "make", "--kind", "record", "-n", "2", "-o", "records.jsonl", "-k", "keys",
               "--tenant", "acme", "--audit-log", "audit", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    ids = made.stdout.split()
    assert len(ids) == 2
    assert all(i.startswith("cn-") for i in ids)
    values = [v for i in ids for _, v in CanaryRegistry(tmp_path / "keys").reveal(i)]
    listed = run("canary", "list", "-k", "keys", "--json", cwd=tmp_path)
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == ids

    # a model that memorised one record: its outputs carry the record's e-mail, on line 2
    email = next(v for v in values[: len(values) // 2] if "@" in v)
    (tmp_path / "outputs.txt").write_text(f"I don't know.\nContact {email} for details.\n", encoding="utf-8")
    found = run("canary", "check", "outputs.txt", "-k", "keys", cwd=tmp_path)
    assert found.returncode == 1
    assert found.stdout.strip() == f"outputs.txt:2: canary {ids[0]} (EMAIL_ADDRESS)"
    piped = run("canary", "check", "-", "-k", "keys", "--json", "--audit-log", "audit", cwd=tmp_path,
                stdin=json.dumps({"answer": f"Contact\n{email}"}) + "\n")  # fmt: skip
    assert piped.returncode == 1
    assert json.loads(piped.stdout) == {"line": 1, "canary": ids[0], "entities": ["EMAIL_ADDRESS"]}
    (tmp_path / "clean.txt").write_text("I don't know.\n", encoding="utf-8")
    clean = run("canary", "check", "clean.txt", "-k", "keys", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "no canary found" in clean.stderr

    # a dataset run that leaves the identifier fields alone fails its gate and writes nothing
    gate = run("redact", "records.jsonl", "-o", "out.jsonl", "-k", "keys", "--field", "note", cwd=tmp_path)
    assert gate.returncode == 1
    assert "canary values in 2 record(s): line 1 (id rec-" in gate.stderr
    assert ids[0] in gate.stderr
    assert not (tmp_path / "out.jsonl").exists()
    # ... and with every field processed it passes (control)
    fields = [a for f in ("name", "mrn", "ssn", "email", "phone", "note") for a in ("--field", f)]
    ok = run("redact", "records.jsonl", "-o", "out.jsonl", "-k", "keys", *fields, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    for value in values:
        for text in (made.stdout, made.stderr, found.stdout, found.stderr, gate.stdout, gate.stderr, written):
            assert value not in text
    events = [
        json.loads(x)
        for seg in sorted((tmp_path / "audit").glob("segment-*.jsonl"))
        for x in seg.read_text().splitlines()
    ]
    assert [e["canary"] for e in events if e["event"]["category"] == "canary.make"] == [
        {"ids": ids, "kind": "record", "count": 2}
    ]
    (checked,) = [e for e in events if e["event"]["category"] == "canary.tripped"]
    assert checked["canary"] == {"id": ids[0], "where": "model.output", "entities": ["EMAIL_ADDRESS"]}
    assert checked["resources"] == [{"type": "output", "id": "<stdin>:1"}]
    for value in values:
        assert value not in piped.stdout + piped.stderr


def test_text_redaction_gate(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    assert (
        run(
            "canary", "make", "--kind", "note", "-n", "1", "-o", "notes.txt", "-k", "keys", cwd=tmp_path
        ).returncode
        == 0
    )
    ok = run("redact", "notes.txt", "-o", "redacted.txt", "-k", "keys", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr  # every planted value is detected, so the redacted copy is clean
    # a policy that does not look for SSNs lets one through: the run fails and writes nothing
    default = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text(encoding="utf-8")
    assert "US_SSN, US_ITIN, " in default
    no_ssn = default.replace("US_SSN, US_ITIN, ", "").replace("name: default", "name: no-ssn")
    (tmp_path / "no-ssn.yaml").write_text(no_ssn, encoding="utf-8")
    gate = run("redact", "notes.txt", "-o", "kept.txt", "-k", "keys", "-p", "no-ssn.yaml", cwd=tmp_path)
    assert gate.returncode == 1, gate.stderr
    assert "line 1: canary cn-" in gate.stderr
    assert not (tmp_path / "kept.txt").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--kind", "chat", "-n", "1", "-o", "chat.txt"), "--kind chat writes .jsonl"),
        (("--kind", "poem", "-n", "1", "-o", "p.txt"), "--kind 'poem' is not one of note, chat, record"),
        (("--kind", "note", "-n", "1", "-o", "nodir/n.txt"), "no such directory for --output"),
        (("--kind", "note", "-n", "1", "-o", "adir.txt"), "is a directory; give --output a file path"),
        (("--kind", "note", "-n", "1", "-o", "a-file/n.txt"), "not a directory, so --output"),
        (("--kind", "note", "-n", "1", "-o", "taken.txt"), "exists; pass --force"),
    ],
    ids=["suffix", "kind", "parent", "directory", "parent-file", "exists"],
)
def test_make_refuses_bad_arguments(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    Keyring.create(tmp_path / "keys")
    (tmp_path / "adir.txt").mkdir()
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    (tmp_path / "taken.txt").write_text("keep me\n", encoding="utf-8")
    result = run("canary", "make", *args, "-k", "keys", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "keys" / "canaries.json").exists()
    assert (tmp_path / "taken.txt").read_text(encoding="utf-8") == "keep me\n"
