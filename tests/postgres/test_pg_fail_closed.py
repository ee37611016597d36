"""Fail closed on PostgreSQL: the server stopped in the middle of a RAG session blocks retrieval (the audit
record cannot be written, the keyring state cannot be checked), and a dataset run publishes nothing;
once the server is back the same objects work again, without a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from pgcluster import PgLog

from guardrail import Guardrail
from guardrail.access import Principal
from guardrail.audit import iter_records, verify
from guardrail.datasets import redact_file
from guardrail.keys import Keyring
from guardrail.keys_pg import move_state
from guardrail.llama_index.guard import RetrievalBlocked
from guardrail.llama_index.hashing import HashingEmbedding

pytestmark = pytest.mark.slow

NOTE = (
    "Discharge plan for Harold Finch (MRN 88412095), 94 y/o, CHF: furosemide 40 mg daily. "
    "Follow-up on March 3, 2025 with Dr. Amara Okafor."
)
CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")


def test_server_stopped_mid_session_blocks_retrieval_then_recovers(pg: PgLog, tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    ring = move_state(tmp_path / "keys", pg.writer)
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=ring, audit_log=pg.writer, tenant="acme")
    index = VectorStoreIndex.from_documents(
        [Document(text=NOTE, metadata={"subjects": ["patient-88412095"]})],
        storage_context=gr.storage_context(),
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=3))
    with gr.acting_as(CLINICIAN):
        assert NOTE in {n.node.get_content() for n in retriever.retrieve("discharge plan")}  # control
    pg.cluster.stop()
    try:
        time.sleep(ring.refresh_seconds)  # also past the keyring state's staleness bound
        with gr.acting_as(CLINICIAN), pytest.raises(RetrievalBlocked) as info:
            retriever.retrieve("discharge plan")
        assert "writer-secret" not in str(info.value)
    finally:
        pg.cluster.restart()
    with gr.acting_as(CLINICIAN):  # the same objects, the same process
        assert NOTE in {n.node.get_content() for n in retriever.retrieve("discharge plan")}
    gr.close()
    report = verify(pg.reader)
    assert report.ok, report.message
    retrievals = [r for r in iter_records(pg.reader) if r["event"]["category"] == "rag.retrieval"]
    assert [r["event"]["outcome"] for r in retrievals] == ["success", "success"]
    raw = json.dumps(list(iter_records(pg.reader)))
    assert "Harold Finch" not in raw


def test_dataset_run_publishes_nothing_while_the_server_is_down(pg: PgLog, tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    ring = move_state(tmp_path / "keys", pg.writer)
    src = tmp_path / "notes.jsonl"
    src.write_text(
        "".join(
            json.dumps({"text": f"Patient Harold Finch{i} was seen at Mercy Hospital on March 3, 2025."})
            + "\n"
            for i in range(5)
        )
    )
    vault = pg.writer + "&vault=datasets"
    first = redact_file(
        src, tmp_path / "ok.jsonl", keyring=ring, policy="hipaa-safe-harbor", audit_log=pg.writer, vault=vault
    )
    published = (tmp_path / "ok.jsonl").read_text()  # the positive control: with the server up it publishes
    assert first.output == tmp_path / "ok.jsonl"
    assert len(published.splitlines()) == 5
    assert "Harold" not in published
    assert "<PERSON_" in published  # vault tokens
    pg.cluster.stop()
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - any of audit, vault, keyring: all refuse
            redact_file(
                src,
                tmp_path / "down.jsonl",
                keyring=ring,
                policy="hipaa-safe-harbor",
                audit_log=pg.writer,
                vault=vault,
            )
    finally:
        pg.cluster.restart()
    assert not (tmp_path / "down.jsonl").exists()
    assert not list(tmp_path.glob("down.jsonl*"))  # no partial output, no manifest
    again = redact_file(
        src,
        tmp_path / "again.jsonl",
        keyring=ring,
        policy="hipaa-safe-harbor",
        audit_log=pg.writer,
        vault=vault,
    )
    assert again.output == tmp_path / "again.jsonl"
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "ok.jsonl").read_text()  # same vault tokens
