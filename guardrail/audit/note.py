"""C2SP signed notes with Ed25519 keys, and tlog checkpoints carried in them.

A signed note (https://c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line, then one
signature line per signer::

    <text>\\n
    \\n
    — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>\\n

The key id is the first four bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)`` (0x01: the
Ed25519 signature type) and a verifier key is written ``<name>+<hex key id>+<base64(0x01 || public key)>``.
A checkpoint (https://c2sp.org/tlog-checkpoint) is a note whose text is the origin line, the tree size in
decimal and the base64 root hash, each followed by a newline.

Base64 is parsed strictly (canonical padding and bits only), so no two byte strings in a checkpoint mean
the same thing: a single changed byte always changes or breaks the note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from guardrail.errors import ConfigError

__all__ = [
    "ED25519",
    "Checkpoint",
    "NoteError",
    "VerifierKey",
    "check_name",
    "format_checkpoint",
    "key_id",
    "parse_checkpoint",
    "public_key_of",
    "sign_note",
    "split_notes",
    "verify_note",
]

ED25519 = 0x01
SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, then a space
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


class NoteError(ConfigError):
    """A note, checkpoint or verifier key cannot be parsed."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid key name / origin: non-empty, no whitespace, no ``+``.

    Raises:
        NoteError: it is not.
    """
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(
            f"{name!r} is not a valid key name or origin: it must be non-empty, without spaces or '+'"
        )
    return name


def _b64decode(text: str) -> bytes:
    """Strict standard base64: rejects anything that does not re-encode to the same text."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("invalid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError("non-canonical base64")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_key_of(seed: bytes) -> bytes:
    """The raw 32-byte Ed25519 public key of a 32-byte private seed."""
    return (
        Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """An Ed25519 verifier key: a name and a raw public key (its key id follows from both)."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        check_name(self.name)
        if len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id."""
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        """The text form ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ED25519]) + self.public_key)}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse the text form (surrounding whitespace ignored).

        Raises:
            NoteError: malformed, not Ed25519, or the key id does not match the name and key.
        """
        parts = text.strip().split("+", 2)  # the base64 part may itself contain '+'
        if len(parts) != 3 or len(parts[1]) != 8:
            raise NoteError("a verifier key reads <name>+<8 hex digits>+<base64 key>")
        name, hex_id, encoded = parts
        try:
            wanted_id = bytes.fromhex(hex_id)
        except ValueError:
            raise NoteError("the verifier key id is not hex") from None
        if hex_id != hex_id.lower():
            raise NoteError("the verifier key id must be lower-case hex")
        raw = _b64decode(encoded)
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("the verifier key is not an Ed25519 key (type 0x01, 32 bytes)")
        key = cls(name, raw[1:])
        if key.key_id != wanted_id:
            raise NoteError("the verifier key id does not match its name and key")
        return key

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def sign_note(text: str, name: str, seed: bytes) -> str:
    """Sign ``text`` (which must end in a newline and contain no blank line) as ``name`` with an Ed25519 seed.

    Raises:
        NoteError: the text or name is not a valid note text or key name.
    """
    check_name(name)
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise NoteError("a note's text ends with a newline and has no blank line")
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("a note's text has no control characters")
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = private.sign(text.encode("utf-8"))
    return f"{text}\n{SIGNATURE_PREFIX}{name} {_b64(key_id(name, public) + signature)}\n"


@dataclass(frozen=True, slots=True)
class _Signature:
    name: str
    key_id: bytes
    signature: bytes


def _parse_note(note: str) -> tuple[str, list[_Signature]]:
    if not note.endswith("\n"):
        raise NoteError("a note ends with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("a note has a blank line between its text and its signatures")
    text = note[: split + 1]
    if "\n\n" in text or text.startswith("\n"):
        raise NoteError("a note's text has no blank line")
    lines = note[split + 2 : -1].split("\n")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        name, sep, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        if not sep:
            raise NoteError("a signature line reads '— <name> <base64>'")
        check_name(name)
        raw = _b64decode(encoded)
        if len(raw) < 5:
            raise NoteError("a signature is a 4-byte key id and the signature bytes")
        signatures.append(_Signature(name, raw[:4], raw[4:]))
    return text, signatures


def verify_note(note: str, key: VerifierKey) -> str | None:
    """The note's text if ``key`` signed it, else None (signatures of other keys are ignored).

    Raises:
        NoteError: the note is malformed.
    """
    text, signatures = _parse_note(note)
    wanted = key.key_id
    for sig in signatures:
        if sig.name == key.name and sig.key_id == wanted:
            # the first line for this key decides, as in Go's note.Open
            return text if key.verify(text.encode("utf-8"), sig.signature) else None
    return None


def split_notes(data: str) -> list[str]:
    """Split a file of concatenated notes (each ends with its signature lines) into notes.

    A note ends before the next line that is neither a signature line nor the blank separator line.

    Raises:
        NoteError: the data does not end with a complete note.
    """
    notes: list[str] = []
    if not data:
        return notes
    if not data.endswith("\n"):
        raise NoteError("the last note is incomplete (no final newline)")
    lines = data[:-1].split("\n")
    current: list[str] = []
    state = "text"  # text -> signatures once the blank line is passed
    for line in lines:
        if state == "signatures" and not line.startswith(SIGNATURE_PREFIX):
            notes.append("\n".join(current) + "\n")
            current, state = [], "text"
        if state == "text" and line == "":
            state = "blank"
        elif state == "blank":
            state = "signatures"
        current.append(line)
    if state != "signatures":
        raise NoteError("the last note has no signature")
    notes.append("\n".join(current) + "\n")
    return notes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog checkpoint: the log's origin, its size and the Merkle root at that size."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The checkpoint's note text."""
        return format_checkpoint(self.origin, self.size, self.root)


def format_checkpoint(origin: str, size: int, root: bytes) -> str:
    """The note text of a checkpoint: origin, decimal size and base64 root, one per line."""
    return f"{check_name(origin)}\n{size}\n{_b64(root)}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (extension lines after the root are not used and refused).

    Raises:
        NoteError: malformed.
    """
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise NoteError("a checkpoint has exactly three lines: origin, size, root hash")
    origin, size, encoded = lines[:3]
    check_name(origin)
    if not _DECIMAL.fullmatch(size):
        raise NoteError("the checkpoint size is not a canonical decimal number")
    root = _b64decode(encoded)
    if len(root) != 32:
        raise NoteError("the checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root)
