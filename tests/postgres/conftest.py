"""Fixtures of the PostgreSQL tests: one private cluster per session (see ``pgcluster``), a fresh schema
per test (``guardrail db init`` as the superuser, grants to the writer and reader roles)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from pgcluster import READER, READER_PASSWORD, WRITER, WRITER_PASSWORD, Cluster, PgLog, bindir

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
