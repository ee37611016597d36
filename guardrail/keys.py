"""The keyring: data-encryption keys (DEKs) wrapped by a key-encryption key (KEK).

Hierarchy: one DEK per tenant (versions: one primary, older ones decrypt-only), plus optional DEKs per
data subject. A record about subjects S1..Sn is sealed under the tenant DEK and every subject's DEK, so
destroying any one of them makes it unreadable (crypto-shredding).

On disk (``keyring.json`` in the keyring directory) each DEK is stored wrapped by the KEK, with a random
opaque id, its scope, version and state; owners (tenants, subjects) appear only as keyed hashes, never by
name. A destroyed key keeps a tombstone (id and state, no material), so a record sealed under it is
reported as erased rather than damaged.

KEK backends (:class:`Kek`): a key file (``kek.key``, mode 0600; the development default), a passphrase
(scrypt; ``GUARDRAIL_KEYRING_PASSPHRASE``) and a PKCS#11 HSM (:mod:`guardrail.kek_pkcs11`). Other
backends (cloud KMS) implement the same two-method protocol; see ``docs/keys.md``.

Key material never appears in reprs, logs or exceptions, and a keyring refuses to be pickled.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from guardrail.crypto import KEY_ID_LEN, RecordErased
from guardrail.errors import GuardrailError

__all__ = [
    "FileKek",
    "Kek",
    "KeyInUse",
    "KeyInfo",
    "Keyring",
    "KeyringError",
    "KeyringLike",
    "PassphraseKek",
    "as_keyring",
    "register_kek",
]

FORMAT = "guardrail.keyring/1"
KEYRING_FILE = "keyring.json"
KEK_FILE = "kek.key"
PASSPHRASE_ENV = "GUARDRAIL_KEYRING_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret
_CHECK = b"guardrail keyring check v1"

State = Literal["primary", "decrypt-only", "destroyed"]


def _check_private(directory: Path) -> None:
    """Refuse a keyring whose directory or key files others may write (they could swap a key file).

    Raises:
        KeyringError: group- or world-writable, with the ``chmod`` that fixes it.
    """
    for path, fix in [(directory, "700")] + [(directory / name, "600") for name in (KEYRING_FILE, KEK_FILE)]:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        except OSError:
            continue  # reported by the read that follows
        if mode & 0o022:
            who = "world" if mode & 0o002 else "group"
            raise KeyringError(
                f"{path}: is {who}-writable (mode {mode:04o}), so others could replace the keyring's keys; "
                f"fix it with: chmod {fix} {path}"
            )


class KeyringError(GuardrailError):
    """The keyring cannot be opened or changed: missing, corrupt, or the wrong KEK or passphrase."""


class KeyInUse(KeyringError):
    """A key version is still used by sealed records and cannot be destroyed."""


# --------------------------------------------------------------------------- KEK backends


class Kek(Protocol):
    """A key-encryption key: wraps and unwraps data keys. Two verbs; the key itself never leaves it.

    ``describe()`` returns the non-secret parameters written to ``keyring.json`` so the keyring can be
    reopened; ``unwrap`` raises ``KeyringError`` when the blob was not wrapped by this KEK.
    """

    backend: ClassVar[str]

    def wrap(self, key: bytes, *, aad: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, *, aad: bytes) -> bytes: ...

    def describe(self) -> dict[str, Any]: ...


class _AesGcmKek:
    """A KEK held in memory as a 32-byte AES-256-GCM key."""

    backend: ClassVar[str] = ""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KeyringError("a KEK is 32 bytes")
        self.__key = key

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a KEK holds key material and cannot be pickled")

    def wrap(self, key: bytes, *, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.__key).encrypt(nonce, key, aad)

    def unwrap(self, blob: bytes, *, aad: bytes) -> bytes:
        try:
            return AESGCM(self.__key).decrypt(blob[:12], blob[12:], aad)
        except (InvalidTag, ValueError):
            raise KeyringError("cannot unwrap a key: wrong KEK, passphrase or keyring") from None


class FileKek(_AesGcmKek):
    """The KEK is 32 random bytes in a file created with mode 0600."""

    backend: ClassVar[str] = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            key = self.path.read_bytes()
        except OSError:
            raise KeyringError(
                f"{self.path}: cannot read the key file (is the keyring path right?)"
            ) from None
        super().__init__(key)

    @classmethod
    def create(cls, path: Path) -> FileKek:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        return cls(path)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "file": self.path.name}


class PassphraseKek(_AesGcmKek):
    """The KEK is derived from a passphrase with scrypt (n=2^15, r=8, p=1 by default)."""

    backend: ClassVar[str] = "passphrase"

    def __init__(self, passphrase: str, *, salt: bytes, n: int = 2**15, r: int = 8, p: int = 1) -> None:
        if not passphrase:
            raise KeyringError(f"the keyring needs a passphrase: set {PASSPHRASE_ENV}")
        self.salt, self.n, self.r, self.p = salt, n, r, p
        super().__init__(Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode()))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "salt": _b64(self.salt), "n": self.n, "r": self.r, "p": self.p}


_BACKENDS: dict[str, Any] = {}


def register_kek(backend: str, opener: Any) -> None:
    """Register ``opener(directory, params: dict) -> Kek`` for a backend name (for plugins)."""
    _BACKENDS[backend] = opener


def _open_file(directory: Path, params: dict[str, Any]) -> Kek:
    return FileKek(directory / str(params.get("file", KEK_FILE)))


def _open_passphrase(directory: Path, params: dict[str, Any]) -> Kek:
    return PassphraseKek(
        os.environ.get(PASSPHRASE_ENV, ""),
        salt=_unb64(params["salt"]),
        n=int(params["n"]),
        r=int(params["r"]),
        p=int(params["p"]),
    )


def _open_pkcs11(directory: Path, params: dict[str, Any]) -> Kek:
    from guardrail.kek_pkcs11 import Pkcs11Kek

    return Pkcs11Kek.from_params(params)


register_kek("file", _open_file)
register_kek("passphrase", _open_passphrase)
register_kek("pkcs11", _open_pkcs11)


# --------------------------------------------------------------------------- the keyring


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``guardrail keys list`` shows about a key: never its material, never its owner's name."""

    id: str
    scope: Literal["tenant", "subject", "index"]
    version: int
    state: State
    created: str


