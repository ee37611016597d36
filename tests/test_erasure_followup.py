"""After an erasure: the key lifecycle still works on the erased store, and key operations are accountable
(actor and request reference on key.rotate / key.shred events, shown in the activity report)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llama_index.core import Document, VectorStoreIndex

from guardrail import Guardrail
from guardrail.audit.verify import iter_records
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding


def run(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_strings(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_strings(v) for v in value)) if value else set()
    return set()


def _build(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme", audit_log=tmp_path / "audit")
    storage = gr.storage_context()
    docs = [
        Document(text=f"Patient Zebulon {i} chest pain", doc_id=f"d{i}", metadata={"subjects": [f"p{i}"]})
        for i in range(3)
    ]
    VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=HashingEmbedding(dim=16))
    storage.persist(persist_dir=str(tmp_path / "kb"))
    gr.close()


def test_python_erasure_persists_so_rotation_and_destroy_work_afterwards(tmp_path: Path) -> None:
    _build(tmp_path)
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme", audit_log=tmp_path / "audit")
    gr.load_storage_context(tmp_path / "kb")
    result = gr.erase_subject("p1", actor="dpo-anna", request_ref="DSAR-9")  # no persist() call after
    gr.close()
    assert result.vector_nodes_deleted == 1
    assert result.keys_destroyed
    # the store on disk no longer holds the erased subject (positive control: the others are there)
    reader = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    with reader.release_all(reason="test: what is left on disk"):
        texts = [
            n.get_content() for n in reader.load_storage_context(tmp_path / "kb").vector_store.get_nodes()
        ]
    assert sorted(texts) == ["Patient Zebulon 0 chest pain", "Patient Zebulon 2 chest pain"]
    old = Keyring.open(tmp_path / "keys").primary_id("acme")
    assert old is not None
    rotated = run(
        "keys", "rotate", "-k", "keys", "-t", "acme", "--audit-log", "audit",
        "--actor", "sec-ops", "--request-ref", "CHG-1042", cwd=tmp_path,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    done = run("keys", "reencrypt", "-k", "keys", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "re-sealed" in done.stdout
    destroyed = run(
        "keys", "destroy", old, "-k", "keys", "-s", "kb", "-t", "acme", "--audit-log", "audit",
        "--actor", "sec-ops", "--request-ref", "CHG-1042", cwd=tmp_path,
    )  # fmt: skip
    assert destroyed.returncode == 0, destroyed.stderr
    records = list(iter_records(tmp_path / "audit"))
    by_category = {r["event"]["category"]: r for r in records}
    assert by_category["dsar.erasure"]["actor"]["ref"] == "dpo-anna"
    assert by_category["dsar.erasure"]["request"]["ref"] == "DSAR-9"
    for category in ("key.rotate", "key.shred"):
        assert by_category[category]["actor"]["ref"] == "sec-ops", category
        assert by_category[category]["request"]["ref"] == "CHG-1042", category
    values = {v for r in records for v in _strings(r)}
    assert not {"p1", "p0", "p2"} & values  # whole values: random hex or base64 may hold any short text
    # the activity report shows who did each key operation and under which request
    report = run("report", "audit", "-o", "report.json", "--keyring", "keys", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.dumps(json.loads((tmp_path / "report.json").read_text()))
    assert "CHG-1042" in data
    assert "DSAR-9" in data


def test_key_shred_without_request_ref_records_the_os_user(tmp_path: Path) -> None:
    _build(tmp_path)
    shred = run(
        "keys", "shred", "-k", "keys", "-t", "acme", "--subject", "p2", "--audit-log", "audit", cwd=tmp_path
    )
    assert shred.returncode == 0, shred.stderr
    event = [r for r in iter_records(tmp_path / "audit") if r["event"]["category"] == "key.shred"][-1]
    assert event["actor"]["ref"]
    assert "request" not in event


def test_erase_refuses_a_wrong_tenant_and_says_when_nothing_is_known(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    for tenant, directory, subject in (("acme", "kb", "p1"), ("beta", "kb-beta", "q9")):
        gr = Guardrail(keyring=tmp_path / "keys", tenant=tenant, audit_log=tmp_path / "audit")
        storage = gr.storage_context()
        VectorStoreIndex.from_documents(  # the annotator records the ingestion (tenant, subject refs)
            [
                Document(
                    text=f"Note {tenant} chest pain", doc_id=f"{tenant}-0", metadata={"subjects": [subject]}
                )
            ],
            storage_context=storage,
            transformations=[gr.annotator()],
            embed_model=HashingEmbedding(dim=16),
        )
        storage.persist(persist_dir=str(tmp_path / directory))
        gr.close()
    base = ("erase", "-k", "keys", "--audit-log", "audit")
    wrong = run(*base, "--subject", "p1", "-s", "kb-beta", "-t", "beta", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "under tenant 'acme'" in wrong.stderr
    assert "pass --tenant" in wrong.stderr
    assert "p1" not in wrong.stderr.replace("'p1'", "")  # named by keyed reference only
    assert "dsar.erasure" not in json.dumps(list(iter_records(tmp_path / "audit")))  # nothing recorded
    typo = run(*base, "--subject", "p-1", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert typo.returncode == 0, typo.stderr
    assert "warning: nothing about this subject under tenant 'acme'" in typo.stderr
    done = run(*base, "--subject", "p1", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 node(s) deleted" in done.stdout
    assert "warning" not in done.stderr
    again = run(*base, "--subject", "p1", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert again.returncode == 0
    assert "the subject was erased before" in again.stderr


def _raw_node_count(kb: Path) -> int:
    return len(json.loads((kb / "default__vector_store.json").read_text())["embedding_dict"])


def test_python_erasure_writes_back_a_store_persisted_in_the_same_session(tmp_path: Path) -> None:
    """Built and persisted by this Guardrail, then erased: the ciphertext leaves the disk too (not only
    shredded), whether the storage context is still alive or already gone."""
    import gc

    Keyring.create(tmp_path / "keys")
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme", audit_log=tmp_path / "audit")
    for name in ("kb-alive", "kb-gone"):
        storage = gr.storage_context()
        VectorStoreIndex.from_documents(
            [
                Document(text=f"Patient Zebulon {i} chest pain", metadata={"subjects": [f"p{i}"]})
                for i in range(3)
            ],
            storage_context=storage,
            embed_model=HashingEmbedding(dim=16),
        )
        storage.persist(persist_dir=str(tmp_path / name))
        if name == "kb-alive":
            alive = storage
    del storage
    gc.collect()
    assert _raw_node_count(tmp_path / "kb-alive") == _raw_node_count(tmp_path / "kb-gone") == 3
    result = gr.erase_subject("p1", actor="dpo-anna", request_ref="DSAR-10")
    gr.close()
    assert result.vector_nodes_deleted == 2
    assert _raw_node_count(tmp_path / "kb-alive") == 2
    assert _raw_node_count(tmp_path / "kb-gone") == 2
    assert alive is not None


def test_an_erasure_that_cannot_be_audited_changes_nothing(tmp_path: Path) -> None:
    import pytest

    from guardrail.erasure import erase_subject

    _build(tmp_path)
    not_a_log = tmp_path / "audit.txt"
    not_a_log.write_text("not an audit log directory\n")
    ring = Keyring.open(tmp_path / "keys")
    with pytest.raises(Exception):  # noqa: B017, PT011 - whatever the log says, nothing may change
        erase_subject("p1", keyring=ring, tenant="acme", stores=[tmp_path / "kb"], audit_log=not_a_log)
    assert all(i.state != "destroyed" for i in Keyring.open(tmp_path / "keys").list_keys())
    reader = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    with reader.release_all(reason="test: nothing changed"):
        texts = [
            n.get_content() for n in reader.load_storage_context(tmp_path / "kb").vector_store.get_nodes()
        ]
    assert "Patient Zebulon 1 chest pain" in texts
