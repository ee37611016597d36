"""Reading an audit log for a report: one streaming pass, a time window, the integrity verdict, policies.

Records are read line by line from a snapshot of the segment files (never all at once); the time window is
applied on the raw line, before any JSON parsing, because ``occurred_at`` has one fixed format and sorts
as text. Nothing here trusts the log: :func:`check_integrity` runs the same verifier as
``guardrail audit verify`` and its verdict goes into every report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from guardrail.audit.schema import format_time
from guardrail.audit.storage import iter_lines, snapshot
from guardrail.audit.verify import verify
from guardrail.errors import PolicyError
from guardrail.policy import Policy, available_packs, load_policy
from guardrail.reports.model import Integrity, ReportError

__all__ = ["LogReader", "PolicyIndex", "check_integrity", "get", "now_text", "parse_moment"]

_OCCURRED = b'"occurred_at":"'
_CHUNK = 1 << 20  # bytes read at a time: memory stays flat whatever the log size
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def now_text(clock: datetime | None = None) -> str:
    """``clock`` (default: now) in the audit time format."""
    return format_time(clock or datetime.now(UTC))


def parse_moment(value: str | datetime | None, *, option: str, end: bool = False) -> str | None:
    """An ISO date or time (or an aware datetime) as an audit time string; naive times are UTC.

    A bare date given as an end (``--until 2025-01-31``) means the end of that day: the bound is
    exclusive, so it becomes the next midnight.

    Raises:
        ReportError: not a date or time.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return format_time(moment)
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(
            f"{option} {value!r}: use an ISO date or time, e.g. 2025-01-31 or 2025-01-31T08:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and _DATE_ONLY.fullmatch(text):
        moment += timedelta(days=1)
    return format_time(moment)


def get(record: dict[str, Any], *path: str) -> Any:
    """``record[a][b]...`` or None when any step is missing or not an object."""
    value: Any = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class LogReader:
    """Stream the records of an audit log directory that fall in ``[since, until)``.

    Attributes:
        read: lines read in the last pass (all of them, in or out of the window).
    """

    def __init__(self, directory: str | os.PathLike[str], *, since: str | None, until: str | None) -> None:
        from guardrail.db import is_postgres_url

        if is_postgres_url(directory):  # a consistent snapshot of the PostgreSQL log, as a file log
            import contextlib
            import weakref

            from guardrail.audit.pg import materialised

            stack = contextlib.ExitStack()
            directory = stack.enter_context(materialised(directory))
            weakref.finalize(self, stack.close)
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ReportError(f"{self.directory}: not an audit log directory")
        if since is not None and until is not None and since >= until:
            raise ReportError(f"--since {since} is not before --until {until}")
        self._since = since.encode("ascii") if since else None
        self._until = until.encode("ascii") if until else None
        self.read = 0

    def records(self, *, containing: bytes | None = None) -> Iterator[dict[str, Any]]:
        """Parsed records in order; with ``containing``, only lines holding those bytes are parsed."""
        since, until = self._since, self._until
        loads = json.loads
        self.read = 0
        for path, size in snapshot(self.directory).segments:
            for _, line in iter_lines(path, limit=size, chunk=_CHUNK):
                self.read += 1
                if since is not None or until is not None:
                    at = line.find(_OCCURRED)
                    if at < 0:
                        continue
                    moment = line[at + 15 : at + 39]
                    if (since is not None and moment < since) or (until is not None and moment >= until):
                        continue
                if containing is not None and containing not in line:
                    continue
                try:
                    record = loads(line)
                except ValueError:
                    continue  # the integrity section reports malformed lines
                if isinstance(record, dict):
                    yield record


def check_integrity(
    directory: str | os.PathLike[str], *, public_key: str | None = None, records_read: int = 0
) -> Integrity:
    """Run :func:`guardrail.audit.verify` and turn its report into the report's integrity verdict."""
    result = verify(directory, public_key=public_key)
    if not result.ok:
        status = "FAILED"
    elif result.torn_tail:
        status = "VERIFIED (WARNING)"
    else:
        status = "VERIFIED"
    return Integrity(
        ok=result.ok,
        status=status,
        records=result.records,
        checkpoints_verified=result.checkpoints_verified,
        covered=result.covered,
        first_bad_index=result.first_bad_index,
        kind=result.kind,
        message=result.message,
        records_read=records_read,
    )


class PolicyIndex:
    """Policies by the ``(id, version, sha256)`` the log records: the ones given, else a shipped pack whose
    text hashes the same. A policy whose exact text is unavailable is ``None`` (reports say so)."""

    def __init__(self, policies: tuple[Policy, ...] = ()) -> None:
        self._given = {p.sha256: p for p in policies}
        self._cache: dict[str, Policy | None] = {}

    def lookup(self, name: str | None, sha256: str | None) -> Policy | None:
        """The policy with this name and text hash, or None."""
        if not name or not sha256:
            return None
        if sha256 in self._given:
            return self._given[sha256]
        if sha256 not in self._cache:
            found: Policy | None = None
            if name in available_packs():
                try:
                    pack = load_policy(name)
                except PolicyError:
                    pack = None
                if pack is not None and pack.sha256 == sha256:
                    found = pack
            self._cache[sha256] = found
        return self._cache[sha256]

    @staticmethod
    def load(refs: tuple[str | Path | Policy, ...]) -> tuple[Policy, ...]:
        """Load policies given by pack name or YAML path (errors name the file and the fix)."""
        return tuple(load_policy(r) for r in refs)
