"""The audit log writer: record format, validation, ids, checkpoints, reopening, torn tails, fail closed."""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _audit_helpers import (
    ORIGIN,
    OTHER_SEED,
    RECORD_KEY,
    SEED,
    SEGMENT,
    FrozenClock,
    checkpoint_sizes,
    event,
    lines,
    make_log,
)

from guardrail.audit import (
    AuditEventError,
    AuditIntegrityError,
    AuditLog,
    AuditWriteError,
    verify,
)
from guardrail.audit.canonical import canonicalize
from guardrail.audit.ids import Uuid7, uuid7_time_ms
from guardrail.audit.note import VerifierKey, public_key_of
from guardrail.errors import ConfigError, GuardrailError


class TestRecords:
    """What a stored record looks like and how it hashes."""

    def test_round_trip(self, tmp_path: Path) -> None:
        clock = FrozenClock()
        source = event(3)
        original = copy.deepcopy(source)
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, clock=clock) as log:
            first = log.append(source)
            second = log.append(event(4, occurred_at="2024-12-31T23:59:59.999Z"))
        assert source == original  # the input is never modified
        stored = lines(tmp_path)
        assert len(stored) == 2
        records = [json.loads(x) for x in stored]
        assert [r["seq"] for r in records] == [0, 1]
        assert [r["event_id"] for r in records] == [first, second]
        assert records[0]["schema"] == "guardrail.audit/1"
        assert records[0]["occurred_at"] == records[0]["recorded_at"] == "2025-01-02T10:00:00.123Z"
        assert records[1]["occurred_at"] == "2024-12-31T23:59:59.999Z"
        for line, record in zip(stored, records, strict=True):
            # the leaf is SHA-256(0x00 || JCS(record without integrity)), recomputed independently
            body = canonicalize({k: v for k, v in record.items() if k != "integrity"})
            assert record["integrity"]["leaf"] == hashlib.sha256(b"\x00" + body).hexdigest()
            # the stored line is that canonical body with the integrity member first
            # (then its MAC, and on the last record of each written batch its seal)
            integrity = json.dumps(record["integrity"], separators=(",", ":")).encode()
            assert list(record["integrity"])[:2] == ["leaf", "mac"]
            assert line == b'{"integrity":' + integrity + b"," + body[1:] + b"\n"
            # and the caller's fields are there unchanged
            given = event(3 if record["seq"] == 0 else 4)
            assert {k: record[k] for k in given if k != "occurred_at"} == {
                k: v for k, v in given.items() if k != "occurred_at"
            }
        report = verify(tmp_path)
        assert report.ok, report.message
        assert (report.records, report.covered, report.kind) == (2, 2, None)

    def test_public_key_file(self, tmp_path: Path) -> None:
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN) as log:
            assert log.origin == ORIGIN
        key = VerifierKey.parse((tmp_path / "audit.pub").read_text())
        assert key == VerifierKey(ORIGIN, public_key_of(SEED))
        assert (tmp_path / "audit.pub").read_text() == log.verifier_key + "\n"

    def test_default_origin_has_no_spaces(self, tmp_path: Path) -> None:
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY) as log:
            assert log.origin.endswith("/guardrail.audit/1")
            assert " " not in log.origin
            assert "+" not in log.origin

    def test_segments_roll(self, tmp_path: Path) -> None:
        make_log(tmp_path, 12, segment_records=5)
        names = sorted(p.name for p in tmp_path.glob("segment-*.jsonl"))
        assert names == ["segment-000001.jsonl", "segment-000002.jsonl", "segment-000003.jsonl"]
        assert [len(lines(tmp_path, n)) for n in names] == [5, 5, 2]
        assert verify(tmp_path).ok


