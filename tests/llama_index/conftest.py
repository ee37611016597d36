"""Fixtures for the encrypted LlamaIndex storage tests: real stores on disk, deterministic embeddings.

Three backends, each opened on a directory and closed again so that a reopen reads from disk:

* ``simple``: LlamaIndex's ``SimpleVectorStore``, written by ``storage.persist(persist_dir)``;
* ``chroma``: ``chromadb.PersistentClient(path=...)`` and a ``ChromaVectorStore``;
* ``qdrant``: ``QdrantClient(path=...)`` (local on-disk mode) and a ``QdrantVectorStore``.

The data set, the disk scanner and the helpers live in the test module (a conftest is not importable
from it without an ``__init__.py``, and ``tests/llama_index/__init__.py`` would shadow ``llama_index``).

Embeddings come from :class:`HashEmbedding`: a bag of words, each word a fixed pseudo-random vector seeded by
its SHA-256, so texts sharing words are close and no two distinct texts tie. No network, no model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stores_support import BACKENDS, Backend, HashEmbedding

from guardrail.keys import Keyring


@pytest.fixture
def embed() -> HashEmbedding:
    return HashEmbedding()


@pytest.fixture
def keyring_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    Keyring.create(directory)
    return directory


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, tmp_path / "encrypted")
    yield b
    b.close()


@pytest.fixture
def simple_backend(tmp_path: Path) -> Backend:
    """The ``simple`` backend alone, for tests that are about keys or LlamaIndex, not about the store."""
    return Backend("simple", tmp_path / "encrypted")


@pytest.fixture
def plain_backend(backend: Backend, tmp_path: Path) -> Iterator[Backend]:
    """The same kind of store, unencrypted, on its own directory (the reference for retrieval)."""
    b = Backend(backend.kind, tmp_path / "plain")
    yield b
    b.close()
