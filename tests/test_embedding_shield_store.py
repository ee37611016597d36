"""The embedding shield wired into the encrypted store: the database holds only transformed vectors,
results are re-ranked exactly from the sealed vectors, and they match an unshielded store's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode

from guardrail import Guardrail
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.policy import load_policy, parse_policy

TOPICS = ["cardiology", "oncology", "billing", "pharmacy", "radiology", "nutrition", "visiting", "surgery"]


def _nodes(embed: HashingEmbedding) -> list[TextNode]:
    rng = np.random.default_rng(7)
    nodes = []
    for i in range(120):
        words = " ".join(rng.choice(TOPICS, size=6))
        text = f"note {i} about {words}"
        nodes.append(TextNode(id_=f"n{i:03d}", text=text, embedding=embed.get_text_embedding(text)))
    return nodes


def _policy(shield: bool) -> object:
    text = load_policy("default").source_text.replace("name: default", "name: shield-test")
    if shield:
        text += "storage:\n  embedding_shield: true\n  shield_strength: 0.5\n  overfetch: 4\n"
    return parse_policy(text)


def test_shielded_store_returns_the_exact_ranking(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keys")
    embed = HashingEmbedding(dim=64)
    results = {}
    stores = {}
    for shield in (False, True):
        gr = Guardrail(policy=_policy(shield), keyring=tmp_path / "keys", tenant="acme")
        storage = gr.storage_context()
        index = VectorStoreIndex(_nodes(embed), storage_context=storage, embed_model=embed)
        with gr.release_all(reason="test: ranking of the store itself"):
            hits = index.as_retriever(similarity_top_k=5).retrieve("cardiology surgery pharmacy")
        results[shield] = [(h.node.node_id, round(h.score or 0.0, 6)) for h in hits]
        stores[shield] = storage.vector_store.inner.data.embedding_dict
        assert all(h.node.embedding is None for h in hits)  # the exact vector stays inside
        assert all(h.node.get_content().startswith("note ") for h in hits)
    # same scores in the same order; ids may differ only among exact ties
    assert [score for _, score in results[True]] == [score for _, score in results[False]]
    for score in {sc for _, sc in results[False]}:
        tied_plain = {i for i, sc in results[False] if sc == score}
        tied_shielded = {i for i, sc in results[True] if sc == score}
        assert len(tied_plain) == len(tied_shielded)
        if score > results[False][-1][1]:
            assert tied_plain == tied_shielded
    plain, shielded = stores[False], stores[True]
    for node_id in plain:
        assert not np.allclose(plain[node_id], shielded[node_id])  # the database sees transformed vectors
