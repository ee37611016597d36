"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs, and a compact range.

* leaf hash ``SHA-256(0x00 || entry)``, interior node ``SHA-256(0x01 || left || right)``;
* ``MTH`` of ``n`` entries splits at ``k``, the largest power of two smaller than ``n``; the empty tree's
  hash is ``SHA-256("")``;
* :class:`CompactRange` keeps only the roots of the perfect subtrees of the binary decomposition of the
  size (at most ``log2(n) + 1`` hashes): appending is amortised O(1), the root for the current size is
  O(log n), and the state is small enough to persist next to the log.

Proofs follow RFC 9162 §2.1.3 (inclusion: ``PATH``, verification §2.1.3.2) and §2.1.4 (consistency:
``SUBPROOF``, verification §2.1.4.2). Functions take *leaf hashes*, not entries, so callers hash once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(entry: bytes) -> bytes:
    """``SHA-256(0x00 || entry)``."""
    return _sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The Merkle tree state for ``size`` leaves: the roots of its perfect subtrees, largest first."""

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        """Build the state for ``size`` leaves from its subtree roots (empty for a new tree).

        Raises:
            ValueError: the number of hashes is not the number of one bits of ``size``, or a hash is
                not 32 bytes.
        """
        stack = list(hashes)
        if size < 0 or len(stack) != size.bit_count():
            raise ValueError(
                f"a compact range of size {size} has {size.bit_count()} hashes, not {len(stack)}"
            )
        if any(len(h) != HASH_SIZE for h in stack):
            raise ValueError("compact range hashes must be 32 bytes")
        self._size = size
        self._hashes = stack

    @property
    def size(self) -> int:
        """The number of leaves."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The subtree roots, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (amortised one interior hash)."""
        stack = self._hashes
        h = leaf
        n = self._size
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """``MTH`` of the leaves so far (``SHA-256("")`` for none)."""
        stack = self._hashes
        if not stack:
            return EMPTY_ROOT
        h = stack[-1]
        for left in reversed(stack[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h

    def copy(self) -> CompactRange:
        """An independent copy."""
        return CompactRange(self._size, self._hashes)

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}...)"


def root(leaves: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes."""
    return _mth(leaves, 0, len(leaves))


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    rng = CompactRange()
    for i in range(lo, hi):
        rng.append(leaves[i])
    return rng.root()


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path ``PATH(index, D[n])`` of RFC 9162 §2.1.3.1, leaf level first.

    Raises:
        ValueError: ``index`` is not in ``[0, len(leaves))``.
    """
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is not in a tree of size {n}")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    # walk down from the root; siblings are collected top-down and returned bottom-up
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_mth(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or None when the proof is malformed."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """Whether ``proof`` puts the leaf hash at ``index`` in the tree of ``size`` leaves and ``root_hash``."""
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    return computed is not None and computed == root_hash


def consistency_proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PROOF(m, D[n])`` of RFC 9162 §2.1.4.1: the tree of the first ``m`` leaves is a prefix of all ``n``.

    Empty for ``m == 0`` and ``m == n``.

    Raises:
        ValueError: ``m`` is not in ``[0, n]``.
    """
    n = len(leaves)
    if not 0 <= m <= n:
        raise ValueError(f"cannot prove consistency of size {m} with size {n}")
    if m in (0, n):
        return []
    path: list[bytes] = []
    lo, hi, sub, complete = 0, n, m, True
    while True:
        if sub == hi - lo:
            if not complete:
                path.append(_mth(leaves, lo, hi))
            break
        k = _split(hi - lo)
        if sub <= k:
            path.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_mth(leaves, lo, lo + k))
            lo, sub, complete = lo + k, sub - k, False
    path.reverse()
    return path


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows the tree of size ``m`` (``root_m``) is a prefix of size ``n`` (``root_n``).

    RFC 9162 §2.1.4.2, plus the trivial cases: ``m == n`` (empty proof, equal roots) and ``m == 0``
    (empty proof: anything is consistent with the empty tree).
    """
    if not 0 <= m <= n:
        return False
    if m == n:
        return not proof and root_m == root_n
    if m == 0:
        return not proof
    if not proof or any(len(p) != HASH_SIZE for p in proof):
        return False
    path = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: its root is a node of the bigger tree
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root_m and sr == root_n and sn == 0
