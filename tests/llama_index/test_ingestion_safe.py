"""Safe ingestion: an encrypted IngestionCache, pipelines that persist and reload over encrypted stores
with de-duplication intact, and ``num_workers=2`` with the annotator (pickled by keyring directory).

Leak checks scan every byte guardrail writes; each has a control showing LlamaIndex's defaults do leak
the same values, and each round trip checks that the data comes back (not just that nothing leaks).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document
from llama_index.core.ingestion import DocstoreStrategy, IngestionCache, IngestionPipeline
from llama_index.core.ingestion.pipeline import get_transformation_hash
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import TextNode
from llama_index.core.storage.docstore import SimpleDocumentStore

from guardrail import Guardrail
from guardrail.errors import ConfigError
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.llama_index.ingestion import CACHE_FILE, DOCSTORE_FILE, EncryptedIngestionCache
from guardrail.llama_index.stores import STORAGE_NAME_FILE

REPO = Path(__file__).resolve().parents[2]
SECRETS = ("Harold Finch", "88412095", "Olivia Bennett", "harold_finch")
NOTES = {
    "/records/harold_finch.txt": "Discharge plan for Harold Finch (MRN 88412095): furosemide 40 mg daily.",
    "/records/olivia.txt": "Olivia Bennett asked for her lab results by phone.",
    "/records/canteen.txt": "The canteen serves lunch from noon.",
}

pytestmark = pytest.mark.filterwarnings(
    "ignore:Payload indexes have no effect in the local Qdrant:UserWarning"
)


def _docs(**changed: str) -> list[Document]:
    texts = {**NOTES, **changed}
    return [Document(id_=path, text=text) for path, text in texts.items()]


def _gr(tmp_path: Path, policy: str = "hipaa-safe-harbor") -> Guardrail:
    if not (tmp_path / "keys").exists():
        Keyring.create(tmp_path / "keys")
    return Guardrail(policy=policy, keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme")


def _bytes_under(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def _leaks(data: bytes) -> list[str]:
    return [s for s in SECRETS if s.encode() in data]


# --------------------------------------------------------------------------- the cache


def test_cache_seals_values_and_keys(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    cache = gr.ingestion_cache()
    nodes = [TextNode(text=NOTES["/records/harold_finch.txt"], metadata={"subjects": ["p-1"]})]
    key = get_transformation_hash(nodes, SentenceSplitter())
    cache.put(key, nodes)
    assert [n.get_content() for n in cache.get(key) or []] == [nodes[0].get_content()]  # round trip
    assert cache.get("other") is None
    cache.persist(str(tmp_path / "cache" / "llama_cache"))
    raw = _bytes_under(tmp_path / "cache")
    assert not _leaks(raw)
    assert key.encode() not in raw  # the key is a keyed token, not the sha256 of the chunk text
    # the control: LlamaIndex's default cache writes the chunk in clear, under the plain hash
    plain = IngestionCache()
    plain.put(key, nodes)
    plain.persist(str(tmp_path / "plain" / "llama_cache"))
    assert "Harold Finch" in _leaks(_bytes_under(tmp_path / "plain"))
    assert key.encode() in _bytes_under(tmp_path / "plain")
    # reopened through the keyring
    again = _gr(tmp_path).ingestion_cache(persist_path=tmp_path / "cache" / "llama_cache")
    assert [n.get_content() for n in again.get(key) or []] == [nodes[0].get_content()]
    with pytest.raises(ConfigError, match="keyring"):
        EncryptedIngestionCache.from_persist_path(str(tmp_path / "cache" / "llama_cache"))
    with pytest.raises(ConfigError, match="plaintext"):
        gr.ingestion_cache(persist_path=tmp_path / "plain" / "llama_cache")
    gr.close()


def test_another_keyring_cannot_read_the_cache(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    cache = gr.ingestion_cache()
    cache.put("k", [TextNode(text="Harold Finch")])
    cache.persist(str(tmp_path / "llama_cache"))
    other = _gr(tmp_path / "other")
    from guardrail.crypto import DecryptionError

    with pytest.raises(DecryptionError):
        other.ingestion_cache(persist_path=tmp_path / "llama_cache")


def test_annotator_cache_key_includes_the_policy(tmp_path: Path) -> None:
    nodes = [TextNode(text="Harold Finch called.")]
    hipaa, default = _gr(tmp_path), _gr(tmp_path, "default")
    assert get_transformation_hash(nodes, hipaa.annotator()) != get_transformation_hash(
        nodes, default.annotator()
    )
    # control: the same policy gives the same key (the cache still works)
    assert get_transformation_hash(nodes, hipaa.annotator()) == get_transformation_hash(
        nodes, _gr(tmp_path).annotator()
    )


def test_annotator_and_cache_pickle_without_key_material(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    kek = (tmp_path / "keys" / "kek.key").read_bytes()
    cache = gr.ingestion_cache()
    cache.put("k", [TextNode(text=NOTES["/records/olivia.txt"])])
    for obj in (gr.annotator(), cache):
        data = pickle.dumps(obj)
        assert kek not in data
        assert not _leaks(data)  # the cache travels as ciphertext
    annotator = pickle.loads(pickle.dumps(gr.annotator()))  # noqa: S301 - our own pickle
    assert annotator.policy_sha256 == gr.policy.sha256
    out = annotator([TextNode(text="Harold Finch called.")])
    assert out[0].metadata["classification"] == "phi"
    copy = pickle.loads(pickle.dumps(cache))  # noqa: S301 - our own pickle
    assert [n.get_content() for n in copy.get("k") or []] == [NOTES["/records/olivia.txt"]]
    gr.close()


# --------------------------------------------------------------------------- the pipeline


def _pipeline(gr: Guardrail, storage: object) -> IngestionPipeline:
    return gr.ingestion_pipeline(
        transformations=[SentenceSplitter(), gr.annotator(), HashingEmbedding()], storage=storage
    )


def test_pipeline_persist_and_load_keep_dedup_over_encrypted_stores(tmp_path: Path, backend: Any) -> None:
    store = backend
    gr = _gr(tmp_path)
    storage = gr.storage_context(vector_store=store.vector_store())
    first = _pipeline(gr, storage)
    assert len(first.run(documents=_docs())) == 3
    first.persist(str(tmp_path / "pipeline"))
    storage.persist(str(tmp_path / "kb"))
    names = {p.name for p in (tmp_path / "pipeline").iterdir()}
    # never LlamaIndex's llama_cache / docstore.json (the storage name binds the docstore's records)
    assert names == {CACHE_FILE, DOCSTORE_FILE, STORAGE_NAME_FILE}
    for directory in (tmp_path / "pipeline", tmp_path / "kb", tmp_path / "encrypted"):
        assert not _leaks(_bytes_under(directory)), directory
    gr.close()
    store.close()

    # a new process, in effect: new Guardrail, reopened storage, loaded pipeline
    gr2 = _gr(tmp_path)
    storage2 = gr2.load_storage_context(tmp_path / "kb", vector_store=store.vector_store())
    second = _pipeline(gr2, storage2)
    second.load(str(tmp_path / "pipeline"))
    assert second.run(documents=_docs()) == []  # de-duplication intact: nothing re-ingested
    changed = second.run(documents=_docs(**{"/records/olivia.txt": "Olivia Bennett asked again."}))
    assert [n.get_content() for n in changed] == ["Olivia Bennett asked again."]  # only the changed one
    assert second.docstore is not None
    assert len(second.docstore.get_all_document_hashes()) == 3
    gr2.close()


def test_plain_load_of_an_encrypted_pipeline_refuses(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    pipeline = _pipeline(gr, gr.storage_context())
    pipeline.run(documents=_docs())
    pipeline.persist(str(tmp_path / "pipeline"))
    plain = IngestionPipeline(transformations=[SentenceSplitter()])
    with pytest.raises(FileNotFoundError):  # rather than a plain docstore silently rebuilt over ciphertext
        plain.load(str(tmp_path / "pipeline"))
    # and the control: LlamaIndex's own persist writes the documents in clear
    leaky = IngestionPipeline(
        transformations=[SentenceSplitter()],
        docstore=SimpleDocumentStore(),
        docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,
    )
    leaky.run(documents=_docs())
    leaky.persist(str(tmp_path / "plain"))
    assert "Harold Finch" in _leaks(_bytes_under(tmp_path / "plain"))
    with pytest.raises(ConfigError, match="plain"):
        _pipeline(gr, gr.storage_context()).load(str(tmp_path / "plain"))
    gr.close()


def test_pipeline_refuses_plain_parts(tmp_path: Path) -> None:
    from llama_index.core.vector_stores import SimpleVectorStore

    gr = _gr(tmp_path)
    with pytest.raises(ConfigError, match=r"gr\.ingestion_cache\(\)"):
        gr.ingestion_pipeline(transformations=[SentenceSplitter()], cache=IngestionCache())
    with pytest.raises(ConfigError, match="docstore"):
        gr.ingestion_pipeline(transformations=[SentenceSplitter()], docstore=SimpleDocumentStore())
    with pytest.raises(ConfigError, match="storage_context"):
        gr.ingestion_pipeline(transformations=[SentenceSplitter()], vector_store=SimpleVectorStore())


def test_pipeline_cache_hits_on_a_second_run(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    cache = gr.ingestion_cache()
    calls: list[int] = []

    class Counting(SentenceSplitter):
        def __call__(self, nodes, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(len(nodes))
            return super().__call__(nodes, **kwargs)

    for _ in range(2):
        pipeline = gr.ingestion_pipeline(transformations=[Counting(), gr.annotator()], cache=cache)
        nodes = pipeline.run(documents=_docs())
        assert {n.metadata["classification"] for n in nodes} == {"phi", "internal"}
    assert calls == [3]  # the second run came from the (encrypted) cache
    gr.close()


# --------------------------------------------------------------------------- workers

WORKERS = """
import json, sys
from pathlib import Path
from typing import Any
from llama_index.core import Document
from llama_index.core.node_parser import SentenceSplitter
from guardrail import Guardrail
from guardrail.llama_index.hashing import HashingEmbedding

