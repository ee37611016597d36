"""Safe LlamaIndex ingestion: an encrypted ``IngestionCache``, pipelines over encrypted stores, workers.

LlamaIndex's default ``IngestionCache`` keeps every transformed chunk in clear (and persists it as
``llama_cache``); ``IngestionPipeline.load(dir)`` rebuilds a plain ``SimpleDocumentStore`` over whatever
``docstore.json`` holds (over ciphertext: de-duplication is silently lost); ``num_workers > 1`` pickles
the transformations and the cache into ``spawn`` workers.

* :class:`EncryptedIngestionCache` (``gr.ingestion_cache()``): keys are keyed tokens (a transformation
  hash is a sha256 of the chunk text: a plain one confirms a guessed text), values are sealed under the
  tenant key and the data subjects of the cached nodes (erasing a subject shreds its cache entries).
  Its store is a ``SimpleKVStore`` of ciphertext, so LlamaIndex's worker merge and ``persist`` work
  unchanged and only ciphertext crosses process boundaries or reaches the disk.
* :class:`GuardedIngestionPipeline` (``gr.ingestion_pipeline(...)``): refuses a plain cache, docstore
  or vector store; ``persist(dir)`` writes only ciphertext, under guardrail's own file names (so a
  plain ``IngestionPipeline.load(dir)`` fails loudly instead of rebuilding plain stores), and
  ``load(dir)`` reopens them through the keyring with de-duplication intact.
* Workers: the annotator and the cache pickle as a :class:`GuardrailSpec` (the policy, the keyring
  *directory*, the tenant, the audit-log directory), never key material; a worker reopens the keyring
  from its directory (a passphrase keyring reads ``GUARDRAIL_KEYRING_PASSPHRASE`` from the environment
  the worker inherits) and builds its own detector.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.ingestion import DocstoreStrategy, IngestionCache, IngestionPipeline
from llama_index.core.ingestion.cache import DEFAULT_CACHE_NAME
from llama_index.core.schema import BaseNode
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.storage.docstore.utils import doc_to_json, json_to_doc
from llama_index.core.storage.kvstore import SimpleKVStore

from guardrail.errors import ConfigError
from guardrail.llama_index.stores import EncryptedKVStore, EncryptedVectorStore, subjects_of

__all__ = [
    "CACHE_FILE",
    "DOCSTORE_FILE",
    "EncryptedIngestionCache",
    "GuardedIngestionPipeline",
    "GuardrailSpec",
    "document_key",
]

#: What :meth:`GuardedIngestionPipeline.persist` writes (not LlamaIndex's ``llama_cache``, ``docstore.json``).
CACHE_FILE = "guardrail_ingestion_cache.json"
DOCSTORE_FILE = "guardrail_ingestion_docstore.json"
_CACHE_STORE = "ingestion_cache"
_CACHE_HEADER = "guardrail sealed ingestion cache v1: open it with gr.ingestion_cache(persist_path=...)"


# --------------------------------------------------------------------------- a Guardrail by reference


@dataclasses.dataclass(frozen=True)
class GuardrailSpec:
    """How a worker process reopens a ``Guardrail``: no key material, only where the keys are."""

    policy: Any  # a Policy (its YAML content; pickles as data)
    keyring: str | None
    tenant: str
    audit_log: str | None

    @classmethod
    def of(cls, guardrail: Any) -> GuardrailSpec:
        keyring = guardrail.keyring
        audit = guardrail.audit
        return cls(
            policy=guardrail.policy,
            keyring=str(Path(keyring.directory).resolve()) if keyring is not None else None,
            tenant=guardrail.tenant,
            audit_log=str(Path(audit.directory).resolve()) if audit is not None else None,
        )

    def open(self) -> Any:
        """The ``Guardrail`` this spec names, one per spec per process."""
        with _OPEN_LOCK:
            gr = _OPENED.get(self._key())
            if gr is None:
                from guardrail.core import Guardrail

                gr = Guardrail(
                    self.policy, keyring=self.keyring, tenant=self.tenant, audit_log=self.audit_log
                )
                _OPENED[self._key()] = gr
            return gr

    def _key(self) -> tuple[str, str | None, str, str | None]:
        return (self.policy.sha256, self.keyring, self.tenant, self.audit_log)


_OPENED: dict[tuple[str, str | None, str, str | None], Any] = {}
_OPEN_LOCK = threading.Lock()


def reopen_annotator(spec: GuardrailSpec) -> Any:
    """Unpickle an :class:`~guardrail.llama_index.guard.Annotator` in a worker."""
    from guardrail.llama_index.guard import Annotator

    return Annotator(spec.open())


def reopen_embedder(spec: GuardrailSpec, embed_model: Any) -> Any:
    """Unpickle a :class:`~guardrail.llama_index.embedding.RedactedEmbedding` in a worker."""
    from guardrail.llama_index.embedding import RedactedEmbedding

    return RedactedEmbedding(spec.open(), embed_model)


def reopen_cache(spec: GuardrailSpec, collection: str, data: dict[str, Any]) -> EncryptedIngestionCache:
    """Unpickle an :class:`EncryptedIngestionCache` in a worker (its ciphertext travels as is)."""
    return EncryptedIngestionCache(spec.open(), collection=collection, store=SimpleKVStore.from_dict(data))


# --------------------------------------------------------------------------- document-level classification


def document_key(node: BaseNode) -> str:
    """The document a chunk belongs to: its source document's id, else its own."""
    return node.ref_doc_id or node.node_id