class TestValidation:
    """Events are checked before anything is queued: schema fields, categories, never-allowed content."""

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"text": "Jane Doe has diabetes"}, "unknown field 'text'"),
            ({"resources": [{"type": "chunk", "text": "..."}]}, r"resources\[0\]\.text is never allowed"),
            ({"query": {"mac": "ab", "query_text": "who has HIV?"}}, r"query\.query_text is never allowed"),
            ({"pii": {"counts": {"PERSON": 1}, "values": ["Jane"]}}, r"pii\.values is never allowed"),
            ({"dataset": {"manifest": {"Content": "x"}}}, r"dataset\.manifest\.Content is never allowed"),
            ({"actor": {"ref": "u", "raw": "x"}}, r"actor\.raw is never allowed"),
            ({"policy": {"chunk": "x"}}, r"policy\.chunk is never allowed"),
            ({"seq": 5}, "'seq' is set by the audit log"),
            ({"integrity": {"leaf": "00"}}, "'integrity' is set by the audit log"),
            ({"actor": {"ref": "u", "seq": 1}}, "reserved for the log's own fields"),
            ({"event": {"category": "rag.peek"}}, "event.category 'rag.peek' is not one of"),
            ({"event": {"action": "R"}}, "event.category None is not one of"),
            ({"event": {"category": "rag.retrieval", "action": "X"}}, "event.action 'X'"),
            ({"event": {"category": "rag.retrieval", "outcome": "ok"}}, "event.outcome 'ok'"),
            ({"subjects": "p-1"}, "subjects is a list"),
            ({"occurred_at": datetime(2025, 1, 1)}, "timezone-aware"),
            ({"occurred_at": "2025-01-01 10:00:00"}, "not a UTC time"),
            ({"retrieval": {"k": float("nan")}}, "NaN"),
            ({"retrieval": {"k": {1, 2}}}, "set is not a JSON value"),
        ],
        ids=["top-level-text", "resource-text", "query-text", "pii-values", "content-any-case", "raw",
             "chunk", "seq", "integrity", "nested-reserved", "category", "no-category", "action", "outcome",
             "subjects", "naive-time", "bad-time", "nan", "set"],
    )  # fmt: skip
    def test_refused(self, tmp_path: Path, change: dict[str, Any], message: str) -> None:
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN) as log:
            with pytest.raises(AuditEventError, match=message) as info:
                log.append({**event(0), **change})
            assert isinstance(info.value, ValueError)  # callers may catch ValueError
            assert log.size == 0

    def test_missing_event(self, tmp_path: Path) -> None:
        with (
            AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN) as log,
            pytest.raises(AuditEventError),
        ):
            log.append({"actor": {"ref": "u"}})

    def test_every_category_is_accepted(self, tmp_path: Path) -> None:
        from guardrail.audit import CATEGORIES

        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN) as log:
            for category in sorted(CATEGORIES):
                log.append({"event": {"category": category, "action": "E", "outcome": "success"}})
        assert verify(tmp_path, strict=True).records == len(CATEGORIES)

    @pytest.mark.parametrize(
        "options",
        [
            {"signing_key": b"short"},
            {"checkpoint_every": 0},
            {"checkpoint_seconds": 0},
            {"origin": "has space"},
        ],
        ids=["key", "checkpoint-every", "checkpoint-seconds", "origin"],
    )
    def test_bad_options(self, tmp_path: Path, options: dict[str, Any]) -> None:
        with pytest.raises(ConfigError):
            AuditLog(tmp_path, **{"signing_key": SEED, "record_key": RECORD_KEY, **options})