NOTES = json.loads(sys.argv[2])

if __name__ == "__main__":
    root = Path(sys.argv[1])
    gr = Guardrail("hipaa-safe-harbor", keyring=root / "keys", audit_log=root / "audit", tenant="acme")
    pipeline = gr.ingestion_pipeline(
        transformations=[SentenceSplitter(), gr.annotator(), HashingEmbedding()], storage=gr.storage_context()
    )
    docs = [Document(id_=p, text=t) for p, t in NOTES.items()] * 1
    nodes = pipeline.run(documents=docs, num_workers=2)
    pipeline.persist(str(root / "pipeline"))
    gr.close()
    print(json.dumps({
        "nodes": len(nodes),
        "classes": sorted({n.metadata["classification"] for n in nodes}),
        "spans": sum(len(n.metadata["_gr_spans"]) for n in nodes),
        "cached": len(pipeline.cache.cache.get_all(collection=pipeline.cache.collection)),
    }))
"""


@pytest.mark.slow
def test_two_workers_with_the_annotator(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    script = tmp_path / "ingest.py"
    script.write_text(textwrap.dedent(WORKERS), encoding="utf-8")
    notes = {**NOTES, "/records/more.txt": "Harold Finch will call back on Monday."}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path), json.dumps(notes)],
        capture_output=True,
        text=True,
        timeout=300,  # a hang (a worker that cannot rebuild its Guardrail) fails here, not forever
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["nodes"] == 4
    assert result["classes"] == ["internal", "phi"]  # the workers detected (and classified)
    assert result["spans"] >= 3
    assert result["cached"] >= 2  # the workers' cache entries were merged back (as ciphertext)
    assert not _leaks(_bytes_under(tmp_path / "pipeline"))
    from guardrail.audit import verify

    assert verify(tmp_path / "audit").ok  # the workers' ingest records joined one intact log
    events = [
        json.loads(line)
        for segment in sorted((tmp_path / "audit").glob("segment-*.jsonl"))
        for line in segment.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert sum(e["event"]["category"] == "rag.ingest" for e in events) >= 2


@pytest.mark.slow
def test_a_worker_that_cannot_reopen_the_keyring_fails_instead_of_hanging(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    pipeline = gr.ingestion_pipeline(transformations=[SentenceSplitter(), gr.annotator()])
    (tmp_path / "keys").rename(tmp_path / "moved")  # the worker reopens the keyring by its directory
    with pytest.raises(ConfigError, match="worker process cannot rebuild"):
        pipeline.run(documents=_docs(), num_workers=2)


def test_worker_batches_never_split_a_document(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    pipeline = gr.ingestion_pipeline(transformations=[gr.annotator()])
    chunks = SentenceSplitter(chunk_size=24, chunk_overlap=0)(
        [
            Document(text="Harold Finch was admitted. " + "The diet plan continues unchanged. " * 6),
            Document(text="The canteen serves lunch. " * 8),
        ]
    )
    first, second = (
        [n for n in chunks if n.ref_doc_id == d] for d in dict.fromkeys(n.ref_doc_id for n in chunks)
    )
    interleaved = [n for pair in zip(first, second, strict=False) for n in pair]
    interleaved += first[len(second) :] + second[len(first) :]
    batches = list(pipeline._node_batcher(num_batches=2, nodes=interleaved))
    assert sum(len(b) for b in batches) == len(chunks)  # nothing lost
    owners = [{n.ref_doc_id for n in b} for b in batches]
    assert all(len(o) == 1 for o in owners)  # one document per batch here
    assert owners[0] != owners[1]
    # LlamaIndex's own batcher splits by count: a document's chunks would land in both workers
    plain = list(IngestionPipeline._node_batcher(num_batches=2, nodes=interleaved))
    assert any(len({n.ref_doc_id for n in b}) > 1 for b in plain)


def test_a_plain_pipeline_with_the_encrypted_cache_cannot_be_reloaded_plainly(tmp_path: Path) -> None:
    """Documented use of IngestionPipeline itself: a plain load fails instead of opening ciphertext."""
    gr = _gr(tmp_path)
    storage = gr.storage_context()
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(), gr.annotator()],
        cache=gr.ingestion_cache(),
        docstore=storage.docstore,
        docstore_strategy=DocstoreStrategy.DUPLICATES_ONLY,
    )
    pipeline.run(documents=_docs())
    pipeline.persist(str(tmp_path / "plain-pipeline"))
    assert not _leaks(_bytes_under(tmp_path / "plain-pipeline"))
    with pytest.raises(ValueError, match="Expecting value"):  # json: the sealed cache's first line
        IngestionPipeline(transformations=[SentenceSplitter()]).load(str(tmp_path / "plain-pipeline"))
    cache = gr.ingestion_cache(persist_path=tmp_path / "plain-pipeline" / "llama_cache")
    assert cache.cache.get_all(collection=cache.collection)  # reopened through the keyring
    gr.close()


def test_redacted_embedder_pickles_by_reference(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    embedder = gr.embedder(HashingEmbedding())
    if type(embedder).__name__ != "RedactedEmbedding":
        from guardrail.llama_index.embedding import RedactedEmbedding

        embedder = RedactedEmbedding(gr, HashingEmbedding())
    data = pickle.dumps(embedder)
    assert (tmp_path / "keys" / "kek.key").read_bytes() not in data
    copy = pickle.loads(data)  # noqa: S301 - our own pickle
    (node,) = copy([TextNode(text="Harold Finch called about the canteen.")])
    assert node.embedding == HashingEmbedding().get_text_embedding(
        gr.redact("Harold Finch called about the canteen.").text
    )
    gr.close()


def test_erasing_a_subject_shreds_its_cache_entries(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    cache = gr.ingestion_cache()
    cache.put("finch", [TextNode(text="Harold Finch called.", metadata={"subjects": ["p-1"]})])
    cache.put("canteen", [TextNode(text="The canteen serves lunch.")])
    assert cache.get("finch") is not None
    gr.erase_subject("p-1", actor="dpo", request_ref="DSAR-7")
    assert cache.get("finch") is None  # sealed under the subject's destroyed key: a miss, not an error
    assert [n.get_content() for n in cache.get("canteen") or []] == ["The canteen serves lunch."]
