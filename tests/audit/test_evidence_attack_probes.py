"""Attack probes: someone who can write the data directories (audit log, stores, checkpoints) but not the
keyring, and a DPO reading what the tools then say. Each test is a break that was found and fixed; each
has a positive control (the honest case passes the same check)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _audit_helpers import event

from guardrail.audit import AuditIntegrityError, AuditLog
from guardrail.keys import Keyring


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", *map(str, args)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _write(directory: Path, ring: Keyring, n: int) -> None:
    with AuditLog.for_keyring(directory, ring) as log:
        for i in range(n):
            log.append(event(i))
        log.checkpoint()


def _strip_authenticators(directory: Path) -> None:
    """Rewrite every line in the pre-MAC ("legacy") form: leaf only, no MAC, no seal (same leaf hashes)."""
    seg = directory / "segment-000001.jsonl"
    text = seg.read_text("utf-8")
    seg.write_text(re.sub(r'","mac":"[0-9a-f]{32}(","seal":"[^"]*)?"\},', '"},', text), "utf-8")


@pytest.fixture
def rings(tmp_path: Path) -> tuple[Path, Path]:
    victim, evil = tmp_path / "victim-keys", tmp_path / "evil-keys"
    Keyring.create(victim)
    Keyring.create(evil)
    return victim, evil


class TestSwappedKeyAndLegacyLines:
    """Attack: write a whole new history with a keyring of one's own, strip the MACs (lines in the format
    from before MACs, which verify accepts when a signature covers them), put the attacker's audit.pub
    beside it. `audit verify --keyring` (the victim's) said "every MAC verified": it trusted audit.pub."""

    def test_forged_history_is_refused(self, tmp_path: Path, rings: tuple[Path, Path]) -> None:
        victim_ring, evil_ring = rings
        audit, evil = tmp_path / "audit", tmp_path / "evil"
        _write(audit, Keyring.open(victim_ring), 3)
        # positive control: the honest log verifies with its keyring
        done = _cli("audit", "verify", audit, "--keyring", victim_ring)
        assert done.returncode == 0, done.stderr
        assert "every MAC verified" in done.stdout
        _write(evil, Keyring.open(evil_ring), 5)
        _strip_authenticators(evil)
        shutil.rmtree(audit)
        shutil.copytree(evil, audit)
        for command in ("verify", "show"):
            done = _cli("audit", command, audit, "--keyring", victim_ring)
            assert done.returncode == 5, (command, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr
        # an attacker's public key given beside the keyring is refused, not trusted
        done = _cli("audit", "verify", audit, "--keyring", victim_ring, "--public-key", audit / "audit.pub")
        assert done.returncode == 2, done.stderr
        assert "not the keyring's audit key" in done.stderr

    def test_replaced_audit_pub_is_reported(self, tmp_path: Path, rings: tuple[Path, Path]) -> None:
        """audit.pub swapped for another log's: the records still verify under the keyring's key, so
        `verify --keyring` said intact while every writer of the log now refused to open it."""
        victim_ring, evil_ring = rings
        audit, evil = tmp_path / "audit", tmp_path / "evil"
        _write(audit, Keyring.open(victim_ring), 3)
        _write(evil, Keyring.open(evil_ring), 1)
        from guardrail.audit.note import VerifierKey

        name = VerifierKey.parse((audit / "audit.pub").read_text("utf-8")).name  # same name, other key
        other = VerifierKey.parse((evil / "audit.pub").read_text("utf-8")).public_key
        (audit / "audit.pub").write_text(VerifierKey(name, other).encode() + "\n", "utf-8")
        done = _cli("audit", "verify", audit, "--keyring", victim_ring)
        assert done.returncode == 5, done.stdout
        assert "audit.pub is not this log's key" in done.stderr

    def test_api_helper_gives_the_keyring_key(self, tmp_path: Path, rings: tuple[Path, Path]) -> None:
        from guardrail.audit import verify
        from guardrail.audit.verify import keyring_audit_keys

        victim_ring, evil_ring = rings
        audit = tmp_path / "audit"
        _write(audit, Keyring.open(victim_ring), 2)
        public, record_key = keyring_audit_keys(victim_ring)
        assert verify(audit, public_key=public, record_key=record_key).ok
        evil = tmp_path / "evil"
        _write(evil, Keyring.open(evil_ring), 2)
        _strip_authenticators(evil)
        assert not verify(evil, public_key=public, record_key=record_key).ok


def _cut_last(directory: Path) -> None:
    """Drop the last record and every checkpoint that covers it: what is left is a consistent older log."""
    from guardrail.audit.note import parse_checkpoint, split_notes

    seg = directory / "segment-000001.jsonl"
    stored = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(stored[:-1]))
    notes = split_notes((directory / "checkpoints").read_text("utf-8"))
    kept = [n for n in notes if parse_checkpoint(n[: n.rfind("\n\n") + 1]).size < len(stored)]
    (directory / "checkpoints").write_text("".join(kept), "utf-8")


class TestCutTail:
    """Attack: cut the last record (say, a dsar.erasure) and the checkpoints after it. The next writer
    refused the log (its keyed state.json counts more records), but `audit verify --keyring` said intact."""

    def test_verify_with_keyring_reports_the_cut(self, tmp_path: Path, rings: tuple[Path, Path]) -> None:
        from guardrail.audit import verify
        from guardrail.audit.verify import keyring_audit_keys

        ring_dir, _ = rings
        audit = tmp_path / "audit"
        _write(audit, Keyring.open(ring_dir), 6)
        public, record_key = keyring_audit_keys(ring_dir)
        assert verify(audit, public_key=public, record_key=record_key).ok  # positive control
        _cut_last(audit)
        assert verify(audit).ok  # the public key alone cannot tell (documented limit)
        report = verify(audit, public_key=public, record_key=record_key)
        assert not report.ok
        assert report.kind == "truncated"
        done = _cli("audit", "verify", audit, "--keyring", ring_dir)
        assert done.returncode == 5, done.stdout
        assert "says it wrote 6 records but only 5 remain" in done.stderr
        # the writer agrees
        with pytest.raises(AuditIntegrityError, match="shorter"):
            AuditLog.for_keyring(audit, Keyring.open(ring_dir))


class TestRecordFromAnotherLog:
    """Attack: two logs of one keyring on one host (say, a clinic's and a research pipeline's). A record
    of the other log that carries no seal (not the last of its batch) is appended to this log's tail with
    the right seq: its MAC was valid here too (same key, same default origin), so `audit verify --keyring`
    said intact and the next writer would have sealed it as this log's own."""

    def test_spliced_record_is_not_authentic(self, tmp_path: Path, rings: tuple[Path, Path]) -> None:
        from guardrail.audit import verify
        from guardrail.audit.verify import keyring_audit_keys

        ring_dir, _ = rings
        ring = Keyring.open(ring_dir)
        a, b = tmp_path / "a", tmp_path / "b"
        with AuditLog.for_keyring(a, ring) as log:
            for i in range(3):
                log.append(event(i))
        with AuditLog.for_keyring(b, ring) as log:
            for i in range(5):
                log.append(event(100 + i), sync=False)
        theirs = (b / "segment-000001.jsonl").read_bytes().splitlines(keepends=True)
        assert b'"seal"' not in theirs[3]
        public, record_key = keyring_audit_keys(ring_dir)
        assert verify(a, public_key=public, record_key=record_key).ok  # positive control
        with (a / "segment-000001.jsonl").open("ab") as f:
            f.write(theirs[3])
        report = verify(a, public_key=public, record_key=record_key)
        assert not report.ok
        assert (report.first_bad_index, report.kind) == (3, "unauthentic")
        with pytest.raises(AuditIntegrityError, match="record 3"):
            AuditLog.for_keyring(a, ring).close()
        done = _cli("audit", "verify", a, "--keyring", ring_dir)
        assert done.returncode == 5, done.stdout


class TestKeyringRestoredAfterErasure:
    """Attack: after `guardrail erase`, the keyring is restored from a backup taken before it; the erased
    subject's key is usable again (with a store backup, the subject's records open again). The
    certificate still said "verified": it proves what happened, not that it still holds. With --keyring,
    `verify-certificate` now checks that every key it lists as destroyed is still destroyed."""

    def test_restored_key_fails_the_certificate(self, tmp_path: Path) -> None:
        demo = tmp_path / "demo"
        assert _cli("demo", "-o", demo).returncode == 0
        backup = tmp_path / "keyring-backup.json"
        shutil.copy2(demo / "keys" / "keyring.json", backup)
        cert = tmp_path / "erasure.json"
        done = _cli(
            "erase", "--subject", "discharge_summary_chf", "--keyring", demo / "keys", "--store", demo / "kb",
            "--audit-log", demo / "audit", "--request-ref", "DSAR-1", "--certificate", cert,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        check = ("verify-certificate", cert, "--audit-log", demo / "audit", "--keyring", demo / "keys")
        done = _cli(*check)  # positive control: the key is destroyed
        assert done.returncode == 0, done.stderr
        assert "certificate verified" in done.stdout
        shutil.copy2(backup, demo / "keys" / "keyring.json")
        done = _cli(*check)
        assert done.returncode == 1, done.stdout
        assert "NOT HOLDING" in done.stderr
        assert "usable again" in done.stderr
        assert "Traceback" not in done.stderr


class TestEditedCanaryRegistry:
    """Attack: whoever can write KEYRING/canaries.json removes a canary or zeroes its digests; `canary
    check` then said "no canary found" (exit 0) on a file full of canaries. The registry now carries a
    MAC under the keyring; an edited one is refused (exit 2), never read as "nothing planted"."""

    def test_edited_registry_is_refused(self, tmp_path: Path) -> None:
        import json

        keys, planted = tmp_path / "keys", tmp_path / "canaries.jsonl"
        Keyring.create(keys)
        done = _cli(
            "canary", "make", "--kind", "note", "-n", "2", "-o", planted, "--keyring", keys, "--tenant", "t"
        )
        assert done.returncode == 0, done.stderr
        assert _cli("canary", "check", planted, "--keyring", keys).returncode == 1  # positive control
        registry = keys / "canaries.json"
        original = json.loads(registry.read_text("utf-8"))
        edits = []
        fewer = json.loads(json.dumps(original))
        fewer["canaries"] = fewer["canaries"][1:]
        edits.append(fewer)
        blind = json.loads(json.dumps(original))
        for canary in blind["canaries"]:
            for value in canary["values"]:
                value["digest"] = value["first"] = "0" * 32
        edits.append(blind)
        no_mac = {k: v for k, v in blind.items() if k != "mac"}
        edits.append(no_mac)
        for edited in edits:
            registry.write_text(json.dumps(edited), "utf-8")
            for command in ("check", "list"):
                args = (planted,) if command == "check" else ()
                done = _cli("canary", command, *args, "--keyring", keys)
                assert done.returncode == 2, (command, done.stdout, done.stderr)
                assert "was edited" in done.stderr
                assert "Traceback" not in done.stderr
        registry.write_text(json.dumps(original), "utf-8")
        assert _cli("canary", "check", planted, "--keyring", keys).returncode == 1


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i/-i (needs root on ext4-like file systems): an audit segment that refuses every write."""
    done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, check=False)
    return done.returncode == 0


class TestAuditUnwritableDuringErasure:
    """Attack: the audit segment becomes unwritable after the log opened (disk full, a read-only remount,
    chattr +i). `guardrail erase` and `keys shred` then deleted and destroyed for good, and said only "the
    audit record was not written" (exit 1): an operator reads "nothing happened". They now say what was
    done (the subject ref, counts, key ids) and that it stands unrecorded."""

    def test_the_error_says_what_was_destroyed(self, tmp_path: Path) -> None:
        demo = tmp_path / "demo"
        assert _cli("demo", "-o", demo).returncode == 0
        segment = demo / "audit" / "segment-000001.jsonl"
        if not _immutable(segment, True):
            pytest.skip("chattr +i is not available here (needs root and an ext4-like file system)")
        try:
            keyring_before = (demo / "keys" / "keyring.json").read_bytes()
            done = _cli(
                "erase", "--subject", "referral_diabetes", "--keyring", demo / "keys", "--store", demo / "kb",
                "--audit-log", demo / "audit",
            )  # fmt: skip
            assert done.returncode != 0
            assert (demo / "keys" / "keyring.json").read_bytes() != keyring_before  # it did happen
            assert "WAS erased" in done.stderr
            assert "destroyed" in done.stderr
            assert "referral_diabetes" not in done.stderr  # the subject by its keyed reference only
            assert "Traceback" not in done.stderr
            done = _cli(
                "keys",
                "shred",
                "--keyring",
                demo / "keys",
                "--tenant",
                "riverside",
                "--audit-log",
                demo / "audit",
            )
            assert done.returncode != 0
            assert "WAS changed (key.shred: key(s) " in done.stderr
            assert "Traceback" not in done.stderr
        finally:
            _immutable(segment, False)


class TestPasswordInLocation:
    """A DPO pastes a PostgreSQL URL with its password where a keyring directory goes: the error echoed
    the URL, password and all. Errors now never print a URL's password (and say what to pass instead)."""

    @pytest.mark.parametrize(
        "location",
        ["postgresql://alice:S3cretPW@127.0.0.1:1/db", "postgresql://alice@127.0.0.1:1/db?password=S3cretPW"],
    )
    def test_no_password_in_errors(self, location: str, tmp_path: Path) -> None:
        done = _cli("keys", "list", "--keyring", location)
        assert done.returncode == 2, done.stderr
        assert "S3cretPW" not in done.stdout + done.stderr
        assert "the keyring is a directory" in done.stderr
        done = _cli("keys", "rotate", "--keyring", tmp_path / "missing", "--audit-log", location)
        assert "S3cretPW" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr

    def test_scrub(self) -> None:
        from guardrail.db import scrub_passwords

        text = "postgres:/a:pw1@h/d and postgresql://u@h/d?sslmode=x&password=pw2&a=1 and data/password.txt"
        scrubbed = scrub_passwords(text)
        assert "pw1" not in scrubbed
        assert "pw2" not in scrubbed
        assert "data/password.txt" in scrubbed  # a path is left alone


def test_certificate_signed_by_another_key_fails_with_the_keyring(tmp_path: Path) -> None:
    """Attack: a certificate made with a keyring of one's own (a real erase in a scratch copy), and that
    keyring's audit.pub put in the victim's log directory: `verify-certificate --audit-log` trusts the
    directory's audit.pub (as documented), but with --keyring it now checks against the keyring's key."""
    victim, evil = tmp_path / "victim", tmp_path / "evil"
    for demo in (victim, evil):
        assert _cli("demo", "-o", demo).returncode == 0
    forged = tmp_path / "forged.json"
    done = _cli(
        "erase", "--subject", "discharge_summary_chf", "--keyring", evil / "keys", "--store", evil / "kb",
        "--audit-log", evil / "audit", "--certificate", forged,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    real = tmp_path / "real.json"
    done = _cli(
        "erase", "--subject", "discharge_summary_chf", "--keyring", victim / "keys", "--store", victim / "kb",
        "--audit-log", victim / "audit", "--certificate", real,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    check = ("--audit-log", victim / "audit", "--keyring", victim / "keys")
    assert _cli("verify-certificate", real, *check).returncode == 0  # positive control
    shutil.copy2(evil / "audit" / "audit.pub", victim / "audit" / "audit.pub")
    assert _cli("verify-certificate", forged, "--audit-log", victim / "audit").returncode == 0  # the limit
    done = _cli("verify-certificate", forged, *check)
    assert done.returncode == 1, done.stdout
    assert "is not the audit key of" in done.stderr


@pytest.mark.parametrize(
    "kind",
    [
        "simple",
        pytest.param(
            "chroma",
            marks=pytest.mark.xfail(
                strict=True,
                reason="ChromaVectorStore rebuilds result nodes from its _node_content copy, so the store "
                "sees the labels as written, not the relabelled flat metadata the filter matched: not "
                "detected yet (needs the raw Chroma metadata of each hit)",
            ),
        ),
    ],
)
def test_relabelled_classification_does_not_pass_a_filter(kind: str, tmp_path: Path) -> None:
    """Attack: with write access to the vector database, relabel a PHI chunk's plaintext
    ``classification`` label as "public". A retriever filtered on classification == public (a
    "public answers only" endpoint) then released the PHI chunk to a clinician, labelled phi. The
    labels are now checked against the sealed metadata: a relabelled record does not open."""
    import json

    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

    from guardrail import Guardrail
    from guardrail.access import Principal
    from guardrail.llama_index.guard import RetrievalBlocked
    from guardrail.llama_index.hashing import HashingEmbedding

    Keyring.create(tmp_path / "keys")
    embed = HashingEmbedding()
    gr = Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", tenant="clinic", audit_log=tmp_path / "a"
    )
    docs = [
        Document(
            text="Discharge plan for Harold Finch, CHF.",
            metadata={"subjects": ["p-1"], "classification": "phi"},
        ),
        Document(text="Visiting hours are 10 to 20 every day.", metadata={"classification": "public"}),
    ]
    inner: object = None
    if kind == "chroma":
        import chromadb
        from chromadb.config import Settings
        from llama_index.vector_stores.chroma import ChromaVectorStore

        client = chromadb.PersistentClient(
            path=str(tmp_path / "chroma"), settings=Settings(anonymized_telemetry=False)
        )
        collection = client.get_or_create_collection("kb-main")
        inner = ChromaVectorStore(chroma_collection=collection)
    storage = gr.storage_context(vector_store=inner, name="kb-main")
    VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=embed)
    public_only = MetadataFilters(filters=[MetadataFilter(key="classification", value="public")])
    clinician = Principal(id="c-1", roles=["clinician"], purpose="treatment")

    def retrieve() -> list[str]:
        if kind == "simple":
            store = gr.load_storage_context(tmp_path / "kb").vector_store
        else:
            store = gr.storage_context(
                vector_store=ChromaVectorStore(chroma_collection=collection), name="kb-main"
            ).vector_store
        index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
        retriever = gr.guard(index.as_retriever(filters=public_only, similarity_top_k=5))
        with gr.acting_as(clinician):
            return [n.get_content() for n in retriever.retrieve("discharge plan Harold Finch")]

    if kind == "simple":
        storage.persist(persist_dir=str(tmp_path / "kb"))
    assert retrieve() == ["Visiting hours are 10 to 20 every day."]  # positive control: the filter works
    if kind == "simple":
        path = tmp_path / "kb" / "default__vector_store.json"
        data = json.loads(path.read_text())
        for labels in data["metadata_dict"].values():
            labels["classification"] = "public"
        path.write_text(json.dumps(data))
    else:
        got = collection.get(include=["metadatas"])
        metadatas = [dict(m, classification="public") for m in got["metadatas"]]
        collection.update(ids=got["ids"], metadatas=metadatas)
    with pytest.raises(RetrievalBlocked, match="could not be opened"):
        retrieve()


def test_records_without_macs_are_not_called_mac_verified(tmp_path: Path, rings: tuple[Path, Path]) -> None:
    """A DPO reading `verify --keyring`: records from before MACs (covered by the log's own signed
    checkpoints) are authentic, but "every MAC verified" alone claimed MACs that were never there."""
    ring_dir, _ = rings
    audit = tmp_path / "audit"
    _write(audit, Keyring.open(ring_dir), 4)
    _strip_authenticators(audit)
    done = _cli("audit", "verify", audit, "--keyring", ring_dir)
    assert done.returncode == 0, done.stderr
    assert "4 record(s) from before MACs, authenticated by signed checkpoints" in done.stdout


def test_manifest_signed_by_another_key_fails_with_the_keyring(tmp_path: Path) -> None:
    """Attack: replace a redacted training set and its manifest with ones made (and signed) under a
    keyring of one's own. `manifest verify` without a key says ok (with a note); a DPO holding the
    keyring can now check the signer with --keyring."""
    victim, evil = tmp_path / "victim", tmp_path / "evil"
    for demo in (victim, evil):
        assert _cli("demo", "-o", demo).returncode == 0
    name = "finetune_chat.redacted.jsonl"
    manifest = victim / f"{name}.manifest.json"
    done = _cli("manifest", "verify", manifest, "--keyring", victim / "keys")
    assert done.returncode == 0, done.stderr  # positive control
    assert "note:" not in done.stdout
    shutil.copy2(evil / name, victim / name)
    shutil.copy2(evil / f"{name}.manifest.json", manifest)
    assert _cli("manifest", "verify", manifest).returncode == 0  # self-signed: the documented limit
    done = _cli("manifest", "verify", manifest, "--keyring", victim / "keys")
    assert done.returncode == 1, done.stdout
    assert "public key mismatch" in done.stderr
