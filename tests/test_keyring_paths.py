"""A keyring is accepted as the path of its directory (str or Path) wherever a ``Keyring`` is (issue 14).

Each public API that takes a keyring is called with a path and with an open keyring; both must give the
same result (the same tokens, the same keys), so a path that silently opened another keyring, or was
ignored, fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import SimpleVectorStore

from guardrail.audit import AuditLog, verify
from guardrail.audit.auth import RECORD_KEY_PURPOSE
from guardrail.crypto import Sealer
from guardrail.datasets.subjects import SubjectLinker
from guardrail.embeddings import EmbeddingShield
from guardrail.erasure import erase_subject
from guardrail.keys import Keyring, KeyringError
from guardrail.llama_index import EncryptedVectorStore
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.llama_index.storage import build_storage_context, load_storage_context, reencrypt

TENANT = "acme"


@pytest.fixture
def ring_dir(tmp_path: Path) -> Path:
    Keyring.create(tmp_path / "keys")
    return tmp_path / "keys"


@pytest.mark.parametrize("as_text", [True, False], ids=["str", "Path"])
def test_storage_builders_take_a_path(ring_dir: Path, tmp_path: Path, as_text: bool) -> None:
    where: str | Path = str(ring_dir) if as_text else ring_dir
    storage = build_storage_context(keyring=where, tenant=TENANT, name="kb")
    node = TextNode(id_="n1", text="Restricted note about Harold Finch", metadata={"subjects": ["p-1"]})
    VectorStoreIndex(
        [node], storage_context=storage, embed_model=HashingEmbedding(), store_nodes_override=True
    )
    storage.persist(persist_dir=str(tmp_path / "kb"))
    reopened = load_storage_context(tmp_path / "kb", keyring=where, tenant=TENANT)
    assert reopened.vector_store.get_nodes(node_ids=["n1"])[0].get_content() == node.get_content()
    # the same records open with the Keyring object: the path opened the same keyring
    ring = Keyring.open(ring_dir)
    same = load_storage_context(tmp_path / "kb", keyring=ring, sealer=Sealer(ring), tenant=TENANT)
    assert same.docstore.get_node("n1").get_content() == node.get_content()
    assert reencrypt(reopened, keyring=where, tenant=TENANT, dry_run=True).total > 0
    erased = erase_subject("p-1", keyring=where, tenant=TENANT, stores=[tmp_path / "kb"])
    assert erased.keys_destroyed


def test_a_path_without_a_keyring_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyringError):
        build_storage_context(keyring=tmp_path / "nowhere", tenant=TENANT)
    with pytest.raises(TypeError, match="keyring must be a Keyring or a keyring directory's path"):
        build_storage_context(keyring=42, tenant=TENANT)  # type: ignore[arg-type]


def test_stores_audit_shield_and_linker_take_a_path(ring_dir: Path, tmp_path: Path) -> None:
    ring = Keyring.open(ring_dir)
    store = EncryptedVectorStore(
        SimpleVectorStore(), sealer=Sealer(ring), keyring=str(ring_dir), tenant=TENANT
    )
    other = EncryptedVectorStore(SimpleVectorStore(), sealer=Sealer(ring), keyring=ring, tenant=TENANT)
    assert store.doc_token("doc-1") == other.doc_token("doc-1")

    with AuditLog.for_keyring(tmp_path / "audit", str(ring_dir)) as log:
        log.append({"event": {"category": "policy.load", "action": "R", "outcome": "success"}})
    assert verify(tmp_path / "audit", record_key=ring.hmac_key(RECORD_KEY_PURPOSE)).ok

    assert (
        EmbeddingShield.for_tenant(ring_dir, TENANT).scale == EmbeddingShield.for_tenant(ring, TENANT).scale
    )
    assert SubjectLinker(ring_dir, TENANT, "patient").keyring.directory == ring.directory
