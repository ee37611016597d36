"""Every kind of tampering is detected, with the first bad record's index and the right kind; and any
single-byte or single-record mutation of a log makes verify fail (hypothesis)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from _audit_helpers import (
    ORIGIN,
    OTHER_SEED,
    RECORD_KEY,
    SEED,
    SEGMENT,
    event,
    forge,
    lines,
    make_log,
    record_of,
    write_lines,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrail.audit import AuditIntegrityError, AuditLog, prove, verify, verify_proof
from guardrail.audit.note import NoteError, VerifierKey, format_checkpoint, public_key_of, sign_note
from guardrail.errors import ConfigError

N = 40  # records in the base log; checkpoints at 10, 20, 30, 40 (and 40 at close)


@pytest.fixture(scope="module")
def base_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audit-base")
    make_log(directory, N, checkpoint_every=10)
    report = verify(directory)
    assert report.ok, report.message
    assert report.records == report.covered == N
    return directory


@pytest.fixture
def log_copy(base_log: Path, tmp_path: Path) -> Path:
    target = tmp_path / "log"
    shutil.copytree(base_log, target)
    return target


def edit_field(d: Path) -> None:
    stored = lines(d)
    stored[17] = stored[17].replace(b'"TREAT"', b'"HRESCH"')
    write_lines(d, stored)


def edit_leaf(d: Path) -> None:
    stored = lines(d)
    stored[17] = stored[17][:22] + b"0" * 64 + stored[17][86:]
    write_lines(d, stored)


def delete_record(d: Path) -> None:
    stored = lines(d)
    del stored[17]
    write_lines(d, stored)


def insert_forged(d: Path) -> None:
    stored = lines(d)
    fake = record_of(stored[17])
    fake["event_id"] = "01941234-5678-7abc-8def-0123456789ab"
    fake["purpose"] = {"code": "TREAT"}
    stored.insert(17, forge(fake))  # a well-formed record with a correct leaf and seq 17
    write_lines(d, stored)


def swap_records(d: Path) -> None:
    stored = lines(d)
    stored[17], stored[18] = stored[18], stored[17]
    write_lines(d, stored)


def truncate_tail(d: Path) -> None:
    write_lines(d, lines(d)[:35])


def duplicate_record(d: Path) -> None:
    stored = lines(d)
    stored.insert(18, stored[17])
    write_lines(d, stored)


CASES: list[tuple[str, Callable[[Path], None], int | None, str]] = [
    ("edit-a-field", edit_field, 17, "edited"),
    ("edit-the-leaf", edit_leaf, 17, "edited"),
    ("delete-record", delete_record, 17, "deleted"),
    ("insert-forged", insert_forged, 17, "inserted"),
    ("duplicate-record", duplicate_record, 17, "inserted"),
    ("swap-two-records", swap_records, 17, "reordered"),
    ("truncate-behind-checkpoint", truncate_tail, 35, "truncated"),
]


class TestTamperKinds:
    """One table: the tampering, the first bad index and kind verify must report."""

    @pytest.mark.parametrize(("name", "tamper", "index", "kind"), CASES, ids=[c[0] for c in CASES])
    def test_detected(
        self, log_copy: Path, name: str, tamper: Callable[[Path], None], index: int, kind: str
    ) -> None:
        tamper(log_copy)
        report = verify(log_copy)
        assert not report.ok
        assert (report.first_bad_index, report.kind) == (index, kind), report.message
        with pytest.raises(AuditIntegrityError) as info:
            report.raise_for_damage()
        assert (info.value.index, info.value.kind) == (index, kind)

    def test_rewritten_records_with_recomputed_hashes(self, log_copy: Path) -> None:
        """An attacker without the key recomputes the leaves of an edit: the signed root still catches it."""
        stored = lines(log_copy)
        record = record_of(stored[17])
        record["actor"]["ref"] = "someone-else"
        stored[17] = forge(record)
        write_lines(log_copy, stored)
        report = verify(log_copy)
        assert not report.ok
        assert report.kind == "edited"
        assert report.first_bad_index == 10  # between the last good checkpoint (10) and the bad one (20)
        assert "records 10..19" in report.message

    def test_deletion_with_renumbering(self, log_copy: Path) -> None:
        stored = [record_of(x) for x in lines(log_copy)]
        del stored[25]
        for seq, record in enumerate(stored):
            record["seq"] = seq
        write_lines(log_copy, [forge(r) for r in stored])
        report = verify(log_copy)
        assert not report.ok
        assert (report.first_bad_index, report.kind) == (20, "edited")  # root mismatch from size 30 on

    def test_corrupt_checkpoint_signature(self, log_copy: Path) -> None:
        text = (log_copy / "checkpoints").read_text()
        head, _, sig = text.rstrip("\n").rpartition(" ")
        sig = sig[:20] + ("A" if sig[20] != "A" else "B") + sig[21:]
        (log_copy / "checkpoints").write_text(f"{head} {sig}\n")
        report = verify(log_copy)
        assert not report.ok
        assert (report.first_bad_index, report.kind) == (None, "bad-signature")
        assert "checkpoint" in report.message

    def test_forged_checkpoint_by_another_key(self, log_copy: Path) -> None:
        origin = VerifierKey.parse((log_copy / "audit.pub").read_text()).name
        forged = sign_note(format_checkpoint(origin, 41, bytes(32)), origin, OTHER_SEED)
        with (log_copy / "checkpoints").open("a") as f:
            f.write(forged)
        report = verify(log_copy)
        assert (report.ok, report.kind) == (False, "bad-signature")

    def test_different_public_key(self, log_copy: Path) -> None:
        origin = VerifierKey.parse((log_copy / "audit.pub").read_text()).name
        other = VerifierKey(origin, public_key_of(OTHER_SEED))
        for key in (other.encode(), other.public_key):
            report = verify(log_copy, public_key=key)
            assert (report.ok, report.kind) == (False, "bad-signature")
        assert verify(log_copy, public_key=public_key_of(SEED)).ok

    def test_replaced_audit_pub_does_not_help_the_attacker(self, log_copy: Path) -> None:
        origin = VerifierKey.parse((log_copy / "audit.pub").read_text()).name
        (log_copy / "audit.pub").write_text(VerifierKey(origin, public_key_of(OTHER_SEED)).encode())
        assert verify(log_copy).kind == "bad-signature"

    def test_key_holder_rewriting_history_is_caught_by_exported_checkpoints(
        self, log_copy: Path, tmp_path: Path
    ) -> None:
        exported = tmp_path / "exported-checkpoints"
        shutil.copy(log_copy / "checkpoints", exported)  # the off-host copy
        # the holder of the signing key edits record 5, recomputes everything and re-signs checkpoints
        stored = [record_of(x) for x in lines(log_copy)]
        stored[5]["outcome"] = "none"
        stored[5]["event"]["outcome"] = "denied"
        write_lines(log_copy, [forge(r, key=RECORD_KEY) for r in stored])
        (log_copy / "checkpoints").unlink()
        (log_copy / "state.json").unlink()
        with AuditLog(log_copy, signing_key=SEED, record_key=RECORD_KEY) as log:
            log.checkpoint()
        assert verify(log_copy).ok  # the local evidence alone is consistent again...
        report = verify(log_copy, checkpoints=[exported])  # ...but not with what left the host
        assert (report.ok, report.kind, report.first_bad_index) == (False, "edited", 0)

    def test_whole_log_deleted_is_detected_with_exported_checkpoints(
        self, log_copy: Path, tmp_path: Path
    ) -> None:
        exported = tmp_path / "exported-checkpoints"
        shutil.copy(log_copy / "checkpoints", exported)
        for segment in log_copy.glob("segment-*.jsonl"):
            segment.unlink()
        (log_copy / "checkpoints").unlink()
        report = verify(log_copy, checkpoints=[exported])
        assert (report.ok, report.kind, report.first_bad_index) == (False, "truncated", 0)
        with pytest.raises(ConfigError, match="no such checkpoint file"):
            verify(log_copy, checkpoints=[tmp_path / "typo"])  # a missing copy is never silently skipped

    def test_malformed_line(self, log_copy: Path) -> None:
        stored = lines(log_copy)
        stored[3] = b"not json at all\n"
        write_lines(log_copy, stored)
        report = verify(log_copy)
        assert (report.first_bad_index, report.kind) == (3, "malformed")

    def test_strict_mode_checks_canonical_form(self, log_copy: Path) -> None:
        stored = lines(log_copy)
        record = record_of(stored[N - 1])
        members = [(k, v) for k, v in record.items() if k != "integrity"]
        body = json.dumps(dict(reversed(members)), separators=(",", ":"))  # valid JSON, not canonical
        leaf = hashlib.sha256(b"\x00" + body.encode()).hexdigest()
        from guardrail.audit.auth import RecordMac

        mac = RecordMac(RECORD_KEY, ORIGIN).mac(bytes.fromhex(leaf))  # a holder of the keyring
        stored[N - 1] = b'{"integrity":{"leaf":"' + leaf.encode() + b'","mac":"' + mac + b'"},'
        stored[N - 1] += body[1:].encode() + b"\n"
        write_lines(log_copy, stored)
        (log_copy / "checkpoints").write_text("")  # drop the checkpoints: only strict mode can tell
        assert verify(log_copy, record_key=RECORD_KEY, allow_missing_checkpoints=True).ok
        report = verify(log_copy, strict=True, record_key=RECORD_KEY, allow_missing_checkpoints=True)
        assert (report.first_bad_index, report.kind) == (N - 1, "malformed")
        assert "canonical" in report.message


class TestProofs:
    """prove/verify_proof: self-contained inclusion proofs under a signed checkpoint."""

    def test_prove_every_kind_of_position(self, base_log: Path) -> None:
        vkey = (base_log / "audit.pub").read_text()
        ids = [record_of(x)["event_id"] for x in lines(base_log)]
        for index in (0, 1, 15, 16, 31, 32, N - 1):
            proof = prove(base_log, ids[index])
            assert (proof.leaf_index, proof.tree_size) == (index, N)
            assert verify_proof(proof, vkey)
            again = type(proof).from_json(proof.to_json())
            assert again == proof
            assert verify_proof(again, vkey)

    def test_tampered_proofs_fail(self, base_log: Path) -> None:
        vkey = (base_log / "audit.pub").read_text()
        event_id = record_of(lines(base_log)[7])["event_id"]
        proof = prove(base_log, event_id)
        other = VerifierKey.parse(vkey).name
        from dataclasses import replace

        bad = [
            replace(proof, leaf_index=8),
            replace(proof, tree_size=N - 1),
            replace(proof, record=proof.record.replace("TREAT", "TREAX")),
            replace(proof, audit_path=proof.audit_path[:-1]),
            replace(proof, audit_path=(proof.audit_path[1], proof.audit_path[0], *proof.audit_path[2:])),
            replace(proof, event_id="01941234-5678-7abc-8def-0123456789ab"),
            replace(proof, checkpoint=proof.checkpoint.replace(f"\n{N}\n", f"\n{N + 1}\n")),
        ]
        for p in bad:
            assert not verify_proof(p, vkey)
        assert not verify_proof(proof, VerifierKey(other, public_key_of(OTHER_SEED)).encode())

    def test_unknown_or_uncovered_event(self, base_log: Path, tmp_path: Path) -> None:
        from guardrail.errors import ConfigError

        with pytest.raises(ConfigError, match="no event"):
            prove(base_log, "01941234-5678-7abc-8def-0123456789ab")
        d = tmp_path / "open"
        log = AuditLog(d, signing_key=SEED, record_key=RECORD_KEY, checkpoint_every=1000)
        event_id = log.append(event(0))
        with pytest.raises(ConfigError, match="not covered by a checkpoint yet"):
            prove(d, event_id)
        log.checkpoint()
        later = log.append(event(1))
        with pytest.raises(ConfigError, match="not covered by a checkpoint yet"):
            prove(d, later)
        log.close()
        assert prove(d, later).tree_size == 2


# ---- hypothesis: any single mutation is caught


def _apply(base: Path, target: Path, mutation: tuple[str, int, int]) -> bool:
    """Apply one mutation to a copy; False when it changed nothing that matters (a true no-op)."""
    name, position, value = mutation
    shutil.copytree(base, target)
    path = target / name
    if name == "records":
        stored = lines(target)
        i = position % len(stored)
        op = value % 4
        if op == 0:
            del stored[i]
        elif op == 1:
            stored.insert(i, stored[(i + value) % len(stored)])
        elif op == 2:
            j = (i + 1 + value % (len(stored) - 1)) % len(stored)
            stored[i], stored[j] = stored[j], stored[i]
            if stored[i] == stored[j]:
                return False
        else:
            del stored[i:]
        write_lines(target, stored)
        return True
    data = bytearray(path.read_bytes())
    i = position % len(data)
    new = value if value != data[i] else (value + 1) % 256
    data[i] = new
    path.write_bytes(bytes(data))
    if name == "audit.pub":  # whitespace around the key text is not part of it
        try:
            return VerifierKey.parse(data.decode("utf-8", "replace")) != VerifierKey.parse(
                (base / name).read_text()
            )
        except NoteError:
            return True
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutation=st.tuples(
        st.sampled_from([SEGMENT, SEGMENT, SEGMENT, "checkpoints", "audit.pub", "records"]),
        st.integers(0, 10**6),
        st.integers(0, 255),
    )
)
def test_any_single_mutation_is_detected(base_log: Path, mutation: tuple[str, int, int]) -> None:
    """Property: flipping any byte of a segment, a checkpoint or the key, or deleting, duplicating, moving
    or truncating records, makes verify fail (unless the mutation was a no-op). With the keyring every byte
    of a line counts (the MAC covers the seal); see test_authenticator_bytes_without_the_keyring."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "log"
        if not _apply(base_log, target, mutation):
            return
        report = verify(target, record_key=RECORD_KEY)
        assert not report.ok, (mutation, report)
        assert report.kind in {"edited", "deleted", "inserted", "reordered", "truncated", "bad-signature",
                               "malformed", "unauthentic"}  # fmt: skip


@given(st.lists(st.sampled_from([f"id-{i}".encode() for i in range(12)]), max_size=40))
def test_first_repeated_event_id_matches_a_naive_scan(event_ids: list[bytes]) -> None:
    """verify keeps 16-byte digests in one buffer and sorts once; it finds what a set would."""
    from guardrail.audit.verify import _first_repeat

    buffer = bytearray()
    for event_id in event_ids:
        buffer += hashlib.blake2b(event_id, digest_size=16).digest()
    seen: set[bytes] = set()
    expected = None
    for index, event_id in enumerate(event_ids):
        if event_id in seen:
            expected = index
            break
        seen.add(event_id)
    assert _first_repeat(buffer) == expected
