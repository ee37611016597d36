"""Encrypted LlamaIndex stores: what reaches any store or disk is ciphertext, keyed tokens and labels.

``EncryptedKVStore`` wraps any ``BaseKVStore`` (document store, index store, ingestion cache): record keys
(node ids, document ids, often file paths) become keyed HMAC tokens and every value is sealed with its
original key inside, so ``doc_hash``, ``ref_doc_info`` metadata and node text are never stored in clear.

``EncryptedVectorStore`` wraps any ``BasePydanticVectorStore``. The inner store receives, per node, a
shadow node with the same id and embedding and only:

* the sealed node (text, metadata, relationships) as its text, or as metadata for stores that keep no text;
* plaintext labels from an allow-list (``tenant``, ``classification``);
* keyed HMAC tokens for equality fields: the document id (as the shadow's source document, so
  ``delete(ref_doc_id)`` works) and one flag per data subject (``gr_s_<token>``).

Queries get the tenant filter forced in, equality filters and ``doc_ids`` tokenised, ``query_str`` dropped
(it would reach the database), and a filter on a sealed field raises instead of matching nothing.

Plaintext leaves only through :meth:`EncryptedVectorStore._release` (and its KV twin): it opens a record,
checks it belongs where it was found, and hands it to the release hook (the access-policy guard plugs in
here); a record whose key was destroyed is erased data and is skipped (and reported to the hook).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.storage.kvstore.types import DEFAULT_COLLECTION, BaseInMemoryKVStore, BaseKVStore
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from guardrail.crypto import Context, DecryptionError, RecordErased, Sealer
from guardrail.errors import ConfigError

__all__ = [
    "EQUALITY_FIELDS",
    "PLAINTEXT_LABELS",
    "EncryptedKVStore",
    "EncryptedVectorStore",
    "ReleaseHook",
    "binding_of",
]

#: Metadata kept in clear in the inner store (filterable with every operator).
PLAINTEXT_LABELS = ("tenant", "classification")
#: Metadata filterable by equality only, through keyed tokens.
EQUALITY_FIELDS = ("doc_id", "ref_doc_id", "document_id", "subjects", "subject")
_ENVELOPE_KEY = "_gr"
_NODE_COLLECTION_SUFFIX = "/data"  # KVDocumentStore keeps nodes in "<namespace>/data"
_REF_DOC_SUFFIX = "/ref_doc_info"  # ... and each document's node ids and metadata here
_WITHHELD = {"_gr_withheld": True}  # a ref_doc_info's metadata outside maintenance
_DOC_TOKEN_KEY = "gr_doc"  # noqa: S105 - a metadata key, not a secret
_SUBJECT_PREFIX = "gr_s_"


class ReleaseHook(Protocol):
    """Called at the release point for every opened node. Return the node to release (possibly a
    redacted copy) or ``None`` to withhold it; raise to fail the whole retrieval closed."""

    def __call__(self, node: BaseNode, *, score: float | None) -> BaseNode | None: ...


def release_all(node: BaseNode, *, score: float | None) -> BaseNode | None:
    """The default hook without a guard: release everything (no policy yet)."""
    return node


class ReleasePoint:
    """The one place plaintext leaves the encrypted stores. Both the vector store and the docstore of
    a storage context hand every opened node to the same ReleasePoint; the access-policy guard plugs its
    decision, redaction and audit record in here."""

    def __init__(
        self, hook: ReleaseHook | None = None, on_erased: Callable[[str], None] | None = None
    ) -> None:
        self.hook: ReleaseHook = hook or release_all
        self.on_erased = on_erased

    def __repr__(self) -> str:
        return f"ReleasePoint(hook={getattr(self.hook, '__name__', type(self.hook).__name__)})"

    def set_hook(self, hook: ReleaseHook | None, on_erased: Callable[[str], None] | None = None) -> None:
        self.hook = hook or release_all
        self.on_erased = on_erased

    def release(self, node: BaseNode, *, score: float | None) -> BaseNode | None:
        return self.hook(node, score=score)

    def erased(self, record: str) -> None:
        if self.on_erased is not None:
            self.on_erased(record)


def _ring(keyring: Any) -> Any:
    """A keyring given as its directory's path is opened (any other key source is used as it is)."""
    if isinstance(keyring, str | os.PathLike):
        from guardrail.keys import as_keyring

        return as_keyring(keyring)
    return keyring


def subjects_of(metadata: dict[str, Any] | None) -> list[str]:
    """Data-subject ids named in metadata (``subjects: [...]`` or ``subject: "..."``)."""
    if not metadata:
        return []
    value = metadata.get("subjects", metadata.get("subject"))
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError("metadata 'subjects' must be a string or a list of strings (data-subject ids)")


# --------------------------------------------------------------------------- KV store


