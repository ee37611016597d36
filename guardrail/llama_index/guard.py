"""Guarded retrieval: annotator, guard, postprocessor and the unguarded-retrieval detector.

``gr.annotator()`` detects personal data on each node at ingestion (batched) and stores the spans
(offsets and types, never values) with the node, plus its labels; the node is then sealed with them.
``gr.guard(retriever_or_query_engine)`` decides, redacts and audits every retrieval at the store's
release point, and fails closed: if detection, decryption, policy evaluation or the audit write fails,
no node is returned.
"""

from __future__ import annotations

import contextvars
import copy as _copy
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, TransformComponent

from guardrail.access import (
    AccessDenied,
    Decision,
    Principal,
    Resource,
    current_principal,
    evaluate,
    possible_classifications,
)
from guardrail.audit.events import processor_members
from guardrail.crypto import DecryptionError
from guardrail.errors import GuardrailError
from guardrail.findings import Finding
from guardrail.keys import KeyringError
from guardrail.llama_index.evidence import withheld_by_prefilter

__all__ = [
    "SPANS_KEY",
    "Annotator",
    "GuardedRetriever",
    "GuardrailPostprocessor",
    "RetrievalBlocked",
    "install_unguarded_detector",
]

#: Node metadata key holding the detected spans of the node's text: [[start, end, entity], ...].
SPANS_KEY = "_gr_spans"
#: ... and of its string metadata values: {key: [[start, end, entity], ...]}.
META_SPANS_KEY = "_gr_meta_spans"
_PRIVATE_KEYS = (SPANS_KEY, META_SPANS_KEY)
# labels the policy reads; kept out of embeddings and LLM context
_LABEL_KEYS = ("tenant", "classification", "purposes", "subjects", "labels")


def _strings(key: str, value: Any) -> list[tuple[str, str]]:
    """The string values of a metadata entry, by path: ``title`` or ``authors[0]``."""
    if isinstance(value, str):
        return [(key, value)] if value else []
    if isinstance(value, list | tuple):
        return [(f"{key}[{i}]", v) for i, v in enumerate(value) if isinstance(v, str) and v]
    return []


class RetrievalBlocked(GuardrailError):
    """A guarded retrieval failed closed (detection, decryption, policy or audit failure): no node
    was returned. The message names the stage, never the content."""


# --------------------------------------------------------------------------- annotation


class Annotator(TransformComponent):
    """Detects personal data on every node (batched) and stores the spans and labels with it."""

    _guardrail: Any = PrivateAttr()

    def __init__(self, guardrail: Any) -> None:
        super().__init__()
        self._guardrail = guardrail

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailAnnotator"

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        gr = self._guardrail
        texts = [n.get_content() for n in nodes]
        meta_items = [
            (i, path, v)
            for i, n in enumerate(nodes)
            for k, value in (n.metadata or {}).items()
            if k not in _PRIVATE_KEYS and k not in _LABEL_KEYS
            for path, v in _strings(k, value)
        ]
        found = gr.detect_batch(texts + [v for _, _, v in meta_items])
        text_found, meta_found = found[: len(texts)], found[len(texts) :]
        phi = gr.policy.access.phi_classification
        default = gr.policy.access.default_classification
        for node, spans in zip(nodes, text_found, strict=True):
            node.metadata[SPANS_KEY] = [[f.start, f.end, f.entity] for f in spans]
            node.metadata[META_SPANS_KEY] = {}
            if "classification" not in node.metadata:
                # conservative default: text in which personal data is detected is treated as PHI
                node.metadata["classification"] = phi if spans else default
            node.metadata.setdefault("tenant", gr.tenant)
            for key in (*_PRIVATE_KEYS, *_LABEL_KEYS):
                for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                    if key not in excluded:
                        excluded.append(key)
        for (i, key, value), found_in_value in zip(meta_items, meta_found, strict=True):
            # values found in the node's text are personal data in its metadata too ("Finch" in a title)
            spans = _with_text_values(value, found_in_value, texts[i], text_found[i])
            if spans:
                nodes[i].metadata[META_SPANS_KEY][key] = [[f.start, f.end, f.entity] for f in spans]
        gr._audit_ingest(nodes, text_found)
        return nodes


