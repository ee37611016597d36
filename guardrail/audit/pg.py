"""The audit log on PostgreSQL: one log for a fleet of writers on several hosts.

Same records, leaves, RFC 6962 tree, MACs, seals and Ed25519 checkpoints as the file log
(:mod:`guardrail.audit.log`); only the storage differs (tables: :mod:`guardrail.db.schema`):

* **Sequencing.** A batch is one transaction: it locks the single ``audit_head`` row
  (``SELECT ... FOR UPDATE``), reads the records other writers committed since this writer last looked
  (checking their leaves and MACs, as the file writer does), renders its records with ``seq`` from
  ``next_seq`` on, moves ``next_seq`` forward and inserts them (one ``INSERT ... unnest``, ``COPY`` for
  large batches). The row lock gives one total order across every writer on every host; the primary
  key on ``seq`` forbids duplicates; a trigger refuses a ``seq`` that was not allocated from the head,
  and another one refuses moving the head back.
  A transaction that does not commit leaves no trace (no gap: the head moves back with it).
* **Group commit.** As in the file log: all records queued while the previous commit was flushed are
  written by the next transaction, so one WAL flush acknowledges a whole batch.
* **Durability.** ``append(sync=True)`` returns once the transaction committed (with the server's
  ``synchronous_commit``, on by default). A writer killed mid-batch loses only what it had not been told
  was written: the server rolls the open transaction back.
* **Checkpoints** are rows of ``audit_checkpoints`` (the signed notes, verbatim), written in the batch's
  transaction (under a savepoint) when due.
* **Fail closed.** When the server cannot be reached or a statement fails, the batch's appenders get
  :class:`~guardrail.audit.errors.AuditWriteError` (a retrieval is then refused); the next batch
  connects again, so the process recovers once the server is back.

:func:`export` writes a consistent snapshot (one ``REPEATABLE READ`` transaction) as a file log
directory that :func:`guardrail.audit.verify` checks offline; ``verify``, ``prove`` and ``iter_records``
given a ``postgresql://`` location verify such a snapshot in a private temporary directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from guardrail.audit.errors import AuditIntegrityError, AuditWriteError
from guardrail.audit.log import AuditLog, _Pending, _Tail, default_origin
from guardrail.audit.merkle import CompactRange
from guardrail.audit.note import (
    NoteError,
    VerifierKey,
    check_name,
    format_checkpoint,
    parse_checkpoint,
    public_key_of,
    sign_note,
    verify_note,
)
from guardrail.audit.storage import CHECKPOINTS, PUBLIC_KEY, segment_name
from guardrail.db import Database, DatabaseError, parse_location
from guardrail.errors import ConfigError, GuardrailError

__all__ = ["PgAuditLog", "export", "materialised", "read_verifier_key"]

_STATE_FORMAT = "guardrail.audit.pgstate/1"


class PgAuditLog(AuditLog):
    """An :class:`~guardrail.audit.AuditLog` whose records live in PostgreSQL.

    Open it as the file log, with a ``postgresql://`` location instead of a directory:
    ``AuditLog.for_keyring("postgresql://app@db.internal/guardrail?sslmode=verify-full", keyring)``
    (``AuditLog(...)`` with such a location returns a ``PgAuditLog``). The schema must exist
    (``guardrail db init``). ``segment_records`` only applies to :func:`export`.
    """

    def __init__(self, directory: str | os.PathLike[str], **options: Any) -> None:
        self._location = os.fspath(directory)
        self._db = Database(self._location)
        self._conn: Any = None
        self._head = 0  # audit_head.next_seq as read under the lock
        self._checkpoints_seen: tuple[int, Any, Any] | None = None
        self._wrote = False
        self._writer_id = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
        super().__init__(directory, **options)

    # ------------------------------------------------------------------ public API

    @property
    def directory(self) -> str:  # type: ignore[override]
        """The location (as given: it is what reopens the log)."""
        return self._location

    def __repr__(self) -> str:
        return f"PgAuditLog({self._db.location.display!r}, origin={self.origin!r}, size={self._tail.size})"

    # ------------------------------------------------------------------ storage hooks

    def _open_storage(self, origin: str | None) -> None:
        from guardrail.audit.auth import RecordMac, Sealer
        from guardrail.db.schema import check_version

        try:
            with self._db.connection("opening the audit log") as conn:
                check_version(self._db, conn)
        except DatabaseError as exc:
            raise AuditWriteError(str(exc)) from None
        with self._locked():
            self._key = self._load_or_create_key(origin)
            self._mac = RecordMac(self._record_key, self._key.name)
            self._sealer = Sealer(self._seed, self._key.name)
            self._open_tail()
            self._opening = False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One transaction holding the audit head's row lock; the tail is restored if it does not commit."""
        import psycopg

        saved = dataclasses.replace(self._tail, range=self._tail.range.copy())
        s = self._db.schema
        try:
            with self._db.connection("appending audit records") as conn:
                with conn.transaction():
                    # the lock is released at commit, before the WAL flush (asynchronous commit); the
                    # appenders are told only after the barrier below, which flushes it
                    conn.execute("SET LOCAL synchronous_commit = off")
                    after = self._tail.cp_bytes  # the checkpoints since the last seen, in the same trip
                    row = conn.execute(
                        f"SELECT next_seq, (SELECT max(id) FROM {s}.audit_checkpoints WHERE id > %s), "
                        f"(SELECT max(size) FROM {s}.audit_checkpoints WHERE id > %s) "
                        f"FROM {s}.audit_head WHERE id = 1 FOR UPDATE",
                        (after, after),
                    ).fetchone()
                    self._head = int(row[0]) if row else 0
                    self._checkpoints_seen = (after, row[1], row[2]) if row else None
                    self._conn = conn
                    self._wrote = False
                    try:
                        yield
                    finally:
                        self._conn = None
                    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                        raise AuditWriteError("an audit statement failed; the batch was rolled back")
                if self._wrote:
                    # durability barrier: a synchronous commit flushes all the WAL before it, this batch
                    # (and any batch of another writer it built on) included; concurrent barriers share
                    # one flush (PostgreSQL's group commit), outside the head's lock
                    # (it must write WAL itself: a transaction that writes nothing commits without a flush)
                    with conn.transaction():
                        conn.execute(
                            f"INSERT INTO {s}.audit_flush (writer, at) VALUES (%s, now()) "
                            "ON CONFLICT (writer) DO UPDATE SET at = EXCLUDED.at",
                            (self._writer_id,),
                        )
        except BaseException as exc:
            self._tail = saved
            if isinstance(exc, GuardrailError | KeyboardInterrupt | SystemExit | GeneratorExit):
                if isinstance(exc, DatabaseError):
                    raise AuditWriteError(f"the audit records were not written: {exc}") from None
                raise
            if isinstance(exc, psycopg.Error):
                raise AuditWriteError(
                    f"the audit records were not written: {self._db.unavailable(exc, 'appending')}"
                ) from None
            raise

    def _load_or_create_key(self, origin: str | None) -> VerifierKey:
        s = self._db.schema
        public = public_key_of(self._seed)
        row = self._conn.execute(f"SELECT verifier_key FROM {s}.audit_meta WHERE id = 1").fetchone()
        if row is None:
            key = VerifierKey(check_name(origin or default_origin()), public)
            self._conn.execute(
                f"INSERT INTO {s}.audit_meta (id, verifier_key) VALUES (1, %s)", (key.encode(),)
            )
            return key
        where = f"{self._db.location.display} (schema {self._db.location.schema})"
        try:
            stored = VerifierKey.parse(str(row[0]))
        except NoteError as exc:
            raise ConfigError(f"{where}: the audit log's verifier key is malformed ({exc})") from None
        if stored.public_key != public:
            raise ConfigError(f"{where}: the signing key does not match this audit log's public key")
        if origin is not None and origin != stored.name:
            raise ConfigError(f"{where}: this log's origin is {stored.name!r}, not {origin!r}")
        return stored

    def _open_tail(self) -> None:
        self._tail = self._load_state() or _Tail()
        self._sync()
        self._check_checkpoints_at_open()
        if self._tail.size == 0 and self._tail.cp_size < 0:
            self._write_checkpoint()

    def _load_state(self) -> _Tail | None:
        s = self._db.schema
        row = self._conn.execute(f"SELECT data FROM {s}.audit_state WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            if data.get("format") != _STATE_FORMAT:
                return None
            if not hmac.compare_digest(str(data["mac"]), self._state_mac(data)):
                return None
            size = int(data["size"])
            tail = _Tail(size=size, range=CompactRange(size, [bytes.fromhex(h) for h in data["range"]]))
        except (ValueError, KeyError, TypeError):
            return None
        head = self._conn.execute(f"SELECT next_seq FROM {s}.audit_head WHERE id = 1").fetchone()[0]
        if head < size:
            raise AuditIntegrityError(
                int(head), "truncated", f"the log holds {head} records but a writer saw {size}"
            )
        return tail

    def _save_state(self) -> None:
        t = self._tail
        data: dict[str, Any] = {
            "format": _STATE_FORMAT,
            "size": t.size,
            "range": [h.hex() for h in t.range.hashes],
        }
        data["mac"] = self._state_mac(data)
        self._wrote = True
        self._conn.execute(
            f"INSERT INTO {self._db.schema}.audit_state (id, data) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            (json.dumps(data),),
        )

    def _sync(self) -> None:
        """Absorb the records and checkpoints other writers committed since this one last looked."""
        if self._head < self._tail.size:
            # records this writer read before they were flushed were lost by a server crash (they were
            # never acknowledged: their writer waits for its barrier); start again from what is there
            self._tail = self._load_state() or _Tail()
        t = self._tail
        s = self._db.schema
        cur = self._conn.execute(
            f"SELECT seq, line FROM {s}.audit_records WHERE seq >= %s ORDER BY seq", (t.size,), binary=False
        )
        for seq, line in cur:
            if seq != t.size:
                raise AuditIntegrityError(
                    t.size, "deleted", f"record {t.size} is missing (the next row has seq {seq})"
                )
            self._absorb(line.encode("utf-8"), f"row seq {seq}")
        last = t.cp_bytes  # here: the id of the last checkpoint row seen
        seen, self._checkpoints_seen = self._checkpoints_seen, None
        if seen is not None and seen[0] == last:
            row = seen[1:]  # read with the lock
        else:
            row = self._conn.execute(
                f"SELECT max(id), max(size) FROM {s}.audit_checkpoints WHERE id > %s", (last,)
            ).fetchone()
        if row[0] is not None:
            t.cp_bytes = int(row[0])
            t.cp_size = max(t.cp_size, int(row[1]))

    def _check_checkpoints_at_open(self) -> None:
        t = self._tail
        if t.cp_size > t.size:
            raise AuditIntegrityError(
                t.size, "truncated", f"a checkpoint covers {t.cp_size} records but the log holds {t.size}"
            )
        if t.cp_size == t.size and t.size:
            row = self._conn.execute(
                f"SELECT note FROM {self._db.schema}.audit_checkpoints WHERE size = %s "
                "ORDER BY id DESC LIMIT 1",
                (t.size,),
            ).fetchone()
            with contextlib.suppress(NoteError):
                text = verify_note(str(row[0]), self._key) if row else None
                if text is not None and parse_checkpoint(text).root != t.range.root():
                    raise AuditIntegrityError(
                        None, "edited", f"the records no longer match the signed checkpoint at size {t.size}"
                    )

    def _write(self, batch: list[_Pending]) -> None:
        t = self._tail
        s = self._db.schema
        lines, head = self._render(batch)
        first = t.size
        self._wrote = True
        self._conn.execute(f"UPDATE {s}.audit_head SET next_seq = %s WHERE id = 1", (first + len(lines),))
        if len(lines) <= 32:  # a small batch (callers waiting): one round trip under the lock
            self._conn.execute(
                f"INSERT INTO {s}.audit_records (seq, line) SELECT * FROM unnest(%s::bigint[], %s::text[])",
                (list(range(first, first + len(lines))), [line[:-1].decode("utf-8") for line in lines]),
            )
        else:  # a large one: COPY streams it faster
            with (
                self._conn.cursor() as cur,
                cur.copy(f"COPY {s}.audit_records (seq, line) FROM STDIN") as copy,
            ):
                for offset, line in enumerate(lines):
                    copy.write_row((first + offset, line[:-1].decode("utf-8")))
        t.range = head
        t.size = first + len(lines)

    def _write_checkpoint(self) -> None:
        t = self._tail
        note = sign_note(
            format_checkpoint(self._key.name, t.size, t.range.root()), self._key.name, self._seed
        )
        with self._conn.transaction():  # a savepoint: a failed checkpoint does not undo the records
            row = self._conn.execute(
                f"INSERT INTO {self._db.schema}.audit_checkpoints (size, note) VALUES (%s, %s) RETURNING id",
                (t.size, note),
            ).fetchone()
            self._save_state()
        t.cp_size = t.size
        t.cp_bytes = max(t.cp_bytes, int(row[0]))
        self._appended_since_checkpoint = False

    def _close_fds(self) -> None:
        self._db.close()


# --------------------------------------------------------------------------- reading and export


def read_verifier_key(location: str | os.PathLike[str]) -> str:
    """The log's ``audit.pub`` text as stored in the database.

    Raises:
        ConfigError: no audit log there yet.
        DatabaseUnavailable: the server cannot be reached.
    """
    db = Database(location)
    try:
        with db.connection("reading the audit log's verifier key") as conn:
            row = conn.execute(f"SELECT verifier_key FROM {db.schema}.audit_meta WHERE id = 1").fetchone()
    finally:
        db.close()
    if row is None:
        raise ConfigError(f"{db.location.display}: no audit log in schema {db.location.schema} yet")
    return str(row[0])


def export(
    location: str | os.PathLike[str], directory: str | os.PathLike[str], *, segment_records: int = 100_000
) -> int:
    """Write a consistent snapshot of the PostgreSQL log as a file log directory; return its records.

    The directory (new or empty) gets ``audit.pub``, ``segment-*.jsonl`` and ``checkpoints`` exactly as
    the file writer lays them out, so ``guardrail audit verify DIR`` checks it offline, with the same
    verifier. Rows are written in ``seq`` order as stored: a row removed or altered in the database shows
    up as a finding, not as a silently repaired file.

    Raises:
        ConfigError: the directory is not empty, or there is no audit log at the location.
        DatabaseUnavailable: the server cannot be reached.
    """
    target = Path(directory)
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target}: not empty; export into a new directory")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(location)
    s = db.schema
    try:
        with db.connection("exporting the audit log") as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                row = conn.execute(f"SELECT verifier_key FROM {s}.audit_meta WHERE id = 1").fetchone()
                if row is None:
                    raise ConfigError(f"{db.location.display}: no audit log in schema {db.location.schema}")
                (target / PUBLIC_KEY).write_text(str(row[0]).rstrip("\n") + "\n", "utf-8")
                notes = [
                    str(n) for (n,) in conn.execute(f"SELECT note FROM {s}.audit_checkpoints ORDER BY id")
                ]
                count = _copy_lines(conn, s, target, segment_records)
                (target / CHECKPOINTS).write_text("".join(notes), "utf-8")
            finally:
                conn.execute("ROLLBACK")
    finally:
        db.close()
    return count


