"""The ``guardrail.audit/1`` record: its fields, the checks on what callers hand in, the stored line format.

A stored line is the record's RFC 8785 canonical form *without* ``integrity``, with the ``integrity``
member written first::

    {"integrity":{"leaf":"<64 hex>","mac":"<32 hex>"},<the canonical record's members>}\\n
    {"integrity":{"leaf":"<64 hex>","mac":"<32 hex>","seal":"<n>.<base64>"},<...>}\\n   (batch ends)

so the canonical record that the leaf hashes is recovered by a string operation: ``"{" + line[130:]``
(``"{" + line[start:]`` where the integrity member ends, see :func:`split_integrity`), and
``leaf = SHA-256(0x00 || that)``. ``mac`` and ``seal`` are the record's authenticators
(:mod:`guardrail.audit.auth`). Lines written before authenticators existed have ``leaf`` only (89
characters of prefix). Every other member is in canonical order and form, so a JSON reader sees the full
record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from guardrail.audit.canonical import CanonicalizationError, RefusedKeyError, canonical_text
from guardrail.errors import ConfigError

__all__ = [
    "ACTIONS",
    "BODY_START",
    "CALLER_FIELDS",
    "CATEGORIES",
    "FIELDS",
    "FORBIDDEN_KEYS",
    "LEAF_END",
    "LEAF_PREFIX",
    "LINE_PREFIX_LEN",
    "LOG_FIELDS",
    "OUTCOMES",
    "SCHEMA",
    "AuditEventError",
    "build_body",
    "build_line",
    "format_time",
    "parse_time",
    "prepare_event",
    "split_integrity",
]

SCHEMA: Final = "guardrail.audit/1"

CATEGORIES: Final = frozenset(
    {
        "rag.ingest",
        "rag.retrieval",
        "rag.unguarded",
        "ft.scan",
        "ft.export",
        "reidentify",
        "policy.load",
        "key.rotate",
        "key.shred",
        "dsar.erasure",
        "log.checkpoint",
        "report.generate",
        "retention.apply",
        "store.maintenance",
    }
)
ACTIONS: Final = frozenset({"C", "R", "U", "D", "E"})
OUTCOMES: Final = frozenset({"success", "denied", "error"})

# set by the log, refused from callers
LOG_FIELDS: Final = frozenset({"schema", "seq", "event_id", "recorded_at", "integrity"})
# what a caller may give (occurred_at is optional: "now" when absent)
CALLER_FIELDS: Final = frozenset(
    {
        "occurred_at",
        "event",
        "source",
        "actor",
        "purpose",
        "policy",
        "subjects",
        "resources",
        "query",
        "retrieval",
        "pii",
        "disclosure",
        "dataset",
        "processors",
        "request",
    }
)
FIELDS: Final = LOG_FIELDS | CALLER_FIELDS
# all top-level names are ASCII, so plain sorting is the JCS (UTF-16) order
CANONICAL_ORDER: Final = tuple(sorted(FIELDS - {"integrity"}))

# Keys that would carry content the schema says is never stored (chunk or query text, raw values), refused
# at any depth. A guard against the obvious mistakes, not a PII scan.
FORBIDDEN_KEYS: Final = frozenset(
    {
        "text",
        "query_text",
        "query_str",
        "chunk",
        "chunk_text",
        "content",
        "raw",
        "plaintext",
        "value",
        "values",
        "password",
        "secret",
    }
)

# refused at any depth: content that is never logged, and the log's own field names (so that one
# '"seq":' and one '"event_id":"' per line are the record's own; verify relies on it)
_REFUSED: Final = frozenset(k.lower() for k in FORBIDDEN_KEYS | LOG_FIELDS)

LEAF_PREFIX: Final = '{"integrity":{"leaf":"'
LINE_PREFIX_LEN: Final = len(LEAF_PREFIX) + 64 + len('"},')  # 89: a line without authenticators
LEAF_END: Final = len(LEAF_PREFIX) + 64  # 86
MAC_SEP: Final = b'","mac":"'
MAC_END: Final = LEAF_END + len(MAC_SEP) + 32  # 127
SEAL_SEP: Final = b'","seal":"'
BODY_START: Final = MAC_END + 3  # 130: a line with a MAC and no seal

_LEAF_PREFIX_B: Final = LEAF_PREFIX.encode("ascii")

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


class AuditEventError(ConfigError):
    """An event handed to :meth:`AuditLog.append` does not fit the schema or holds a forbidden field."""


def format_time(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, e.g. ``2025-01-02T10:00:00.123Z``.

    Raises:
        AuditEventError: a naive datetime (its time zone is unknown).
    """
    if moment.tzinfo is None:
        raise AuditEventError("audit times must be timezone-aware (naive datetimes are ambiguous)")
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    """Parse an audit time (``...T...sssZ``) into an aware UTC datetime.

    Raises:
        AuditEventError: not in that exact format.
    """
    if not _TIME.fullmatch(text):
        raise AuditEventError(f"{text!r} is not a UTC time like 2025-01-02T10:00:00.123Z")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise AuditEventError(f"{text!r} is not a valid time") from None


