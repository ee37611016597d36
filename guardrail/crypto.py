"""Envelope encryption: seal and open records bound to their place.

A sealed record (version 1, or 2 with a binding) is::

    version (1) | suite (1) | n (1) | key ids (8 bytes each, n of them) | salt (32) | commitment (32)
    | nonce (12) | AES-256-GCM ciphertext and tag (16)

    k_enc || k_commit = HKDF-SHA256(ikm = DEK_1 || ... || DEK_n, salt,
                                    info = "guardrail/v1" || version || suite)
    commitment = k_commit                    (checked in constant time before decrypting)
    AAD = header up to the nonce || canonical context {store, namespace, key, tenant}      (v1)
    AAD = header up to the nonce || canonical context {binding, store, namespace, key, tenant}  (v2)

Version 2 adds the *binding*: the store instance and collection a record was written to
(``"ChromaVectorStore:kb-restricted"``, ``"kb:docstore/data"``), so a record copied into another
collection of the same kind of store does not open. A context with a binding seals version 2; one
without seals version 1. Version 1 records keep opening (they say, by their version byte, that they
carry no binding); ``guardrail keys reencrypt`` re-seals them as version 2. The version byte is in the
AAD and in the HKDF info, so a record cannot be relabelled from one version to the other.

A fresh salt gives every record its own key (no nonce-count limit); the commitment stops a ciphertext
from opening under two keys; the context binds it to its place, so a ciphertext copied onto another
record, namespace, store or tenant does not open. Key ids are random and opaque. The text form is
``"gr1." + base64url``. ``docs/envelope.md`` documents the format byte by byte; ``tests/crypto``
holds frozen vectors.

Every failure to open raises :class:`DecryptionError` naming the record, never its content; a record
whose key was deliberately destroyed raises its subclass :class:`RecordErased`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from guardrail.errors import GuardrailError

# json's own string encoder (the C one when available): exactly the escaping json.dumps applies
_encode_str = json.encoder.encode_basestring

__all__ = [
    "KEY_ID_LEN",
    "TEXT_PREFIX",
    "VERSION_BOUND",
    "Context",
    "DecryptionError",
    "KeySource",
    "RecordErased",
    "Sealer",
    "envelope_version",
    "key_ids_of",
]

VERSION = 1  # unbound: the place is {store, namespace, key, tenant}
VERSION_BOUND = 2  # bound: the place also names the store instance and collection (Context.binding)
_VERSIONS = (VERSION, VERSION_BOUND)
SUITE_AES256GCM_HKDF_SHA256 = 1
KEY_ID_LEN = 8
_SALT_LEN = 32
_COMMIT_LEN = 32
_NONCE_LEN = 12
_TAG_LEN = 16
_MAX_KEYS = 64
TEXT_PREFIX = "gr1."
_INFO = b"guardrail/v1"


class DecryptionError(GuardrailError):
    """A sealed record could not be opened: wrong key, tampered bytes, wrong place, unknown key id or
    unknown version. Deliberately opaque: it names the record, never the cause or the content."""

    def __init__(self, record: str) -> None:
        super().__init__(f"cannot open sealed record {record!r}")
        self.record = record

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.record,))


class RecordErased(DecryptionError):
    """The record's key was destroyed on purpose (crypto-shredding): the data is erased, not damaged."""

    def __init__(self, record: str) -> None:
        GuardrailError.__init__(self, f"sealed record {record!r} was erased (its key was destroyed)")
        self.record = record


@dataclass(frozen=True, slots=True)
class Context:
    """Where a sealed record lives. Part of the associated data: a record opens only in its place.

    ``binding`` names the store instance and collection (``"<store class>:<collection>"`` for a vector
    store, ``"<storage name>:<collection>"`` for a KV store); non-empty, it makes the record version 2.
    """

    store: str
    namespace: str
    key: str
    tenant: str
    binding: str = ""

    def canonical(self, version: int | None = None) -> bytes:
        """``json.dumps`` of the fields with sorted keys, compact separators, ensure_ascii=False: the four
        place fields for version 1, and ``binding`` first for version 2 (the default when it is set)."""
        e = _encode_str
        place = (
            f'"key":{e(self.key)},"namespace":{e(self.namespace)},'
            f'"store":{e(self.store)},"tenant":{e(self.tenant)}}}'
        )
        if version is None:
            version = VERSION_BOUND if self.binding else VERSION
        if version == VERSION:
            return ("{" + place).encode()
        if not self.binding:
            raise ValueError("a version 2 record needs a binding")
        return f'{{"binding":{e(self.binding)},{place}'.encode()


class KeySource(Protocol):
    """Where the sealer gets data keys (a :class:`~guardrail.keys.Keyring`)."""

    def encryption_keys(self, tenant: str, subjects: Sequence[str]) -> list[tuple[bytes, bytes]]:
        """``(key id, key)`` pairs to seal under: the tenant's primary DEK, then one per subject."""
        ...

    def decryption_key(self, key_id: bytes) -> bytes:
        """The key with this id. Raises ``KeyError`` if unknown, ``RecordErased`` if destroyed."""
        ...


def _derive(keys: Sequence[bytes], salt: bytes, version: int = VERSION) -> tuple[bytes, bytes]:
    # HKDF-SHA256 (RFC 5869) written out with hmac.digest: the same bytes as cryptography's HKDF,
    # without its per-call object overhead (this runs once per record)
    info = _INFO + bytes([version, SUITE_AES256GCM_HKDF_SHA256])
    prk = hmac.digest(salt, b"".join(keys), "sha256")
    t1 = hmac.digest(prk, info + b"\x01", "sha256")
    t2 = hmac.digest(prk, t1 + info + b"\x02", "sha256")
    return t1, t2