_UNESCAPE = {b"\\": b"\\", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"v": b"\v"}
_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)


def _unescape(match: re.Match[bytes]) -> bytes:
    return _UNESCAPE.get(match.group(1), match.group(1))


def _copy_lines(conn: Any, schema: str, target: Path, segment_records: int) -> int:
    """Stream the stored lines in seq order (COPY, text format) into segment files; return the count."""
    count = 0
    out = None
    rest = b""
    try:
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY (SELECT line FROM {schema}.audit_records ORDER BY seq) TO STDOUT") as copy,
        ):
            for block in copy:
                data = rest + bytes(block)
                end = data.rfind(b"\n") + 1
                rest = data[end:]
                for stored in data[: end - 1].split(b"\n") if end else ():
                    if out is None or count % segment_records == 0:
                        if out is not None:
                            out.close()
                        out = (target / segment_name(count // segment_records + 1)).open("wb")
                    line = _ESCAPED.sub(_unescape, stored) if b"\\" in stored else stored
                    out.write(line + b"\n")
                    count += 1
    finally:
        if out is not None:
            out.close()
    return count


@contextlib.contextmanager
def materialised(location: str | os.PathLike[str]) -> Iterator[Path]:
    """A private temporary file-log copy of the PostgreSQL log (deleted afterwards)."""
    parse_location(location)  # a bad location fails before anything is created
    base = Path(tempfile.mkdtemp(prefix="guardrail-audit-"))
    try:
        target = base / "log"
        export(location, target)
        yield target
    finally:
        shutil.rmtree(base, ignore_errors=True)
