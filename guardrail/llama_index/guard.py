"""Guarded retrieval: annotator, guard, postprocessor and the unguarded-retrieval detector.

``gr.annotator()`` detects personal data on each node at ingestion (batched) and stores the spans
(offsets and types, never values) with the node, bound to a digest of the text and metadata they were
computed on, plus its labels; the node is then sealed with them.

``gr.guard(retriever_or_query_engine)`` opens a request for the current principal. Encrypted stores made
or opened through a ``Guardrail`` release nodes only inside such a request (closed by default,
:mod:`guardrail.llama_index.release`): the policy decides each node and what leaves is a fresh,
sanitised copy (text and metadata of every JSON type redacted per the principal's profile, relationships
cut to ids, ids that are file paths or not UUIDs replaced by keyed references, templates reset). The guard
owns its output: it returns only the copies released in this request (bound by id and content digest);
any other node (a keyword retriever's, a plain store's, a merged parent, an in-memory node) is decided
on the spot (detection plus policy) or dropped. It fails closed: if detection, decryption, policy
evaluation or the audit write fails, no node is returned.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy as _copy
import hashlib
import hmac
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, NodeRelationship, NodeWithScore, QueryBundle, TransformComponent

from guardrail.access import (
    AccessDenied,
    Decision,
    Principal,
    Resource,
    current_principal,
    evaluate,
    possible_classifications,
)
from guardrail.canaries import watch as canary_watch
from guardrail.crypto import DecryptionError
from guardrail.errors import GuardrailError
from guardrail.findings import Finding
from guardrail.keys import KeyringError
from guardrail.llama_index.evidence import withheld_by_prefilter
from guardrail.llama_index.release import (
    PATH_KEYS,
    SUBJECT_KEYS,
    _request,
    content_digest,
    fresh_copy,
    is_pathlike,
    keyed_ref,
    leaves,
    related,
    released_id,
    text_digest,
)

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
#: ... and of its metadata, by leaf path (values at any depth, numbers, keys): {path: [[s, e, entity]]}.
META_SPANS_KEY = "_gr_meta_spans"
#: digests of the text and the metadata the stored spans were computed on
TEXT_DIGEST_KEY = "_gr_text_sha"
META_DIGEST_KEY = "_gr_meta_sha"
_PRIVATE_KEYS = (SPANS_KEY, META_SPANS_KEY, TEXT_DIGEST_KEY, META_DIGEST_KEY)
# labels the policy reads; kept out of embeddings and LLM context
_LABEL_KEYS = ("tenant", "classification", "purposes", "subjects", "labels")
# relationships LlamaIndex follows with docstore lookups (AutoMerging, prev/next postprocessors)
# what a file reader adds about the file, not about anyone (ignored when classifying an unlabelled node)
_FILE_FACTS = frozenset(
    {"creation_date", "last_modified_date", "last_accessed_date", "file_size", "file_type"}
)
_FOLLOWED = (
    NodeRelationship.PARENT,
    NodeRelationship.CHILD,
    NodeRelationship.NEXT,
    NodeRelationship.PREVIOUS,
)


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
    """Detects personal data on every node (batched) and stores the spans and labels with it.

    A chunk without its own ``classification`` label takes the policy's PHI classification when any
    chunk of its document (within one call, or an earlier call of this annotator) holds personal data,
    or when its document names data subjects; otherwise the default classification.

    It pickles (``IngestionPipeline(num_workers=...)``) as the policy, the keyring *directory*, the
    tenant and the audit-log directory, and reopens them in the worker: never key material.
    """

    # in LlamaIndex's transformation hash (its ingestion-cache key): another policy, another entry
    policy_sha256: str = ""
    tenant: str = ""
    _guardrail: Any = PrivateAttr()
    _personal_docs: set[str] = PrivateAttr(default_factory=set)

    def __init__(self, guardrail: Any) -> None:
        super().__init__(policy_sha256=guardrail.policy.sha256, tenant=guardrail.tenant)
        self._guardrail = guardrail
        self._personal_docs = set()

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailAnnotator"

    def __reduce__(self) -> tuple[Any, ...]:
        from guardrail.llama_index.ingestion import GuardrailSpec, reopen_annotator

        return (reopen_annotator, (GuardrailSpec.of(self._guardrail),))

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        from guardrail.llama_index.ingestion import document_key, personal_documents

        gr = self._guardrail
        phi = gr.policy.access.phi_classification
        default = gr.policy.access.default_classification
        for node in nodes:
            node.metadata.setdefault("tenant", gr.tenant)
        texts = [n.get_content() for n in nodes]
        meta_items = [(i, path, v) for i, n in enumerate(nodes) for path, v in leaves(n.metadata)]
        found = gr.detect_batch(texts + [v for _, _, v in meta_items])
        text_found, meta_found = found[: len(texts)], found[len(texts) :]
        meta_spans: list[dict[str, list[list[Any]]]] = [{} for _ in nodes]
        # the chunks of one document share its metadata: a name found in any of them is personal data in
        # every chunk's metadata ("Finch" in the title of a chunk that does not name the patient)
        by_doc: dict[str, list[int]] = {}
        for i, n in enumerate(nodes):
            by_doc.setdefault(n.ref_doc_id or n.node_id, []).append(i)
        siblings = {i: by_doc[n.ref_doc_id or n.node_id] for i, n in enumerate(nodes)}
        for (i, path, value), found_in_value in zip(meta_items, meta_found, strict=True):
            # values found in the text are personal data in the metadata too ("Finch" in a title)
            spans = list(found_in_value)
            for j in siblings[i]:
                if text_found[j]:
                    spans = _with_text_values(value, spans, texts[j], text_found[j])
            if spans:
                meta_spans[i][path] = [[f.start, f.end, f.entity] for f in spans]
        in_meta = {i: True for i, mspans in enumerate(meta_spans) if mspans}
        # a chunk of a document that holds personal data anywhere is that document's (issue 10, item 4)
        self._personal_docs |= personal_documents(nodes, text_found, in_meta)
        for node, text, spans, mspans in zip(nodes, texts, text_found, meta_spans, strict=True):
            if "classification" not in node.metadata:
                # conservative default: a document in which personal data is detected is treated as PHI
                node.metadata["classification"] = (
                    phi if spans or mspans or document_key(node) in self._personal_docs else default
                )
            node.metadata[SPANS_KEY] = [[f.start, f.end, f.entity] for f in spans]
            node.metadata[META_SPANS_KEY] = mspans
            node.metadata[TEXT_DIGEST_KEY] = text_digest(text)
            # each metadata leaf bound to the value its spans were computed on (a later change re-detects)
            node.metadata[META_DIGEST_KEY] = {path: _leaf_digest(v) for path, v in leaves(node.metadata)}
            for key in (*_PRIVATE_KEYS, *_LABEL_KEYS):
                for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                    if key not in excluded:
                        excluded.append(key)
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
    # the guard deciding this request, and what it released: released id -> (content digest, copy)
    guard: Any = None
    released: dict[str, tuple[str, BaseNode]] = field(default_factory=dict)
    # may the principal see a related node (by stored id)
    related: dict[str, bool] = field(default_factory=dict)
    # nodes decided on the spot: text findings by (id, text digest), and texts per document (a name
    # found in one chunk is personal data in the metadata every chunk of the document carries)
    text_cache: dict[tuple[str, str], list[Finding]] = field(default_factory=dict)
    doc_texts: dict[str, list[tuple[str, list[Finding]]]] = field(default_factory=dict)


# set while a guarded retrieval runs (its own retrieval events are not "unguarded")
_guarded: contextvars.ContextVar[bool] = contextvars.ContextVar("guardrail_guarded", default=False)


class Guard:
    """The policy, redaction and audit logic the release points call inside a guard's request."""

    def __init__(self, guardrail: Any) -> None:
        self.gr = guardrail
        self._redactors: dict[str, Any] = {}

    def request(
        self, principal: Principal | None, processors: list[dict[str, Any]] | None = None
    ) -> _Request:
        return _Request(principal, processors=processors if processors is not None else [], guard=self)

    # ------------------------------------------------------------------ release

    def release(self, request: _Request, node: BaseNode, *, point: Any = None) -> BaseNode | None:
        """Called by a store's release point inside this guard's request."""
        return self._decide(request, node, point=point)

    def _rid(self, node_id: str) -> str:
        keyring = self.gr.keyring
        if keyring is None:
            return node_id
        return released_id(keyring, self.gr.tenant, node_id)

    def _decide(self, request: _Request, node: BaseNode, *, point: Any = None) -> BaseNode | None:
        request.seen.add(node.node_id)
        rid = self._rid(node.node_id)
        try:
            decision, resource = self._decision(request, node)
        except GuardrailError:
            raise
        except Exception as exc:  # noqa: BLE001 - policy evaluation failure fails closed
            raise RetrievalBlocked(f"policy evaluation failed ({type(exc).__name__})") from None
        request.resources[rid] = resource
        if not decision.allowed:
            request.decisions.append((rid, decision, {}))
            return None
        released, counts = self._redact(node, decision.redaction, request, rid=rid, point=point)
        request.decisions.append((rid, decision, counts))
        request.released[released.node_id] = (content_digest(released), released)
        canary_watch.observe_release(self.gr, [released], principal=request.principal)
        return released

    def _decision(self, request: _Request, node: BaseNode | _Labels) -> tuple[Decision, Resource]:
        metadata = dict(node.metadata or {})
        policy = self.gr.policy
        if not metadata.get("classification") and isinstance(node, BaseNode):
            # an unlabelled node (a plain store, an in-memory node): personal data in it makes it PHI
            # (file-system dates and sizes a reader adds are not about anyone)
            found = self._meta_findings(metadata, node.get_content(), request, node)
            personal = self._text_findings(node, node.get_content(), request) or any(
                v for path, v in found.items() if path.split(".")[0].split("[")[0] not in _FILE_FACTS
            )
            metadata["classification"] = (
                policy.access.phi_classification if personal else policy.access.default_classification
            )
        resource = Resource.from_metadata(
            metadata, default_classification=policy.access.default_classification
        )
        tenant = metadata.get("tenant")
        if tenant is not None and str(tenant) != self.gr.tenant:
            return (
                Decision(
                    "deny",
                    ("tenant-isolation",),
                    "none",
                    policy.name,
                    policy.version,
                    policy.sha256,
                    "the node belongs to another tenant",
                ),
                resource,
            )
        return evaluate(policy, request.principal, resource), resource

    # ------------------------------------------------------------------ detection (stored or live)

    def _text_findings(self, node: BaseNode, text: str, request: _Request | None = None) -> list[Finding]:
        metadata = node.metadata or {}
        spans = metadata.get(SPANS_KEY)
        digest = text_digest(text)
        try:
            if spans is not None and metadata.get(TEXT_DIGEST_KEY) == digest:
                return _findings(spans)
            # no spans, or spans computed on another text (annotated before a splitter, changed later):
            # detect again rather than splice at the wrong offsets
            if request is not None:
                cached = request.text_cache.get((node.node_id, digest))
                if cached is not None:
                    return cached
            found = list(self.gr.detect(text))
            if request is not None:
                request.text_cache[(node.node_id, digest)] = found
            return found
        except GuardrailError:
            raise
        except Exception as exc:  # noqa: BLE001 - detection failure fails closed
            raise RetrievalBlocked(f"detection failed ({type(exc).__name__})") from None

    def _meta_findings(
        self,
        metadata: dict[str, Any],
        text: str,
        request: _Request | None = None,
        node: BaseNode | None = None,
    ) -> dict[str, list[Finding]]:
        """Findings per metadata leaf: the stored ones for leaves whose value is the one they were computed
        on, live detection for the others (added by an extractor after the annotator, changed later)."""
        items = leaves(metadata)
        stored = metadata.get(META_SPANS_KEY)
        digests = metadata.get(META_DIGEST_KEY)
        out: dict[str, list[Finding]] = {}
        missing: list[tuple[str, str]] = []
        for path, value in items:
            if (
                isinstance(stored, dict)
                and isinstance(digests, dict)
                and digests.get(path) == _leaf_digest(value)
            ):
                out[path] = _findings(stored.get(path, []))
            else:
                missing.append((path, value))
        if not missing:
            return out
        try:
            found = self.gr.detect_batch([v for _, v in missing])
            sources = [(text, self._text_findings_plain(metadata, text))]
            if request is not None and node is not None:
                sources = [
                    (text, self._text_findings(node, text, request)),
                    *request.doc_texts.get(node.ref_doc_id or "", []),
                ]
            for (path, value), f in zip(missing, found, strict=True):
                spans = list(f)
                for source, source_found in sources:
                    if source_found:
                        spans = _with_text_values(value, spans, source, source_found)
                out[path] = spans
        except GuardrailError:
            raise
        except Exception as exc:  # noqa: BLE001 - detection failure fails closed
            raise RetrievalBlocked(f"detection failed ({type(exc).__name__})") from None
        return out

    def _text_findings_plain(self, metadata: dict[str, Any], text: str) -> list[Finding]:
        spans = metadata.get(SPANS_KEY)
        if spans is not None and metadata.get(TEXT_DIGEST_KEY) == text_digest(text):
            return _findings(spans)
        return []

    # ------------------------------------------------------------------ redaction

    def _redactor(self, profile: str) -> Any:
        redactor = self._redactors.get(profile)
        if redactor is None:
            redactor = self.gr._profile_redactor(profile)
            self._redactors[profile] = redactor
        return redactor

    def _redact(
        self,
        node: BaseNode,
        profile: str,
        request: _Request,
        *,
        rid: str | None = None,
        point: Any = None,
    ) -> tuple[BaseNode, dict[str, int]]:
        """The released copy of ``node`` for ``profile``: a fresh object, whole-node sanitised."""
        text = node.get_content()
        metadata = node.metadata or {}
        counts: Counter[str] = Counter()
        if profile == "none":
            new_text = text
            by_path: dict[str, list[Finding]] = {}
            redactor, scope = None, None
            keep: frozenset[str] = frozenset()
        else:
            findings = self._text_findings(node, text, request)
            redactor, keep = self._redactor(profile)
            scope = request.scopes.setdefault(profile, self.gr._new_scope())
            result = redactor.redact(text, [f for f in findings if f.entity not in keep], scope=scope)
            counts.update(f.entity for f in result.findings)
            new_text = result.text
            by_path = self._meta_findings(metadata, text, request, node)
        new_metadata = self._metadata(metadata, by_path, redactor, keep, scope, counts)
        relationships = self._relationships(node, request, point)
        copy = fresh_copy(
            node,
            node_id=rid if rid is not None else self._rid(node.node_id),
            text=new_text,
            metadata=new_metadata,
            relationships=relationships,
        )
        return copy, dict(counts)

    def _metadata(
        self,
        metadata: dict[str, Any],
        by_path: dict[str, list[Finding]],
        redactor: Any,
        keep: frozenset[str],
        scope: Any,
        counts: Counter[str],
    ) -> dict[str, Any]:
        gr = self.gr

        def redact(text: str, path: str, prefix: int = 0) -> str | None:
            if redactor is None:
                return None
            found = [
                Finding(f.start - prefix, f.end - prefix, f.entity, f.score, f.recognizer)
                for f in by_path.get(path, [])
                if f.entity not in keep and f.end > prefix
            ]
            found = [f if f.start >= 0 else Finding(0, f.end, f.entity, f.score, f.recognizer) for f in found]
            if not found:
                return None
            result = redactor.redact(text, found, scope=scope)
            counts.update(f.entity for f in result.findings)
            return str(result.text)

        def ref(value: str) -> str:
            keyring = gr.keyring
            return keyed_ref(keyring, gr.tenant, value) if keyring is not None else "ref-withheld"

        def clean(value: Any, path: str, key: str) -> Any:
            if value is None or isinstance(value, bool):
                return value
            if isinstance(value, str):
                if is_pathlike(value):
                    return ref(value)
                redacted = redact(value, path)
                return value if redacted is None else redacted
            if isinstance(value, int | float):
                shown = str(value)
                redacted = redact(shown, path, prefix=len(key) + 2)
                return value if redacted is None else redacted
            if isinstance(value, dict):
                out: dict[str, Any] = {}
                for k, v in value.items():
                    ks = str(k)
                    new_key = redact(ks, f"{path}.{ks}#key") or ks
                    out[_unique(out, new_key)] = clean(v, f"{path}.{ks}", ks)
                return out
            if isinstance(value, list | tuple | set):
                return [clean(v, f"{path}[{i}]", key) for i, v in enumerate(value)]
            shown = str(value)
            redacted = redact(shown, path)
            return shown if redacted is None else redacted

        out: dict[str, Any] = {}
        for k, value in metadata.items():
            key = str(k)
            if key.startswith("_gr_"):
                continue
            if key in SUBJECT_KEYS:
                if value:
                    ids = [value] if isinstance(value, str) else list(value)
                    out[key] = [gr._subject_ref(str(v)) for v in ids]  # keyed references only
                continue
            if key in ("tenant", "classification", "purposes"):
                out[key] = value
                continue
            new_key = _unique(out, redact(key, f"{key}#key") or key)
            if key in PATH_KEYS:
                if isinstance(value, str):
                    out[new_key] = ref(value)
                elif isinstance(value, list | tuple):
                    out[new_key] = [ref(str(v)) for v in value]
                else:
                    out[new_key] = ref(str(value))
                continue
            out[new_key] = clean(value, key, key)
        return out

    def _relationships(self, node: BaseNode, request: _Request, point: Any) -> dict[NodeRelationship, Any]:
        """Relationships cut to ids (no metadata, no hash); the ones LlamaIndex follows (parent, child,
        next, previous) only to nodes this principal may see."""
        out: dict[NodeRelationship, Any] = {}
        for kind, info in (node.relationships or {}).items():
            if isinstance(info, list):
                kept = [
                    related(i, self._rid(i.node_id))
                    for i in info
                    if kind not in _FOLLOWED or self._may_see(request, point, i.node_id)
                ]
                if kept:
                    out[kind] = kept
            elif info is not None and (kind not in _FOLLOWED or self._may_see(request, point, info.node_id)):
                out[kind] = related(info, self._rid(info.node_id))
        return out

    def _may_see(self, request: _Request, point: Any, node_id: str) -> bool:
        peek = getattr(point, "peek", None)
        if peek is None:
            return True  # nothing to look up (and nothing a lookup could fetch without a decision)
        known = request.related.get(node_id)
        if known is not None:
            return known
        try:
            metadata = peek(node_id)
        except DecryptionError:
            metadata = {"classification": "special_category"}  # unreadable: treat as not visible
        if metadata is None:
            visible = True  # not in the docstore: a lookup finds nothing
        else:
            try:
                visible = self._decision(request, _Labels(metadata))[0].allowed
            except GuardrailError:
                visible = False
        request.related[node_id] = visible
        return visible


