"""A damaged log: every row that rests on a record at or after the first damaged one says UNVERIFIED,
rows before it say verified, and count tables say their counts may include unverified records
(issue 13: "damaged logs flag every figure that rests on records at or after the first bad one")."""

from __future__ import annotations

import json
from pathlib import Path

from _report_helpers import synthetic_events, write_log

from guardrail.reports import Table, build_report, render_json, render_markdown


def _damaged(tmp_path: Path, line: int) -> Path:
    audit = write_log(tmp_path / "audit", synthetic_events())
    segment = sorted(p for p in audit.iterdir() if p.name.startswith("segment"))[0]
    lines = segment.read_bytes().splitlines(keepends=True)
    lines[line] = lines[line].replace(b'"denied"', b'"success"', 1)  # the denied re-identification
    segment.write_bytes(b"".join(lines))
    return audit


def _marks(table: Table) -> list[tuple[object, object]]:
    keys = [c.key for c in table.columns]
    return [(r[keys.index("occurred_at")], r[keys.index("integrity")]) for r in table.rows]


def test_rows_at_or_after_the_damage_are_flagged_and_earlier_rows_are_not(tmp_path: Path) -> None:
    report = build_report(_damaged(tmp_path, 12))
    assert dict(report.block("integrity").items)["first damaged record"] == 12  # type: ignore[union-attr]
    reid = report.block("reidentifications")
    assert isinstance(reid, Table)
    assert sorted(_marks(reid)) == [
        ("2025-03-03T09:00:00.000Z", "verified"),
        ("2025-03-03T09:05:00.000Z", "UNVERIFIED"),  # the tampered record itself
    ]
    datasets = report.block("dataset_events")
    assert isinstance(datasets, Table)
    assert {m for _, m in _marks(datasets)} == {"verified"}  # before the damage
    for later in ("key_rotations", "key_shreds", "erasures"):
        table = report.block(later)
        assert isinstance(table, Table)
        assert table.rows, later
        assert {m for _, m in _marks(table)} == {"UNVERIFIED"}, later
    by_role = report.block("retrievals_by_role")
    assert isinstance(by_role, Table)
    assert by_role.note.startswith("UNVERIFIED: these counts may include record 12 and later")
    text = render_markdown(report)
    assert "UNVERIFIED" in text
    data = json.loads(render_json(report))
    assert "UNVERIFIED" in json.dumps(data)


def test_a_verified_log_has_no_integrity_column(tmp_path: Path) -> None:
    report = build_report(write_log(tmp_path / "audit", synthetic_events()))
    assert report.ok
    for section in report.sections:
        for block in section.blocks:
            if isinstance(block, Table):
                assert "integrity" not in [c.key for c in block.columns], block.id
                assert "UNVERIFIED" not in block.note, block.id


def test_damage_early_in_the_log_flags_every_later_row(tmp_path: Path) -> None:
    report = build_report(_damaged(tmp_path, 3))
    assert dict(report.block("integrity").items)["first damaged record"] == 3  # type: ignore[union-attr]
    for block_id in ("dataset_events", "reidentifications", "key_rotations"):
        table = report.block(block_id)
        assert isinstance(table, Table)
        assert {m for _, m in _marks(table)} == {"UNVERIFIED"}, block_id
