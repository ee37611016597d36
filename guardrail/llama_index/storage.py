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

from guardrail.crypto import DecryptionError, Sealer, decode_text, key_ids_of
from guardrail.errors import ConfigError
from guardrail.keys import Keyring, KeyringError
from guardrail.llama_index.stores import _ENVELOPE_KEY, EncryptedKVStore, EncryptedVectorStore, ReleasePoint

__all__ = [
    "ErasureReport",
    "ReencryptReport",
    "build_storage_context",
    "erase_subject",
    "load_storage_context",
    "reencrypt",
]

DOCSTORE_FILE = "docstore.json"
INDEX_STORE_FILE = "index_store.json"
VECTOR_STORE_FILE = "default__vector_store.json"


def build_storage_context(
    *,
    sealer: Sealer,
    keyring: Keyring,
    tenant: str,
    vector_store: BasePydanticVectorStore | None = None,
    docstore_kv: Any = None,
    index_kv: Any = None,
    namespace: str = "default",
    shield: Any = None,
    overfetch: int = 3,
    release_point: ReleasePoint | None = None,
) -> StorageContext:
    """A ``StorageContext`` whose document store, index store and vector store are encrypted; the
    vector store and the docstore release nodes through one shared :class:`ReleasePoint`: by default a
    closed :class:`~guardrail.llama_index.release.GuardedReleasePoint` (nothing leaves outside a guard's
    request or ``release_all``); pass ``release_point=ReleasePoint(hook)`` for a custom hook."""
    from guardrail.llama_index.release import GuardedReleasePoint

    refuse_unfilterable(vector_store)
    release_point = release_point if release_point is not None else GuardedReleasePoint()
    # SimpleDocumentStore/SimpleIndexStore are typed for SimpleKVStore but work over any in-memory
    # kvstore; the encrypted one subclasses BaseInMemoryKVStore so that their persist() writes it.
    docstore = SimpleDocumentStore(
        simple_kvstore=EncryptedKVStore(  # type: ignore[arg-type]
            docstore_kv or SimpleKVStore(),
            sealer=sealer,
            keyring=keyring,
            tenant=tenant,
            store="docstore",
            release_point=release_point,
        )
    )
    index_store = SimpleIndexStore(
        simple_kvstore=EncryptedKVStore(  # type: ignore[arg-type]
            index_kv or SimpleKVStore(), sealer=sealer, keyring=keyring, tenant=tenant, store="index_store"
        )
    )
    encrypted = EncryptedVectorStore(
        vector_store if vector_store is not None else SimpleVectorStore(),
        sealer=sealer,
        keyring=keyring,
        tenant=tenant,
        namespace=namespace,
        release_point=release_point,
        shield=shield,
        overfetch=overfetch,
    )
    if hasattr(release_point, "peek"):
        kv = docstore._kvstore
        collection = docstore._node_collection
        release_point.peek = lambda node_id: kv.peek_metadata(node_id, collection)  # type: ignore[attr-defined]
    return StorageContext.from_defaults(docstore=docstore, index_store=index_store, vector_store=encrypted)


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
    sealer: Sealer,
    keyring: Keyring,
    tenant: str,
    vector_store: BasePydanticVectorStore | None = None,
    namespace: str = "default",
    shield: Any = None,
    overfetch: int = 3,
    release_point: ReleasePoint | None = None,
) -> StorageContext:
    """Reopen a persisted encrypted storage context.

    Raises:
        ConfigError: ``persist_dir`` holds no persisted storage context.
        KeyringError: the keyring (or tenant) does not open it: nothing is read or written further.
    """
    directory = Path(persist_dir)
    index_path = directory / INDEX_STORE_FILE
    if not index_path.exists():
        raise ConfigError(f"{directory}: no persisted storage context here ({INDEX_STORE_FILE} is missing)")
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
            "other keys, or it is damaged"
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
    storages: list[StorageContext], *, keyring: Keyring, tenant: str, subject: str
) -> ErasureReport:
    """Delete a data subject's records everywhere and destroy the subject's key (GDPR Art. 17).

    Deletion removes the subject's nodes from every vector store and the docstore records sealed under
    the subject's key (found by reading envelope headers, without decrypting). Destroying the key makes
    every copy that escaped deletion, backups included, unreadable (crypto-shredding).
    """
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
    """Records per key id before re-encryption (read from headers) and how many were re-sealed."""

    by_key: dict[str, int] = field(default_factory=dict)
    resealed: int = 0
    total: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"by_key": self.by_key, "resealed": self.resealed, "total": self.total}, sort_keys=True
        )


def reencrypt(
    storage: StorageContext, *, keyring: Keyring, tenant: str, dry_run: bool = False
) -> ReencryptReport:
    """Re-seal every record not sealed under the tenant's primary key.

    Counting reads only envelope headers (no decryption); re-sealing opens and seals again under the
    primary. Works for the KV stores and for vector stores that keep their embeddings retrievable
    (SimpleVectorStore; others via ``get_nodes``).
    """
    report = ReencryptReport()
    primary = keyring.primary_id(tenant)
    for kv in _kv_stores(storage):
        for collection in _collections(kv):
            for token, stored in list(kv.raw_items(collection).items()):
                ids = _ids(stored.get(_ENVELOPE_KEY) if isinstance(stored, dict) else None)
                report.total += 1
                for i in ids:
                    report.by_key[i] = report.by_key.get(i, 0) + 1
                if ids and ids[0] != primary and not dry_run:
                    opened = kv._open(token, stored, collection, release=False)  # never through the hook
                    if opened is not None:
                        kv.put(opened[0], opened[1], collection)
                        report.resealed += 1
    for vector in _vector_stores(storage):
        report = _reencrypt_vectors(vector, report, primary=primary, dry_run=dry_run)
    return report


def _ids(sealed: Any) -> list[str]:
    if not isinstance(sealed, str):
        return []
    try:
        return [i.hex() for i in key_ids_of(decode_text(sealed, record="?"))]
    except (DecryptionError, ValueError):
        return []


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
        ids = _ids(sealed)
        report.total += 1
        for i in ids:
            report.by_key[i] = report.by_key.get(i, 0) + 1
        if ids and ids[0] != primary:
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
