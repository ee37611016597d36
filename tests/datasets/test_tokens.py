"""Dataset pseudonym tokens: keyed (deterministic) and vault (random, re-identifiable with the keyring)."""

from __future__ import annotations

import multiprocessing
import pickle
import re
import threading
from pathlib import Path

import pytest

from guardrail.crypto import DecryptionError
from guardrail.datasets.tokens import KeyedTokens, TokenSource, TokenVault, VaultError
from guardrail.errors import ConfigError
from guardrail.keys import Keyring

KEY = bytes(range(32))
VALUES = ["Megan Murphy", "megan.murphy@example.org", "204-18-179", "Jón Þór Ólafsson", "Ana"]


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return Keyring.create(tmp_path / "keys")


# --------------------------------------------------------------------------- process workers


def _keyed_worker(key: bytes) -> list[str]:
    tokens = KeyedTokens(key)
    return [tokens.token("PERSON", v) for v in VALUES]


def _keyring_worker(directory: str) -> list[str]:
    tokens = KeyedTokens.for_keyring(Keyring.open(directory), "acme", "release-1")
    return [tokens.token("PERSON", v) for v in VALUES]


def _vault_worker(args: tuple[str, str, int]) -> list[str]:
    directory, path, rounds = args
    with TokenVault(path, keyring=Keyring.open(directory), tenant="acme") as vault:
        return [vault.token("PERSON", f"person {i % 40}") for i in range(rounds)]


def _spawn_map(func: object, args: list[object]) -> list[list[str]]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        return pool.map(func, args)  # type: ignore[arg-type]


class TestKeyedTokens:
    """Deterministic HMAC tokens: same key, same token, in any process; nothing of the value shows."""

    def test_shape_and_protocol(self) -> None:
        tokens: TokenSource = KeyedTokens(KEY)
        assert re.fullmatch(r"<PERSON_[a-z2-7]{10}>", tokens.token("PERSON", "Megan Murphy"))
        long = KeyedTokens(KEY, length=16).token("EMAIL_ADDRESS", "a@b.c")
        assert re.fullmatch(r"<EMAIL_ADDRESS_[a-z2-7]{16}>", long)

    def test_deterministic_across_instances(self) -> None:
        assert _keyed_worker(KEY) == _keyed_worker(bytes(KEY))

    def test_deterministic_across_processes(self, keyring: Keyring) -> None:
        a, b = _spawn_map(_keyring_worker, [str(keyring.directory)] * 2)
        assert a == b == _keyring_worker(str(keyring.directory))
        assert len(set(a)) == len(VALUES)

    def test_different_keys_scopes_and_entities_differ(self, keyring: Keyring) -> None:
        base = KeyedTokens(KEY).token("PERSON", "Megan Murphy")
        assert KeyedTokens(bytes(32)).token("PERSON", "Megan Murphy") != base
        assert KeyedTokens(KEY).token("PATIENT", "Megan Murphy")[9:] != base[8:]
        r1 = KeyedTokens.for_keyring(keyring, "acme", "release-1").token("PERSON", "Megan Murphy")
        r2 = KeyedTokens.for_keyring(keyring, "acme", "release-2").token("PERSON", "Megan Murphy")
        other = KeyedTokens.for_keyring(keyring, "globex", "release-1").token("PERSON", "Megan Murphy")
        assert len({base, r1, r2, other}) == 4

    @pytest.mark.parametrize(
        "variant",
        ["megan murphy", "MEGAN MURPHY", "  Megan\t\n Murphy ", "Megan  Murphy"],
        ids=["lower", "upper", "whitespace", "double-space"],
    )
    def test_normalisation(self, variant: str) -> None:
        tokens = KeyedTokens(KEY)
        assert tokens.token("PERSON", variant) == tokens.token("PERSON", "Megan Murphy")

    def test_never_contains_the_value(self) -> None:
        tokens = KeyedTokens(KEY)
        for value in VALUES:
            token = tokens.token("PERSON", value)
            assert value.casefold() not in token.casefold()
            assert token != tokens.token("PERSON", value + "x")

    @pytest.mark.parametrize(
        ("key", "length", "entity"),
        [(b"short", 10, "PERSON"), (KEY, 4, "PERSON"), (KEY, 10, "PER SON"), (KEY, 10, "<x>")],
        ids=["short-key", "short-token", "space-in-entity", "markup-in-entity"],
    )
    def test_rejects_bad_options(self, key: bytes, length: int, entity: str) -> None:
        with pytest.raises(ConfigError):
            KeyedTokens(key, length=length).token(entity, "x")

    def test_no_key_in_repr_or_pickle(self) -> None:
        tokens = KeyedTokens(KEY)
        assert KEY.hex() not in repr(tokens)
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(tokens)


