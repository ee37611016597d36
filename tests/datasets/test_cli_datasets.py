"""``guardrail redact/scan/reidentify/manifest`` on datasets, as real subprocesses: interruption by Ctrl-C
and SIGKILL with ``--resume``, the signed manifest, the gate and audited re-identification."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NAMES = ["Olivia Bennett", "Harold Finch", "Lucia Moreno", "Walter Kowalski", "Priya Natarajan"]


def cli(*args: object, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("GUARDRAIL_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "guardrail.cli", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = cli(*args, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    assert run("keys", "init", "keys", cwd=d).returncode == 0
    lines = []
    for i in range(1500):
        name = NAMES[i % len(NAMES)]
        user = f"Hello, I am {name}; my phone is 617-555-{i % 10000:04d}."
        lines.append(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "You answer clinic questions."},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": f"Thanks {name.split()[0]}, noted."},
                    ]
                }
            )
        )
    (d / "train.jsonl").write_text("\n".join(lines) + "\n")
    return d


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)


def test_ctrl_c_and_sigkill_then_resume_give_identical_output(work: Path) -> None:
    common = ("--keyring", "keys", "--policy", "gdpr", "--checkpoint-seconds", "0")
    whole = run("redact", "train.jsonl", "-o", "whole.jsonl", *common, cwd=work)
    assert whole.returncode == 0, whole.stderr

    checkpoint = work / ".out.jsonl.guardrail-checkpoint.json"
    proc = cli("redact", "train.jsonl", "-o", "out.jsonl", *common, cwd=work)
    _wait_for(checkpoint, proc)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "--resume" in err
    assert not (work / "out.jsonl").exists()

    proc = cli("redact", "train.jsonl", "-o", "out.jsonl", *common, "--resume", cwd=work)
    first = json.loads(checkpoint.read_text())["position"]
    deadline = time.monotonic() + 120
    while json.loads(checkpoint.read_text())["position"] == first:  # it made progress, then dies
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (work / "out.jsonl").exists()

    done = run("redact", "train.jsonl", "-o", "out.jsonl", *common, "--resume", cwd=work)
    assert done.returncode == 0, done.stderr
    assert "resumed after input line" in done.stderr
    assert (work / "out.jsonl").read_bytes() == (work / "whole.jsonl").read_bytes()
    a = json.loads((work / "out.jsonl.manifest.json").read_text())["manifest"]
    b = json.loads((work / "whole.jsonl.manifest.json").read_text())["manifest"]
    assert {k: a[k] for k in ("findings_before", "input_records", "output_sha256")} == {
        k: b[k] for k in ("findings_before", "input_records", "output_sha256")
    }
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".")) == []


def test_audited_run_manifest_verify_gate_and_reidentify(work: Path) -> None:
    done = run(
        "redact", "train.jsonl", "-o", "h.jsonl", "-k", "keys", "-p", "hipaa-safe-harbor",
        "--audit-log", "audit", "--fail-on", "0", "--actor", "ci", cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "residual findings after redaction: 0" in done.stderr
    verified = run("manifest", "verify", "h.jsonl.manifest.json", "--public-key", "audit/audit.pub", cwd=work)
    assert verified.returncode == 0, verified.stderr
    assert "records: 1500 in, 1500 out" in verified.stdout

    token = re.findall(r"<PERSON_[0-9A-Z]{6}>", (work / "h.jsonl").read_text().splitlines()[0])[0]
    who = ("--principal", "po-1", "--role", "privacy_officer", "--purpose", "operations")
    shown = run("reidentify", token, "-k", "keys", *who, "--audit-log", "audit", cwd=work)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"{token}\t{NAMES[0]}"
    denied = run(
        "reidentify", token, "-k", "keys", "--principal", "x", "--role", "support", "--purpose", "support",
        "--audit-log", "audit", cwd=work,
    )  # fmt: skip
    assert denied.returncode == 1
    assert NAMES[0] not in denied.stdout + denied.stderr
    assert run("audit", "verify", "audit", cwd=work).returncode == 0
    log = (work / "audit" / "segment-000001.jsonl").read_text()
    assert [json.loads(x)["event"]["category"] for x in log.splitlines()] == [
        "ft.scan", "ft.export", "reidentify", "reidentify",
    ]  # fmt: skip
    assert token not in log
    assert NAMES[0] not in log

    # the output changed after signing: verification fails with exit 1
    (work / "h.jsonl").write_text((work / "h.jsonl").read_text().replace("<PERSON_", "<P_", 1))
    tampered = run("manifest", "verify", "h.jsonl.manifest.json", cwd=work)
    assert tampered.returncode == 1
    assert "output_sha256" in tampered.stderr


def test_without_a_keyring_pseudonyms_hold_for_the_run_and_scan_gates(work: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GUARDRAIL_KEYRING"}
    done = subprocess.run(
        [sys.executable, "-m", "guardrail.cli", "redact", "train.jsonl", "-o", "nokeys.jsonl", "-p", "gdpr"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "one-time key" in done.stderr
    text = (work / "nokeys.jsonl").read_text()
    assert "<PERSON_1>" in text
    assert NAMES[0] not in text
    # integrity (not origin) still verifies
    verified = run("manifest", "verify", "nokeys.jsonl.manifest.json", cwd=work)
    assert verified.returncode == 0, verified.stderr
    resumed = subprocess.run(
        [sys.executable, "-m", "guardrail.cli", "redact", "train.jsonl", "-o", "x.jsonl", "--engine", "ray"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert resumed.returncode == 2
    assert "keyring" in resumed.stderr
    scan = run("scan", "train.jsonl", "--json", "--fail-on", "0", cwd=work)
    assert scan.returncode == 1
    summary = json.loads(scan.stdout)
    assert summary["records"] == 1500
    assert summary["by_entity"]["PHONE_NUMBER"]["findings"] == 1500  # none typed as NHS numbers
