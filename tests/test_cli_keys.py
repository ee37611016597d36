"""`guardrail keys ...` and `guardrail erase` as a user runs them (real subprocesses, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llama_index.core import Document, VectorStoreIndex

from guardrail import Guardrail
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding


def run(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrail.cli", *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
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
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    storage = gr.storage_context()
    docs = [
        Document(
            text=f"Patient Zebulon {i} chest pain", doc_id=f"/srv/p{i}.txt", metadata={"subjects": [f"p{i}"]}
        )
        for i in range(3)
    ]
    VectorStoreIndex.from_documents(docs, storage_context=storage, embed_model=HashingEmbedding(dim=16))
    storage.persist(persist_dir=str(tmp_path / "kb"))


def test_key_lifecycle_and_erasure(tmp_path: Path) -> None:
    proc = run("keys", "init", "keys", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "keys" / "kek.key").stat().st_mode & 0o777 == 0o600
    assert run("keys", "init", "keys", cwd=tmp_path).returncode == 2  # never overwrites a keyring
    _build(tmp_path)

    listed = json.loads(run("keys", "list", "-k", "keys", "--json", cwd=tmp_path).stdout)
    assert {k["scope"] for k in listed} == {"tenant", "subject"}
    assert all(set(k) == {"id", "scope", "version", "state", "decrypts", "created"} for k in listed)
    old = next(k["id"] for k in listed if k["scope"] == "tenant")
    # no tenant or subject name among the keyring's values (base64 key material may contain any
    # short letter sequence, so compare whole values rather than substrings)
    values = _strings(json.loads((tmp_path / "keys" / "keyring.json").read_text()))
    assert not {"acme", "p0", "p1", "p2"} & values

    assert (
        run("keys", "rotate", "-k", "keys", "-t", "acme", "--audit-log", "audit", cwd=tmp_path).returncode
        == 0
    )
    refused = run("keys", "destroy", old, "-k", "keys", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert refused.returncode == 2
    assert "still seals" in refused.stderr
    dry = run("keys", "reencrypt", "-k", "keys", "-s", "kb", "-t", "acme", "--dry-run", cwd=tmp_path)
    assert f"{old}: " in dry.stdout
    assert "(dry run)" in dry.stdout
    done = run("keys", "reencrypt", "-k", "keys", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert run("keys", "destroy", old, "-k", "keys", "-s", "kb", "-t", "acme", cwd=tmp_path).returncode == 0

    erased = run(
        "erase",
        "--subject",
        "p1",
        "-k",
        "keys",
        "-s",
        "kb",
        "-t",
        "acme",
        cwd=tmp_path,
        env={"GUARDRAIL_AUDIT_LOG": str(tmp_path / "audit")},
    )
    assert erased.returncode == 0, erased.stderr
    assert "1 node(s) deleted" in erased.stdout
    assert "p1" not in erased.stdout  # reported by a keyed reference, not by name
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    storage = gr.load_storage_context(tmp_path / "kb")
    with gr.release_all(reason="test: what is left in the store"):
        texts = [n.get_content() for n in storage.vector_store.get_nodes()]
    assert sorted(texts) == ["Patient Zebulon 0 chest pain", "Patient Zebulon 2 chest pain"]
    verified = run("audit", "verify", "audit", cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    lines = [
        json.loads(line)
        for segment in sorted((tmp_path / "audit").glob("segment-*.jsonl"))
        for line in segment.read_text().splitlines()
    ]
    assert [e["event"]["category"] for e in lines] == ["key.rotate", "dsar.erasure"]
    assert "p1" not in _strings(lines)


def test_wrong_keyring_and_missing_keyring_are_one_line_errors(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    Keyring.create(tmp_path / "other")
    _build(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "kb").iterdir()}
    proc = run("keys", "reencrypt", "-k", "other", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert proc.returncode == 2
    assert "does not open the store" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "kb").iterdir()} == before  # nothing written
    missing = run("keys", "list", "-k", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2
    assert "guardrail keys init" in missing.stderr


def test_passphrase_keyring_from_the_environment(tmp_path: Path) -> None:
    env = {"GUARDRAIL_KEYRING_PASSPHRASE": "correct horse battery staple"}
    assert run("keys", "init", "keys", "--backend", "passphrase", cwd=tmp_path, env=env).returncode == 0
    assert not (tmp_path / "keys" / "kek.key").exists()
    assert run("keys", "list", "-k", "keys", cwd=tmp_path, env=env).returncode == 0
    wrong = run("keys", "list", "-k", "keys", cwd=tmp_path, env={"GUARDRAIL_KEYRING_PASSPHRASE": "wrong"})
    assert wrong.returncode == 2
    assert "does not open" in wrong.stderr


def test_shred_tenant_erases_the_store(tmp_path: Path) -> None:
    """After a tenant is shredded its store reads as erased data: nothing is released, nothing raises."""
    Keyring.create(tmp_path / "keys")
    _build(tmp_path)
    assert run("keys", "shred", "-k", "keys", "--tenant", "acme", cwd=tmp_path).returncode == 0
    from guardrail.crypto import Sealer
    from guardrail.llama_index.storage import load_storage_context

    ring = Keyring.open(tmp_path / "keys")
    storage = load_storage_context(tmp_path / "kb", sealer=Sealer(ring), keyring=ring, tenant="acme")
    erased: list[str] = []
    storage.vector_store.set_release_hook(None, on_erased=erased.append)
    assert storage.vector_store.get_nodes() == []
    assert len(erased) == 3
