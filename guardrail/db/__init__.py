"""PostgreSQL for fleets: one audit log, one keyring state and one token vault shared by many hosts.

A location is a libpq URL, ``postgresql://USER@HOST:PORT/DBNAME?sslmode=verify-full&...``. Every libpq
parameter is passed through (TLS: ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``; ``passfile``,
``connect_timeout``, ``application_name``, ``host=/socket/dir``, ...). guardrail's own parameters are
taken out before connecting:

* ``schema`` (default ``guardrail``): the schema holding guardrail's tables (one audit log per schema);
* ``vault`` (default ``default``): the token vault's name inside the schema;
* ``keyring`` (default ``default``): the keyring state's name inside the schema;
* ``pool_size`` (default 4), ``statement_timeout`` (milliseconds, default 15000).

Give the password through ``PGPASSWORD``, ``~/.pgpass`` or ``passfile=``; one inside the URL is
accepted but never printed: errors and reprs name ``user@host:port/dbname`` only.

Every failure to reach or use the database raises :class:`DatabaseUnavailable`: callers fail closed
(no release, no publication, a shred reported as failed). Connections are pooled per process; a broken
connection is dropped and the next call connects again, so the process recovers by itself once the
server is back.
"""

from __future__ import annotations

import atexit
import os
import re
import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from guardrail.errors import ConfigError, GuardrailError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseUnavailable",
    "DbLocation",
    "is_postgres_url",
    "parse_location",
    "scrub_passwords",
]

_SCHEMES = ("postgresql", "postgres")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_OWN = ("schema", "vault", "keyring", "pool_size", "statement_timeout")


class DatabaseError(GuardrailError):
    """A database operation failed (names the server, never the password)."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or did not answer in time: the operation did not happen."""


_URL_PASSWORD = re.compile(r"((?:postgresql|postgres):/{1,2}[^/\s:@]*:)[^@\s/]*@", re.IGNORECASE)
_QUERY_PASSWORD = re.compile(r"((?:[?&]|\b)password=)[^&\s'\"]*", re.IGNORECASE)


def scrub_passwords(text: str) -> str:
    """``text`` with any password of a PostgreSQL URL in it (``user:PASSWORD@``, ``password=...``)
    replaced by ``***``: for messages that echo a location the user typed."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def is_postgres_url(location: object) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or ``postgres://``).

    A ``Path`` made from a URL (``postgresql:/host/db``: one slash eaten) counts too.
    """
    if not isinstance(location, str | os.PathLike):
        return False
    text = os.fspath(location)
    return isinstance(text, str) and any(text.startswith(f"{s}:/") for s in _SCHEMES)


def _restore(text: str) -> str:
    for scheme in _SCHEMES:
        if text.startswith(f"{scheme}:/") and not text.startswith(f"{scheme}://"):
            return f"{scheme}://{text[len(scheme) + 2 :]}"
    return text


@dataclass(frozen=True)
class DbLocation:
    """A parsed location: what libpq gets, guardrail's own parameters, and a printable name."""

    conninfo: str = field(repr=False)
    schema: str
    vault: str
    keyring: str
    pool_size: int
    statement_timeout: int
    display: str
    secret: str | None = field(default=None, repr=False)

    def url(self) -> str:
        """The location without any password (what guardrail writes into files it creates)."""
        parts = urlsplit(self.conninfo)
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        host = netloc[2]
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.pop("password", None)
        if self.schema != "guardrail":
            query["schema"] = self.schema
        return urlunsplit(
            (parts.scheme, f"{user}@{host}" if user else host, parts.path, urlencode(query), "")
        )

    def scrub(self, text: str) -> str:
        """``text`` with the password (if any) replaced."""
        if self.secret:
            text = text.replace(self.secret, "***")
        return text


