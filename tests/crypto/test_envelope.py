"""The sealed-record format (``guardrail.crypto``): frozen vectors, round trips and every way to fail.

The vectors in ``vectors.json`` were generated once with ``_seal_with`` from fixed keys, ids, salt and
nonce; they must never be regenerated: a test failing here means the on-disk format changed.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.crypto import (
    KEY_ID_LEN,
    TEXT_PREFIX,
    Context,
    DecryptionError,
    RecordErased,
    Sealer,
    _seal_with,
    key_ids_of,
)
from guardrail.errors import GuardrailError

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "vectors.json").read_text("utf-8"))[
    "vectors"
]
CONTEXT_FIELDS = ("store", "namespace", "key", "tenant")

# record layout (version 1, suite 1), as documented in docs/envelope.md
SALT_LEN, COMMIT_LEN, NONCE_LEN, TAG_LEN = 32, 32, 12, 16


def header_len(n_keys: int) -> int:
    return 3 + n_keys * KEY_ID_LEN + SALT_LEN + COMMIT_LEN


def commitment_slice(n_keys: int) -> slice:
    start = 3 + n_keys * KEY_ID_LEN + SALT_LEN
    return slice(start, start + COMMIT_LEN)


class DictKeySource:
    """The documented ``KeySource`` protocol over a dict of key id -> key (not a mock of a product part).

    Owners get a random key on first use; ``destroyed`` ids raise ``RecordErased`` as a keyring does.
    """

    def __init__(self, keys: dict[bytes, bytes] | None = None) -> None:
        self.keys: dict[bytes, bytes] = dict(keys or {})
        self.owners: dict[tuple[str, ...], bytes] = {}
        self.destroyed: set[bytes] = set()

    def _key_for(self, owner: tuple[str, ...]) -> tuple[bytes, bytes]:
        if owner not in self.owners:
            key_id = os.urandom(KEY_ID_LEN)
            self.keys[key_id] = os.urandom(32)
            self.owners[owner] = key_id
        key_id = self.owners[owner]
        return key_id, self.keys[key_id]

    def encryption_keys(self, tenant: str, subjects: Sequence[str]) -> list[tuple[bytes, bytes]]:
        return [self._key_for(("tenant", tenant))] + [
            self._key_for(("subject", tenant, s)) for s in sorted(set(subjects))
        ]

    def decryption_key(self, key_id: bytes) -> bytes:
        if key_id in self.destroyed:
            raise RecordErased("?")
        return self.keys[key_id]


def vector_parts(v: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], Context, bytes, bytes, bytes, bytes]:
    keys = [(bytes.fromhex(k["id"]), bytes.fromhex(k["key"])) for k in v["keys"]]
    ctx = Context(**{f: bytes.fromhex(v["context"][f]).decode("utf-8") for f in CONTEXT_FIELDS})
    return (
        keys,
        ctx,
        bytes.fromhex(v["plaintext"]),
        bytes.fromhex(v["salt"]),
        bytes.fromhex(v["nonce"]),
        bytes.fromhex(v["sealed"]),
    )


VECTOR_IDS = [v["name"] for v in VECTORS]

# --------------------------------------------------------------------------- frozen vectors


def test_vector_set_covers_the_required_cases() -> None:
    names = set(VECTOR_IDS)
    assert {"single-key", "tenant-and-two-subjects", "empty-plaintext", "non-ascii"} <= names
    by_name = {v["name"]: v for v in VECTORS}
    assert len(by_name["tenant-and-two-subjects"]["keys"]) == 3
    assert by_name["empty-plaintext"]["plaintext"] == ""
    non_ascii = by_name["non-ascii"]
    assert not bytes.fromhex(non_ascii["plaintext"]).isascii()
    assert all(not bytes.fromhex(non_ascii["context"][f]).isascii() for f in CONTEXT_FIELDS)


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_seals_byte_for_byte(v: dict[str, Any]) -> None:
    keys, ctx, plaintext, salt, nonce, sealed = vector_parts(v)
    assert ctx.canonical().hex() == v["canonical_context"]
    assert _seal_with(plaintext, keys, ctx, salt=salt, nonce=nonce) == sealed


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_opens_with_sealer(v: dict[str, Any]) -> None:
    keys, ctx, plaintext, _, _, sealed = vector_parts(v)
    sealer = Sealer(DictKeySource(dict(keys)))
    assert sealer.open(sealed, context=ctx) == plaintext
    assert sealer.open_text(v["sealed_text"], context=ctx) == plaintext


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_key_ids(v: dict[str, Any]) -> None:
    keys, *_, sealed = vector_parts(v)
    assert key_ids_of(sealed) == [key_id for key_id, _ in keys]


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_text_form(v: dict[str, Any]) -> None:
    *_, sealed = vector_parts(v)
    assert v["sealed_text"] == TEXT_PREFIX + base64.urlsafe_b64encode(sealed).decode()
    assert v["sealed_text"].startswith("gr1.")


@pytest.mark.parametrize("v", VECTORS, ids=VECTOR_IDS)
def test_vector_matches_the_documented_layout(v: dict[str, Any]) -> None:
    """An independent reading of the record, following docs/envelope.md field by field."""
    keys, ctx, plaintext, salt, nonce, sealed = vector_parts(v)
    n = len(keys)
    assert sealed[0] == 1  # version
    assert sealed[1] == 1  # suite: AES-256-GCM, HKDF-SHA256
    assert sealed[2] == n
    ids = [sealed[3 + i * 8 : 11 + i * 8] for i in range(n)]
    assert ids == [key_id for key_id, _ in keys]
    off = 3 + 8 * n
    assert sealed[off : off + 32] == salt
    commitment = sealed[off + 32 : off + 64]
    assert sealed[off + 64 : off + 76] == nonce
    assert len(sealed) == off + 76 + len(plaintext) + 16

    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=b"guardrail/v1" + bytes([1, 1])).derive(
        b"".join(key for _, key in keys)
    )
    k_enc, k_commit = okm[:32], okm[32:]
    assert commitment == k_commit
    canonical = json.dumps(
        {f: getattr(ctx, f) for f in CONTEXT_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    aad = sealed[: off + 64] + canonical
    assert AESGCM(k_enc).decrypt(nonce, sealed[off + 76 :], aad) == plaintext


def test_canonical_context_bytes() -> None:
    ctx = Context(store="s", namespace="ns", key="k#1", tenant="tä")
    assert ctx.canonical() == '{"key":"k#1","namespace":"ns","store":"s","tenant":"tä"}'.encode()


# --------------------------------------------------------------------------- round trips

CTX = Context(store="chroma", namespace="patients", key="note-17#2", tenant="st-mary")
SECRET = b"SECRET-PLAINTEXT Megan Murphy 078-05-1120"


@pytest.fixture
def source() -> DictKeySource:
    return DictKeySource()


@pytest.fixture
def sealer(source: DictKeySource) -> Sealer:
    return Sealer(source)


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=2048),
    fields=st.tuples(st.text(), st.text(), st.text(), st.text()),
    subjects=st.lists(st.text(), min_size=1, max_size=4, unique=True),
)
def test_round_trip(plaintext: bytes, fields: tuple[str, str, str, str], subjects: list[str]) -> None:
    source = DictKeySource()
    sealer = Sealer(source)
    ctx = Context(*fields)
    blob = sealer.seal(plaintext, context=ctx, subjects=subjects)
    assert sealer.open(blob, context=ctx) == plaintext
    assert len(blob) == header_len(1 + len(subjects)) + NONCE_LEN + len(plaintext) + TAG_LEN
    assert key_ids_of(blob) == [key_id for key_id, _ in source.encryption_keys(ctx.tenant, subjects)]
    assert sealer.open_text(sealer.seal_text(plaintext, context=ctx, subjects=subjects), context=ctx) == (
        plaintext
    )
    # a fresh salt and nonce every time: sealing twice never gives the same bytes
    assert sealer.seal(plaintext, context=ctx, subjects=subjects) != blob


def test_seal_text_round_trip_and_prefix(sealer: Sealer) -> None:
    text = sealer.seal_text(SECRET, context=CTX, subjects=["alice"])
    assert text.startswith("gr1.")
    assert TEXT_PREFIX == "gr1."
    assert text.isascii()
    assert "+" not in text
    assert "/" not in text  # base64url
    assert sealer.open_text(text, context=CTX) == SECRET
    assert sealer.open(base64.urlsafe_b64decode(text[4:]), context=CTX) == SECRET


# --------------------------------------------------------------------------- opaque failures


def assert_opaque(exc: BaseException, record: str = CTX.key, *, kind: type = DecryptionError) -> None:
    """One opaque error: the exact class, naming the record, never the plaintext or the cause."""
    assert type(exc) is kind
    assert isinstance(exc, GuardrailError)
    assert exc.record == record  # type: ignore[attr-defined]
    assert repr(record) in str(exc)
    for text in (str(exc), repr(exc)):
        assert SECRET.decode() not in text
        assert "Megan" not in text
        assert SECRET.hex() not in text
    # raised "from None" (or fresh): no chained InvalidTag/KeyError reaches a traceback
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


def open_fails(sealer: Sealer, blob: bytes, ctx: Context = CTX) -> DecryptionError:
    with pytest.raises(DecryptionError) as info:
        sealer.open(blob, context=ctx)
    assert_opaque(info.value, ctx.key)
    return info.value


def test_wrong_key(sealer: Sealer, source: DictKeySource) -> None:
    blob = sealer.seal(SECRET, context=CTX, subjects=["alice"])
    impostor = DictKeySource({key_id: os.urandom(32) for key_id in source.keys})
    open_fails(Sealer(impostor), blob)


SMALL_SOURCE = DictKeySource({b"\x11" * 8: hashlib.sha256(b"small").digest()})
SMALL_RECORD = _seal_with(
    SECRET, [(b"\x11" * 8, SMALL_SOURCE.keys[b"\x11" * 8])], CTX, salt=b"\x22" * 32, nonce=b"\x33" * 12
)


@pytest.mark.parametrize("pos", range(len(SMALL_RECORD)))
def test_every_flipped_byte_fails(pos: int) -> None:
    sealer = Sealer(SMALL_SOURCE)
    assert sealer.open(SMALL_RECORD, context=CTX) == SECRET
    for mask in (0x01, 0x80, 0xFF):
        tampered = bytearray(SMALL_RECORD)
        tampered[pos] ^= mask
        open_fails(sealer, bytes(tampered))


def test_every_flipped_byte_of_a_multi_key_record_fails(sealer: Sealer) -> None:
    blob = sealer.seal(b"short", context=CTX, subjects=["alice", "bob"])
    for pos in range(len(blob)):
        tampered = bytearray(blob)
        tampered[pos] ^= 0x01
        open_fails(sealer, bytes(tampered))


@pytest.mark.parametrize(
    "cut", [0, 1, 2, 3, 11, header_len(1), header_len(1) + NONCE_LEN, -TAG_LEN, -1], ids=repr
)
def test_truncated_record_fails(cut: int) -> None:
    open_fails(Sealer(SMALL_SOURCE), SMALL_RECORD[:cut])


@pytest.mark.parametrize("extra", [b"\x00", b"\xff", os.urandom(16)], ids=["zero", "ff", "block"])
def test_appended_bytes_fail(extra: bytes) -> None:
    open_fails(Sealer(SMALL_SOURCE), SMALL_RECORD + extra)


@pytest.mark.parametrize("field", CONTEXT_FIELDS)
@pytest.mark.parametrize("change", ["append", "case", "empty"])
def test_wrong_context_fails(sealer: Sealer, field: str, change: str) -> None:
    blob = sealer.seal(SECRET, context=CTX)
    value = getattr(CTX, field)
    new = {"append": value + "x", "case": value.upper(), "empty": ""}[change]
    wrong = dataclasses.replace(CTX, **{field: new})
    open_fails(sealer, blob, wrong)
    assert sealer.open(blob, context=CTX) == SECRET


def test_context_fields_are_not_interchangeable(sealer: Sealer) -> None:
    ctx = Context(store="ab", namespace="c", key="k", tenant="t")
    blob = sealer.seal(SECRET, context=ctx)
    open_fails(sealer, blob, Context(store="a", namespace="bc", key="k", tenant="t"))
    open_fails(sealer, blob, Context(store="c", namespace="ab", key="k", tenant="t"))


def test_record_copied_to_another_place_fails(sealer: Sealer) -> None:
    blob = sealer.seal(SECRET, context=CTX)
    other = dataclasses.replace(CTX, key="note-18#0")
    error = open_fails(sealer, blob, other)
    assert error.record == "note-18#0"  # names the record it was asked to open


def test_unknown_key_id(sealer: Sealer) -> None:
    blob = sealer.seal(SECRET, context=CTX)
    open_fails(Sealer(DictKeySource()), blob)
    relabelled = blob[:3] + os.urandom(KEY_ID_LEN) + blob[3 + KEY_ID_LEN :]
    open_fails(sealer, relabelled)


@pytest.mark.parametrize("version", [0, 3, 0x80, 0xFF])
def test_unknown_version_byte(version: int) -> None:
    blob = bytes([version]) + SMALL_RECORD[1:]
    open_fails(Sealer(SMALL_SOURCE), blob)
    with pytest.raises(ValueError, match="known version"):
        key_ids_of(blob)


@pytest.mark.parametrize("suite", [0, 2, 0xFF])
def test_unknown_suite_byte(suite: int) -> None:
    blob = SMALL_RECORD[:1] + bytes([suite]) + SMALL_RECORD[2:]
    open_fails(Sealer(SMALL_SOURCE), blob)
    with pytest.raises(ValueError, match="known version"):
        key_ids_of(blob)


def test_commitment_swapped_from_another_record(sealer: Sealer) -> None:
    first = sealer.seal(SECRET, context=CTX)
    second = sealer.seal(SECRET, context=CTX)
    assert key_ids_of(first) == key_ids_of(second)  # same key, different salt
    where = commitment_slice(1)
    assert first[where] != second[where]
    open_fails(sealer, first[: where.start] + second[where] + first[where.stop :])


def test_commitment_is_checked_even_when_the_gcm_tag_is_valid() -> None:
    """A record whose AES-GCM part authenticates but whose commitment is wrong must not open.

    Built by hand: the right encryption key, a bogus commitment in the header, and the tag computed
    over that bogus header; only the explicit commitment check can reject it.
    """
    key_id, key = b"\x11" * 8, SMALL_SOURCE.keys[b"\x11" * 8]
    salt, nonce = os.urandom(32), os.urandom(12)
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=b"guardrail/v1\x01\x01").derive(key)
    k_enc, k_commit = okm[:32], okm[32:]
    good_header = struct.pack("BBB", 1, 1, 1) + key_id + salt + k_commit
    sealer = Sealer(SMALL_SOURCE)
    good = good_header + nonce + AESGCM(k_enc).encrypt(nonce, SECRET, good_header + CTX.canonical())
    assert sealer.open(good, context=CTX) == SECRET  # the hand-built record is right...
    bad_header = struct.pack("BBB", 1, 1, 1) + key_id + salt + bytes(32)
    bad = bad_header + nonce + AESGCM(k_enc).encrypt(nonce, SECRET, bad_header + CTX.canonical())
    open_fails(sealer, bad)  # ...and only its commitment differs


def test_keys_reordered_or_relabelled_cannot_open(sealer: Sealer, source: DictKeySource) -> None:
    blob = sealer.seal(SECRET, context=CTX, subjects=["alice"])
    a, b = key_ids_of(blob)
    assert sealer.open(blob, context=CTX) == SECRET
    ids_at = slice(3, 3 + 2 * KEY_ID_LEN)
    # reordered: B then A
    open_fails(sealer, blob[:3] + b + a + blob[ids_at.stop :])
    # relabelled: B replaced by another known key C
    c = source.encryption_keys(CTX.tenant, ["bob"])[1][0]
    open_fails(sealer, blob[:3] + a + c + blob[ids_at.stop :])
    # relabelled: A twice
    open_fails(sealer, blob[:3] + a + a + blob[ids_at.stop :])
    # one key dropped (n = 1, B's id removed)
    open_fails(sealer, bytes([1, 1, 1]) + a + blob[ids_at.stop :])


def test_record_erased_when_a_key_was_destroyed(sealer: Sealer, source: DictKeySource) -> None:
    about_alice = sealer.seal(SECRET, context=CTX, subjects=["alice"])
    tenant_only = sealer.seal(SECRET, context=CTX)
    alice = key_ids_of(about_alice)[1]
    source.destroyed.add(alice)
    with pytest.raises(RecordErased) as info:
        sealer.open(about_alice, context=CTX)
    assert_opaque(info.value, kind=RecordErased)
    assert isinstance(info.value, DecryptionError)
    assert "erased" in str(info.value)
    assert sealer.open(tenant_only, context=CTX) == SECRET
    # the tenant key destroyed: every record of the tenant is erased
    source.destroyed.add(key_ids_of(tenant_only)[0])
    with pytest.raises(RecordErased):
        sealer.open(tenant_only, context=CTX)
    with pytest.raises(RecordErased):
        sealer.open_text(TEXT_PREFIX + base64.urlsafe_b64encode(tenant_only).decode(), context=CTX)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gr1.",
        "gr1.!!!!",
        "gr1.abc",
        "gr1.é",
        "gr1.AQEB",
        "gr2." + base64.urlsafe_b64encode(SMALL_RECORD).decode(),
        "GR1." + base64.urlsafe_b64encode(SMALL_RECORD).decode(),
        base64.urlsafe_b64encode(SMALL_RECORD).decode(),
        "gr1." + base64.urlsafe_b64encode(os.urandom(120)).decode(),
        "gr1." + base64.urlsafe_b64encode(SMALL_RECORD[:-1]).decode(),
        "gr1." + base64.b16encode(SMALL_RECORD).decode(),
        SECRET.decode(),
        b"gr1." + base64.urlsafe_b64encode(SMALL_RECORD),
        None,
    ],
    ids=lambda t: repr(t)[:24],
)
def test_garbage_text_fails(text: Any) -> None:
    sealer = Sealer(SMALL_SOURCE)
    assert sealer.open_text("gr1." + base64.urlsafe_b64encode(SMALL_RECORD).decode(), context=CTX) == SECRET
    with pytest.raises(DecryptionError) as info:
        sealer.open_text(text, context=CTX)
    assert_opaque(info.value)


# --------------------------------------------------------------------------- key_ids_of


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x01\x01",
        bytes([1, 1, 0]) + bytes(200),  # n = 0
        bytes([1, 1, 65]) + bytes(65 * 8 + 200),  # n above the maximum of 64
        bytes([1, 1, 2]) + bytes(2 * 8 + 32 + 32 + 12 + 15),  # one byte short of the tag
    ],
    ids=["empty", "two-bytes", "no-keys", "too-many-keys", "short"],
)
def test_key_ids_of_rejects_non_records(blob: bytes) -> None:
    with pytest.raises(ValueError, match="sealed record"):
        key_ids_of(blob)


def test_key_ids_of_reads_without_keys(sealer: Sealer) -> None:
    blob = sealer.seal(SECRET, context=CTX, subjects=["bob", "alice", "bob"])
    ids = key_ids_of(blob)
    assert len(ids) == 3
    assert all(len(i) == KEY_ID_LEN for i in ids)
    assert key_ids_of(bytes([1, 1, 1]) + b"\xaa" * 8 + bytes(32 + 32 + 12 + 16)) == [b"\xaa" * 8]


@pytest.mark.parametrize(
    "keys",
    [[], [(b"\x01" * 8, bytes(32))] * 65, [(b"\x01" * 7, bytes(32))], [(b"\x01" * 8, bytes(16))]],
    ids=["none", "65", "short-id", "short-key"],
)
def test_seal_with_rejects_bad_keys(keys: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ValueError, match="keys"):
        _seal_with(b"x", keys, CTX, salt=bytes(32), nonce=bytes(12))


# --------------------------------------------------------------------------- pickling


def test_sealer_refuses_to_pickle(sealer: Sealer) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(sealer)
    assert repr(sealer) == "Sealer()"


@pytest.mark.parametrize("kind", [DecryptionError, RecordErased])
def test_errors_pickle_with_their_record(kind: type[DecryptionError]) -> None:
    error = kind("doc-9#3")
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    assert type(clone) is kind
    assert clone.record == "doc-9#3"
    assert str(clone) == str(error)


def test_raised_error_pickles(sealer: Sealer) -> None:
    blob = sealer.seal(SECRET, context=CTX)
    error = open_fails(sealer, blob[:-1])
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    assert type(clone) is DecryptionError
    assert clone.record == CTX.key
    assert str(clone) == str(error)