def personal_documents(
    nodes: Sequence[BaseNode], text_found: Sequence[Sequence[Any]], meta_found: dict[int, bool]
) -> set[str]:
    """Documents of which any chunk holds personal data (text or metadata) or names data subjects."""
    out: set[str] = set()
    for i, (node, spans) in enumerate(zip(nodes, text_found, strict=True)):
        try:
            names_subjects = bool(subjects_of(node.metadata))
        except ConfigError:
            names_subjects = True  # malformed subject labels: treat as naming someone
        if spans or meta_found.get(i) or names_subjects:
            out.add(document_key(node))
    return out


# --------------------------------------------------------------------------- the cache


class _CacheKV(EncryptedKVStore):
    """Cache entries sealed under the tenant key and every data subject of the cached nodes."""

    def _seal(self, key: str, val: dict[str, Any], collection: str) -> tuple[str, dict[str, Any]]:
        token = self._token(collection, key)
        plaintext = json.dumps({"k": key, "v": val}, ensure_ascii=False, separators=(",", ":")).encode()
        subjects: set[str] = set()
        for node in val.get("nodes", []):
            data = node.get("__data__") if isinstance(node, dict) else None
            if isinstance(data, str):
                data = json.loads(data)
            if isinstance(data, dict):
                subjects.update(subjects_of(data.get("metadata")))
        sealed = self._sealer.seal_text(
            plaintext, context=self._context(collection, token), subjects=sorted(subjects)
        )
        return token, {"_gr": sealed}


