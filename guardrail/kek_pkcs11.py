"""A key-encryption key held in a PKCS#11 HSM (a hardware module, a cloud HSM, or SoftHSM2 for tests).

The KEK is an AES-256 secret key object inside the token: sensitive and non-extractable, so its value
never leaves the HSM. Wrapping a data key is ``C_Encrypt`` with ``CKM_AES_GCM`` inside the HSM: a fresh
12-byte IV per call, the keyring's ``aad`` (the data key's id) as additional authenticated data, a
128-bit tag. The stored blob is ``iv (12) || ciphertext || tag (16)``. Unwrapping is ``C_Decrypt``
with the same parameters; a wrong key, a wrong ``aad`` or a changed byte fails the tag check.

Configuration: the module path (the vendor's ``.so``), the token label and the key label are written to
``keyring.json`` by :meth:`Pkcs11Kek.describe`; the user PIN is never written anywhere and comes from
``GUARDRAIL_PKCS11_PIN`` (or the ``pin`` argument). Create the key once with :meth:`Pkcs11Kek.generate`.

Sessions: PKCS#11 login state belongs to the whole process, per token, and closing a logged-in
session logs every session out. So each process keeps one logged-in session per (module, token),
shared by every :class:`Pkcs11Kek` on that token, and every call into a module is serialised by one
lock per module (the library is initialised without OS locking, which the standard then requires).
After a ``fork`` the child initialises the library again and logs in anew. Because a token has one
user PIN, a second KEK on an already logged-in token is checked against a keyed digest of the PIN that
logged in (the token itself cannot re-check a PIN while logged in).

``python-pkcs11`` is an optional dependency (``pip install 'guardrail-privacy[hsm]'``), imported on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from typing import Any, ClassVar

from guardrail.keys import KeyringError

__all__ = ["PIN_ENV", "Pkcs11Kek"]

PIN_ENV = "GUARDRAIL_PKCS11_PIN"
_IV_LEN = 12
_TAG_BITS = 128
_TAG_LEN = _TAG_BITS // 8
_INSTALL_HINT = "the pkcs11 KEK backend needs python-pkcs11: pip install 'guardrail-privacy[hsm]'"

# Errors that mean the session (not the data) went away: reconnect once and retry.
_SESSION_LOST = (
    "SessionClosed",
    "SessionHandleInvalid",
    "UserNotLoggedIn",
    "DeviceRemoved",
    "TokenNotPresent",
    "TokenNotRecognised",
    "KeyHandleInvalid",
    "ObjectHandleInvalid",
)
_PIN_ERRORS = ("PinIncorrect", "PinInvalid", "PinLenRange")

_DIGEST_KEY = secrets.token_bytes(32)  # per process: PIN digests are comparable only in memory


def _pin_digest(pin: str) -> bytes:
    return hmac.new(_DIGEST_KEY, pin.encode(), hashlib.sha256).digest()


def _pkcs11() -> Any:
    try:
        import pkcs11
    except ImportError:
        raise KeyringError(_INSTALL_HINT) from None
    if not hasattr(pkcs11, "GCMParams"):  # AES-GCM parameters arrived in python-pkcs11 0.9
        raise KeyringError(f"{_INSTALL_HINT} (python-pkcs11 0.9 or later, for AES-GCM)")
    return pkcs11


def _is(exc: BaseException, names: tuple[str, ...]) -> bool:
    return type(exc).__name__ in names


class _Module:
    """One loaded PKCS#11 library (per real path, per process) and the lock serialising calls into it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._lib: Any = None
        self._pid = 0
        self.tokens: dict[str, _Token] = {}

    def lib(self, shown: str) -> Any:
        """The initialised library (caller holds ``lock``); initialised again in a forked child."""
        if self._lib is not None and self._pid == os.getpid():
            return self._lib
        pkcs11 = _pkcs11()
        try:
            lib = pkcs11.lib(self.path)
            if self._lib is not None:  # a forked child: the parent's initialisation does not carry over
                try:
                    lib.reinitialize()
                except pkcs11.PKCS11Error:
                    lib.initialize()
        except pkcs11.PKCS11Error as exc:
            detail = str(exc) or type(exc).__name__  # the loader's message (dlerror), or the CKR_ name
            raise KeyringError(
                f"PKCS#11 module {shown}: cannot load or initialise it ({detail}); "
                "is the path right and the HSM software installed and configured?"
            ) from None
        self._lib, self._pid = lib, os.getpid()
        return lib


