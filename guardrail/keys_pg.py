"""Keyring state on PostgreSQL: one set of DEK versions, primaries, tombstones and shreds for a fleet.

The key material stays where its KEK backend keeps it (``kek.key`` in the keyring directory, a
passphrase, an HSM): only the keyring document, the wrapped DEKs, their states, and the wrapped check and
index keys, moves into the ``keyring_state`` table (one row per keyring name). The keyring directory then
holds the KEK material and a pointer ``keyring.json``::

    {"format": "guardrail.keyring/1", "state": "postgresql://app@db/guardrail?keyring=default",
     "refresh_seconds": 1.0}

* **Changes** (new DEKs, rotations, destroy, shreds) run in one transaction holding the row's lock
  (``SELECT ... FOR UPDATE``): the latest document is read, changed and written back with its version
  moved on. Two hosts rotating at once give two successive versions and one primary.
* **Staleness bound.** Before a key is handed out (sealing or opening a record), the keyring checks the
  row's version when its last check is older than ``refresh_seconds`` (default 1 s) and reloads on a
  change, dropping cached DEKs destroyed elsewhere. So a shred or erasure on one host is honoured by
  every other host's releases at most ``refresh_seconds`` (plus one query) after it committed.
* **Fail closed.** When the check is due and the database cannot be reached, no key is handed out
  (:class:`~guardrail.keys.KeyringError`): a retrieval is refused rather than risk releasing a subject
  shredded meanwhile. A change that cannot be committed (a shred, an erasure) raises and is reported as
  failed; the in-memory state is reloaded before the next use. The first call after the server is back
  succeeds.

Move an existing keyring's state with :func:`move_state` (``guardrail db adopt-keyring``); copy the
keyring directory (or, with a passphrase or an HSM, only ``keyring.json``) to the other hosts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from guardrail.db import Database, DatabaseError, parse_location, shared_database
from guardrail.keys import _BACKENDS, FORMAT, KEYRING_FILE, Kek, Keyring, KeyringError, _write_json

__all__ = ["DEFAULT_REFRESH_SECONDS", "PgKeyring", "move_state", "open_postgres_state"]

DEFAULT_REFRESH_SECONDS = 1.0


class PgKeyring(Keyring):
    """A :class:`~guardrail.keys.Keyring` whose mutable state lives in PostgreSQL (see the module)."""

    def __init__(
        self,
        directory: Path,
        kek: Kek,
        data: dict[str, Any],
        *,
        db: Database,
        version: int,
        refresh_seconds: float,
    ) -> None:
        self._db = db
        self._name = db.location.keyring
        self._version = version
        self._refresh_seconds = refresh_seconds
        self._checked = time.monotonic()
        super().__init__(directory, kek, data)

    def __repr__(self) -> str:
        return (
            f"PgKeyring({str(self.directory)!r}, state={self._db.location.display!r}, "
            f"keyring={self._name!r}, backend={self._kek.backend!r}, keys={len(self._data['keys'])})"
        )

    @property
    def refresh_seconds(self) -> float:
        """The staleness bound: how old the state used for a release may be."""
        return self._refresh_seconds

    # ------------------------------------------------------------------ persistence hooks

    def _file_stamp(self) -> tuple[int, int, int]:
        return (self._version, 0, 0)

    def _fail(self, exc: BaseException, doing: str) -> KeyringError:
        self._checked = -math.inf  # reload before the next use
        self._version = -1
        message = str(exc) if isinstance(exc, DatabaseError) else str(self._db.unavailable(exc, doing))
        return KeyringError(f"keyring state not available, nothing was {doing}: {message}")

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self._refresh_seconds:
            return
        with self._lock:
            if time.monotonic() - self._checked < self._refresh_seconds:
                return
            started = time.monotonic()
            try:
                with self._db.connection("checking the keyring state") as conn:
                    row = conn.execute(
                        f"SELECT version FROM {self._db.schema}.keyring_state WHERE name = %s", (self._name,)
                    ).fetchone()
                    if row is None:
                        raise KeyringError(f"keyring {self._name!r} is gone from {self._db.location.display}")
                    if int(row[0]) != self._version:
                        self._load(conn)
            except KeyringError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: no key is handed out (fail closed)
                raise self._fail(exc, "released") from None
            self._checked = started

    def _load(self, conn: Any, *, lock: bool = False) -> None:
        row = conn.execute(
            f"SELECT version, data FROM {self._db.schema}.keyring_state WHERE name = %s"
            + (" FOR UPDATE" if lock else ""),
            (self._name,),
        ).fetchone()
        if row is None:
            raise KeyringError(f"keyring {self._name!r} is gone from {self._db.location.display}")
        self._replace_data(json.loads(row[1]))
        self._version = int(row[0])

    def _reload(self) -> None:
        conn = getattr(self, "_tx", None)
        if conn is not None:
            self._load(conn)
            return
        try:
            with self._db.connection("reloading the keyring state") as c:
                self._load(c)
        except KeyringError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: reported, nothing is pretended
            raise self._fail(exc, "released") from None

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            with self._db.connection("changing the keyring state") as conn, conn.transaction():
                self._load(conn, lock=True)
                self._tx: Any = conn
                self._dirty = False
                try:
                    yield
                finally:
                    self._tx = None
                if self._dirty:
                    conn.execute(
                        f"UPDATE {self._db.schema}.keyring_state SET version = version + 1, data = %s, "
                        "updated_at = now() WHERE name = %s RETURNING version",
                        (json.dumps(self._data, sort_keys=True), self._name),
                    )
                    self._version += 1
        except KeyringError:
            self._checked = -math.inf
            self._version = -1
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: reported, nothing is pretended
            raise self._fail(exc, "changed") from None
        self._checked = started

    def _save(self) -> None:
        self._dirty = True  # written by _locked_file, in its transaction


def open_postgres_state(directory: Path, pointer: dict[str, Any], kek: Kek | None) -> PgKeyring:
    """Open a keyring whose ``keyring.json`` points at PostgreSQL (called by :meth:`Keyring.open`).

    Raises:
        KeyringError: the state cannot be read (server down, no such keyring), or the KEK does not open it.
    """
    location = str(pointer["state"])
    refresh = float(pointer.get("refresh_seconds", DEFAULT_REFRESH_SECONDS))
    if not refresh > 0:
        raise KeyringError(f"{directory / KEYRING_FILE}: refresh_seconds must be > 0")
    db = shared_database(location)
    try:
        with db.connection("opening the keyring state") as conn:
            row = conn.execute(
                f"SELECT version, data FROM {db.schema}.keyring_state WHERE name = %s", (db.location.keyring,)
            ).fetchone()
    except DatabaseError as exc:
        raise KeyringError(f"{directory}: keyring state not available: {exc}") from None
    if row is None:
        raise KeyringError(
            f"{directory}: no keyring {db.location.keyring!r} in {db.location.display} "
            f"(schema {db.location.schema}); move one there with `guardrail db adopt-keyring`"
        )
    data = json.loads(row[1])
    if kek is None:
        params = data["kek"]
        opener = _BACKENDS.get(params.get("backend"))
        if opener is None:
            raise KeyringError(f"{directory}: unknown KEK backend {params.get('backend')!r}")
        kek = opener(directory, params)
    return PgKeyring(directory, kek, data, db=db, version=int(row[0]), refresh_seconds=refresh)


def move_state(
    directory: str | os.PathLike[str], location: str, *, refresh_seconds: float = DEFAULT_REFRESH_SECONDS
) -> PgKeyring:
    """Move a keyring directory's state into PostgreSQL; the directory keeps its KEK material and a pointer.

    Raises:
        KeyringError: the keyring is already in PostgreSQL, or a keyring of that name exists there.
        DatabaseUnavailable: the server cannot be reached.
    """
    directory = Path(directory)
    ring = Keyring.open(directory)
    if isinstance(ring, PgKeyring):
        raise KeyringError(f"{directory}: its state is already in PostgreSQL")
    parsed = parse_location(location)
    db = shared_database(location)
    with ring._lock, ring._locked_file():  # no local change while it moves
        with db.connection("moving the keyring state") as conn, conn.transaction():
            done = conn.execute(
                f"INSERT INTO {db.schema}.keyring_state (name, version, data) VALUES (%s, 1, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (parsed.keyring, json.dumps(ring._data, sort_keys=True)),
            ).fetchone()
            if done is None:
                raise KeyringError(
                    f"{parsed.display}: a keyring named {parsed.keyring!r} is already there "
                    "(choose another with ?keyring=NAME)"
                )
        _write_json(
            directory / KEYRING_FILE,
            {"format": FORMAT, "state": location, "refresh_seconds": refresh_seconds},
        )
    opened = Keyring.open(directory)
    assert isinstance(opened, PgKeyring)
    return opened
