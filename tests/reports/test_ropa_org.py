"""`guardrail report ropa --org org.yaml` fills the controller, DPO, data subjects, retention, transfer and
organisational fields the log cannot know; fields left out stay TO BE COMPLETED; a bad file is a
one-line error naming the file and the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _report_helpers import synthetic_events, write_log

ORG = """
controller: {name: "Riverside Clinic", address: "1 River St, Springfield", contact: "privacy@example.org"}
dpo: {name: "A. Data", contact: "dpo@example.org"}
data_subjects: [patients, staff]
retention: "clinical notes 10 years after the last visit"
transfers: "none outside the EEA"
organisational_measures: "annual training, confidentiality clauses, incident response plan"
"""


def _ropa(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", "report", "ropa", "audit", "-o", "ropa.json", *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def _facts(data: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for section in data["sections"]:  # type: ignore[attr-defined]
        for block in section["blocks"]:
            if block.get("type") == "facts":
                out.update(block["items"])
    return out


def test_org_file_fills_what_the_log_cannot_know(tmp_path: Path) -> None:
    write_log(tmp_path / "audit", synthetic_events())
    (tmp_path / "org.yaml").write_text(ORG)
    done = _ropa(tmp_path, "--org", "org.yaml")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "ropa.json").read_text()
    facts = _facts(json.loads(text))
    assert facts["name and contact details of the controller"] == (
        "Riverside Clinic, 1 River St, Springfield, privacy@example.org"
    )
    assert facts["data protection officer"] == "A. Data, dpo@example.org"
    assert "clinical notes 10 years after the last visit" in str(
        facts["envisaged time limits per data category"]
    )
    assert facts["third countries or international organisations, and safeguards"] == "none outside the EEA"
    assert "annual training" in str(facts["organisational measures"])
    assert "patients, staff" in json.dumps(facts)
    # left out of the file: still for the controller to complete
    assert "joint controller" in json.dumps(facts["joint controller, if any"])
    assert "TO BE COMPLETED" in text or '"blank"' in text
    # positive control: without --org the controller is a blank
    (tmp_path / "ropa.json").unlink()
    assert _ropa(tmp_path).returncode == 0
    bare = _facts(json.loads((tmp_path / "ropa.json").read_text()))
    assert "Riverside" not in json.dumps(bare)


def test_a_bad_org_file_is_a_clear_error(tmp_path: Path) -> None:
    write_log(tmp_path / "audit", synthetic_events())
    (tmp_path / "org.yaml").write_text(ORG + "controler: typo\n")
    done = _ropa(tmp_path, "--org", "org.yaml")
    assert done.returncode == 2
    assert "org.yaml: --org at controler: unknown key" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ropa.json").exists()
