"""One release point: nodes read back from the encrypted docstore pass the same hook as the vector
store's; re-encryption never goes through it."""

from __future__ import annotations

from pathlib import Path

from llama_index.core import VectorStoreIndex
from llama_index.core.schema import BaseNode, TextNode

from guardrail import Guardrail
from guardrail.crypto import Sealer
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.llama_index.storage import build_storage_context, reencrypt


def _index(tmp_path: Path) -> tuple[Guardrail, object, VectorStoreIndex]:
    Keyring.create(tmp_path / "keys")
    gr = Guardrail(keyring=tmp_path / "keys", tenant="acme")
    assert gr.keyring is not None
    # the low-level builder: a release point that takes a custom hook (a Guardrail's is closed and fixed)
    storage = build_storage_context(sealer=Sealer(gr.keyring), keyring=gr.keyring, tenant="acme")
    embed = HashingEmbedding(dim=32)
    nodes = [
        TextNode(id_="a", text="Zebulon Quixote chest pain", metadata={"classification": "phi"}),
        TextNode(id_="b", text="visiting hours ten to eight", metadata={"classification": "public"}),
    ]
    index = VectorStoreIndex(nodes, storage_context=storage, embed_model=embed, store_nodes_override=True)
    return gr, storage, index


def test_docstore_reads_pass_the_shared_hook(tmp_path: Path) -> None:
    _, storage, _ = _index(tmp_path)
    seen: list[str] = []

    def hook(node: BaseNode, *, score: float | None) -> BaseNode | None:
        seen.append(node.node_id)
        if node.metadata.get("classification") == "phi":
            return None
        return node.model_copy(update={"text": node.get_content().upper()})

    storage.vector_store.set_release_hook(hook)  # type: ignore[attr-defined]
    assert storage.docstore.get_node("a", raise_error=False) is None  # withheld
    assert storage.docstore.get_node("b").get_content() == "VISITING HOURS TEN TO EIGHT"
    assert sorted(storage.docstore.docs) == ["b"]
    assert "a" in seen
    assert "b" in seen


def test_reencryption_does_not_pass_the_hook(tmp_path: Path) -> None:
    gr, storage, _ = _index(tmp_path)
    storage.vector_store.set_release_hook(lambda node, *, score: None)  # type: ignore[attr-defined]
    assert gr.keyring is not None
    gr.keyring.rotate("acme")
    report = reencrypt(storage, keyring=gr.keyring, tenant="acme")  # type: ignore[arg-type]
    assert report.resealed == report.total
    storage.vector_store.set_release_hook(None)  # type: ignore[attr-defined]
    assert storage.docstore.get_node("a").get_content() == "Zebulon Quixote chest pain"
