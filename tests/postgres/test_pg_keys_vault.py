"""Keyring state and the token vault on PostgreSQL, shared by several processes: a shred on one process is
honoured by another within the documented bound, concurrent rotations give one primary, two processes
get the same vault tokens, and everything fails closed while the server is down and recovers after."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from pgcluster import PgLog
from pgcluster import spawn as run_worker

from guardrail.crypto import RecordErased
from guardrail.datasets.tokens import TokenVault
from guardrail.datasets.tokens_pg import PgTokenVault
from guardrail.db import DatabaseUnavailable
from guardrail.keys import KEYRING_FILE, Keyring, KeyringError
from guardrail.keys_pg import PgKeyring, move_state

WORKER = Path(__file__).with_name("_pg_keys_worker.py")
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def spawn(*args: str) -> subprocess.Popen[str]:
    return run_worker(WORKER, *args)


def pg_keyring(pg: PgLog, tmp_path: Path) -> PgKeyring:
    directory = tmp_path / "keys"
    Keyring.create(directory)
    return move_state(directory, pg.writer)


def test_state_moves_to_postgres_and_material_stays(pg: PgLog, tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ring = Keyring.create(directory)
    before = ring.encryption_keys("acme", ["p-1"])
    moved = move_state(directory, pg.writer)
    assert isinstance(moved, PgKeyring)
    pointer = json.loads((directory / KEYRING_FILE).read_text())
    assert set(pointer) == {"format", "state", "refresh_seconds"}  # no wrapped DEK left in the file
    assert (directory / "kek.key").exists()  # the KEK material stays with its backend
    again = Keyring.open(directory)
    assert again.encryption_keys("acme", ["p-1"]) == before
    assert "writer-secret" not in repr(again)
    rows = pg.sql("SELECT data FROM {s}.keyring_state")
    assert len(json.loads(str(rows[0][0]))["keys"]) == 2
    with pytest.raises(KeyringError, match="already in PostgreSQL"):
        move_state(directory, pg.writer)


def test_shred_on_one_process_is_honoured_by_another_within_the_bound(pg: PgLog, tmp_path: Path) -> None:
    ring = pg_keyring(pg, tmp_path)
    ring.encryption_keys("acme", ["p-7"])
    (subject_key,) = ring.subject_key_ids("acme", "p-7")
    stamp = (ring.directory / KEYRING_FILE).stat().st_mtime_ns
    child = spawn("watch", str(ring.directory), subject_key)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    time.sleep(0.3)
    destroyed = ring.shred_subject("acme", "p-7")
    shredded_at = time.monotonic()  # CLOCK_MONOTONIC is system-wide: comparable with the child's
    assert destroyed == [subject_key]
    line = child.stdout.readline().strip()
    child.communicate(timeout=30)
    assert line.startswith("erased"), line
    lag = float(line.split()[1]) - shredded_at
    assert lag <= ring.refresh_seconds + 0.5, lag  # the documented bound (plus a poll and a query)
    assert (ring.directory / KEYRING_FILE).stat().st_mtime_ns == stamp  # it came through the database
    with pytest.raises(RecordErased):
        Keyring.open(ring.directory).decryption_key(bytes.fromhex(subject_key))
    with pytest.raises(KeyringError, match="erased"):
        ring.encryption_keys("acme", ["p-7"])


def test_concurrent_rotations_from_two_processes_give_one_primary(pg: PgLog, tmp_path: Path) -> None:
    ring = pg_keyring(pg, tmp_path)
    ring.encryption_keys("acme", [])
    children = [spawn("rotate", str(ring.directory), "acme", "8") for _ in range(2)]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        out, err = child.communicate(timeout=60)
        assert "done" in out, err
    fresh = Keyring.open(ring.directory)
    keys = [k for k in fresh.list_keys() if k.scope == "tenant"]
    assert sorted(k.version for k in keys) == list(range(1, 18))
    assert [k.state for k in keys].count("primary") == 1
    assert max(keys, key=lambda k: k.version).state == "primary"


def test_server_down_fails_closed_then_recovers(pg: PgLog, tmp_path: Path) -> None:
    ring = pg_keyring(pg, tmp_path)
    ((tenant_key, _),) = ring.encryption_keys("acme", [])
    ring.encryption_keys("acme", ["p-2"])
    pg.cluster.stop()
    try:
        with pytest.raises(KeyringError, match="nothing was changed") as info:
            ring.shred_subject("acme", "p-2")  # reported as failed, not pretended
        assert "writer-secret" not in str(info.value)
        time.sleep(ring.refresh_seconds + 0.1)
        with pytest.raises(KeyringError, match="not available"):
            ring.decryption_key(tenant_key)  # past the bound, a stale state releases nothing
    finally:
        pg.cluster.restart()
    assert ring.decryption_key(tenant_key)  # the same object, once the server is back
    assert ring.shred_subject("acme", "p-2")


def test_vault_shared_by_two_processes(pg: PgLog, tmp_path: Path) -> None:
    ring = pg_keyring(pg, tmp_path)
    url = pg.writer + "&vault=trials"
    children = [spawn("tokens", str(ring.directory), url, "60") for _ in range(2)]
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0] == results[1]  # the same random token for each value, whoever added it first
    assert len(set(results[0].values())) == 60
    vault = TokenVault(url, keyring=ring, tenant="acme")
    assert isinstance(vault, PgTokenVault)
    assert len(vault) == 60
    token = results[0]["value 3"]
    assert vault.token("PERSON", "person  NUMBER3") == token  # normalised, as the SQLite vault
    assert vault.reidentify(token) == "Person Number3"
    # no value in clear in the database
    dump = json.dumps([list(map(str, r)) for r in pg.sql("SELECT * FROM {s}.vault_tokens")])
    assert "Number3" not in dump
    vault.link_subject(token, "subj-a")
    vault.link_subject(results[0]["value 4"], "subj-a")
    vault.link_subject(results[0]["value 4"], "subj-b")
    erased = vault.erase_subject("subj-a")
    assert (erased.deleted, erased.shared) == (1, 1)
    assert vault.is_erased(token)
    with pytest.raises(Exception, match="erased"):
        vault.reidentify(token)
    with pytest.raises(Exception, match="another keyring or tenant"):
        TokenVault(url, keyring=ring, tenant="other-tenant")
    pg.cluster.stop()
    try:
        with pytest.raises(DatabaseUnavailable):
            vault.token("PERSON", "Someone New")
    finally:
        pg.cluster.restart()
    assert vault.token("PERSON", "Someone New").startswith("<PERSON_")
