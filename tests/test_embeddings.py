"""Embedding protection (``guardrail.embeddings``): the keyed scale-and-perturb transform keeps nearest
neighbours approximately, the re-ranker restores the exact order, and key material stays private.

Recall thresholds were measured on the dataset below (2,000 clustered unit vectors of dim 384, 100 queries,
5 dataset seeds x 5 noise seeds): recall@10 at strength 1 was 0.926-0.947, with 3x over-fetch and exact
re-rank 1.000. The thresholds leave a margin of ~0.08 and ~0.03.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import os
import pickle
import random
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.embeddings import (
    SCALE_MAX,
    SCALE_MIN,
    EmbeddingShield,
    OverfetchReranker,
    Ranked,
)
from guardrail.errors import ConfigError
from guardrail.keys import Keyring

KEY = bytes(range(32))
OTHER_KEY = b"o" * 32
#: frozen: the scale derived from KEY. If this changes, vectors stored under a key no longer match queries.
KEY_SCALE = 191609.5544481363
DIM = 384
Matrix = npt.NDArray[np.float64]


def seeded(seed: int = 7) -> EmbeddingShield:
    return EmbeddingShield(KEY, entropy=random.Random(seed).randbytes)


def normalise(m: Matrix) -> Matrix:
    out: Matrix = m / np.linalg.norm(m, axis=-1, keepdims=True)
    return out


def clustered(seed: int = 0, n: int = 2000, queries: int = 100) -> tuple[Matrix, Matrix]:
    """Unit vectors in 20 topics x 5 subtopics (~20 per subtopic), plus queries drawn the same way."""
    rng = np.random.default_rng(seed)
    topics = normalise(rng.standard_normal((20, DIM)))
    subtopics = normalise(np.repeat(topics, 5, axis=0) + normalise(rng.standard_normal((100, DIM))))

    def draw(count: int) -> Matrix:
        which = rng.integers(0, 100, size=count)
        spread = rng.uniform(0.5, 1.3, size=(count, 1))
        return normalise(subtopics[which] + spread * normalise(rng.standard_normal((count, DIM))))

    return draw(n), draw(queries)


def top_k(queries: Matrix, collection: Matrix, k: int) -> npt.NDArray[np.int64]:
    return np.argsort(-(normalise(queries) @ normalise(collection).T), axis=1, kind="stable")[:, :k]


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found, truth, strict=True)]))


def shielded_search(
    shield: EmbeddingShield, collection: Matrix, queries: Matrix, k: int
) -> npt.NDArray[np.int64]:
    stored = np.asarray(shield.transform_batch(collection.tolist()))
    asked = np.asarray([shield.transform_query(q) for q in queries.tolist()])
    return top_k(asked, stored, k)


class TestKeyedScale:
    """The scale comes from the key: same key, same scale (stored vectors match later queries)."""

    def test_scale_is_frozen_for_a_key(self) -> None:
        expected = hmac.new(KEY, b"guardrail/embedding-shield/v1/scale", hashlib.sha256).digest()
        u = int.from_bytes(expected[:8], "big") / 2**64
        assert EmbeddingShield(KEY).scale == pytest.approx(1 + u * (2**20 - 1), rel=1e-15)
        assert EmbeddingShield(KEY).scale == pytest.approx(KEY_SCALE, rel=1e-15)

    def test_same_key_same_scale_different_keys_different_scales(self) -> None:
        assert EmbeddingShield(KEY).scale == EmbeddingShield(bytes(KEY)).scale
        assert EmbeddingShield(KEY).scale != EmbeddingShield(OTHER_KEY).scale

    @given(st.binary(min_size=32, max_size=32))
    @settings(max_examples=50)
    def test_scale_is_in_range(self, key: bytes) -> None:
        assert SCALE_MIN <= EmbeddingShield(key).scale < SCALE_MAX

    def test_different_keys_give_different_outputs(self) -> None:
        vec = [0.5, -0.25, 0.125, 1.0]
        a = EmbeddingShield(KEY, entropy=random.Random(1).randbytes).transform(vec)
        b = EmbeddingShield(OTHER_KEY, entropy=random.Random(1).randbytes).transform(vec)
        assert a != b

    def test_explicit_scale_is_used(self) -> None:
        shield = EmbeddingShield(KEY, scale=10.0, strength=0.01)
        out = np.asarray(shield.transform([1.0, 2.0, 3.0]))
        assert np.linalg.norm(out - [10.0, 20.0, 30.0]) <= 10.0 * 0.01 / 4 + 1e-9

    def test_tenants_of_one_keyring_get_their_own_scale(self, tmp_path: Path) -> None:
        keyring = Keyring.create(tmp_path / "keyring")
        acme = EmbeddingShield.for_tenant(keyring, "acme")
        assert acme.scale != EmbeddingShield.for_tenant(keyring, "globex").scale
        assert acme.scale == EmbeddingShield.for_tenant(Keyring.open(tmp_path / "keyring"), "acme").scale
        assert acme.scale == EmbeddingShield(keyring.hmac_key("embedding-shield\0acme")).scale


class TestNoise:
    """Fresh noise per vector, inside the ball of radius scale * strength / 4."""

    @pytest.mark.parametrize("strength", [0.5, 1.0, 2.0], ids=["0.5", "1", "2"])
    def test_noise_stays_in_the_ball_and_near_its_surface(self, strength: float) -> None:
        shield = EmbeddingShield(KEY, strength=strength)
        vectors = normalise(np.random.default_rng(3).standard_normal((200, DIM)))
        out = np.asarray(shield.transform_batch(vectors.tolist()))
        dist = np.linalg.norm(out - shield.scale * vectors, axis=1)
        assert shield.noise_radius == pytest.approx(shield.scale * strength / 4)
        assert (dist <= shield.noise_radius * (1 + 1e-9)).all()
        assert dist.min() > 0.95 * shield.noise_radius  # uniform in a 384-ball: almost all mass at the rim

    def test_noise_is_fresh_for_every_call(self) -> None:
        shield = EmbeddingShield(KEY)
        vec = [0.1] * DIM
        assert shield.transform(vec) != shield.transform(vec)
        assert shield.transform_query(vec) != shield.transform_query(vec)
        batch = shield.transform_batch([vec, vec])
        assert batch[0] != batch[1]

    def test_entropy_is_injectable(self) -> None:
        vec = [0.3, -0.2, 0.9]
        assert seeded(5).transform(vec) == seeded(5).transform(vec)
        assert seeded(5).transform(vec) != seeded(6).transform(vec)

    def test_noise_moves_a_unit_vector_by_a_quarter_at_strength_1(self) -> None:
        vectors = normalise(np.random.default_rng(4).standard_normal((500, DIM)))
        out = normalise(np.asarray(seeded().transform_batch(vectors.tolist())))
        cosines = np.sum(out * vectors, axis=1)
        assert cosines.mean() == pytest.approx(1 / np.sqrt(1 + 0.25**2), abs=0.005)  # 0.970, as documented

    @given(st.integers(min_value=0, max_value=2**32 - 1))
    @settings(max_examples=40, deadline=None)
    def test_distance_comparisons_beyond_beta_are_preserved(self, seed: int) -> None:
        # The DCPE guarantee: |x - y| < |x - z| - beta  =>  the transformed y stays nearer to x than z.
        rng = np.random.default_rng(seed)
        strength = float(rng.uniform(0.1, 3.0))
        shield = EmbeddingShield(os.urandom(32), strength=strength)
        x = rng.standard_normal(16)
        y = x + rng.standard_normal(16) * rng.uniform(0.01, 1.0)
        direction = normalise(rng.standard_normal(16))
        z = x + direction * (np.linalg.norm(x - y) + strength * (1 + 1e-6) + rng.uniform(0, 0.5))
        ex = np.asarray(shield.transform_query(x.tolist()))
        ey, ez = (np.asarray(v) for v in shield.transform_batch([y.tolist(), z.tolist()]))
        assert np.linalg.norm(ex - ey) < np.linalg.norm(ex - ez)


class TestRecall:
    """Nearest neighbours through the shield: mostly kept; exact after over-fetch and re-rank."""

    def test_recall_at_10_at_strength_1(self) -> None:
        collection, queries = clustered()
        truth = top_k(queries, collection, 10)
        assert recall(shielded_search(seeded(), collection, queries, 10), truth) >= 0.85

    def test_more_noise_costs_recall(self) -> None:
        # the measurement is sensitive: a strength far beyond 1 fails the threshold above
        collection, queries = clustered()
        truth = top_k(queries, collection, 10)
        weak = EmbeddingShield(KEY, strength=0.5, entropy=random.Random(1).randbytes)
        strong = EmbeddingShield(KEY, strength=16.0, entropy=random.Random(1).randbytes)
        weak_recall = recall(shielded_search(weak, collection, queries, 10), truth)
        strong_recall = recall(shielded_search(strong, collection, queries, 10), truth)
        assert strong_recall < 0.85 < weak_recall

    def test_query_transform_matches_stored_transform(self) -> None:
        # queries and stored vectors from two shield objects with one key (two processes) still match
        collection, queries = clustered(seed=1)
        truth = top_k(queries, collection, 10)
        stored = np.asarray(seeded(1).transform_batch(collection.tolist()))
        asked = np.asarray([seeded(2).transform_query(q) for q in queries.tolist()])
        assert recall(top_k(asked, stored, 10), truth) >= 0.85
        other = EmbeddingShield(OTHER_KEY, entropy=random.Random(2).randbytes, scale=1.0, strength=1.0)
        # a different scale changes nothing for cosine search: the protection is the noise, not the key
        asked_other = np.asarray([other.transform_query(q) for q in queries.tolist()])
        assert recall(top_k(asked_other, stored, 10), truth) >= 0.85

    def test_overfetch_and_exact_rerank_restore_the_exact_top_10(self) -> None:
        collection, queries = clustered(seed=2)
        truth = top_k(queries, collection, 10)
        reranker = OverfetchReranker()
        fetched = shielded_search(seeded(), collection, queries, reranker.overfetch(10))
        reranked = np.asarray(
            [
                [r.item for r in reranker.rerank(q, [(int(i), collection[i]) for i in cand], 10)]
                for q, cand in zip(queries.tolist(), fetched, strict=True)
            ]
        )
        assert recall(reranked, truth) >= 0.97


class TestReranker:
    """Exact cosine re-ranking of opened candidates."""

    def test_returns_the_exact_order_cut_to_k(self) -> None:
        rng = np.random.default_rng(9)
        query = rng.standard_normal(32)
        vectors = rng.standard_normal((40, 32))
        shuffled = [(f"node-{i}", vectors[i].tolist()) for i in rng.permutation(40)]
        ranked = OverfetchReranker().rerank(query.tolist(), shuffled, 7)
        exact = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        expected = [f"node-{i}" for i in np.argsort(-exact)[:7]]
        assert [r.item for r in ranked] == expected
        assert [r.score for r in ranked] == pytest.approx(sorted(exact, reverse=True)[:7])

    def test_ties_keep_the_candidates_order_and_zero_vectors_score_zero(self) -> None:
        ranked = OverfetchReranker().rerank(
            [1.0, 0.0], [("a", [2.0, 0.0]), ("zero", [0.0, 0.0]), ("b", [1.0, 0.0]), ("c", [0.0, 1.0])], 4
        )
        assert [(r.item, r.score) for r in ranked] == [("a", 1.0), ("b", 1.0), ("zero", 0.0), ("c", 0.0)]

    def test_fewer_candidates_than_k_and_none(self) -> None:
        reranker = OverfetchReranker()
        assert [r.item for r in reranker.rerank([1.0, 0.0], [("a", [0.0, 1.0]), ("b", [1.0, 1.0])], 5)] == [
            "b",
            "a",
        ]
        assert reranker.rerank([1.0, 0.0], [], 5) == []

    @pytest.mark.parametrize(
        ("candidates", "match"),
        [
            ([("a", None)], "candidate 0 has no exact embedding"),
            ([("a", [1.0, 0.0, 0.0])], "dimension 3, the query 2"),
            ([("a", [1.0, float("nan")])], "NaN"),
        ],
        ids=["no-embedding", "dimension", "nan"],
    )
    def test_bad_candidates_raise(self, candidates: list[tuple[str, list[float] | None]], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            OverfetchReranker().rerank([1.0, 0.0], candidates, 1)

    def test_overfetch_factor(self) -> None:
        assert OverfetchReranker().factor == 3
        assert OverfetchReranker().overfetch(5) == 15
        assert OverfetchReranker(factor=5).overfetch(10) == 50
        assert OverfetchReranker(factor=1).overfetch(4) == 4

    @pytest.mark.parametrize("factor", [0, -1, 2.5, True], ids=["zero", "negative", "float", "bool"])
    def test_bad_factor_raises(self, factor: object) -> None:
        with pytest.raises(ValueError, match="over-fetch factor"):
            OverfetchReranker(factor=factor)  # type: ignore[arg-type]

    @pytest.mark.parametrize("k", [0, -3, 1.5], ids=["zero", "negative", "float"])
    def test_bad_k_raises(self, k: object) -> None:
        with pytest.raises(ValueError, match="k is a positive integer"):
            OverfetchReranker().overfetch(k)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="k is a positive integer"):
            OverfetchReranker().rerank([1.0], [("a", [1.0])], k)  # type: ignore[arg-type]

    def test_ranked_is_frozen(self) -> None:
        ranked = Ranked("a", 0.5)
        with pytest.raises(dataclasses.FrozenInstanceError):
            ranked.score = 1.0  # type: ignore[misc]


class TestKeyMaterial:
    """Keys are validated and never shown or pickled."""

    def test_repr_shows_no_key_material(self) -> None:
        shield = EmbeddingShield(KEY, strength=1.5)
        text = repr(shield) + str(shield)
        assert text == "EmbeddingShield(strength=1.5)" * 2
        assert KEY.hex() not in text
        assert str(int(shield.scale)) not in text

    def test_the_key_itself_is_not_kept(self) -> None:
        shield = EmbeddingShield(KEY)
        held = [getattr(shield, name) for name in ("_EmbeddingShield__scale", "_strength")]
        assert KEY not in held
        assert not hasattr(shield, "__dict__")

    @pytest.mark.parametrize(
        "clone", [pickle.dumps, copy.copy, copy.deepcopy], ids=["pickle", "copy", "deepcopy"]
    )
    def test_refuses_to_be_pickled(self, clone: object) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            clone(EmbeddingShield(KEY))  # type: ignore[operator]

    @pytest.mark.parametrize(
        "key",
        [b"", b"k" * 16, b"k" * 31, b"k" * 33, "k" * 32, None],
        ids=["empty", "16", "31", "33", "str", "none"],
    )
    def test_bad_key_raises_value_error(self, key: object) -> None:
        with pytest.raises(ValueError, match="32 bytes") as info:
            EmbeddingShield(key)  # type: ignore[arg-type]
        assert isinstance(info.value, ConfigError)

    @pytest.mark.parametrize(
        "strength",
        [0.0, -1.0, float("nan"), float("inf"), True],
        ids=["zero", "negative", "nan", "inf", "bool"],
    )
    def test_bad_strength_raises(self, strength: float) -> None:
        with pytest.raises(ValueError, match="strength"):
            EmbeddingShield(KEY, strength=strength)

    @pytest.mark.parametrize("scale", [0.0, -2.0, float("nan")], ids=["zero", "negative", "nan"])
    def test_bad_scale_raises(self, scale: float) -> None:
        with pytest.raises(ValueError, match="scale"):
            EmbeddingShield(KEY, scale=scale)

    @pytest.mark.parametrize(
        ("vec", "match"),
        [
            ([], "non-empty"),
            ([1.0, float("nan")], "NaN"),
            ([1.0, float("inf")], "NaN or infinite"),
            ("ab", "numbers"),
        ],
        ids=["empty", "nan", "inf", "text"],
    )
    def test_bad_vectors_raise(self, vec: list[float], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            EmbeddingShield(KEY).transform(vec)

    def test_empty_batch_is_empty(self) -> None:
        assert EmbeddingShield(KEY).transform_batch([]) == []

    def test_ragged_batch_raises(self) -> None:
        with pytest.raises(ValueError, match="equal-length"):
            EmbeddingShield(KEY).transform_batch([[1.0, 2.0], [1.0]])
