"""`guardrail retention apply` with per-purpose periods and per-subject key shredding (issue 13, point 7):
a chunk expires at the shortest of its classification's and its purposes' periods; a subject's key is
shredded once every chunk sealed under it is deleted (a restored backup then stays closed), and kept
while the log shows another chunk of the subject kept anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from guardrail import Guardrail
from guardrail.audit.verify import iter_records
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.reports import build_ropa
from guardrail.retention import apply_retention

POLICY = """
name: clinic
version: "1.0.0"
detection: {entities: [PERSON, EMAIL_ADDRESS], threshold: 0.4}
purposes:
  support: {code: SUPPORT, name: "patient support", gdpr_basis: "6(1)(b)"}
retention:
  classifications: {phi: 6y, internal: 1y}
  purposes: {support: 90d}
  audit_log: 6y
"""
INVOICE = "Jo Berg asked about invoice 7781 by e-mail."
DISCHARGE = "Discharge summary for Ada Finch: heart failure, furosemide."
HOURS = "Clinic opening hours: 8:00 to 18:00 on weekdays."
LAB = "Lab result for Carl Moss: potassium normal."
ALLERGY = "Allergy note for Carl Moss: penicillin."


def _ingest(gr: Guardrail, directory: Path, docs: list[Document]) -> None:
    storage = gr.storage_context()
    VectorStoreIndex.from_documents(
        docs,
        storage_context=storage,
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    storage.persist(persist_dir=str(directory))


def _texts(root: Path, directory: Path) -> list[str]:
    gr = Guardrail(policy=root / "clinic.yaml", keyring=root / "keys", tenant="clinic")
    with gr.release_all(reason="test: what is left on disk"):
        return [n.get_content() for n in gr.load_storage_context(directory).vector_store.get_nodes()]


@pytest.fixture
def world(tmp_path: Path) -> Path:
    (tmp_path / "clinic.yaml").write_text(POLICY)
    Keyring.create(tmp_path / "keys")
    gr = Guardrail(policy=tmp_path / "clinic.yaml", keyring=tmp_path / "keys", audit_log=tmp_path / "audit",
                   tenant="clinic")  # fmt: skip
    _ingest(
        gr,
        tmp_path / "kb",
        [
            Document(text=DISCHARGE, metadata={"subjects": ["p1"], "classification": "phi"}),
            Document(
                text=INVOICE,
                metadata={"subjects": ["p2"], "classification": "internal", "purposes": ["support"]},
            ),
            Document(text=HOURS, metadata={"classification": "internal"}),
            Document(text=LAB, metadata={"subjects": ["p3"], "classification": "internal"}),
        ],
    )
    # the same subject's PHI in a second store that a retention run may not be given
    _ingest(
        gr,
        tmp_path / "kb-ward",
        [Document(text=ALLERGY, metadata={"subjects": ["p3"], "classification": "phi"})],
    )
    gr.close()
    return tmp_path


def _apply(root: Path, days: int, *, dry_run: bool = False, stores: tuple[str, ...] = ("kb",)) -> object:
    return apply_retention(
        keyring=Keyring.open(root / "keys"),
        policy=root / "clinic.yaml",
        tenant="clinic",
        audit_log=root / "audit",
        stores=[root / s for s in stores],
        actor="records-officer",
        dry_run=dry_run,
        now=datetime.now(UTC) + timedelta(days=days),
    )


def test_ingest_events_record_purposes_and_subjects_per_chunk(world: Path) -> None:
    ingest = [r for r in iter_records(world / "audit") if r["event"]["category"] == "rag.ingest"]
    resources = [res for r in ingest for res in r["resources"]]
    assert any(res.get("purposes") == ["support"] for res in resources)
    assert all(len(res.get("subjects", [])) <= 1 for res in resources)  # each chunk its own subject
    assert sum(1 for res in resources if not res.get("subjects")) == 1  # the opening hours
    refs = {s for r in ingest for res in r["resources"] for s in res.get("subjects", [])}
    assert refs
    assert not refs & {"p1", "p2", "p3"}  # keyed references only
    assert '"p2"' not in json.dumps(ingest)


def test_a_purpose_period_expires_a_chunk_and_shreds_its_subjects_key(world: Path) -> None:
    ring = Keyring.open(world / "keys")
    p2_keys = ring.subject_key_ids("clinic", "p2")
    assert p2_keys
    shutil.copytree(world / "kb", world / "kb-backup")  # a backup taken before the run
    report = build_ropa(
        world / "audit", policies=(world / "clinic.yaml",), clock=datetime.now(UTC) + timedelta(days=100)
    )
    overdue = str(
        dict(report.block("retention").items)["chunks past retention, not yet deleted (per the log)"]
    )  # type: ignore[union-attr]
    assert "OVERDUE: 1 (purpose support 1)" in overdue
    dry = _apply(world, 100, dry_run=True)
    assert (dry.chunks, dry.keys_shredded) == (1, tuple(p2_keys))  # type: ignore[attr-defined]
    assert INVOICE in _texts(world, world / "kb")  # a dry run deletes nothing ...
    assert Keyring.open(world / "keys").subject_key_ids("clinic", "p2") == p2_keys
    assert {i.state for i in Keyring.open(world / "keys").list_keys() if i.id in p2_keys} == {"primary"}
    done = _apply(world, 100)
    assert done.chunks == 1  # type: ignore[attr-defined]
    assert done.keys_shredded == tuple(p2_keys)  # type: ignore[attr-defined]
    texts = _texts(world, world / "kb")
    assert INVOICE not in texts
    assert {DISCHARGE, HOURS, LAB} <= set(texts)  # within their periods (internal 1y, phi 6y)
    states = {i.id: i.state for i in Keyring.open(world / "keys").list_keys()}
    assert {states[k] for k in p2_keys} == {"destroyed"}
    # the backup taken before the run still holds the chunk, sealed under the shredded key: closed
    backup = _texts(world, world / "kb-backup")
    assert INVOICE not in backup
    assert DISCHARGE in backup  # positive control: the backup opens otherwise
    event = [r for r in iter_records(world / "audit") if r["event"]["category"] == "retention.apply"][-1]
    assert event["retrieval"]["keys_shredded"] == 1
    assert [r["id"] for r in event["resources"] if r["type"] == "key"] == p2_keys
    assert [r["labels"] for r in event["resources"] if r["type"] == "chunk"] == [["purpose support"]]
    assert event["actor"]["ref"] == "records-officer"


def test_a_subjects_key_is_kept_while_the_log_shows_their_other_chunks(world: Path) -> None:
    p3_keys = Keyring.open(world / "keys").subject_key_ids("clinic", "p3")
    done = _apply(world, 400)  # internal (1y) expired: the hours and Carl Moss's lab result
    assert done.chunks == 3  # type: ignore[attr-defined]  # incl. the support chunk (90 days)
    assert LAB not in _texts(world, world / "kb")
    # p3's allergy note (phi, 6y) lives in kb-ward, not given to this run: the log shows it, key kept
    assert all(k not in done.keys_shredded for k in p3_keys)  # type: ignore[attr-defined]
    assert ALLERGY in _texts(world, world / "kb-ward")
    # seven years on, both stores given: every chunk of p3 is gone, so is the key
    later = _apply(world, 7 * 365, stores=("kb", "kb-ward"))
    assert set(p3_keys) <= set(later.keys_shredded)  # type: ignore[attr-defined]
    assert _texts(world, world / "kb-ward") == []
    assert _texts(world, world / "kb") == []


def test_cli_dry_run_reports_keys_to_shred(world: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "guardrail.cli", "retention", "apply", "--keyring", "keys", "--policy",
         "clinic.yaml", "--audit-log", "audit", "--store", "kb", "--dry-run"],
        cwd=world, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "past retention (dry run, nothing deleted): 0 chunk(s)" in proc.stdout
    assert "0 subject key(s) to shred" in proc.stdout


def test_the_activity_report_shows_the_retention_in_force_and_what_is_overdue(world: Path) -> None:
    from guardrail.reports import build_report

    def facts() -> dict[str, object]:
        clock = datetime.now(UTC) + timedelta(days=100)
        block = build_report(world / "audit", policies=(world / "clinic.yaml",), clock=clock).block(
            "retention_in_force"
        )
        return dict(block.items)  # type: ignore[union-attr]

    before = facts()
    assert "phi data: 6 year(s)" in str(before["retention"])
    assert "data kept for support: 3 month(s)" in str(before["retention"])
    assert str(before["chunks past retention, not yet deleted (per the log)"]).startswith(
        "OVERDUE: 1 (purpose support 1)"
    )
    _apply(world, 100)
    assert facts()["chunks past retention, not yet deleted (per the log)"] == "none"


def test_an_erased_subjects_chunks_are_not_reported_overdue(world: Path) -> None:
    from guardrail.erasure import erase_subject

    clock = datetime.now(UTC) + timedelta(days=100)

    def overdue() -> object:
        report = build_ropa(world / "audit", policies=(world / "clinic.yaml",), clock=clock)
        return dict(report.block("retention").items)["chunks past retention, not yet deleted (per the log)"]  # type: ignore[union-attr]

    assert str(overdue()).startswith("OVERDUE: 1")  # positive control: p2's support chunk
    erase_subject("p2", keyring=Keyring.open(world / "keys"), tenant="clinic", stores=[world / "kb"],
                  audit_log=world / "audit", actor="dpo-anna", request_ref="DSAR-3")  # fmt: skip
    assert overdue() == "none"  # the erasure deleted it
    assert _apply(world, 100).chunks == 0  # type: ignore[attr-defined]