class _Labels:
    """Just enough of a node for a decision on a related node's labels (never detection)."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.metadata = dict(metadata)
        self.metadata.setdefault("classification", "special_category")  # unlabelled: not followed

    def get_content(self) -> str:
        return ""


def _leaf_digest(value: str) -> str:
    return text_digest(value)[:12]


def _unique(existing: dict[str, Any], key: str) -> str:
    if key not in existing:
        return key
    n = 2
    while f"{key}~{n}" in existing:
        n += 1
    return f"{key}~{n}"


def _findings(spans: Sequence[Sequence[Any]]) -> list[Finding]:
    return [Finding(int(s), int(e), str(ent), 1.0, "stored") for s, e, ent in spans]


# --------------------------------------------------------------------------- the guarded retriever


def _own(guard: Guard, request: _Request, results: Sequence[NodeWithScore]) -> list[NodeWithScore]:
    """What the guard returns: the copies released in this request (matched by id and content digest),
    and any other node decided on the spot (or dropped). One entry per released id."""
    matched: list[BaseNode | None] = []
    for hit in results:
        entry = request.released.get(hit.node.node_id)
        matched.append(entry[1] if entry is not None and entry[0] == content_digest(hit.node) else None)
    for hit, known in zip(results, matched, strict=True):
        if known is None:  # decided on the spot: detect its text first (its document's names, below)
            text = hit.node.get_content()
            found = guard._text_findings(hit.node, text, request)
            request.doc_texts.setdefault(hit.node.ref_doc_id or "", []).append((text, found))
    out: list[NodeWithScore] = []
    ids: set[str] = set()
    for hit, known in zip(results, matched, strict=True):
        released = known if known is not None else guard._decide(request, hit.node)
        if released is None or released.node_id in ids:
            continue
        ids.add(released.node_id)
        out.append(NodeWithScore(node=released, score=hit.score))
    return out


def _constrained(filters: Any, allowed: list[str]) -> Any:
    """The user's filters as written, ANDed with the classification constraint, on new objects."""
    from llama_index.core.vector_stores.types import (
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )

    constraint = MetadataFilter(key="classification", value=allowed or ["-"], operator=FilterOperator.IN)
    if filters is None or not filters.filters:
        return MetadataFilters(filters=[constraint])
    flat = all(isinstance(f, MetadataFilter) for f in filters.filters)
    if flat and (filters.condition in (None, FilterCondition.AND) or len(filters.filters) == 1):
        return MetadataFilters(filters=[*filters.filters, constraint], condition=FilterCondition.AND)
    return MetadataFilters(filters=[filters, constraint], condition=FilterCondition.AND)


