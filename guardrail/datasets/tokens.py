"""Dataset-wide pseudonym tokens: the same value gets the same token across records, runs and workers.

Two methods, both a :class:`TokenSource` (one verb, ``token(entity, value)``):

- :class:`KeyedTokens`: a keyed HMAC-SHA256 of the normalised value (``<PERSON_k3f9a1b2c4>``). No state,
  so any number of processes agree without talking to each other. This is GDPR pseudonymisation
  (Art. 4(5)) as long as the key is kept apart from the data; the output stays personal data.
- :class:`TokenVault`: a random token per value (``<PERSON_7Q2K9X>``), kept in a SQLite file. The token is
  not derived from the person's data, as HIPAA 164.514(c) asks of a re-identification code. The file
  holds a keyed MAC of each value (for look-up) and the value sealed under the tenant's key (for
  :meth:`TokenVault.reidentify`); never a value in clear.

Values are normalised before tokenising (case folded, whitespace collapsed), so ``"Megan  Murphy"`` and
``"megan murphy"`` get one token. Tokens differ per entity type.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

from guardrail.crypto import Context, DecryptionError, Sealer
from guardrail.errors import ConfigError, DataErased
from guardrail.redaction import TokenSource

if TYPE_CHECKING:
    from guardrail.keys import KeyringLike

__all__ = ["KeyedTokens", "TokenSource", "TokenVault", "VaultErasure", "VaultError"]

_ENTITY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# no 0/O, 1/I/L, U: tokens are read and typed by people during re-identification requests
_VAULT_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
_VAULT_FORMAT = "guardrail.vault/1"
_MAX_ATTEMPTS = 32


class VaultError(ConfigError):
    """A token vault cannot be used: not a vault, another keyring or tenant, or an unknown token."""


def _normalise(value: str) -> str:
    return " ".join(value.split()).casefold()


def _encode(*parts: str) -> bytes:
    """An unambiguous encoding of several strings (a JSON list), for keyed hashes."""
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()


def _check_entity(entity: str) -> str:
    if not _ENTITY.fullmatch(entity):
        raise ConfigError(
            f"entity type {entity!r} is not valid: use letters, digits and '_' (e.g. PERSON, US_SSN)"
        )
    return entity


@dataclass(frozen=True, slots=True)
class VaultErasure:
    """What :meth:`TokenVault.erase_subject` did: tokens deleted, tokens kept because other subjects'
    records use them too."""

    deleted: int
    shared: int


def _now_text() -> str:
    from guardrail.audit.schema import format_time

    return format_time(datetime.now(UTC))


class KeyedTokens:
    """Deterministic keyed tokens: ``<ENTITY_` + base32(HMAC-SHA256(key, [entity, value]))[:length] + `>``.

    Args:
        key: at least 16 bytes, kept apart from the data (see :meth:`for_keyring`).
        length: base32 characters in the token, 8 to 52 (10 = 50 bits: collisions are unlikely below
            millions of distinct values per entity type; raise it for larger datasets).

    Raises:
        ConfigError: the key is too short or the length out of range.
    """

    method: ClassVar[str] = "keyed-hmac-sha256"

    def __init__(self, key: bytes, *, length: int = 10) -> None:
        if not isinstance(key, bytes) or len(key) < 16:
            raise ConfigError("a token key is at least 16 bytes (use KeyedTokens.for_keyring)")
        if not 8 <= length <= 52:
            raise ConfigError(f"token length must be 8 to 52 characters, not {length}")
        self.__key = key
        self.length = length

    @classmethod
    def for_keyring(
        cls, keyring: KeyringLike, tenant: str, dataset_scope: str = "default", *, length: int = 10
    ) -> KeyedTokens:
        """Tokens under a key derived from the keyring for one tenant and dataset scope.

        The same keyring, tenant and scope give the same tokens in every process and run; another scope
        gives unlinkable tokens (use one per release when datasets must not be joinable).
        """
        from guardrail.keys import as_keyring

        base = as_keyring(keyring).hmac_key("dataset-tokens")
        return cls(hmac.digest(base, _encode(tenant, dataset_scope), "sha256"), length=length)

    def token(self, entity: str, value: str) -> str:
        """The token for ``value`` (normalised) of type ``entity``."""
        digest = hmac.digest(self.__key, _encode(_check_entity(entity), _normalise(value)), "sha256")
        return f"<{entity}_{base64.b32encode(digest).decode('ascii').lower()[: self.length]}>"

    def __repr__(self) -> str:
        return f"KeyedTokens(length={self.length})"

    def __reduce__(self) -> tuple[object, ...]:
        # workers rebuild it with for_keyring (a Keyring cannot be pickled either)
        raise TypeError("KeyedTokens holds key material and cannot be pickled")


class TokenVault:
    """Random tokens kept in a SQLite file: ``<ENTITY_XXXXXX>``, re-identifiable only with the keyring.

    Each row holds a keyed MAC of (entity, normalised value), the token, and the value as first seen,
    sealed with :class:`~guardrail.crypto.Sealer` under the tenant's key in the context
    ``(store="vault", namespace=entity, key=token, tenant=tenant)``. The file itself is not encrypted as a
    whole: entity types, tokens and row counts are visible; values are not. New files are created 0600.

    Safe across threads and processes (each insert is one SQLite transaction; a losing writer reads the
    winner's token). Deleting a row unlinks that person from their token.

    Args:
        path: the vault file (created if missing).
        keyring: the keyring holding the tenant's key and the MAC key.
        tenant: the tenant whose key seals the values.
        length: random characters per token (6 to 20; 6 gives 30**6 ~ 7e8 tokens per entity type).

    Raises:
        VaultError: the file is not a vault, or belongs to another keyring or tenant.
    """

    method: ClassVar[str] = "vault-random"

    def __new__(cls, path: str | Path, *args: object, **kwargs: object) -> TokenVault:
        """A ``postgresql://`` location opens the PostgreSQL vault (:mod:`guardrail.datasets.tokens_pg`)."""
        if cls is TokenVault:
            from guardrail.db import is_postgres_url

            if is_postgres_url(path):
                from guardrail.datasets.tokens_pg import PgTokenVault

                return super().__new__(PgTokenVault)
        return super().__new__(cls)

    def __init__(self, path: str | Path, *, keyring: KeyringLike, tenant: str, length: int = 6) -> None:
        from guardrail.keys import as_keyring

        keyring = as_keyring(keyring)
        if not 6 <= length <= 20:
            raise ConfigError(f"vault token length must be 6 to 20 characters, not {length}")
        self.path = Path(path)
        self.tenant = tenant
        self.length = length
        self._sealer = Sealer(keyring)
        self.__mac_key = hmac.digest(keyring.hmac_key("token-vault"), _encode(tenant), "sha256")
        self._lock = threading.Lock()
        if self.path.is_dir():
            raise VaultError(f"{self.path}: is a directory; give a file path for the token vault")
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process created it first
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # isolation_level=None: autocommit; each statement is its own transaction unless BEGIN is issued
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            self._init_schema()
        except sqlite3.DatabaseError:
            self._db.close()
            raise VaultError(f"{self.path}: not a token vault (not a SQLite database)") from None
        except VaultError:
            self._db.close()
            raise

    def _init_schema(self) -> None:
        check = hmac.digest(self.__mac_key, b"vault check", "sha256").hex()
        db = self._db
        db.execute("PRAGMA secure_delete = ON")  # deleted rows (unlinked people) are overwritten
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS tokens (mac BLOB PRIMARY KEY, entity TEXT NOT NULL, "
                "token TEXT NOT NULL UNIQUE, sealed BLOB NOT NULL)"
            )
            # whose tokens these are (--subject-field), and tokens erased (Art. 17): re-identification of
            # an erased token answers "erased", not "unknown"; subjects are keyed references only
            db.execute(
                "CREATE TABLE IF NOT EXISTS token_subjects (token TEXT NOT NULL, subject TEXT NOT NULL, "
                "PRIMARY KEY (token, subject))"
            )
            db.execute("CREATE TABLE IF NOT EXISTS erased (token TEXT PRIMARY KEY, erased_at TEXT NOT NULL)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS token_created (token TEXT PRIMARY KEY, created_at TEXT NOT NULL)"
            )
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('check', ?)", (_VAULT_FORMAT, check)
            )
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if meta.get("format") != _VAULT_FORMAT:
            raise VaultError(f"{self.path}: not a {_VAULT_FORMAT} token vault")
        if not hmac.compare_digest(str(meta.get("check")), check):
            raise VaultError(
                f"{self.path}: this vault belongs to another keyring or tenant (open it with the keyring "
                "and tenant that created it)"
            )

    def _mac(self, entity: str, value: str) -> bytes:
        return hmac.digest(self.__mac_key, _encode(entity, _normalise(value)), "sha256")

    def token(self, entity: str, value: str) -> str:
        """The value's token: the existing one, or a new random one.

        Raises:
            VaultError: no free token was found (the token space for this entity is nearly full).
        """
        mac = self._mac(_check_entity(entity), value)
        with self._lock:
            row = self._db.execute("SELECT token FROM tokens WHERE mac = ?", (mac,)).fetchone()
            if row is not None:
                return str(row[0])
            for _ in range(_MAX_ATTEMPTS):
                candidate = (
                    f"<{entity}_{''.join(secrets.choice(_VAULT_ALPHABET) for _ in range(self.length))}>"
                )
                sealed = self._sealer.seal(value.encode("utf-8"), context=self._context(entity, candidate))
                # OR IGNORE: the value may have been added by another process (mac taken), or the random
                # token is taken (token unique); the SELECT tells which
                self._db.execute(
                    "INSERT OR IGNORE INTO tokens (mac, entity, token, sealed) VALUES (?, ?, ?, ?)",
                    (mac, entity, candidate, sealed),
                )
                row = self._db.execute("SELECT token FROM tokens WHERE mac = ?", (mac,)).fetchone()
                if row is not None:
                    self._db.execute(
                        "INSERT OR IGNORE INTO token_created VALUES (?, ?)", (str(row[0]), _now_text())
                    )
                    return str(row[0])
        raise VaultError(f"{self.path}: no free {entity} token after {_MAX_ATTEMPTS} attempts")

    def reidentify(self, token: str) -> str:
        """The value a token stands for (as first seen). Log every call: it is a disclosure.

        Raises:
            VaultError: the token is not in this vault.
            DecryptionError: the sealed value does not open (wrong keyring, erased key, tampered row).
        """
        with self._lock:
            row = self._db.execute("SELECT entity, sealed FROM tokens WHERE token = ?", (token,)).fetchone()
        if row is None:
            if self.is_erased(token):
                raise DataErased("the token was erased (Art. 17 erasure or retention): no value is kept")
            raise VaultError(f"{self.path}: unknown token (not in this vault)")
        entity, sealed = str(row[0]), bytes(row[1])
        try:
            return self._sealer.open(sealed, context=self._context(entity, token)).decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError(token) from None

    def link_subject(self, token: str, subject_ref: str) -> None:
        """Record that ``token`` (a token of this vault) occurs in a record about ``subject_ref``."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO token_subjects VALUES (?, ?)", (token, subject_ref))

    def erase_subject(self, subject_ref: str) -> VaultErasure:
        """Delete the tokens linked to ``subject_ref`` and their sealed values (Art. 17).

        A token also linked to another subject (a clinician named in two patients' records) is about
        someone else too: it is unlinked from this subject and kept, and counted in ``shared``.
        """
        now = _now_text()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                linked = [
                    str(r[0])
                    for r in db.execute("SELECT token FROM token_subjects WHERE subject = ?", (subject_ref,))
                ]
                shared = 0
                deleted: list[str] = []
                for token in linked:
                    others = db.execute(
                        "SELECT count(*) FROM token_subjects WHERE token = ? AND subject != ?",
                        (token, subject_ref),
                    ).fetchone()[0]
                    if others:
                        shared += 1
                        continue
                    cur = db.execute("DELETE FROM tokens WHERE token = ?", (token,))
                    if cur.rowcount:
                        deleted.append(token)
                    db.execute("DELETE FROM token_created WHERE token = ?", (token,))
                    db.execute("INSERT OR REPLACE INTO erased VALUES (?, ?)", (token, now))
                db.execute("DELETE FROM token_subjects WHERE subject = ?", (subject_ref,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return VaultErasure(deleted=len(deleted), shared=shared)

    def delete_tokens(self, tokens: Sequence[str]) -> int:
        """Delete ``tokens`` and their sealed values (retention); they answer "erased" afterwards."""
        now = _now_text()
        n = 0
        with self._lock:
            for token in tokens:
                n += self._db.execute("DELETE FROM tokens WHERE token = ?", (token,)).rowcount
                self._db.execute("DELETE FROM token_created WHERE token = ?", (token,))
                self._db.execute("DELETE FROM token_subjects WHERE token = ?", (token,))
                self._db.execute("INSERT OR REPLACE INTO erased VALUES (?, ?)", (token, now))
        return n

    def created_before(self, moment: str) -> list[str]:
        """Tokens first made before ``moment`` (an audit time string)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT t.token FROM tokens t JOIN token_created c ON c.token = t.token "
                "WHERE c.created_at < ?",
                (moment,),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def is_erased(self, token: str) -> bool:
        """Whether ``token`` was deleted by an erasure or by retention."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM erased WHERE token = ?", (token,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM tokens").fetchone()[0])

    def _context(self, entity: str, token: str) -> Context:
        return Context(store="vault", namespace=entity, key=token, tenant=self.tenant)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> TokenVault:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenVault({str(self.path)!r}, tenant={self.tenant!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a TokenVault holds key material and cannot be pickled (open it in each process)")
