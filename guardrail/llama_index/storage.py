"""Encrypted ``StorageContext`` s: build, persist, reload, re-encrypt and erase.

``StorageContext.from_defaults(persist_dir=...)`` would read the raw files (and find only ciphertext);
:func:`load_storage_context` reopens them through the encrypted wrappers and checks, before anything is
used, that the keyring opens them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.storage.index_store import SimpleIndexStore
from llama_index.core.storage.kvstore import SimpleKVStore
from llama_index.core.storage.storage_context import StorageContext
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from guardrail.crypto import VERSION_BOUND, DecryptionError, Sealer, decode_text, envelope_version, key_ids_of
from guardrail.errors import ConfigError
from guardrail.keys import KeyringError, KeyringLike, as_keyring
from guardrail.llama_index.stores import (
    _ENVELOPE_KEY,
    STORAGE_NAME_FILE,
    EncryptedKVStore,
    EncryptedVectorStore,
    ReleasePoint,
    binding_of,
)

__all__ = [
    "ErasureReport",
    "ReencryptReport",
    "build_storage_context",
    "erase_subject",
    "load_storage_context",
    "persisted_name",
    "reencrypt",
]

DOCSTORE_FILE = "docstore.json"
INDEX_STORE_FILE = "index_store.json"
VECTOR_STORE_FILE = "default__vector_store.json"


class SealedDocumentStore(SimpleDocumentStore):
    """The docstore of a storage made through a Guardrail. Inside a guarded retrieval, ``get_nodes``
    leaves out the nodes the principal may not see (the release point withholds them) instead of
    failing the whole retrieval with LlamaIndex's "doc_id ... not found": a SummaryIndex, a keyword
    table or a DocumentSummaryIndex over it then returns what the principal may see."""

    def get_nodes(self, node_ids: list[str], raise_error: bool = True) -> list[Any]:
        from guardrail.llama_index.release import _request

        if _request.get() is not None:
            raise_error = False
        return super().get_nodes(node_ids, raise_error=raise_error)

    async def aget_nodes(self, node_ids: list[str], raise_error: bool = True) -> list[Any]:
        from guardrail.llama_index.release import _request

        if _request.get() is not None:
            raise_error = False
        return await super().aget_nodes(node_ids, raise_error=raise_error)


def _storage_name(name: str | None, vector_binding: str) -> str:
    if name is not None:
        if not name or ":" in name or not name.isprintable():
            raise ConfigError(f"storage name {name!r}: give a non-empty printable name without ':'")
        return name
    store_class, _, collection = vector_binding.partition(":")
    # a database collection names the place; a Simple store is "default" unless named
    return "default" if store_class == "SimpleVectorStore" else collection


def build_storage_context(
    *,
    keyring: KeyringLike,
    tenant: str,
    sealer: Sealer | None = None,
    vector_store: BasePydanticVectorStore | None = None,
    docstore_kv: Any = None,
    index_kv: Any = None,
    namespace: str = "default",
    name: str | None = None,
    shield: Any = None,
    overfetch: int = 3,
    release_point: ReleasePoint | None = None,
) -> StorageContext:
    """A ``StorageContext`` whose document store, index store and vector store are encrypted; the
    vector store and the docstore release nodes through one shared :class:`ReleasePoint` (this
    low-level builder's default releases everything, for a custom hook; every store made or opened
    through a ``Guardrail`` gets the closed-by-default
    :class:`~guardrail.llama_index.release.GuardedReleasePoint`).

    Every record is bound to its place (envelope version 2): vector nodes to
    ``"<vector store class>:<collection>"`` (for a ``SimpleVectorStore``, the collection is ``name``) and
    docstore/index-store records to ``"<name>:<collection>"``. A record copied into another collection or
    storage does not open there.

    Args:
        keyring: a :class:`~guardrail.keys.Keyring` or the path of its directory.
        tenant: whose keys seal the records.
        sealer: default ``Sealer(keyring)``.
        name: the storage's name (default: the vector store's collection, ``"default"`` for a Simple
            store). Give each persisted Simple storage its own name: two with the same name can swap
            records. The name is persisted beside the files and read back by :func:`load_storage_context`.

    Raises:
        ConfigError: an invalid name.
        KeyringError: ``keyring`` is a path that holds no keyring or does not open.
    """
    refuse_unfilterable(vector_store)
    ring = as_keyring(keyring)
    sealer = sealer if sealer is not None else Sealer(ring)
    inner = vector_store if vector_store is not None else SimpleVectorStore()
    vector_binding = binding_of(inner, name or "default")
    storage_name = _storage_name(name, vector_binding)
    release_point = release_point if release_point is not None else ReleasePoint()
    # SimpleDocumentStore/SimpleIndexStore are typed for SimpleKVStore but work over any in-memory
    # kvstore; the encrypted one subclasses BaseInMemoryKVStore so that their persist() writes it.
    docstore = SealedDocumentStore(
        simple_kvstore=EncryptedKVStore(  # type: ignore[arg-type]
            docstore_kv or SimpleKVStore(),
            sealer=sealer,
            keyring=ring,
            tenant=tenant,
            store="docstore",
            release_point=release_point,
            name=storage_name,
        )
    )
    index_store = SimpleIndexStore(
        simple_kvstore=EncryptedKVStore(  # type: ignore[arg-type]
            index_kv or SimpleKVStore(),
            sealer=sealer,
            keyring=ring,
            tenant=tenant,
            store="index_store",
            name=storage_name,
        )
    )
    encrypted = EncryptedVectorStore(
        inner,
        sealer=sealer,
        keyring=ring,
        tenant=tenant,
        namespace=namespace,
        release_point=release_point,
        shield=shield,
        overfetch=overfetch,
        binding=vector_binding,
    )
    if hasattr(release_point, "peek"):
        kv = docstore._kvstore
        collection = docstore._node_collection
        release_point.peek = lambda node_id: kv.peek_metadata(node_id, collection)  # type: ignore[attr-defined]
    return StorageContext.from_defaults(docstore=docstore, index_store=index_store, vector_store=encrypted)


def persisted_name(persist_dir: str | Path) -> str | None:
    """The storage name persisted in ``persist_dir`` (``None``: none was, e.g. a store written before
    bindings existed).

    Raises:
        ConfigError: the name file is unreadable.
    """
    path = Path(persist_dir) / STORAGE_NAME_FILE
    if not path.exists():
        return None
    try:
        name = json.loads(path.read_text("utf-8"))["name"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: unreadable storage name file") from None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: unreadable storage name file")
    return name


def refuse_unfilterable(vector_store: Any) -> None:
    """Stores that cannot apply metadata filters cannot keep tenants apart: refused up front."""
    if vector_store is None:
        return
    name = type(vector_store).__name__
    module = type(vector_store).__module__
    if "faiss" in module.lower() or name == "FaissVectorStore":
        raise ConfigError(
            f"{name} cannot be encrypted: it applies no metadata filters, so the tenant and classification "
            "constraints of every query could not be enforced in the store. Use SimpleVectorStore, Chroma or "
            "Qdrant (local mode needs no server), or any vector store that supports MetadataFilters"
        )


def load_storage_context(
    persist_dir: str | Path,
    *,
    keyring: KeyringLike,
    tenant: str,
    sealer: Sealer | None = None,
    vector_store: BasePydanticVectorStore | None = None,
    namespace: str = "default",
    name: str | None = None,
    shield: Any = None,
    overfetch: int = 3,
    release_point: ReleasePoint | None = None,
) -> StorageContext:
    """Reopen a persisted encrypted storage context.

    Args:
        keyring: a :class:`~guardrail.keys.Keyring` or the path of its directory.
        name: the storage's name; default: the name persisted with it.

    Raises:
        ConfigError: ``persist_dir`` holds no persisted storage context, or ``name`` is not the
            persisted one.
        KeyringError: the keyring (or tenant) does not open it: nothing is read or written further.
    """
    directory = Path(persist_dir)
    index_path = directory / INDEX_STORE_FILE
    if not index_path.exists():
        raise ConfigError(f"{directory}: no persisted storage context here ({INDEX_STORE_FILE} is missing)")
    stored_name = persisted_name(directory)
    if name is not None and stored_name is not None and name != stored_name:
        raise ConfigError(
            f"{directory}: this storage is named {stored_name!r}, not {name!r} (its records are bound to "
            f"its name): pass name={stored_name!r} (CLI: --name {stored_name}) or leave the name out"
        )
    docstore_kv = (
        SimpleKVStore.from_persist_path(str(directory / DOCSTORE_FILE))
        if (directory / DOCSTORE_FILE).exists()
        else None
    )
    index_kv = SimpleKVStore.from_persist_path(str(index_path))
    if vector_store is None:
        vector_path = directory / VECTOR_STORE_FILE
        vector_store = (
            SimpleVectorStore.from_persist_path(str(vector_path))
            if vector_path.exists()
            else SimpleVectorStore()
        )
    storage = build_storage_context(
        sealer=sealer,
        keyring=keyring,
        tenant=tenant,
        vector_store=vector_store,
        docstore_kv=docstore_kv,
        index_kv=index_kv,
        namespace=namespace,
        name=name if name is not None else stored_name,
        shield=shield,
        overfetch=overfetch,
        release_point=release_point,
    )
    # Prove the keyring opens the store before handing it out: every index record must open.
    try:
        storage.index_store._kvstore.get_all(collection=storage.index_store._collection)  # type: ignore[attr-defined]
    except DecryptionError:
        raise KeyringError(
            f"{directory}: this keyring (or tenant {tenant!r}) does not open the store: it was sealed with "
            f"other keys, bound to another storage name than {storage.index_store._kvstore.name!r}, "  # type: ignore[attr-defined]
            "or it is damaged"
        ) from None
    return storage


# --------------------------------------------------------------------------- erasure


@dataclass(frozen=True)
class ErasureReport:
    """What :func:`erase_subject` did (no names: the subject is referred to by a keyed hash)."""

    subject_ref: str
    vector_nodes_deleted: int
    docstore_records_deleted: int
    keys_destroyed: list[str] = field(default_factory=list)


def _kv_stores(storage: StorageContext) -> list[EncryptedKVStore]:
    out = []
    for store in (storage.docstore, storage.index_store):
        kv = getattr(store, "_kvstore", None)
        if isinstance(kv, EncryptedKVStore):
            out.append(kv)
    return out


def _vector_stores(storage: StorageContext) -> list[EncryptedVectorStore]:
    return [v for v in storage.vector_stores.values() if isinstance(v, EncryptedVectorStore)]


def erase_subject(
    storages: list[StorageContext], *, keyring: KeyringLike, tenant: str, subject: str
) -> ErasureReport:
    """Delete a data subject's records everywhere and destroy the subject's key (GDPR Art. 17).

    Deletion removes the subject's nodes from every vector store and the docstore records sealed under
    the subject's key (found by reading envelope headers, without decrypting). Destroying the key makes
    every copy that escaped deletion, backups included, unreadable (crypto-shredding).
    """
    keyring = as_keyring(keyring)
    subject_ids = {bytes.fromhex(k) for k in keyring.subject_key_ids(tenant, subject)}
    nodes = 0
    records = 0
    for storage in storages:
        deleted_ids: list[str] = []
        for vector in _vector_stores(storage):
            deleted_ids.extend(vector.delete_subject(subject))
        nodes += len(deleted_ids)
        for kv in _kv_stores(storage):
            for collection in _collections(kv):
                # records sealed under the subject's key (found from headers) ...
                for token, stored in list(kv.raw_items(collection).items()):
                    if _sealed_under(stored, subject_ids):
                        kv.inner.delete(token, collection=collection)
                        records += 1
                # ... and any other record about the deleted nodes (e.g. their doc_hash)
                for node_id in deleted_ids:
                    if kv.delete(node_id, collection):
                        records += 1
    destroyed = keyring.shred_subject(tenant, subject)
    return ErasureReport(
        subject_ref=keyring.token(tenant, "subject-ref", subject, length=16),
        vector_nodes_deleted=nodes,
        docstore_records_deleted=records,
        keys_destroyed=destroyed,
    )


def _collections(kv: EncryptedKVStore) -> list[str]:
    # SimpleKVStore (MutableMappingKVStore) keeps one mapping per collection; other backends expose
    # no listing, so erasure and re-encryption of their records go through the known collections
    for attribute in ("_collections_mappings", "_data"):
        data = getattr(kv.inner, attribute, None)
        if isinstance(data, dict):
            return list(data)
    return []


def _sealed_under(stored: Any, key_ids: set[bytes]) -> bool:
    sealed = stored.get(_ENVELOPE_KEY) if isinstance(stored, dict) else None
    if not isinstance(sealed, str) or not key_ids:
        return False
    try:
        return bool(key_ids.intersection(key_ids_of(decode_text(sealed, record="?"))))
    except (DecryptionError, ValueError):
        return False


# --------------------------------------------------------------------------- re-encryption


@dataclass
class ReencryptReport:
    """Records per key id before re-encryption (read from headers), how many were unbound (envelope
    version 1: not bound to their collection) and how many were re-sealed (under the primary, bound)."""

    by_key: dict[str, int] = field(default_factory=dict)
    resealed: int = 0
    total: int = 0
    unbound: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"by_key": self.by_key, "resealed": self.resealed, "total": self.total, "unbound": self.unbound},
            sort_keys=True,
        )

    def _count(self, sealed: Any, primary: str | None) -> bool:
        """Count one stored record; whether it needs re-sealing (stale key or unbound)."""
        ids, version = _header(sealed)
        self.total += 1
        for i in ids:
            self.by_key[i] = self.by_key.get(i, 0) + 1
        if ids and version != VERSION_BOUND:
            self.unbound += 1
        return bool(ids) and (ids[0] != primary or version != VERSION_BOUND)


def reencrypt(
    storage: StorageContext, *, keyring: KeyringLike, tenant: str, dry_run: bool = False
) -> ReencryptReport:
    """Re-seal every record not sealed under the tenant's primary key or not bound to its collection
    (envelope version 1, written before bindings): afterwards every record is version 2 under the primary.

    Counting reads only envelope headers (no decryption); re-sealing opens and seals again under the
    primary. Works for the KV stores and for vector stores that keep their embeddings retrievable
    (SimpleVectorStore; others via ``get_nodes``).
    """
    report = ReencryptReport()
    primary = as_keyring(keyring).primary_id(tenant)
    for kv in _kv_stores(storage):
        for collection in _collections(kv):
            for token, stored in list(kv.raw_items(collection).items()):
                stale = report._count(
                    stored.get(_ENVELOPE_KEY) if isinstance(stored, dict) else None, primary
                )
                if stale and not dry_run:
                    opened = kv._open(token, stored, collection, release=False)  # never through the hook
                    if opened is not None:
                        kv.put(opened[0], opened[1], collection)
                        report.resealed += 1
    for vector in _vector_stores(storage):
        report = _reencrypt_vectors(vector, report, primary=primary, dry_run=dry_run)
    return report


def _header(sealed: Any) -> tuple[list[str], int]:
    if not isinstance(sealed, str):
        return [], 0
    try:
        blob = decode_text(sealed, record="?")
        return [i.hex() for i in key_ids_of(blob)], envelope_version(blob)
    except (DecryptionError, ValueError):
        return [], 0


def _ids(sealed: Any) -> list[str]:
    return _header(sealed)[0]


def _reencrypt_vectors(
    vector: EncryptedVectorStore, report: ReencryptReport, *, primary: str | None, dry_run: bool
) -> ReencryptReport:
    """Count records per key from headers; re-seal stale ones. Records are opened directly (never
    through the release hook: a withheld or redacted node must not replace the stored original)."""
    inner = vector.inner
    data = getattr(inner, "data", None)
    simple = data is not None and hasattr(data, "metadata_dict")
    shadows = vector._stored(None, None) if simple else inner.get_nodes(node_ids=None)
    stale = []
    for shadow in shadows:
        sealed = shadow.metadata.get(_ENVELOPE_KEY) or shadow.get_content()
        if report._count(sealed, primary):
            stale.append(shadow)
    if not stale or dry_run:
        return report
    embeddings = _embeddings(vector, [s.node_id for s in stale])
    fresh = []
    for shadow in stale:
        node = vector.open_stored(shadow)
        if node is None:
            continue  # erased: nothing to re-seal
        node.embedding = embeddings[node.node_id]
        fresh.append(node)
    inner.delete_nodes(node_ids=[n.node_id for n in fresh])
    vector.add(fresh)
    report.resealed += len(fresh)
    return report


def _embeddings(vector: EncryptedVectorStore, node_ids: list[str]) -> dict[str, list[float]]:
    inner = vector.inner
    data = getattr(inner, "data", None)
    if data is not None and hasattr(data, "embedding_dict"):
        return {i: list(data.embedding_dict[i]) for i in node_ids}
    collection = getattr(inner, "_collection", None)
    if collection is not None and hasattr(collection, "get"):  # Chroma
        got = collection.get(ids=node_ids, include=["embeddings"])
        return {i: [float(x) for x in e] for i, e in zip(got["ids"], got["embeddings"], strict=True)}
    found = {n.node_id: n.embedding for n in inner.get_nodes(node_ids=node_ids)}
    if any(found.get(i) is None for i in node_ids):
        raise ConfigError(f"{type(inner).__name__} does not return embeddings: re-encrypt it by re-ingesting")
    return {i: list(found[i] or []) for i in node_ids}
