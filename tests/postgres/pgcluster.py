"""A private PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl in a temporary directory,
listening on 127.0.0.1 (a free port) and on a Unix socket in that directory; stopped and removed after.

Uses Debian's ``postgresql`` package (``/usr/lib/postgresql/<version>/bin``; ``.ci/run`` installs it).
PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "su-secret-Pw1"  # a throwaway cluster's password
WRITER = "gr_writer"
WRITER_PASSWORD = "writer-secret-Pw2"
READER = "gr_reader"
READER_PASSWORD = "reader-secret-Pw3"


def spawn(worker: Path, *args: str) -> subprocess.Popen[str]:
    """Run a worker script of these tests with this checkout's code (pipes for stdin, stdout, stderr)."""
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, str(worker), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def bindir() -> Path | None:
    """The directory of initdb/pg_ctl (the newest installed version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One throwaway cluster. ``start()``, ``stop()``, ``restart()``, ``destroy()``."""

    def __init__(self) -> None:
        found = bindir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does it)")
        self.bin = found
        self.base = Path(tempfile.mkdtemp(prefix="guardrail-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.port = _free_port()
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chmod(self.base, 0o755)  # noqa: S103 - the server's user must reach its data directory
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        self.socket_dir.mkdir()
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
        pwfile = self.base / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self._user:
            os.chown(pwfile, pwd.getpwnam(self._user).pw_uid, -1)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 60\nshared_buffers = 32MB\nfsync = on\nsynchronous_commit = on\n"
                "log_min_messages = warning\n"
            )

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self._user:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        self.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.sql("SELECT 1")
                return
            except Exception:  # noqa: BLE001 - retried until up
                time.sleep(0.1)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ connections

    def admin_url(self, dbname: str = "postgres") -> str:
        """The superuser over the Unix socket (trust)."""
        return f"postgresql://{SUPERUSER}@localhost/{dbname}?host={self.socket_dir}&port={self.port}"

    def url(self, user: str, password: str, dbname: str = "guardrail", **params: str) -> str:
        """A role over TCP with its password (scram-sha-256)."""
        extra = "".join(f"&{k}={v}" for k, v in params.items())
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}?connect_timeout=3{extra}"

    def sql(self, statement: str, *args: object, dbname: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.admin_url(dbname), autocommit=True) as conn:
            cur = conn.execute(statement, args or None)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description else []

    def setup_roles_and_db(self, dbname: str = "guardrail") -> None:
        self.sql(f"CREATE ROLE {WRITER} LOGIN PASSWORD '{WRITER_PASSWORD}'")
        self.sql(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'")
        self.sql(f"CREATE DATABASE {dbname}")


@dataclass(frozen=True)
class PgLog:
    """A fresh guardrail schema: the writer's and reader's locations, the superuser's, the schema name."""

    cluster: Cluster
    schema: str
    writer: str
    reader: str
    admin: str

    def sql(self, statement: str, *args: object) -> list[tuple[object, ...]]:
        return self.cluster.sql(statement.replace("{s}", self.schema), *args, dbname="guardrail")

    def tamper(self, statement: str, *args: object) -> None:
        """Run ``statement`` as a superuser with the triggers off (``session_replication_role``)."""
        import psycopg

        with psycopg.connect(self.cluster.admin_url("guardrail"), autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")
            conn.execute(statement.replace("{s}", f'"{self.schema}"'), args or None)  # type: ignore[arg-type]
