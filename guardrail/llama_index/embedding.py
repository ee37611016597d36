"""Embedding of redacted text: the policy switch ``storage.embed: redacted``.

Embeddings are not encrypted by the envelope and can be inverted; embedding the redacted text bounds
what an inversion can recover to the redacted text. The node's own text (sealed in the store) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent

__all__ = ["RedactedEmbedding"]


class RedactedEmbedding(TransformComponent):
    """Sets each node's embedding from its redacted text; put it last in ``transformations``.

    Nodes that already carry an embedding are not embedded again by the index.
    """

    _guardrail: Any = PrivateAttr()
    _embed_model: Any = PrivateAttr()

    def __init__(self, guardrail: Any, embed_model: Any) -> None:
        super().__init__()
        self._guardrail = guardrail
        self._embed_model = embed_model

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailRedactedEmbedding"

    def __reduce__(self) -> tuple[Any, ...]:
        # for IngestionPipeline(num_workers=...): the Guardrail by keyring directory, never key material
        from guardrail.llama_index.ingestion import GuardrailSpec, reopen_embedder

        return (reopen_embedder, (GuardrailSpec.of(self._guardrail), self._embed_model))

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
        redacted = [r.text for r in self._guardrail.redact_batch(texts)]
        embeddings = self._embed_model.get_text_embedding_batch(redacted)
        for node, embedding in zip(nodes, embeddings, strict=True):
            node.embedding = embedding
        return nodes
