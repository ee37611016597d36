"""A deterministic, offline embedding model for demos and tests: hashed bag of words.

It needs no model download and gives stable vectors (texts sharing words are close). It is not a
semantic model: use a real one in production.
"""

from __future__ import annotations

import hashlib
import math
import re

from llama_index.core.base.embeddings.base import BaseEmbedding

__all__ = ["HashingEmbedding"]

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedding(BaseEmbedding):
    """Feature-hashed, L2-normalised word counts in ``dim`` dimensions."""

    dim: int = 256

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailHashingEmbedding"

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for word in _WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
            vec[h % self.dim] += 1.0 if (h >> 63) else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)