class TestEventIds:
    """UUIDv7: version 7, RFC variant, the clock's milliseconds, strictly increasing."""

    def test_format_and_order(self) -> None:
        gen = Uuid7()
        ids = [gen(1_700_000_000_000) for _ in range(5000)]  # > 4096 in one millisecond: counter rolls over
        assert ids == sorted(ids)
        assert len(set(ids)) == len(ids)
        for u in ids[:50]:
            assert len(u) == 36
            assert u[14] == "7"
            assert u[19] in "89ab"
        assert uuid7_time_ms(ids[0]) == 1_700_000_000_000
        assert uuid7_time_ms(ids[-1]) >= 1_700_000_000_001  # borrowed the next millisecond, never reordered

    def test_clock_going_backwards_keeps_order(self) -> None:
        gen = Uuid7()
        a = gen(2_000_000)
        b = gen(1_000_000)
        assert b > a

    def test_ids_in_the_log_follow_time(self, tmp_path: Path) -> None:
        clock = FrozenClock()
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, clock=clock) as log:
            ids = []
            for i in range(20):
                ids.append(log.append(event(i)))
                clock.advance(milliseconds=i % 2)
        assert ids == sorted(ids)
        start = int(datetime(2025, 1, 2, 10, 0, 0, 123000, tzinfo=UTC).timestamp() * 1000)
        assert uuid7_time_ms(ids[0]) == start

    def test_uuid7_time_refuses_other_uuids(self) -> None:
        with pytest.raises(ValueError, match="not a UUIDv7"):
            uuid7_time_ms("550e8400-e29b-41d4-a716-446655440000")


class TestCheckpoints:
    """Signed checkpoints every N records, every T seconds, on request and at close."""

    def test_every_n_records_and_at_close(self, tmp_path: Path) -> None:
        log = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, checkpoint_every=5)
        for i in range(12):
            log.append(event(i))
        assert checkpoint_sizes(tmp_path) == [0, 5, 10]  # the empty tree when the log is created
        log.close()
        assert checkpoint_sizes(tmp_path) == [0, 5, 10, 12]
        log.close()  # idempotent: no second final checkpoint
        assert checkpoint_sizes(tmp_path) == [0, 5, 10, 12]

    def test_every_t_seconds(self, tmp_path: Path) -> None:
        """Deterministic: the checkpoint clock is injected, so a loaded machine cannot make it late."""
        now = [1000.0]
        with AuditLog(
            tmp_path,
            signing_key=SEED,
            record_key=RECORD_KEY,
            origin=ORIGIN,
            checkpoint_seconds=60,
            monotonic=lambda: now[0],
        ) as log:
            for i in range(3):
                log.append(event(i))
            assert checkpoint_sizes(tmp_path) == [0]  # 60 s have not passed on the injected clock
            now[0] += 61
            log.append(event(3))  # the batch written after the deadline is followed by a checkpoint
            assert checkpoint_sizes(tmp_path) == [0, 4]
            log.append(event(4))
            assert checkpoint_sizes(tmp_path) == [0, 4]  # the next one is due 60 s later
        assert checkpoint_sizes(tmp_path) == [0, 4, 5]

    def test_on_request(self, tmp_path: Path) -> None:
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN) as log:
            log.append(event(0), sync=False)
            log.checkpoint()
            assert checkpoint_sizes(tmp_path) == [0, 1]

    def test_empty_log_gets_a_checkpoint_at_close(self, tmp_path: Path) -> None:
        AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN).close()
        assert checkpoint_sizes(tmp_path) == [0]
        assert verify(tmp_path).ok


