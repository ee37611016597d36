"""Text sent to an embedding service at ingestion is a transfer to a processor: the rag.ingest event
names it (from gr.embedder's model, matched against the policy's processors), and the ROPA and the DSAR
show it as a recipient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from guardrail import Guardrail
from guardrail.audit.verify import iter_records
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.reports import Table, build_dsar, build_ropa

POLICY = """
name: clinic
version: "1.0.0"
detection: {entities: [PERSON, EMAIL_ADDRESS], threshold: 0.4}
processors:
  - {name: "EU embedding API", kind: embedding, role: processor, region: "EU (Frankfurt)",
     transfer: "none (EU)", agreement: "DPA-2025-03", match: [RemoteEmbedding]}
"""


class RemoteEmbedding(HashingEmbedding):
    """Stands for a hosted embedding API (it embeds locally, as HashingEmbedding does)."""


class OtherCloudEmbedding(HashingEmbedding):
    """A hosted embedding API nobody declared."""


def _ingest(tmp_path: Path, embed_model: Any) -> tuple[Path, str]:
    (tmp_path / "clinic.yaml").write_text(POLICY)
    ring = Keyring.create(tmp_path / "keys")
    gr = Guardrail(policy=tmp_path / "clinic.yaml", keyring=tmp_path / "keys", audit_log=tmp_path / "audit",
                   tenant="clinic")  # fmt: skip
    VectorStoreIndex.from_documents(
        [
            Document(
                text="Jo Berg wrote from jo.berg@example.org about the invoice.",
                metadata={"subjects": ["p2"]},
            )
        ],
        storage_context=gr.storage_context(),
        transformations=[SentenceSplitter(), gr.annotator(), gr.embedder(embed_model)],
        embed_model=embed_model,
    )
    gr.close()
    return tmp_path / "audit", ring.token("clinic", "subject-ref", "p2", length=16)


def test_ingestion_names_the_embedding_processor_in_event_ropa_and_dsar(tmp_path: Path) -> None:
    audit, ref = _ingest(tmp_path, RemoteEmbedding())
    ingest = next(r for r in iter_records(audit) if r["event"]["category"] == "rag.ingest")
    assert ingest["processors"] == [
        {"name": "EU embedding API", "kind": "embedding", "role": "processor", "received": "document text",
         "region": "EU (Frankfurt)", "transfer": "none (EU)", "agreement": "DPA-2025-03"}
    ]  # fmt: skip
    ropa = build_ropa(audit, policies=(tmp_path / "clinic.yaml",))
    table = ropa.block("processors")
    assert isinstance(table, Table)
    names = [row[0] for row in table.rows]
    assert "EU embedding API" in names
    facts = dict(build_dsar(audit, subject_ref=ref).block("dsar_summary").items)  # type: ignore[union-attr]
    assert "processor: EU embedding API" in str(facts["recipients (15(1)(c))"])


def test_an_undeclared_embedding_service_is_flagged(tmp_path: Path) -> None:
    audit, _ = _ingest(tmp_path, OtherCloudEmbedding())
    ingest = next(r for r in iter_records(audit) if r["event"]["category"] == "rag.ingest")
    assert ingest["processors"][0]["name"] == "undeclared"
    assert ingest["processors"][0]["class"] == "OtherCloudEmbedding"


def test_a_local_embedding_model_is_no_processor(tmp_path: Path) -> None:
    audit, _ = _ingest(tmp_path, HashingEmbedding())
    ingest = next(r for r in iter_records(audit) if r["event"]["category"] == "rag.ingest")
    assert "processors" not in ingest
