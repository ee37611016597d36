"""Keyring directory and file permissions (issue 11): `keys init` leaves the directory 0700 even when it
existed with a looser mode; opening a keyring that others may write fails with the chmod that fixes it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from guardrail.keys import Keyring, KeyringError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_keys_init_tightens_an_existing_0777_directory(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    os.chmod(keys, 0o777)  # noqa: S103 - the attack under test
    done = cli("keys", "init", keys)
    assert done.returncode == 0, done.stderr
    assert _mode(keys) == 0o700
    for name in ("keyring.json", "kek.key"):
        assert _mode(keys / name) & 0o077 == 0, name
    assert cli("keys", "list", "--keyring", keys).returncode == 0  # positive control: it opens


@pytest.mark.parametrize(("target", "mode", "fix"), [
    (".", 0o777, "chmod 700"),
    (".", 0o770, "chmod 700"),
    ("kek.key", 0o666, "chmod 600"),
    ("keyring.json", 0o620, "chmod 600"),
])  # fmt: skip
def test_opening_a_writable_keyring_fails_with_the_fix(
    tmp_path: Path, target: str, mode: int, fix: str
) -> None:
    keys = tmp_path / "keys"
    Keyring.create(keys)
    path = (keys / target).resolve()
    os.chmod(path, mode)
    with pytest.raises(KeyringError, match=f"{fix} {path}") as caught:
        Keyring.open(keys)
    assert "writable" in str(caught.value)
    done = cli("keys", "list", "--keyring", keys)
    assert done.returncode == 2
    assert [x for x in done.stderr.splitlines() if x.strip()] == [f"error: {caught.value}"]
    os.chmod(path, 0o700 if target == "." else 0o600)  # the fix it names works
    Keyring.open(keys)


def test_group_readable_but_not_writable_opens(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    Keyring.create(keys)
    os.chmod(keys, 0o750)  # noqa: S103 - group may read, not write
    Keyring.open(keys)
