"""Attacks on an interrupted dataset run by someone who can write the output directory (issue 11, point 2).

A checkpoint is MACed under the keyring and records the SHA-256 of the partial output up to its offset;
``--resume`` refuses (exit 2, one line) a checkpoint or partial file that does not match; the manifest
counts the file that is published. Positive controls: an untouched checkpoint resumes to the same bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_run import chat_records, write_jsonl

from guardrail.datasets.manifest import verify_manifest
from guardrail.datasets.run import redact_file
from guardrail.errors import ConfigError
from guardrail.keys import Keyring

SSN = "078-05-1120"


class _Stop(KeyboardInterrupt):
    pass


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring.create(tmp_path_factory.mktemp("ring") / "keys")


def _interrupted(keyring: Keyring | None, tmp_path: Path, n: int = 200) -> tuple[Path, Path]:
    src = write_jsonl(tmp_path / "in.jsonl", chat_records(n))
    out = tmp_path / "out.jsonl"

    def stop(done: int) -> None:
        if done >= n // 2:
            raise _Stop

    with pytest.raises(_Stop):
        redact_file(src, out, keyring=keyring, policy="gdpr", checkpoint_seconds=0, progress=stop)
    assert (tmp_path / ".out.jsonl.guardrail-checkpoint.json").exists()
    return src, out


def _sidecars(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / ".out.jsonl.guardrail-partial", tmp_path / ".out.jsonl.guardrail-checkpoint.json"


def _the_issue_attack(tmp_path: Path) -> None:
    """Append a raw record to the partial output and bump output_bytes in the checkpoint JSON."""
    partial, checkpoint = _sidecars(tmp_path)
    raw = (json.dumps({"messages": [{"role": "user", "content": f"my SSN is {SSN}"}]}) + "\n").encode()
    state = json.loads(checkpoint.read_text())
    with open(partial, "r+b") as f:
        f.truncate(state["output_bytes"])
        f.seek(0, 2)
        f.write(raw)
    state["output_bytes"] += len(raw)
    checkpoint.write_text(json.dumps(state))


def test_the_issue_attack_is_refused(keyring: Keyring, tmp_path: Path) -> None:
    src, out = _interrupted(keyring, tmp_path)
    _the_issue_attack(tmp_path)
    with pytest.raises(ConfigError, match="not authentic"):
        redact_file(src, out, keyring=keyring, policy="gdpr", resume=True)
    assert not out.exists()


def test_the_issue_attack_from_the_cli(keyring: Keyring, tmp_path: Path) -> None:
    src, out = _interrupted(keyring, tmp_path)
    _the_issue_attack(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "guardrail.cli", "redact", src, "-o", out, "-p", "gdpr", "--keyring",
         keyring.directory, "--resume"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    message = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(message) == 1, done.stderr
    assert "not authentic" in message[0]
    assert "--force" in message[0]
    assert "Traceback" not in done.stderr
    assert SSN not in done.stderr
    assert not out.exists()


def test_a_partial_edited_within_the_checkpointed_bytes_is_refused(keyring: Keyring, tmp_path: Path) -> None:
    src, out = _interrupted(keyring, tmp_path)
    partial, _ = _sidecars(tmp_path)
    data = bytearray(partial.read_bytes())
    at = data.index(b"<")
    data[at : at + 1] = b"X"  # one character of a placeholder: same length, checkpoint untouched
    partial.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="does not match its checkpoint"):
        redact_file(src, out, keyring=keyring, policy="gdpr", resume=True)
    assert not out.exists()


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["totals"].update(before={}, output_records=0),  # erase the counts
        lambda s: s.update(position=s["position"] + 1),
        lambda s: s.update(output_sha256="0" * 64),
        lambda s: s.pop("mac"),
    ],
    ids=["totals", "position", "digest", "no-mac"],
)
def test_an_edited_checkpoint_is_refused(keyring: Keyring, tmp_path: Path, edit: object) -> None:
    src, out = _interrupted(keyring, tmp_path)
    _, checkpoint = _sidecars(tmp_path)
    state = json.loads(checkpoint.read_text())
    edit(state)  # type: ignore[operator]
    checkpoint.write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="not authentic"):
        redact_file(src, out, keyring=keyring, policy="gdpr", resume=True)


def test_a_checkpoint_of_another_keyring_is_refused(keyring: Keyring, tmp_path: Path) -> None:
    src, out = _interrupted(keyring, tmp_path)
    other = Keyring.create(tmp_path / "other")
    with pytest.raises(ConfigError):
        redact_file(src, out, keyring=other, policy="gdpr", resume=True)


def test_without_a_keyring_a_run_does_not_resume(tmp_path: Path) -> None:
    src, out = _interrupted(None, tmp_path)
    with pytest.raises(ConfigError, match="keyring"):
        redact_file(src, out, policy="gdpr", resume=True)
    fresh = redact_file(src, out, policy="gdpr", force=True)
    assert fresh.manifest.output_records == 200


def test_positive_control_untouched_checkpoint_resumes(keyring: Keyring, tmp_path: Path) -> None:
    src, out = _interrupted(keyring, tmp_path)
    _, checkpoint = _sidecars(tmp_path)
    assert set(json.loads(checkpoint.read_text())) >= {"mac", "output_sha256", "rejects_sha256"}
    resumed = redact_file(src, out, keyring=keyring, policy="gdpr", resume=True)
    assert resumed.resumed_from > 0
    whole = redact_file(src, tmp_path / "whole.jsonl", keyring=keyring, policy="gdpr")
    assert out.read_bytes() == whole.output.read_bytes()
    assert resumed.manifest.output_records == len(out.read_bytes().splitlines()) == 200


def test_manifest_counts_the_published_file(keyring: Keyring, tmp_path: Path) -> None:
    """A record slipped into the partial output while the run goes is never published under a manifest
    that counts what the run believes it wrote."""
    src = write_jsonl(tmp_path / "in.jsonl", chat_records(120))
    out = tmp_path / "out.jsonl"
    partial, _ = _sidecars(tmp_path)

    def slip(done: int) -> None:
        if done >= 120:  # after the last record, before the run counts and publishes
            with open(partial, "r+b") as f:
                f.seek(1 << 22)  # beyond whatever the run still has buffered
                f.write((json.dumps({"text": f"SSN {SSN}"}) + "\n").encode())

    with pytest.raises(ConfigError, match="holds 121 records but the run wrote 120"):
        redact_file(src, out, keyring=keyring, policy="gdpr", progress=slip)
    assert not out.exists()
    clean = redact_file(src, out, keyring=keyring, policy="gdpr", force=True)
    assert clean.manifest.output_records == 120
    assert verify_manifest(clean.manifest_path).manifest.output_records == 120