class EncryptedIngestionCache(IngestionCache):
    """An ``IngestionCache`` whose keys are keyed tokens and whose values are sealed.

    ``cache`` is the ``SimpleKVStore`` of ciphertext (what ``persist`` writes and what LlamaIndex's
    workers hand back to the parent); reading and writing go through the keyring.
    """

    _gr: Any = PrivateAttr()
    _kv: Any = PrivateAttr()

    def __init__(self, guardrail: Any, *, collection: str = DEFAULT_CACHE_NAME, store: Any = None) -> None:
        inner = store if store is not None else SimpleKVStore()
        super().__init__(collection=collection, cache=inner)
        self._gr = guardrail
        keyring = guardrail._require_keyring()
        from guardrail.crypto import Sealer

        self._kv = _CacheKV(
            inner, sealer=Sealer(keyring), keyring=keyring, tenant=guardrail.tenant, store=_CACHE_STORE
        )

    def __repr__(self) -> str:
        return f"EncryptedIngestionCache(collection={self.collection!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        data = self.cache.to_dict() if isinstance(self.cache, SimpleKVStore) else {}
        return (reopen_cache, (GuardrailSpec.of(self._gr), self.collection, data))

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Write the ciphertext, atomically, behind a first line that is not JSON: LlamaIndex's plain
        ``IngestionCache.from_persist_path`` (and so a plain ``IngestionPipeline.load``) fails on it
        instead of silently opening a cache of ciphertext next to a docstore of ciphertext."""
        import os

        if fs is not None:
            raise ConfigError("an encrypted ingestion cache persists to local files only (no fs=)")
        path = Path(persist_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        data = json.dumps(self.cache.to_dict() if isinstance(self.cache, SimpleKVStore) else {})
        tmp.write_text(f"{_CACHE_HEADER}\n{data}", encoding="utf-8")
        os.replace(tmp, path)

    def put(self, key: str, nodes: Sequence[BaseNode], collection: str | None = None) -> None:
        self._kv.put(key, {self.nodes_key: [doc_to_json(n) for n in nodes]}, collection or self.collection)

    def get(self, key: str, collection: str | None = None) -> Sequence[BaseNode] | None:
        value = self._kv.get(key, collection or self.collection)
        if value is None:
            return None  # a miss, or an entry whose subject was erased (crypto-shredded)
        return [json_to_doc(d) for d in value[self.nodes_key]]

    def clear(self, collection: str | None = None) -> None:
        collection = collection or self.collection
        for token in list(self.cache.get_all(collection=collection)):
            self.cache.delete(token, collection=collection)

    @classmethod
    def from_persist_path(
        cls, persist_path: str, collection: str = DEFAULT_CACHE_NAME, fs: Any = None
    ) -> Any:
        raise ConfigError(
            "an encrypted ingestion cache needs its keyring to load: use "
            "gr.ingestion_cache(persist_path=...) or gr.ingestion_pipeline(...).load(dir)"
        )


def open_cache(guardrail: Any, persist_path: str | Path | None, collection: str) -> EncryptedIngestionCache:
    """``gr.ingestion_cache()``: a new encrypted cache, or the one persisted at ``persist_path``."""
    store = None
    if persist_path is not None and Path(persist_path).exists():
        text = Path(persist_path).read_text(encoding="utf-8")
        head, _, body = text.partition("\n")
        sealed = head == _CACHE_HEADER
        try:
            store = SimpleKVStore.from_dict(json.loads(body if sealed else text))
        except ValueError:
            raise ConfigError(f"{persist_path}: not an ingestion cache") from None
        _check_sealed(store, Path(persist_path))
    cache = EncryptedIngestionCache(guardrail, collection=collection, store=store)
    for token, stored in cache.cache.get_all(collection=collection).items():
        cache._kv._open(token, stored, collection)  # the keyring must open it: refuse now, not later
        break
    return cache


def _check_sealed(store: SimpleKVStore, path: Path) -> None:
    for collection in store.to_dict().values():
        for value in collection.values():
            if not (isinstance(value, dict) and isinstance(value.get("_gr"), str)):
                raise ConfigError(
                    f"{path}: holds plaintext records (a plain LlamaIndex cache or docstore); guardrail "
                    "refuses to mix them with sealed ones: delete it and ingest again"
                )


# --------------------------------------------------------------------------- the pipeline


def _sealed_docstore(
    guardrail: Any, store: SimpleKVStore | None = None, name: str = ""
) -> SimpleDocumentStore:
    """``name``: the storage name its records are bound to (persisted beside them)."""
    from guardrail.crypto import Sealer

    keyring = guardrail._require_keyring()
    kv = EncryptedKVStore(
        store if store is not None else SimpleKVStore(),
        sealer=Sealer(keyring),
        keyring=keyring,
        tenant=guardrail.tenant,
        store="docstore",
        name=name,
    )
    return SimpleDocumentStore(simple_kvstore=kv)  # type: ignore[arg-type]


def _is_sealed_docstore(docstore: Any) -> bool:
    return isinstance(getattr(docstore, "_kvstore", None), EncryptedKVStore)


class GuardedIngestionPipeline(IngestionPipeline):
    """An ``IngestionPipeline`` whose cache, docstore and vector store are all encrypted.

    Build it with ``gr.ingestion_pipeline(...)``.
    """

    _gr: Any = PrivateAttr()

    def __init__(self, guardrail: Any, **kwargs: Any) -> None:
        storage = kwargs.pop("storage", None)
        if storage is not None:
            kwargs.setdefault("vector_store", storage.vector_store)
            kwargs.setdefault("docstore", storage.docstore)
        cache = kwargs.get("cache")
        if cache is None:
            kwargs["cache"] = open_cache(guardrail, None, DEFAULT_CACHE_NAME)
        elif not isinstance(cache, EncryptedIngestionCache):
            raise ConfigError(
                f"gr.ingestion_pipeline(cache=...): a plain {type(cache).__name__} keeps every chunk in "
                "clear; pass gr.ingestion_cache() (or leave cache out)"
            )
        docstore = kwargs.get("docstore")
        if docstore is None:
            kwargs["docstore"] = _sealed_docstore(guardrail)
        elif not _is_sealed_docstore(docstore):
            raise ConfigError(
                f"gr.ingestion_pipeline(docstore=...): a plain {type(docstore).__name__} stores documents "
                "in clear; pass gr.storage_context().docstore (or storage=gr.storage_context(...))"
            )
        vector_store = kwargs.get("vector_store")
        if vector_store is not None and not isinstance(vector_store, EncryptedVectorStore):
            raise ConfigError(
                f"gr.ingestion_pipeline(vector_store=...): a plain {type(vector_store).__name__} stores "
                "chunks in clear; pass storage=gr.storage_context(vector_store=your_store)"
            )
        super().__init__(**kwargs)
        self._gr = guardrail

    def run(self, *args: Any, num_workers: int | None = None, **kwargs: Any) -> Any:
        """``IngestionPipeline.run``; with ``num_workers > 1`` the workers are checked first: LlamaIndex's
        pool waits forever for a worker that died unpickling its task, this raises instead."""
        if num_workers and num_workers > 1:
            _offline_tokenizer()
            _preflight(self.transformations, None if self.disable_cache else self.cache)
        return super().run(*args, num_workers=num_workers, **kwargs)

    @staticmethod
    def _node_batcher(num_batches: int, nodes: Any) -> Any:
        """Worker batches that never split a document: the annotator classifies a chunk with its
        document, so all chunks of one document must reach the same worker."""
        groups: dict[str, list[BaseNode]] = {}
        for node in nodes:
            groups.setdefault(document_key(node), []).append(node)
        batches: list[list[BaseNode]] = [[] for _ in range(max(1, num_batches))]
        for group in sorted(groups.values(), key=len, reverse=True):
            min(batches, key=len).extend(group)
        yield from (b for b in batches if b)

    def persist(
        self,
        persist_dir: str = "./pipeline_storage",
        fs: Any = None,
        cache_name: str = CACHE_FILE,
        docstore_name: str = DOCSTORE_FILE,
    ) -> None:
        """Write the cache and the docstore (ciphertext only) to ``persist_dir``, each file atomically."""
        directory = _local(persist_dir, fs, "persist")
        directory.mkdir(parents=True, exist_ok=True)
        self.cache.persist(str(directory / cache_name))
        if self.docstore is not None:
            _atomic(directory / docstore_name, self.docstore.persist)

    def load(
        self,
        persist_dir: str = "./pipeline_storage",
        fs: Any = None,
        cache_name: str = CACHE_FILE,
        docstore_name: str = DOCSTORE_FILE,
    ) -> None:
        """Reopen what :meth:`persist` wrote, through the keyring (de-duplication intact).

        Raises:
            ConfigError: the directory holds nothing guardrail wrote, or plaintext records.
            DecryptionError: the keyring or tenant does not open it.
        """
        directory = _local(persist_dir, fs, "load")
        cache_path, docstore_path = directory / cache_name, directory / docstore_name
        if not cache_path.exists() and not docstore_path.exists():
            plain = [n for n in (DEFAULT_CACHE_NAME, "docstore.json") if (directory / n).exists()]
            hint = f" (it holds LlamaIndex's plain {', '.join(plain)})" if plain else ""
            raise ConfigError(
                f"{directory}: no encrypted ingestion state here{hint}; persist it with "
                "gr.ingestion_pipeline(...).persist(dir)"
            )
        if cache_path.exists():
            self.cache = open_cache(self._gr, cache_path, self.cache.collection)
        if docstore_path.exists():
            store = SimpleKVStore.from_persist_path(str(docstore_path))
            _check_sealed(store, docstore_path)
            from guardrail.llama_index.storage import persisted_name

            docstore = _sealed_docstore(self._gr, store, persisted_name(directory) or "")
            docstore.get_all_document_hashes()  # the keyring must open it: refuse now, not later
            self.docstore = docstore


def _local(persist_dir: str, fs: Any, verb: str) -> Path:
    if fs is not None:
        raise ConfigError(f"gr.ingestion_pipeline(...).{verb}(fs=...): only local directories work")
    return Path(persist_dir)


def _atomic(path: Path, persist: Any) -> None:
    """``persist(tmp)`` then a rename: a crash leaves the previous file, never half a file."""
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    persist(str(tmp))
    os.replace(tmp, path)


def _offline_tokenizer() -> None:
    """Workers unpickle SentenceSplitter's tiktoken encoding, which downloads it unless told where
    LlamaIndex's bundled copy is (LlamaIndex sets this only while it builds its own tokenizer)."""
    import os

    import llama_index.core

    bundled = Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache"
    if bundled.is_dir():
        os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled))


