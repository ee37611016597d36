"""RFC 6962/9162 Merkle hashing and proofs: published vectors, an independent naive implementation of the
RFC's recursive definitions, and hypothesis properties (including the off-by-one cases around powers of
two that consistency proofs are known for)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go (the RFC 6962 reference tree of Certificate Transparency)
LEAF_INPUTS = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# transparency-dev/merkle proof/verify_test.go (leaf indexes there are 1-based; 0-based here)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]  # fmt: skip
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (1, 1, []),
]  # fmt: skip
LEAVES = [leaf_hash(x) for x in LEAF_INPUTS]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


# ---- the RFC's recursive definitions, written independently and naively (slices, recursion)


def naive_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:])).digest()


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, d[:k]), naive_mth(d[k:])]
    return [*naive_path(m - k, d[k:]), naive_mth(d[:k])]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, d[:k], b), naive_mth(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), naive_mth(d[:k])]


def synthetic(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


class TestVectors:
    """The published RFC 6962 vectors: roots, inclusion and consistency proofs."""

    @pytest.mark.parametrize("size", range(9))
    def test_roots(self, size: int) -> None:
        assert root(LEAVES[:size]).hex() == ROOTS[size]
        rng = CompactRange()
        rng.extend(LEAVES[:size])
        assert rng.root().hex() == ROOTS[size]

    def test_empty_root_and_prefixes(self) -> None:
        assert EMPTY_ROOT.hex() == ROOTS[0]
        assert leaf_hash(b"").hex() == ROOTS[1]  # 0x00 prefix
        assert node_hash(LEAVES[0], LEAVES[1]).hex() == ROOTS[2]  # 0x01 prefix

    @pytest.mark.parametrize(
        ("index", "size", "path"), INCLUSION, ids=[f"{i}-of-{n}" for i, n, _ in INCLUSION]
    )
    def test_inclusion(self, index: int, size: int, path: list[str]) -> None:
        proof = inclusion_proof(index, LEAVES[:size])
        assert [p.hex() for p in proof] == path
        assert verify_inclusion(index, size, LEAVES[index], proof, bytes.fromhex(ROOTS[size]))

    @pytest.mark.parametrize(("m", "n", "path"), CONSISTENCY, ids=[f"{m}-{n}" for m, n, _ in CONSISTENCY])
    def test_consistency(self, m: int, n: int, path: list[str]) -> None:
        proof = consistency_proof(m, LEAVES[:n])
        assert [p.hex() for p in proof] == path
        assert verify_consistency(m, n, bytes.fromhex(ROOTS[m]), bytes.fromhex(ROOTS[n]), proof)


class TestCorruptProofsFail:
    """The probes of transparency-dev/merkle's verifier tests: every corruption is rejected."""

    @pytest.mark.parametrize(
        ("index", "size", "path"), INCLUSION[:4], ids=[f"{i}-of-{n}" for i, n, _ in INCLUSION[:4]]
    )
    def test_inclusion(self, index: int, size: int, path: list[str]) -> None:
        proof = [bytes.fromhex(p) for p in path]
        good_root, leaf = bytes.fromhex(ROOTS[size]), LEAVES[index]
        probes = [
            (index - 1, size, leaf, proof, good_root),
            (index + 1, size, leaf, proof, good_root),
            (index ^ 2, size, leaf, proof, good_root),
            (index, size * 2, leaf, proof, good_root),
            (index, size // 2, leaf, proof, good_root),
            (index, size, b"WrongLeaf", proof, good_root),
            (index, size, leaf, proof, EMPTY_ROOT),
            (index, size, leaf, proof, SOME_HASH),
            (index, size, leaf, [*proof, b""], good_root),
            (index, size, leaf, [*proof, good_root], good_root),
            (index, size, leaf, [b"", *proof], good_root),
            (index, size, leaf, [good_root, *proof], good_root),
            (index, size, leaf, proof[:-1], good_root),
            (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], good_root),
        ]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
            probes.append((index, size, leaf, flipped, good_root))
        for probe in probes:
            if probe[0] < 0:
                continue
            assert not verify_inclusion(*probe), probe[:2]

    @pytest.mark.parametrize(
        ("m", "n", "path"), CONSISTENCY[:4], ids=[f"{m}-{n}" for m, n, _ in CONSISTENCY[:4]]
    )
    def test_consistency(self, m: int, n: int, path: list[str]) -> None:
        proof = [bytes.fromhex(p) for p in path]
        r1, r2 = bytes.fromhex(ROOTS[m]), bytes.fromhex(ROOTS[n])
        probes = [
            (m - 1, n, r1, r2, proof),
            (m + 1, n, r1, r2, proof),
            (m ^ 2, n, r1, r2, proof),
            (m, n * 2, r1, r2, proof),
            (m, n // 2, r1, r2, proof),
            (m, n, b"WrongRoot", r2, proof),
            (m, n, r1, b"WrongRoot", proof),
            (m, n, r2, r1, proof),
            (m, n, r1, r2, []),
            (m, n, r1, r2, [*proof, b""]),
            (m, n, r1, r2, [*proof, r1]),
            (m, n, r1, r2, [*proof, r2]),
            (m, n, r1, r2, [b"", *proof]),
            (m, n, r1, r2, [r1, *proof]),
            (m, n, r1, r2, [r2, *proof]),
            (m, n, r1, r2, [proof[0], *proof]),
            (m, n, r1, r2, proof[:-1]),
        ]
        for i in range(len(proof)):
            flipped = list(proof)
            flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
            probes.append((m, n, r1, r2, flipped))
        for probe in probes:
            assert not verify_consistency(*probe), probe[:2]

    def test_trivial_cases(self) -> None:
        r1, r2 = b"don't care 1", b"don't care 2"
        assert verify_consistency(0, 0, r1, r1, [])
        assert verify_consistency(0, 1, r1, r2, [])
        assert verify_consistency(1, 1, r2, r2, [])
        assert not verify_consistency(0, 0, EMPTY_ROOT, r2, [])
        assert not verify_consistency(1, 1, EMPTY_ROOT, r2, [])
        assert not verify_consistency(1, 0, r1, r2, [])
        assert not verify_consistency(2, 1, r1, r2, [])
        assert not verify_consistency(1, 2, r1, r2, [])
        assert not verify_consistency(0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
        assert not verify_consistency(1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT])
        for index, size in [(0, 0), (1, 0), (2, 1)]:
            assert not verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)
        assert verify_inclusion(0, 1, leaf_hash(b"data"), [], leaf_hash(b"data"))
        assert not verify_inclusion(0, 1, leaf_hash(b"data"), [], b"")