def _seal_with(
    plaintext: bytes, keys: Sequence[tuple[bytes, bytes]], context: Context, *, salt: bytes, nonce: bytes
) -> bytes:
    if not 1 <= len(keys) <= _MAX_KEYS:
        raise ValueError(f"a record is sealed under 1 to {_MAX_KEYS} keys")
    for key_id, key in keys:
        if len(key_id) != KEY_ID_LEN or len(key) != 32:
            raise ValueError("key ids are 8 bytes and keys 32 bytes")
    version = VERSION_BOUND if context.binding else VERSION
    k_enc, k_commit = _derive([k for _, k in keys], salt, version)
    header = (
        struct.pack("BBB", version, SUITE_AES256GCM_HKDF_SHA256, len(keys))
        + b"".join(i for i, _ in keys)
        + salt
        + k_commit
    )
    ciphertext = AESGCM(k_enc).encrypt(nonce, plaintext, header + context.canonical(version))
    return header + nonce + ciphertext


def envelope_version(blob: bytes) -> int:
    """A sealed record's format version (1: unbound, 2: bound to its collection), read without keys.

    Raises:
        ValueError: not a sealed record of a known version.
    """
    key_ids_of(blob)
    return blob[0]


def key_ids_of(blob: bytes) -> list[bytes]:
    """The key ids in a sealed record's header (read without decrypting, e.g. to count re-encryption).

    Raises:
        ValueError: not a sealed record of a known version.
    """
    if len(blob) < 3 or blob[0] not in _VERSIONS or blob[1] != SUITE_AES256GCM_HKDF_SHA256:
        raise ValueError("not a sealed record of a known version")
    n = blob[2]
    if (
        not 1 <= n <= _MAX_KEYS
        or len(blob) < 3 + n * KEY_ID_LEN + _SALT_LEN + _COMMIT_LEN + _NONCE_LEN + _TAG_LEN
    ):
        raise ValueError("truncated sealed record")
    return [blob[3 + i * KEY_ID_LEN : 3 + (i + 1) * KEY_ID_LEN] for i in range(n)]


class Sealer:
    """Seals and opens records with keys from a :class:`KeySource`.

    Args:
        keys: the keyring.
    """

    def __init__(self, keys: KeySource) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return "Sealer()"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Sealer holds key material and cannot be pickled")

    def seal(self, plaintext: bytes, *, context: Context, subjects: Sequence[str] = ()) -> bytes:
        """Seal ``plaintext`` for ``context``, under the tenant key and one key per data subject."""
        keys = self._keys.encryption_keys(context.tenant, subjects)
        rand = os.urandom(_SALT_LEN + _NONCE_LEN)
        return _seal_with(plaintext, keys, context, salt=rand[:_SALT_LEN], nonce=rand[_SALT_LEN:])

    def open(self, blob: bytes, *, context: Context) -> bytes:
        """Open a sealed record in its place.

        A version 2 record opens only in a context with its binding; a version 1 record (written before
        bindings) opens in any context with its other four fields, binding or not (read compatibility).

        Raises:
            RecordErased: a key it was sealed under was destroyed on purpose.
            DecryptionError: anything else went wrong (opaque).
        """
        try:
            ids = key_ids_of(blob)
            keys = [self._keys.decryption_key(i) for i in ids]  # a destroyed key: erased, whatever the place
            version = blob[0]
            aad_context = context.canonical(version)  # a v2 record with no binding given: ValueError
            off = 3 + len(ids) * KEY_ID_LEN
            salt = blob[off : off + _SALT_LEN]
            commitment = blob[off + _SALT_LEN : off + _SALT_LEN + _COMMIT_LEN]
            nonce_at = off + _SALT_LEN + _COMMIT_LEN
            header, nonce, ciphertext = (
                blob[:nonce_at],
                blob[nonce_at : nonce_at + _NONCE_LEN],
                blob[nonce_at + _NONCE_LEN :],
            )
            k_enc, k_commit = _derive(keys, salt, version)
            if not hmac.compare_digest(k_commit, commitment):
                raise InvalidTag
            return AESGCM(k_enc).decrypt(nonce, ciphertext, header + aad_context)
        except RecordErased:
            raise RecordErased(context.key) from None
        except (InvalidTag, ValueError, KeyError, TypeError, IndexError):
            raise DecryptionError(context.key) from None

    def seal_text(self, plaintext: bytes, *, context: Context, subjects: Sequence[str] = ()) -> str:
        """:meth:`seal`, as ``"gr1." + base64url`` text (for JSON stores and metadata)."""
        return (
            TEXT_PREFIX
            + base64.urlsafe_b64encode(self.seal(plaintext, context=context, subjects=subjects)).decode()
        )

    def open_text(self, token: str, *, context: Context) -> bytes:
        """:meth:`open` for the text form."""
        return self.open(decode_text(token, record=context.key), context=context)


def decode_text(token: str, *, record: str) -> bytes:
    """The bytes of a ``gr1.`` text envelope.

    Raises:
        DecryptionError: not a text envelope.
    """
    if not isinstance(token, str) or not token.startswith(TEXT_PREFIX):
        raise DecryptionError(record)
    try:
        return base64.b64decode(token[len(TEXT_PREFIX) :].encode(), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError(record) from None