def _unpickles(blob: bytes) -> str:
    import pickle

    try:
        pickle.loads(blob)  # noqa: S301 - our own pickle, made by this process a moment ago
    except Exception as exc:  # noqa: BLE001 - reported to the parent by type only
        return type(exc).__name__
    return ""


def _preflight(transformations: Sequence[Any], cache: Any) -> None:
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        blob = pickle.dumps((list(transformations), cache))
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(
            f"IngestionPipeline(num_workers=...): the transformations cannot be sent to worker processes "
            f"({type(exc).__name__}: every transformation must pickle); run with num_workers=None"
        ) from None
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            failed = pool.submit(_unpickles, blob).result(timeout=300)
    except (BrokenProcessPool, TimeoutError):
        failed = "the worker died"
    if failed:
        raise ConfigError(
            f"IngestionPipeline(num_workers=...): a worker process cannot rebuild the transformations "
            f"({failed}); check that the keyring directory and the audit log are reachable from it, or "
            "run with num_workers=None"
        )


def build_pipeline(guardrail: Any, transformations: Sequence[Any] | None = None, **kwargs: Any) -> Any:
    """``gr.ingestion_pipeline(...)``."""
    if transformations is not None:
        kwargs["transformations"] = list(transformations)
    has_vectors = kwargs.get("vector_store") is not None or kwargs.get("storage") is not None
    # upserts need a vector store to delete from; without one LlamaIndex falls back (and warns)
    kwargs.setdefault(
        "docstore_strategy", DocstoreStrategy.UPSERTS if has_vectors else DocstoreStrategy.DUPLICATES_ONLY
    )
    return GuardedIngestionPipeline(guardrail, **kwargs)