class TestTokenVault:
    """Random tokens in a SQLite file: consistent per vault, unlinkable across vaults, sealed reverse map."""

    def test_shape_and_consistency(self, keyring: Keyring, tmp_path: Path) -> None:
        with TokenVault(tmp_path / "v.db", keyring=keyring, tenant="acme") as vault:
            t = vault.token("PERSON", "Megan Murphy")
            assert re.fullmatch(r"<PERSON_[2-9A-HJKMNP-TV-Z]{6}>", t)
            assert vault.token("PERSON", " megan   MURPHY") == t
            assert vault.token("PATIENT", "Megan Murphy") != t
            assert len(vault) == 2

    def test_random_not_a_function_of_the_value(self, keyring: Keyring, tmp_path: Path) -> None:
        with (
            TokenVault(tmp_path / "a.db", keyring=keyring, tenant="acme") as a,
            TokenVault(tmp_path / "b.db", keyring=keyring, tenant="acme") as b,
        ):
            ta = [a.token("PERSON", v) for v in VALUES]
            tb = [b.token("PERSON", v) for v in VALUES]
        assert all(x != y for x, y in zip(ta, tb, strict=True))

    def test_consistent_across_reopen(self, keyring: Keyring, tmp_path: Path) -> None:
        with TokenVault(tmp_path / "v.db", keyring=keyring, tenant="acme") as vault:
            first = [vault.token("PERSON", v) for v in VALUES]
        with TokenVault(tmp_path / "v.db", keyring=Keyring.open(keyring.directory), tenant="acme") as vault:
            assert [vault.token("PERSON", v) for v in VALUES] == first
            assert len(vault) == len(VALUES)

    def test_consistent_across_processes(self, keyring: Keyring, tmp_path: Path) -> None:
        path = str(tmp_path / "v.db")
        a, b = _spawn_map(_vault_worker, [(str(keyring.directory), path, 120)] * 2)
        assert a == b
        with TokenVault(path, keyring=keyring, tenant="acme") as vault:
            assert len(vault) == 40
            assert vault.token("PERSON", "person 7") == a[7]

    def test_consistent_across_threads(self, keyring: Keyring, tmp_path: Path) -> None:
        results: list[list[str]] = []
        with TokenVault(tmp_path / "v.db", keyring=keyring, tenant="acme") as vault:

            def work() -> None:
                results.append([vault.token("PERSON", f"p{i % 20}") for i in range(60)])

            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(vault) == 20
        assert all(r == results[0] for r in results)

    def test_reidentify_round_trip(self, keyring: Keyring, tmp_path: Path) -> None:
        with TokenVault(tmp_path / "v.db", keyring=keyring, tenant="acme") as vault:
            tokens = {v: vault.token("PERSON", v) for v in VALUES}
            assert {v: vault.reidentify(t) for v, t in tokens.items()} == {v: v for v in VALUES}
            with pytest.raises(VaultError, match="unknown token"):
                vault.reidentify("<PERSON_ZZZZZZ>")

    def test_another_keyring_or_tenant_cannot_use_it(self, keyring: Keyring, tmp_path: Path) -> None:
        path = tmp_path / "v.db"
        with TokenVault(path, keyring=keyring, tenant="acme") as vault:
            vault.token("PERSON", "Megan Murphy")
        other = Keyring.create(tmp_path / "other-keys")
        with pytest.raises(VaultError, match="another keyring or tenant"):
            TokenVault(path, keyring=other, tenant="acme")
        with pytest.raises(VaultError, match="another keyring or tenant"):
            TokenVault(path, keyring=keyring, tenant="globex")

    def test_sealed_value_bound_to_its_token(self, keyring: Keyring, tmp_path: Path) -> None:
        import sqlite3

        path = tmp_path / "v.db"
        with TokenVault(path, keyring=keyring, tenant="acme") as vault:
            t1, t2 = vault.token("PERSON", "Megan Murphy"), vault.token("PERSON", "Ana")
        db = sqlite3.connect(path)
        with db:  # swap the sealed values between rows: neither must open
            s1 = db.execute("SELECT sealed FROM tokens WHERE token = ?", (t1,)).fetchone()[0]
            s2 = db.execute("SELECT sealed FROM tokens WHERE token = ?", (t2,)).fetchone()[0]
            db.execute("UPDATE tokens SET sealed = ? WHERE token = ?", (s2, t1))
            db.execute("UPDATE tokens SET sealed = ? WHERE token = ?", (s1, t2))
        db.close()
        with TokenVault(path, keyring=keyring, tenant="acme") as vault, pytest.raises(DecryptionError):
            vault.reidentify(t1)

    def test_no_plaintext_in_the_file(self, keyring: Keyring, tmp_path: Path) -> None:
        path = tmp_path / "v.db"
        planted = ["Zebulon Quayle", "zq-4471-planted@example.org", "MRN 99887766"]
        with TokenVault(path, keyring=keyring, tenant="acme") as vault:
            for v in planted:
                vault.token("PERSON", v)
        data = b"".join(p.read_bytes() for p in tmp_path.glob("v.db*"))
        assert b"tokens" in data  # the file was read (a test that cannot fail is a defect)
        for v in planted:
            for form in {v, v.casefold(), v.upper()}:
                assert form.encode() not in data
                assert form.encode("utf-16-le") not in data
        assert path.stat().st_mode & 0o777 == 0o600

    def test_not_a_vault(self, keyring: Keyring, tmp_path: Path) -> None:
        bad = tmp_path / "bad.db"
        bad.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(VaultError, match="not a token vault"):
            TokenVault(bad, keyring=keyring, tenant="acme")
        with pytest.raises(VaultError, match="is a directory"):
            TokenVault(tmp_path, keyring=keyring, tenant="acme")
