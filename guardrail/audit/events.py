"""Builders for the compliance members of audit events: purpose with its lawful bases, processors that
received released text, what the classification pre-filter withheld, the profile per released chunk.

Kept apart from the code that writes events (``guardrail.core``, the guard, dataset runs, the CLI) so
that every writer records the same fields the same way, and the reports read one contract:

``purpose``
    ``{code, name, gdpr_basis?, art9_basis?, hipaa_basis?, agreement?}`` (bases as the policy declares
    them: ``6(1)(c)``, ``9(2)(h)``, ``treatment``; see :mod:`guardrail.governance`).
``processors``
    ``[{name, kind, role, region?, transfer?, agreement?}]`` for a retrieval whose chunks go on to an LLM
    or an embedding API; an engine component the policy does not declare is ``{name: "undeclared",
    kind, class, model}`` so the report can flag it.
``retrieval.withheld``
    ``{rule_id: n}``: chunks the pre-filter kept out of the vector query, per deny rule.
``resources[].profile``
    the redaction profile applied to each released chunk.
``canary``
    ``{id, where, entities}`` for ``canary.tripped`` (where a planted value was seen in clear:
    ``rag.release``, ``rag.unguarded``, ``llm.output``, ``rag.response``, ``dataset.export``; the entity
    types of the values seen; never a value) and ``{ids, kind, count}`` for ``canary.make`` (see
    :mod:`guardrail.canaries`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "actor_member",
    "canary_member",
    "counts_by_subject",
    "dataset_purpose",
    "processor_members",
    "purpose_member",
    "retrieval_extras",
    "withheld_by_rule",
]


#: LlamaIndex's offline stand-ins and guardrail's local embedder: they send nothing anywhere
_LOCAL = frozenset({"MockLLM", "MockEmbedding", "HashingEmbedding"})


def purpose_member(policy: Any, purpose: str | None) -> dict[str, Any]:
    """The ``purpose`` member for a request made for ``purpose`` (a purpose name) under ``policy``."""
    if not purpose:
        return {"code": "NONE", "name": "no purpose given"}
    spec = policy.purpose(purpose)
    member: dict[str, Any] = {"code": spec.code, "name": spec.name}
    for key in ("gdpr_basis", "art9_basis", "hipaa_basis", "agreement"):
        value = getattr(spec, key)
        if value is not None:
            member[key] = value
    return member


def actor_member(actor: str | None, *, roles: Sequence[str] = (), kind: str = "user") -> dict[str, Any]:
    """The ``actor`` member for an operator action (erasure, key rotation, retention)."""
    if not actor:
        import getpass
        import os

        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return {"ref": actor, "type": kind, "roles": list(roles)}


def _names_of(component: Any) -> tuple[str, str | None]:
    """A LlamaIndex LLM or embed model's class name and model name (never its keys or endpoint)."""
    cls = type(component).__name__
    model = None
    metadata = getattr(component, "metadata", None)
    for source in (metadata, component):
        for attribute in ("model_name", "model"):
            value = getattr(source, attribute, None) if source is not None else None
            if isinstance(value, str) and value:
                model = value
                break
        if model is not None:
            break
    return cls, model


def processor_members(
    policy: Any, *, llm: Any = None, embed_model: Any = None, named: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """The processors that received (or will receive) released chunks: the declared entries matching the
    query engine's ``llm`` and ``embed_model``, plus those ``named`` explicitly; an engine component that no
    declared processor matches is recorded as ``undeclared`` with its class and model name."""
    declared = list(getattr(policy, "processors", ()) or ())
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(spec: Any) -> None:
        if spec.name in seen:
            return
        seen.add(spec.name)
        member: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "role": spec.role}
        member["received"] = "query" if spec.kind == "embedding" else "chunks"
        for key in ("region", "transfer", "agreement"):
            value = getattr(spec, key)
            if value:
                member[key] = value
        out.append(member)

    for name in named:
        spec = next((p for p in declared if p.matches(name)), None)
        if spec is None:
            out.append({"name": "undeclared", "kind": "llm", "class": str(name)[:80], "received": "chunks"})
        else:
            add(spec)
    for component, kind in ((llm, "llm"), (embed_model, "embedding")):
        if component is None:
            continue
        cls, model = _names_of(component)
        if cls in _LOCAL and not any(p.matches(cls, model) for p in declared):
            continue  # LlamaIndex's offline stand-ins send nothing anywhere
        spec = next((p for p in declared if p.kind == kind and p.matches(cls, model)), None)
        if spec is None:
            spec = next((p for p in declared if p.matches(cls, model)), None)
        if spec is None:
            received = "query" if kind == "embedding" else "chunks"
            member = {"name": "undeclared", "kind": kind, "class": cls[:80], "received": received}
            if model:
                member["model"] = model[:80]
            out.append(member)
        else:
            add(spec)
    return out


def withheld_by_rule(withheld: Mapping[str, int] | None) -> dict[str, int]:
    """``retrieval.withheld``: positive counts per rule id, sorted."""
    if not withheld:
        return {}
    return {rule: int(n) for rule, n in sorted(withheld.items()) if n}


def retrieval_extras(request: Any, *, released: int) -> dict[str, Any]:
    """Top-level members a retrieval event gains from the request: ``processors`` (the embedding service
    received the query; the LLM and named processors receive chunks only when some were released)."""
    processors = [
        p for p in getattr(request, "processors", None) or () if released or p.get("received") == "query"
    ]
    return {"processors": processors} if processors else {}


def dataset_purpose(policy: Any) -> dict[str, Any]:
    """``{"purpose": ...}`` for dataset events when the policy declares ``datasets.purpose``; nothing
    otherwise (a report then leaves the purpose blank rather than inventing one)."""
    name = policy.datasets.purpose
    return {"purpose": purpose_member(policy, name)} if name else {}


def counts_by_subject(chunks: Iterable[tuple[Sequence[str], Sequence[Any]]]) -> dict[str, Any]:
    """``{"by_subject": {ref: {entity: n}}}`` from (subject refs, findings) per chunk: the categories of
    personal data found in each subject's own chunks (an Art. 15(1)(b) answer that does not mix in other
    subjects' documents). Empty when no chunk names a subject."""
    out: dict[str, dict[str, int]] = {}
    for refs, findings in chunks:
        for ref in refs:
            counts = out.setdefault(ref, {})
            for finding in findings:
                entity = getattr(finding, "entity", None)
                if isinstance(entity, str):
                    counts[entity] = counts.get(entity, 0) + 1
    return {"by_subject": {ref: dict(sorted(c.items())) for ref, c in sorted(out.items())}} if out else {}


def canary_member(canary: str, entities: Iterable[str], *, where: str) -> dict[str, Any]:
    """The ``canary`` member of a ``canary.tripped`` event: the canary id, where it was seen, the entity
    types of the planted values seen there (never a value)."""
    return {"id": canary, "where": where, "entities": sorted(set(entities))}