def parse_location(location: str | os.PathLike[str]) -> DbLocation:
    """Parse a ``postgresql://`` location.

    Raises:
        ConfigError: not a PostgreSQL URL, or a bad guardrail parameter.
    """
    text = _restore(os.fspath(location))
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES:
        raise ConfigError("not a PostgreSQL location: write postgresql://USER@HOST:PORT/DBNAME")
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN}
    passed = [(k, v) for k, v in query if k not in _OWN]
    schema = own.get("schema", "guardrail")
    for name, value in (("schema", schema), ("vault", own.get("vault", "default"))):
        if not _NAME.fullmatch(value):
            raise ConfigError(
                f"{name}={value!r} in the PostgreSQL location: use lower-case letters, digits and '_'"
            )
    keyring = own.get("keyring", "default")
    if not _NAME.fullmatch(keyring):
        raise ConfigError(
            f"keyring={keyring!r} in the PostgreSQL location: use lower-case letters, digits, '_'"
        )
    try:
        pool_size = int(own.get("pool_size", "4"))
        statement_timeout = int(own.get("statement_timeout", "15000"))
    except ValueError:
        raise ConfigError("pool_size and statement_timeout in the PostgreSQL location are integers") from None
    if pool_size < 1 or statement_timeout < 0:
        raise ConfigError("pool_size must be >= 1 and statement_timeout (ms) >= 0")
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(passed), ""))
    secret = parts.password or dict(passed).get("password") or None
    host = dict(passed).get("host") or parts.hostname or "localhost"
    port = dict(passed).get("port") or (str(parts.port) if parts.port else "5432")
    user = dict(passed).get("user") or parts.username or ""
    dbname = parts.path.lstrip("/") or dict(passed).get("dbname") or user or "postgres"
    display = f"{user + '@' if user else ''}{host}:{port}/{dbname}"
    return DbLocation(
        conninfo=conninfo,
        schema=schema,
        vault=own.get("vault", "default"),
        keyring=keyring,
        pool_size=pool_size,
        statement_timeout=statement_timeout,
        display=display,
        secret=secret,
    )


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "PostgreSQL locations need psycopg: pip install 'guardrail-privacy[postgres]'"
        ) from None
    return psycopg


class Database:
    """A small per-process pool of connections to one location.

    Connections are made on demand (``connect_timeout`` 5 s unless the URL says otherwise), kept up to
    ``pool_size`` idle, and dropped when they fail: no background threads, no reconnect back-off, so
    the first call after the server is back succeeds. Safe across threads; after ``fork()`` the child
    starts with an empty pool.
    """

    def __init__(self, location: str | os.PathLike[str] | DbLocation) -> None:
        self.location = location if isinstance(location, DbLocation) else parse_location(location)
        self.schema = f'"{self.location.schema}"'
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def __repr__(self) -> str:
        return f"Database({self.location.display!r}, schema={self.location.schema!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Database holds connections and cannot be pickled (pass its location)")

    def unavailable(self, exc: BaseException, doing: str) -> DatabaseUnavailable:
        """The error to raise for a failure while ``doing`` something (server named, password never)."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return DatabaseUnavailable(
            self.location.scrub(
                f"PostgreSQL at {self.location.display} failed while {doing}: {reason} "
                "(check that the server is up and reachable, and the role's grants: `guardrail db status`)"
            )
        )

    def _connect(self) -> psycopg.Connection[Any]:
        psycopg = _psycopg()
        options: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self.location.conninfo:
            options["connect_timeout"] = 5
        conn = psycopg.connect(self.location.conninfo, **options)
        if self.location.statement_timeout:
            conn.execute(f"SET statement_timeout = {int(self.location.statement_timeout)}")
        return conn  # type: ignore[no-any-return]

    @contextmanager
    def connection(self, doing: str = "running a query") -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit; open a transaction with ``conn.transaction()``).

        Raises:
            DatabaseUnavailable: it cannot be reached, or an operation on it failed for a reason that is
                not a bug of the query (connection lost, timeout, permission).
        """
        psycopg = _psycopg()
        conn = self._checkout()
        try:
            if conn is None:
                conn = self._connect()
        except psycopg.Error as exc:
            raise self.unavailable(exc, doing) from None
        ok = False
        try:
            yield conn
            ok = True
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.RaiseException):
                raise
            raise self.unavailable(exc, doing) from None
        finally:
            keep = (
                ok
                and not conn.closed
                and not conn.broken
                and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            )
            with self._lock:
                if keep and not self._closed and len(self._idle) < self.location.pool_size:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def _checkout(self) -> psycopg.Connection[Any] | None:
        """An idle connection that is still alive, or None. An idle connection has nothing to read: if its
        socket is readable, the server said goodbye (a restart, a terminated backend) and it is dropped."""
        while True:
            with self._lock:
                if os.getpid() != self._pid:
                    self._idle = []  # the parent's sockets are not ours
                    self._pid = os.getpid()
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return None
            try:
                readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
            except (OSError, ValueError):
                readable = [True]
            if not readable:
                return conn
            conn.close()

    def close(self) -> None:
        """Close the idle connections (in use ones close when given back)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for conn in idle:
            conn.close()


_SHARED: dict[str, Database] = {}
_SHARED_LOCK = threading.Lock()


@atexit.register
def _close_shared() -> None:
    with _SHARED_LOCK:
        shared = list(_SHARED.values())
    for db in shared:
        db.close()


def shared_database(location: str | os.PathLike[str]) -> Database:
    """One :class:`Database` per location and process (the keyring state and vaults share it)."""
    parsed = parse_location(location)
    key = parsed.conninfo + "\x00" + parsed.schema
    with _SHARED_LOCK:
        db = _SHARED.get(key)
        if db is None or db._closed:
            db = _SHARED[key] = Database(parsed)
        return db
