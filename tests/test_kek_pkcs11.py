"""The PKCS#11 KEK backend against a real SoftHSM2 token (no mocks).

A session fixture writes a private ``softhsm2.conf`` (tokens in a temporary directory), initialises a
token and creates the KEK in it. The module is skipped only when SoftHSM2 or python-pkcs11 is not
installed; CI installs both (``.ci/run``: softhsm2; the ``dev`` extra: python-pkcs11).

SoftHSM2 reads ``SOFTHSM2_CONF`` once, when the library is first initialised in a process, so every
test here shares the one token the fixture creates.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from guardrail.crypto import Context, Sealer
from guardrail.kek_pkcs11 import PIN_ENV, Pkcs11Kek
from guardrail.keys import Keyring, KeyringError

_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",  # Debian, Ubuntu
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",  # Fedora
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)
MODULE = next((p for p in _CANDIDATES if os.path.exists(p)), "")
if not MODULE:
    pytest.skip(
        "SoftHSM2 is not installed (no libsofthsm2.so; `apt-get install softhsm2`)", allow_module_level=True
    )
pkcs11 = pytest.importorskip(
    "pkcs11", reason="python-pkcs11 is not installed (pip install 'guardrail-privacy[hsm]')"
)

TOKEN = "guardrail-test"
PIN = "1234"
SO_PIN = "5678"
KEY = "guardrail-kek"
OTHER_KEY = "guardrail-other-kek"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private SoftHSM2 configuration with one initialised token; yields the config file."""
    util = shutil.which("softhsm2-util")
    if util is None:
        pytest.fail("softhsm2-util is missing although libsofthsm2.so is installed: apt-get install softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [util, "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
            check=True,
            capture_output=True,
        )
        yield conf


@pytest.fixture(scope="session")
def kek(softhsm: Path) -> Pkcs11Kek:
    return Pkcs11Kek.generate(module=MODULE, token_label=TOKEN, key_label=KEY, pin=PIN)


@pytest.fixture(scope="session")
def other_kek(softhsm: Path) -> Pkcs11Kek:
    return Pkcs11Kek.generate(module=MODULE, token_label=TOKEN, key_label=OTHER_KEY, pin=PIN)


def _raw_session() -> Any:
    """A python-pkcs11 session of our own, without a PIN: the process is logged in to the token already
    (login state is per process), and closing a session that did not log in logs nobody out."""
    return pkcs11.lib(os.path.realpath(MODULE)).get_token(token_label=TOKEN).open()


def _raw_key(session: Any, label: str) -> Any:
    return session.get_key(
        object_class=pkcs11.ObjectClass.SECRET_KEY, key_type=pkcs11.KeyType.AES, label=label
    )


def _unchained(exc: BaseException) -> bool:
    """Nothing chained under the error: its traceback shows no PKCS#11 internals."""
    return exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


# --------------------------------------------------------------------------- wrapping


def test_round_trip(kek: Pkcs11Kek) -> None:
    dek = os.urandom(32)
    blob = kek.wrap(dek, aad=b"key-id-1")
    assert len(blob) == 12 + 32 + 16  # iv || ciphertext || 128-bit tag
    assert dek not in blob
    assert kek.unwrap(blob, aad=b"key-id-1") == dek
    # a fresh IV per wrap
    assert kek.wrap(dek, aad=b"key-id-1")[:12] != blob[:12]
    # other lengths too (the keyring wraps its check value and index key with it)
    assert kek.unwrap(kek.wrap(b"guardrail keyring check v1", aad=b"check"), aad=b"check") == (
        b"guardrail keyring check v1"
    )


def test_wrong_aad_fails(kek: Pkcs11Kek) -> None:
    blob = kek.wrap(os.urandom(32), aad=b"key-id-1")
    with pytest.raises(KeyringError, match="cannot unwrap a key") as info:
        kek.unwrap(blob, aad=b"key-id-2")
    assert _unchained(info.value)


@pytest.mark.parametrize("where", [0, 11, 12, 30, 43, 44, 59])
def test_tampered_blob_fails(kek: Pkcs11Kek, where: int) -> None:
    blob = bytearray(kek.wrap(os.urandom(32), aad=b"aad"))
    blob[where] ^= 0x01
    with pytest.raises(KeyringError, match="cannot unwrap a key"):
        kek.unwrap(bytes(blob), aad=b"aad")


@pytest.mark.parametrize("blob", [b"", b"\x00" * 27, b"\x00" * 28, b"\x00" * 60])
def test_short_or_garbage_blob_fails(kek: Pkcs11Kek, blob: bytes) -> None:
    with pytest.raises(KeyringError, match="cannot unwrap a key"):
        kek.unwrap(blob, aad=b"aad")


def test_truncated_blob_fails(kek: Pkcs11Kek) -> None:
    blob = kek.wrap(os.urandom(32), aad=b"aad")
    with pytest.raises(KeyringError, match="cannot unwrap a key"):
        kek.unwrap(blob[:-1], aad=b"aad")


