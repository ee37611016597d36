"""The guard on the paths around the leak matrix: order of calls, filters as written, the user's retriever
never changed, async without blocking the loop (and an async-only Qdrant client), FAISS refused, spans
bound to the text they were computed on, fail closed when late metadata cannot be checked."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import Document, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from guardrail import Guardrail
from guardrail.access import AccessDenied, Principal
from guardrail.errors import ConfigError
from guardrail.keys import Keyring
from guardrail.llama_index.guard import RetrievalBlocked

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

TENANT = "clinic"
NOTE = (
    "Discharge summary for Harold Finch (MRN 88412095): congestive heart failure, furosemide 40 mg daily. "
    "Next of kin Grace Finch, phone 617-555-0143."
)
PUBLIC = "Visiting hours on the cardiology ward are 10:00 to 20:00 every day."
INTERNAL = "The cardiology ward rota is published every Friday for the nursing staff."
CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")
RESEARCHER = Principal("r-1", ["researcher"], "research")
SUPPORT = Principal("s-1", ["support"], "support")
QUERY = "cardiology ward discharge heart failure visiting hours rota"


def _gr(root: Path, **kwargs: Any) -> Guardrail:
    if not (root / "keys" / "keyring.json").exists():
        Keyring.create(root / "keys")
    return Guardrail(
        policy="hipaa-safe-harbor", keyring=root / "keys", audit_log=root / "audit", tenant=TENANT, **kwargs
    )


def _nodes() -> list[TextNode]:
    return [
        TextNode(text=NOTE, metadata={"subjects": ["patient-88412095"], "ward": "cardiology"}),
        TextNode(text=PUBLIC, metadata={"classification": "public", "ward": "cardiology"}),
        TextNode(text=INTERNAL, metadata={"classification": "internal", "ward": "cardiology"}),
    ]


def _index(gr: Guardrail, storage: Any = None, **kwargs: Any) -> VectorStoreIndex:
    from conftest import HashEmbedding

    return VectorStoreIndex(
        gr.annotator()(_nodes()),
        storage_context=storage if storage is not None else gr.storage_context(),
        embed_model=HashEmbedding(),
        **kwargs,
    )


def _events(root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for f in sorted((root / "audit").glob("segment-*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


# --------------------------------------------------------------------------- order of calls


def test_storage_opened_after_guard_and_reads_before_it_are_closed(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    early = _index(gr)
    # a retrieval before any guard exists: refused
    with gr.acting_as(CLINICIAN), pytest.raises(AccessDenied, match=r"gr\.guard\("):
        early.as_retriever().retrieve(QUERY)
    guarded = gr.guard(early.as_retriever(similarity_top_k=3))
    # a storage made after guard(), persisted and reopened by a second Guardrail on the same keyring
    late_storage = gr.storage_context()
    late = _index(gr, late_storage)
    late_storage.persist(persist_dir=str(tmp_path / "kb"))
    second = _gr(tmp_path)
    reopened = second.load_storage_context(tmp_path / "kb")
    from conftest import HashEmbedding

    again = VectorStoreIndex.from_vector_store(reopened.vector_store, embed_model=HashEmbedding())
    with gr.acting_as(CLINICIAN):
        for index in (late, again):
            with pytest.raises(AccessDenied):
                index.as_retriever().retrieve(QUERY)
        # positive control: through a guard (either Guardrail's), the clinician sees the note
        assert any("Harold Finch" in h.node.get_content() for h in guarded.retrieve(QUERY))
        assert any(
            "Harold Finch" in h.node.get_content()
            for h in second.guard(again.as_retriever(similarity_top_k=3)).retrieve(QUERY)
        )
    with gr.acting_as(RESEARCHER):
        texts = [
            h.node.get_content() for h in gr.guard(again.as_retriever(similarity_top_k=3)).retrieve(QUERY)
        ]
    assert texts
    assert not any("Finch" in t for t in texts)
    refused = [e for e in _events(tmp_path) if e["event"]["category"] == "rag.unguarded"]
    assert len(refused) >= 3
    assert {e["event"]["outcome"] for e in refused} == {"denied"}


def test_maintenance_is_explicit_and_audited(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    index = _index(gr)
    with pytest.raises(ConfigError, match="reason"), gr.release_all(reason=""):
        pass
    with gr.release_all(reason="rebuild the keyword index"):
        raw = index.as_retriever(similarity_top_k=3).retrieve(QUERY)
        with gr.acting_as(SUPPORT):  # a guarded request inside maintenance is still decided
            guarded = gr.guard(index.as_retriever(similarity_top_k=3)).retrieve(QUERY)
    assert any("Harold Finch" in h.node.get_content() for h in raw)
    assert all("Finch" not in h.node.get_content() for h in guarded)
    assert guarded
    maintenance = [e for e in _events(tmp_path) if e["event"]["category"] == "store.maintenance"]
    assert maintenance[-1]["request"] == {"reason": "rebuild the keyword index"}


# --------------------------------------------------------------------------- filters and objects


def _ward(value: str) -> MetadataFilter:
    return MetadataFilter(key="classification", value=value, operator=FilterOperator.EQ)


@pytest.mark.parametrize("kind", ["simple", "chroma", "qdrant"])
def test_or_filters_are_kept_and_the_retriever_is_not_mutated(tmp_path: Path, kind: str) -> None:
    gr = _gr(tmp_path)
    store: Any = None
    if kind == "chroma":
        import chromadb
        from chromadb.config import Settings
        from llama_index.vector_stores.chroma import ChromaVectorStore

        client = chromadb.PersistentClient(
            path=str(tmp_path / "c"), settings=Settings(anonymized_telemetry=False)
        )
        store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("filters"))
    elif kind == "qdrant":
        import qdrant_client
        from llama_index.vector_stores.qdrant import QdrantVectorStore

        store = QdrantVectorStore(
            client=qdrant_client.QdrantClient(path=str(tmp_path / "q")), collection_name="f"
        )
    index = _index(gr, gr.storage_context(vector_store=store))
    either = MetadataFilters(filters=[_ward("public"), _ward("phi")], condition=FilterCondition.OR)
    inner = index.as_retriever(similarity_top_k=5, filters=either)
    before = copy.deepcopy(inner._filters)
    retriever = gr.guard(inner)
    with gr.acting_as(CLINICIAN):
        texts = sorted(h.node.get_content() for h in retriever.retrieve(QUERY))
    assert texts == sorted([NOTE, PUBLIC])  # OR kept: both, and not the internal note
    with gr.acting_as(SUPPORT):  # ANDed with what support may see: the public note only
        assert [h.node.get_content() for h in retriever.retrieve(QUERY)] == [PUBLIC]
    assert inner._filters == before  # the user's retriever and filters are unchanged
    assert inner._filters is either


def test_nested_and_not_filters_on_simple(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    index = _index(gr)
    nested = MetadataFilters(
        filters=[
            MetadataFilters(filters=[_ward("phi")], condition=FilterCondition.NOT),
            MetadataFilters(filters=[_ward("public"), _ward("internal")], condition=FilterCondition.OR),
        ],
        condition=FilterCondition.AND,
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=5, filters=nested))
    with gr.acting_as(CLINICIAN):
        texts = sorted(h.node.get_content() for h in retriever.retrieve(QUERY))
    assert texts == sorted([PUBLIC, INTERNAL])


# --------------------------------------------------------------------------- async


def test_aretrieve_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """Live detection (a plain store, unannotated nodes) runs in a worker thread: a concurrent task keeps
    ticking while the guarded call runs."""
    from conftest import HashEmbedding

    gr = _gr(tmp_path)
    _ = gr.detector
    docs = [Document(text=f"{NOTE} Visit {i}: weight stable, ankles less swollen.") for i in range(12)]
    index = VectorStoreIndex.from_documents(docs, embed_model=HashEmbedding())
    retriever = gr.guard(index.as_retriever(similarity_top_k=12))

    async def main() -> tuple[int, float, list[Any]]:
        beats = 0
        stop = asyncio.Event()

        async def heartbeat() -> None:
            nonlocal beats
            while not stop.is_set():
                beats += 1
                await asyncio.sleep(0.002)

        task = asyncio.create_task(heartbeat())
        await asyncio.sleep(0)
        with gr.acting_as(RESEARCHER):
            started = time.perf_counter()
            beats = 0
            hits = await retriever.aretrieve(QUERY)
            took = time.perf_counter() - started
            during = beats
        stop.set()
        await task
        return during, took, hits

    during, took, hits = asyncio.run(main())
    assert hits
    assert all("Harold Finch" not in h.node.get_content() for h in hits)
    assert took > 0.05, "the call should do real work (live detection of 12 nodes)"
    assert during >= 5, f"the event loop was blocked: {during} heartbeats in {took * 1000:.0f} ms"


def test_async_only_qdrant_client(tmp_path: Path) -> None:
    import qdrant_client
    from conftest import HashEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    gr = _gr(tmp_path)

    async def main() -> tuple[list[str], list[str]]:
        aclient = qdrant_client.AsyncQdrantClient(location=":memory:")
        store = QdrantVectorStore(aclient=aclient, collection_name="async-only")
        storage = gr.storage_context(vector_store=store)
        nodes = gr.annotator()(_nodes())
        embed = HashEmbedding()
        for node in nodes:
            node.embedding = embed.get_text_embedding(node.get_content())
        await storage.vector_store.async_add(nodes)
        index = VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=embed)
        retriever = gr.guard(index.as_retriever(similarity_top_k=3))
        with gr.acting_as(CLINICIAN):
            clinician = [h.node.get_content() for h in await retriever.aretrieve(QUERY)]
        with gr.acting_as(RESEARCHER):
            researcher = [h.node.get_content() for h in await retriever.aretrieve(QUERY)]
        await aclient.close()
        return clinician, researcher

    clinician, researcher = asyncio.run(main())
    assert NOTE in clinician
    assert researcher
    assert not any("Finch" in t for t in researcher)


def test_aquery_of_a_guarded_engine(tmp_path: Path) -> None:
    from llama_index.core.llms import MockLLM

    gr = _gr(tmp_path)
    engine = gr.guard(_index(gr).as_query_engine(llm=MockLLM(), similarity_top_k=3))

    async def main() -> Any:
        with gr.acting_as(RESEARCHER):
            return await engine.aquery(QUERY)

    response = asyncio.run(main())
    assert response.source_nodes
    assert "Finch" not in str(response)
    assert "Finch" not in " ".join(n.node.get_content() for n in response.source_nodes)


# --------------------------------------------------------------------------- stores and spans


def test_faiss_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    import faiss
    from llama_index.vector_stores.faiss import FaissVectorStore

    gr = _gr(tmp_path)
    with pytest.raises(ConfigError, match="metadata filters"):
        gr.storage_context(vector_store=FaissVectorStore(faiss_index=faiss.IndexFlatL2(16)))


def test_annotator_before_the_splitter_never_splices_at_wrong_offsets(tmp_path: Path) -> None:
    """Spans computed on the document do not fit the chunks: their digest does not match, the chunk is
    detected again."""
    from conftest import HashEmbedding

    gr = _gr(tmp_path)
    filler = " Daily weights were recorded and fluid intake was limited." * 6
    doc = Document(text=filler + " " + NOTE, metadata={"subjects": ["patient-88412095"]})
    index = VectorStoreIndex.from_documents(
        [doc],
        storage_context=gr.storage_context(),
        transformations=[gr.annotator(), SentenceSplitter(chunk_size=64, chunk_overlap=0)],
        embed_model=HashEmbedding(),
    )
    with gr.acting_as(RESEARCHER):
        texts = [
            h.node.get_content() for h in gr.guard(index.as_retriever(similarity_top_k=10)).retrieve(QUERY)
        ]
    joined = " ".join(texts)
    assert "<PERSON" in joined  # positive control: redacted where the name is
    for value in ("Harold Finch", "Grace Finch", "88412095", "617-555-0143"):
        assert value not in joined
    assert "Daily weights were recorded" in joined  # not garbled by a misplaced splice


def test_late_metadata_that_cannot_be_checked_fails_closed(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    nodes = gr.annotator()(_nodes())
    nodes[0].metadata["reviewed_by"] = "Dr. Amara Okafor"  # added after the annotator: no stored spans
    from conftest import HashEmbedding

    index = VectorStoreIndex(nodes, storage_context=gr.storage_context(), embed_model=HashEmbedding())
    retriever = gr.guard(index.as_retriever(similarity_top_k=3))
    with gr.acting_as(RESEARCHER):
        released = {h.node.get_content(): h.node.metadata for h in retriever.retrieve(QUERY)}
    [note] = [m for text, m in released.items() if "furosemide" in text]
    assert "Okafor" not in json.dumps(note)  # detected at release
    assert "<PERSON" in note["reviewed_by"]

    class Broken:
        name = "broken"

        def detect(self, text: str) -> list[Any]:
            raise RuntimeError("model crashed")

        def detect_batch(self, texts: list[str]) -> list[list[Any]]:
            raise RuntimeError("model crashed")

    gr._detector = Broken()  # type: ignore[assignment]
    with gr.acting_as(RESEARCHER), pytest.raises(RetrievalBlocked, match="detection failed"):
        retriever.retrieve(QUERY)