def _with_text_values(
    value: str, spans: list[Finding], text: str, text_spans: list[Finding]
) -> list[Finding]:
    from guardrail.detection.engine import _propagate
    from guardrail.detection.resolve import resolve

    if not text_spans:
        return spans
    offset = len(text) + 1
    combined = f"{text}\n{value}"
    extra = [
        Finding(f.start - offset, f.end - offset, f.entity, f.score, f.recognizer)
        for f in _propagate(combined, text_spans)
        if f.start >= offset
    ]
    return resolve([*spans, *extra])


# --------------------------------------------------------------------------- the per-request state


@dataclass
class _Request:
    principal: Principal | None
    decisions: list[tuple[str, Decision, dict[str, int]]] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    scopes: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    # classifications pushed into the vector query (None: no pre-filter was possible)
    prefilter: list[str] | None = None
    # evidence for the audit event (guardrail.audit.events): withheld per rule, processors reached
    withheld: dict[str, int] = field(default_factory=dict)
    processors: list[dict[str, Any]] = field(default_factory=list)


_request: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("guardrail_request", default=None)
# set while a guarded retrieval runs (its own retrieval events are not "unguarded")
_guarded: contextvars.ContextVar[bool] = contextvars.ContextVar("guardrail_guarded", default=False)


class Guard:
    """The policy, redaction and audit logic plugged into the release point."""

    def __init__(self, guardrail: Any) -> None:
        self.gr = guardrail
        self._redactors: dict[str, Any] = {}

    # ------------------------------------------------------------------ release hook

    def hook(self, node: BaseNode, *, score: float | None) -> BaseNode | None:
        request = _request.get()
        if request is None:
            # a release outside a guarded retrieval (a direct retriever call): still decide, as the
            # current principal (none -> deny), and audit it as unguarded
            request = _Request(current_principal())
            released = self._decide(request, node)
            self.gr._audit_retrieval(request, query="", k=1, started=time.perf_counter(), unguarded=True)
            return released
        return self._decide(request, node)

    def erased(self, node_id: str) -> None:
        request = _request.get()
        if request is not None:
            request.erased.append(node_id)

    def _decide(self, request: _Request, node: BaseNode) -> BaseNode | None:
        request.seen.add(node.node_id)
        try:
            resource = Resource.from_metadata(
                node.metadata, default_classification=self.gr.policy.access.default_classification
            )
            request.resources[node.node_id] = resource
            decision = evaluate(self.gr.policy, request.principal, resource)
        except GuardrailError:
            raise
        except Exception as exc:  # noqa: BLE001 - policy evaluation failure fails closed
            raise RetrievalBlocked(f"policy evaluation failed ({type(exc).__name__})") from None
        if not decision.allowed:
            request.decisions.append((node.node_id, decision, {}))
            return None
        released, counts = self._redact(node, decision.redaction, request)
        request.decisions.append((node.node_id, decision, counts))
        return released

    # ------------------------------------------------------------------ redaction

    def _redactor(self, profile: str) -> Any:
        redactor = self._redactors.get(profile)
        if redactor is None:
            redactor = self.gr._profile_redactor(profile)
            self._redactors[profile] = redactor
        return redactor

    def _redact(self, node: BaseNode, profile: str, request: _Request) -> tuple[BaseNode, dict[str, int]]:
        metadata = {k: v for k, v in (node.metadata or {}).items() if k not in _PRIVATE_KEYS}
        if profile == "none":
            return node.model_copy(update={"metadata": metadata}), {}
        text = node.get_content()
        spans = (node.metadata or {}).get(SPANS_KEY)
        try:
            findings = _findings(spans) if spans is not None else self.gr.detect(text)
            meta_spans = (node.metadata or {}).get(META_SPANS_KEY)
        except GuardrailError:
            raise
        except Exception as exc:  # noqa: BLE001 - detection failure fails closed
            raise RetrievalBlocked(f"detection failed ({type(exc).__name__})") from None
        redactor, keep = self._redactor(profile)
        scope = request.scopes.setdefault(profile, self.gr._new_scope())
        result = redactor.redact(text, [f for f in findings if f.entity not in keep], scope=scope)
        counts = Counter(f.entity for f in result.findings)
        for key, value in list(metadata.items()):
            if key == "subjects" and value:
                # data-subject ids are released only as keyed references
                ids = [value] if isinstance(value, str) else list(value)
                metadata[key] = [self.gr._subject_ref(str(v)) for v in ids]
                continue
            if key in _LABEL_KEYS:
                continue
            strings = _strings(key, value)
            if not strings:
                continue
            redacted_values = []
            for path, text_value in strings:
                found = (
                    _findings(meta_spans.get(path, []))
                    if meta_spans is not None
                    else self.gr.detect(text_value)
                )
                found = [f for f in found if f.entity not in keep]
                if found:
                    redacted = redactor.redact(text_value, found, scope=scope)
                    counts.update(f.entity for f in redacted.findings)
                    redacted_values.append(redacted.text)
                else:
                    redacted_values.append(text_value)
            if isinstance(value, str):
                metadata[key] = redacted_values[0]
            else:
                metadata[key] = [redacted_values.pop(0) if isinstance(v, str) and v else v for v in value]
        # a deep copy: Document keeps its text in a shared resource object, and stored nodes are never
        # changed (a plain, unencrypted store hands out its own objects)
        copy = node.model_copy(update={"metadata": metadata}, deep=True)
        copy.set_content(result.text)
        return copy, dict(counts)


