"""Embedding protection: a keyed scale-and-perturb transform and an exact re-ranker.

Embeddings are not covered by the envelope: the vector database needs them to search, and an embedding can
be inverted back to much of its text (Vec2Text). :class:`EmbeddingShield` is the *Scale-And-Perturb*
construction of distance-comparison-preserving encryption (DCPE; Fuchsbauer, Ghosal, Hauke and O'Neill,
SCN 2022)::

    transform(v) = s * v + n,   n uniform in the ball of radius s * beta / 4, fresh for every vector

with ``s`` a secret scale derived from a key and ``beta`` the ``strength``. Whenever
``|x - y| < |x - z| - beta`` the transformed vectors keep the order (``y`` stays nearer to ``x`` than ``z``);
closer calls may flip, so a search over transformed vectors is approximate. :class:`OverfetchReranker`
recovers the lost accuracy: fetch ``factor * k`` candidates from the database, open them (the exact vector
is sealed inside each node), re-rank them by exact cosine similarity against the query (which stays in
memory) and keep ``k``.

**This is obfuscation against an attacker who sees only the stored vectors, not encryption.** It is not
semantically secure: the transformed vectors still reveal approximate distances (and hence clusters,
near-duplicates and, with a few known vectors, their neighbourhoods) by design. The secret scale hides the
vectors' lengths and absolute distances, but nothing from cosine similarity (it is scale-invariant) and
little from unit-norm embeddings (their length is 1 anyway): against inversion, the protection is the
noise. Noise at ``strength`` 1 moves a unit vector by a quarter of its length (cosine ~0.97 between the
exact and the stored direction), which degrades inversion; it does not prevent it. Use a larger
``strength`` (with over-fetch) for more noise, and embed redacted text where the text itself must not be
recoverable (``docs/embeddings.md``).

The scale is ``1 + u * (2**20 - 1)`` with ``u`` in ``[0, 1)`` from the first 8 bytes of
``HMAC-SHA256(key, "guardrail/embedding-shield/v1/scale")``: the same key always gives the same scale, so
vectors stored under it stay comparable with later queries. The noise is drawn from a NumPy generator
seeded per call with 32 bytes of ``os.urandom``; it is never stored and never reproduced (the exact vector
lives sealed in the node). Nothing here imports LlamaIndex.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from guardrail.errors import ConfigError

__all__ = ["EmbeddingShield", "HmacKeySource", "OverfetchReranker", "Ranked"]

KEY_LEN = 32
SCALE_MIN = 1.0
SCALE_MAX = 2.0**20
DEFAULT_OVERFETCH = 3
_SCALE_LABEL = b"guardrail/embedding-shield/v1/scale"
_SEED_LEN = 32

T = TypeVar("T")
_Matrix = npt.NDArray[np.float64]


class HmacKeySource(Protocol):
    """Where a shield's key comes from (a :class:`~guardrail.keys.Keyring`)."""

    def hmac_key(self, purpose: str) -> bytes:
        """A 32-byte key derived for ``purpose``."""
        ...


def _derive_scale(key: bytes) -> float:
    digest = hmac.new(key, _SCALE_LABEL, hashlib.sha256).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    return SCALE_MIN + u * (SCALE_MAX - SCALE_MIN)


def _as_matrix(vectors: Sequence[Sequence[float]], what: str) -> _Matrix:
    try:
        matrix = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected a sequence of numbers (equal-length vectors)") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ConfigError(f"{what}: expected non-empty vectors of one dimension, got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ConfigError(f"{what}: contains NaN or infinite values")
    return matrix


