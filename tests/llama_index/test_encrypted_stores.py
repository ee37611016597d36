"""Encrypted LlamaIndex storage on real stores: SimpleVectorStore (persisted JSON), Chroma, Qdrant (on disk).

What is checked, per store:

* no seeded secret (names, SSNs, e-mails, file-path document ids, titles) reaches any byte on disk;
* after a reopen (new ``Guardrail``, new client), retrieval equals an unencrypted index of the same store;
* a tampered or moved ciphertext fails the query closed, and only queries that reach it;
* a wrong keyring, tenant or passphrase is refused before anything is read or written;
* erasure deletes a subject's nodes and shreds its key (a backup copy taken before stays unreadable);
* the release hook sees every released node; filters on sealed fields are refused, tokenised ones work;
* the question never reaches the database; stores refuse to pickle; the docstore holds only ciphertext;
* re-encryption after a key rotation re-seals everything under the new primary.

Reopening Chroma/Qdrant: ``Guardrail.load_storage_context(persist_dir, vector_store=<new inner store>)``
(docstore and index store from ``persist_dir``, vectors from the database) followed by
``load_index_from_storage`` works, and checks the keyring up front; ``Guardrail.storage_context(
vector_store=<new inner store>)`` plus ``VectorStoreIndex.from_vector_store`` also works but has no index
store to check the keyring against: a wrong keyring then fails at the first query (``DecryptionError``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import NodeRelationship, NodeWithScore, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from guardrail import Guardrail
from guardrail.crypto import Context, DecryptionError, RecordErased, Sealer
from guardrail.errors import ConfigError
from guardrail.keys import PASSPHRASE_ENV, Keyring, KeyringError
from guardrail.llama_index import EncryptedKVStore, EncryptedVectorStore
from guardrail.llama_index.release import release_all
from guardrail.llama_index.storage import build_storage_context, load_storage_context, reencrypt

TENANT = "acme-clinic"

pytestmark = [
    # QdrantVectorStore creates payload indexes when it creates a collection; local mode warns once
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant:UserWarning"),
]


# --------------------------------------------------------------------------- the data set


@dataclass(frozen=True)
class Doc:
    path: str
    subject: str
    classification: str
    title: str
    chunks: tuple[str, ...]


PATIENT_7 = "/srv/notes/patient-7.txt"
PATIENT_9 = "/srv/notes/patient-9.txt"
EMPLOYEE_3 = "/srv/hr/employee-3.txt"

DOCS = (
    Doc(
        PATIENT_7,
        "patient-7",
        "phi",
        "Intake note for Zebulon Quixote",
        (
            "Zebulon Quixote was admitted with chest pain and arrhythmia; SSN 512-44-1937 on file.",
            "Follow-up for Zebulon Quixote by e-mail zebulon.quixote@example.org after the cardiology visit.",
        ),
    ),
    Doc(
        PATIENT_9,
        "patient-9",
        "phi",
        "Discharge summary of Philomena Wrexham",
        (
            "Philomena Wrexham was discharged after knee surgery; SSN 623-17-4409 verified at discharge.",
            "Physiotherapy reminders go to philomena.wrexham@example.net twice weekly for the knee.",
        ),
    ),
    Doc(
        EMPLOYEE_3,
        "employee-3",
        "confidential",
        "Salary review of Octavius Brindlecombe",
        ("Octavius Brindlecombe salary review for payroll; SSN 734-21-0058 and bonus approved.",),
    ),
)
DOC_BY_PATH = {d.path: d for d in DOCS}

#: Everything that must never reach a disk in clear.
SECRETS: tuple[str, ...] = (
    "Zebulon Quixote",
    "Quixote",
    "Philomena Wrexham",
    "Wrexham",
    "Octavius Brindlecombe",
    "Brindlecombe",
    "512-44-1937",
    "623-17-4409",
    "734-21-0058",
    "zebulon.quixote@example.org",
    "philomena.wrexham@example.net",
    PATIENT_7,
    PATIENT_9,
    EMPLOYEE_3,
    "patient-7.txt",
    "/srv/notes",
    "patient-7",
    "patient-9",
    "employee-3",
    *(d.title for d in DOCS),
    *(chunk for d in DOCS for chunk in d.chunks),
)

QUERIES = (
    "chest pain arrhythmia",
    "knee surgery physiotherapy",
    "salary payroll bonus",
    "Zebulon Quixote e-mail cardiology",
    "SSN verified",
)


def node_id(path: str, i: int) -> str:
    """A fixed UUID per chunk (Qdrant takes only UUIDs or integers as point ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"guardrail-test:{path}#{i}"))


def ids_of(*paths: str) -> list[str]:
    return [node_id(p, i) for p in paths for i in range(len(DOC_BY_PATH[p].chunks))]


ALL_IDS = ids_of(*DOC_BY_PATH)
TEXT_BY_ID = {node_id(d.path, i): c for d in DOCS for i, c in enumerate(d.chunks)}
DOC_OF_ID = {node_id(d.path, i): d for d in DOCS for i in range(len(d.chunks))}


def metadata_of(nid: str) -> dict[str, Any]:
    doc = DOC_OF_ID[nid]
    return {"subjects": [doc.subject], "classification": doc.classification, "title": doc.title}


def make_nodes(embed: Any, *, flat: bool = False) -> list[TextNode]:
    """One TextNode per chunk: its document (a file path) as SOURCE, metadata, a precomputed embedding.

    ``flat``: ``subjects`` as a string, for unencrypted Chroma (it refuses list values; the encrypted store
    does not care, the list is sealed).
    """
    return [
        TextNode(
            id_=node_id(doc.path, i),
            text=text,
            metadata={**metadata_of(node_id(doc.path, i)), **({"subjects": doc.subject} if flat else {})},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc.path)},
            embedding=embed.get_text_embedding(text),
        )
        for doc in DOCS
        for i, text in enumerate(doc.chunks)
    ]


