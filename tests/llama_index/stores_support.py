"""Shared by the LlamaIndex tests and their conftest: the deterministic embedding and the store backends.

A module of its own, imported by a unique name: ``from stores_support import ...`` would get whichever
conftest (tests/postgres/ has one too) was imported last.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.vector_stores import SimpleVectorStore

DIM = 16
#: Chroma wants 3 to 512 characters: ``"kb"`` is refused, so every backend uses this name.
COLLECTION = "kb-notes"
BACKENDS = ("simple", "chroma", "qdrant")


class HashEmbedding(BaseEmbedding):
    """A deterministic bag-of-words embedding (dimension 16), normalised to unit length."""

    dim: int = DIM

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"

    def _vector(self, text: str) -> list[float]:
        out = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            rnd = random.Random(hashlib.sha256(word.encode()).digest())
            for i in range(self.dim):
                out[i] += rnd.gauss(0.0, 1.0)
        norm = math.sqrt(sum(x * x for x in out)) or 1.0
        return [x / norm for x in out]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


# --------------------------------------------------------------------------- backends


class Backend:
    """A vector-store backend on a directory; :meth:`close` releases it so a reopen reads from disk."""

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.root = root
        self.collection = COLLECTION
        self.root.mkdir(parents=True, exist_ok=True)
        self._clients: list[Any] = []

    def __repr__(self) -> str:
        return f"Backend({self.kind!r})"

    @property
    def data_dir(self) -> Path:
        return self.root / self.kind

    def vector_store(self) -> Any:
        """A fresh inner store on the backend's directory (``None`` for ``simple``: the storage context
        makes its own, and ``load_storage_context`` reads it from the persist dir)."""
        if self.kind == "simple":
            return None
        return self.plain_store()

    def plain_store(self) -> Any:
        """The inner store itself (an empty ``SimpleVectorStore`` for ``simple``)."""
        if self.kind == "simple":
            return SimpleVectorStore()
        if self.kind == "chroma":
            import chromadb
            from chromadb.config import Settings
            from llama_index.vector_stores.chroma import ChromaVectorStore

            client = chromadb.PersistentClient(
                path=str(self.data_dir), settings=Settings(anonymized_telemetry=False)
            )
            self._clients.append(client)
            return ChromaVectorStore(chroma_collection=client.get_or_create_collection(COLLECTION))
        if self.kind == "qdrant":
            import qdrant_client
            from llama_index.vector_stores.qdrant import QdrantVectorStore

            client = qdrant_client.QdrantClient(path=str(self.data_dir))
            self._clients.append(client)
            return QdrantVectorStore(client=client, collection_name=COLLECTION)
        raise AssertionError(self.kind)

    def count(self, store: Any) -> int:
        """How many vectors the inner store holds, asked through the store's own API."""
        if self.kind == "simple":
            return len(store.data.embedding_dict)
        if self.kind == "chroma":
            return int(store._collection.count())
        return int(store.client.count(COLLECTION, exact=True).count)

    def close(self) -> None:
        while self._clients:
            self._clients.pop().close()
