"""Fixtures of the PostgreSQL tests: one private cluster per session (see ``pgcluster``), a fresh schema
per test (``guardrail db init`` as the superuser, grants to the writer and reader roles)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pgcluster import READER, READER_PASSWORD, WRITER, WRITER_PASSWORD, Cluster, bindir

_schemas = itertools.count()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed but CI must run these tests (.ci/run installs it)")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    c = Cluster()
    c.start()
    try:
        c.setup_roles_and_db()
        yield c
    finally:
        c.destroy()


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


@pytest.fixture
def pg(cluster: Cluster) -> PgLog:
    from guardrail.db.schema import init

    schema = f"t{os.getpid()}_{next(_schemas)}"
    admin = cluster.admin_url("guardrail") + f"&schema={schema}"
    init(admin, writer=WRITER, reader=READER)
    return PgLog(
        cluster,
        schema,
        cluster.url(WRITER, WRITER_PASSWORD, schema=schema),
        cluster.url(READER, READER_PASSWORD, schema=schema),
        admin,
    )