def _findings(spans: Sequence[Sequence[Any]]) -> list[Finding]:
    return [Finding(int(s), int(e), str(ent), 1.0, "stored") for s, e, ent in spans]


# --------------------------------------------------------------------------- the guarded retriever


class GuardedRetriever(BaseRetriever):
    """Wraps a retriever: every retrieval is decided, redacted and audited; it fails closed."""

    def __init__(self, inner: BaseRetriever, guardrail: Any, *, principal: Principal | None = None) -> None:
        super().__init__(callback_manager=getattr(inner, "callback_manager", None))
        self._inner = inner
        self._gr = guardrail
        self._principal = principal
        self._processors: list[dict[str, Any]] = []  # who receives what it releases (set by gr.guard)
        self._push_filters()

    def _push_filters(self) -> None:
        """Tenant constraint into the inner retriever's vector query, where it has metadata filters."""
        from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

        if hasattr(self._inner, "_filters"):
            tenant = MetadataFilter(key="tenant", value=self._gr.tenant, operator=FilterOperator.EQ)
            existing = self._inner._filters
            filters = [tenant] if existing is None else [tenant, *existing.filters]
            self._inner._filters = MetadataFilters(filters=filters)

    def _for(self, principal: Principal) -> BaseRetriever:
        """A per-request copy of the inner retriever whose vector query also carries the classifications
        this principal may see at all (the store does not even return the others)."""
        from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

        if not hasattr(self._inner, "_filters"):
            return self._inner
        allowed = possible_classifications(self._gr.policy, principal)
        request = _request.get()
        if request is not None:
            request.prefilter = allowed
        copy = _copy.copy(self._inner)  # a shallow copy per request: no shared state between threads
        existing = self._inner._filters
        constraint = MetadataFilter(key="classification", value=allowed or ["-"], operator=FilterOperator.IN)
        copy._filters = MetadataFilters(filters=[*(existing.filters if existing else []), constraint])
        return copy

    def retrieve(self, str_or_query_bundle: Any) -> list[NodeWithScore]:
        token = _guarded.set(True)
        try:
            return super().retrieve(str_or_query_bundle)
        finally:
            _guarded.reset(token)

    async def aretrieve(self, str_or_query_bundle: Any) -> list[NodeWithScore]:
        return self.retrieve(str_or_query_bundle)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        principal = self._principal or current_principal()
        request = _Request(principal, processors=self._processors)
        started = time.perf_counter()
        if principal is None:
            self._gr._audit_retrieval(
                request, query=query_bundle.query_str, k=0, started=started, denied=True
            )
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        token = _request.set(request)
        try:
            try:
                results = self._for(principal).retrieve(query_bundle)
            except DecryptionError as exc:
                raise RetrievalBlocked(f"a retrieved record could not be opened ({exc.record})") from None
            except KeyringError as exc:  # e.g. its shared state cannot be checked (guardrail.keys_pg)
                raise RetrievalBlocked(f"the keyring is not available: {exc}") from None
            released: list[NodeWithScore] = []
            guard = self._gr._guard
            for hit in results:
                if hit.node.node_id in request.seen:
                    released.append(hit)  # already decided at the store's release point
                    continue
                # a store without a release point (not encrypted): decide here
                node = guard._decide(request, hit.node)
                if node is not None:
                    released.append(NodeWithScore(node=node, score=hit.score))
            request.withheld = withheld_by_prefilter(
                self._inner, query_bundle, self._gr, principal, request.prefilter, len(results)
            )
        finally:
            _request.reset(token)
        # one audit event per retrieval; if it cannot be written, nothing is returned
        self._gr._audit_retrieval(request, query=query_bundle.query_str, k=len(results), started=started)
        return released


