"""`guardrail db init|upgrade|status|adopt-keyring` on a real server, schema version checks, TLS options
passed through to libpq, and errors that name the server but never the password."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pgcluster import WRITER, WRITER_PASSWORD, Cluster, PgLog

from guardrail.audit import AuditLog
from guardrail.db import Database, DatabaseUnavailable, parse_location
from guardrail.db.schema import CURRENT_VERSION, status
from guardrail.errors import ConfigError
from guardrail.keys import KEYRING_FILE, Keyring

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", "from guardrail.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_db_commands(cluster: Cluster, tmp_path: Path) -> None:
    admin = cluster.admin_url("guardrail") + "&schema=cli_one"
    done = cli("db", "status", admin)
    assert done.returncode == 1
    assert "no guardrail schema" in done.stdout
    done = cli("db", "init", admin, "--writer", WRITER)
    assert done.returncode == 0, done.stderr
    assert f"schema version {CURRENT_VERSION}: created; granted writer {WRITER}" in done.stdout
    done = cli("db", "init", admin, "--writer", WRITER)  # idempotent
    assert "already current" in done.stdout, done.stderr
    done = cli("db", "upgrade", admin)
    assert done.returncode == 0, done.stderr
    writer = cluster.url(WRITER, WRITER_PASSWORD, schema="cli_one")
    Keyring.create(tmp_path / "keys")
    done = cli("db", "adopt-keyring", writer, "--keyring", str(tmp_path / "keys"), "--refresh-seconds", "0.5")
    assert done.returncode == 0, done.stderr
    assert "writer-secret" not in done.stdout + done.stderr
    assert json.loads((tmp_path / "keys" / KEYRING_FILE).read_text())["refresh_seconds"] == 0.5
    done = cli("db", "status", writer)
    assert done.returncode == 0, done.stderr
    assert "1 keyring state(s)" in done.stdout
    assert status(writer).version == CURRENT_VERSION


def test_newer_schema_is_refused(pg: PgLog) -> None:
    pg.sql("INSERT INTO {s}.schema_version (version, description) VALUES (99, 'from the future')")
    with pytest.raises(ConfigError, match="newer than this guardrail"):
        AuditLog(pg.writer, signing_key=bytes(range(32)), record_key=bytes(range(2, 34)))


def test_tls_options_pass_through_and_errors_hide_the_password(cluster: Cluster) -> None:
    url = cluster.url(WRITER, WRITER_PASSWORD, schema="cli_one", sslmode="require")
    assert "sslmode=require" in parse_location(url).conninfo
    db = Database(url)
    with pytest.raises(DatabaseUnavailable) as info, db.connection("testing TLS") as conn:
        conn.execute("SELECT 1")
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "SSL" in message  # libpq's own reason: the server does not offer TLS
    assert WRITER_PASSWORD not in message
    assert WRITER_PASSWORD not in repr(db)
    wrong = cluster.url(WRITER, "not-the-password-x", schema="cli_one")
    with pytest.raises(DatabaseUnavailable) as info, Database(wrong).connection() as conn:
        conn.execute("SELECT 1")
    assert "password authentication failed" in str(info.value)
    assert "not-the-password-x" not in str(info.value)


def test_bad_locations_are_config_errors() -> None:
    for bad in (
        "postgresql://h/db?schema=Bad-Name",
        "postgresql://h/db?pool_size=zero",
        "mysql://h/db",
    ):
        with pytest.raises(ConfigError):
            parse_location(bad)
    # a Path made from a URL (one slash eaten) is still the same location
    assert parse_location(Path("postgresql://u@h:5/db?schema=x")).display == "u@h:5/db"
