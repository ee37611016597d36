"""Document-level classification: a chunk of a document that holds personal data, or names data
subjects, is classified like the document, even when the chunk itself holds no identifier.

The chunk "type 2 diabetes ... metformin" of a patient's note must not reach the support role (no PHI),
on real Simple, Chroma and Qdrant-local stores; the clinician and the researcher still get it (positive
controls), and a document without personal data stays ``internal`` and reaches support.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from guardrail import Guardrail
from guardrail.access import Principal
from guardrail.keys import Keyring
from guardrail.llama_index.guard import SPANS_KEY
from guardrail.llama_index.hashing import HashingEmbedding

IDENTIFYING = "Patient Harold Finch (MRN 88412095) was admitted to the cardiology ward for review."
CLINICAL = "The type 2 diabetes is managed with metformin twice daily and the diet plan continues unchanged."
POLICY_TEXT = "The canteen serves lunch from noon and the type of menu changes every week."
pytestmark = pytest.mark.filterwarnings(
    "ignore:Payload indexes have no effect in the local Qdrant:UserWarning"
)
CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")
RESEARCHER = Principal("r-1", ["researcher"], "research")
SUPPORT = Principal("s-1", ["support"], "support")


def _gr(tmp_path: Path) -> Guardrail:
    if not (tmp_path / "keys").exists():
        Keyring.create(tmp_path / "keys")
    return Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme"
    )


def _splitter() -> SentenceSplitter:
    return SentenceSplitter(chunk_size=24, chunk_overlap=0)  # one sentence per chunk


def _chunks(gr: Guardrail, docs: list[Document]) -> list[Any]:
    return list(gr.annotator()(_splitter()(docs)))


def test_every_chunk_of_a_personal_document_is_phi(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    nodes = _chunks(gr, [Document(text=f"{IDENTIFYING} {CLINICAL}"), Document(text=POLICY_TEXT)])
    clinical = [n for n in nodes if "metformin" in n.get_content()]
    assert len(clinical) == 1
    assert "Finch" not in clinical[0].get_content()  # the split happened between the sentences
    assert clinical[0].metadata[SPANS_KEY] == []  # precondition: the chunk alone holds no identifier
    assert clinical[0].metadata["classification"] == "phi"  # ... and still inherits its document's class
    assert all(n.metadata["classification"] == "phi" for n in nodes if n.ref_doc_id == clinical[0].ref_doc_id)
    (canteen,) = [n for n in nodes if "canteen" in n.get_content()]
    assert canteen.metadata["classification"] == "internal"  # control: no personal data, not PHI


def test_a_document_naming_data_subjects_is_phi(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    nodes = _chunks(gr, [Document(text=CLINICAL, metadata={"subjects": ["patient-7"]})])
    assert nodes[0].metadata[SPANS_KEY] == []
    assert nodes[0].metadata["classification"] == "phi"


def test_an_explicit_label_is_kept(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    labelled = Document(text=f"{IDENTIFYING} {CLINICAL}", metadata={"classification": "confidential"})
    nodes = _chunks(gr, [labelled])
    assert {n.metadata["classification"] for n in nodes} == {"confidential"}


def test_a_later_call_inherits_what_an_earlier_call_found(tmp_path: Path) -> None:
    """Chunks of one document annotated in two calls (e.g. two insert_nodes batches)."""
    gr = _gr(tmp_path)
    annotator = gr.annotator()
    chunks = _splitter()([Document(text=f"{IDENTIFYING} {CLINICAL}")])
    first = [n for n in chunks if "Finch" in n.get_content()]
    second = [n for n in chunks if "metformin" in n.get_content()]
    annotator(first)
    annotator(second)
    assert second[0].metadata[SPANS_KEY] == []
    assert second[0].metadata["classification"] == "phi"


def test_support_never_gets_the_clinical_chunk(tmp_path: Path, backend: Any) -> None:
    """On each store: Simple, Chroma, Qdrant local (the ``backend`` fixture)."""
    gr = _gr(tmp_path)
    storage = gr.storage_context(vector_store=backend.vector_store())
    index = VectorStoreIndex.from_documents(
        [Document(text=f"{IDENTIFYING} {CLINICAL}"), Document(text=POLICY_TEXT)],
        storage_context=storage,
        transformations=[_splitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=5))
    query = "type 2 diabetes metformin diet plan"

    def seen(principal: Principal) -> str:
        with gr.acting_as(principal):
            return " ".join(n.node.get_content() for n in retriever.retrieve(query))

    support = seen(SUPPORT)
    assert "metformin" not in support
    assert "canteen" in support  # positive control: support does get the non-personal document
    assert "metformin" in seen(CLINICIAN)
    researcher = seen(RESEARCHER)
    assert "metformin" in researcher  # Safe Harbor redaction, not denial
    assert "Harold Finch" not in researcher
    gr.close()
