"""The file log's tamper suite (tests/audit/test_audit_tamper.py, ``CASES``) against the PostgreSQL log: a
superuser (triggers off) rewrites the rows exactly as each case rewrites a segment file, and verify must
report the same first bad record and kind."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audit"))
from _audit_helpers import RECORD_KEY, SEGMENT, make_log
from pgcluster import PgLog
from test_audit_tamper import CASES, N

from guardrail.audit import AuditIntegrityError, verify
from guardrail.audit.pg import export

pytestmark = pytest.mark.slow


def rewrite_rows(pg: PgLog, stored: list[bytes]) -> None:
    """Replace every row by ``stored`` (seq = position), as a superuser who disabled the triggers."""
    import psycopg

    with psycopg.connect(pg.cluster.admin_url("guardrail"), autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        s = f'"{pg.schema}"'
        conn.execute(f"DELETE FROM {s}.audit_records")
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {s}.audit_records (seq, line) VALUES (%s, %s)",
                [(i, line.rstrip(b"\n").decode("utf-8")) for i, line in enumerate(stored)],
            )
        conn.execute(f"UPDATE {s}.audit_head SET next_seq = %s", (len(stored),))


@pytest.mark.parametrize(("name", "tamper", "index", "kind"), CASES, ids=[c[0] for c in CASES])
def test_detected_on_postgres(
    pg: PgLog, tmp_path: Path, name: str, tamper: Callable[[Path], None], index: int, kind: str
) -> None:
    make_log(pg.writer, N, checkpoint_every=10)  # type: ignore[arg-type]  # a location, not a Path
    assert verify(pg.reader, record_key=RECORD_KEY).ok
    work = tmp_path / "rows"
    export(pg.reader, work)
    tamper(work)  # the very edit the file suite makes, then put into the table
    rewrite_rows(pg, (work / SEGMENT).read_bytes().splitlines(keepends=True))
    report = verify(pg.reader)
    assert not report.ok
    assert (report.first_bad_index, report.kind) == (index, kind), report.message
    with pytest.raises(AuditIntegrityError):
        report.raise_for_damage()


def test_checkpoints_removed_by_a_superuser_are_a_finding(pg: PgLog) -> None:
    make_log(pg.writer, N, checkpoint_every=10)  # type: ignore[arg-type]
    pg.tamper("DELETE FROM {s}.audit_checkpoints")
    report = verify(pg.reader)
    assert (report.ok, report.kind) == (False, "truncated"), report.message


def test_tail_rows_deleted_with_head_moved_back_is_caught_by_an_exported_checkpoint(
    pg: PgLog, tmp_path: Path
) -> None:
    make_log(pg.writer, N, checkpoint_every=10)  # type: ignore[arg-type]
    export(pg.reader, tmp_path / "off-host")  # the auditor's copy, taken earlier
    pg.tamper("DELETE FROM {s}.audit_records WHERE seq >= 30")
    pg.tamper("DELETE FROM {s}.audit_checkpoints WHERE size > 30")
    pg.tamper("UPDATE {s}.audit_head SET next_seq = 30")
    report = verify(pg.reader, checkpoints=[tmp_path / "off-host" / "checkpoints"])
    assert (report.ok, report.kind) == (False, "truncated"), report.message