def _prefiltered(retriever: Any, allowed: list[str], depth: int = 0) -> tuple[Any, bool]:
    """A per-request copy of ``retriever`` (and of the retrievers it composes) whose queries to encrypted
    vector stores carry the classifications the principal may see at all. The original is never changed."""
    from llama_index.core.indices.vector_store.retrievers.retriever import VectorIndexRetriever

    from guardrail.llama_index.stores import EncryptedVectorStore

    if depth > 5:
        return retriever, False
    if isinstance(retriever, VectorIndexRetriever):
        if not isinstance(getattr(retriever, "_vector_store", None), EncryptedVectorStore):
            return retriever, False
        copy = _copy.copy(retriever)  # a shallow copy per request: no shared state between threads
        copy._filters = _constrained(retriever._filters, allowed)
        return copy, True
    changed = False
    copy = _copy.copy(retriever)
    inner_list = getattr(retriever, "_retrievers", None)
    if isinstance(inner_list, list):
        parts = [_prefiltered(r, allowed, depth + 1) for r in inner_list]
        if any(c for _, c in parts):
            copy._retrievers = [r for r, _ in parts]
            changed = True
    vector = getattr(retriever, "_vector_retriever", None)
    if vector is not None:
        new, c = _prefiltered(vector, allowed, depth + 1)
        if c:
            copy._vector_retriever = new
            changed = True
    table = getattr(retriever, "_retriever_dict", None)
    if isinstance(table, dict):
        parts_d = {k: _prefiltered(r, allowed, depth + 1) for k, r in table.items()}
        if any(c for _, c in parts_d.values()):
            copy._retriever_dict = {k: r for k, (r, _) in parts_d.items()}
            changed = True
    return (copy, True) if changed else (retriever, False)


