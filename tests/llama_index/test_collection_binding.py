"""Ciphertext bound to its collection (issue 11, item 3).

An attacker with write access to the database (not to the keyring) copies a raw sealed record from
collection ``kb-restricted`` into ``kb-general`` of the same tenant, with the same keyring. With bound
envelopes (version 2) the copy does not open in ``kb-general`` and is never released there; the
positive controls show the record opening in its own collection, the general collection serving its own
data, and the same copy succeeding on stores sealed the old way (version 1, unbound), so a test that
"finds nothing" cannot pass for a store that is merely empty. Real Chroma, Qdrant (local mode) and
persisted Simple stores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import BaseNode, TextNode

from guardrail import Guardrail
from guardrail.crypto import DecryptionError, decode_text, envelope_version
from guardrail.errors import ConfigError
from guardrail.llama_index.storage import reencrypt

TENANT = "acme"
RESTRICTED, GENERAL = "kb-restricted", "kb-general"
SECRET = "merger Zebulon Quixote board salary restricted"
RESTRICTED_ID = "0d3c2b1a-5e6f-4a7b-8c9d-0e1f2a3b4c5d"  # Qdrant wants UUIDs
GENERAL_ID = "9a8b7c6d-5e4f-4a3b-9c1d-0e2f4a6b8c0d"

pytestmark = [
    # QdrantVectorStore creates payload indexes when it creates a collection; local mode warns once
    pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant:UserWarning"),
]


class Place:
    """Two collections of one backend, written and read through guardrail, copied raw underneath."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.client: Any = None
        if kind == "chroma":
            import chromadb
            from chromadb.config import Settings

            self.client = chromadb.PersistentClient(
                path=str(root / "chroma"), settings=Settings(anonymized_telemetry=False)
            )
        elif kind == "qdrant":
            import qdrant_client

            self.client = qdrant_client.QdrantClient(path=str(root / "qdrant"))

    def inner(self, collection: str) -> Any:
        if self.kind == "chroma":
            from llama_index.vector_stores.chroma import ChromaVectorStore

            return ChromaVectorStore(chroma_collection=self.client.get_or_create_collection(collection))
        if self.kind == "qdrant":
            from llama_index.vector_stores.qdrant import QdrantVectorStore

            return QdrantVectorStore(client=self.client, collection_name=collection)
        return None  # the storage context makes a SimpleVectorStore

    def persist_dir(self, collection: str) -> Path:
        return self.root / "simple" / collection

    def storage(self, gr: Guardrail, collection: str, *, reopen: bool = False) -> Any:
        if self.kind == "simple":
            if reopen:
                return gr.load_storage_context(self.persist_dir(collection))
            return gr.storage_context(name=collection)
        return gr.storage_context(self.inner(collection))

    def write(
        self, gr: Guardrail, collection: str, node: TextNode, embed: Any, *, unbound: bool = False
    ) -> Any:
        storage = self.storage(gr, collection)
        if unbound:  # what guardrail wrote before bindings: version 1 envelopes
            storage.vector_store.binding = ""
            for kv in (storage.docstore._kvstore, storage.index_store._kvstore):
                kv.name = ""
        VectorStoreIndex([node], storage_context=storage, embed_model=embed, store_nodes_override=True)
        if self.kind == "simple":
            storage.persist(persist_dir=str(self.persist_dir(collection)))
        return storage

    def copy_raw(self, node_id: str, src: str, dst: str) -> str:
        """Copy a stored record byte for byte from one collection into the other; its sealed form."""
        if self.kind == "chroma":
            got = self.client.get_collection(src).get(
                ids=[node_id], include=["embeddings", "metadatas", "documents"]
            )
            self.client.get_collection(dst).add(
                ids=got["ids"],
                embeddings=[list(e) for e in got["embeddings"]],
                metadatas=got["metadatas"],
                documents=got["documents"],
            )
            return str(got["documents"][0])
        if self.kind == "qdrant":
            from qdrant_client.models import PointStruct

            (point,) = self.client.scroll(src, with_vectors=True, with_payload=True, limit=10)[0][:1]
            self.client.upsert(
                dst, points=[PointStruct(id=point.id, vector=point.vector, payload=point.payload)]
            )
            return json.loads(point.payload["_node_content"])["text"]  # type: ignore[index, no-any-return]
        source = self.persist_dir(src) / "default__vector_store.json"
        target = self.persist_dir(dst) / "default__vector_store.json"
        data, into = json.loads(source.read_text()), json.loads(target.read_text())
        for table in ("embedding_dict", "text_id_to_ref_doc_id", "metadata_dict"):
            into[table][node_id] = data[table][node_id]
        target.write_text(json.dumps(into))
        return str(data["metadata_dict"][node_id]["_gr"])

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


