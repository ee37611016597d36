"""The keyring (``guardrail.keys``) on real files: backends, what reaches the disk, rotation, shredding.

Two ``Keyring`` objects on one directory stand in for two processes sharing a keyring.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import random
import re
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from guardrail.crypto import Context, DecryptionError, RecordErased, Sealer, key_ids_of
from guardrail.errors import GuardrailError
from guardrail.keys import (
    KEK_FILE,
    KEYRING_FILE,
    PASSPHRASE_ENV,
    FileKek,
    KeyInfo,
    KeyInUse,
    Keyring,
    KeyringError,
)

TENANT = "tenant-Zanzibar-Quokka-7731"
OTHER_TENANT = "tenant-Okapi-Vermilion-4420"
ALICE = "subject-Xylophone-Marmalade-5512"
BOB = "subject-Pangolin-Tangerine-9083"
SECRET = b"record body: Megan Murphy, MRN 204-18-179"


def ctx(tenant: str = TENANT, key: str = "doc-1#0") -> Context:
    return Context(store="chroma", namespace="patients", key=key, tenant=tenant)


@pytest.fixture
def kr_dir(tmp_path: Path) -> Path:
    return tmp_path / "keyring"


@pytest.fixture
def keyring(kr_dir: Path) -> Keyring:
    return Keyring.create(kr_dir)


def encodings(material: bytes) -> list[bytes]:
    """Every way key material could plausibly be written to a file."""
    return [
        material,
        material.hex().encode(),
        material.hex().upper().encode(),
        base64.b64encode(material),
        base64.urlsafe_b64encode(material),
        base64.b64encode(material).rstrip(b"="),
        base64.b32encode(material),
    ]


def all_file_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def live_deks(keyring: Keyring) -> list[bytes]:
    return [
        keyring.decryption_key(bytes.fromhex(info.id))
        for info in keyring.list_keys()
        if info.state != "destroyed"
    ]


def populate(keyring: Keyring) -> dict[str, bytes]:
    """Seal a few records for two tenants and two subjects; rotate and shred a little."""
    sealer = Sealer(keyring)
    records = {
        "t-only": sealer.seal(SECRET, context=ctx(key="t-only")),
        "alice": sealer.seal(SECRET, context=ctx(key="alice"), subjects=[ALICE]),
        "bob": sealer.seal(SECRET, context=ctx(key="bob"), subjects=[BOB]),
        "both": sealer.seal(SECRET, context=ctx(key="both"), subjects=[ALICE, BOB]),
        "other": sealer.seal(SECRET, context=ctx(OTHER_TENANT, key="other"), subjects=[ALICE]),
    }
    keyring.rotate(TENANT)
    records["after-rotate"] = sealer.seal(SECRET, context=ctx(key="after-rotate"), subjects=[BOB])
    return records


# --------------------------------------------------------------------------- the file backend on disk


def test_file_backend_layout_and_modes(keyring: Keyring, kr_dir: Path) -> None:
    assert (kr_dir / KEYRING_FILE).is_file()
    assert stat.S_IMODE((kr_dir / KEK_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(kr_dir.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE((kr_dir / KEYRING_FILE).stat().st_mode) & 0o077 == 0
    data = json.loads((kr_dir / KEYRING_FILE).read_text("utf-8"))
    assert data["format"] == "guardrail.keyring/1"
    assert data["kek"] == {"backend": "file", "file": KEK_FILE}
    assert data["keys"] == []


def test_files_hold_no_tenant_or_subject_names(keyring: Keyring, kr_dir: Path) -> None:
    populate(keyring)
    keyring.shred_subject(TENANT, BOB)
    files = all_file_bytes(kr_dir)
    assert KEYRING_FILE in "".join(files)
    for path, content in files.items():
        for name in (TENANT, OTHER_TENANT, ALICE, BOB):
            for form in (name, name.lower(), name.upper(), name.split("-")[1]):
                assert form.encode() not in content, (path, form)


def test_files_hold_no_raw_deks(keyring: Keyring, kr_dir: Path) -> None:
    populate(keyring)
    deks = live_deks(keyring)
    assert len(deks) == 6  # two tenant versions, the other tenant, and three subject keys
    assert len(set(deks)) == len(deks)
    assert all(len(dek) == 32 for dek in deks)
    for path, content in all_file_bytes(kr_dir).items():
        for dek in deks:
            for form in encodings(dek):
                assert form not in content, path
    # and the KEK itself stays in kek.key: never in keyring.json
    kek = (kr_dir / KEK_FILE).read_bytes()
    keyring_json = (kr_dir / KEYRING_FILE).read_bytes()
    assert all(form not in keyring_json for form in encodings(kek))


def test_reopen_and_decrypt_a_record_sealed_before(keyring: Keyring, kr_dir: Path) -> None:
    blob = Sealer(keyring).seal(SECRET, context=ctx(), subjects=[ALICE])
    text = Sealer(keyring).seal_text(SECRET, context=ctx(key="t"), subjects=[BOB])
    primary = keyring.primary_id(TENANT)
    del keyring
    reopened = Keyring.open(kr_dir)
    assert Sealer(reopened).open(blob, context=ctx()) == SECRET
    assert Sealer(reopened).open_text(text, context=ctx(key="t")) == SECRET
    assert reopened.primary_id(TENANT) == primary
    again = Sealer(reopened).seal(SECRET, context=ctx(), subjects=[ALICE])
    assert key_ids_of(again) == key_ids_of(blob)  # the same keys, not new ones


def test_wrong_key_file_does_not_open(keyring: Keyring, kr_dir: Path) -> None:
    Sealer(keyring).seal(SECRET, context=ctx())
    (kr_dir / KEK_FILE).write_bytes(os.urandom(32))
    with pytest.raises(KeyringError, match="does not open with this file KEK"):
        Keyring.open(kr_dir)


def test_missing_key_file(keyring: Keyring, kr_dir: Path) -> None:
    (kr_dir / KEK_FILE).unlink()
    with pytest.raises(KeyringError, match="cannot read the key file"):
        Keyring.open(kr_dir)


# --------------------------------------------------------------------------- the passphrase backend


def test_passphrase_backend(kr_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # scrypt with the default parameters (n=2**15): three derivations in all
    passphrase = "correct horse battery staple 4417"
    monkeypatch.setenv(PASSPHRASE_ENV, passphrase)
    keyring = Keyring.create(kr_dir, backend="passphrase")
    blob = Sealer(keyring).seal(SECRET, context=ctx(), subjects=[ALICE])
    assert not (kr_dir / KEK_FILE).exists()
    raw = (kr_dir / KEYRING_FILE).read_bytes()
    assert passphrase.encode() not in raw
    params = json.loads(raw)["kek"]
    assert params["backend"] == "passphrase"
    assert (params["n"], params["r"], params["p"]) == (2**15, 8, 1)
    assert len(base64.b64decode(params["salt"])) == 16

    reopened = Keyring.open(kr_dir)  # same passphrase, from the environment
    assert Sealer(reopened).open(blob, context=ctx()) == SECRET

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple 4418")
    with pytest.raises(KeyringError) as info:
        Keyring.open(kr_dir)
    message = str(info.value)
    assert "does not open with this passphrase KEK" in message
    assert "passphrase" in message
    assert "4417" not in message
    assert "4418" not in message

    monkeypatch.delenv(PASSPHRASE_ENV)  # no derivation: refused before scrypt runs
    with pytest.raises(KeyringError, match=PASSPHRASE_ENV):
        Keyring.open(kr_dir)


# --------------------------------------------------------------------------- create / open


def test_create_refuses_an_existing_keyring(keyring: Keyring, kr_dir: Path) -> None:
    Sealer(keyring).seal(SECRET, context=ctx())
    before = all_file_bytes(kr_dir)
    with pytest.raises(KeyringError, match="already holds a keyring"):
        Keyring.create(kr_dir)
    with pytest.raises(KeyringError, match="already holds a keyring"):
        Keyring.create(kr_dir, backend="passphrase", passphrase="x")
    assert all_file_bytes(kr_dir) == before


def test_create_over_a_leftover_key_file_raises_keyring_error(kr_dir: Path) -> None:
    kr_dir.mkdir()
    (kr_dir / KEK_FILE).write_bytes(os.urandom(32))
    with pytest.raises(KeyringError):
        Keyring.create(kr_dir)


@pytest.mark.parametrize("make", [True, False], ids=["empty-dir", "missing-dir"])
def test_open_without_a_keyring_names_the_init_command(tmp_path: Path, make: bool) -> None:
    where = tmp_path / "nothing"
    if make:
        where.mkdir()
    with pytest.raises(KeyringError, match="guardrail keys init"):
        Keyring.open(where)


@pytest.mark.parametrize(
    ("content", "match"),
    [("{not json", "unreadable"), ('{"format": "other/1"}', "not a guardrail.keyring/1"), ("[]", "not a")],
    ids=["not-json", "other-format", "a-list"],
)
def test_open_a_corrupt_keyring(keyring: Keyring, kr_dir: Path, content: str, match: str) -> None:
    (kr_dir / KEYRING_FILE).write_text(content, "utf-8")
    with pytest.raises(KeyringError, match=match):
        Keyring.open(kr_dir)


@pytest.mark.parametrize("drop", ["kek", "check", "index_key"])
def test_open_a_keyring_missing_fields(keyring: Keyring, kr_dir: Path, drop: str) -> None:
    data = json.loads((kr_dir / KEYRING_FILE).read_text("utf-8"))
    del data[drop]
    (kr_dir / KEYRING_FILE).write_text(json.dumps(data), "utf-8")
    with pytest.raises(KeyringError):
        Keyring.open(kr_dir)


# --------------------------------------------------------------------------- encryption keys


def test_encryption_keys_per_tenant(keyring: Keyring) -> None:
    first = keyring.encryption_keys(TENANT, [])
    assert first == keyring.encryption_keys(TENANT, [])
    assert len(first) == 1
    ((key_id, key),) = first
    assert len(key_id) == 8
    assert len(key) == 32
    assert key_id.hex() == keyring.primary_id(TENANT)
    other = keyring.encryption_keys(OTHER_TENANT, [])
    assert other[0][0] != key_id
    assert other[0][1] != key
    assert keyring.primary_id("never-seen") is None


def test_encryption_keys_subjects_in_a_stable_order(keyring: Keyring) -> None:
    keys = keyring.encryption_keys(TENANT, [BOB, ALICE])
    assert len(keys) == 3
    assert keys == keyring.encryption_keys(TENANT, [ALICE, BOB])
    assert keys == keyring.encryption_keys(TENANT, [BOB, ALICE, BOB])  # duplicates count once
    tenant_key, *subject_keys = keys
    assert tenant_key == keyring.encryption_keys(TENANT, [])[0]  # the tenant key comes first
    # subjects in sorted order, whichever order they were given in
    assert [k.hex() for k, _ in subject_keys] == [
        keyring.subject_key_ids(TENANT, s)[0] for s in sorted([ALICE, BOB])
    ]
    by_subject = dict(zip(sorted([ALICE, BOB]), subject_keys, strict=True))
    assert keyring.encryption_keys(TENANT, [ALICE]) == [tenant_key, by_subject[ALICE]]
    assert keyring.encryption_keys(TENANT, [BOB]) == [tenant_key, by_subject[BOB]]
    assert len({k for k, _ in keys}) == 3
    assert len({v for _, v in keys}) == 3
    # the same subject name under another tenant is another data subject, with another key
    assert keyring.encryption_keys(OTHER_TENANT, [ALICE])[1] not in keys


def test_sealed_record_carries_the_keyring_ids(keyring: Keyring) -> None:
    blob = Sealer(keyring).seal(SECRET, context=ctx(), subjects=[BOB, ALICE])
    assert key_ids_of(blob) == [k for k, _ in keyring.encryption_keys(TENANT, [ALICE, BOB])]


# --------------------------------------------------------------------------- tokens


def test_tokens(keyring: Keyring, tmp_path: Path, kr_dir: Path) -> None:
    token = keyring.token(TENANT, "doc_id", "doc-42")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert token == keyring.token(TENANT, "doc_id", "doc-42")
    assert token == Keyring.open(kr_dir).token(TENANT, "doc_id", "doc-42")  # stable across reopen
    assert token != keyring.token(OTHER_TENANT, "doc_id", "doc-42")
    assert token != keyring.token(TENANT, "subject_id", "doc-42")
    assert token != keyring.token(TENANT, "doc_id", "doc-43")
    assert token != Keyring.create(tmp_path / "another").token(TENANT, "doc_id", "doc-42")
    assert "doc-42" not in token
    long = keyring.token(TENANT, "doc_id", "doc-42", length=64)
    assert re.fullmatch(r"[0-9a-f]{64}", long)
    assert long.startswith(token)


# --------------------------------------------------------------------------- rotation


def test_rotate(keyring: Keyring, kr_dir: Path) -> None:
    sealer = Sealer(keyring)
    before = sealer.seal(SECRET, context=ctx(), subjects=[ALICE])
    old = keyring.primary_id(TENANT)
    assert old is not None
    info = keyring.rotate(TENANT)
    assert isinstance(info, KeyInfo)
    assert (info.scope, info.version, info.state) == ("tenant", 2, "primary")
    assert info.id == keyring.primary_id(TENANT) != old
    states = {k.id: (k.version, k.state) for k in keyring.list_keys()}
    assert states[old] == (1, "decrypt-only")
    assert states[info.id] == (2, "primary")
    assert keyring.tenant_key_ids(TENANT) == [old, info.id]
    assert sealer.open(before, context=ctx()) == SECRET
    after = sealer.seal(SECRET, context=ctx(), subjects=[ALICE])
    assert key_ids_of(after)[0].hex() == info.id
    assert key_ids_of(after)[1] == key_ids_of(before)[1]  # subject keys are not rotated
    # another process sees the rotation
    reopened = Keyring.open(kr_dir)
    assert reopened.primary_id(TENANT) == info.id
    assert Sealer(reopened).open(before, context=ctx()) == SECRET
    assert keyring.rotate(TENANT).version == 3


def test_rotate_all(keyring: Keyring) -> None:
    sealer = Sealer(keyring)
    records = {t: sealer.seal(SECRET, context=ctx(t), subjects=[ALICE]) for t in (TENANT, OTHER_TENANT)}
    old = {t: keyring.primary_id(t) for t in records}
    rotated = keyring.rotate_all()
    assert len(rotated) == 2
    assert {(i.scope, i.version, i.state) for i in rotated} == {("tenant", 2, "primary")}
    assert {i.id for i in rotated} == {keyring.primary_id(t) for t in records}
    for tenant, blob in records.items():
        assert keyring.primary_id(tenant) != old[tenant]
        assert sealer.open(blob, context=ctx(tenant)) == SECRET
        assert key_ids_of(sealer.seal(SECRET, context=ctx(tenant)))[0].hex() == keyring.primary_id(tenant)
    subject_states = {k.state for k in keyring.list_keys() if k.scope == "subject"}
    assert subject_states == {"primary"}


# --------------------------------------------------------------------------- destroy


def test_destroy(keyring: Keyring, kr_dir: Path) -> None:
    sealer = Sealer(keyring)
    old_record = sealer.seal(SECRET, context=ctx())
    old = keyring.primary_id(TENANT)
    assert old is not None
    with pytest.raises(KeyInUse, match="primary"):
        keyring.destroy(old, in_use=0)
    keyring.rotate(TENANT)
    with pytest.raises(KeyInUse, match="reencrypt"):
        keyring.destroy(old, in_use=3)
    assert keyring.decryption_key(bytes.fromhex(old))  # still there after the refusals
    assert issubclass(KeyInUse, KeyringError)
    with pytest.raises(KeyringError, match="no key"):
        keyring.destroy("00" * 8, in_use=0)

    keyring.destroy(old, in_use=0)
    assert {k.id: k.state for k in keyring.list_keys()}[old] == "destroyed"
    with pytest.raises(RecordErased):
        keyring.decryption_key(bytes.fromhex(old))
    with pytest.raises(RecordErased) as info:
        sealer.open(old_record, context=ctx())
    assert info.value.record == "doc-1#0"
    new_record = sealer.seal(SECRET, context=ctx(key="new"))
    assert sealer.open(new_record, context=ctx(key="new")) == SECRET
    # persisted: a fresh process sees the tombstone too
    reopened = Keyring.open(kr_dir)
    with pytest.raises(RecordErased):
        reopened.decryption_key(bytes.fromhex(old))
    # and the tombstone holds no material
    entry = next(k for k in json.loads((kr_dir / KEYRING_FILE).read_text())["keys"] if k["id"] == old)
    assert entry["state"] == "destroyed"
    assert entry["wrapped"] is None


def test_decryption_key_unknown_id(keyring: Keyring) -> None:
    with pytest.raises(KeyError):
        keyring.decryption_key(os.urandom(8))
    with pytest.raises(DecryptionError) as info:
        Sealer(keyring).open(bytes([1, 1, 1]) + os.urandom(8 + 32 + 32 + 12 + 20), context=ctx())
    assert type(info.value) is DecryptionError


# --------------------------------------------------------------------------- crypto-shredding


def test_shred_subject(keyring: Keyring, kr_dir: Path, tmp_path: Path) -> None:
    records = populate(keyring)
    sealer = Sealer(keyring)
    backup = tmp_path / "backup.json"  # a copy of the store, taken before the shred
    backup.write_text(json.dumps({name: blob.hex() for name, blob in records.items()}))

    alice_ids = keyring.subject_key_ids(TENANT, ALICE)
    assert len(alice_ids) == 1
    assert keyring.shred_subject(TENANT, ALICE) == alice_ids
    assert keyring.shred_subject(TENANT, ALICE) == []  # nothing left to destroy

    def opens(sealer: Sealer, name: str, blob: bytes) -> bool:
        tenant = OTHER_TENANT if name == "other" else TENANT
        try:
            return sealer.open(blob, context=ctx(tenant, key=name)) == SECRET
        except RecordErased as erased:
            return erased.record != name  # erased, and named: False

    expected = {
        "t-only": True,
        "alice": False,
        "bob": True,
        "both": False,
        "other": True,
        "after-rotate": True,
    }
    assert {name: opens(sealer, name, blob) for name, blob in records.items()} == expected
    # the backup copy does not help, in this process or a fresh one
    restored = {name: bytes.fromhex(h) for name, h in json.loads(backup.read_text()).items()}
    assert {name: opens(sealer, name, blob) for name, blob in restored.items()} == expected
    fresh = Sealer(Keyring.open(kr_dir))
    assert {name: opens(fresh, name, blob) for name, blob in restored.items()} == expected

    # an erased subject cannot get new data
    with pytest.raises(KeyringError, match="erased"):
        keyring.encryption_keys(TENANT, [ALICE])
    with pytest.raises(KeyringError):
        sealer.seal(SECRET, context=ctx(key="new"), subjects=[BOB, ALICE])
    with pytest.raises(KeyringError):
        Keyring.open(kr_dir).encryption_keys(TENANT, [ALICE])
    # the same name under another tenant is someone else
    assert len(keyring.encryption_keys(OTHER_TENANT, [ALICE])) == 2


def test_shred_tenant(keyring: Keyring) -> None:
    records = populate(keyring)
    sealer = Sealer(keyring)
    other_record = sealer.seal(SECRET, context=ctx(OTHER_TENANT, key="other-2"), subjects=[BOB])
    doomed = set(keyring.tenant_key_ids(TENANT)) | {
        i for s in (ALICE, BOB) for i in keyring.subject_key_ids(TENANT, s)
    }
    assert len(doomed) == 4  # two tenant versions, two subjects
    survivors = {k.id for k in keyring.list_keys()} - doomed

    assert set(keyring.shred_tenant(TENANT)) == doomed
    states = {k.id: k.state for k in keyring.list_keys()}
    assert {states[i] for i in doomed} == {"destroyed"}
    assert "destroyed" not in {states[i] for i in survivors}
    for name in ("t-only", "alice", "bob", "both", "after-rotate"):
        with pytest.raises(RecordErased):
            sealer.open(records[name], context=ctx(key=name))
    assert sealer.open(records["other"], context=ctx(OTHER_TENANT, key="other")) == SECRET
    assert sealer.open(other_record, context=ctx(OTHER_TENANT, key="other-2")) == SECRET
    assert keyring.shred_tenant(TENANT) == []
    with pytest.raises(KeyringError, match="erased"):
        keyring.encryption_keys(TENANT, [ALICE])


# --------------------------------------------------------------------------- no material in sight


def test_list_keys_and_reprs_hold_no_material(keyring: Keyring, kr_dir: Path) -> None:
    populate(keyring)
    deks = live_deks(keyring)
    infos = keyring.list_keys()
    assert len(infos) == 6
    assert all(isinstance(i, KeyInfo) for i in infos)
    assert {f for i in infos for f in i.__dataclass_fields__} == {
        "id",
        "scope",
        "version",
        "state",
        "created",
    }
    assert all(isinstance(getattr(i, f), str | int) for i in infos for f in i.__dataclass_fields__)
    kek = (kr_dir / KEK_FILE).read_bytes()
    shown = [repr(i) for i in infos] + [str(i) for i in infos] + [repr(keyring), str(keyring)]
    for text in shown:
        for material in [*deks, kek]:
            for form in encodings(material):
                assert form not in text.encode()
        for name in (TENANT, OTHER_TENANT, ALICE, BOB):
            assert name not in text
    assert repr(keyring) == f"Keyring({str(kr_dir)!r}, backend='file', keys=6)"
    assert repr(FileKek(kr_dir / KEK_FILE)) == "FileKek()"


def test_keyring_refuses_to_pickle(keyring: Keyring, kr_dir: Path) -> None:
    keyring.encryption_keys(TENANT, [ALICE])
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(keyring)
    with pytest.raises(TypeError):
        copy.deepcopy(keyring)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(FileKek(kr_dir / KEK_FILE))


# --------------------------------------------------------------------------- several processes, threads


def test_two_keyrings_on_one_directory_see_each_other(keyring: Keyring, kr_dir: Path) -> None:
    first, second = keyring, Keyring.open(kr_dir)
    ((id1, key1),) = first.encryption_keys(TENANT, [])
    assert second.decryption_key(id1) == key1
    _, (id2, key2) = second.encryption_keys(OTHER_TENANT, [ALICE])
    assert first.decryption_key(id2) == key2
    # no duplicate primary: the second process finds the first one's key
    assert second.encryption_keys(TENANT, []) == [(id1, key1)]
    blob = Sealer(second).seal(SECRET, context=ctx(), subjects=[BOB])
    assert Sealer(first).open(blob, context=ctx()) == SECRET
    assert len(Keyring.open(kr_dir).list_keys()) == 4


TENANTS = [f"thread-tenant-{i:02d}" for i in range(20)]


def _hammer(keyrings: list[Keyring]) -> dict[str, set[tuple[bytes, bytes]]]:
    barrier = threading.Barrier(len(keyrings))

    def work(index: int) -> list[tuple[str, tuple[bytes, bytes]]]:
        order = TENANTS[:]
        random.Random(index).shuffle(order)
        barrier.wait()
        return [(t, keyrings[index].encryption_keys(t, [])[0]) for t in order]

    seen: dict[str, set[tuple[bytes, bytes]]] = {t: set() for t in TENANTS}
    with ThreadPoolExecutor(max_workers=len(keyrings)) as pool:
        for result in pool.map(work, range(len(keyrings))):
            for tenant, key in result:
                seen[tenant].add(key)
    return seen


def _assert_one_primary_each(kr_dir: Path, seen: dict[str, set[tuple[bytes, bytes]]]) -> None:
    fresh = Keyring.open(kr_dir)
    states = {k.id: k.state for k in fresh.list_keys()}
    assert len(states) == len(TENANTS)
    for tenant in TENANTS:
        assert len(seen[tenant]) == 1, tenant  # every thread got the same key
        ids = fresh.tenant_key_ids(tenant)
        assert len(ids) == 1, tenant
        assert states[ids[0]] == "primary"
        assert next(iter(seen[tenant]))[0].hex() == ids[0]


def test_threads_share_one_keyring(keyring: Keyring, kr_dir: Path) -> None:
    seen = _hammer([keyring] * 4)
    _assert_one_primary_each(kr_dir, seen)


def test_threads_with_one_keyring_each(keyring: Keyring, kr_dir: Path) -> None:
    """Four Keyring objects on one directory (as four processes would), racing on the same tenants."""
    seen = _hammer([keyring] + [Keyring.open(kr_dir) for _ in range(3)])
    _assert_one_primary_each(kr_dir, seen)


# --------------------------------------------------------------------------- known bugs


def test_shred_in_another_process_stops_decryption(keyring: Keyring, kr_dir: Path) -> None:
    sealer = Sealer(keyring)
    blob = sealer.seal(SECRET, context=ctx(), subjects=[ALICE])  # this process now caches Alice's DEK
    Keyring.open(kr_dir).shred_subject(TENANT, ALICE)
    with pytest.raises(RecordErased):
        sealer.open(blob, context=ctx())


def test_shred_in_another_process_stops_new_data(keyring: Keyring, kr_dir: Path) -> None:
    keyring.encryption_keys(TENANT, [ALICE])
    Keyring.open(kr_dir).shred_subject(TENANT, ALICE)
    with pytest.raises(KeyringError):
        keyring.encryption_keys(TENANT, [ALICE])


def test_errors_are_guardrail_errors() -> None:
    assert issubclass(KeyringError, GuardrailError)
    assert issubclass(RecordErased, DecryptionError)
