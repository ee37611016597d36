"""The leak matrix for retrieval: entry points x principals x stores.

Personal data is seeded in the text, in nested metadata (a nested dict, an int phone number, a list, a
value under ``labels``, a person's name used as a metadata key), in a title added by an extractor placed
after the annotator, in the file name and path (SimpleDirectoryReader over a file named like the patient,
``filename_as_id=True``: the document id is the path) and so in every chunk's relationships.

Entry points: the guarded vector retriever; ``as_query_engine`` with a MockLLM that echoes its prompt;
``QueryFusionRetriever`` over the encrypted vector retriever and a ``BM25Retriever`` (each fusion mode);
``AutoMergingRetriever`` over encrypted and over plain storage; ``RecursiveRetriever`` with an
``IndexNode`` pointing at an in-memory node; a plain (unencrypted) vector index over the same nodes; a
query engine with ``gr.postprocessor()``. Principals: clinician (may see PHI: positive control),
researcher (Safe Harbor redaction: gets redacted, non-empty text), support (no PHI: gets the public
note only), none (AccessDenied). Stores: Simple, Chroma, Qdrant local.

Every assertion looks at the whole released node (``model_dump_json``: id, text, metadata, relationships,
templates), ``source_nodes``, the prompt the LLM received and the DEBUG log lines of the retrieval.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.core.extractors import TitleExtractor
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import HierarchicalNodeParser, SentenceSplitter, get_leaf_nodes
from llama_index.core.retrievers import AutoMergingRetriever, QueryFusionRetriever, RecursiveRetriever
from llama_index.core.schema import Document, IndexNode, NodeWithScore, TextNode, TransformComponent
from llama_index.retrievers.bm25 import BM25Retriever

from guardrail import Guardrail
from guardrail.access import AccessDenied, Principal
from guardrail.keys import Keyring

TENANT = "clinic"
NAME, SURNAME = "Harold Finch", "Finch"
MRN = "88412095"
PHONE_INT = 6175550143
KIN = "Grace Finch"
FILE_STEM = "harold_finch_mrn88412095"
NOTE = (
    f"Discharge summary for {NAME} (MRN {MRN}). Admitted with congestive heart failure; discharged on "
    "furosemide 40 mg daily and a low-sodium diet. "
    f"Follow-up on March 3, 2025. Next of kin {KIN}, phone 617-555-0143."
)
PUBLIC = "Visiting hours on the cardiology ward are 10:00 to 20:00 every day, including holidays."
QUERY = "discharge summary heart failure furosemide visiting hours cardiology"
SECRETS = (NAME, SURNAME, MRN, str(PHONE_INT), "617-555-0143", KIN, FILE_STEM, "harold_finch", "March 3")

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
FILLER = (
    " The echocardiogram showed an ejection fraction of 35 percent. Daily weights were recorded and fluid"
    " intake was limited to 1.5 litres. Potassium and creatinine were checked before discharge. The"
    " cardiology team reviewed the medication list and the diet plan with the nursing staff."
)

CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")
RESEARCHER = Principal("r-1", ["researcher"], "research")
SUPPORT = Principal("s-1", ["support"], "support")
PRINCIPALS = {"clinician": CLINICIAN, "researcher": RESEARCHER, "support": SUPPORT, "none": None}
FUSION_MODES = ("reciprocal_rerank", "relative_score", "dist_based_score", "simple")


class LateMetadata(TransformComponent):
    """Stands for an extractor placed after the annotator that adds or changes metadata."""

    def __call__(self, nodes: Any, **kwargs: Any) -> Any:
        for node in nodes:
            if SURNAME in node.get_content():
                node.metadata["summary_line"] = f"Patient {NAME} seen in cardiology"
        return nodes


def _documents(root: Path, long: int = 0) -> list[Document]:
    records = root / "records"
    records.mkdir(parents=True, exist_ok=True)
    (records / f"{FILE_STEM}.txt").write_text(NOTE + FILLER * long, encoding="utf-8")
    (records / "visiting_hours.txt").write_text(PUBLIC, encoding="utf-8")
    docs = SimpleDirectoryReader(str(records), filename_as_id=True).load_data()
    for doc in docs:
        if "visiting" in doc.metadata["file_name"]:
            doc.metadata.update({"classification": "public", "title": "Visiting hours"})
            continue
        doc.metadata.update(
            {
                "title": f"{SURNAME} discharge",
                "subjects": [f"patient-{MRN}"],
                "contact": {"next_of_kin": KIN, "phone": PHONE_INT, "history": [{"seen_by": NAME}]},
                NAME: "patient",  # personal data as a metadata key
                "labels": ["cardiology", f"{NAME} family"],
            }
        )
    return docs


def _dump(hit: NodeWithScore) -> str:
    node = hit.node
    return node.model_dump_json() + node.get_content(metadata_mode="all") + str(node.ref_doc_id)  # type: ignore[arg-type]


def assert_released(name: str, hits: list[NodeWithScore], root: Path, *, extra: str = "") -> None:
    """What each principal may see, with positive controls."""
    dumped = "\n".join(_dump(h) for h in hits) + extra
    assert str(root) not in dumped, "a file path was released"
    assert "_gr_" not in "\n".join(_dump(h) for h in hits), "guardrail's private metadata was released"
    texts = " ".join(h.node.get_content() for h in hits)
    if name == "clinician":
        assert NAME in texts or KIN in texts, "positive control: the clinician sees the names"
        return
    leaked = [s for s in SECRETS if s in dumped]
    assert not leaked, f"{name} got {leaked}"
    if name == "researcher":
        assert "discharge" in texts.lower(), "positive control: not empty"
        assert "<PERSON" in texts, "positive control: redacted"
    if name == "support":
        assert PUBLIC in texts, "positive control: support sees the public note"
        assert "40 mg" not in texts


@pytest.fixture(scope="module")
def keyring_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    Keyring.create(directory)
    return directory


def _vector_store(kind: str, root: Path) -> Any:
    if kind == "simple":
        return None
    if kind == "chroma":
        import chromadb
        from chromadb.config import Settings
        from llama_index.vector_stores.chroma import ChromaVectorStore

        client = chromadb.PersistentClient(
            path=str(root / "chroma"), settings=Settings(anonymized_telemetry=False)
        )
        return ChromaVectorStore(chroma_collection=client.get_or_create_collection("leak-matrix"))
    import qdrant_client
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    return QdrantVectorStore(
        client=qdrant_client.QdrantClient(path=str(root / "qdrant")), collection_name="leaks"
    )


class World:
    def __init__(self, kind: str, root: Path, keyring_dir: Path) -> None:
        from conftest import HashEmbedding

        self.root = root
        self.embed = HashEmbedding()
        self.gr = Guardrail(
            policy="hipaa-safe-harbor", keyring=keyring_dir, audit_log=root / "audit", tenant=TENANT
        )
        self.storage = self.gr.storage_context(vector_store=_vector_store(kind, root))
        transformations = [
            SentenceSplitter(chunk_size=128, chunk_overlap=0),
            self.gr.annotator(),
            LateMetadata(),
            TitleExtractor(llm=MockLLM(max_tokens=12), nodes=1),  # an extractor after the annotator
        ]
        self.index = VectorStoreIndex.from_documents(
            _documents(root),
            storage_context=self.storage,
            transformations=transformations,
            embed_model=self.embed,
            store_nodes_override=True,  # the docstore holds the nodes too (BM25, AutoMerging)
        )


@pytest.fixture(scope="module", params=["simple", "chroma", "qdrant"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keyring_dir: Path
) -> World:
    return World(request.param, tmp_path_factory.mktemp(f"world-{request.param}"), keyring_dir)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def _as(principal: Principal | None, gr: Guardrail, call: Any) -> Any:
    if principal is None:
        with pytest.raises(AccessDenied):
            call()
        return None
    with gr.acting_as(principal):
        return call()


# --------------------------------------------------------------------------- vector retriever, engine


@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_guarded_retriever(world: World, name: str, debug_logs: pytest.LogCaptureFixture) -> None:
    retriever = world.gr.guard(world.index.as_retriever(similarity_top_k=5))
    hits = _as(PRINCIPALS[name], world.gr, lambda: retriever.retrieve(QUERY))
    if hits is None:
        return
    logs = "\n".join(r.getMessage() for r in debug_logs.records if r.name.startswith("llama_index"))
    assert_released(name, hits, world.root, extra=logs if name != "clinician" else "")


@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_guarded_query_engine_prompt_and_sources(world: World, name: str) -> None:
    engine = world.gr.guard(world.index.as_query_engine(llm=MockLLM(), similarity_top_k=5))
    response = _as(PRINCIPALS[name], world.gr, lambda: engine.query(QUERY))
    if response is None:
        return
    prompt = str(response)  # MockLLM echoes the prompt: the context the LLM saw
    assert_released(name, response.source_nodes, world.root, extra=prompt if name != "clinician" else "")
    if name == "clinician":
        assert NAME in prompt
    if name == "support":
        assert "40 mg" not in prompt
        assert "Visiting hours" in prompt


def test_unguarded_paths_over_the_encrypted_store_are_refused(world: World) -> None:
    """Closed by default, for every principal: a plain retriever, a query engine, a keyword index."""
    with world.gr.acting_as(CLINICIAN):
        with pytest.raises(AccessDenied, match=r"gr\.guard\("):
            world.index.as_retriever().retrieve(QUERY)
        with pytest.raises(AccessDenied):
            world.index.as_query_engine(llm=MockLLM()).query(QUERY)
        with pytest.raises(AccessDenied):
            BM25Retriever.from_defaults(docstore=world.storage.docstore)


# --------------------------------------------------------------------------- hybrid retrieval


def _bm25(world: World) -> BM25Retriever:
    # a keyword index holds plaintext in memory: building it from the docstore is audited maintenance
    with world.gr.release_all(reason="build the keyword index"):
        return BM25Retriever.from_defaults(docstore=world.storage.docstore, similarity_top_k=5)


@pytest.mark.parametrize("mode", FUSION_MODES)
@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_fusion_with_bm25(world: World, name: str, mode: str) -> None:
    fusion = QueryFusionRetriever(
        [world.index.as_retriever(similarity_top_k=5), _bm25(world)],
        mode=mode,  # type: ignore[arg-type]
        num_queries=1,
        similarity_top_k=5,
        use_async=mode == "reciprocal_rerank",
        llm=MockLLM(),
    )
    retriever = world.gr.guard(fusion)
    hits = _as(PRINCIPALS[name], world.gr, lambda: retriever.retrieve(QUERY))
    if hits is None:
        return
    assert_released(name, hits, world.root)
    assert len({h.node.node_id for h in hits}) == len(hits)  # one entry per node


# --------------------------------------------------------------------------- composed retrievers (Simple)


@pytest.fixture(scope="module")
def hierarchy(tmp_path_factory: pytest.TempPathFactory, keyring_dir: Path) -> dict[str, Any]:
    from conftest import HashEmbedding

    root = tmp_path_factory.mktemp("hierarchy")
    embed = HashEmbedding()
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=keyring_dir, audit_log=root / "audit", tenant=TENANT)
    docs = _documents(root, long=3)
    nodes = HierarchicalNodeParser.from_defaults(chunk_sizes=[2048, 192], chunk_overlap=0)(docs)
    nodes = gr.annotator()(nodes)
    leaves = get_leaf_nodes(nodes)
    encrypted = gr.storage_context()
    encrypted.docstore.add_documents(nodes)
    enc_index = VectorStoreIndex(leaves, storage_context=encrypted, embed_model=embed)
    plain = StorageContext.from_defaults()
    plain_nodes = [n.model_copy(deep=True) for n in nodes]
    plain.docstore.add_documents(plain_nodes)
    plain_index = VectorStoreIndex(get_leaf_nodes(plain_nodes), storage_context=plain, embed_model=embed)
    return {
        "gr": gr,
        "root": root,
        "enc": (enc_index, encrypted),
        "plain": (plain_index, plain),
        "embed": embed,
    }


@pytest.mark.parametrize("storage_kind", ["enc", "plain"])
@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_auto_merging(hierarchy: dict[str, Any], storage_kind: str, name: str) -> None:
    gr = hierarchy["gr"]
    index, storage = hierarchy[storage_kind]
    retriever = gr.guard(
        AutoMergingRetriever(index.as_retriever(similarity_top_k=6), storage, simple_ratio_thresh=0.1)
    )
    hits = _as(PRINCIPALS[name], gr, lambda: retriever.retrieve(QUERY))
    if hits is None:
        return
    assert_released(name, hits, hierarchy["root"])


def test_auto_merging_keeps_an_allowed_leaf_when_its_parent_is_denied(tmp_path: Path) -> None:
    """No "doc_id not found": the relationship to the denied parent is cut, the leaf stays."""
    from conftest import HashEmbedding

    Keyring.create(tmp_path / "keys")
    gr = Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", audit_log=tmp_path / "a", tenant=TENANT
    )
    parent = TextNode(text=NOTE + " " + PUBLIC, metadata={"classification": "phi"})
    leaf = TextNode(text=PUBLIC, metadata={"classification": "public"})
    other = TextNode(text=NOTE, metadata={"classification": "phi"})
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo

    parent.relationships[NodeRelationship.CHILD] = [
        RelatedNodeInfo(node_id=leaf.node_id),
        RelatedNodeInfo(node_id=other.node_id),
    ]
    for child in (leaf, other):
        child.relationships[NodeRelationship.PARENT] = RelatedNodeInfo(node_id=parent.node_id)
    storage = gr.storage_context()
    storage.docstore.add_documents([parent, leaf, other])
    index = VectorStoreIndex([leaf, other], storage_context=storage, embed_model=HashEmbedding())
    retriever = gr.guard(
        AutoMergingRetriever(index.as_retriever(similarity_top_k=2), storage, simple_ratio_thresh=0.1)
    )
    with gr.acting_as(SUPPORT):
        hits = retriever.retrieve("visiting hours")
    assert [h.node.get_content() for h in hits] == [PUBLIC]
    assert hits[0].node.parent_node is None  # cut: the principal may not see the parent
    with gr.acting_as(CLINICIAN):
        merged = retriever.retrieve("visiting hours discharge")
    assert any(NAME in h.node.get_content() for h in merged)  # positive control: the parent merges in


@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_recursive_retriever_with_an_in_memory_node(hierarchy: dict[str, Any], name: str) -> None:
    gr, embed = hierarchy["gr"], hierarchy["embed"]
    target = TextNode(text=NOTE, id_="details-node")  # an in-memory node, never annotated or stored
    pointer = IndexNode(text="discharge summary heart failure furosemide details", index_id="details")
    storage = gr.storage_context()
    public = TextNode(text=PUBLIC, metadata={"classification": "public"})
    index = VectorStoreIndex(
        [gr.annotator()([pointer])[0], public],
        storage_context=storage,
        embed_model=embed,
        store_nodes_override=True,  # with an IndexNode and no docstore copy, as_retriever sees only it
    )
    recursive = RecursiveRetriever(
        "root", retriever_dict={"root": index.as_retriever(similarity_top_k=2)}, node_dict={"details": target}
    )
    retriever = gr.guard(recursive)
    hits = _as(PRINCIPALS[name], gr, lambda: retriever.retrieve(QUERY))
    if hits is None:
        return
    assert_released(name, hits, hierarchy["root"])
    assert target.get_content() == NOTE  # the user's object is never changed


@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_plain_index_over_the_same_nodes(hierarchy: dict[str, Any], name: str) -> None:
    """A plain (unencrypted) store: the guard decides every node on the spot, unlabelled ones included."""
    gr, embed = hierarchy["gr"], hierarchy["embed"]
    docs = _documents(hierarchy["root"])
    for doc in docs:  # unlabelled: the guard classifies by detection (personal data -> PHI)
        doc.metadata.pop("classification", None)
    index = VectorStoreIndex.from_documents(docs, embed_model=embed)
    retriever = gr.guard(index.as_retriever(similarity_top_k=5))
    hits = _as(PRINCIPALS[name], gr, lambda: retriever.retrieve(QUERY))
    if hits is None:
        return
    if name == "support":  # the public note is unlabelled too: no personal data -> internal -> support
        texts = [h.node.get_content() for h in hits]
        assert texts == [PUBLIC]
        return
    assert_released(name, hits, hierarchy["root"])


@pytest.mark.parametrize("name", list(PRINCIPALS))
def test_postprocessor_over_a_plain_store(hierarchy: dict[str, Any], name: str) -> None:
    gr, embed = hierarchy["gr"], hierarchy["embed"]
    index = VectorStoreIndex.from_documents(_documents(hierarchy["root"]), embed_model=embed)
    engine = index.as_query_engine(
        llm=MockLLM(), similarity_top_k=5, node_postprocessors=[gr.postprocessor()]
    )
    handler = gr.watch_unguarded()
    try:
        response = _as(PRINCIPALS[name], gr, lambda: engine.query(QUERY))
    finally:
        from llama_index_instrumentation import get_dispatcher

        get_dispatcher().event_handlers.remove(handler)
    if response is not None:
        assert_released(
            name, response.source_nodes, hierarchy["root"], extra=str(response) if name != "clinician" else ""
        )
    records = [
        json.loads(line)
        for f in sorted((hierarchy["root"] / "audit").glob("segment-*.jsonl"))
        for line in f.read_text().splitlines()
        if line.strip()
    ]
    assert not [
        r for r in records if r["event"]["category"] == "rag.unguarded" and r["event"]["outcome"] == "success"
    ]