@pytest.fixture
def nodes(embed: Any) -> list[TextNode]:
    return make_nodes(embed)


# --------------------------------------------------------------------------- the disk


def secret_forms(secrets: tuple[str, ...] = SECRETS) -> dict[bytes, str]:
    """Every byte form a secret could take in a file: UTF-8, JSON-escaped (ASCII or not), slash-escaped."""
    out: dict[bytes, str] = {}
    for secret in secrets:
        forms = {
            secret,
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            secret.replace("/", "\\/"),
        }
        for form in forms:
            out[form.encode()] = secret
    return out


def scan(*roots: Path, secrets: tuple[str, ...] = SECRETS) -> dict[str, list[str]]:
    """``{file: [secrets found]}`` over every file under ``roots``, raw bytes (JSON, SQLite, pickles)."""
    forms = secret_forms(secrets)
    found: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            data = path.read_bytes()
            hits = sorted({secret for form, secret in forms.items() if form in data})
            if hits:
                found[str(path)] = hits
    return found


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots for p in Path(root).rglob("*") if p.is_file())


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """``{file: (mtime_ns, sha256)}`` for every file under ``roots``."""
    return {
        str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in files_under(*roots)
    }


# --------------------------------------------------------------------------- building and reopening


@pytest.fixture(autouse=True)
def _storage_layer() -> Any:
    """These tests are about the encryption layer, not access decisions: stores made through a Guardrail
    are closed unless guarded (tests/llama_index/test_leak_matrix.py), so every read here is maintenance."""
    with release_all("storage-layer tests"):
        yield


def build(
    keyring_dir: Path,
    backend: Any,
    nodes: list[TextNode],
    embed: Any,
    persist_dir: Path,
    *,
    hookable: bool = False,
    **index_kwargs: Any,
) -> tuple[Guardrail, Any, VectorStoreIndex]:
    """An encrypted index over ``nodes`` on ``backend``, persisted to ``persist_dir``. ``hookable``: built
    with the low-level ``build_storage_context`` (a release point that takes a custom hook)."""
    gr = Guardrail(keyring=keyring_dir, tenant=TENANT)
    if hookable:
        assert gr.keyring is not None
        storage = build_storage_context(
            sealer=Sealer(gr.keyring), keyring=gr.keyring, tenant=TENANT, vector_store=backend.vector_store()
        )
    else:
        storage = gr.storage_context(vector_store=backend.vector_store())
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed, **index_kwargs)
    storage.persist(persist_dir=str(persist_dir))
    return gr, storage, index


def reopen(
    keyring_dir: Path | Keyring, backend: Any, persist_dir: Path, embed: Any, **index_kwargs: Any
) -> tuple[Guardrail, Any, VectorStoreIndex]:
    """A new Guardrail and a new client on the same paths; the index from the persisted index store."""
    gr = Guardrail(keyring=keyring_dir, tenant=TENANT)
    storage = gr.load_storage_context(persist_dir, vector_store=backend.vector_store())
    return gr, storage, load_index_from_storage(storage, embed_model=embed, **index_kwargs)


def retrieve(
    index: VectorStoreIndex, query: str, k: int = len(ALL_IDS), **kwargs: Any
) -> list[NodeWithScore]:
    return index.as_retriever(similarity_top_k=k, **kwargs).retrieve(query)


def ids(results: list[NodeWithScore]) -> list[str]:
    return [r.node.node_id for r in results]


def assert_original(results: list[NodeWithScore]) -> None:
    for r in results:
        assert r.node.get_content() == TEXT_BY_ID[r.node.node_id]
        assert r.node.metadata == metadata_of(r.node.node_id)
        assert r.node.ref_doc_id == DOC_OF_ID[r.node.node_id].path


def eq(key: str, value: Any, op: FilterOperator = FilterOperator.EQ) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)])


# --------------------------------------------------------------------------- (a) the disk


def test_scanner_finds_plaintext_in_an_unencrypted_store(
    plain_backend: Any, embed: Any, tmp_path: Path
) -> None:
    """Control for test_no_secret_reaches_the_disk: the scanner sees secrets in each store's own format."""
    storage = StorageContext.from_defaults(vector_store=plain_backend.plain_store())
    VectorStoreIndex(make_nodes(embed, flat=True), storage_context=storage, embed_model=embed)
    storage.persist(persist_dir=str(tmp_path / "plain-persist"))
    plain_backend.close()
    found = scan(tmp_path / "plain-persist", plain_backend.root)
    hits = {secret for secrets in found.values() for secret in secrets}
    assert {"512-44-1937", "Zebulon Quixote", "zebulon.quixote@example.org", PATIENT_7} <= hits


def write_store(kind: str, root: Path) -> None:
    """Build, query, persist and close an encrypted store of ``kind`` under ``root`` (keys included)."""
    from conftest import Backend, HashEmbedding  # run as a script: this directory is on sys.path

    embed = HashEmbedding()
    Keyring.create(root / "keys")
    backend = Backend(kind, root / "encrypted")
    persist = root / "persist"
    _, storage, index = build(
        root / "keys", backend, make_nodes(embed), embed, persist, store_nodes_override=True
    )
    with release_all("storage-layer test script"):
        for query in QUERIES:
            assert retrieve(index, query)
        retrieve(index, "Zebulon", filters=eq("doc_id", PATIENT_7))
        index.delete_ref_doc(EMPLOYEE_3, delete_from_docstore=True)
    storage.persist(persist_dir=str(persist))
    backend.close()