class EncryptedKVStore(BaseInMemoryKVStore):
    """A ``BaseKVStore`` whose keys are keyed tokens and whose values are sealed.

    Subclasses ``BaseInMemoryKVStore`` so that ``SimpleDocumentStore.persist`` writes it (LlamaIndex
    skips other kvstores silently); persisting writes the inner store, which holds only ciphertext.

    Args:
        inner: the store to write to (``SimpleKVStore`` for files, or any other ``BaseKVStore``).
        sealer: seals and opens values.
        keyring: for key tokens (``Keyring.token``).
        tenant: the tenant whose keys seal the values.
        store: the kind of store (``docstore``, ``index_store``, ``cache``), bound into every record.
        name: the storage's name: with it every record is bound to ``"<name>:<collection>"`` (envelope
            version 2), so a record copied into another storage or collection does not open; without it
            records are sealed unbound (version 1).
    """

    def __init__(
        self,
        inner: BaseKVStore,
        *,
        sealer: Sealer,
        keyring: Any,
        tenant: str,
        store: str,
        release_point: ReleasePoint | None = None,
        name: str = "",
    ) -> None:
        self.inner = inner
        self.name = name
        self.release_point = release_point or ReleasePoint()
        self._sealer = sealer
        self._keyring = _ring(keyring)
        self.tenant = tenant
        self.store = store

    def __repr__(self) -> str:
        return f"EncryptedKVStore(store={self.store!r}, inner={type(self.inner).__name__})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an encrypted store holds key material and cannot be pickled")

    def _token(self, collection: str, key: str) -> str:
        return self._keyring.token(self.tenant, f"kv:{self.store}:{collection}", key)  # type: ignore[no-any-return]

    def _context(self, collection: str, token: str) -> Context:
        binding = f"{self.name}:{collection}" if self.name else ""
        return Context(
            store=f"kv:{self.store}", namespace=collection, key=token, tenant=self.tenant, binding=binding
        )

    def _seal(self, key: str, val: dict[str, Any], collection: str) -> tuple[str, dict[str, Any]]:
        token = self._token(collection, key)
        plaintext = json.dumps({"k": key, "v": val}, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = self._sealer.seal_text(
            plaintext, context=self._context(collection, token), subjects=_value_subjects(val)
        )
        return token, {_ENVELOPE_KEY: sealed}

    def _open(
        self, token: str, stored: dict[str, Any], collection: str, *, release: bool = True
    ) -> tuple[str, dict[str, Any]] | None:
        sealed = stored.get(_ENVELOPE_KEY) if isinstance(stored, dict) else None
        if not isinstance(sealed, str):
            raise DecryptionError(token)
        try:
            record = json.loads(self._sealer.open_text(sealed, context=self._context(collection, token)))
        except RecordErased:
            self.release_point.erased(token)
            return None  # crypto-shredded: erased data, not an error
        if self._token(collection, record["k"]) != token:
            raise DecryptionError(token)
        value = record["v"]
        if release and self.store == "docstore" and collection.endswith(_NODE_COLLECTION_SUFFIX):
            released = self._release_node(record["k"], value)
            if released is None:
                return None
            value = released
        elif release and self.store == "docstore" and collection.endswith(_REF_DOC_SUFFIX):
            value = self._release_ref_doc_info(value)
        return record["k"], value

    def _release_ref_doc_info(self, value: dict[str, Any]) -> dict[str, Any]:
        """A document's ``ref_doc_info`` carries its node ids (LlamaIndex needs them to delete and
        refresh documents) and a copy of the document's metadata: the metadata leaves only for
        maintenance (``release_all``) or a store without a closed release point."""
        from guardrail.llama_index.release import GuardedReleasePoint, maintenance_reason

        if not isinstance(self.release_point, GuardedReleasePoint) or maintenance_reason() is not None:
            return value
        if isinstance(value, dict) and isinstance(value.get("metadata"), dict):
            return {**value, "metadata": dict(_WITHHELD)}
        return value

    def _restore_withheld(self, key: str, val: dict[str, Any], collection: str) -> dict[str, Any]:
        """A ``ref_doc_info`` written back after a read that withheld its metadata (LlamaIndex updates
        the node ids of a document when a node is deleted) keeps the stored metadata: never lost."""
        if not (
            collection.endswith(_REF_DOC_SUFFIX)
            and isinstance(val, dict)
            and val.get("metadata") == _WITHHELD
        ):
            return val
        token = self._token(collection, key)
        stored = self.inner.get(token, collection=collection)
        opened = self._open(token, stored, collection, release=False) if stored is not None else None
        metadata = opened[1].get("metadata") if opened is not None and isinstance(opened[1], dict) else None
        return {**val, "metadata": metadata if isinstance(metadata, dict) else {}}

    def _release_node(self, key: str, value: dict[str, Any]) -> dict[str, Any] | None:
        """A docstore node leaves through the same release point as the vector store's."""
        from llama_index.core.storage.docstore.utils import doc_to_json, json_to_doc

        node = json_to_doc(value)
        released = self.release_point.release(node, score=None)
        return None if released is None else doc_to_json(released)

    def put(self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        val = self._restore_withheld(key, val, collection)
        token, sealed = self._seal(key, val, collection)
        self.inner.put(token, sealed, collection=collection)

    async def aput(self, key: str, val: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        await asyncio.to_thread(self.put, key, val, collection)

    def put_all(
        self,
        kv_pairs: list[tuple[str, dict[str, Any]]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = 1,
    ) -> None:
        sealed = [self._seal(k, self._restore_withheld(k, v, collection), collection) for k, v in kv_pairs]
        self.inner.put_all(sealed, collection=collection, batch_size=batch_size)

    async def aput_all(
        self,
        kv_pairs: list[tuple[str, dict[str, Any]]],
        collection: str = DEFAULT_COLLECTION,
        batch_size: int = 1,
    ) -> None:
        await asyncio.to_thread(self.put_all, kv_pairs, collection, batch_size)  # sealing off the loop

    def get(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        from guardrail.llama_index.release import original_id

        token = self._token(collection, original_id(key))  # a released keyed reference finds its node
        stored = self.inner.get(token, collection=collection)
        if stored is None:
            return None
        opened = self._open(token, stored, collection)
        return None if opened is None else opened[1]

    async def aget(self, key: str, collection: str = DEFAULT_COLLECTION) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.get, key, collection)  # decryption and policy off the loop

    def peek_metadata(self, key: str, collection: str) -> dict[str, Any] | None:
        """A stored node's metadata, opened WITHOUT the release point (the guard reads the labels of a
        related node to decide whether a relationship may point at it). Never hand it to a caller."""
        token = self._token(collection, key)
        stored = self.inner.get(token, collection=collection)
        if stored is None:
            return None
        opened = self._open(token, stored, collection, release=False)
        if opened is None:
            return None
        value = opened[1]
        data = value.get("__data__") if isinstance(value, dict) else None
        if isinstance(data, str):
            data = json.loads(data)
        metadata = data.get("metadata") if isinstance(data, dict) else None
        return metadata if isinstance(metadata, dict) else {}

    def get_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for token, stored in self.inner.get_all(collection=collection).items():
            opened = self._open(token, stored, collection)
            if opened is not None:
                out[opened[0]] = opened[1]
        return out

    async def aget_all(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        return await asyncio.to_thread(self.get_all, collection)

    def delete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self.inner.delete(self._token(collection, key), collection=collection)

    async def adelete(self, key: str, collection: str = DEFAULT_COLLECTION) -> bool:
        return self.delete(key, collection)

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Persist the inner store (ciphertext only), and beside it the storage's name (its binding)."""
        persist = getattr(self.inner, "persist", None)  # SimpleKVStore and other in-memory stores
        if persist is not None:
            persist(persist_path, fs=fs)
            if self.name and fs is None:
                _write_storage_name(Path(persist_path).parent, self.name)

    @classmethod
    def from_persist_path(cls, persist_path: str) -> BaseInMemoryKVStore:
        raise ConfigError(
            "an encrypted store needs its keyring to load: use Guardrail.load_storage_context(...)"
        )

    def raw_items(self, collection: str = DEFAULT_COLLECTION) -> dict[str, dict[str, Any]]:
        """The stored (sealed) records by token, for re-encryption and erasure."""
        return self.inner.get_all(collection=collection)

    def put_raw(self, token: str, stored: dict[str, Any], collection: str = DEFAULT_COLLECTION) -> None:
        self.inner.put(token, stored, collection=collection)


#: beside a persisted storage: ``{"name": ...}``, the name its KV records are bound to (not a secret:
#: changing it makes the bound records fail to open, it cannot make a foreign record open)
STORAGE_NAME_FILE = "guardrail_storage.json"


def _write_storage_name(directory: Path, name: str) -> None:
    from guardrail.io import atomic_output

    path = directory / STORAGE_NAME_FILE
    text = json.dumps({"name": name}, ensure_ascii=False)
    if path.exists() and path.read_text("utf-8") == text:
        return
    with atomic_output(path, force=True) as f:
        f.write(text)


def _value_subjects(val: dict[str, Any]) -> list[str]:
    """Data subjects of a docstore value: a node's metadata, or a ``ref_doc_info``'s."""
    data = val.get("__data__") if isinstance(val, dict) else None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    for candidate in (data, val):
        if isinstance(candidate, dict) and isinstance(candidate.get("metadata"), dict):
            return subjects_of(candidate["metadata"])
    return []


# --------------------------------------------------------------------------- vector store


class EncryptedVectorStore(BasePydanticVectorStore):
    """Any LlamaIndex vector store, holding only ciphertext, embeddings, labels and keyed tokens.

    Args:
        inner: the vector store to wrap (Simple, Chroma, Qdrant, ...).
        sealer: seals and opens nodes.
        keyring: for tokens.
        tenant: every node is sealed under this tenant's keys and every query is restricted to it.
        namespace: bound into each sealed node.
        binding: the store instance each node is bound to (envelope version 2): a ciphertext moved to
            another collection does not open. Default: :func:`binding_of` the inner store
            (``"ChromaVectorStore:<collection>"``, ``"QdrantVectorStore:<collection>"``,
            ``"SimpleVectorStore:default"``).
        on_release: the release hook (default: release everything).
    """

    stores_text: bool = True
    is_embedding_query: bool = True
    flat_metadata: bool = False

    tenant: str
    namespace: str = "default"
    binding: str = ""

    _inner: BasePydanticVectorStore = PrivateAttr()
    _sealer: Sealer = PrivateAttr()
    _keyring: Any = PrivateAttr()
    _release_point: ReleasePoint = PrivateAttr()
    _tokens: dict[tuple[str, str], str] = PrivateAttr(default_factory=dict)
    _shield: Any = PrivateAttr(default=None)
    _reranker: Any = PrivateAttr(default=None)

    def __init__(
        self,
        inner: BasePydanticVectorStore,
        *,
        sealer: Sealer,
        keyring: Any,
        tenant: str,
        namespace: str = "default",
        on_release: ReleaseHook | None = None,
        release_point: ReleasePoint | None = None,
        shield: Any = None,
        overfetch: int = 3,
        binding: str | None = None,
    ) -> None:
        if isinstance(inner, EncryptedVectorStore):
            raise ConfigError("the vector store is already encrypted")
        super().__init__(
            stores_text=True,
            tenant=tenant,
            namespace=namespace,
            binding=binding_of(inner) if binding is None else binding,
        )
        self._inner = inner
        self._sealer = sealer
        self._keyring = _ring(keyring)
        self._release_point = release_point or ReleasePoint(on_release)
        if shield is not None:
            from guardrail.embeddings import OverfetchReranker

            self._shield = shield  # an EmbeddingShield: the database gets transformed vectors
            self._reranker = OverfetchReranker(factor=overfetch)

    @classmethod
    def class_name(cls) -> str:
        return "EncryptedVectorStore"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an encrypted store holds key material and cannot be pickled")

    @property
    def inner(self) -> BasePydanticVectorStore:
        return self._inner

    @property
    def client(self) -> Any:
        return self._inner.client

    @property
    def release_point(self) -> ReleasePoint:
        """Shared with the storage context's docstore."""
        return self._release_point

    def set_release_hook(
        self, hook: ReleaseHook | None, *, on_erased: Callable[[str], None] | None = None
    ) -> None:
        """Plug a policy/audit guard into the release point (``None`` restores release-all).

        Raises:
            ConfigError: the store was made or opened through a ``Guardrail`` (its release point is
                closed unless guarded, and cannot be replaced).
        """
        self._release_point.set_hook(hook, on_erased)

    # ------------------------------------------------------------------ tokens and contexts

    def _token(self, field: str, value: str) -> str:
        return self._keyring.token(self.tenant, field, value)  # type: ignore[no-any-return]

    def doc_token(self, ref_doc_id: str) -> str:
        """The token a document id is stored as (``delete`` and ``doc_ids`` use it)."""
        token = self._tokens.get(("d", ref_doc_id))
        if token is None:
            token = "d" + self._token("doc_id", ref_doc_id)
            self._remember(("d", ref_doc_id), token)
        return token

    def subject_key(self, subject: str) -> str:
        """The metadata key flagging a data subject's nodes."""
        token = self._tokens.get(("s", subject))
        if token is None:
            token = _SUBJECT_PREFIX + self._token("subject", subject)[:24]
            self._remember(("s", subject), token)
        return token

    def _remember(self, key: tuple[str, str], token: str) -> None:
        if len(self._tokens) > 100_000:  # bounded: documents and subjects recur within a batch
            self._tokens.clear()
        self._tokens[key] = token

    def _context(self, node_id: str) -> Context:
        return Context(
            store="vector", namespace=self.namespace, key=node_id, tenant=self.tenant, binding=self.binding
        )

    # ------------------------------------------------------------------ writing

    def _sealed_parts(self, node: BaseNode) -> tuple[str, dict[str, Any]]:
        """The sealed node and the plaintext labels the inner store may see."""
        # The embedding goes to the inner store in clear anyway (it is what the database searches);
        # sealing a copy would triple the record and the serialisation time.
        record = node.to_dict()
        if self._shield is None:
            record["embedding"] = None
        # with the shield on, the exact vector is kept sealed: results are re-ranked by it
        payload = json.dumps(record, ensure_ascii=False).encode()
        metadata = node.metadata or {}
        subjects = subjects_of(metadata)
        sealed = self._sealer.seal_text(payload, context=self._context(node.node_id), subjects=subjects)
        labels: dict[str, Any] = {"tenant": self.tenant}
        if isinstance(metadata.get("classification"), str):
            labels["classification"] = metadata["classification"]
        for subject in subjects:
            labels[self.subject_key(subject)] = 1  # a flag; filters take numbers, not booleans
        if node.ref_doc_id:
            labels[_DOC_TOKEN_KEY] = self.doc_token(node.ref_doc_id)
        return sealed, labels

    def _stored_vector(self, node: BaseNode) -> list[float]:
        vector = node.get_embedding()
        return vector if self._shield is None else self._shield.transform(vector)

    def _shadow(self, node: BaseNode) -> TextNode:
        sealed, labels = self._sealed_parts(node)
        relationships: dict[NodeRelationship, RelatedNodeInfo | list[RelatedNodeInfo]] = {}
        if _DOC_TOKEN_KEY in labels:
            relationships[NodeRelationship.SOURCE] = RelatedNodeInfo.model_construct(
                node_id=labels[_DOC_TOKEN_KEY]
            )
        if not self._inner.stores_text:
            labels[_ENVELOPE_KEY] = sealed
        # model_construct: every field is built here, validation would only repeat the work
        return TextNode.model_construct(
            id_=node.node_id,
            text=sealed if self._inner.stores_text else "",
            metadata=labels,
            relationships=relationships,
            embedding=self._stored_vector(node),
            excluded_embed_metadata_keys=list(labels),
            excluded_llm_metadata_keys=list(labels),
        )

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        subjects = {s for n in nodes for s in subjects_of(n.metadata)}
        self._keyring.prepare(self.tenant, sorted(subjects))  # new keys created in one write
        data = self._simple
        if data is not None:
            return self._add_simple(data, nodes)
        shadows = [self._shadow(n) for n in nodes]
        return self._inner.add(shadows, **add_kwargs)

    def _add_simple(self, data: Any, nodes: Sequence[BaseNode]) -> list[str]:
        """SimpleVectorStore.add without building shadow nodes: it keeps only the embedding, the
        document id and the metadata dict, which is exactly what a shadow would leave there."""
        for node in nodes:
            sealed, labels = self._sealed_parts(node)
            labels[_ENVELOPE_KEY] = sealed
            node_id = node.node_id
            data.embedding_dict[node_id] = self._stored_vector(node)
            data.text_id_to_ref_doc_id[node_id] = labels.get(_DOC_TOKEN_KEY, "None")
            data.metadata_dict[node_id] = labels
        return [n.node_id for n in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        if self._simple is not None or not _has_async(self._inner, "async_add") or _sync_only(self._inner):
            return await asyncio.to_thread(self.add, nodes, **kwargs)
        subjects = {s for n in nodes for s in subjects_of(n.metadata)}
        await asyncio.to_thread(self._keyring.prepare, self.tenant, sorted(subjects))
        shadows = await asyncio.to_thread(lambda: [self._shadow(n) for n in nodes])  # sealing off the loop
        return await self._inner.async_add(shadows, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        self._inner.delete(self.doc_token(ref_doc_id), **delete_kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        if self._simple is None and _has_async(self._inner, "adelete") and not _sync_only(self._inner):
            await self._inner.adelete(self.doc_token(ref_doc_id), **delete_kwargs)
        else:
            await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **kwargs: Any
    ) -> None:
        ids = self.matching_ids(self._filters(filters), node_ids)
        if ids:
            self._inner.delete_nodes(node_ids=ids, **kwargs)

    def delete_subject(self, subject: str) -> list[str]:
        """Delete every node flagged with this data subject; returns their ids."""
        flag = MetadataFilters(filters=[MetadataFilter(key=self.subject_key(subject), value=1)])
        ids = self.matching_ids(self._and_tenant(flag))
        if ids:
            self._inner.delete_nodes(node_ids=ids)
        return ids

    @property
    def _simple(self) -> Any:
        """The inner store's data when it is a SimpleVectorStore (which keeps no nodes), else None."""
        data = getattr(self._inner, "data", None)
        return data if data is not None and hasattr(data, "metadata_dict") else None

    def matching_ids(self, filters: MetadataFilters, node_ids: list[str] | None = None) -> list[str]:
        """Ids of the stored nodes matching already-tokenised ``filters`` (and among ``node_ids``)."""
        data = self._simple
        if data is not None:
            candidates = node_ids if node_ids is not None else list(data.metadata_dict)
            metadata = data.metadata_dict
            return [i for i in candidates if i in metadata and _matches(filters, metadata[i] or {})]
        nodes = self._inner.get_nodes(node_ids=node_ids, filters=filters)
        return [n.node_id for n in nodes]

    def clear(self) -> None:
        self._inner.clear()

    def persist(self, persist_path: str, fs: Any = None) -> None:
        self._inner.persist(persist_path, fs=fs)

    # ------------------------------------------------------------------ querying

    def _and_tenant(self, filters: MetadataFilters | None) -> MetadataFilters:
        tenant = MetadataFilter(key="tenant", value=self.tenant, operator=FilterOperator.EQ)
        if filters is None or not filters.filters:
            return MetadataFilters(filters=[tenant])
        flat = all(isinstance(f, MetadataFilter) for f in filters.filters)
        if flat and (filters.condition in (None, FilterCondition.AND) or len(filters.filters) == 1):
            # flattened: SimpleVectorStore does not support nested filters
            return MetadataFilters(filters=[tenant, *filters.filters], condition=FilterCondition.AND)
        return MetadataFilters(filters=[tenant, filters], condition=FilterCondition.AND)

    def _filters(self, filters: MetadataFilters | None, doc_ids: list[str] | None = None) -> MetadataFilters:
        combined = self._and_tenant(self._tokenise(filters) if filters is not None else None)
        if doc_ids:
            # every store understands a metadata filter; not all honour VectorStoreQuery.doc_ids
            tokens = [self.doc_token(d) for d in doc_ids]
            doc_filter = MetadataFilter(key=_DOC_TOKEN_KEY, value=tokens, operator=FilterOperator.IN)
            combined = MetadataFilters(filters=[*combined.filters, doc_filter], condition=FilterCondition.AND)
        return combined

    def _tokenise(self, filters: MetadataFilters) -> MetadataFilters:
        out: list[MetadataFilter | MetadataFilters] = []
        for f in filters.filters:
            if isinstance(f, MetadataFilters):
                out.append(self._tokenise(f))
                continue
            if f.key in PLAINTEXT_LABELS:
                out.append(f)
            elif f.key in EQUALITY_FIELDS:
                out.append(self._equality_filter(f))
            else:
                raise ConfigError(
                    f"cannot filter on {f.key!r}: it is sealed with the node. Filterable: "
                    f"{', '.join(PLAINTEXT_LABELS)} (any operator), "
                    f"{', '.join(EQUALITY_FIELDS)} (==, !=, in, nin)"
                )
        return MetadataFilters(filters=out, condition=filters.condition)

    def _equality_filter(self, f: MetadataFilter) -> MetadataFilter | MetadataFilters:
        subject = f.key in ("subjects", "subject")
        values = f.value if isinstance(f.value, list) else [f.value]
        if f.operator not in (FilterOperator.EQ, FilterOperator.NE, FilterOperator.IN, FilterOperator.NIN):
            raise ConfigError(f"{f.key!r} is tokenised: only ==, !=, in and nin filters work on it")
        negate = f.operator in (FilterOperator.NE, FilterOperator.NIN)
        if subject:
            if negate and self._simple is None:
                # only a subject's own nodes carry its flag, and some stores (Qdrant) never match a
                # missing key with !=: refuse rather than return a wrong answer
                raise ConfigError(
                    f"excluding data subjects (!= / nin on {f.key!r}) is supported on SimpleVectorStore "
                    "only; filter the released nodes instead"
                )
            flags = [
                MetadataFilter(
                    key=self.subject_key(str(v)),
                    value=1,
                    operator=FilterOperator.NE if negate else FilterOperator.EQ,
                )
                for v in values
            ]
            if len(flags) == 1:
                return flags[0]
            return MetadataFilters(
                filters=list(flags), condition=FilterCondition.AND if negate else FilterCondition.OR
            )
        tokens = [self.doc_token(str(v)) for v in values]
        if f.operator in (FilterOperator.EQ, FilterOperator.NE):
            return MetadataFilter(key=_DOC_TOKEN_KEY, value=tokens[0], operator=f.operator)
        return MetadataFilter(key=_DOC_TOKEN_KEY, value=tokens, operator=f.operator)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        inner_query, simple_empty, rerank = self._inner_query(query)
        if simple_empty:
            return VectorStoreQueryResult(nodes=[], ids=[], similarities=[])
        if _async_only(self._inner):  # e.g. QdrantVectorStore(aclient=AsyncQdrantClient(...)) alone
            from llama_index.core.async_utils import asyncio_run

            result = asyncio_run(self._inner.aquery(inner_query, **kwargs))
        else:
            result = self._inner.query(inner_query, **kwargs)
        return self._release(result, rerank=rerank)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The inner store's own async query (an async-only client works); opening, deciding and
        redacting run in a worker thread, so the event loop is never blocked."""
        inner_query, simple_empty, rerank = await asyncio.to_thread(self._inner_query, query)
        if simple_empty:
            return VectorStoreQueryResult(nodes=[], ids=[], similarities=[])
        if self._simple is not None or not _has_async(self._inner, "aquery") or _sync_only(self._inner):
            result = await asyncio.to_thread(self._inner.query, inner_query, **kwargs)
        else:
            result = await self._inner.aquery(inner_query, **kwargs)
        return await asyncio.to_thread(self._release, result, rerank=rerank)

    def _inner_query(
        self, query: VectorStoreQuery
    ) -> tuple[VectorStoreQuery, bool, tuple[list[float], int] | None]:
        """The query the inner store gets, whether it is known empty, and the re-rank to apply."""
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise ConfigError(
                f"query mode {query.mode.value!r} is not supported on an encrypted store: the database "
                "only holds ciphertext (hybrid and text search would index it); use the default mode"
            )
        filters: MetadataFilters | None = self._filters(query.filters, query.doc_ids)
        # VectorStoreIndex passes [] for "no restriction" to stores that keep text (Chroma, Qdrant read
        # it as falsy); SimpleVectorStore would read [] as "no node"
        node_ids = [self._original(i) for i in query.node_ids] if query.node_ids else None
        if self._simple is not None and filters is not None and not _flat(filters):
            # SimpleVectorStore cannot evaluate nested filters: select the ids here
            node_ids = self.matching_ids(filters, node_ids)
            filters = None
            if not node_ids:
                return query, True, None
        exact = query.query_embedding
        top_k = query.similarity_top_k
        if self._shield is not None and exact is not None:
            exact_query: list[float] | None = list(exact)
            sent = self._shield.transform_query(exact)
            top_k = self._reranker.overfetch(query.similarity_top_k)
        else:
            exact_query, sent = None, exact
        inner_query = VectorStoreQuery(
            query_embedding=sent,
            similarity_top_k=top_k,
            doc_ids=None,  # applied as a filter on the document token
            node_ids=node_ids,
            query_str=None,  # never send the question to the database
            mode=query.mode,
            alpha=query.alpha,
            filters=filters,
            mmr_threshold=query.mmr_threshold,
            output_fields=query.output_fields,
            embedding_field=query.embedding_field,
        )
        rerank = (exact_query, query.similarity_top_k) if exact_query is not None else None
        return inner_query, False, rerank

    @staticmethod
    def _original(node_id: str) -> str:
        from guardrail.llama_index.release import original_id

        return original_id(node_id)

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        if node_ids is not None:
            node_ids = [self._original(i) for i in node_ids]
        stored = self._stored(node_ids, filters)
        released = self._release(VectorStoreQueryResult(nodes=stored, ids=[n.node_id for n in stored]))
        return list(released.nodes or [])

    def _stored(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> list[BaseNode]:
        if self._simple is not None:  # SimpleVectorStore keeps no nodes: rebuild shadows from metadata
            return [self._simple_shadow(i) for i in self.matching_ids(self._filters(filters), node_ids)]
        return list(self._inner.get_nodes(node_ids=node_ids, filters=self._filters(filters)))

    def open_stored(self, shadow: BaseNode) -> BaseNode | None:
        """Open a stored shadow node WITHOUT the release hook (re-encryption, erasure bookkeeping).
        ``None`` if it was erased. Never hand its result to a caller."""
        return self._open_shadow(shadow.node_id, shadow)

    def _open_shadow(self, node_id: str, shadow: BaseNode) -> BaseNode | None:
        """Open one stored shadow; ``None`` if erased. Raises DecryptionError on anything else."""
        sealed = shadow.get_content() if self._inner.stores_text else shadow.metadata.get(_ENVELOPE_KEY)
        if not isinstance(sealed, str) or not sealed:
            sealed = shadow.metadata.get(_ENVELOPE_KEY)
        if not isinstance(sealed, str):
            raise DecryptionError(node_id)
        try:
            payload = self._sealer.open_text(sealed, context=self._context(node_id))
        except RecordErased:
            return None
        node = _node_from_json(payload)
        if node.node_id != node_id or shadow.node_id != node_id:
            raise DecryptionError(node_id)
        labels = shadow.metadata or {}
        if "tenant" in labels:  # the store returned the plaintext labels: they must be the sealed ones
            sealed_class = (node.metadata or {}).get("classification")
            if labels.get("tenant") != self.tenant or labels.get("classification") != (
                sealed_class if isinstance(sealed_class, str) else None
            ):
                # relabelled in the database (say phi -> public, to pass a classification filter)
                raise DecryptionError(node_id)
        return node

    def _simple_shadow(self, node_id: str) -> TextNode:
        metadata = self._inner.data.metadata_dict.get(node_id) or {}  # type: ignore[attr-defined]
        return TextNode(id_=node_id, text="", metadata=dict(metadata))

    # ------------------------------------------------------------------ the release point

    def _release(
        self, result: VectorStoreQueryResult, *, rerank: tuple[list[float], int] | None = None
    ) -> VectorStoreQueryResult:
        """The single place plaintext leaves the store: open, check the id, (re-rank,) ask the hook."""
        ids = list(result.ids or [])
        shadows = list(result.nodes) if result.nodes is not None else [self._simple_shadow(i) for i in ids]
        if not ids:
            ids = [n.node_id for n in shadows]
        sims = list(result.similarities) if result.similarities is not None else [None] * len(ids)
        opened: list[tuple[str, BaseNode, float | None]] = []
        for node_id, shadow, score in zip(ids, shadows, sims, strict=True):
            node = self._open_shadow(node_id, shadow)
            if node is None:
                self._release_point.erased(node_id)
                continue
            opened.append((node_id, node, score))
        if rerank is not None:
            # exact cosine against the sealed exact vectors; the database's scores were noisy
            query, k = rerank
            ranked = self._reranker.rerank(query, [((i, n), n.embedding) for i, n, _ in opened], k)
            opened = [(r.item[0], r.item[1], r.score) for r in ranked]
            for _, node, _ in opened:
                node.embedding = None  # the exact vector stays inside the store
        nodes: list[BaseNode] = []
        out_ids: list[str] = []
        out_sims: list[float] = []
        for node_id, node, score in opened:
            released = self._release_point.release(node, score=score)
            if released is None:
                continue
            nodes.append(released)
            out_ids.append(node_id)
            if score is not None:
                out_sims.append(score)
        return VectorStoreQueryResult(nodes=nodes, ids=out_ids, similarities=out_sims if out_sims else None)


def binding_of(inner: BasePydanticVectorStore, name: str = "default") -> str:
    """``"<store class>:<collection>"``: the place a vector store's records are bound to. The collection
    is the store's own (Chroma, Qdrant and most databases name one); a store without one (Simple) uses
    ``name``, the storage's name."""
    collection = getattr(inner, "_collection", None)
    label = getattr(collection, "name", None)  # Chroma
    for attribute in ("collection_name", "table_name", "index_name"):  # Qdrant, PG/LanceDB, ...
        if not isinstance(label, str) or not label:
            label = getattr(inner, attribute, None)
    if not isinstance(label, str) or not label:
        label = name
    return f"{type(inner).__name__}:{label}"


def _has_async(store: Any, name: str) -> bool:
    """Whether ``store`` overrides the base class's async method (which only calls the sync one)."""
    method = getattr(type(store), name, None)
    return method is not None and method is not getattr(BasePydanticVectorStore, name, None)


def _client_slot(store: Any, name: str) -> tuple[bool, Any]:
    private = getattr(store, "__pydantic_private__", None) or {}
    return name in private, private.get(name)


def _sync_only(store: Any) -> bool:
    """A store built with a sync client only (Qdrant's ``aclient`` unset): its async methods fail."""
    has, value = _client_slot(store, "_aclient")
    return has and value is None


def _async_only(store: Any) -> bool:
    """A store built with an async client only (Qdrant's ``client`` unset): its sync methods fail."""
    has, value = _client_slot(store, "_client")
    return has and value is None and not _sync_only(store)


def _flat(filters: MetadataFilters) -> bool:
    return all(isinstance(f, MetadataFilter) for f in filters.filters) and (
        filters.condition in (None, FilterCondition.AND) or len(filters.filters) <= 1
    )


def _matches(filters: MetadataFilters | MetadataFilter, metadata: dict[str, Any]) -> bool:
    """Evaluate (nested) metadata filters against one metadata dict, for stores that cannot."""
    if isinstance(filters, MetadataFilter):
        value, op, target = metadata.get(filters.key), filters.operator, filters.value
        if op == FilterOperator.EQ:
            return bool(value == target)
        if op == FilterOperator.NE:
            return bool(value != target)
        if op == FilterOperator.IN:
            return value in (target or [])  # type: ignore[operator]
        if op == FilterOperator.NIN:
            return value not in (target or [])  # type: ignore[operator]
        if value is None:
            return False
        if op == FilterOperator.GT:
            return bool(value > target)
        if op == FilterOperator.GTE:
            return bool(value >= target)
        if op == FilterOperator.LT:
            return bool(value < target)
        if op == FilterOperator.LTE:
            return bool(value <= target)
        raise ConfigError(f"filter operator {op.value!r} is not supported on an encrypted store")
    results = [_matches(f, metadata) for f in filters.filters]
    if filters.condition == FilterCondition.OR:
        return any(results)
    if filters.condition == FilterCondition.NOT:
        return not any(results)
    return all(results)


def _node_from_json(payload: bytes) -> BaseNode:
    from llama_index.core.schema import Document, ImageNode, IndexNode

    data = json.loads(payload)
    kind = data.get("class_name")
    for cls in (TextNode, Document, ImageNode, IndexNode):
        if cls.class_name() == kind:
            return cls.model_validate(data)
    return TextNode.model_validate(data)
