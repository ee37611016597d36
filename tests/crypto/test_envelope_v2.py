"""Version 2 envelopes: records bound to their store instance and collection (``Context.binding``).

The vectors in ``vectors_v2.json`` were generated once with ``_seal_with`` from fixed keys, ids, salt and
nonce; they must never be regenerated. Each is re-derived here and read again independently along
``docs/envelope.md`` (HKDF from ``cryptography``, the canonical context from ``json.dumps``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st
from test_envelope import DictKeySource, assert_opaque

from guardrail.crypto import (
    VERSION_BOUND,
    Context,
    DecryptionError,
    Sealer,
    _seal_with,
    envelope_version,
    key_ids_of,
)

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "vectors_v2.json").read_text("utf-8"))[
    "vectors"
]
FIELDS = ("binding", "store", "namespace", "key", "tenant")
IDS = [v["name"] for v in VECTORS]


def parts(v: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], Context, bytes, bytes, bytes, bytes]:
    keys = [(bytes.fromhex(k["id"]), bytes.fromhex(k["key"])) for k in v["keys"]]
    ctx = Context(**{f: bytes.fromhex(v["context"][f]).decode("utf-8") for f in FIELDS})
    return (
        keys,
        ctx,
        bytes.fromhex(v["plaintext"]),
        bytes.fromhex(v["salt"]),
        bytes.fromhex(v["nonce"]),
        bytes.fromhex(v["sealed"]),
    )


def test_vectors_cover_each_kind_of_store() -> None:
    bindings = [bytes.fromhex(v["context"]["binding"]).decode() for v in VECTORS]
    assert {b.split(":")[0] for b in bindings} >= {
        "ChromaVectorStore",
        "QdrantVectorStore",
        "SimpleVectorStore",
    }
    assert any(len(v["keys"]) == 3 for v in VECTORS)
    assert any(v["plaintext"] == "" for v in VECTORS)
    assert any(not b.isascii() for b in bindings)


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector_seals_byte_for_byte_and_opens(v: dict[str, Any]) -> None:
    keys, ctx, plaintext, salt, nonce, sealed = parts(v)
    assert ctx.canonical().hex() == v["canonical_context"]
    assert _seal_with(plaintext, keys, ctx, salt=salt, nonce=nonce) == sealed
    sealer = Sealer(DictKeySource(dict(keys)))
    assert sealer.open(sealed, context=ctx) == plaintext
    assert sealer.open_text(v["sealed_text"], context=ctx) == plaintext
    assert envelope_version(sealed) == VERSION_BOUND == 2
    assert key_ids_of(sealed) == [i for i, _ in keys]


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector_matches_the_documented_layout(v: dict[str, Any]) -> None:
    keys, ctx, plaintext, salt, nonce, sealed = parts(v)
    n = len(keys)
    assert sealed[:3] == bytes([2, 1, n])
    off = 3 + 8 * n
    assert sealed[off : off + 32] == salt
    assert sealed[off + 64 : off + 76] == nonce
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=b"guardrail/v1" + bytes([2, 1])).derive(
        b"".join(k for _, k in keys)
    )
    assert sealed[off + 32 : off + 64] == okm[32:]
    canonical = json.dumps(
        {f: getattr(ctx, f) for f in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert AESGCM(okm[:32]).decrypt(nonce, sealed[off + 76 :], sealed[: off + 64] + canonical) == plaintext


def open_fails(sealer: Sealer, blob: bytes, ctx: Context) -> None:
    with pytest.raises(DecryptionError) as info:
        sealer.open(blob, context=ctx)
    assert_opaque(info.value, ctx.key)


PLACE = Context(
    store="vector", namespace="default", key="n-1", tenant="acme", binding="ChromaVectorStore:kb-restricted"
)
SECRET = b"SECRET restricted 078-05-1120"


@pytest.mark.parametrize(
    "other",
    [
        "ChromaVectorStore:kb-general",  # same tenant, another collection
        "QdrantVectorStore:kb-restricted",  # same collection name, another kind of store
        "ChromaVectorStore:kb-restricted ",
        "",  # no binding at all
    ],
    ids=["other-collection", "other-store-class", "trailing-space", "unbound-context"],
)
def test_a_bound_record_opens_only_with_its_binding(other: str) -> None:
    sealer = Sealer(DictKeySource())
    blob = sealer.seal(SECRET, context=PLACE)
    assert sealer.open(blob, context=PLACE) == SECRET  # positive control
    open_fails(sealer, blob, Context(PLACE.store, PLACE.namespace, PLACE.key, PLACE.tenant, other))


def test_unbound_records_keep_opening_with_or_without_a_binding() -> None:
    """Read compatibility: a version 1 record (sealed before bindings) opens in its bound place."""
    sealer = Sealer(DictKeySource())
    unbound = Context(PLACE.store, PLACE.namespace, PLACE.key, PLACE.tenant)
    v1 = sealer.seal(SECRET, context=unbound)
    assert envelope_version(v1) == 1
    assert sealer.open(v1, context=PLACE) == SECRET
    assert sealer.open(v1, context=unbound) == SECRET
    open_fails(sealer, v1, Context(PLACE.store, PLACE.namespace, "n-2", PLACE.tenant, PLACE.binding))


def test_the_version_byte_cannot_be_relabelled() -> None:
    """Downgrading a bound record to version 1 (to drop its binding), or upgrading an unbound one, fails:
    the byte is in the AAD and in the HKDF info."""
    sealer = Sealer(DictKeySource())
    v2 = sealer.seal(SECRET, context=PLACE)
    v1 = sealer.seal(SECRET, context=Context(PLACE.store, PLACE.namespace, PLACE.key, PLACE.tenant))
    open_fails(sealer, b"\x01" + v2[1:], PLACE)
    open_fails(sealer, b"\x01" + v2[1:], Context(PLACE.store, PLACE.namespace, PLACE.key, PLACE.tenant))
    open_fails(sealer, b"\x02" + v1[1:], PLACE)


def test_binding_is_not_interchangeable_with_other_fields() -> None:
    sealer = Sealer(DictKeySource())
    blob = sealer.seal(SECRET, context=Context("s", "ns", "k", "t", "ab"))
    open_fails(sealer, blob, Context("s", "ns", "k", "t", "a"))
    open_fails(sealer, blob, Context("bs", "ns", "k", "t", "a"))


@settings(max_examples=40, deadline=None)
@given(plaintext=st.binary(max_size=512), binding=st.text(min_size=1), other=st.text(min_size=1))
def test_round_trip_and_binding(plaintext: bytes, binding: str, other: str) -> None:
    sealer = Sealer(DictKeySource())
    ctx = Context("vector", "default", "n", "t", binding)
    blob = sealer.seal(plaintext, context=ctx)
    assert blob[0] == 2
    assert sealer.open(blob, context=ctx) == plaintext
    if other != binding:
        with pytest.raises(DecryptionError):
            sealer.open(blob, context=Context("vector", "default", "n", "t", other))
