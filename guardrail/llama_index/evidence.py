"""Evidence about what the guard kept out of a retrieval before anything was released.

The classification pre-filter restricts the vector query to the classifications a principal could be
released at all, so a support agent's query never even returns PHI: the store releases nothing and the
guard decides nothing about those chunks. To make that minimum-necessary control visible, the guard asks
the store, once more and without releasing anything, which of the ``k`` nearest chunks (tenant only, no
classification filter) the pre-filter left out, and attributes each to the rule that withholds its
classification. Only plaintext labels are read (tenant, classification): no record is opened.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from guardrail.access import Resource, evaluate

__all__ = ["withheld_by_prefilter"]

_PRESENT: dict[int, tuple[int, frozenset[str]]] = {}


def _present(metadata: dict[str, Any]) -> frozenset[str]:
    """The classifications of a SimpleVectorStore's nodes (recomputed when its size changes)."""
    cached = _PRESENT.get(id(metadata))
    if cached is not None and cached[0] == len(metadata):
        return cached[1]
    found = frozenset(
        str(labels.get("classification")) for labels in metadata.values() if isinstance(labels, dict)
    )
    if len(_PRESENT) > 64:
        _PRESENT.clear()
    _PRESENT[id(metadata)] = (len(metadata), found)
    return found


def withheld_by_prefilter(
    inner: Any, query_bundle: Any, guardrail: Any, principal: Any, allowed: list[str] | None, k: int
) -> dict[str, int]:
    """``{rule_id: n}`` for the chunks among the ``k`` nearest that the pre-filter withheld (empty when
    there was no pre-filter, no query embedding, or the store cannot be asked without releasing)."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    from guardrail.llama_index.stores import EncryptedVectorStore

    store = getattr(inner, "_vector_store", None)
    embedding = getattr(query_bundle, "embedding", None)
    if allowed is None or principal is None or not isinstance(store, EncryptedVectorStore) or not embedding:
        return {}
    if store._simple is not None and _present(store._simple.metadata_dict) <= set(allowed):
        return {}  # every classification in the store may be released: nothing can have been withheld
    shield = store._shield
    sent = shield.transform_query(embedding) if shield is not None else embedding
    top_k = max(int(k or 0), int(getattr(inner, "_similarity_top_k", 0) or 0), 1)
    raw = store._inner.query(
        VectorStoreQuery(query_embedding=sent, similarity_top_k=top_k, filters=store._filters(None))
    )
    withheld: Counter[str] = Counter()
    metadata = store._simple.metadata_dict if store._simple is not None else {}
    nodes = {n.node_id: n for n in (raw.nodes or [])}
    for node_id in raw.ids or list(nodes):
        labels = metadata.get(node_id) if metadata else getattr(nodes.get(node_id), "metadata", None)
        classification = (labels or {}).get("classification")
        if not isinstance(classification, str) or classification in allowed:
            continue
        decision = evaluate(
            guardrail.policy, principal, Resource(tenant=guardrail.tenant, classification=classification)
        )
        for rule in decision.rule_ids or ("default-deny",):
            withheld[rule] += 1
    return dict(withheld)
