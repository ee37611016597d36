"""An Art. 17 erasure and an Art. 15 report with every piece on PostgreSQL: the dataset export that
included the subject is found in the shared log, the subject's key is shredded in the shared keyring
state, their vault tokens are deleted, the certificate verifies, and `guardrail report dsar` reads the
PostgreSQL log (naming it without the password)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pgcluster import PgLog

from guardrail.audit.pg import read_verifier_key
from guardrail.datasets import redact_file
from guardrail.erasure import erase_subject, verify_certificate
from guardrail.keys import Keyring
from guardrail.keys_pg import move_state

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_erasure_and_dsar_report_on_postgres(pg: PgLog, tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    ring = move_state(tmp_path / "keys", pg.writer)
    src = tmp_path / "visits.jsonl"
    src.write_text(
        "".join(
            json.dumps({"patient": f"pt-{i % 2}", "text": f"Harold Finch{i} was seen at Mercy Hospital."})
            + "\n"
            for i in range(4)
        )
    )
    vault = pg.writer + "&vault=visits"
    redact_file(
        src,
        tmp_path / "out.jsonl",
        keyring=ring,
        policy="hipaa-safe-harbor",
        tenant="acme",
        audit_log=pg.writer,
        vault=vault,
        subject_field="patient",
    )
    ring.encryption_keys("acme", ["pt-0"])  # the subject has a key to shred
    result = erase_subject(
        "pt-0",
        keyring=ring,
        tenant="acme",
        vault=vault,
        audit_log=pg.writer,
        actor="dpo",
        certificate=tmp_path / "certificate.json",
    )
    assert len(result.datasets) == 1  # found in the shared log
    assert result.keys_destroyed
    assert result.vault_tokens_deleted >= 1
    assert verify_certificate(tmp_path / "certificate.json", read_verifier_key(pg.reader))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from guardrail.cli import main; main()",
            "report",
            "dsar",
            pg.reader,
            "--subject-ref",
            result.subject_ref,
            "-o",
            str(tmp_path / "dsar.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "dsar.json").read_text()
    assert "dsar.erasure" in report or "erasure" in report
    assert "reader-secret" not in report
    assert "VERIFIED" in report