def _path_of(value: object, key: str, path: str) -> str | None:
    """Where a refused member name sits (only called to word an error)."""
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name == key:
                return f"{path}.{name}"
            found = _path_of(item, key, f"{path}.{name}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _path_of(item, key, f"{path}[{i}]")
            if found:
                return found
    return None


def _refused(key: str, where: str) -> AuditEventError:
    if key.lower() in FORBIDDEN_KEYS:
        return AuditEventError(
            f"field {where} is never allowed in an audit record (chunk or query text and raw values are "
            "never logged: log query.mac and query.chars, counts, ids and pseudonyms)"
        )
    return AuditEventError(
        f"field {where}: {key!r} is reserved for the log's own fields, at any depth; use another name"
    )


def _check_event(event: object) -> None:
    if not isinstance(event, Mapping):
        raise AuditEventError("event must be an object {category, action, outcome}")
    category = event.get("category")
    if category not in CATEGORIES:
        raise AuditEventError(f"event.category {category!r} is not one of {', '.join(sorted(CATEGORIES))}")
    if "action" in event and event["action"] not in ACTIONS:
        raise AuditEventError(f"event.action {event['action']!r} is not one of C, R, U, D, E")
    if "outcome" in event and event["outcome"] not in OUTCOMES:
        raise AuditEventError(f"event.outcome {event['outcome']!r} is not one of success, denied, error")


def prepare_event(event: Mapping[str, Any], *, now: datetime) -> dict[str, str]:
    """Validate a caller's event and return its members as canonical JSON texts (the log adds the rest).

    ``occurred_at`` may be given as an aware datetime or as a time string in the record format; it
    defaults to ``now``. The input is never modified, and later changes to it do not reach the log.

    Raises:
        AuditEventError: an unknown, log-controlled or forbidden field, a bad category/action/outcome,
            a bad time, or a value JSON canonicalisation cannot represent.
    """
    if not isinstance(event, Mapping):
        raise AuditEventError(f"an audit event is a mapping, not {type(event).__name__}")
    for key in event:
        if key in LOG_FIELDS:
            raise AuditEventError(f"{key!r} is set by the audit log; leave it out of the event")
        if key not in CALLER_FIELDS:
            raise AuditEventError(
                f"unknown field {key!r} for {SCHEMA}; the fields are: {', '.join(sorted(CALLER_FIELDS))}"
            )
    if "event" not in event:
        raise AuditEventError("event.category is required")
    _check_event(event["event"])
    subjects = event.get("subjects")
    if subjects is not None and (
        not isinstance(subjects, list | tuple) or not all(isinstance(s, str) for s in subjects)
    ):
        raise AuditEventError("subjects is a list of pseudonym strings")
    members: dict[str, str] = {}
    for key, value in event.items():
        if key == "occurred_at":
            continue
        try:
            members[key] = canonical_text(value, refuse_keys=_REFUSED)
        except RefusedKeyError as exc:
            raise _refused(exc.key, _path_of(value, exc.key, key) or key) from None
        except CanonicalizationError as exc:
            raise AuditEventError(f"{key}: {exc}") from None
    occurred = event.get("occurred_at", now)
    if isinstance(occurred, datetime):
        members["occurred_at"] = f'"{format_time(occurred)}"'
    elif isinstance(occurred, str):
        parse_time(occurred)
        members["occurred_at"] = f'"{occurred}"'
    else:
        raise AuditEventError("occurred_at is an aware datetime or a time like 2025-01-02T10:00:00.123Z")
    for text in members.values():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise AuditEventError("a string holds a lone surrogate (not valid Unicode)") from None
    return members


def build_body(members: Mapping[str, str]) -> str:
    """The canonical record without ``integrity`` from canonical member texts (all names known ASCII)."""
    return "{" + ",".join(f'"{key}":{members[key]}' for key in CANONICAL_ORDER if key in members) + "}"


def build_line(body: str, leaf_hex: str, mac_hex: str, seal: str | None = None) -> str:
    """The stored line (without its newline) for a canonical body, its leaf hash and authenticators."""
    if seal is None:
        return f'{LEAF_PREFIX}{leaf_hex}","mac":"{mac_hex}"}},{body[1:]}'
    return f'{LEAF_PREFIX}{leaf_hex}","mac":"{mac_hex}","seal":"{seal}"}},{body[1:]}'


def split_integrity(line: bytes) -> tuple[bytes, bytes | None, bytes | None, int] | None:
    """``(leaf hex, mac hex or None, seal or None, body start)`` of a stored line; None if not one.

    The canonical body is ``b"{" + line[body start:]``.
    """
    if line[:22] != _LEAF_PREFIX_B:
        return None
    sep = line[LEAF_END : LEAF_END + 3]
    if sep == b'"},':
        return line[22:LEAF_END], None, None, LINE_PREFIX_LEN
    if line[LEAF_END : LEAF_END + 9] != MAC_SEP:
        return None
    mac = line[LEAF_END + 9 : MAC_END]
    end = line[MAC_END:BODY_START]
    if end == b'"},':
        return line[22:LEAF_END], mac, None, BODY_START
    if line[MAC_END : MAC_END + 10] != SEAL_SEP:
        return None
    stop = line.find(b'"},', MAC_END + 10)
    if stop < 0:
        return None
    return line[22:LEAF_END], mac, line[MAC_END + 10 : stop], stop + 3
