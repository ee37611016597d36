"""The ``storage.embed: redacted`` switch: embeddings are computed from redacted text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field
from llama_index.core.schema import TextNode

from guardrail import Guardrail
from guardrail.keys import Keyring
from guardrail.policy import load_policy, parse_policy


class RecordingEmbedding(BaseEmbedding):
    """A deterministic embedding model that remembers the texts it embedded."""

    seen: list[str] = Field(default_factory=list)

    def _embed(self, text: str) -> list[float]:
        self.seen.append(text)
        return [float(len(text) % 7 + 1), 1.0, 0.5]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return [1.0, 1.0, 0.5]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


def _redacted_policy() -> Any:
    text = load_policy("default").source_text + "storage:\n  embed: redacted\n"
    return parse_policy(text.replace("name: default", "name: default-redacted-embeddings"))


def test_redacted_switch_embeds_redacted_text_and_stores_the_original(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    gr = Guardrail(policy=_redacted_policy(), keyring=tmp_path / "keys", tenant="acme")
    model = RecordingEmbedding()
    node = TextNode(text="Call Zebulon Quixote at 617-555-0143 about the results.")
    transformed = gr.embedder(model)([node])
    assert model.seen
    assert all("Zebulon" not in t and "617-555-0143" not in t for t in model.seen)
    index = VectorStoreIndex(list(transformed), storage_context=gr.storage_context(), embed_model=model)
    with gr.release_all(reason="test: the sealed original"):
        [hit] = index.as_retriever(similarity_top_k=1).retrieve("results")
    assert "Zebulon Quixote" in hit.node.get_content()  # the sealed node keeps the original


def test_plaintext_switch_returns_the_model_itself() -> None:
    model = RecordingEmbedding()
    assert Guardrail(policy="default").embedder(model) is model