def test_another_key_cannot_unwrap(kek: Pkcs11Kek, other_kek: Pkcs11Kek) -> None:
    dek = os.urandom(32)
    blob = kek.wrap(dek, aad=b"id")
    with pytest.raises(KeyringError, match="cannot unwrap a key"):
        other_kek.unwrap(blob, aad=b"id")
    with pytest.raises(KeyringError, match="cannot unwrap a key"):
        kek.unwrap(other_kek.wrap(dek, aad=b"id"), aad=b"id")


def test_generate_is_idempotent(kek: Pkcs11Kek) -> None:
    blob = kek.wrap(b"k" * 32, aad=b"a")
    again = Pkcs11Kek.generate(module=MODULE, token_label=TOKEN, key_label=KEY, pin=PIN)
    assert again.unwrap(blob, aad=b"a") == b"k" * 32  # the same key, not a second one
    with _raw_session() as session:
        _raw_key(session, KEY)  # raises MultipleObjectsReturned if there were two


def test_threads_share_the_token(kek: Pkcs11Kek) -> None:
    def work(n: int) -> int:
        for i in range(50):
            dek = os.urandom(32)
            aad = f"{n}-{i}".encode()
            assert kek.unwrap(kek.wrap(dek, aad=aad), aad=aad) == dek
        return n

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(work, range(8))) == list(range(8))  # map re-raises a worker's failure


def test_lost_session_reconnects(kek: Pkcs11Kek) -> None:
    blob = kek.wrap(b"d" * 32, aad=b"lost")
    kek._token._session.close()  # as if the HSM dropped it: closed, and the token logged out
    assert kek.unwrap(blob, aad=b"lost") == b"d" * 32  # reconnected and logged in again with the PIN
    assert kek.unwrap(kek.wrap(b"e" * 32, aad=b"x"), aad=b"x") == b"e" * 32


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_reconnects(kek: Pkcs11Kek) -> None:
    dek = os.urandom(32)
    blob = kek.wrap(dek, aad=b"fork")
    pid = os.fork()
    if pid == 0:  # the child: initialises the library again and logs in anew
        code = 1
        try:
            code = 0 if kek.unwrap(blob, aad=b"fork") == dek and len(kek.wrap(dek, aad=b"x")) == 60 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert kek.unwrap(blob, aad=b"fork") == dek  # the parent's session is untouched


# --------------------------------------------------------------------------- the keyring