class EmbeddingShield:
    """A keyed scale-and-perturb (DCPE) transform of embeddings: obfuscation, not encryption.

    Stored vectors go through :meth:`transform` (or :meth:`transform_batch`), query vectors through
    :meth:`transform_query`; both use the key's scale and fresh noise, so they stay comparable. Search
    results are approximate: over-fetch and re-rank with :class:`OverfetchReranker`.

    Args:
        key: 32 secret bytes, e.g. ``keyring.hmac_key("embedding-shield\\0" + tenant)``
            (:meth:`for_tenant` does this). Only the scale derived from it is kept.
        strength: ``beta``, the noise: a vector is moved by up to ``scale * strength / 4``. 1 is the
            default; 0.5 keeps more recall, 2 hides more. Must be positive and finite.
        scale: the scale ``s`` itself (for tests and migrations); derived from the key when ``None``.
        entropy: ``os.urandom``-like source of the noise seeds (injectable for tests).

    Raises:
        ConfigError: (a ``ValueError``) the key is not 32 bytes, or ``strength``/``scale`` are invalid.
    """

    __slots__ = ("__scale", "_entropy", "_strength")

    def __init__(
        self,
        key: bytes,
        *,
        strength: float = 1.0,
        scale: float | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) != KEY_LEN:
            raise ConfigError(f"an embedding shield key is {KEY_LEN} bytes (use Keyring.hmac_key(...))")
        if isinstance(strength, bool) or not isinstance(strength, int | float):
            raise ConfigError(f"strength must be a number, got {type(strength).__name__}")
        if not math.isfinite(strength) or strength <= 0:
            raise ConfigError(f"strength must be positive and finite (e.g. 1.0), got {strength!r}")
        if scale is not None and (not math.isfinite(scale) or scale <= 0):
            raise ConfigError("scale must be positive and finite")
        self.__scale = float(scale) if scale is not None else _derive_scale(bytes(key))
        self._strength = float(strength)
        self._entropy = entropy

    @classmethod
    def for_tenant(
        cls, keyring: HmacKeySource | str | os.PathLike[str], tenant: str, *, strength: float = 1.0
    ) -> EmbeddingShield:
        """The shield of a tenant: its key is ``keyring.hmac_key("embedding-shield\\0" + tenant)``
        (``keyring``: a keyring or the path of its directory)."""
        if isinstance(keyring, str | os.PathLike):
            from guardrail.keys import as_keyring

            keyring = as_keyring(keyring)
        return cls(keyring.hmac_key(f"embedding-shield\0{tenant}"), strength=strength)

    def __repr__(self) -> str:
        return f"EmbeddingShield(strength={self._strength!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an EmbeddingShield holds key material and cannot be pickled")

    @property
    def strength(self) -> float:
        """``beta``: noise radius relative to the scale, times 4."""
        return self._strength

    @property
    def scale(self) -> float:
        """The secret scale ``s`` (derived from the key: as secret as the key; never log it)."""
        return self.__scale

    @property
    def noise_radius(self) -> float:
        """The radius of the noise ball, ``scale * strength / 4``."""
        return self.__scale * self._strength / 4

    def transform(self, vec: Sequence[float]) -> list[float]:
        """The vector to store in place of ``vec``: ``scale * vec`` plus fresh noise.

        Raises:
            ConfigError: ``vec`` is empty or holds non-finite values.
        """
        return self._perturb(_as_matrix([vec], "embedding"))[0].tolist()  # type: ignore[no-any-return]

    def transform_batch(self, vectors: Sequence[Sequence[float]]) -> list[list[float]]:
        """:meth:`transform` for many vectors of one dimension (one noise seed per call)."""
        if len(vectors) == 0:
            return []
        return self._perturb(_as_matrix(vectors, "embeddings")).tolist()  # type: ignore[no-any-return]

    def transform_query(self, vec: Sequence[float]) -> list[float]:
        """The vector to search with for the query ``vec``: same scale, its own fresh noise.

        The database sees queries too (and questions carry personal data), so they get the same noise.
        """
        return self._perturb(_as_matrix([vec], "query embedding"))[0].tolist()  # type: ignore[no-any-return]

    def _perturb(self, matrix: _Matrix) -> _Matrix:
        n, dim = matrix.shape
        seed = int.from_bytes(self._entropy(_SEED_LEN), "big")
        rng = np.random.Generator(np.random.PCG64(seed))
        # uniform in the d-ball: a uniform direction (normalised Gaussian) times radius * U^(1/d)
        direction = rng.standard_normal((n, dim))
        norms = np.linalg.norm(direction, axis=1, keepdims=True)
        norms[norms == 0] = 1.0  # probability zero; avoids a division by zero
        radius: _Matrix = self.noise_radius * np.power(rng.random((n, 1)), 1.0 / dim)
        shifted: _Matrix = self.__scale * matrix + direction / norms * radius
        return shifted


@dataclass(frozen=True, slots=True)
class Ranked(Generic[T]):
    """A re-ranked candidate and its exact cosine similarity to the query."""

    item: T
    score: float


class OverfetchReranker:
    """Over-fetch from an approximate (transformed) search, then re-rank by exact cosine similarity.

    Args:
        factor: how many candidates to fetch per result wanted (3 by default).

    Raises:
        ConfigError: ``factor`` is not an integer of at least 1.
    """

    __slots__ = ("_factor",)

    def __init__(self, *, factor: int = DEFAULT_OVERFETCH) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ConfigError(f"the over-fetch factor is an integer >= 1, got {factor!r}")
        self._factor = factor

    def __repr__(self) -> str:
        return f"OverfetchReranker(factor={self._factor})"

    @property
    def factor(self) -> int:
        return self._factor

    def overfetch(self, k: int) -> int:
        """How many candidates to ask the database for when ``k`` results are wanted.

        Raises:
            ConfigError: ``k`` is not a positive integer.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k is a positive integer, got {k!r}")
        return k * self._factor

    def rerank(
        self,
        query_embedding: Sequence[float],
        candidates: Iterable[tuple[T, Sequence[float] | None]],
        k: int,
    ) -> list[Ranked[T]]:
        """The ``k`` candidates most similar to the query by exact cosine similarity, best first.

        Args:
            query_embedding: the exact (untransformed) query vector, kept in memory.
            candidates: ``(item, exact embedding)`` pairs, e.g. opened nodes and ``node.embedding``.
                Ties keep the candidates' order.
            k: how many to keep.

        Raises:
            ConfigError: a candidate has no exact embedding, or dimensions differ.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k is a positive integer, got {k!r}")
        items: list[T] = []
        vectors: list[Sequence[float]] = []
        for i, (item, vec) in enumerate(candidates):
            if vec is None:
                raise ConfigError(f"candidate {i} has no exact embedding to re-rank by")
            items.append(item)
            vectors.append(vec)
        if not items:
            return []
        query = _as_matrix([query_embedding], "query embedding")[0]
        matrix = _as_matrix(vectors, "candidate embeddings")
        if matrix.shape[1] != query.shape[0]:
            raise ConfigError(
                f"candidate embeddings have dimension {matrix.shape[1]}, the query {query.shape[0]}"
            )
        denominators = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
        dots = matrix @ query
        scores = np.divide(dots, denominators, out=np.zeros_like(dots), where=denominators > 0)
        order = np.argsort(-scores, kind="stable")[:k]
        return [Ranked(items[i], float(scores[i])) for i in order]
