"""Shared helpers for the audit tests: a fixed key, events, and tools to tamper with a log on disk."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from guardrail.audit import AuditLog
from guardrail.audit.canonical import canonicalize

SEED = bytes(range(32))
RECORD_KEY = bytes(range(2, 34))
OTHER_SEED = bytes(range(1, 33))
ORIGIN = "test.example/guardrail.audit/1"
SEGMENT = "segment-000001.jsonl"


def event(i: int = 0, **extra: Any) -> dict[str, Any]:
    """A realistic rag.retrieval event (no content, pseudonyms only)."""
    base: dict[str, Any] = {
        "event": {"category": "rag.retrieval", "action": "R", "outcome": "success"},
        "source": {"app": "guardrail@0.1.0", "component": "guard"},
        "actor": {"ref": f"user-{i % 7}", "type": "user", "roles": ["clinician"]},
        "purpose": {"code": "TREAT", "gdpr_basis": "6(1)(c)"},
        "subjects": [f"p-{i % 5:04d}"],
        "resources": [{"type": "chunk", "id": f"n-{i}", "collection": "notes", "labels": ["phi"]}],
        "query": {"mac": hashlib.sha256(str(i).encode()).hexdigest(), "chars": 40 + i % 9},
        "retrieval": {"k": 5, "returned": 5, "denied": 0, "redacted": i % 3},
    }
    base.update(extra)
    return base


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 1, 2, 10, 0, 0, 123000, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_log(directory: Path, n: int, *, checkpoint_every: int = 10, **options: Any) -> list[str]:
    """Write ``n`` events to a new log, close it (final checkpoint), return the event ids."""
    with AuditLog(
        directory,
        signing_key=SEED,
        record_key=RECORD_KEY,
        origin=ORIGIN,
        checkpoint_every=checkpoint_every,
        **options,
    ) as log:
        return [log.append(event(i)) for i in range(n)]


def lines(directory: Path, segment: str = SEGMENT) -> list[bytes]:
    """The stored lines of a segment (with their newlines)."""
    return (directory / segment).read_bytes().splitlines(keepends=True)


def write_lines(directory: Path, new: list[bytes], segment: str = SEGMENT) -> None:
    (directory / segment).write_bytes(b"".join(new))


def forge(record: dict[str, Any], *, key: bytes | None = None, mac: str = "0" * 32) -> bytes:
    """A stored line for ``record`` with a correctly recomputed leaf (what an attacker would write): with
    ``key`` (a holder of the keyring) its real MAC, else ``mac`` (an attacker's guess), no seal."""
    from guardrail.audit.auth import RecordMac

    body = {k: v for k, v in record.items() if k != "integrity"}
    canonical = canonicalize(body)
    digest = hashlib.sha256(b"\x00" + canonical).digest()
    tag = RecordMac(key, ORIGIN).mac(digest).decode() if key is not None else mac
    prefix = b'{"integrity":{"leaf":"' + digest.hex().encode() + b'","mac":"' + tag.encode() + b'"},'
    return prefix + canonical[1:] + b"\n"


def forge_legacy(record: dict[str, Any]) -> bytes:
    """A stored line in the format before records carried MACs (leaf only)."""
    body = {k: v for k, v in record.items() if k != "integrity"}
    canonical = canonicalize(body)
    leaf = hashlib.sha256(b"\x00" + canonical).hexdigest()
    return b'{"integrity":{"leaf":"' + leaf.encode() + b'"},' + canonical[1:] + b"\n"


def record_of(line: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def checkpoint_sizes(directory: Path) -> list[int]:
    from guardrail.audit.note import parse_checkpoint, split_notes

    notes = split_notes((directory / "checkpoints").read_text("utf-8"))
    return [parse_checkpoint(n[: n.rfind("\n\n") + 1]).size for n in notes]
