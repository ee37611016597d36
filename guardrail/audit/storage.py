"""The on-disk layout of an audit log directory, shared by the writer and the verifier.

::

    <directory>/
      audit.pub               the checkpoint verifier key, <name>+<key id>+<base64 key> (written once)
      checkpoints             signed checkpoint notes, appended (copy them off the host)
      segment-000001.jsonl    records 0 .. segment_records-1, one stored line each
      segment-000002.jsonl    ...
      state.json              the writer's cached tail state (a cache: never trusted by verify)
      lock                    the inter-process lock file (flock)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from guardrail.audit.errors import AuditIntegrityError
from guardrail.audit.schema import SCHEMA, split_integrity

__all__ = [
    "CHECKPOINTS",
    "LOCK",
    "PUBLIC_KEY",
    "STATE",
    "Snapshot",
    "check_line",
    "fsync_directory",
    "iter_lines",
    "list_segments",
    "read_prefix",
    "segment_name",
    "snapshot",
]

PUBLIC_KEY: Final = "audit.pub"
CHECKPOINTS: Final = "checkpoints"
STATE: Final = "state.json"
LOCK: Final = "lock"
_SEGMENT = re.compile(r"segment-(\d{6,})\.jsonl")
_LEAF_SEED = hashlib.sha256(b"\x00{")


def segment_name(number: int) -> str:
    """``segment-000001.jsonl`` for 1 (six digits, more when needed)."""
    return f"segment-{number:06d}.jsonl"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files of a log directory, by number."""
    found = []
    for entry in os.scandir(directory):
        m = _SEGMENT.fullmatch(entry.name)
        if m:
            found.append((int(m.group(1)), Path(entry.path)))
    return sorted(found)


def fsync_directory(directory: Path) -> None:
    """Make a new directory entry durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_line(line: bytes, expected_seq: int) -> tuple[bytes, bytes | None, bytes | None]:
    """Check one stored line written by a writer: its format, its leaf and its seq.

    Returns the computed leaf hash and the stored MAC and seal (None when absent). The authenticators are
    checked by the caller, which holds the keys (:mod:`guardrail.audit.auth`).

    Raises:
        AuditIntegrityError: malformed, edited (leaf mismatch) or out of sequence.
    """
    parts = split_integrity(line)
    if parts is None:
        raise AuditIntegrityError(expected_seq, "malformed", "not a guardrail.audit/1 stored line")
    leaf_hex, mac, seal, start = parts
    h = _LEAF_SEED.copy()
    h.update(line[start:])
    if h.hexdigest().encode("ascii") != leaf_hex:
        raise AuditIntegrityError(expected_seq, "edited", "the record does not match its leaf hash")
    try:
        record = json.loads(line)
    except ValueError:
        raise AuditIntegrityError(expected_seq, "malformed", "not valid JSON") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise AuditIntegrityError(expected_seq, "malformed", f"not a {SCHEMA} record")
    seq = record.get("seq")
    if type(seq) is not int or seq != expected_seq:
        raise AuditIntegrityError(expected_seq, "malformed", f"seq {seq!r} where {expected_seq} was expected")
    return h.digest(), mac, seal


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The files of a log and their sizes at one instant between two writes (see :func:`snapshot`)."""

    segments: tuple[tuple[Path, int], ...]
    checkpoints_size: int


def snapshot(directory: Path) -> Snapshot:
    """Segment and checkpoint file sizes, taken under a shared lock so no batch is half-written.

    Writers append only, under an exclusive lock, so reading up to these sizes sees whole batches and
    only checkpoints of records that are there. A copy of a log without its lock file is read as is.
    """
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        fd = -1
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_SH)
        segments = tuple((path, path.stat().st_size) for _, path in list_segments(directory))
        try:
            checkpoints = (directory / CHECKPOINTS).stat().st_size
        except FileNotFoundError:
            checkpoints = 0
    finally:
        if fd >= 0:
            os.close(fd)  # also releases the lock
    return Snapshot(segments, checkpoints)


def read_prefix(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file (less if it is shorter)."""
    with path.open("rb") as f:
        return f.read(size)


def iter_lines(path: Path, *, limit: int | None = None, chunk: int = 1 << 24) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line without its newline) of each complete line in the first ``limit`` bytes; a torn
    tail (bytes after the last newline) is not yielded."""
    remaining = limit if limit is not None else -1
    with path.open("rb") as f:
        offset = 0
        rest = b""
        while remaining:
            data = f.read(chunk if remaining < 0 else min(chunk, remaining))
            if not data:
                break
            if remaining > 0:
                remaining -= len(data)
            data = rest + data
            end = data.rfind(b"\n") + 1
            rest = data[end:]
            pos = offset
            for line in data[:end].split(b"\n")[:-1]:
                yield pos, line
                pos += len(line) + 1
            offset = pos