class TestReopen:
    """Reopening continues the sequence; the key and origin must match; damage is refused."""

    def test_continues(self, tmp_path: Path) -> None:
        make_log(tmp_path, 7)
        assert json.loads((tmp_path / "state.json").read_text())["size"] == 7
        with AuditLog(
            tmp_path, signing_key=SEED, record_key=RECORD_KEY
        ) as log:  # origin taken from audit.pub
            assert log.size == 7
            log.append(event(7))
        (tmp_path / "state.json").unlink()  # only a cache: a rescan gives the same tail
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY) as log:
            assert log.size == 8
            log.append(event(8))
        assert [json.loads(x)["seq"] for x in lines(tmp_path)] == list(range(9))
        assert verify(tmp_path).ok

    def test_wrong_key_or_origin(self, tmp_path: Path) -> None:
        make_log(tmp_path, 1)
        with pytest.raises(ConfigError, match="does not match"):
            AuditLog(tmp_path, signing_key=OTHER_SEED, record_key=RECORD_KEY)
        with pytest.raises(ConfigError, match="origin"):
            AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin="other.example/log")

    def test_missing_public_key_is_not_recreated(self, tmp_path: Path) -> None:
        make_log(tmp_path, 1)
        (tmp_path / "audit.pub").unlink()
        with pytest.raises(ConfigError, match=r"restore audit\.pub"):
            AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY)

    def test_truncated_segment_is_refused(self, tmp_path: Path) -> None:
        make_log(tmp_path, 5)
        kept = lines(tmp_path)[:3]
        (tmp_path / SEGMENT).write_bytes(b"".join(kept))
        with pytest.raises(AuditIntegrityError, match="truncated") as info:
            AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY)
        assert info.value.kind == "truncated"

    def test_truncation_behind_a_checkpoint_is_refused_without_state(self, tmp_path: Path) -> None:
        make_log(tmp_path, 5)
        (tmp_path / "state.json").unlink()
        (tmp_path / SEGMENT).write_bytes(b"".join(lines(tmp_path)[:3]))
        with pytest.raises(AuditIntegrityError, match="checkpoint covers 5") as info:
            AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY)
        assert (info.value.index, info.value.kind) == (3, "truncated")

    def test_edited_record_is_refused(self, tmp_path: Path) -> None:
        make_log(tmp_path, 3)
        (tmp_path / "state.json").unlink()
        (tmp_path / SEGMENT).write_bytes((tmp_path / SEGMENT).read_bytes().replace(b'"TREAT"', b'"TREAX"', 1))
        with pytest.raises(AuditIntegrityError) as info:
            AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY)
        assert (info.value.index, info.value.kind) == (0, "edited")


class TestTornTail:
    """A torn last line (a crash mid-write) is reported, never repaired; new records go to a new segment."""

    def test_reported_then_left_alone(self, tmp_path: Path) -> None:
        make_log(tmp_path, 4)
        segment = tmp_path / SEGMENT
        size = segment.stat().st_size
        with segment.open("ab") as f:
            f.write(b'{"integrity":{"leaf":"abc')  # what a killed writer leaves
        report = verify(tmp_path)
        assert report.ok
        assert report.kind == "torn-tail"
        assert [(t.segment, t.offset, t.length) for t in report.torn_tail] == [(SEGMENT, size, 25)]
        assert f"at byte {size}" in report.message
        with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY) as log:
            assert log.size == 4
            log.append(event(4))
            log.append(event(5))
        assert segment.stat().st_size == size + 25  # the torn bytes stay as found
        assert [json.loads(x)["seq"] for x in lines(tmp_path, "segment-000002.jsonl")] == [4, 5]
        report = verify(tmp_path)
        assert report.ok
        assert report.records == 6
        assert report.covered == 6
        assert report.kind == "torn-tail"
        assert report.torn_tail[0].offset == size


class TestFailClosed:
    """A record that cannot be written raises in the caller; nothing half-written stays behind."""

    def test_unwritable_segment(self, tmp_path: Path) -> None:
        log = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, segment_records=2)
        log.append(event(0))
        log.append(event(1))
        (tmp_path / "segment-000002.jsonl").mkdir()  # the next segment cannot be created (works as root)
        with pytest.raises(GuardrailError) as info:
            log.append(event(2))
        assert isinstance(info.value, AuditWriteError | AuditIntegrityError)
        with pytest.raises(GuardrailError):
            log.close()

    def test_async_failure_surfaces_at_flush(self, tmp_path: Path) -> None:
        log = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, segment_records=1)
        log.append(event(0))
        (tmp_path / "segment-000002.jsonl").mkdir()
        log.append(event(1), sync=False)  # queued: returns at once
        with pytest.raises(AuditWriteError, match="sync=False could not be written"):
            log.flush()
        with pytest.raises(GuardrailError):
            log.close()

    def test_closed_log_refuses(self, tmp_path: Path) -> None:
        log = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN)
        log.close()
        with pytest.raises(AuditWriteError, match="closed"):
            log.append(event(0))

    def test_unusable_directory(self, tmp_path: Path) -> None:
        target = tmp_path / "file"
        target.write_text("not a directory")
        with pytest.raises(AuditWriteError, match="cannot open"):
            AuditLog(target, signing_key=SEED, record_key=RECORD_KEY)