@pytest.fixture(params=["chroma", "qdrant", "simple"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    p = Place(request.param, tmp_path / "db")
    yield p
    p.close()


def _retrieve(storage: Any, embed: Any, query: str) -> tuple[list[BaseNode] | None, list[str]]:
    """Retrieve from a storage context through guardrail; the nodes (``None``: refused, fail closed) and
    every node id the release point saw."""
    seen: list[str] = []

    def hook(node: BaseNode, *, score: float | None) -> BaseNode:
        seen.append(node.node_id)
        return node

    storage.vector_store.set_release_hook(hook)
    index = VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=embed)
    try:
        return [n.node for n in index.as_retriever(similarity_top_k=5).retrieve(query)], seen
    except DecryptionError:
        return None, seen


def _nodes() -> tuple[TextNode, TextNode]:
    return (
        TextNode(id_=RESTRICTED_ID, text=f"Restricted: {SECRET}"),
        TextNode(id_=GENERAL_ID, text="General: the canteen opens at nine"),
    )


def _setup(place: Place, keyring_dir: Path, embed: Any, *, unbound: bool = False) -> Guardrail:
    gr = Guardrail(keyring=keyring_dir, tenant=TENANT)
    restricted, general = _nodes()
    place.write(gr, RESTRICTED, restricted, embed, unbound=unbound)
    place.write(gr, GENERAL, general, embed, unbound=unbound)
    return gr


def test_a_record_copied_into_another_collection_does_not_open_there(
    place: Place, keyring_dir: Path, embed: Any
) -> None:
    gr = _setup(place, keyring_dir, embed)
    # positive controls: each collection serves its own data to its reader
    nodes, _ = _retrieve(place.storage(gr, RESTRICTED, reopen=True), embed, SECRET)
    assert nodes is not None
    assert [n.node_id for n in nodes] == [RESTRICTED_ID]
    assert SECRET in nodes[0].get_content()
    nodes, _ = _retrieve(place.storage(gr, GENERAL, reopen=True), embed, SECRET)
    assert nodes is not None
    assert [n.node_id for n in nodes] == [GENERAL_ID]

    sealed = place.copy_raw(RESTRICTED_ID, RESTRICTED, GENERAL)
    assert envelope_version(decode_text(sealed, record="?")) == 2
    assert SECRET not in sealed

    general = place.storage(gr, GENERAL, reopen=True)
    nodes, seen = _retrieve(general, embed, SECRET)
    assert RESTRICTED_ID not in seen  # never reached the release point
    assert nodes is None or RESTRICTED_ID not in [n.node_id for n in nodes]
    assert all(SECRET not in n.get_content() for n in nodes or [])
    with pytest.raises(DecryptionError):
        general.vector_store.get_nodes(node_ids=[RESTRICTED_ID])

    # the original still opens in its own collection
    nodes, _ = _retrieve(place.storage(gr, RESTRICTED, reopen=True), embed, SECRET)
    assert nodes is not None
    assert SECRET in nodes[0].get_content()


def test_unbound_records_moved_across_collections_did_open(
    place: Place, keyring_dir: Path, embed: Any
) -> None:
    """The control for the test above: the same copy, on version 1 (unbound) stores, is released."""
    gr = _setup(place, keyring_dir, embed, unbound=True)
    sealed = place.copy_raw(RESTRICTED_ID, RESTRICTED, GENERAL)
    assert envelope_version(decode_text(sealed, record="?")) == 1
    nodes, seen = _retrieve(place.storage(gr, GENERAL, reopen=True), embed, SECRET)
    assert RESTRICTED_ID in seen
    assert nodes is not None
    assert any(SECRET in n.get_content() for n in nodes)


def test_a_docstore_record_copied_into_another_storage_does_not_open(
    keyring_dir: Path, embed: Any, tmp_path: Path
) -> None:
    place = Place("simple", tmp_path / "db")
    gr = _setup(place, keyring_dir, embed)
    assert (
        gr.load_storage_context(place.persist_dir(RESTRICTED)).docstore.get_node(RESTRICTED_ID).get_content()
    )
    source = json.loads((place.persist_dir(RESTRICTED) / "docstore.json").read_text())
    target_path = place.persist_dir(GENERAL) / "docstore.json"
    target = json.loads(target_path.read_text())
    collection = "docstore/data"
    moved = {k: v for k, v in source[collection].items() if k not in target[collection]}
    assert moved  # the restricted node's record (its token is the same in every storage of the tenant)
    target[collection].update(moved)
    target_path.write_text(json.dumps(target))

    general = gr.load_storage_context(place.persist_dir(GENERAL))
    with pytest.raises(DecryptionError):
        general.docstore.get_node(RESTRICTED_ID)
    assert general.docstore.get_node(GENERAL_ID).get_content().startswith("General")  # its own record opens


def test_a_simple_storage_keeps_its_name(keyring_dir: Path, embed: Any, tmp_path: Path) -> None:
    place = Place("simple", tmp_path / "db")
    gr = _setup(place, keyring_dir, embed)
    storage = gr.load_storage_context(place.persist_dir(RESTRICTED))
    assert storage.vector_store.binding == "SimpleVectorStore:kb-restricted"
    assert storage.docstore._kvstore.name == RESTRICTED
    with pytest.raises(ConfigError, match="named 'kb-restricted', not 'kb-general'"):
        gr.load_storage_context(place.persist_dir(RESTRICTED), name=GENERAL)
    with pytest.raises(ConfigError, match="without ':'"):
        gr.storage_context(name="a:b")


def test_chroma_and_qdrant_bind_to_their_collection(tmp_path: Path, keyring_dir: Path) -> None:
    gr = Guardrail(keyring=keyring_dir, tenant=TENANT)
    for kind, cls in (("chroma", "ChromaVectorStore"), ("qdrant", "QdrantVectorStore")):
        place = Place(kind, tmp_path / kind)
        try:
            storage = place.storage(gr, RESTRICTED)
            assert storage.vector_store.binding == f"{cls}:{RESTRICTED}"
            assert storage.docstore._kvstore.name == RESTRICTED
        finally:
            place.close()


def _cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail", *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_reencrypt_binds_old_records_and_reports_them(keyring_dir: Path, embed: Any, tmp_path: Path) -> None:
    """A store written before bindings keeps opening; `keys reencrypt` reports its unbound records and
    re-seals them bound, after which the copy attack fails on it too."""
    place = Place("simple", tmp_path / "db")
    gr = _setup(place, keyring_dir, embed, unbound=True)
    restricted_dir = place.persist_dir(RESTRICTED)
    # read compatibility: the old store opens and serves its data
    nodes, _ = _retrieve(gr.load_storage_context(restricted_dir), embed, SECRET)
    assert nodes is not None
    assert SECRET in nodes[0].get_content()
    counted = reencrypt(
        gr.load_storage_context(restricted_dir), keyring=keyring_dir, tenant=TENANT, dry_run=True
    )
    assert counted.unbound == counted.total > 0

    dry = _cli(
        "keys", "reencrypt", "-k", keyring_dir, "-s", restricted_dir, "-t", TENANT, "--dry-run", cwd=tmp_path
    )
    assert dry.returncode == 0, dry.stderr
    assert f"{counted.unbound} record(s) not bound to their collection" in dry.stdout
    for collection in (RESTRICTED, GENERAL):
        done = _cli(
            "keys",
            "reencrypt",
            "-k",
            keyring_dir,
            "-s",
            place.persist_dir(collection),
            "-t",
            TENANT,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "re-sealed bound" in done.stdout
    # a store written before bindings had no name: it is bound under its directory's name
    for collection in (RESTRICTED, GENERAL):
        storage = gr.load_storage_context(place.persist_dir(collection))
        assert storage.vector_store.binding == f"SimpleVectorStore:{collection}"
        assert reencrypt(storage, keyring=keyring_dir, tenant=TENANT, dry_run=True).unbound == 0
    nodes, _ = _retrieve(gr.load_storage_context(restricted_dir), embed, SECRET)
    assert nodes is not None
    assert SECRET in nodes[0].get_content()

    place.copy_raw(RESTRICTED_ID, RESTRICTED, GENERAL)  # the attack, now on the rebound stores
    nodes, seen = _retrieve(gr.load_storage_context(place.persist_dir(GENERAL)), embed, SECRET)
    assert RESTRICTED_ID not in seen
    assert all(SECRET not in n.get_content() for n in nodes or [])

    named = _cli(
        "keys",
        "reencrypt",
        "-k",
        keyring_dir,
        "-s",
        restricted_dir,
        "-s",
        restricted_dir,
        "--name",
        "x",
        cwd=tmp_path,
    )
    assert named.returncode == 2
    assert "exactly one --store" in named.stderr


@pytest.mark.parametrize("place", ["chroma", "qdrant"], indirect=True)
def test_reencrypt_binds_an_old_database_collection(place: Place, keyring_dir: Path, embed: Any) -> None:
    """The Python API does for Chroma and Qdrant what `keys reencrypt` does for persisted directories."""
    gr = _setup(place, keyring_dir, embed, unbound=True)
    for collection in (RESTRICTED, GENERAL):
        storage = place.storage(gr, collection)
        report = reencrypt(storage, keyring=keyring_dir, tenant=TENANT)
        assert report.unbound == report.resealed == 1
        assert reencrypt(storage, keyring=keyring_dir, tenant=TENANT, dry_run=True).unbound == 0
    nodes, _ = _retrieve(place.storage(gr, RESTRICTED), embed, SECRET)
    assert nodes is not None
    assert SECRET in nodes[0].get_content()
    sealed = place.copy_raw(RESTRICTED_ID, RESTRICTED, GENERAL)
    assert envelope_version(decode_text(sealed, record="?")) == 2
    nodes, seen = _retrieve(place.storage(gr, GENERAL), embed, SECRET)
    assert RESTRICTED_ID not in seen
    assert all(SECRET not in n.get_content() for n in nodes or [])