class _Token:
    """The process's logged-in session on one token, and the secret-key handles found through it."""

    def __init__(self, module: _Module, label: str) -> None:
        self.module = module
        self.label = label
        self.token: Any = None
        self._session: Any = None
        self._pid = 0
        self._pin: bytes = b""  # keyed digest of the PIN that logged in
        self._keys: dict[str, Any] = {}

    def _where(self, shown: str) -> str:
        return f"PKCS#11 module {shown}, token {self.label!r}"

    def session(self, pin: str, shown: str) -> Any:
        """A logged-in session (caller holds the module lock).

        Raises:
            KeyringError: the module, the token or the login fails; or the PIN differs from the one the
                process logged in with.
        """
        if self._session is not None and self._pid == os.getpid():
            if not hmac.compare_digest(self._pin, _pin_digest(pin)):
                raise KeyringError(f"{self._where(shown)}: wrong PIN (check {PIN_ENV})")
            return self._session
        self._session, self._keys = None, {}
        pkcs11 = _pkcs11()
        lib = self.module.lib(shown)
        try:
            token = lib.get_token(token_label=self.label)
        except pkcs11.NoSuchToken:
            raise KeyringError(
                f"{self._where(shown)}: no such token (initialise it, or check the label)"
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise KeyringError(
                f"{self._where(shown)}: cannot find the token ({type(exc).__name__})"
            ) from None
        try:
            session = token.open(user_pin=pin)
        except pkcs11.PKCS11Error as exc:
            if _is(exc, _PIN_ERRORS):
                raise KeyringError(f"{self._where(shown)}: wrong PIN (check {PIN_ENV})") from None
            if _is(exc, ("PinLocked",)):
                raise KeyringError(f"{self._where(shown)}: the user PIN is locked") from None
            if _is(exc, ("UserPinNotInitialized",)):
                raise KeyringError(f"{self._where(shown)}: the token has no user PIN yet") from None
            if not _is(exc, ("UserAlreadyLoggedIn",)):
                raise KeyringError(f"{self._where(shown)}: cannot log in ({type(exc).__name__})") from None
            # Other code in this process logged in to the token already; login state is per process,
            # so a session without a PIN is logged in too (and closing it will not log anyone out).
            try:
                session = token.open()
            except pkcs11.PKCS11Error as exc2:
                raise KeyringError(
                    f"{self._where(shown)}: cannot open a session ({type(exc2).__name__})"
                ) from None
        self.token, self._session, self._pid, self._pin = token, session, os.getpid(), _pin_digest(pin)
        return session

    def forget(self) -> None:
        """Drop the session (it was closed under us); the next call reconnects and logs in again."""
        self._session, self._keys = None, {}

    def key(self, label: str, pin: str, shown: str) -> Any:
        """The AES-256 secret key labelled ``label`` (caller holds the module lock).

        Raises:
            KeyringError: no such key, several, not AES-256, or readable in clear (not sensitive).
        """
        session = self.session(pin, shown)
        key = self._keys.get(label)
        if key is not None:
            return key
        pkcs11 = _pkcs11()
        where = f"{self._where(shown)}, key {label!r}"
        try:
            key = session.get_key(
                object_class=pkcs11.ObjectClass.SECRET_KEY, key_type=pkcs11.KeyType.AES, label=label
            )
            length = int(key[pkcs11.Attribute.VALUE_LEN])
            sensitive = bool(key[pkcs11.Attribute.SENSITIVE])
        except pkcs11.NoSuchKey:
            raise KeyringError(
                f"{where}: no such AES key (create it with Pkcs11Kek.generate; see docs/keys.md)"
            ) from None
        except pkcs11.MultipleObjectsReturned:
            raise KeyringError(f"{where}: several keys have this label; labels must be unique") from None
        except pkcs11.PKCS11Error as exc:
            raise KeyringError(f"{where}: cannot read the key ({type(exc).__name__})") from None
        if length != 32:
            raise KeyringError(f"{where}: the KEK must be an AES-256 key, this one is {length * 8} bits")
        if not sensitive:
            raise KeyringError(f"{where}: the key is not sensitive (its value can be read); refusing it")
        self._keys[label] = key
        return key


class _Registry:
    """The process's loaded modules, by real path (a symlink and its target are one library)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.modules: dict[str, _Module] = {}

    def token(self, module: str, token_label: str) -> _Token:
        real = os.path.realpath(module)
        with self.lock:
            mod = self.modules.get(real)
            if mod is None:
                mod = self.modules[real] = _Module(real)
            tok = mod.tokens.get(token_label)
            if tok is None:
                tok = mod.tokens[token_label] = _Token(mod, token_label)
            return tok

    def after_fork_in_child(self) -> None:
        # A lock held by another thread at fork time stays held forever in the child: start afresh.
        # (Sessions are reopened lazily: each module and token notices the new process id.)
        self.lock = threading.Lock()
        for mod in self.modules.values():
            mod.lock = threading.Lock()


_REGISTRY = _Registry()
os.register_at_fork(after_in_child=_REGISTRY.after_fork_in_child)


def _token(module: str, token_label: str) -> _Token:
    return _REGISTRY.token(module, token_label)


def _resolve_pin(pin: str | None) -> str:
    pin = os.environ.get(PIN_ENV, "") if pin is None else pin
    if not pin:
        raise KeyringError(f"the HSM user PIN is not set: set {PIN_ENV}")
    return pin


class Pkcs11Kek:
    """A KEK that is an AES-256 key in a PKCS#11 token; wrapping and unwrapping happen inside the HSM.

    Args:
        module: path to the PKCS#11 library (e.g. ``/usr/lib/softhsm/libsofthsm2.so``).
        token_label: the token's label.
        key_label: the AES-256 key's label (``CKA_LABEL``) in the token.
        pin: the user PIN; default ``GUARDRAIL_PKCS11_PIN``. Kept in memory only (to log in again
            after a lost session), never in :meth:`describe`, reprs or messages.

    Raises:
        KeyringError: python-pkcs11 is missing; the module, token or key cannot be opened; the PIN
            is wrong or unset.
    """

    backend: ClassVar[str] = "pkcs11"

    def __init__(self, *, module: str, token_label: str, key_label: str, pin: str | None = None) -> None:
        self.module = str(module)
        self.token_label = token_label
        self.key_label = key_label
        self.__pin = _resolve_pin(pin)
        self._token = _token(self.module, token_label)
        with self._token.module.lock:
            self._token.key(key_label, self.__pin, self.module)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Pkcs11Kek:
        """Reopen from ``keyring.json``'s ``kek`` parameters; the PIN comes from ``GUARDRAIL_PKCS11_PIN``."""
        try:
            module, token, key_label = params["module"], params["token"], params["key_label"]
        except KeyError as exc:
            raise KeyringError(f"the pkcs11 KEK parameters lack {exc.args[0]!r}") from None
        return cls(module=str(module), token_label=str(token), key_label=str(key_label))

    @classmethod
    def generate(cls, *, module: str, token_label: str, key_label: str, pin: str | None = None) -> Pkcs11Kek:
        """Create the AES-256 KEK in the token unless a key with this label exists; return the KEK.

        The key is a token object, private, sensitive and never extractable, allowed to encrypt,
        decrypt, wrap and unwrap, and not modifiable.

        Raises:
            KeyringError: as for the constructor, or the token refuses to create the key.
        """
        pin = _resolve_pin(pin)
        tok = _token(str(module), token_label)
        pkcs11 = _pkcs11()
        where = f"PKCS#11 module {module}, token {token_label!r}, key {key_label!r}"
        with tok.module.lock:
            session = tok.session(pin, str(module))
            try:
                session.get_key(
                    object_class=pkcs11.ObjectClass.SECRET_KEY, key_type=pkcs11.KeyType.AES, label=key_label
                )
            except pkcs11.NoSuchKey:
                flags = pkcs11.MechanismFlag
                try:
                    # A R/W session without a PIN: the process is logged in already, and closing it
                    # does not log the shared session out.
                    with tok.token.open(rw=True) as rw:
                        rw.generate_key(
                            pkcs11.KeyType.AES,
                            256,
                            label=key_label,
                            store=True,
                            capabilities=flags.ENCRYPT | flags.DECRYPT | flags.WRAP | flags.UNWRAP,
                            template={
                                pkcs11.Attribute.TOKEN: True,
                                pkcs11.Attribute.PRIVATE: True,
                                pkcs11.Attribute.SENSITIVE: True,
                                pkcs11.Attribute.EXTRACTABLE: False,
                                pkcs11.Attribute.MODIFIABLE: False,
                            },
                        )
                except pkcs11.PKCS11Error as exc:
                    raise KeyringError(f"{where}: cannot create the key ({type(exc).__name__})") from None
            except pkcs11.MultipleObjectsReturned:
                pass  # the constructor reports it
            except pkcs11.PKCS11Error as exc:
                raise KeyringError(f"{where}: cannot search the token ({type(exc).__name__})") from None
        return cls(module=str(module), token_label=token_label, key_label=key_label, pin=pin)

    def __repr__(self) -> str:
        return f"Pkcs11Kek(module={self.module!r}, token={self.token_label!r}, key_label={self.key_label!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Pkcs11Kek holds an HSM login and cannot be pickled")

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "module": self.module,
            "token": self.token_label,
            "key_label": self.key_label,
        }

    def _call(self, verb: str, data: bytes, iv: bytes, aad: bytes) -> bytes:
        """``key.encrypt`` or ``key.decrypt`` with AES-GCM, reconnecting once if the session was lost."""
        pkcs11 = _pkcs11()
        mechanism, param = pkcs11.Mechanism.AES_GCM, pkcs11.GCMParams(iv, aad, _TAG_BITS)
        tok = self._token
        with tok.module.lock:
            for attempt in range(2):
                key = tok.key(self.key_label, self.__pin, self.module)
                try:
                    out = getattr(key, verb)(data, mechanism=mechanism, mechanism_param=param)
                except pkcs11.PKCS11Error as exc:
                    if _is(exc, _SESSION_LOST) and attempt == 0:
                        tok.forget()
                        continue
                    raise
                return bytes(out)
        raise AssertionError("unreachable")  # pragma: no cover

    def wrap(self, key: bytes, *, aad: bytes) -> bytes:
        """Encrypt ``key`` inside the HSM: ``iv || ciphertext || tag``.

        Raises:
            KeyringError: the HSM refused (the message names the module, token and key, no data).
        """
        pkcs11 = _pkcs11()
        iv = os.urandom(_IV_LEN)
        try:
            return iv + self._call("encrypt", bytes(key), iv, bytes(aad))
        except pkcs11.PKCS11Error as exc:
            raise KeyringError(
                f"PKCS#11 module {self.module}, token {self.token_label!r}, key {self.key_label!r}: "
                f"cannot wrap a key ({type(exc).__name__})"
            ) from None

    def unwrap(self, blob: bytes, *, aad: bytes) -> bytes:
        """Decrypt a blob from :meth:`wrap` inside the HSM.

        Raises:
            KeyringError: wrong key, wrong ``aad`` or a changed blob (one message for all three), or
                the HSM cannot be reached.
        """
        pkcs11 = _pkcs11()
        bad = KeyringError("cannot unwrap a key: wrong HSM key, or the keyring was changed")
        blob = bytes(blob)
        if len(blob) < _IV_LEN + _TAG_LEN:
            raise bad
        try:
            return self._call("decrypt", blob[_IV_LEN:], blob[:_IV_LEN], bytes(aad))
        except pkcs11.PKCS11Error:
            # SoftHSM2 reports a failed tag as CKR_GENERAL_ERROR, others as CKR_ENCRYPTED_DATA_INVALID:
            # every HSM refusal here is the same opaque failure.
            raise bad from None
