"""Record authenticators: a keyed MAC on every record and an Ed25519 seal on every written batch.

Both are computed over what a record *is* (its log's origin, its leaf hash, the tree head after it),
never over file names or offsets, so a database backend carries the same authenticators over unchanged.

* **MAC** (every record): ``HMAC-SHA256(record_key, "guardrail.audit.record-mac/1" 0x00 origin 0x00 leaf
  [stored seal])`` truncated to 128 bits, 32 hex digits (it covers the seal too, so with the keyring any
  changed byte of a line is found). ``record_key`` is ``Keyring.hmac_key("audit-record")`` (its own
  purpose: never the checkpoint seed). Only a keyring holder can compute it; the writer checks it on every
  record it did not write itself before it appends or signs anything after it.
* **Seal** (the last record of every group-commit batch): the Ed25519 signature, by the checkpoint key, of
  the tree head after that record::

      guardrail.audit.seal/1\\n<origin>\\n<size>\\n<base64 root>\\n<checkpointed>\\n

  where ``checkpointed`` is the size of the largest checkpoint the writer had seen in ``checkpoints`` (so
  a verifier notices checkpoints removed from that file). A seal is a signed tree head: with the public
  key alone, a verifier authenticates every record up to the last seal that verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guardrail.errors import ConfigError

__all__ = [
    "MAC_HEX",
    "RECORD_KEY_PURPOSE",
    "SIGNING_KEY_PURPOSE",
    "RecordMac",
    "Seal",
    "Sealer",
    "seal_text",
    "state_mac",
]

RECORD_KEY_PURPOSE: Final = "audit-record"
SIGNING_KEY_PURPOSE: Final = "audit-checkpoint"
MAC_HEX: Final = 32  # 128-bit tag
_MAC_LABEL: Final = b"guardrail.audit.record-mac/1\x00"
_SEAL_LABEL: Final = "guardrail.audit.seal/1"
_SEAL = re.compile(r"(0|[1-9][0-9]{0,17})\.([A-Za-z0-9+/]{86}==)")


class RecordMac:
    """The record MAC of one log: ``mac(leaf)`` is 32 hex digits (precomputed HMAC pads: ~2 us)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, record_key: bytes, origin: str) -> None:
        if not isinstance(record_key, bytes) or len(record_key) != 32:
            raise ConfigError("record_key must be 32 bytes (Keyring.hmac_key('audit-record'))")
        block = record_key.ljust(64, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._inner.update(_MAC_LABEL + origin.encode("utf-8") + b"\x00")
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def mac(self, leaf: bytes, seal: bytes = b"") -> bytes:
        """The 32 ASCII hex digits of the tag of a 32-byte leaf hash (and the record's stored seal)."""
        inner = self._inner.copy()
        inner.update(leaf + seal)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()[:MAC_HEX].encode("ascii")

    def check(self, leaf: bytes, tag: bytes, seal: bytes | None = None) -> bool:
        """Whether ``tag`` (hex, as stored) is this log's MAC of ``leaf`` and ``seal`` (constant time)."""
        return hmac.compare_digest(self.mac(leaf, seal or b""), tag)

    def __repr__(self) -> str:
        return "RecordMac(<key>)"


def seal_text(origin: str, size: int, root: bytes, checkpointed: int) -> bytes:
    """The bytes a seal signs: the tree head after the sealed record, and the largest checkpoint seen."""
    encoded = base64.b64encode(root).decode("ascii")
    return f"{_SEAL_LABEL}\n{origin}\n{size}\n{encoded}\n{checkpointed}\n".encode()


@dataclass(frozen=True, slots=True)
class Seal:
    """A parsed seal: ``<checkpointed>.<base64 signature>`` as stored in ``integrity.seal``."""

    checkpointed: int
    signature: bytes

    @classmethod
    def parse(cls, text: bytes) -> Seal | None:
        """The seal, or None when malformed."""
        m = _SEAL.fullmatch(text.decode("ascii", "replace"))
        if m is None:
            return None
        return cls(int(m.group(1)), base64.b64decode(m.group(2)))

    def encode(self) -> str:
        """The stored form."""
        return f"{self.checkpointed}.{base64.b64encode(self.signature).decode('ascii')}"


class Sealer:
    """Signs seals with the checkpoint key (the private key object is built once)."""

    __slots__ = ("_origin", "_private")

    def __init__(self, seed: bytes, origin: str) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self._origin = origin

    def seal(self, size: int, root: bytes, checkpointed: int) -> str:
        """The stored seal of the tree head ``(size, root)``."""
        signature = self._private.sign(seal_text(self._origin, size, root, checkpointed))
        return Seal(checkpointed, signature).encode()

    def __repr__(self) -> str:
        return "Sealer(<key>)"


def state_mac(record_key: bytes, data: Mapping[str, Any]) -> str:
    """The MAC of a log's ``state.json`` (every field but ``mac``), under the record key: the writer's
    record of how many records it wrote (a verifier with the keyring finds a log cut shorter than that)."""
    fields = {k: v for k, v in data.items() if k != "mac"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hmac.digest(record_key, b"guardrail.audit.state/2\x00" + text, "sha256").hex()
