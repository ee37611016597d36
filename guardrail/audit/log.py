"""The append-only, tamper-evident audit log writer.

One directory (layout: :mod:`guardrail.audit.storage`), written by any number of threads and processes:

* **Records.** ``append(event)`` validates the event (:func:`guardrail.audit.schema.prepare_event`), gives
  it an ``event_id`` (UUIDv7) and ``occurred_at`` (when absent), and queues it. A single writer thread per
  ``AuditLog`` takes batches off the queue (group commit) and, holding an exclusive ``flock`` on the
  directory's lock file, catches up with whatever other processes appended, assigns ``seq`` (0-based,
  gap-free, equal to the record's leaf index), ``recorded_at`` and ``integrity.leaf``, appends the lines
  to the current segment and ``fdatasync``\\ s it. ``append(..., sync=True)`` returns only once its record
  is durable and raises when it could not be written (fail closed).
* **Group commit.** A batch is written as soon as a synchronous appender waits (records queued during the
  previous ``fdatasync`` form the next batch; it waits up to 1 ms for synchronous appenders already
  inside ``append``), otherwise after ``batch_delay`` (5 ms) or ``batch_records`` (512) records, and on
  :meth:`flush` / :meth:`close`.
* **Checkpoints.** Every ``checkpoint_every`` records, every ``checkpoint_seconds`` (when this process
  appended since), on :meth:`checkpoint` and at :meth:`close`, the writer signs ``(origin, size, root)``
  as a C2SP checkpoint and appends it to ``checkpoints``.
* **Crashes.** A process killed mid-write can leave a torn last line (no newline). It is never repaired
  or removed: the next writer leaves the bytes as they are and starts a new segment; ``verify`` reports
  the torn bytes (segment and offset) as a warning. A write that fails in a live process is rolled back
  (the segment is truncated to where the batch began) before the error reaches the callers.
* **Multi-process state.** The tail (size, compact Merkle range, segment and offset) lives in memory and
  is brought up to date under the lock from the segment files (an ``fstat`` per batch; new lines of other
  writers are checked and hashed). ``state.json`` caches it at checkpoints and close so opening a large
  log does not reread everything; it is only a cache (a segment shorter than it says is truncation, and
  refused).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from guardrail.audit.auth import RECORD_KEY_PURPOSE, SIGNING_KEY_PURPOSE, RecordMac, Sealer, state_mac
from guardrail.audit.errors import AuditIntegrityError, AuditWriteError
from guardrail.audit.ids import Uuid7
from guardrail.audit.merkle import CompactRange
from guardrail.audit.note import (
    NoteError,
    VerifierKey,
    check_name,
    format_checkpoint,
    parse_checkpoint,
    public_key_of,
    sign_note,
    split_notes,
    verify_note,
)
from guardrail.audit.schema import SCHEMA, build_body, build_line, format_time, prepare_event
from guardrail.audit.storage import (
    CHECKPOINTS,
    LOCK,
    PUBLIC_KEY,
    STATE,
    check_line,
    fsync_directory,
    segment_name,
)
from guardrail.errors import ConfigError, GuardrailError

__all__ = ["AuditLog", "default_origin"]

_STATE_FORMAT = "guardrail.audit.state/2"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SCHEMA_JSON = f'"{SCHEMA}"'
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
_COMMIT_WAIT = 0.001  # the longest a write waits for synchronous appenders that are about to queue


def default_origin() -> str:
    """``<hostname>/<log id>/guardrail.audit/1``: a schema-less URL-like name, as C2SP origins should be.

    The log id is random (64 bits), drawn once when a log is created: the origin names one log, and the
    record MACs are keyed by it, so a record copied from another log of the same keyring (same host)
    does not carry this log's MAC.
    """
    host = "".join(c for c in socket.gethostname() if not c.isspace() and c != "+") or "localhost"
    return f"{host}/{secrets.token_hex(8)}/{SCHEMA}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Pending:
    members: dict[str, str]
    event_id: str
    ticket: int
    waiter: threading.Lock | None  # released when written (sync appends)
    error: BaseException | None = None


@dataclass
class _Tail:
    """The log on disk as this process last saw it (only the writer thread touches it after opening)."""

    size: int = 0
    range: CompactRange = field(default_factory=CompactRange)
    segment: int = 1  # the last segment (it may not exist yet)
    offset: int = 0  # bytes of it accounted for (complete lines)
    segment_records: int = 0
    torn: bool = False  # it ends in a torn line: the next record starts a new segment
    cp_size: int = -1  # size of the latest checkpoint in the file (-1: none)
    cp_bytes: int = 0  # size of the checkpoints file when last read
    legacy: int = 0  # leading records written before records carried a MAC (must be under a checkpoint)


class AuditLog:
    """An append-only audit log with Merkle-tree checkpoints, safe across threads and processes.

    Example::

        log = AuditLog.for_keyring("/var/lib/guardrail/audit", keyring)
        log.append({"event": {"category": "rag.retrieval", "action": "R", "outcome": "success"}, ...})
        log.close()
    """

    def __new__(cls, directory: str | os.PathLike[str], *args: Any, **kwargs: Any) -> AuditLog:
        """A ``postgresql://`` location opens the PostgreSQL log (:mod:`guardrail.audit.pg`)."""
        if cls is AuditLog:
            from guardrail.db import is_postgres_url

            if is_postgres_url(directory):
                from guardrail.audit.pg import PgAuditLog

                return super().__new__(PgAuditLog)
        return super().__new__(cls)

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        signing_key: bytes,
        record_key: bytes,
        origin: str | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        segment_records: int = 100_000,
        batch_records: int = 512,
        batch_delay: float = 0.005,
        commit_wait: float = _COMMIT_WAIT,
        max_pending: int = 65_536,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """Open (or create) the log in ``directory``.

        Args:
            directory: the log directory (created if missing).
            signing_key: the 32-byte Ed25519 private seed that signs checkpoints, e.g.
                ``Keyring.hmac_key("audit-checkpoint")``. Its public key is written to ``audit.pub`` when
                the log is created, and must match it afterwards. It also seals every written batch.
            record_key: the 32-byte key of the records' MACs, ``Keyring.hmac_key("audit-record")``. The
                writer checks the MAC of every record it did not write before appending after it.
            origin: the checkpoint origin and key name (no spaces, no ``+``); default: the one in
                ``audit.pub``, or :func:`default_origin` for a new log. Give every log of a keyring its own
                origin: the record MACs are keyed by it, which is what stops a record of one log from
                passing as a record of another.
            checkpoint_every: sign a checkpoint at least every this many records.
            checkpoint_seconds: and every this many seconds when this process appended since.
            segment_records: records per segment file.
            batch_records: the most records per write.
            batch_delay: how long records appended with ``sync=False`` may wait to share a write.
            commit_wait: how long a write of synchronous records may wait for the other synchronous
                appenders expected to join it (those the previous write released, those about to queue).
            max_pending: queued records beyond which ``append`` blocks (back-pressure).
            clock: returns the current aware datetime (``occurred_at``, ``recorded_at``, UUIDv7 times).
            monotonic: the clock of ``checkpoint_seconds`` (default :func:`time.monotonic`).

        Raises:
            ConfigError: a bad option, or a key or origin that does not match ``audit.pub``.
            AuditIntegrityError: the log on disk is damaged (e.g. shorter than its state or checkpoints),
                or holds a record this keyring did not authenticate (kind ``unauthentic``).
            AuditWriteError: the directory cannot be written.
        """
        if not isinstance(signing_key, bytes) or len(signing_key) != 32:
            raise ConfigError("signing_key must be a 32-byte Ed25519 seed (e.g. Keyring.hmac_key('audit'))")
        for name, value in (
            ("checkpoint_every", checkpoint_every),
            ("segment_records", segment_records),
            ("batch_records", batch_records),
            ("max_pending", max_pending),
        ):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, not {value!r}")
        if not checkpoint_seconds > 0 or batch_delay < 0 or not 0 <= commit_wait <= 1:
            raise ConfigError("checkpoint_seconds must be > 0, batch_delay >= 0 and commit_wait 0 to 1 s")
        if not isinstance(record_key, bytes) or len(record_key) != 32 or record_key == signing_key:
            raise ConfigError(
                "record_key must be 32 bytes, not the signing key (Keyring.hmac_key('audit-record'))"
            )
        self._dir = Path(directory)
        self._seed = signing_key
        self._record_key = record_key
        self._opening = True  # records without a MAC are accepted only while opening (older logs)
        self._checkpoint_every = checkpoint_every
        self._checkpoint_seconds = float(checkpoint_seconds)
        self._segment_records = segment_records
        self._batch_records = batch_records
        self._batch_delay = float(batch_delay)
        self._commit_wait = float(commit_wait)
        self._max_pending = max_pending
        self._clock = clock or _now
        self._monotonic = monotonic or time.monotonic
        self._next_tick = self._monotonic() + self._checkpoint_seconds
        self._ids = Uuid7()
        self._pid = os.getpid()

        self._tail = _Tail()
        self._seg_fd: tuple[int, int] | None = None  # (segment number, fd)
        self._cp_fd: int | None = None
        self._lock_fd = -1

        self._mutex = threading.Lock()
        self._work = threading.Condition(self._mutex)  # the writer waits here for records and requests
        self._progress = threading.Condition(self._mutex)  # flush/checkpoint/back-pressure wait here
        self._waiters = threading.local()  # per-thread lock a synchronous appender blocks on
        self._queue: list[_Pending] = []
        self._first_queued_at = 0.0
        self._tickets = 0  # records queued so far
        self._completed = 0  # tickets up to this one are written or failed
        self._sync_waiters = 0
        # synchronous appenders seen at the last commit (released + already queued again): the next
        # commit waits briefly for that many, so that they share one fdatasync instead of splitting
        # into two groups that alternate (each then waits for two commits)
        self._expected_sync = 0
        self._committed_at = 0.0
        self._arriving = 0  # synchronous appenders between entering append() and queueing their record
        self._urgent = 0  # flush / checkpoint requests waiting
        self._checkpoint_requests = 0
        self._checkpoints_done = 0
        self._async_failures = 0
        self._closing = False
        self._closed = False
        self._broken: str | None = None
        self._background_error: BaseException | None = None
        self._appended_since_checkpoint = False

        self._open_storage(origin)
        self._writer = threading.Thread(target=self._run, name="guardrail-audit-writer", daemon=True)
        self._writer.start()

    def _open_storage(self, origin: str | None) -> None:
        """Open the directory, take the lock, load or create the key and bring the tail up to date."""
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = os.open(self._dir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise AuditWriteError(f"cannot open the audit log directory {self._dir}: {exc.strerror}") from exc
        try:
            with self._locked():
                self._key = self._load_or_create_key(origin)
                self._mac = RecordMac(self._record_key, self._key.name)
                self._sealer = Sealer(self._seed, self._key.name)
                self._open_tail()
                self._opening = False
        except BaseException:
            os.close(self._lock_fd)
            raise

    @classmethod
    def for_keyring(cls, directory: str | os.PathLike[str], keyring: Any, **options: Any) -> AuditLog:
        """Open the log with a keyring's audit keys: ``hmac_key("audit-checkpoint")`` signs checkpoints
        and seals, ``hmac_key("audit-record")`` authenticates records (``options``: as for the constructor).
        ``keyring`` is a :class:`~guardrail.keys.Keyring` or the path of its directory.
        """
        if isinstance(keyring, str | os.PathLike):
            from guardrail.keys import as_keyring

            keyring = as_keyring(keyring)
        return cls(
            directory,
            signing_key=keyring.hmac_key(SIGNING_KEY_PURPOSE),
            record_key=keyring.hmac_key(RECORD_KEY_PURPOSE),
            **options,
        )

    # ------------------------------------------------------------------ public API

    @property
    def directory(self) -> Path:
        """The log directory."""
        return self._dir

    @property
    def origin(self) -> str:
        """The checkpoint origin (also the key name)."""
        return self._key.name

    @property
    def verifier_key(self) -> str:
        """The ``audit.pub`` text: what a verifier needs, and what to keep off this host."""
        return self._key.encode()

    @property
    def size(self) -> int:
        """Records in the log as this process last saw it (after its own writes)."""
        return self._tail.size

    def append(self, event: Mapping[str, Any], *, sync: bool = True) -> str:
        """Validate and append one event; return its ``event_id``.

        The log sets ``schema``, ``seq``, ``event_id``, ``recorded_at`` and ``integrity``, and
        ``occurred_at`` unless given (an aware datetime or ``YYYY-MM-DDTHH:MM:SS.mmmZ``).

        Args:
            event: the record's other fields (``event.category`` required); never modified.
            sync: wait until the record is durable (fsync'ed), raising if it could not be written. With
                False the record is queued; a failure surfaces at the next :meth:`flush` or :meth:`close`.

        Raises:
            AuditEventError: (a ``ValueError``) the event does not fit the schema, or has a field that is
                never allowed (``text``, ``query_text``, ``chunk``, ``content``, ``raw``, ...).
            AuditWriteError: the record could not be written (``sync=True``), or the log is closed.
            AuditIntegrityError: the log on disk is damaged; nothing more is appended to it.
        """
        if sync:
            with self._mutex:
                self._arriving += 1  # the writer may wait a moment for this one to join its batch
        try:
            now = self._clock()
            members = prepare_event(event, now=now)
            event_id = self._ids((now - _EPOCH) // _MS)
        except BaseException:
            if sync:
                with self._mutex:
                    self._arriving -= 1
                    self._work.notify()
            raise
        members["event_id"] = f'"{event_id}"'
        waiter = self._waiter() if sync else None
        with self._mutex:
            if sync:
                self._arriving -= 1
            self._check_usable()
            while len(self._queue) >= self._max_pending and not self._closing:
                self._progress.wait()
            self._check_usable()
            self._tickets += 1
            pending = _Pending(members, event_id, self._tickets, waiter)
            if not self._queue:
                self._first_queued_at = time.monotonic()
            self._queue.append(pending)
            if waiter is not None:
                self._sync_waiters += 1
            self._work.notify()
        if waiter is None:
            return event_id
        waiter.acquire()  # released by the writer once the record is durable (or failed)
        if pending.error is not None:
            if isinstance(pending.error, GuardrailError):
                raise pending.error
            raise AuditWriteError(f"the audit record was not written: {pending.error}") from pending.error
        return event_id

    def _waiter(self) -> threading.Lock:
        lock: threading.Lock | None = getattr(self._waiters, "lock", None)
        if lock is None:
            lock = threading.Lock()
            lock.acquire()
            self._waiters.lock = lock
        return lock

    def flush(self) -> None:
        """Wait until every record appended so far is durable.

        Raises:
            AuditWriteError: records appended with ``sync=False`` could not be written.
        """
        with self._mutex:
            target = self._tickets
            self._urgent += 1
            self._work.notify()
            try:
                while self._completed < target and self._writer.is_alive():
                    self._progress.wait(0.5)
            finally:
                self._urgent -= 1
            self._raise_async_failures()

    def checkpoint(self) -> None:
        """Write everything queued, then sign a checkpoint of the current size now (e.g. before export).

        Raises:
            AuditWriteError: the checkpoint (or a queued record) could not be written.
        """
        with self._mutex:
            self._check_usable()
            self._checkpoint_requests += 1
            wanted = self._checkpoint_requests
            self._urgent += 1
            self._work.notify()
            try:
                while self._checkpoints_done < wanted and self._writer.is_alive():
                    self._progress.wait(0.5)
            finally:
                self._urgent -= 1
            error, self._background_error = self._background_error, None
            self._raise_async_failures()
        if error is not None:
            raise AuditWriteError(f"the checkpoint could not be written: {error}") from error

    def close(self) -> None:
        """Write what is queued, sign a final checkpoint and stop the writer. Idempotent.

        Raises:
            AuditWriteError: queued records or the final checkpoint could not be written.
        """
        with self._mutex:
            if self._closed:
                return
            self._closing = True
            self._work.notify()
            self._progress.notify_all()
        self._writer.join()
        with self._mutex:
            self._closed = True
            error, self._background_error = self._background_error, None
            self._close_fds()
            self._raise_async_failures()
        if error is not None:
            raise AuditWriteError(f"a checkpoint could not be written: {error}") from error
        if self._broken is not None:
            raise AuditWriteError(f"closed without a final checkpoint: {self._broken}")

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuditLog({str(self._dir)!r}, origin={self.origin!r}, size={self._tail.size})"

    # ------------------------------------------------------------------ appender side helpers

    def _check_usable(self) -> None:
        if os.getpid() != self._pid:
            raise AuditWriteError("an AuditLog cannot be used across fork(): open a new one in the child")
        if self._closing or self._closed:
            raise AuditWriteError("the audit log is closed")
        if self._broken is not None:
            raise AuditWriteError(self._broken)

    def _raise_async_failures(self) -> None:
        failed, self._async_failures = self._async_failures, 0
        if failed:
            raise AuditWriteError(f"{failed} audit record(s) appended with sync=False could not be written")

    # ------------------------------------------------------------------ writer thread

    def _due(self) -> float:
        """When the queued records should be written (monotonic time; inf: nothing queued)."""
        if not self._queue:
            return math.inf
        if self._urgent or self._closing or len(self._queue) >= self._batch_records:
            return 0.0
        if self._sync_waiters:
            # someone waits: write now, unless other synchronous appenders are about to queue, or the
            # ones the last commit released are expected back (then wait for them, briefly: one
            # fdatasync for all of them is the point of group commit)
            if self._arriving or self._sync_waiters < self._expected_sync:
                return max(self._first_queued_at, self._committed_at) + self._commit_wait
            return 0.0
        return self._first_queued_at + self._batch_delay

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: fail closed rather than leave appenders waiting
            self._broken = f"the audit writer stopped unexpectedly: {exc!r}"
            with self._mutex:
                for pending in self._queue:
                    pending.error = AuditWriteError(self._broken)
                    if pending.waiter is not None:
                        pending.waiter.release()
                self._queue.clear()
                self._progress.notify_all()
            raise

    def _loop(self) -> None:
        while True:
            with self._mutex:
                while True:
                    now = time.monotonic()
                    due = self._due()
                    if now >= due:
                        break
                    if not self._queue and (
                        self._closing or self._checkpoint_requests > self._checkpoints_done
                    ):
                        break
                    tick = self._monotonic()
                    if tick >= self._next_tick:
                        break
                    self._work.wait(max(min(due - now, self._next_tick - tick), 0.0))
                batch = self._queue[: self._batch_records]
                del self._queue[: self._batch_records]
                if self._queue:
                    self._first_queued_at = time.monotonic()
                closing = self._closing and not self._queue
                requested = self._checkpoint_requests
                self._progress.notify_all()  # room in the queue
            if batch:
                self._commit(batch)
            elif closing:
                self._background(lambda: self._checkpoint_now(final=True))
                with self._mutex:
                    self._checkpoints_done = self._checkpoint_requests
                    self._progress.notify_all()
                return
            elif requested > self._checkpoints_done:  # only once the queue is drained
                self._background(lambda: self._checkpoint_now(final=True))
                with self._mutex:
                    self._checkpoints_done = requested
                    self._progress.notify_all()
            if self._monotonic() >= self._next_tick:
                if self._appended_since_checkpoint:
                    self._background(lambda: self._checkpoint_now(final=False))
                self._next_tick = self._monotonic() + self._checkpoint_seconds

    def _background(self, action: Callable[[], None]) -> None:
        """Run a checkpoint; keep its error for checkpoint()/close() (nobody else is waiting for it)."""
        if self._broken is not None:
            return
        try:
            with self._locked():
                action()
        except BaseException as exc:  # noqa: BLE001 - reported by checkpoint()/close()
            self._background_error = exc

    def _commit(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            with self._locked():
                self._sync()
                self._write(batch)
                self._appended_since_checkpoint = True
                if (
                    self._tail.size - max(self._tail.cp_size, 0) >= self._checkpoint_every
                    or self._monotonic() >= self._next_tick
                ):
                    self._next_tick = self._monotonic() + self._checkpoint_seconds
                    try:
                        self._write_checkpoint()
                    except Exception as exc:  # noqa: BLE001 - the records are durable: report it at close()
                        self._background_error = exc
        except AuditIntegrityError as exc:
            error = exc
            self._broken = f"the audit log is damaged; nothing more is appended to it: {exc}"
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting appender (fail closed)
            error = exc
        with self._mutex:
            released = 0
            for pending in batch:
                pending.error = error
                if pending.waiter is not None:
                    self._sync_waiters -= 1
                    released += 1
                    pending.waiter.release()
                elif error is not None:
                    self._async_failures += 1
            self._expected_sync = min(released + self._sync_waiters, self._batch_records)
            self._committed_at = time.monotonic()
            self._completed = batch[-1].ticket
            self._progress.notify_all()

    # ------------------------------------------------------------------ under the file lock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _load_or_create_key(self, origin: str | None) -> VerifierKey:
        path = self._dir / PUBLIC_KEY
        public = public_key_of(self._seed)
        if not path.exists() and (
            (self._dir / CHECKPOINTS).exists() or (self._dir / segment_name(1)).exists()
        ):
            raise ConfigError(
                f"{path} is missing but {self._dir} holds an audit log: restore audit.pub from its "
                "off-host copy (a new key would hide a rewritten history)"
            )
        if path.exists():
            try:
                stored = VerifierKey.parse(path.read_text("utf-8"))
            except NoteError as exc:
                raise ConfigError(f"{path}: not a verifier key ({exc})") from None
            if stored.public_key != public:
                raise ConfigError(f"{path}: the signing key does not match this log's public key")
            if origin is not None and origin != stored.name:
                raise ConfigError(f"{path}: this log's origin is {stored.name!r}, not {origin!r}")
            return stored
        key = VerifierKey(check_name(origin or default_origin()), public)
        tmp = path.with_name(f".{PUBLIC_KEY}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (key.encode() + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)  # never overwrites
            tmp.unlink()
            fsync_directory(self._dir)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise AuditWriteError(f"cannot create {path}: {exc.strerror}") from exc
        return key

    def _open_tail(self) -> None:
        self._tail = self._load_state() or _Tail()
        self._sync()
        self._check_checkpoints_at_open()
        if self._tail.size == 0 and self._tail.cp_size < 0:
            self._write_checkpoint()  # the empty tree: a log always has a checkpoints file

    def _load_state(self) -> _Tail | None:
        """The cached tail from state.json, if it is usable; None means: rescan from the first segment."""
        path = self._dir / STATE
        try:
            data = json.loads(path.read_text("utf-8"))
            if data.get("format") != _STATE_FORMAT:
                return None
            tail = _Tail(
                size=int(data["size"]),
                range=CompactRange(int(data["size"]), [bytes.fromhex(h) for h in data["range"]]),
                segment=int(data["segment"]),
                offset=int(data["offset"]),
                segment_records=int(data["segment_records"]),
                torn=bool(data["torn"]),
                legacy=int(data["legacy"]),
            )
            if not hmac.compare_digest(str(data["mac"]), self._state_mac(data)):
                return None  # not written by a holder of the record key: rescan
        except (OSError, ValueError, KeyError, TypeError):
            return None
        seg = self._dir / segment_name(tail.segment)
        try:
            length = seg.stat().st_size
        except FileNotFoundError:
            if tail.size:
                raise AuditIntegrityError(
                    tail.size, "truncated", f"{seg.name} is missing but the log state says it holds records"
                ) from None
            return None
        if length < tail.offset:
            raise AuditIntegrityError(
                tail.size, "truncated", f"{seg.name} is shorter ({length} bytes) than written ({tail.offset})"
            )
        if tail.offset:
            with seg.open("rb") as f:
                f.seek(tail.offset - 1)
                if f.read(1) != b"\n":
                    return None  # not a line boundary: do not trust the cache
        return tail

    def _save_state(self) -> None:
        t = self._tail
        data = {
            "format": _STATE_FORMAT,
            "size": t.size,
            "segment": t.segment,
            "offset": t.offset,
            "segment_records": t.segment_records,
            "torn": t.torn,
            "legacy": t.legacy,
            "range": [h.hex() for h in t.range.hashes],
        }
        data["mac"] = self._state_mac(data)
        tmp = self._dir / f".{STATE}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(data), "utf-8")
            os.replace(tmp, self._dir / STATE)  # a cache: no fsync needed, a stale one is caught up
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a missing or stale cache only makes the next open slower

    def _state_mac(self, data: Mapping[str, Any]) -> str:
        return state_mac(self._record_key, data)

    def _sync(self) -> None:
        """Bring the tail up to date with what is on disk (other processes' records, torn lines)."""
        t = self._tail
        while True:
            path = self._dir / segment_name(t.segment)
            try:
                length = path.stat().st_size
            except FileNotFoundError:
                if t.offset:
                    raise AuditIntegrityError(t.size, "deleted", f"{path.name} has disappeared") from None
                length = 0
            if length < t.offset:
                raise AuditIntegrityError(
                    t.size, "truncated", f"{path.name} is shorter ({length} bytes) than written ({t.offset})"
                )
            if length > t.offset:
                self._read_new(path, length)
            following = self._dir / segment_name(t.segment + 1)
            if not following.exists():
                break
            t.segment += 1
            t.offset = 0
            t.segment_records = 0
            t.torn = False
        self._sync_checkpoints()

    def _read_new(self, path: Path, length: int) -> None:
        t = self._tail
        with path.open("rb") as f:
            f.seek(t.offset)
            data = f.read(length - t.offset)
        end = data.rfind(b"\n") + 1
        if end:
            for line in data[: end - 1].split(b"\n"):
                self._absorb(line, path.name)
                t.segment_records += 1
        t.offset += end
        if end < len(data):
            t.torn = True  # left as found; the next record goes to a new segment

    def _absorb(self, line: bytes, where: str) -> None:
        """Check one stored line written by another writer (format, leaf, seq, MAC) and add its leaf."""
        t = self._tail
        leaf, mac, seal = check_line(line, t.size)
        if mac is None and self._opening and t.legacy == t.size:
            t.legacy += 1  # written before records carried a MAC: checked against a checkpoint
        elif mac is None or not self._mac.check(leaf, mac, seal):
            raise AuditIntegrityError(
                t.size,
                "unauthentic",
                f"record {t.size} ({where}) is not authenticated by this log's record key: "
                "someone without the keyring added or rewrote it; nothing is appended after it "
                "(run `guardrail audit verify` and restore the log from a verified copy)",
            )
        t.range.append(leaf)
        t.size += 1

    def _sync_checkpoints(self) -> None:
        t = self._tail
        path = self._dir / CHECKPOINTS
        try:
            length = path.stat().st_size
        except FileNotFoundError:
            length = 0
        if length < t.cp_bytes:
            raise AuditIntegrityError(None, "truncated", "the checkpoints file has been shortened")
        if length == t.cp_bytes:
            return
        with path.open("rb") as f:
            f.seek(t.cp_bytes)
            data = f.read(length - t.cp_bytes)
        t.cp_bytes = length
        try:
            notes = split_notes(data.decode("utf-8"))
            sizes = [parse_checkpoint(n[: n.rfind("\n\n") + 1]).size for n in notes]
        except (NoteError, UnicodeDecodeError):
            return  # verify reports it; cadence only needs a best guess
        if sizes:
            t.cp_size = max(t.cp_size, *sizes)

    def _check_checkpoints_at_open(self) -> None:
        t = self._tail
        if t.legacy:
            self._check_legacy()
        if t.cp_size > t.size:
            raise AuditIntegrityError(
                t.size, "truncated", f"a checkpoint covers {t.cp_size} records but the log holds {t.size}"
            )
        if t.cp_size == t.size and t.size:
            # the common case after a clean close: the tree must still have the signed root
            data = (self._dir / CHECKPOINTS).read_text("utf-8", errors="replace")
            with contextlib.suppress(NoteError):
                last = split_notes(data)[-1]
                text = verify_note(last, self._key)
                if text is not None:
                    cp = parse_checkpoint(text)
                    if cp.size == t.size and cp.root != t.range.root():
                        raise AuditIntegrityError(
                            None,
                            "edited",
                            f"the records no longer match the signed checkpoint at size {t.size}",
                        )

    def _check_legacy(self) -> None:
        """Records without a MAC (written by an older version) must be covered by a signed checkpoint."""
        t = self._tail
        covered = -1
        with contextlib.suppress(OSError, UnicodeDecodeError, NoteError):
            for note in split_notes((self._dir / CHECKPOINTS).read_text("utf-8")):
                text = verify_note(note, self._key)
                if text is not None:
                    covered = max(covered, parse_checkpoint(text).size)
        if covered < t.legacy:
            raise AuditIntegrityError(
                max(covered, 0),
                "unauthentic",
                f"record {max(covered, 0)} has no MAC and no signed checkpoint covers it: someone without "
                "the keyring may have added it; nothing is appended after it (run `guardrail audit verify`)",
            )

    def _segment_fd(self, number: int) -> int:
        if self._seg_fd is not None and self._seg_fd[0] == number:
            return self._seg_fd[1]
        if self._seg_fd is not None:
            os.close(self._seg_fd[1])
            self._seg_fd = None
        path = self._dir / segment_name(number)
        created = not path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        if created:
            fsync_directory(self._dir)
        self._seg_fd = (number, fd)
        return fd

    def _render(self, batch: list[_Pending]) -> tuple[list[bytes], CompactRange]:
        """The stored lines (with newlines) of a batch appended at the tail, and the tree after it.

        Records get ``seq`` from the tail's size on; the last one carries the seal (the signed tree head
        after the batch)."""
        t = self._tail
        recorded = f'"{format_time(self._clock())}"'
        lines: list[bytes] = []
        leaves: list[bytes] = []
        seq = t.size
        sha256 = hashlib.sha256
        mac = self._mac.mac
        last_body = ""
        for pending in batch:
            members = pending.members
            members["schema"] = _SCHEMA_JSON
            members["seq"] = str(seq)
            members["recorded_at"] = recorded
            body = build_body(members)
            digest = sha256(b"\x00" + body.encode("utf-8")).digest()
            leaves.append(digest)
            lines.append((build_line(body, digest.hex(), mac(digest).decode("ascii")) + "\n").encode("utf-8"))
            last_body = body
            seq += 1
        head = t.range.copy()
        head.extend(leaves)
        seal = self._sealer.seal(seq, head.root(), max(t.cp_size, 0))
        leaf = leaves[-1]
        tag = mac(leaf, seal.encode("ascii")).decode("ascii")
        lines[-1] = (build_line(last_body, leaf.hex(), tag, seal) + "\n").encode("utf-8")
        return lines, head

    def _write(self, batch: list[_Pending]) -> None:
        t = self._tail
        rendered, head = self._render(batch)
        seq = t.size + len(rendered)
        segment, seg_records = t.segment, t.segment_records
        if t.torn or seg_records >= self._segment_records:
            segment, seg_records = segment + 1, 0
        parts: list[tuple[int, list[bytes]]] = [(segment, [])]
        for line in rendered:
            if seg_records >= self._segment_records:
                segment, seg_records = segment + 1, 0
                parts.append((segment, []))
            parts[-1][1].append(line)
            seg_records += 1
        written: list[tuple[int, int]] = []  # (fd, offset before) for rollback
        try:
            for number, lines in parts:
                fd = self._segment_fd(number)
                before = t.offset if number == t.segment else 0
                written.append((fd, before))
                _write_all(fd, b"".join(lines))
                _fdatasync(fd)
        except BaseException:
            self._rollback(written)
            raise
        last, last_lines = parts[-1]
        t.offset = (t.offset if last == t.segment else 0) + sum(len(x) for x in last_lines)
        if last != t.segment:
            t.torn = False
        t.segment = last
        t.segment_records = seg_records
        t.range = head
        t.size = seq

    def _rollback(self, written: list[tuple[int, int]]) -> None:
        """Undo a partly written batch (its callers are told it failed), or mark the log unusable."""
        try:
            for fd, before in written:
                os.ftruncate(fd, before)
                _fdatasync(fd)
        except OSError as exc:
            self._broken = (
                "an audit write failed and could not be rolled back "
                f"({exc.strerror}); reopen the log (verify reports any torn record)"
            )
        if self._seg_fd is not None:
            os.close(self._seg_fd[1])
            self._seg_fd = None

    def _checkpoint_now(self, *, final: bool) -> None:
        self._sync()
        t = self._tail
        if t.size > t.cp_size or (final and t.cp_size < 0):
            self._write_checkpoint()
        elif final:
            self._save_state()

    def _write_checkpoint(self) -> None:
        t = self._tail
        note = sign_note(
            format_checkpoint(self._key.name, t.size, t.range.root()), self._key.name, self._seed
        )
        data = note.encode("utf-8")
        if self._cp_fd is None:
            path = self._dir / CHECKPOINTS
            created = not path.exists()
            self._cp_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            if created:
                fsync_directory(self._dir)
        _write_all(self._cp_fd, data)
        _fdatasync(self._cp_fd)
        t.cp_size = t.size
        t.cp_bytes += len(data)
        self._appended_since_checkpoint = False
        self._save_state()

    def _close_fds(self) -> None:
        for fd in (self._seg_fd[1] if self._seg_fd else None, self._cp_fd, self._lock_fd):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._seg_fd = None
        self._cp_fd = None
        self._lock_fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