def _llms_gated(retriever: Any, guardrail: Any, depth: int = 0) -> Any:
    """``retriever`` with the LLMs it calls itself (a ``QueryFusionRetriever`` writing queries, a
    ``RouterRetriever``'s selector, a ``RecursiveRetriever``'s query engines) behind the response
    guard: what they write is printed (``verbose``), traced and sent on as queries. A per-request copy
    where anything changes; the original is kept."""
    from llama_index.core.llms import LLM

    from guardrail.llama_index.engines import _gate
    from guardrail.llama_index.responses import GatedLLM

    if depth > 5:
        return retriever
    copy: Any = None

    def mutable() -> Any:
        nonlocal copy
        if copy is None:
            copy = _copy.copy(retriever)
        return copy

    llm = getattr(retriever, "_llm", None)
    if isinstance(llm, LLM) and not isinstance(llm, GatedLLM):
        mutable()._llm = GatedLLM(llm, _gate(guardrail))
    for name in ("_selector", "_query_transform"):  # a RouterRetriever's, a TransformRetriever's (HyDE)
        part: Any = getattr(retriever, name, None)
        inner_llm = getattr(part, "_llm", None)
        if isinstance(inner_llm, LLM) and not isinstance(inner_llm, GatedLLM):
            gated_part: Any = _copy.copy(part)
            gated_part._llm = GatedLLM(inner_llm, _gate(guardrail))
            setattr(mutable(), name, gated_part)
    inner_list = getattr(retriever, "_retrievers", None)
    if isinstance(inner_list, list):
        parts = [_llms_gated(r, guardrail, depth + 1) for r in inner_list]
        if any(new is not old for new, old in zip(parts, inner_list, strict=True)):
            mutable()._retrievers = parts
    table = getattr(retriever, "_retriever_dict", None)
    if isinstance(table, dict):
        gated = {k: _llms_gated(r, guardrail, depth + 1) for k, r in table.items()}
        if any(gated[k] is not r for k, r in table.items()):
            mutable()._retriever_dict = gated
    engines = getattr(retriever, "_query_engine_dict", None)
    if isinstance(engines, dict) and engines:
        # a RecursiveRetriever's query engines answer with an LLM (printed when verbose, returned as a
        # node): each one is guarded like gr.guard(engine); one guardrail cannot guard is refused
        from guardrail.llama_index.engines import guard_target

        mutable()._query_engine_dict = {k: guard_target(e, guardrail) for k, e in engines.items()}
    return copy if copy is not None else retriever


