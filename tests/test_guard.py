"""Guarded retrieval: decisions per principal, redaction from stored spans, one audit event per
retrieval, fail closed on detection, decryption and audit failures; stored nodes never mutated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter

from guardrail import Guardrail
from guardrail.access import AccessDenied, Principal
from guardrail.audit import verify
from guardrail.errors import ConfigError
from guardrail.keys import Keyring
from guardrail.llama_index.guard import SPANS_KEY, RetrievalBlocked
from guardrail.llama_index.hashing import HashingEmbedding

NOTE = (
    "Discharge plan for Harold Finch (MRN 88412095), 94 y/o, CHF: furosemide 40 mg daily. "
    "Follow-up on March 3, 2025 with Dr. Amara Okafor."
)
CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")
RESEARCHER = Principal("r-1", ["researcher"], "research")
SUPPORT = Principal("s-1", ["support"], "support")


def _build(tmp_path: Path, **kwargs: Any) -> tuple[Guardrail, Any, Any]:
    if not (tmp_path / "keys").exists():
        Keyring.create(tmp_path / "keys")
    gr = Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme"
    )
    storage = gr.storage_context()
    docs = [
        Document(text=NOTE, metadata={"subjects": ["patient-88412095"], "title": "Finch discharge"}),
        Document(text="Visiting hours are 10:00 to 20:00.", metadata={"classification": "public"}),
    ]
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=storage,
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    return gr, storage, gr.guard(index.as_retriever(similarity_top_k=5, **kwargs))


def _lines(directory: Path) -> list[str]:
    out = []
    for segment in sorted(directory.glob("segment-*.jsonl")):
        out.extend(line for line in segment.read_text(encoding="utf-8").splitlines() if line.strip())
    return out


def test_each_principal_gets_what_the_policy_says(tmp_path: Path) -> None:
    gr, _, retriever = _build(tmp_path)
    with gr.acting_as(CLINICIAN):
        seen = {n.node.get_content() for n in retriever.retrieve("discharge plan CHF")}
    assert NOTE in seen  # treatment: minimum-necessary exemption
    with gr.acting_as(RESEARCHER):
        redacted = [n.node for n in retriever.retrieve("discharge plan CHF")]
    text = " ".join(n.get_content() for n in redacted)
    for value in ("Harold Finch", "88412095", "Amara Okafor", "March 3"):
        assert value not in text
    assert "90+" in text
    assert all("Finch" not in str(n.metadata) for n in redacted)  # metadata redacted too
    assert all(SPANS_KEY not in n.metadata for n in redacted)
    with gr.acting_as(SUPPORT):
        support = [n.node.get_content() for n in retriever.retrieve("discharge plan CHF")]
    assert support == ["Visiting hours are 10:00 to 20:00."]  # PHI denied, public allowed
    gr.close()
    report = verify(tmp_path / "audit")
    assert report.ok
    events = [json.loads(x) for x in _lines(tmp_path / "audit")]
    retrievals = [e for e in events if e["event"]["category"] == "rag.retrieval"]
    assert len(retrievals) == 3  # one per retrieval
    # the support agent's query carried the classifications it may see: the PHI node never left the store
    assert retrievals[2]["retrieval"]["returned"] == 1
    assert all(r["labels"] == ["public"] for r in retrievals[2]["resources"])
    assert retrievals[2]["policy"]["prefilter"] == ["public", "internal"]  # what support may ever see
    raw = "\n".join(_lines(tmp_path / "audit"))
    for value in ("Harold Finch", "88412095", "discharge plan", "patient-88412095"):
        assert value not in raw  # no PII, no query text, subjects only as keyed references


def test_no_principal_is_denied_and_audited(tmp_path: Path) -> None:
    _, _, retriever = _build(tmp_path)
    with pytest.raises(AccessDenied):
        retriever.retrieve("discharge plan")
    events = [json.loads(x) for x in _lines(tmp_path / "audit")]
    assert events[-1]["event"]["outcome"] == "denied"


def test_stored_nodes_are_never_mutated(tmp_path: Path) -> None:
    gr, storage, retriever = _build(tmp_path)
    with gr.acting_as(RESEARCHER):
        retriever.retrieve("discharge plan CHF")
    with gr.release_all(reason="test: read the stored originals"):
        originals = [n.get_content() for n in storage.vector_store.get_nodes()]
    assert NOTE in originals


def test_audit_write_failure_fails_closed(tmp_path: Path) -> None:
    gr, _, retriever = _build(tmp_path)
    gr.audit.close()  # a closed log cannot write: the retrieval must not return anything
    with gr.acting_as(CLINICIAN), pytest.raises(RetrievalBlocked, match="audit record"):
        retriever.retrieve("discharge plan CHF")


def test_detection_failure_fails_closed(tmp_path: Path) -> None:
    gr, storage, _ = _build(tmp_path)

    class Broken:
        name = "broken"

        def detect(self, text: str) -> list[Any]:
            raise RuntimeError("model crashed")

        def detect_batch(self, texts: list[str]) -> list[list[Any]]:
            raise RuntimeError("model crashed")

    # nodes without stored spans fall back to live detection
    gr._detector = Broken()
    guard = gr._guard
    with gr.release_all(reason="test"):
        node = storage.vector_store.get_nodes()[0].model_copy()
    node.metadata.pop(SPANS_KEY, None)
    node.metadata.pop("_gr_meta_spans", None)
    from guardrail.llama_index.guard import _Request

    with pytest.raises(RetrievalBlocked, match="detection failed"):
        guard._redact(node, "redact", _Request(RESEARCHER))


def test_missing_key_fails_closed(tmp_path: Path) -> None:
    """A key the keyring does not know (lost, not deliberately shredded) fails the retrieval closed."""
    gr, _, retriever = _build(tmp_path)
    ring = tmp_path / "keys" / "keyring.json"
    data = json.loads(ring.read_text())
    data["keys"] = [k for k in data["keys"] if k["scope"] != "tenant"]  # the tenant key is gone
    ring.write_text(json.dumps(data))
    assert gr.keyring is not None
    gr.keyring._cache.clear()
    with gr.acting_as(CLINICIAN), pytest.raises(RetrievalBlocked, match="could not be opened"):
        retriever.retrieve("discharge plan CHF")


def test_guard_needs_an_audit_log(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    index = VectorStoreIndex([], storage_context=gr.storage_context(), embed_model=HashingEmbedding())
    with pytest.raises(ConfigError, match="audit_log"):
        gr.guard(index.as_retriever())


def test_unguarded_retrievals_are_refused_and_recorded(tmp_path: Path) -> None:
    """Closed by default: a plain retriever over an encrypted store gets AccessDenied (naming gr.guard),
    audited as rag.unguarded, outcome denied, even for a principal who could see the data."""
    gr, storage, _ = _build(tmp_path)
    plain = VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=HashingEmbedding())
    with gr.acting_as(CLINICIAN), pytest.raises(AccessDenied, match=r"gr\.guard\("):
        plain.as_retriever().retrieve("discharge plan")
    events = [json.loads(x) for x in _lines(tmp_path / "audit")]
    assert events[-1]["event"] == {"category": "rag.unguarded", "action": "R", "outcome": "denied"}
    assert events[-1]["actor"]["ref"] == "dr-chen"


def test_postprocessor_decides_at_the_engine(tmp_path: Path) -> None:
    gr, storage, _ = _build(tmp_path)
    from llama_index.core.schema import NodeWithScore, QueryBundle

    with gr.release_all(reason="test: nodes as a plain store would hand them out"):
        nodes = [NodeWithScore(node=n, score=1.0) for n in storage.vector_store.get_nodes()]
    post = gr.postprocessor()
    with gr.acting_as(SUPPORT):
        kept = post.postprocess_nodes(nodes, QueryBundle("discharge"))
    assert [n.node.get_content() for n in kept] == ["Visiting hours are 10:00 to 20:00."]
    events = [json.loads(x) for x in _lines(tmp_path / "audit")]
    assert events[-1]["retrieval"]["denied"] == 1
    assert "support-no-phi" in events[-1]["policy"]["rule_ids"]


def test_ingestion_and_erasure_are_audited(tmp_path: Path) -> None:
    gr, _, _ = _build(tmp_path)
    gr.erase_subject("patient-88412095")
    gr.close()
    events = [json.loads(x) for x in _lines(tmp_path / "audit")]
    categories = [e["event"]["category"] for e in events]
    assert categories[0] == "policy.load"
    assert "rag.ingest" in categories
    assert "dsar.erasure" in categories
    ingest = next(e for e in events if e["event"]["category"] == "rag.ingest")
    assert ingest["pii"]["counts"]["PERSON"] >= 1
    assert verify(tmp_path / "audit").ok


def test_list_metadata_is_redacted_and_subjects_are_references(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    gr = Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme"
    )
    doc = Document(
        text=NOTE,
        metadata={
            "subjects": ["Harold Finch"],
            "authors": ["Harold Finch", "Dr. Amara Okafor"],
            "title": "Finch",
        },
    )
    index = VectorStoreIndex.from_documents(
        [doc],
        storage_context=gr.storage_context(),
        transformations=[gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    with gr.acting_as(RESEARCHER):
        [hit] = gr.guard(index.as_retriever()).retrieve("discharge")
    assert "Finch" not in json.dumps(hit.node.metadata)
    assert "Okafor" not in json.dumps(hit.node.metadata)
    assert hit.node.metadata["subjects"] == [gr._subject_ref("Harold Finch")]


def test_label_conditioned_allow_rules_survive_the_prefilter(tmp_path: Path) -> None:
    from guardrail.access import possible_classifications
    from guardrail.policy import parse_policy

    policy = parse_policy(
        'name: labels\nversion: "1"\ndetection: {entities: [PERSON]}\naccess:\n  rules:\n'
        "    - {id: billing, effect: allow, roles: [billing], classifications: [phi],\n"
        "       labels_any: [billing]}\n"
        "    - {id: no-special, effect: deny, classifications: [special_category]}\n"
    )
    billing = Principal("b", ["billing"], "payment")
    assert possible_classifications(policy, billing) == ["phi"]
    assert possible_classifications(policy, SUPPORT) == []


def test_redaction_never_changes_the_objects_of_a_plain_store(tmp_path: Path) -> None:
    gr, _, _ = _build(tmp_path)
    from llama_index.core.schema import NodeWithScore

    original = Document(text=NOTE, metadata={"subjects": ["patient-1"]})
    gr.annotator()([original])
    with gr.acting_as(RESEARCHER):
        [kept] = gr.postprocessor().postprocess_nodes([NodeWithScore(node=original, score=1.0)])
    assert "Harold Finch" not in kept.node.get_content()
    assert original.get_content() == NOTE


def test_guard_over_chroma(tmp_path: Path) -> None:
    import chromadb
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from guardrail import Principal as RootPrincipal

    Keyring.create(tmp_path / "keys")
    gr = Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme"
    )
    collection = chromadb.PersistentClient(path=str(tmp_path / "chroma")).get_or_create_collection("guarded")
    storage = gr.storage_context(vector_store=ChromaVectorStore(chroma_collection=collection))
    docs = [
        Document(text=NOTE, metadata={"subjects": ["patient-88412095"]}),
        Document(text="Visiting hours are 10:00 to 20:00.", metadata={"classification": "public"}),
    ]
    index = VectorStoreIndex.from_documents(
        docs, storage_context=storage, transformations=[gr.annotator()], embed_model=HashingEmbedding()
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=5))
    with gr.acting_as(RootPrincipal("r-1", ["researcher"], "research")):
        texts = [n.node.get_content() for n in retriever.retrieve("discharge plan")]
    assert any("<PERSON_1>" in t for t in texts)  # a re-identification code per retrieval
    assert all("Harold Finch" not in t for t in texts)
    with gr.acting_as(SUPPORT):
        assert [n.node.get_content() for n in retriever.retrieve("discharge plan")] == [
            "Visiting hours are 10:00 to 20:00."
        ]
    gr.close()
    assert verify(tmp_path / "audit").ok


def test_guarding_a_query_engine_returns_a_query_engine(tmp_path: Path) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    gr, _, _ = _build(tmp_path)
    index = VectorStoreIndex.from_vector_store(
        gr._storages[0]().vector_stores["default"], embed_model=HashingEmbedding()
    )
    engine = gr.guard(index.as_query_engine(llm=MockLLM(), similarity_top_k=5))
    assert isinstance(engine, RetrieverQueryEngine)
    with gr.acting_as(RESEARCHER):
        response = engine.query("discharge plan CHF")
    sources = " ".join(n.node.get_content() for n in response.source_nodes)
    assert "<PERSON_1>" in sources
    assert "Harold Finch" not in sources
    assert "Harold Finch" not in str(response)


def test_a_retrieval_for_an_outside_recipient_is_an_accountable_disclosure(tmp_path: Path) -> None:
    from guardrail.reports import build_disclosures, subject_ref, write_report

    gr, _, retriever = _build(tmp_path)
    outside = Principal(
        "ext-9", ["researcher"], "research", attributes={"recipient": "Mercy University IRB study 17"}
    )
    with gr.acting_as(outside):
        assert retriever.retrieve("discharge plan CHF")
    with gr.acting_as(RESEARCHER):  # an employee: not a disclosure
        assert retriever.retrieve("discharge plan CHF")
    gr.close()
    records = [json.loads(line) for line in _lines(tmp_path / "audit")]
    disclosed = [r for r in records if "disclosure" in r]
    assert len(disclosed) == 1
    assert disclosed[0]["disclosure"]["recipient"] == "Mercy University IRB study 17"
    assert disclosed[0]["actor"]["ref"] == "ext-9"
    ref = subject_ref(tmp_path / "keys", "patient-88412095", tenant="acme")
    accounting = write_report(
        build_disclosures(tmp_path / "audit", subject_ref=ref, years=6), tmp_path / "disclosures.md"
    ).read_text()
    assert "Mercy University IRB study 17" in accounting
    assert "Harold Finch" not in accounting