# sizes around powers of two, where split-point and proof-length errors hide
EDGE_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]


class TestAgainstNaiveDefinitions:
    """Every proof equals the RFC's recursive definition and verifies; every wrong claim fails."""

    @pytest.mark.parametrize("n", EDGE_SIZES)
    def test_every_inclusion_proof(self, n: int) -> None:
        leaves = synthetic(n)
        r = naive_mth(leaves)
        assert root(leaves) == r
        for i in range(n):
            proof = inclusion_proof(i, leaves)
            assert proof == naive_path(i, leaves)
            assert verify_inclusion(i, n, leaves[i], proof, r)
            # (a path alone does not pin the size exactly, e.g. 33 vs 34 for leaf 0: the signed
            # checkpoint does; a size of another height always fails)
            assert not verify_inclusion(i, n * 2, leaves[i], proof, r)
            if n > 1:
                assert not verify_inclusion(i, n // 2, leaves[i], proof, r)
                assert not verify_inclusion((i + 1) % n, n, leaves[i], proof, r)
                assert not verify_inclusion(i, n, leaves[(i + 1) % n], proof, r)

    @pytest.mark.parametrize("n", EDGE_SIZES)
    def test_every_consistency_proof(self, n: int) -> None:
        leaves = synthetic(n)
        rn = naive_mth(leaves)
        for m in range(1, n + 1):
            proof = consistency_proof(m, leaves)
            assert proof == (naive_subproof(m, leaves, True) if m < n else [])
            rm = naive_mth(leaves[:m])
            assert verify_consistency(m, n, rm, rn, proof)
            if m < n:
                assert not verify_consistency(m + 1, n, naive_mth(leaves[: m + 1]), rn, proof)
                assert not verify_consistency(m - 1, n, naive_mth(leaves[: m - 1]), rn, proof) or m == 1
                assert not verify_consistency(m, n + 1, rm, naive_mth([*leaves, leaf_hash(b"x")]), proof)
                assert not verify_consistency(m, n, rm, SOME_HASH, proof)

    def test_compact_range_matches_every_prefix(self) -> None:
        leaves = synthetic(70)
        rng = CompactRange()
        for i, leaf in enumerate(leaves):
            rng.append(leaf)
            assert rng.size == i + 1
            assert len(rng.hashes) == (i + 1).bit_count()
            assert rng.root() == naive_mth(leaves[: i + 1])
            again = CompactRange(rng.size, rng.hashes)  # the persisted form round-trips
            assert again.root() == rng.root()

    def test_compact_range_refuses_a_wrong_state(self) -> None:
        with pytest.raises(ValueError, match="has 2 hashes"):
            CompactRange(3, [EMPTY_ROOT])
        with pytest.raises(ValueError, match="32 bytes"):
            CompactRange(1, [b"short"])

    def test_out_of_range_requests(self) -> None:
        with pytest.raises(ValueError, match="not in a tree"):
            inclusion_proof(3, synthetic(3))
        with pytest.raises(ValueError, match="cannot prove"):
            consistency_proof(4, synthetic(3))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_random_trees(n: int, data: st.DataObject) -> None:
    """Property: for random sizes and indexes, proofs verify, and a wrong leaf, index or size fails."""
    leaves = synthetic(n)
    rng = CompactRange()
    rng.extend(leaves)
    rn = rng.root()
    i = data.draw(st.integers(0, n - 1), label="index")
    proof = inclusion_proof(i, leaves)
    assert verify_inclusion(i, n, leaves[i], proof, rn)
    wrong_index = data.draw(st.integers(0, n - 1).filter(lambda j: j != i) if n > 1 else st.just(i))
    if wrong_index != i:
        assert not verify_inclusion(wrong_index, n, leaves[i], proof, rn)
    assert not verify_inclusion(i, n, leaf_hash(b"forged"), proof, rn)
    m = data.draw(st.integers(1, n), label="m")
    rm = root(leaves[:m])
    cproof = consistency_proof(m, leaves)
    assert verify_consistency(m, n, rm, rn, cproof)
    if m < n:
        assert not verify_consistency(m, n, rn, rn, cproof)
        other = data.draw(st.integers(1, n).filter(lambda k: k != m), label="wrong m")
        assert not verify_consistency(other, n, root(leaves[:other]), rn, cproof)