def _encode(*parts: str) -> bytes:
    """An unambiguous encoding of several strings (a JSON list), for keyed hashes."""
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Keyring:
    """Data keys for tenants and data subjects, wrapped by a KEK, in a keyring directory.

    Open one with :meth:`open` (or create it with :meth:`create`); it is safe to share between threads,
    and several processes may use the same directory (changes take a file lock).

    Raises:
        KeyringError: the directory holds no keyring, or the KEK/passphrase does not open it.
    """

    def __init__(self, directory: Path, kek: Kek, data: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self._kek = kek
        self._data = data
        self._lock = threading.RLock()
        self._file = str(self.directory / KEYRING_FILE)
        self._cache: dict[bytes, bytes] = {}
        self._owners: dict[tuple[str, str, str], str] = {}
        self._token_keys: dict[str, bytes] = {}
        self._by_owner: dict[str, list[dict[str, Any]]] = {}
        self._by_id: dict[str, dict[str, Any]] = {}
        self._index()
        self._stamp = self._file_stamp()
        try:
            if kek.unwrap(_unb64(data["check"]), aad=b"check") != _CHECK:
                raise KeyringError("wrong KEK")
            self.__index = kek.unwrap(_unb64(data["index_key"]), aad=b"index")
        except KeyringError:
            raise KeyringError(
                f"{self.directory}: the keyring does not open with this {kek.backend} KEK "
                "(wrong key file, passphrase or HSM key)"
            ) from None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls,
        directory: str | Path,
        *,
        backend: str = "file",
        passphrase: str | None = None,
        kek: Kek | None = None,
    ) -> Keyring:
        """Create a keyring in a new (or empty) directory.

        Args:
            directory: where ``keyring.json`` (and, for the file backend, ``kek.key``) go.
            backend: ``file``, ``passphrase`` or ``pkcs11`` (pass ``kek`` for the last and for plugins).
            passphrase: for the passphrase backend (else ``GUARDRAIL_KEYRING_PASSPHRASE``).
            kek: a ready KEK (an HSM key, a plugin backend).

        Raises:
            KeyringError: the directory already holds a keyring, or the backend is misconfigured.
        """
        directory = Path(directory)
        if (directory / KEYRING_FILE).exists():
            raise KeyringError(f"{directory}: already holds a keyring; refusing to overwrite it")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.chmod(
                directory, 0o700
            )  # an existing directory is tightened: only the owner may add or swap files
        except OSError as exc:
            raise KeyringError(
                f"{directory}: cannot restrict it to its owner (chmod 700: {exc.strerror})"
            ) from None
        if kek is None:
            if backend == "file":
                if (directory / KEK_FILE).exists():
                    raise KeyringError(
                        f"{directory}: holds a key file ({KEK_FILE}) but no keyring; refusing to reuse or "
                        "overwrite it (move it away, or use a new directory)"
                    )
                kek = FileKek.create(directory / KEK_FILE)
            elif backend == "passphrase":
                kek = PassphraseKek(passphrase or os.environ.get(PASSPHRASE_ENV, ""), salt=os.urandom(16))
            else:
                raise KeyringError(f"backend {backend!r} needs a ready KEK object (kek=...)")
        data = {
            "format": FORMAT,
            "kek": kek.describe(),
            "check": _b64(kek.wrap(_CHECK, aad=b"check")),
            "index_key": _b64(kek.wrap(secrets.token_bytes(32), aad=b"index")),
            "keys": [],
        }
        _write_json(directory / KEYRING_FILE, data)
        return cls(directory, kek, data)

    @classmethod
    def open(cls, directory: str | Path, *, kek: Kek | None = None) -> Keyring:
        """Open the keyring in ``directory`` with the KEK its file names (or the one given).

        Raises:
            KeyringError: no keyring there, or it does not open.
        """
        from guardrail.db import is_postgres_url

        if is_postgres_url(directory):  # never echo the URL: it may carry a password
            raise KeyringError(
                "the keyring is a directory, not a database location: pass its directory (a keyring whose "
                "state lives in PostgreSQL is a directory made by `guardrail db adopt-keyring URL --keyring "
                "DIR`)"
            )
        directory = Path(directory)
        path = directory / KEYRING_FILE
        _check_private(directory)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyringError(
                f"{directory}: no keyring here (create one with `guardrail keys init {directory}`)"
            ) from None
        except (OSError, ValueError):
            raise KeyringError(f"{path}: unreadable keyring file") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise KeyringError(f"{path}: not a {FORMAT} keyring")
        if "state" in data:  # the mutable state lives in PostgreSQL (guardrail.keys_pg)
            from guardrail.keys_pg import open_postgres_state

            return open_postgres_state(directory, data, kek)
        missing = [k for k in ("kek", "check", "index_key", "keys") if k not in data]
        if missing or not isinstance(data.get("kek"), dict) or not isinstance(data.get("keys"), list):
            raise KeyringError(f"{path}: incomplete keyring file (missing {', '.join(missing) or 'fields'})")
        if kek is None:
            params = data["kek"]
            opener = _BACKENDS.get(params.get("backend"))
            if opener is None:
                raise KeyringError(
                    f"{path}: unknown KEK backend {params.get('backend')!r}; known: {sorted(_BACKENDS)}"
                )
            kek = opener(directory, params)
        return cls(directory, kek, data)

    def __repr__(self) -> str:
        return (
            f"Keyring({str(self.directory)!r}, backend={self._kek.backend!r}, keys={len(self._data['keys'])})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Keyring holds key material and cannot be pickled")

    # ------------------------------------------------------------------ owners and tokens

    def _owner(self, scope: str, tenant: str, subject: str = "") -> str:
        key = (scope, tenant, subject)
        owner = self._owners.get(key)
        if owner is None:
            owner = hmac.new(
                self.__index, _encode("owner", scope, tenant, subject), hashlib.sha256
            ).hexdigest()
            self._owners[key] = owner
        return owner

    def _index(self) -> None:
        """Rebuild the lookups by owner and by id (after loading or reloading the file)."""
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for entry in self._data["keys"]:
            by_owner.setdefault(entry["owner"], []).append(entry)
        self._by_owner = by_owner
        self._by_id = {entry["id"]: entry for entry in self._data["keys"]}

    def token(self, tenant: str, field: str, value: str, *, length: int = 32) -> str:
        """A keyed HMAC token for an equality-filterable value (document ids, subject ids).

        Tokens differ per tenant and per field, and cannot be computed without the keyring.
        """
        key = self._token_keys.get(tenant)
        if key is None:
            key = hmac.new(self.__index, _encode("token", tenant), hashlib.sha256).digest()
            self._token_keys[tenant] = key
        return hmac.new(key, _encode(field, value), hashlib.sha256).hexdigest()[:length]

    def hmac_key(self, purpose: str) -> bytes:
        """A 32-byte key derived for ``purpose`` (e.g. the redaction ``hash`` operator)."""
        return hmac.new(self.__index, _encode("purpose", purpose), hashlib.sha256).digest()

    # ------------------------------------------------------------------ keys for sealing

    def encryption_keys(self, tenant: str, subjects: Sequence[str]) -> list[tuple[bytes, bytes]]:
        """The tenant's primary DEK (created on first use), then each subject's DEK (created too).

        Raises:
            KeyringError: a subject's key was destroyed (erased subjects cannot get new data).
        """
        self._refresh()  # once per call: a shred or rotation elsewhere is seen before sealing
        wanted = [("tenant", tenant, "")]
        if subjects:
            wanted += [("subject", tenant, s) for s in sorted(set(subjects))]
        found = [self._find_primary(self._owner(*w)) for w in wanted]
        entries = [e for e in found if e is not None]
        if len(entries) != len(found):
            entries = self._create_primaries(wanted)
        out = []
        for entry in entries:
            key_id = bytes.fromhex(entry["id"])
            dek = self._cache.get(key_id)
            out.append((key_id, dek if dek is not None else self.decryption_key(key_id)))
        return out

    def prepare(self, tenant: str, subjects: Sequence[str]) -> None:
        """Create the tenant's and these subjects' keys now, in one write (before sealing a batch)."""
        self._refresh()
        self._create_primaries(
            [("tenant", tenant, "")] + [("subject", tenant, s) for s in sorted(set(subjects))]
        )

    def _create_primaries(self, wanted: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
        with self._lock, self._locked_file():
            for scope, tenant, subject in wanted:  # refuse before creating anything
                if self._find_primary(self._owner(scope, tenant, subject)) is None:
                    self._refuse_erased(scope, tenant, subject)
            out, created = [], False
            for scope, tenant, subject in wanted:
                owner = self._owner(scope, tenant, subject)
                entry = self._find_primary(owner)
                if entry is None:
                    entry = self._new_entry(scope, owner, version=1, tenant=self._owner("tenant", tenant))
                    created = True
                out.append(entry)
            if created:
                self._save()
            return out

    def _refuse_erased(self, scope: str, tenant: str, subject: str = "") -> None:
        owner = self._owner(scope, tenant, subject)
        entries = self._by_owner.get(owner, [])
        if entries and all(k["state"] == "destroyed" for k in entries):
            what = "data subject" if scope == "subject" else "tenant"
            raise KeyringError(
                f"this {what} was erased (its keys were shredded); its keys cannot be recreated"
            )

    def _find_primary(self, owner: str) -> dict[str, Any] | None:
        return next((k for k in self._by_owner.get(owner, ()) if k["state"] == "primary"), None)

    def _new_entry(self, scope: str, owner: str, *, version: int, tenant: str = "") -> dict[str, Any]:
        while True:
            key_id = secrets.token_bytes(KEY_ID_LEN)
            if key_id.hex() not in self._by_id:
                break
        dek = secrets.token_bytes(32)
        entry: dict[str, Any] = {
            "id": key_id.hex(),
            "scope": scope,
            "owner": owner,
            "version": version,
            "state": "primary",
            "created": _now(),
            "wrapped": _b64(self._kek.wrap(dek, aad=key_id)),
        }
        if scope == "subject":
            entry["tenant"] = tenant  # the tenant's keyed hash, so shredding a tenant finds its subjects
        self._data["keys"].append(entry)
        self._by_owner.setdefault(owner, []).append(entry)
        self._by_id[entry["id"]] = entry
        self._cache[key_id] = dek
        return entry

    def decryption_key(self, key_id: bytes) -> bytes:
        """The DEK with this id.

        Raises:
            KeyError: unknown id.
            RecordErased: the key was destroyed.
        """
        self._refresh()
        dek = self._cache.get(key_id)
        if dek is not None:
            return dek
        with self._lock:
            entry = self._entry(key_id.hex())
            if entry is None:
                self._reload()
                entry = self._entry(key_id.hex())
            if entry is None:
                raise KeyError("unknown key id")
            if entry["state"] == "destroyed" or entry["wrapped"] is None:
                raise RecordErased("?")
            dek = self._kek.unwrap(_unb64(entry["wrapped"]), aad=key_id)
            self._cache[key_id] = dek
            return dek

    def _entry(self, key_hex: str) -> dict[str, Any] | None:
        return self._by_id.get(key_hex)

    # ------------------------------------------------------------------ administration

    def list_keys(self) -> list[KeyInfo]:
        """Every key: id, scope, version, state, creation time. No material, no owner names."""
        return [
            KeyInfo(k["id"], k["scope"], k["version"], k["state"], k["created"]) for k in self._data["keys"]
        ]

    def primary_id(self, tenant: str) -> str | None:
        """The id of the tenant's primary DEK, if it has one."""
        entry = self._find_primary(self._owner("tenant", tenant))
        return None if entry is None else str(entry["id"])

    def tenant_key_ids(self, tenant: str) -> list[str]:
        """Every DEK id of a tenant (any state), newest version last."""
        owner = self._owner("tenant", tenant)
        return [
            k["id"] for k in sorted(self._data["keys"], key=lambda k: k["version"]) if k["owner"] == owner
        ]

    def subject_key_ids(self, tenant: str, subject: str) -> list[str]:
        """Every DEK id of a data subject (any state)."""
        owner = self._owner("subject", tenant, subject)
        return [k["id"] for k in self._data["keys"] if k["owner"] == owner]

    def rotate(self, tenant: str) -> KeyInfo:
        """Make a new DEK version the tenant's primary; older versions stay, decrypt-only."""
        owner = self._owner("tenant", tenant)
        with self._lock, self._locked_file():
            versions = [k for k in self._data["keys"] if k["owner"] == owner]
            for k in versions:
                if k["state"] == "primary":
                    k["state"] = "decrypt-only"
            entry = self._new_entry(
                "tenant", owner, version=max((k["version"] for k in versions), default=0) + 1
            )
            self._save()
        return KeyInfo(entry["id"], "tenant", entry["version"], "primary", entry["created"])

    def rotate_all(self) -> list[KeyInfo]:
        """Rotate every tenant that has a primary key (owners are hashed, so tenants are not named)."""
        owners = sorted(
            {k["owner"] for k in self._data["keys"] if k["scope"] == "tenant" and k["state"] == "primary"}
        )
        out = []
        with self._lock, self._locked_file():
            for owner in owners:
                versions = [k for k in self._data["keys"] if k["owner"] == owner]
                for k in versions:
                    if k["state"] == "primary":
                        k["state"] = "decrypt-only"
                entry = self._new_entry("tenant", owner, version=max(k["version"] for k in versions) + 1)
                out.append(KeyInfo(entry["id"], "tenant", entry["version"], "primary", entry["created"]))
            self._save()
        return out

    def destroy(self, key_id: str, *, in_use: int) -> None:
        """Destroy a decrypt-only key version that no record uses any more.

        Args:
            key_id: the key's hex id.
            in_use: how many records still use it (from ``guardrail keys reencrypt``'s header count).

        Raises:
            KeyInUse: records still use it, or it is a primary key.
            KeyringError: no such key.
        """
        with self._lock, self._locked_file():
            entry = self._entry(key_id)
            if entry is None:
                raise KeyringError(f"no key {key_id}")
            if entry["state"] == "primary":
                raise KeyInUse(f"key {key_id} is primary: rotate first")
            if in_use:
                raise KeyInUse(
                    f"key {key_id} still seals {in_use} record(s): run `guardrail keys reencrypt` first"
                )
            self._tombstone(entry)
            self._save()

    def shred_tenant(self, tenant: str) -> list[str]:
        """Destroy every DEK of a tenant (and its subjects' keys). Returns the destroyed ids."""
        owner = self._owner("tenant", tenant)
        return self._shred(
            lambda k: k["owner"] == owner or (k["scope"] == "subject" and k.get("tenant") == owner)
        )

    def shred_subject(self, tenant: str, subject: str) -> list[str]:
        """Destroy a data subject's DEK: every record sealed under it becomes unreadable."""
        owner = self._owner("subject", tenant, subject)
        return self._shred(lambda k: k["owner"] == owner)

    def shred_subject_key(self, key_id: str) -> bool:
        """Destroy one data subject's DEK by id (retention, once every record under it is deleted);
        whether it was destroyed now. Tenant keys are never destroyed this way."""
        return bool(self._shred(lambda k: k["id"] == key_id and k["scope"] == "subject"))

    def _shred(self, match: Any) -> list[str]:
        with self._lock, self._locked_file():
            destroyed = []
            for entry in self._data["keys"]:
                if match(entry) and entry["state"] != "destroyed":
                    self._tombstone(entry)
                    destroyed.append(entry["id"])
            if destroyed:
                self._save()
            return destroyed

    def _tombstone(self, entry: dict[str, Any]) -> None:
        entry["state"] = "destroyed"
        entry["wrapped"] = None
        entry["destroyed"] = _now()
        self._cache.pop(bytes.fromhex(entry["id"]), None)

    # ------------------------------------------------------------------ persistence

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[None]:
        lock_path = self.directory / ".keyring.lock"
        with open(lock_path, "a", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._reload()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self._file)
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        """Pick up changes another process made (a shred, a rotation): one stat per call."""
        if self._file_stamp() != self._stamp:
            with self._lock:
                self._reload()

    def _reload(self) -> None:
        stamp = self._file_stamp()
        try:
            fresh = json.loads((self.directory / KEYRING_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        self._replace_data(fresh)
        self._stamp = stamp

    def _replace_data(self, fresh: dict[str, Any]) -> None:
        """Take ``fresh`` as the keyring's state (e.g. changed by another process)."""
        live = {bytes.fromhex(e["id"]) for e in fresh.get("keys", []) if e.get("state") != "destroyed"}
        for key_id in list(self._cache):
            if key_id not in live:
                self._cache.pop(key_id, None)  # destroyed elsewhere: forget the material now
        self._data = fresh
        self._index()

    def _save(self) -> None:
        _write_json(self.directory / KEYRING_FILE, self._data)


#: what every public ``keyring=`` parameter accepts: an open keyring or the path of its directory
KeyringLike: TypeAlias = "Keyring | str | os.PathLike[str]"


def as_keyring(keyring: KeyringLike) -> Keyring:
    """``keyring`` itself, or the keyring in the directory it names (opened with the KEK its file names).

    Raises:
        KeyringError: no keyring at that path, or it does not open.
        TypeError: neither a keyring nor a path.
    """
    if isinstance(keyring, Keyring):
        return keyring
    if isinstance(keyring, str | os.PathLike):
        return Keyring.open(os.fspath(keyring))
    raise TypeError(f"keyring must be a Keyring or a keyring directory's path, not {type(keyring).__name__}")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from guardrail.io import atomic_output  # temporary file, fsync, rename; mode 0600 for a new file

    with atomic_output(path, force=True) as f:
        json.dump(data, f, indent=1, sort_keys=True)