def test_keyring_reopens_through_the_pkcs11_opener(
    kek: Pkcs11Kek, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "keyring"
    ring = Keyring.create(directory, kek=kek)
    context = Context(store="chroma", namespace="docs", key="doc-1#0", tenant="acme")
    sealed = Sealer(ring).seal(b"Kenji's record", context=context, subjects=["subject-1", "subject-2"])

    data = json.loads((directory / "keyring.json").read_text(encoding="utf-8"))
    assert data["kek"] == {"backend": "pkcs11", "module": MODULE, "token": TOKEN, "key_label": KEY}
    assert PIN not in json.dumps(data["kek"])
    assert not (directory / "kek.key").exists()

    monkeypatch.setenv(PIN_ENV, PIN)
    reopened = Keyring.open(directory)  # the registered "pkcs11" opener, PIN from the environment
    assert "pkcs11" in repr(reopened)
    assert Sealer(reopened).open(sealed, context=context) == b"Kenji's record"
    # and the other way round: sealed after the reopen, opened by the first instance
    sealed2 = Sealer(reopened).seal(b"second", context=context, subjects=["subject-3"])
    assert Sealer(ring).open(sealed2, context=context) == b"second"


def test_keyring_reopen_without_pin(kek: Pkcs11Kek, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Keyring.create(tmp_path / "k", kek=kek)
    monkeypatch.delenv(PIN_ENV, raising=False)
    with pytest.raises(KeyringError, match=PIN_ENV):
        Keyring.open(tmp_path / "k")


def test_keyring_with_another_hsm_key_does_not_open(
    kek: Pkcs11Kek, other_kek: Pkcs11Kek, tmp_path: Path
) -> None:
    Keyring.create(tmp_path / "k", kek=kek)
    with pytest.raises(KeyringError, match="does not open with this pkcs11 KEK"):
        Keyring.open(tmp_path / "k", kek=other_kek)


# --------------------------------------------------------------------------- failures and secrecy


def test_wrong_pin(kek: Pkcs11Kek, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyringError) as info:
        Pkcs11Kek(module=MODULE, token_label=TOKEN, key_label=KEY, pin="9999")
    message = str(info.value)
    assert "wrong PIN" in message
    assert MODULE in message
    assert "9999" not in message
    assert PIN not in message
    assert _unchained(info.value)  # no PKCS#11 exception (or traceback) under it

    Keyring.create(tmp_path / "k", kek=kek)
    monkeypatch.setenv(PIN_ENV, "9999")
    with pytest.raises(KeyringError, match="wrong PIN"):
        Keyring.open(tmp_path / "k")


@pytest.mark.slow
def test_wrong_pin_in_a_fresh_process(softhsm: Path, kek: Pkcs11Kek) -> None:
    """In a new process the token itself checks the PIN (C_Login fails with CKR_PIN_INCORRECT)."""
    code = (
        "import sys\n"
        "from guardrail.kek_pkcs11 import Pkcs11Kek\n"
        "from guardrail.keys import KeyringError\n"
        "try:\n"
        f"    Pkcs11Kek(module={MODULE!r}, token_label={TOKEN!r}, key_label={KEY!r}, pin='9999')\n"
        "except KeyringError as e:\n"
        "    print(e, e.__cause__ is None and (e.__context__ is None or e.__suppress_context__), sep='\\n')\n"
        "    sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(softhsm)}
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    message, chained_nothing = proc.stdout.splitlines()
    assert "wrong PIN" in message
    assert MODULE in message
    assert "9999" not in message
    assert chained_nothing == "True"
    assert "Traceback" not in proc.stderr


def test_missing_module_is_named(softhsm: Path) -> None:
    with pytest.raises(KeyringError, match=r"/nonexistent/libnope\.so") as info:
        Pkcs11Kek(module="/nonexistent/libnope.so", token_label=TOKEN, key_label=KEY, pin=PIN)
    assert _unchained(info.value)


def test_missing_token_is_named(kek: Pkcs11Kek) -> None:
    with pytest.raises(KeyringError, match="no such token") as info:
        Pkcs11Kek(module=MODULE, token_label="no-such-token", key_label=KEY, pin=PIN)
    assert MODULE in str(info.value)
    assert "no-such-token" in str(info.value)


def test_missing_key_is_named(kek: Pkcs11Kek) -> None:
    with pytest.raises(KeyringError, match="no such AES key") as info:
        Pkcs11Kek(module=MODULE, token_label=TOKEN, key_label="no-such-key", pin=PIN)
    assert "no-such-key" in str(info.value)


def test_pin_is_required(softhsm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PIN_ENV, raising=False)
    with pytest.raises(KeyringError, match=PIN_ENV):
        Pkcs11Kek(module=MODULE, token_label=TOKEN, key_label=KEY)


def test_pin_from_environment(kek: Pkcs11Kek, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    from_env = Pkcs11Kek.from_params(kek.describe())
    assert from_env.unwrap(kek.wrap(b"x" * 32, aad=b"a"), aad=b"a") == b"x" * 32


def test_from_params_needs_every_field(kek: Pkcs11Kek, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    with pytest.raises(KeyringError, match="'key_label'"):
        Pkcs11Kek.from_params({"backend": "pkcs11", "module": MODULE, "token": TOKEN})


def test_describe_and_repr_hold_no_pin(kek: Pkcs11Kek) -> None:
    assert kek.describe() == {"backend": "pkcs11", "module": MODULE, "token": TOKEN, "key_label": KEY}
    assert PIN not in json.dumps(kek.describe())
    text = repr(kek)
    assert text == f"Pkcs11Kek(module={MODULE!r}, token={TOKEN!r}, key_label={KEY!r})"
    assert PIN not in text
    assert PIN not in str(kek)


def test_not_picklable(kek: Pkcs11Kek) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(kek)


def test_key_is_not_extractable(kek: Pkcs11Kek, other_kek: Pkcs11Kek) -> None:
    with _raw_session() as session:
        key = _raw_key(session, KEY)
        with pytest.raises(pkcs11.PKCS11Error):  # CKR_ATTRIBUTE_SENSITIVE
            _ = key[pkcs11.Attribute.VALUE]
        assert key[pkcs11.Attribute.SENSITIVE] is True
        assert key[pkcs11.Attribute.EXTRACTABLE] is False
        assert key[pkcs11.Attribute.NEVER_EXTRACTABLE] is True
        assert key[pkcs11.Attribute.TOKEN] is True
        assert key[pkcs11.Attribute.VALUE_LEN] == 32
        # nor can it be wrapped out under another key in the token
        with pytest.raises(pkcs11.PKCS11Error):  # CKR_KEY_UNEXTRACTABLE
            _raw_key(session, OTHER_KEY).wrap_key(key)
    assert kek.unwrap(kek.wrap(b"k" * 32, aad=b"a"), aad=b"a") == b"k" * 32  # still logged in


def test_missing_python_pkcs11_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # `import pkcs11` now raises ImportError
    with pytest.raises(KeyringError, match=r"pip install 'guardrail-privacy\[hsm\]'") as info:
        # a module this process has not loaded yet (an open session needs no import)
        Pkcs11Kek(module="/nonexistent/libother.so", token_label=TOKEN, key_label=KEY, pin=PIN)
    assert _unchained(info.value)