class GuardrailPostprocessor(BaseNodePostprocessor):
    """For query engines that cannot be rebuilt: decides, redacts and audits the retrieved nodes."""

    _gr: Any = PrivateAttr()

    def __init__(self, guardrail: Any) -> None:
        super().__init__()
        self._gr = guardrail

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailPostprocessor"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        request = _Request(current_principal())
        started = time.perf_counter()
        if request.principal is None:
            self._gr._audit_retrieval(request, query="", k=len(nodes), started=started, denied=True)
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        out = []
        for hit in nodes:
            node = self._gr._guard._decide(request, hit.node)
            if node is not None:
                out.append(NodeWithScore(node=node, score=hit.score))
        self._gr._audit_retrieval(
            request, query=query_bundle.query_str if query_bundle else "", k=len(nodes), started=started
        )
        return out


def guard_query_engine(engine: Any, guardrail: Any, processors: Sequence[str] = ()) -> Any:
    """The same kind of query engine, with its retriever guarded (and its LLM and embed model recorded
    as the processors that receive what it releases)."""
    if isinstance(engine, RetrieverQueryEngine):
        retriever = GuardedRetriever(engine.retriever, guardrail)
        retriever._processors = processor_members(
            guardrail.policy,
            llm=getattr(engine._response_synthesizer, "_llm", None),
            embed_model=getattr(engine.retriever, "_embed_model", None),
            named=processors,
        )
        return RetrieverQueryEngine(
            retriever=retriever,
            response_synthesizer=engine._response_synthesizer,
            node_postprocessors=engine._node_postprocessors,
            callback_manager=engine.callback_manager,
        )
    raise GuardrailError(
        f"cannot guard a {type(engine).__name__}: pass a retriever or a RetrieverQueryEngine, or add "
        "GuardrailPostprocessor to its node_postprocessors"
    )


# --------------------------------------------------------------------------- unguarded detector


def install_unguarded_detector(guardrail: Any) -> Any:
    """Record retrievals that did not go through a guard as ``rag.unguarded`` audit events.

    LlamaIndex's dispatcher swallows handler exceptions, so this detects; it cannot block.
    """
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent
    from llama_index_instrumentation import get_dispatcher

    class UnguardedRetrievalHandler(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "GuardrailUnguardedRetrievalHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, RetrievalEndEvent) and _request.get() is None and not _guarded.get():
                guardrail._audit_unguarded(len(event.nodes or []))

    handler = UnguardedRetrievalHandler()
    get_dispatcher().add_event_handler(handler)
    return handler


def query_mac(key: bytes, query: str) -> str:
    return hmac.new(key, query.encode(), hashlib.sha256).hexdigest()[:32]