class TestThreads:
    """Many threads, one log: gap-free, every id unique, group commit."""

    def test_threads(self, tmp_path: Path) -> None:
        ids: list[str] = []
        lock = threading.Lock()

        def work(t: int) -> None:
            for i in range(60):
                event_id = log.append(event(t * 100 + i), sync=(i % 3 != 0))
                with lock:
                    ids.append(event_id)

        with AuditLog(
            tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, checkpoint_every=50
        ) as log:
            threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        report = verify(tmp_path)
        assert report.ok
        assert report.records == 480
        assert report.covered == 480
        stored = [json.loads(x) for x in lines(tmp_path)]
        assert [r["seq"] for r in stored] == list(range(480))
        assert sorted(r["event_id"] for r in stored) == sorted(ids)

    @pytest.mark.parametrize("threads", [8])
    def test_synchronous_appenders_share_each_fdatasync(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
    ) -> None:
        """On a slow disk (each fdatasync 20 ms), 8 threads appending with sync=True share every write:
        about one write per round of 8, not two groups of 4 taking turns (the control, commit_wait=0,
        shows that split). Writes are counted by their seals (one on each batch's last record)."""
        import os
        import time

        import guardrail.audit.log as log_module

        def slow_fdatasync(fd: int) -> None:
            os.fsync(fd)
            time.sleep(0.02)

        monkeypatch.setattr(log_module, "_fdatasync", slow_fdatasync)
        rounds = 12

        def writes(directory: Path, commit_wait: float) -> int:
            with AuditLog(
                directory, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, commit_wait=commit_wait
            ) as log:

                def work(t: int) -> None:
                    for i in range(rounds):
                        log.append(event(t * 100 + i))

                workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
            assert verify(directory).records == threads * rounds
            return sum(1 for line in lines(directory) if b'"seal":"' in line)

        shared = writes(tmp_path / "shared", 0.5)
        split = writes(tmp_path / "split", 0.0)
        assert shared <= rounds + 4, shared  # ~8 records per fdatasync
        assert split >= 1.5 * shared, (split, shared)

    def test_two_writers_in_one_process(self, tmp_path: Path) -> None:
        a = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, checkpoint_every=3)
        b = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=3)
        for i in range(10):
            (a if i % 2 else b).append(event(i))
        a.close()
        b.close()
        report = verify(tmp_path)
        assert report.ok
        assert report.records == 10
        assert report.covered == 10
        assert [json.loads(x)["seq"] for x in lines(tmp_path)] == list(range(10))


def test_state_after_other_writers_is_caught_up(tmp_path: Path) -> None:
    """A writer that sleeps while others append picks up their records before writing its own."""
    first = AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN)
    first.append(event(0))
    with AuditLog(tmp_path, signing_key=SEED, record_key=RECORD_KEY) as other:
        others = [other.append(event(i)) for i in range(1, 4)]
    first.append(event(4))
    first.close()
    stored = [json.loads(x) for x in lines(tmp_path)]
    assert [r["seq"] for r in stored] == [0, 1, 2, 3, 4]
    assert [r["event_id"] for r in stored[1:4]] == others
    assert checkpoint_sizes(tmp_path) == [0, 4, 5]
    assert verify(tmp_path).ok


def test_verify_while_writing_sees_whole_batches(tmp_path: Path) -> None:
    """verify reads a snapshot taken between two writes: a live log never looks torn or truncated."""
    stop = threading.Event()
    with AuditLog(
        tmp_path, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, checkpoint_every=7
    ) as log:

        def write() -> None:
            i = 0
            while not stop.is_set():
                log.append(event(i), sync=i % 2 == 0)
                i += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            reports = []
            while len(reports) < 20 or log.size < 100:
                reports.append(verify(tmp_path))
        finally:
            stop.set()
            writer.join()
    for report in reports:
        assert report.ok, report.message
        assert report.torn_tail == ()
    assert verify(tmp_path).covered == log.size
