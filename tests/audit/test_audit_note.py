"""C2SP signed notes and checkpoints: the Go sumdb/note reference vector, strict parsing, round trips."""

from __future__ import annotations

import base64

import pytest

from guardrail.audit.note import (
    Checkpoint,
    NoteError,
    VerifierKey,
    format_checkpoint,
    key_id,
    parse_checkpoint,
    public_key_of,
    sign_note,
    split_notes,
    verify_note,
)

# golang.org/x/mod/sumdb/note (note_test.go and the package documentation's example)
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIGNATURE = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = f"{GO_TEXT}\n— PeterNeumann {GO_SIGNATURE}\n"


def go_seed() -> bytes:
    encoded = GO_SKEY.split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[0] == 1
    return raw[1:]


class TestGoVector:
    """Notes signed here are byte-identical to Go's, and Go's notes verify here."""

    def test_verifier_key(self) -> None:
        key = VerifierKey.parse(GO_VKEY)
        assert key.name == "PeterNeumann"
        assert key.key_id.hex() == "c74f20a3"
        assert key.encode() == GO_VKEY
        assert public_key_of(go_seed()) == key.public_key
        assert key_id("PeterNeumann", key.public_key) == bytes.fromhex("c74f20a3")

    def test_sign_reproduces_the_published_note(self) -> None:
        assert sign_note(GO_TEXT, "PeterNeumann", go_seed()) == GO_NOTE  # Ed25519 is deterministic

    def test_verify(self) -> None:
        key = VerifierKey.parse(GO_VKEY)
        assert verify_note(GO_NOTE, key) == GO_TEXT
        assert verify_note(GO_NOTE.replace("cryptography", "cryptographY"), key) is None

    def test_other_keys_are_ignored(self) -> None:
        other = VerifierKey("PeterNeumann", public_key_of(bytes(32)))
        assert verify_note(GO_NOTE, other) is None


class TestVerifierKeyParsing:
    """Mangled verifier keys are refused (as Go's TestNewVerifier does)."""

    @pytest.mark.parametrize(
        "text",
        [
            GO_VKEY[:-1],
            GO_VKEY.replace("c74f20a3", "c74f20a4"),
            GO_VKEY.replace("c74f20a3", "C74F20A3"),
            GO_VKEY.replace("PeterNeumann", "PeterNeumanm"),
            GO_VKEY.replace("+ARpc", "+AhpC"),
            "PeterNeumann+c74f20a3",
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ],
        ids=["truncated", "wrong-id", "upper-hex", "wrong-name", "wrong-type", "no-key", "space-in-name"],
    )
    def test_mangled(self, text: str) -> None:
        with pytest.raises(NoteError):
            VerifierKey.parse(text)

    def test_every_truncation_is_refused(self) -> None:
        for i in range(1, len(GO_VKEY)):
            with pytest.raises(NoteError):
                VerifierKey.parse(GO_VKEY[:i])


class TestCheckpoints:
    """tlog-checkpoint bodies: three lines, canonical decimal size, strict base64 root."""

    def test_round_trip(self) -> None:
        cp = Checkpoint("example.com/log", 42, bytes(range(32)))
        text = cp.text()
        assert text == "example.com/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
        assert parse_checkpoint(text) == cp

    @pytest.mark.parametrize(
        "text",
        [
            "example.com/log\n042\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
            "example.com/log\n-1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
            "example.com/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n",
            "example.com/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n",
            "example.com/log\n42\n",
            "example.com log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        ],
        ids=["leading-zero", "negative", "non-canonical-base64", "short-root", "no-root", "space-origin"],
    )
    def test_malformed(self, text: str) -> None:
        with pytest.raises(NoteError):
            parse_checkpoint(text)

    def test_split_concatenated_notes(self) -> None:
        seed = bytes(32)
        notes = [sign_note(format_checkpoint("o", n, bytes(32)), "o", seed) for n in (1, 2, 3)]
        assert split_notes("".join(notes)) == notes
        assert split_notes("") == []
        with pytest.raises(NoteError, match="incomplete"):
            split_notes("".join(notes)[:-1])

    def test_sign_refuses_bad_text(self) -> None:
        with pytest.raises(NoteError):
            sign_note("no newline", "o", bytes(32))
        with pytest.raises(NoteError):
            sign_note("a\n\nb\n", "o", bytes(32))
        with pytest.raises(NoteError):
            sign_note("a\n", "bad name", bytes(32))