class GuardedRetriever(BaseRetriever):
    """Wraps a retriever: every retrieval is decided, redacted and audited; it fails closed.

    The wrapped retriever is never modified (filters go onto a per-request copy)."""

    def __init__(self, inner: BaseRetriever, guardrail: Any, *, principal: Principal | None = None) -> None:
        super().__init__(callback_manager=getattr(inner, "callback_manager", None))
        self._inner = inner
        self._gr = guardrail
        self._principal = principal
        self._processors: list[dict[str, Any]] = []  # who receives what it releases (set by gr.guard)

    def _for(self, principal: Principal, request: _Request) -> BaseRetriever:
        allowed = possible_classifications(self._gr.policy, principal)
        target, changed = _prefiltered(self._inner, allowed)
        if changed:
            request.prefilter = allowed
        return _llms_gated(target, self._gr)  # type: ignore[no-any-return]

    def retrieve(self, str_or_query_bundle: Any) -> list[NodeWithScore]:
        from guardrail.llama_index.tracing import tracing_request

        token = _guarded.set(True)
        try:
            # its events (and the inner retriever's) reach tracing handlers as this principal may see them
            with tracing_request(self._principal or current_principal()):
                return super().retrieve(str_or_query_bundle)
        finally:
            _guarded.reset(token)

    async def aretrieve(self, str_or_query_bundle: Any) -> list[NodeWithScore]:
        token = _guarded.set(True)
        try:
            return await super().aretrieve(str_or_query_bundle)
        finally:
            _guarded.reset(token)

    def _begin(self, query_bundle: QueryBundle) -> tuple[_Request, float]:
        principal = self._principal or current_principal()
        request = self._gr._guard.request(principal, self._processors)
        started = time.perf_counter()
        if principal is None:
            self._gr._audit_retrieval(
                request, query=query_bundle.query_str, k=0, started=started, denied=True
            )
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        return request, started

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        outer = _request.get()
        if outer is not None:  # inside another guard's request (a guarded retriever composed): join it
            return _own(outer.guard, outer, self._inner.retrieve(query_bundle))
        request, started = self._begin(query_bundle)
        token = _request.set(request)
        try:
            try:
                target = self._for(request.principal, request)  # type: ignore[arg-type]
                results = target.retrieve(self._query_guarded(request, query_bundle))
            except DecryptionError as exc:
                raise RetrievalBlocked(f"a retrieved record could not be opened ({exc.record})") from None
            except KeyringError as exc:  # e.g. its shared state cannot be checked (guardrail.keys_pg)
                raise RetrievalBlocked(f"the keyring is not available: {exc}") from None
            released = _own(self._gr._guard, request, results)
            request.withheld = self._withheld(query_bundle, request, len(results))
        finally:
            _request.reset(token)
        # one audit event per retrieval; if it cannot be written, nothing is returned
        self._gr._audit_retrieval(request, query=query_bundle.query_str, k=len(results), started=started)
        _note_released(request.principal, released)
        return released

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Like ``_retrieve``, with the inner retriever's async path (an async-only store client works)
        and the blocking work (decisions, redaction, audit write) in worker threads."""
        outer = _request.get()
        if outer is not None:
            results = await self._inner.aretrieve(query_bundle)
            return await asyncio.to_thread(_own, outer.guard, outer, results)
        request, started = await asyncio.to_thread(self._begin, query_bundle)
        token = _request.set(request)
        try:
            try:
                target = self._for(request.principal, request)  # type: ignore[arg-type]
                bundle = await asyncio.to_thread(
                    contextvars.copy_context().run, self._query_guarded, request, query_bundle
                )
                results = await target.aretrieve(bundle)
            except DecryptionError as exc:
                raise RetrievalBlocked(f"a retrieved record could not be opened ({exc.record})") from None
            except KeyringError as exc:  # e.g. its shared state cannot be checked (guardrail.keys_pg)
                raise RetrievalBlocked(f"the keyring is not available: {exc}") from None
            released = await asyncio.to_thread(_own, self._gr._guard, request, results)
            request.withheld = await asyncio.to_thread(self._withheld, query_bundle, request, len(results))
        finally:
            _request.reset(token)
        await asyncio.to_thread(
            self._gr._audit_retrieval, request, query=query_bundle.query_str, k=len(results), started=started
        )
        _note_released(request.principal, released)
        return released

    def _query_guarded(self, request: _Request, query_bundle: QueryBundle) -> QueryBundle:
        """The question as the embedding model may see it: the policy's query guard (``responses.query:
        redact`` for the principal's profile) applies to a bare guarded retriever too. Inside a guarded
        engine the engine has already guarded it."""
        from guardrail.access import acting_as
        from guardrail.llama_index.engines import _gate
        from guardrail.llama_index.responses import current_answer

        if current_answer() is not None or request.principal is None:
            return query_bundle
        gate = _gate(self._gr)
        with acting_as(request.principal):
            answer, _ = gate.begin(query_bundle.query_str)  # not finished: no answer is written here
        if answer.query_mode != "redact" or answer.profile == "none":
            return query_bundle
        return gate.guard_bundle(answer, query_bundle)

    def _withheld(self, query_bundle: QueryBundle, request: _Request, k: int) -> dict[str, int]:
        try:
            return withheld_by_prefilter(
                self._inner, query_bundle, self._gr, request.principal, request.prefilter, k
            )
        except Exception:  # noqa: BLE001 - evidence only (an async-only client cannot be asked in sync)
            return {}


class GuardrailPostprocessor(BaseNodePostprocessor):
    """For query engines over plain (unencrypted) stores that cannot be rebuilt: decides, redacts and
    audits the retrieved nodes on the spot. An encrypted store made through a Guardrail refuses such an
    engine's retrieval before this runs: wrap the engine with ``gr.guard(engine)`` instead."""

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
        request = self._gr._guard.request(current_principal())
        started = time.perf_counter()
        if request.principal is None:
            self._gr._audit_retrieval(request, query="", k=len(nodes), started=started, denied=True)
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        token = _request.set(request)
        try:
            out = _own(self._gr._guard, request, nodes)
        finally:
            _request.reset(token)
        self._gr._audit_retrieval(
            request, query=query_bundle.query_str if query_bundle else "", k=len(nodes), started=started
        )
        _note_released(request.principal, out)
        return out


