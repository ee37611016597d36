"""The token vault on PostgreSQL: the same random tokens and sealed values as the SQLite vault, shared by
every process, Ray worker and host that opens the same location (no shared file system needed).

``TokenVault("postgresql://app@db/guardrail?vault=trials", keyring=..., tenant=...)`` returns a
:class:`PgTokenVault`. Rows (tables ``vault_*``, :mod:`guardrail.db.schema`) hold a keyed MAC of each
(entity, normalised value), the token, and the value sealed under the tenant's key in the context
``(store="vault", namespace=entity, key=token, tenant=tenant)``: never a value in clear. A new value
is inserted with ``ON CONFLICT DO NOTHING``: when two workers race on one value, the loser reads the
winner's token, so every worker gets the same one. A database error raises
:class:`~guardrail.db.DatabaseUnavailable`: a dataset run stops and publishes nothing.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.crypto import DecryptionError, Sealer
from guardrail.datasets.tokens import (
    _MAX_ATTEMPTS,
    _VAULT_ALPHABET,
    _VAULT_FORMAT,
    TokenVault,
    VaultErasure,
    VaultError,
    _check_entity,
    _encode,
    _normalise,
    _now_text,
)
from guardrail.db import shared_database
from guardrail.errors import ConfigError, DataErased

if TYPE_CHECKING:
    from guardrail.keys import KeyringLike

__all__ = ["PgTokenVault"]


class PgTokenVault(TokenVault):
    """A :class:`~guardrail.datasets.tokens.TokenVault` in PostgreSQL (see the module)."""

    def __init__(
        self, path: str | os.PathLike[str], *, keyring: KeyringLike, tenant: str, length: int = 6
    ) -> None:
        import secrets

        from guardrail.keys import as_keyring

        keyring = as_keyring(keyring)
        if not 6 <= length <= 20:
            raise ConfigError(f"vault token length must be 6 to 20 characters, not {length}")
        self._secrets = secrets
        self.location = os.fspath(path)
        self.path = Path(self.location)
        self.tenant = tenant
        self.length = length
        self._sealer = Sealer(keyring)
        self._key = hmac.digest(keyring.hmac_key("token-vault"), _encode(tenant), "sha256")
        self._pg = shared_database(self.location)
        self._vault = self._pg.location.vault
        s = self._pg.schema
        check = hmac.digest(self._key, b"vault check", "sha256").hex()
        with self._pg.connection("opening the token vault") as conn:
            from guardrail.db.schema import check_version

            check_version(self._pg, conn)
            conn.execute(
                f"INSERT INTO {s}.vault_meta (vault, format, check_mac) VALUES (%s, %s, %s) "
                "ON CONFLICT (vault) DO NOTHING",
                (self._vault, _VAULT_FORMAT, check),
            )
            row = conn.execute(
                f"SELECT format, check_mac FROM {s}.vault_meta WHERE vault = %s", (self._vault,)
            ).fetchone()
        where = f"{self._pg.location.display} vault {self._vault!r}"
        if row is None or row[0] != _VAULT_FORMAT:
            raise VaultError(f"{where}: not a {_VAULT_FORMAT} token vault")
        if not hmac.compare_digest(str(row[1]), check):
            raise VaultError(
                f"{where}: this vault belongs to another keyring or tenant (open it with the keyring and "
                "tenant that created it, or name another vault with ?vault=NAME)"
            )

    def _mac(self, entity: str, value: str) -> bytes:
        return hmac.digest(self._key, _encode(entity, _normalise(value)), "sha256")

    def _run(self, doing: str, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._pg.connection(doing) as conn:
            cur = conn.execute(sql.replace("{s}", self._pg.schema), args)
            return list(cur.fetchall()) if cur.description else []

    def token(self, entity: str, value: str) -> str:
        """The value's token: the existing one, or a new random one (the same in every process).

        Raises:
            VaultError: no free token was found.
            DatabaseUnavailable: the database cannot be reached.
        """
        mac = self._mac(_check_entity(entity), value)
        rows = self._run(
            "looking up a token",
            "SELECT token FROM {s}.vault_tokens WHERE vault = %s AND mac = %s",
            (self._vault, mac),
        )
        if rows:
            return str(rows[0][0])
        choice = self._secrets.choice
        for _ in range(_MAX_ATTEMPTS):
            candidate = f"<{entity}_{''.join(choice(_VAULT_ALPHABET) for _ in range(self.length))}>"
            sealed = self._sealer.seal(value.encode("utf-8"), context=self._context(entity, candidate))
            with self._pg.connection("adding a token") as conn:
                s = self._pg.schema
                won = conn.execute(
                    f"INSERT INTO {s}.vault_tokens (vault, mac, entity, token, sealed, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING token",
                    (self._vault, mac, entity, candidate, sealed, _now_text()),
                ).fetchone()
                if won is not None:
                    return str(won[0])
                row = conn.execute(
                    f"SELECT token FROM {s}.vault_tokens WHERE vault = %s AND mac = %s", (self._vault, mac)
                ).fetchone()
                if row is not None:  # another worker added this value first: its token
                    return str(row[0])
        raise VaultError(
            f"{self._pg.location.display}: no free {entity} token after {_MAX_ATTEMPTS} attempts"
        )

    def reidentify(self, token: str) -> str:
        """The value a token stands for (as first seen). Log every call: it is a disclosure.

        Raises:
            VaultError: the token is not in this vault.
            DecryptionError: the sealed value does not open.
            DataErased: the token was erased.
        """
        rows = self._run(
            "re-identifying a token",
            "SELECT entity, sealed FROM {s}.vault_tokens WHERE vault = %s AND token = %s",
            (self._vault, token),
        )
        if not rows:
            if self.is_erased(token):
                raise DataErased("the token was erased (Art. 17 erasure or retention): no value is kept")
            raise VaultError(f"{self._pg.location.display}: unknown token (not in vault {self._vault!r})")
        entity, sealed = str(rows[0][0]), bytes(rows[0][1])
        try:
            return self._sealer.open(sealed, context=self._context(entity, token)).decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError(token) from None

    def link_subject(self, token: str, subject_ref: str) -> None:
        """Record that ``token`` occurs in a record about ``subject_ref``."""
        self._run(
            "linking a token",
            "INSERT INTO {s}.vault_token_subjects VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (self._vault, token, subject_ref),
        )

    def erase_subject(self, subject_ref: str) -> VaultErasure:
        """Delete the tokens linked only to ``subject_ref`` and their sealed values (Art. 17), in one
        transaction; tokens shared with other subjects are unlinked and kept (``shared``)."""
        now = _now_text()
        s = self._pg.schema
        v = self._vault
        with self._pg.connection("erasing a subject's tokens") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"guardrail.vault.{v}",))
            linked = [
                str(r[0])
                for r in conn.execute(
                    f"SELECT token FROM {s}.vault_token_subjects WHERE vault = %s AND subject = %s "
                    "ORDER BY token",
                    (v, subject_ref),
                )
            ]
            shared = deleted = 0
            for token in linked:
                others = conn.execute(
                    f"SELECT count(*) FROM {s}.vault_token_subjects WHERE vault = %s AND token = %s "
                    "AND subject != %s",
                    (v, token, subject_ref),
                ).fetchone()
                if others and others[0]:
                    shared += 1
                    continue
                deleted += conn.execute(
                    f"DELETE FROM {s}.vault_tokens WHERE vault = %s AND token = %s", (v, token)
                ).rowcount
                conn.execute(
                    f"INSERT INTO {s}.vault_erased VALUES (%s, %s, %s) ON CONFLICT (vault, token) "
                    "DO UPDATE SET erased_at = EXCLUDED.erased_at",
                    (v, token, now),
                )
            conn.execute(
                f"DELETE FROM {s}.vault_token_subjects WHERE vault = %s AND subject = %s", (v, subject_ref)
            )
        return VaultErasure(deleted=deleted, shared=shared)

    def delete_tokens(self, tokens: Sequence[str]) -> int:
        """Delete ``tokens`` and their sealed values (retention); they answer "erased" afterwards."""
        now = _now_text()
        s = self._pg.schema
        v = self._vault
        n = 0
        with self._pg.connection("deleting tokens") as conn, conn.transaction():
            for token in tokens:
                n += conn.execute(
                    f"DELETE FROM {s}.vault_tokens WHERE vault = %s AND token = %s", (v, token)
                ).rowcount
                conn.execute(
                    f"DELETE FROM {s}.vault_token_subjects WHERE vault = %s AND token = %s", (v, token)
                )
                conn.execute(
                    f"INSERT INTO {s}.vault_erased VALUES (%s, %s, %s) ON CONFLICT (vault, token) "
                    "DO UPDATE SET erased_at = EXCLUDED.erased_at",
                    (v, token, now),
                )
        return n

    def created_before(self, moment: str) -> list[str]:
        """Tokens first made before ``moment`` (an audit time string)."""
        rows = self._run(
            "listing tokens",
            "SELECT token FROM {s}.vault_tokens WHERE vault = %s AND created_at < %s",
            (self._vault, moment),
        )
        return [str(r[0]) for r in rows]

    def is_erased(self, token: str) -> bool:
        """Whether ``token`` was deleted by an erasure or by retention."""
        return bool(
            self._run(
                "checking an erased token",
                "SELECT 1 FROM {s}.vault_erased WHERE vault = %s AND token = %s",
                (self._vault, token),
            )
        )

    def __len__(self) -> int:
        rows = self._run(
            "counting tokens", "SELECT count(*) FROM {s}.vault_tokens WHERE vault = %s", (self._vault,)
        )
        return int(rows[0][0])

    def close(self) -> None:
        """Nothing to close: the connections are shared by the process's keyring state and vaults."""

    def __repr__(self) -> str:
        return f"PgTokenVault({self._pg.location.display!r}, vault={self._vault!r}, tenant={self.tenant!r})"
