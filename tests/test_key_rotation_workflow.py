"""Rotation as an operator runs it (issue 11): old ciphertext keeps opening until its key version is
destroyed, `keys list` says which versions still decrypt old data, and `keys reencrypt --destroy-old`
destroys the retired versions once the given stores no longer use them, so a restored pre-rotation copy
stays closed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_cli_keys import _build, run

from guardrail import Guardrail


def _texts(tmp_path: Path, store: str) -> list[str]:
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    storage = gr.load_storage_context(tmp_path / store)
    with gr.release_all(reason="test: what the copy opens to"):
        return sorted(n.get_content() for n in storage.vector_store.get_nodes())


def test_restored_pre_rotation_copy_opens_until_destroy_old(tmp_path: Path) -> None:
    assert run("keys", "init", "keys", cwd=tmp_path).returncode == 0
    _build(tmp_path)
    shutil.copytree(tmp_path / "kb", tmp_path / "backup")  # the pre-rotation ciphertext
    assert run("keys", "rotate", "-k", "keys", "-t", "acme", cwd=tmp_path).returncode == 0
    done = run("keys", "reencrypt", "-k", "keys", "-s", "kb", "-t", "acme", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    # re-encryption alone does not close the old copy: the retired version still decrypts it
    assert _texts(tmp_path, "backup") == _texts(tmp_path, "kb")
    listed = run("keys", "list", "-k", "keys", cwd=tmp_path)
    assert "retired version(s) still decrypt" in listed.stdout
    assert "--destroy-old" in listed.stdout
    entries = json.loads(run("keys", "list", "-k", "keys", "--json", cwd=tmp_path).stdout)
    retired = [k for k in entries if k["state"] == "decrypt-only"]
    assert len(retired) == 1
    assert retired[0]["decrypts"] is True

    # the backup still uses the old version: naming it keeps the version (nothing destroyed)
    kept = run(
        "keys", "reencrypt", "-k", "keys", "-s", "kb", "-s", "backup", "-t", "acme", "--dry-run", cwd=tmp_path
    )
    assert kept.returncode == 0, kept.stderr
    assert "--destroy-old" not in kept.stdout
    refused = run("keys", "reencrypt", "-k", "keys", "-s", "kb", "--destroy-old", "--dry-run", cwd=tmp_path)
    assert refused.returncode == 2

    done = run(
        "keys", "reencrypt", "-k", "keys", "-s", "kb", "-t", "acme", "--destroy-old", "--audit-log", "audit",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"destroyed {retired[0]['id']} (version 1)" in done.stdout
    entries = {
        k["id"]: k for k in json.loads(run("keys", "list", "-k", "keys", "--json", cwd=tmp_path).stdout)
    }
    assert (entries[retired[0]["id"]]["state"], entries[retired[0]["id"]]["decrypts"]) == ("destroyed", False)

    assert _texts(tmp_path, "kb") == [f"Patient Zebulon {i} chest pain" for i in range(3)]  # re-sealed data
    # the restored pre-rotation copy stays closed: none of its records opens (3 did before)
    assert _texts(tmp_path, "backup") == []
    verified = run("audit", "verify", "audit", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    # both steps are in the log: the re-sealing (store, counts) and the destruction
    from guardrail.audit.verify import iter_records

    records = list(iter_records(tmp_path / "audit"))
    assert [r["event"]["category"] for r in records] == ["key.rotate", "key.shred"]
    store = next(r for r in records[0]["resources"] if r["type"] == "store")
    assert store["id"] == "default"  # the storage name (gr.storage_context() without name=)
    assert "reencrypted" in store["labels"]
    assert [r["id"] for r in records[1]["resources"]] == [retired[0]["id"]]