def test_no_secret_reaches_the_disk(backend: Any, tmp_path: Path) -> None:
    """Everything the encrypted store writes (persist dir, database files, keyring), scanned byte by byte.

    The store is written by a fresh interpreter: chromadb writes its HNSW file (``data_level0.bin``) from
    uninitialised memory, which in a long-lived process can hold records of *other* collections handled
    earlier (here: the unencrypted reference stores of other tests), so an in-process scan would be flaky
    for reasons that have nothing to do with the encrypted store.
    """
    root = tmp_path / "fresh"
    subprocess.run(
        [sys.executable, __file__, backend.kind, str(root)],
        check=True,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    written = files_under(root)
    if backend.kind == "simple":
        assert {"docstore.json", "index_store.json", "default__vector_store.json"} <= {
            p.name for p in written
        }
    else:
        assert any(p.is_relative_to(root / "encrypted" / backend.kind) for p in written)
    assert scan(root) == {}


# --------------------------------------------------------------------------- (b) reopening


def plain_reference(plain_backend: Any, embed: Any, tmp_path: Path) -> VectorStoreIndex:
    """An unencrypted index of the same store type over the same nodes, persisted, closed and reopened."""
    persist = tmp_path / "plain-persist"
    storage = StorageContext.from_defaults(vector_store=plain_backend.plain_store())
    VectorStoreIndex(make_nodes(embed, flat=True), storage_context=storage, embed_model=embed)
    storage.persist(persist_dir=str(persist))
    plain_backend.close()
    if plain_backend.kind == "simple":
        return load_index_from_storage(
            StorageContext.from_defaults(persist_dir=str(persist)), embed_model=embed
        )
    return VectorStoreIndex.from_vector_store(plain_backend.plain_store(), embed_model=embed)


def test_reopened_retrieval_matches_an_unencrypted_index(
    backend: Any, plain_backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    reference = plain_reference(plain_backend, embed, tmp_path)
    persist = tmp_path / "persist"
    build(keyring_dir, backend, nodes, embed, persist)
    backend.close()

    _, storage, loaded = reopen(keyring_dir, backend, persist, embed)
    indexes = {
        "load_index_from_storage": loaded,
        "from_vector_store": VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=embed),
    }
    if backend.kind != "simple":  # no persist dir at all: a fresh storage context over the same inner store
        fresh = Guardrail(keyring=keyring_dir, tenant=TENANT).storage_context(
            vector_store=storage.vector_store.inner
        )
        indexes["storage_context"] = VectorStoreIndex.from_vector_store(fresh.vector_store, embed_model=embed)

    for query in QUERIES:
        for k in (2, len(ALL_IDS)):
            expected = retrieve(reference, query, k)
            assert len(expected) == k
            for name, index in indexes.items():
                got = retrieve(index, query, k)
                assert ids(got) == ids(expected), (name, query, k)
                assert [r.score for r in got] == pytest.approx([r.score for r in expected], rel=1e-5)
                assert_original(got)
                assert [r.node.get_content() for r in got] == [r.node.get_content() for r in expected]


# --------------------------------------------------------------------------- (c) tampering


def _flip(sealed: str) -> str:
    blob = bytearray(base64.urlsafe_b64decode(sealed.removeprefix("gr1.")))
    blob[-40] ^= 0x01  # inside the AES-GCM ciphertext, before the tag
    return "gr1." + base64.urlsafe_b64encode(bytes(blob)).decode()


def _read_sealed(backend: Any, persist: Path, store: Any, nid: str) -> str:
    if backend.kind == "simple":
        data = json.loads((persist / "default__vector_store.json").read_text())
        return str(data["metadata_dict"][nid]["_gr"])
    if backend.kind == "chroma":
        return str(store._collection.get(ids=[nid])["documents"][0])
    (point,) = store.client.retrieve(backend.collection, ids=[nid], with_payload=True)
    return str(json.loads(point.payload["_node_content"])["text"])


def _write_sealed(backend: Any, persist: Path, store: Any, nid: str, sealed: str) -> None:
    if backend.kind == "simple":
        path = persist / "default__vector_store.json"
        data = json.loads(path.read_text())
        data["metadata_dict"][nid]["_gr"] = sealed
        path.write_text(json.dumps(data))
    elif backend.kind == "chroma":
        # with the stored embedding: without one, chromadb would embed the document with its default model
        embedding = store._collection.get(ids=[nid], include=["embeddings"])["embeddings"][0]
        store._collection.update(ids=[nid], documents=[sealed], embeddings=[embedding])
    else:
        (point,) = store.client.retrieve(backend.collection, ids=[nid], with_payload=True)
        content = json.loads(point.payload["_node_content"])
        content["text"] = sealed
        store.client.set_payload(
            backend.collection, payload={"_node_content": json.dumps(content)}, points=[nid]
        )


@pytest.mark.parametrize("damage", ["flipped-byte", "moved-ciphertext"])
def test_damaged_ciphertext_fails_the_query_closed(
    damage: str, backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    persist = tmp_path / "persist"
    build(keyring_dir, backend, nodes, embed, persist)
    backend.close()

    target = node_id(PATIENT_7, 0)  # "chest pain" note
    donor = node_id(PATIENT_7, 1)
    raw = backend.plain_store()  # the database, without the wrapper
    if damage == "flipped-byte":
        damaged = _flip(_read_sealed(backend, persist, raw, target))
    else:  # a valid ciphertext of the same subject and document, copied onto another record
        damaged = _read_sealed(backend, persist, raw, donor)
    _write_sealed(backend, persist, raw, target, damaged)
    backend.close()

    _, _, index = reopen(keyring_dir, backend, persist, embed)
    with pytest.raises(DecryptionError) as caught:
        retrieve(index, "chest pain arrhythmia", k=1)
    assert not isinstance(caught.value, RecordErased)
    assert caught.value.record == target
    with pytest.raises(DecryptionError):  # every query that reaches it fails as a whole
        retrieve(index, "knee surgery physiotherapy")

    # queries that do not reach the damaged record are unaffected
    knee = retrieve(index, "knee surgery physiotherapy", k=2)
    assert sorted(ids(knee)) == sorted(ids_of(PATIENT_9))
    assert_original(knee)
    others = retrieve(index, "chest pain", filters=eq("doc_id", PATIENT_7, FilterOperator.NE))
    assert sorted(ids(others)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    assert_original(others)


# --------------------------------------------------------------------------- (d) wrong keys


def database_records(backend: Any) -> Any:
    """Every record of a Chroma/Qdrant collection as the database returns it (``None`` for ``simple``)."""
    if backend.kind == "simple":
        return None
    store = backend.plain_store()
    try:
        if backend.kind == "chroma":
            got = store._collection.get(include=["documents", "metadatas", "embeddings"])
            return sorted(
                zip(
                    got["ids"],
                    got["documents"],
                    got["metadatas"],
                    [list(e) for e in got["embeddings"]],
                    strict=True,
                ),
                key=lambda r: r[0],
            )
        points, _ = store.client.scroll(backend.collection, limit=100, with_payload=True, with_vectors=True)
        return sorted((str(p.id), p.payload, p.vector) for p in points)
    finally:
        backend.close()


def test_wrong_keyring_or_tenant_is_refused_and_writes_nothing(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    persist = tmp_path / "persist"
    build(keyring_dir, backend, nodes, embed, persist)
    backend.close()
    other_dir = tmp_path / "other-keys"
    Keyring.create(other_dir)
    # chromadb rewrites chroma.sqlite3 whenever a client opens it (guardrail or not): its records are
    # compared through the API instead
    watched = (persist, keyring_dir, other_dir) + (() if backend.kind == "chroma" else (backend.root,))
    before = snapshot(*watched)
    records = database_records(backend)

    wrong_keyring = Guardrail(keyring=other_dir, tenant=TENANT)
    with pytest.raises(KeyringError, match="does not open the store") as caught:
        wrong_keyring.load_storage_context(persist, vector_store=backend.vector_store())
    assert str(persist) in str(caught.value)
    assert "keyring" in str(caught.value)
    backend.close()

    wrong_tenant = Guardrail(keyring=keyring_dir, tenant="another-clinic")
    with pytest.raises(KeyringError, match="another-clinic"):
        wrong_tenant.load_storage_context(persist, vector_store=backend.vector_store())
    backend.close()

    assert snapshot(*watched) == before
    assert database_records(backend) == records
    assert Keyring.open(other_dir).list_keys() == []  # no key was made in the wrong keyring

    # the store is intact: the right keyring still reads everything
    _, storage, index = reopen(keyring_dir, backend, persist, embed)
    assert backend.count(storage.vector_store.inner) == len(ALL_IDS)
    assert sorted(ids(retrieve(index, "SSN"))) == sorted(ALL_IDS)


@pytest.mark.parametrize("backend", ["chroma", "qdrant"], indirect=True)
def test_wrong_keyring_without_a_persist_dir_fails_at_the_first_query(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    """``storage_context(vector_store=...)`` has no index store to check the keyring against."""
    build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    backend.close()
    other = Guardrail(keyring=Keyring.create(tmp_path / "other-keys"), tenant=TENANT)
    storage = other.storage_context(vector_store=backend.vector_store())
    index = VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=embed)
    with pytest.raises(DecryptionError):
        retrieve(index, "SSN")


def test_wrong_passphrase_does_not_open_the_keyring(
    monkeypatch: pytest.MonkeyPatch, simple_backend: Any, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    keys = tmp_path / "pass-keys"
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    Keyring.create(keys, backend="passphrase")
    backend = simple_backend
    persist = tmp_path / "persist"
    build(keys, backend, nodes, embed, persist)
    assert scan(keys) == {}
    before = snapshot(keys, persist)

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery stapler")
    with pytest.raises(KeyringError, match="passphrase"):
        Keyring.open(keys)
    with pytest.raises(KeyringError):
        Guardrail(keyring=keys, tenant=TENANT)
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeyringError, match=PASSPHRASE_ENV):
        Keyring.open(keys)
    assert snapshot(keys, persist) == before

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    _, _, index = reopen(keys, backend, persist, embed)
    assert sorted(ids(retrieve(index, "SSN"))) == sorted(ALL_IDS)


# --------------------------------------------------------------------------- erasure


def test_erase_subject_deletes_the_nodes_and_shreds_the_key(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    persist = tmp_path / "persist"
    gr, storage, index = build(keyring_dir, backend, nodes, embed, persist, store_nodes_override=True)
    inner = storage.vector_store.inner
    assert backend.count(inner) == len(ALL_IDS)
    subject_keys = gr.keyring.subject_key_ids(TENANT, "patient-7")
    assert len(subject_keys) == 1

    report = gr.erase_subject("patient-7")

    assert report.vector_nodes_deleted == 2
    assert report.keys_destroyed == subject_keys
    # the two nodes, their two doc_hash records and the document's ref_doc_info
    assert report.docstore_records_deleted == 5
    assert "patient-7" not in repr(report)
    assert backend.count(inner) == len(ALL_IDS) - 2
    states = {k.id: k.state for k in Keyring.open(keyring_dir).list_keys()}
    assert states[subject_keys[0]] == "destroyed"
    assert list(states.values()).count("destroyed") == 1  # the other subjects and the tenant are intact
    remaining = retrieve(index, "Zebulon Quixote chest pain")
    assert sorted(ids(remaining)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    assert_original(remaining)
    for nid in ids_of(PATIENT_7):
        assert storage.docstore.get_node(nid, raise_error=False) is None
    for nid in ids_of(PATIENT_9, EMPLOYEE_3):
        assert storage.docstore.get_node(nid).get_content() == TEXT_BY_ID[nid]
    assert storage.docstore.get_ref_doc_info(PATIENT_7) is None

    # an erased subject cannot be given new data (its key is not recreated)
    late = TextNode(
        text="Zebulon Quixote called again.",
        metadata={"subjects": ["patient-7"]},
        embedding=embed.get_text_embedding("Zebulon Quixote called again."),
    )
    with pytest.raises(KeyringError, match="erased"):
        index.insert_nodes([late])

    storage.persist(persist_dir=str(persist))
    backend.close()
    _, reopened, index2 = reopen(keyring_dir, backend, persist, embed)
    assert backend.count(reopened.vector_store.inner) == len(ALL_IDS) - 2
    assert sorted(ids(retrieve(index2, "Zebulon Quixote"))) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    assert scan(persist, keyring_dir) == {}


def test_erase_subject_leaves_no_readable_record_of_the_subject(
    simple_backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    gr, storage, _ = build(
        keyring_dir, simple_backend, nodes, embed, tmp_path / "persist", store_nodes_override=True
    )
    hashes = {nid: storage.docstore.get_document_hash(nid) for nid in ids_of(PATIENT_7)}
    assert all(hashes.values())
    gr.erase_subject("patient-7")
    assert {nid: storage.docstore.get_document_hash(nid) for nid in ids_of(PATIENT_7)} == dict.fromkeys(
        ids_of(PATIENT_7)
    )


def test_a_copy_taken_before_erasure_stays_unreadable_for_the_subject(
    simple_backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    persist, backup = tmp_path / "persist", tmp_path / "backup"
    gr, storage, _ = build(keyring_dir, simple_backend, nodes, embed, persist, store_nodes_override=True)
    shutil.copytree(persist, backup)
    gr.erase_subject("patient-7")
    storage.persist(persist_dir=str(persist))

    restorer = Guardrail(keyring=keyring_dir, tenant=TENANT)
    assert restorer.keyring is not None
    # the index store is not about anyone: it opens (low-level loader: a release point that takes a hook)
    restored = load_storage_context(
        backup, sealer=Sealer(restorer.keyring), keyring=restorer.keyring, tenant=TENANT
    )
    index = load_index_from_storage(restored, embed_model=embed)
    erased: list[str] = []
    released: list[str] = []

    def hook(node: Any, *, score: float | None) -> Any:
        released.append(node.node_id)
        return node

    restored.vector_store.set_release_hook(hook, on_erased=erased.append)
    results = retrieve(index, "Zebulon Quixote chest pain e-mail")  # erased data is skipped, not an error
    assert sorted(ids(results)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    assert_original(results)
    assert sorted(erased) == sorted(ids_of(PATIENT_7))
    assert sorted(released) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))

    # the docstore copy of the nodes is erased as well
    assert sorted(restored.docstore.docs) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    for nid in ids_of(PATIENT_7):
        assert restored.docstore.get_node(nid, raise_error=False) is None

    # the raw record in the copy: erased (its key is gone), not merely damaged
    data = json.loads((backup / "default__vector_store.json").read_text())
    target = ids_of(PATIENT_7)[0]
    with pytest.raises(RecordErased):
        Sealer(restorer.keyring).open_text(
            data["metadata_dict"][target]["_gr"],
            context=Context(
                store="vector",
                namespace="default",
                key=target,
                tenant=TENANT,
                binding="SimpleVectorStore:default",
            ),
        )
    assert scan(backup) == {}


# --------------------------------------------------------------------------- the release point


def test_release_hook_sees_every_released_node_and_can_withhold_it(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    gr, storage, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist", hookable=True)
    store = storage.vector_store
    assert store is index.vector_store
    withheld, redacted = node_id(PATIENT_9, 1), node_id(EMPLOYEE_3, 0)
    seen: list[tuple[str, float | None]] = []
    erased: list[str] = []

    def hook(node: Any, *, score: float | None) -> Any:
        seen.append((node.node_id, score))
        assert node.get_content() == TEXT_BY_ID[node.node_id]  # the hook gets the opened node
        assert node.metadata == metadata_of(node.node_id)
        if node.node_id == withheld:
            return None
        if node.node_id == redacted:
            copy = node.model_copy()
            copy.set_content("[salary record withheld]")
            return copy
        return node

    store.set_release_hook(hook, on_erased=erased.append)
    with release_all("hook test"):  # (the autouse block is active too; a plain release point ignores it)
        results = retrieve(index, "SSN knee salary")
    assert sorted(i for i, _ in seen) == sorted(ALL_IDS)
    assert all(score is not None for _, score in seen)
    assert sorted(ids(results)) == sorted(set(ALL_IDS) - {withheld})
    by_id = {r.node.node_id: r for r in results}
    assert by_id[redacted].node.get_content() == "[salary record withheld]"
    assert {i: s for i, s in seen if i != withheld} == pytest.approx(
        {r.node.node_id: r.score for r in results}
    )
    assert erased == []

    # get_nodes goes through the same release point
    seen.clear()
    assert store.get_nodes(node_ids=[withheld]) == []
    assert [i for i, _ in seen] == [withheld]

    # a subject's key destroyed, its nodes left in place: they are erased data, reported and skipped
    gr.keyring.shred_subject(TENANT, "patient-7")
    seen.clear()
    results = retrieve(index, "Zebulon Quixote chest pain")
    assert sorted(erased) == sorted(ids_of(PATIENT_7))
    assert not set(ids_of(PATIENT_7)) & {i for i, _ in seen}
    assert sorted(ids(results)) == sorted(set(ids_of(PATIENT_9, EMPLOYEE_3)) - {withheld})

    # a hook that raises fails the whole retrieval closed
    def deny(node: Any, *, score: float | None) -> Any:
        raise PermissionError("policy: no access")

    store.set_release_hook(deny)
    with pytest.raises(PermissionError):
        retrieve(index, "salary")
    store.set_release_hook(None)  # release-all again
    assert sorted(ids(retrieve(index, "salary"))) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))


# --------------------------------------------------------------------------- filters


def test_filters_on_sealed_fields_are_refused(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    _, storage, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    title = DOC_BY_PATH[PATIENT_7].title
    with pytest.raises(ConfigError, match="'title'") as caught:
        retrieve(index, "Zebulon", filters=eq("title", title))
    assert title not in str(caught.value)
    assert "classification" in str(caught.value)  # says what can be filtered
    nested = MetadataFilters(filters=[eq("classification", "phi"), eq("title", title)], condition="or")
    with pytest.raises(ConfigError, match="'title'"):
        retrieve(index, "Zebulon", filters=nested)
    with pytest.raises(ConfigError, match="'doc_id' is tokenised"):
        retrieve(index, "Zebulon", filters=eq("doc_id", PATIENT_7, FilterOperator.TEXT_MATCH))
    with pytest.raises(ConfigError, match="not supported on an encrypted store"):
        retrieve(index, "Zebulon", vector_store_query_mode=VectorStoreQueryMode.HYBRID)
    with pytest.raises(ConfigError, match="'title'"):
        storage.vector_store.delete_nodes(filters=eq("title", title))
    assert backend.count(storage.vector_store.inner) == len(ALL_IDS)


def test_classification_filters(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    _, _, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    confidential = retrieve(index, "SSN", filters=eq("classification", "confidential"))
    assert ids(confidential) == ids_of(EMPLOYEE_3)
    assert_original(confidential)
    phi = retrieve(index, "SSN", filters=eq("classification", "phi"))
    assert sorted(ids(phi)) == sorted(ids_of(PATIENT_7, PATIENT_9))
    not_phi = retrieve(index, "SSN", filters=eq("classification", "phi", FilterOperator.NE))
    assert ids(not_phi) == ids_of(EMPLOYEE_3)
    listed = retrieve(index, "SSN", filters=eq("classification", ["confidential"], FilterOperator.IN))
    assert ids(listed) == ids_of(EMPLOYEE_3)


@pytest.mark.parametrize("key", ["doc_id", "ref_doc_id", "document_id"])
def test_document_id_filters_are_tokenised_and_work(
    key: str, backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    _, _, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    query = "SSN chest knee salary"
    only = retrieve(index, query, filters=eq(key, PATIENT_7))
    assert sorted(ids(only)) == sorted(ids_of(PATIENT_7))
    assert_original(only)
    two = retrieve(index, query, filters=eq(key, [PATIENT_7, EMPLOYEE_3], FilterOperator.IN))
    assert sorted(ids(two)) == sorted(ids_of(PATIENT_7, EMPLOYEE_3))
    rest = retrieve(index, query, filters=eq(key, [PATIENT_7], FilterOperator.NIN))
    assert sorted(ids(rest)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    assert sorted(ids(retrieve(index, query, filters=eq(key, PATIENT_9, FilterOperator.NE)))) == sorted(
        ids_of(PATIENT_7, EMPLOYEE_3)
    )
    both = MetadataFilters(
        filters=[MetadataFilter(key="classification", value="phi"), MetadataFilter(key=key, value=PATIENT_9)]
    )
    assert sorted(ids(retrieve(index, query, filters=both))) == sorted(ids_of(PATIENT_9))
    assert retrieve(index, query, filters=eq(key, "/srv/notes/nobody.txt")) == []


def test_doc_ids_restrict_retrieval_to_the_document(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    _, _, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    only = retrieve(index, "SSN chest knee salary", doc_ids=[PATIENT_7])
    assert sorted(ids(only)) == sorted(ids_of(PATIENT_7))
    assert_original(only)


def test_subject_filters(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    _, _, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    nine = retrieve(index, "SSN", filters=eq("subjects", "patient-9"))
    assert sorted(ids(nine)) == sorted(ids_of(PATIENT_9))
    assert_original(nine)
    two = retrieve(index, "SSN", filters=eq("subjects", ["patient-9", "employee-3"], FilterOperator.IN))
    assert sorted(ids(two)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))


def test_subject_exclusion_filters(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    _, _, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    if backend.kind != "simple":
        # only a subject's own nodes carry its flag and Qdrant never matches a missing key with !=:
        # exclusion is refused on stores where it cannot be exact
        with pytest.raises(ConfigError, match="excluding data subjects"):
            retrieve(index, "SSN", filters=eq("subject", "patient-7", FilterOperator.NE))
        return
    not_seven = retrieve(index, "SSN", filters=eq("subject", "patient-7", FilterOperator.NE))
    assert sorted(ids(not_seven)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    neither = retrieve(index, "SSN", filters=eq("subjects", ["patient-7", "patient-9"], FilterOperator.NIN))
    assert ids(neither) == ids_of(EMPLOYEE_3)


def test_or_filters(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    _, _, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="classification", value="confidential"),
            MetadataFilter(key="doc_id", value=PATIENT_9),
        ],
        condition="or",
    )
    assert sorted(ids(retrieve(index, "SSN", filters=either))) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))


def test_delete_nodes_by_filter_and_by_subject(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    _, storage, index = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    store = storage.vector_store
    store.delete_subject("patient-9")
    assert backend.count(store.inner) == len(ALL_IDS) - 2
    store.delete_nodes(filters=eq("doc_id", EMPLOYEE_3))
    assert backend.count(store.inner) == len(ALL_IDS) - 3
    assert sorted(ids(retrieve(index, "SSN"))) == sorted(ids_of(PATIENT_7))


def test_get_nodes_applies_filters(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    _, storage, _ = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    store = storage.vector_store
    by_ids = store.get_nodes(node_ids=ids_of(PATIENT_7))
    assert sorted(n.node_id for n in by_ids) == sorted(ids_of(PATIENT_7))
    assert all(n.get_content() == TEXT_BY_ID[n.node_id] for n in by_ids)
    filtered = store.get_nodes(filters=eq("classification", "confidential"))
    assert [n.node_id for n in filtered] == ids_of(EMPLOYEE_3)
    with pytest.raises(ConfigError):
        store.get_nodes(filters=eq("title", "anything"))


def test_delete_ref_doc_removes_the_documents_nodes(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    persist = tmp_path / "persist"
    _, storage, index = build(keyring_dir, backend, nodes, embed, persist)
    index.delete_ref_doc(PATIENT_7, delete_from_docstore=True)
    assert backend.count(storage.vector_store.inner) == len(ALL_IDS) - 2
    left = retrieve(index, "Zebulon Quixote chest pain")
    assert sorted(ids(left)) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))
    storage.persist(persist_dir=str(persist))
    backend.close()
    _, _, reopened = reopen(keyring_dir, backend, persist, embed)
    assert sorted(ids(retrieve(reopened, "Zebulon Quixote"))) == sorted(ids_of(PATIENT_9, EMPLOYEE_3))


# --------------------------------------------------------------------------- what the database sees


class RecordingVectorStore(SimpleVectorStore):
    """A real SimpleVectorStore that keeps every ``VectorStoreQuery`` it receives."""

    _received: list[VectorStoreQuery] = PrivateAttr(default_factory=list)

    @property
    def received(self) -> list[VectorStoreQuery]:
        return self._received

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> Any:
        self._received.append(query)
        return super().query(query, **kwargs)


def test_the_question_never_reaches_the_inner_store(
    keyring_dir: Path, nodes: list[TextNode], embed: Any
) -> None:
    inner = RecordingVectorStore()
    storage = Guardrail(keyring=keyring_dir, tenant=TENANT).storage_context(vector_store=inner)
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed)
    store = storage.vector_store
    question = "What is the SSN of Zebulon Quixote (zebulon.quixote@example.org)?"

    results = retrieve(index, question, k=2, filters=eq("doc_id", PATIENT_7))
    assert sorted(ids(results)) == sorted(ids_of(PATIENT_7))
    (received,) = inner.received
    assert received.query_str is None
    assert received.query_embedding == pytest.approx(embed.get_query_embedding(question))
    assert [secret for secret in SECRETS if secret in repr(received)] == []
    assert store.doc_token(PATIENT_7) in repr(received.filters)

    direct = VectorStoreQuery(
        query_str=question,
        query_embedding=embed.get_query_embedding(question),
        similarity_top_k=1,
        doc_ids=[PATIENT_7],
        filters=eq("classification", "phi"),
    )
    result = store.query(direct)
    assert inner.received[-1].query_str is None
    # doc_ids travel as a filter on the document token (not every store honours doc_ids)
    assert inner.received[-1].doc_ids is None
    assert store.doc_token(PATIENT_7) in repr(inner.received[-1].filters)
    assert [secret for secret in SECRETS if secret in repr(inner.received[-1])] == []
    assert result.nodes[0].get_content() == TEXT_BY_ID[result.nodes[0].node_id]

    text_search = VectorStoreQuery(query_str=question, mode=VectorStoreQueryMode.TEXT_SEARCH)
    with pytest.raises(ConfigError):
        store.query(text_search)
    assert len(inner.received) == 2


def test_encrypted_stores_refuse_to_pickle(
    backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    gr, storage, _ = build(keyring_dir, backend, nodes, embed, tmp_path / "persist")
    assert isinstance(storage.vector_store, EncryptedVectorStore)
    kv_stores = [storage.docstore._kvstore, storage.index_store._kvstore]
    assert all(isinstance(kv, EncryptedKVStore) for kv in kv_stores)
    for obj in (storage.vector_store, *kv_stores, gr.keyring, gr):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(obj)
    with pytest.raises(TypeError):
        pickle.dumps(storage)


# --------------------------------------------------------------------------- the docstore


def test_docstore_holds_only_ciphertext_and_round_trips(
    backend: Any, keyring_dir: Path, embed: Any, tmp_path: Path
) -> None:
    persist = tmp_path / "persist"
    documents = [
        Document(
            text=" ".join(d.chunks),
            doc_id=d.path,
            metadata={"subjects": [d.subject], "classification": d.classification, "title": d.title},
        )
        for d in DOCS
    ]
    storage = Guardrail(keyring=keyring_dir, tenant=TENANT).storage_context(
        vector_store=backend.vector_store()
    )
    VectorStoreIndex.from_documents(
        documents, storage_context=storage, embed_model=embed, store_nodes_override=True
    )
    stored = {n.node_id: (n.get_content(), n.metadata, n.ref_doc_id) for n in storage.docstore.docs.values()}
    assert sorted(ref for _, _, ref in stored.values()) == sorted(DOC_BY_PATH)
    storage.persist(persist_dir=str(persist))
    backend.close()

    assert scan(persist) == {}
    for name in ("docstore.json", "index_store.json"):
        for collection, records in json.loads((persist / name).read_text()).items():
            assert records, collection
            for token, value in records.items():
                assert re.fullmatch(r"[0-9a-f]{32}", token), (name, collection)
                assert set(value) == {"_gr"}
                assert value["_gr"].startswith("gr1.")

    # store_nodes_override is not persisted: without it the reloaded index leaves the docstore alone
    _, reopened, index = reopen(keyring_dir, backend, persist, embed, store_nodes_override=True)
    docs = reopened.docstore.docs
    assert {n.node_id: (n.get_content(), n.metadata, n.ref_doc_id) for n in docs.values()} == stored
    assert set(reopened.docstore.get_all_ref_doc_info()) == set(DOC_BY_PATH)
    info = reopened.docstore.get_ref_doc_info(PATIENT_7)
    assert info is not None
    assert [stored[nid][2] for nid in info.node_ids] == [PATIENT_7]

    top = retrieve(index, "chest pain arrhythmia cardiology", k=1)
    assert top[0].node.ref_doc_id == PATIENT_7
    assert top[0].node.get_content() == " ".join(DOC_BY_PATH[PATIENT_7].chunks)

    index.delete_ref_doc(PATIENT_7, delete_from_docstore=True)
    assert reopened.docstore.get_ref_doc_info(PATIENT_7) is None
    assert PATIENT_7 not in {n.ref_doc_id for n in reopened.docstore.docs.values()}
    assert backend.count(reopened.vector_store.inner) == 2


# --------------------------------------------------------------------------- re-encryption


def test_reencrypt_after_rotation_reseals_everything_under_the_new_primary(
    request: pytest.FixtureRequest,
    backend: Any,
    keyring_dir: Path,
    nodes: list[TextNode],
    embed: Any,
    tmp_path: Path,
) -> None:
    persist = tmp_path / "persist"
    gr, storage, index = build(keyring_dir, backend, nodes, embed, persist, store_nodes_override=True)
    keyring = gr.keyring
    old = keyring.primary_id(TENANT)
    new = keyring.rotate(TENANT).id
    assert keyring.primary_id(TENANT) == new != old

    dry = reencrypt(storage, keyring=keyring, tenant=TENANT, dry_run=True)
    assert dry.resealed == 0
    assert dry.total > len(ALL_IDS)  # the vectors, the docstore and the index store
    assert dry.by_key[old] == dry.total
    assert new not in dry.by_key

    report = reencrypt(storage, keyring=keyring, tenant=TENANT)
    assert report.by_key == dry.by_key  # read from headers, before re-sealing
    assert report.resealed == report.total == dry.total
    assert json.loads(report.to_json())["resealed"] == report.resealed

    after = reencrypt(storage, keyring=keyring, tenant=TENANT, dry_run=True)
    assert after.total == dry.total
    assert after.by_key[new] == after.total
    assert old not in after.by_key
    assert after.resealed == 0

    results = retrieve(index, "SSN")
    assert sorted(ids(results)) == sorted(ALL_IDS)
    assert_original(results)

    # nothing is sealed under the old key any more: it can go, and a reopened store still opens
    keyring.destroy(old, in_use=after.by_key.get(old, 0))
    storage.persist(persist_dir=str(persist))
    backend.close()
    _, reopened, index2 = reopen(keyring_dir, backend, persist, embed)
    results = retrieve(index2, "SSN")
    assert sorted(ids(results)) == sorted(ALL_IDS)
    assert_original(results)
    for nid in ALL_IDS:
        assert reopened.docstore.get_node(nid).get_content() == TEXT_BY_ID[nid]


def test_reencrypt_does_not_depend_on_the_release_hook(
    simple_backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    gr, storage, index = build(keyring_dir, simple_backend, nodes, embed, tmp_path / "persist", hookable=True)
    withheld = node_id(EMPLOYEE_3, 0)

    def hook(node: Any, *, score: float | None) -> Any:
        return None if node.node_id == withheld else node

    storage.vector_store.set_release_hook(hook)
    gr.keyring.rotate(TENANT)
    reencrypt(storage, keyring=gr.keyring, tenant=TENANT)
    storage.vector_store.set_release_hook(None)
    assert sorted(ids(retrieve(index, "salary"))) == sorted(ALL_IDS)


if __name__ == "__main__":  # test_no_secret_reaches_the_disk runs this in a fresh interpreter
    write_store(sys.argv[1], Path(sys.argv[2]))


def test_a_store_made_through_a_guardrail_is_closed_and_its_release_point_fixed(
    simple_backend: Any, keyring_dir: Path, nodes: list[TextNode], embed: Any, tmp_path: Path
) -> None:
    """Outside maintenance, a plain retrieval is refused; the release point cannot be swapped for a hook."""
    from guardrail.access import AccessDenied

    _, storage, index = build(keyring_dir, simple_backend, nodes, embed, tmp_path / "persist")
    from guardrail.llama_index import release as release_module

    reset = release_module._maintenance.set(None)  # step out of the autouse maintenance block
    try:
        with pytest.raises(AccessDenied, match=r"gr\.guard"):
            retrieve(index, "salary")
        with pytest.raises(ConfigError, match="cannot be replaced"):
            storage.vector_store.set_release_hook(None)
    finally:
        release_module._maintenance.reset(reset)
