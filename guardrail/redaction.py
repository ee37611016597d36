"""Redaction: apply the policy's operator to every finding and return an immutable result.

Operators: ``replace`` (``<ENTITY>``), ``pseudonymize`` (``<ENTITY_n>``, consistent per value within a
:class:`PseudonymScope`), ``hash`` (keyed HMAC-SHA256), ``mask`` (keep the last N characters),
``remove`` and ``generalize`` (HIPAA Safe Harbor: year of a date, ``90+`` for ages over 89, first three
ZIP digits or ``000`` for the restricted areas).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from guardrail.errors import KeyUnavailable
from guardrail.findings import Finding, RedactionResult
from guardrail.policy import (
    GeneralizeOp,
    HashOp,
    MaskOp,
    OperatorSpec,
    Policy,
    PseudonymizeOp,
    RemoveOp,
    ReplaceOp,
)

__all__ = ["RESTRICTED_ZIP3", "PseudonymScope", "Redactor", "TokenSource", "generalize_value"]

#: Three-digit ZIP prefixes whose areas held 20,000 people or fewer (2000 Census), per 45 CFR
#: 164.514(b)(2)(i)(B). Versioned with the table's source.
RESTRICTED_ZIP3_VERSION = "census-2000"
RESTRICTED_ZIP3: frozenset[str] = frozenset(
    [
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    ]
)


@dataclass
class PseudonymScope:
    """Consistent pseudonyms within one scope (a document, a dataset): the same value (per entity
    type) always gets the same ``<ENTITY_n>`` token. Values are held as keyed digests, not as text.
    Thread-safe."""

    _tokens: dict[tuple[str, bytes], int] = field(default_factory=dict, repr=False)
    _counters: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _salt: bytes = field(default_factory=lambda: os.urandom(16), repr=False)

    def token(self, entity: str, value: str) -> str:
        digest = hmac.new(self._salt, _normalise(value).encode(), hashlib.sha256).digest()
        with self._lock:
            key = (entity, digest)
            n = self._tokens.get(key)
            if n is None:
                n = self._counters.get(entity, 0) + 1
                self._counters[entity] = n
                self._tokens[key] = n
        return f"<{entity}_{n}>"

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"PseudonymScope(values={len(self._tokens)})"


class TokenSource(Protocol):
    """Something that turns a detected value into a pseudonym token: a :class:`PseudonymScope`, or the
    dataset-wide :class:`~guardrail.datasets.tokens.KeyedTokens` and
    :class:`~guardrail.datasets.tokens.TokenVault`."""

    def token(self, entity: str, value: str) -> str:
        """The token for ``value`` of type ``entity`` (the same value always gets the same token)."""
        ...


def _normalise(value: str) -> str:
    return " ".join(value.split()).casefold()


def generalize_value(entity: str, value: str, *, reference_year: int) -> str:
    """Safe Harbor generalisation of one value.

    Dates keep the year only (a year that reveals an age over 89, i.e. 90 or more years before
    ``reference_year``, becomes ``<=YYYY``); dates without a year are removed (``<DATE_TIME>``). Ages over
    89 become ``90+`` and lower ages stay. ZIP codes keep their first three digits, or ``000`` for the
    restricted areas; other postal codes are replaced. Other entities are replaced with ``<ENTITY>``.
    """
    from guardrail.detection.recognizers.dates import parse_year

    if entity == "DATE_TIME":
        year = parse_year(value)
        if year is None:
            return f"<{entity}>"
        if reference_year - year >= 90:
            return f"<={reference_year - 90}"
        return str(year)
    if entity == "AGE":
        m = re.search(r"\d+(?:\.\d+)?", value)
        if m is None:
            return "90+" if re.search(r"(?i)9\d|nineties|10\d", value) else f"<{entity}>"
        return "90+" if float(m.group()) > 89 else value
    if entity == "US_ZIP_CODE":
        digits = re.sub(r"\D", "", value)
        if len(digits) not in (5, 9) or not re.fullmatch(r"\d{5}(?:-?\d{4})?", value.strip()):
            return f"<{entity}>"
        zip3 = digits[:3]
        return "000" if zip3 in RESTRICTED_ZIP3 else zip3
    return f"<{entity}>"


class Redactor:
    """Applies a policy's operators to findings.

    Args:
        policy: whose ``redaction`` section chooses the operators.
        hmac_key: key for the ``hash`` operator (else ``GUARDRAIL_HMAC_KEY``, hex or text).
        clock: returns "now" (for the Safe Harbor age cut-off); injectable for tests.

    Raises:
        KeyUnavailable: the policy uses ``hash`` and no key is configured.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        hmac_key: bytes | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        uses_hash = any(
            isinstance(op, HashOp) for op in [policy.redaction.default, *policy.redaction.operators.values()]
        )
        self._hmac_key = hmac_key if hmac_key is not None else _env_key() if uses_hash else None
        if uses_hash and not self._hmac_key:
            raise KeyUnavailable(
                f"policy {policy.id} uses the hash operator, which needs a key: set GUARDRAIL_HMAC_KEY "
                "(at least 16 bytes, hex or text) or give a keyring (--keyring DIR on the command line; "
                "keyring= in Python)"
            )

    def __repr__(self) -> str:
        return f"Redactor(policy={self.policy.id!r})"

    def redact(
        self, text: str, findings: Sequence[Finding], *, scope: TokenSource | None = None
    ) -> RedactionResult:
        """Redact ``findings`` (non-overlapping, as detectors return them) from ``text``."""
        scope = scope if scope is not None else PseudonymScope()
        ordered = sorted(findings, key=lambda f: f.start)
        out: list[str] = []
        pos = 0
        written = 0
        kept: list[Finding] = []
        spans: list[tuple[int, int]] = []
        year = self._clock().year
        for f in ordered:
            if f.start < pos:  # overlapping input: already covered by the previous replacement
                pos = max(pos, f.end)
                continue
            before = text[pos : f.start]
            replacement = self._apply(f.entity, text[f.start : f.end], scope, year)
            out += (before, replacement)
            written += len(before)
            spans.append((written, written + len(replacement)))
            written += len(replacement)
            pos = f.end
            kept.append(f)
        out.append(text[pos:])
        return RedactionResult("".join(out), tuple(kept), tuple(spans))

    def _apply(self, entity: str, value: str, scope: TokenSource, year: int) -> str:
        op: OperatorSpec = self.policy.redaction.operator_for(entity)
        if isinstance(op, ReplaceOp):
            return f"<{op.label or entity}>"
        if isinstance(op, PseudonymizeOp):
            return scope.token(entity, value)
        if isinstance(op, HashOp):
            assert self._hmac_key is not None  # checked in __init__
            mac = hmac.new(self._hmac_key, f"{entity}\0{_normalise(value)}".encode(), hashlib.sha256)
            return f"<{entity}#{mac.hexdigest()[: op.length]}>"
        if isinstance(op, MaskOp):
            keep = op.keep_last if len(value) > op.keep_last else 0
            return op.char * (len(value) - keep) + value[len(value) - keep :]
        if isinstance(op, RemoveOp):
            return ""
        if isinstance(op, GeneralizeOp):
            return generalize_value(entity, value, reference_year=year)
        raise AssertionError(f"unhandled operator {op!r}")  # pragma: no cover - the union is closed


def _env_key() -> bytes | None:
    raw = os.environ.get("GUARDRAIL_HMAC_KEY", "")
    if not raw:
        return None
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = raw.encode()
    if len(key) < 16:
        raise KeyUnavailable("GUARDRAIL_HMAC_KEY is too short: use at least 16 bytes (32 hex digits)")
    return key