def _note_released(principal: Principal | None, nodes: Sequence[NodeWithScore]) -> None:
    """What was released may appear in this principal's traces (``guardrail.llama_index.tracing``)."""
    from guardrail.llama_index.responses import current_answer
    from guardrail.llama_index.tracing import note_released

    answer = current_answer()
    if answer is not None:  # the answer's LLM may be sent these copies as they are
        answer.note_guarded(nodes)
    note_released(principal, nodes)


# --------------------------------------------------------------------------- unguarded detector


def _postprocessor_downstream(limit: int = 40) -> bool:
    """Whether the retrieval being reported runs inside a query engine whose node postprocessors include
    a GuardrailPostprocessor (it decides the nodes before anything else sees them)."""
    frame = sys._getframe(1)
    for _ in range(limit):
        if frame is None:
            return False
        owner = frame.f_locals.get("self")
        posts = getattr(owner, "_node_postprocessors", None)
        if isinstance(posts, list) and any(isinstance(p, GuardrailPostprocessor) for p in posts):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def install_unguarded_detector(guardrail: Any) -> Any:
    """Record retrievals that did not go through a guard as ``rag.unguarded`` audit events.

    LlamaIndex's dispatcher swallows handler exceptions, so this detects; it cannot block (encrypted
    stores made through a Guardrail block by themselves: they are closed by default).
    """
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent
    from llama_index_instrumentation import get_dispatcher

    class UnguardedRetrievalHandler(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "GuardrailUnguardedRetrievalHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            if (
                isinstance(event, RetrievalEndEvent)
                and _request.get() is None
                and not _guarded.get()
                and not _postprocessor_downstream()
            ):
                guardrail._audit_unguarded(len(event.nodes or []))
                canary_watch.observe_unguarded(guardrail, event.nodes or [])

    handler = UnguardedRetrievalHandler()
    get_dispatcher().add_event_handler(handler)
    return handler


def query_mac(key: bytes, query: str) -> str:
    return hmac.new(key, query.encode(), hashlib.sha256).hexdigest()[:32]
