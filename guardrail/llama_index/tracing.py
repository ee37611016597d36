"""Trace-safe LlamaIndex: tracing handlers see only what the principal may see; logs print no chunk text.

LlamaIndex hands every instrumentation event (``RetrievalStartEvent`` with the raw query,
``RetrievalEndEvent`` with the retrieved nodes, ``SynthesizeEndEvent``, ``QueryEndEvent``, LLM prompts
and completions ...), every span's arguments and result, and every legacy callback payload
(``LlamaDebugHandler``) to the handlers attached to it: Arize Phoenix, Langfuse and the like would record
personal data. ``gr.trace(handler)`` attaches a handler behind a sanitiser instead:

* strings (queries, prompts, completions, chat messages, templates) are redacted with the profile the
  acting principal gets for the policy's PHI classification (a clinician treating: as written; a
  researcher: Safe Harbor redaction; a principal denied PHI, or no principal at all: every detected
  identifier replaced); if detection fails, the string is withheld;
* a node appears only as the copy a guard released to this principal (matched by node id and a digest
  of its text, with the guard's sanitised metadata and relationships); any other node (the inner
  retriever's raw hits over a plain store, a docstore node, a node of an unguarded pipeline) is replaced
  by a stub with a keyed id and no text;
* embeddings are dropped (they can be inverted), and objects the sanitiser does not know are replaced
  by their type name.

The principal is the one of the current request: :func:`tracing_request` (set by the guards), else the
one of ``gr.acting_as(...)``. :func:`note_released` is how a guard registers what it released.

:func:`protect_logs` (installed by every ``Guardrail``) rewrites the records of LlamaIndex's own loggers
(``llama_index.*``) as they are created, whichever handler prints them: ``%``-style arguments are
withheld, and a preformatted message keeps only its short static prefix (``> Adding chunk:``) --
LlamaIndex formats chunk text, prompts, chat history and file paths into its DEBUG and INFO lines.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import hmac
import inspect
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from enum import Enum
from typing import Any

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
from pydantic import BaseModel

from guardrail.access import Principal, Resource, current_principal, evaluate
from guardrail.logs import WITHHELD, LlamaIndexLogFilter, protect_logs

__all__ = [
    "WITHHELD",
    "LlamaIndexLogFilter",
    "Sanitiser",
    "TraceRequest",
    "current_request",
    "note_released",
    "protect_logs",
    "trace",
    "tracing_request",
]

_MAX_DEPTH = 8
_PROCESS_KEY = secrets.token_bytes(32)
_EVENT_KEEP = frozenset({"id_", "span_id", "timestamp"})


# --------------------------------------------------------------------------- the request


@dataclasses.dataclass(frozen=True)
class TraceRequest:
    """The principal a guarded request runs for (``None``: nobody, so traces get the strictest view)."""

    principal: Principal | None


_request: ContextVar[TraceRequest | None] = ContextVar("guardrail_trace_request", default=None)


def current_request() -> TraceRequest | None:
    """The guarded request running in this thread or task, if any."""
    return _request.get()


@contextlib.contextmanager
def tracing_request(principal: Principal | None) -> Iterator[TraceRequest]:
    """Guards wrap a request in this: events it emits are sanitised for ``principal``."""
    request = TraceRequest(principal)
    token = _request.set(request)
    try:
        yield request
    finally:
        _request.reset(token)


def _principal() -> Principal | None:
    request = _request.get()
    return request.principal if request is not None else current_principal()


def _principal_key(principal: Principal | None) -> tuple[str, tuple[str, ...], str] | None:
    if principal is None:
        return None
    return (principal.id, tuple(principal.roles), principal.purpose)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class _Released:
    """What guards released, per principal, by (node id, text digest): the last few thousand nodes."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._nodes: OrderedDict[tuple[Any, str, str], BaseNode] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, principal: Principal | None, node: BaseNode) -> None:
        key = (_principal_key(principal), node.node_id, _digest(node.get_content()))
        with self._lock:
            self._nodes[key] = node
            self._nodes.move_to_end(key)
            while len(self._nodes) > self._size:
                self._nodes.popitem(last=False)

    def get(self, principal: Principal | None, node: BaseNode) -> BaseNode | None:
        key = (_principal_key(principal), node.node_id, _digest(node.get_content()))
        with self._lock:
            return self._nodes.get(key)


_RELEASED = _Released()
_TRACING = {"active": False}  # set by trace(): before it, no handler can be shown a released node


def note_released(principal: Principal | None, nodes: Iterable[BaseNode | NodeWithScore]) -> None:
    """A guard registers the (sanitised) nodes it released to ``principal``: traces may show them.
    (A no-op until ``gr.trace`` attached a handler: ~30 µs per top-5 retrieval saved.)"""
    if not _TRACING["active"]:
        return
    for item in nodes:
        node = item.node if isinstance(item, NodeWithScore) else item
        _RELEASED.add(principal, node)


# --------------------------------------------------------------------------- the sanitiser


class Sanitiser:
    """Turns any event, span argument, result or callback payload into what the principal may see."""

    def __init__(self, guardrail: Any) -> None:
        self._gr = guardrail
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Sanitiser({self._gr!r})"

    # ------------------------------------------------------------------ strings

    def profile(self, principal: Principal | None) -> str:
        """The redaction profile for free text seen on behalf of ``principal`` (``redact``: strictest)."""
        if principal is None:
            return "redact"
        policy = self._gr.policy
        resource = Resource(tenant=self._gr.tenant, classification=policy.access.phi_classification)
        try:
            decision = evaluate(policy, principal, resource)
        except Exception:  # noqa: BLE001 - no decision: the strictest view
            return "redact"
        return decision.redaction if decision.allowed else "redact"

    def text(self, value: str, profile: str) -> str:
        if profile == "none" or not value.strip():
            return value
        key = (profile, _digest(value))
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            redactor, keep = self._gr._profile_redactor(profile)
            findings = [f for f in self._gr.detect(value) if f.entity not in keep]
            redacted = redactor.redact(value, findings, scope=self._gr._new_scope()).text
        except Exception:  # noqa: BLE001 - detection failed: nothing of the string goes out
            return WITHHELD
        with self._lock:
            self._cache[key] = redacted
            while len(self._cache) > 2048:
                self._cache.popitem(last=False)
        return str(redacted)

    # ------------------------------------------------------------------ values

    def value(self, value: Any, principal: Principal | None = None, *, _profile: str | None = None) -> Any:
        """A sanitised copy of ``value`` for ``principal``'s traces (the input is never changed)."""
        profile = _profile if _profile is not None else self.profile(principal)
        return self._value(value, principal, profile, 0)

    def _value(self, value: Any, principal: Principal | None, profile: str, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            return WITHHELD
        if value is None or isinstance(value, bool | int | float | Enum):
            return value
        if isinstance(value, str):
            return self.text(value, profile)
        if isinstance(value, bytes):
            return WITHHELD
        if isinstance(value, NodeWithScore):
            return NodeWithScore(node=self.node(value.node, principal), score=value.score)
        if isinstance(value, BaseNode):
            return self.node(value, principal)
        if isinstance(value, QueryBundle):
            return QueryBundle(
                query_str=self.text(value.query_str, profile),
                custom_embedding_strs=[self.text(s, profile) for s in value.custom_embedding_strs or []]
                or None,
            )
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if items and all(isinstance(x, float) for x in items):
                return []  # an embedding: invertible, never traced
            out = [self._value(x, principal, profile, depth + 1) for x in items]
            return out if isinstance(value, list) else tuple(out)
        if isinstance(value, dict):
            return {
                (k if isinstance(k, Enum) or not isinstance(k, str) else self.text(k, profile)): self._value(
                    v, principal, profile, depth + 1
                )
                for k, v in value.items()
            }
        if isinstance(value, BaseModel):
            updates = {
                name: self._value(getattr(value, name, None), principal, profile, depth + 1)
                for name in type(value).model_fields
                if not (name in _EVENT_KEEP and depth == 0)
            }
            return value.model_copy(update=updates)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            clone = copy.copy(value)
            for f in dataclasses.fields(value):
                with contextlib.suppress(AttributeError, TypeError, dataclasses.FrozenInstanceError):
                    object.__setattr__(
                        clone, f.name, self._value(getattr(value, f.name), principal, profile, depth + 1)
                    )
            return clone
        return f"<{type(value).__name__}>"

    def node(self, node: BaseNode, principal: Principal | None) -> BaseNode:
        """The copy a guard released to ``principal`` (without its embedding), or a stub."""
        released = _RELEASED.get(principal, node)
        if released is None:
            return TextNode(id_=self._ref(node.node_id), text=WITHHELD)
        # the guard's copy, with relationships reduced to keyed references (a related node's metadata is
        # its parent document's, and its id is often a file path) and metadata seen as free text
        profile = self.profile(principal)
        copy_ = released.model_copy(update={"embedding": None}, deep=True)
        copy_.metadata = self._value(dict(copy_.metadata), principal, profile, 1)
        copy_.relationships = {
            kind: [self._related(r) for r in info] if isinstance(info, list) else self._related(info)
            for kind, info in copy_.relationships.items()
        }
        return copy_

    def _related(self, info: RelatedNodeInfo) -> RelatedNodeInfo:
        return RelatedNodeInfo(node_id=self._ref(info.node_id, prefix="node"), node_type=info.node_type)

    def _ref(self, node_id: str, *, prefix: str = "withheld") -> str:
        keyring = getattr(self._gr, "keyring", None)
        if keyring is not None:
            return f"{prefix}-{keyring.token(self._gr.tenant, 'trace-node', node_id, length=16)}"
        # no keyring: keyed by a per-process secret (a plain hash would confirm a guessed file path)
        return f"{prefix}-{hmac.new(_PROCESS_KEY, node_id.encode(), hashlib.sha256).hexdigest()[:16]}"

    def event(self, event: Any) -> Any:
        return self.value(event, _principal())

    def safe(self, value: Any, principal: Principal | None) -> Any:
        """:meth:`value`, or :data:`WITHHELD` if sanitising fails (never the raw value, never a raise
        into the user's pipeline: legacy callback managers do not catch their handlers' errors)."""
        try:
            return self.value(value, principal)
        except Exception:  # noqa: BLE001 - fail closed
            return WITHHELD


# --------------------------------------------------------------------------- handler wrappers


class SanitisedEventHandler(BaseEventHandler):
    """Hands every instrumentation event to ``inner`` as the principal may see it."""

    inner: Any
    sanitiser: Any

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailSanitisedEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> Any:
        return self.inner.handle(self.sanitiser.event(event), **kwargs)

    def detach(self) -> None:
        """Stop tracing: remove this handler from the root dispatcher."""
        _remove(_root().event_handlers, self)


class _InstanceRef:
    """Stands for the instrumented object in a span: its class (for span kinds), none of its data."""

    __slots__ = ("_cls",)

    def __init__(self, instance: Any) -> None:
        object.__setattr__(self, "_cls", type(instance))

    # isinstance() falls back on __class__: a tracer can still tell a retriever from an LLM
    __class__ = property(lambda self: object.__getattribute__(self, "_cls"))

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_cls').__name__}>"


def _ref(instance: Any) -> Any:
    return None if instance is None else _InstanceRef(instance)


class SanitisedSpanHandler(BaseSpanHandler[Any]):
    """Hands every span to ``inner`` with sanitised arguments and result, and no live instance."""

    inner: Any = None
    sanitiser: Any = None

    def __init__(self, inner: BaseSpanHandler[Any], sanitiser: Sanitiser) -> None:
        super().__init__()
        self.inner = inner
        self.sanitiser = sanitiser

    @classmethod
    def class_name(cls) -> str:
        return "GuardrailSanitisedSpanHandler"

    def _args(self, bound_args: inspect.BoundArguments) -> inspect.BoundArguments:
        principal = _principal()
        arguments = {k: self.sanitiser.safe(v, principal) for k, v in bound_args.arguments.items()}
        return inspect.BoundArguments(bound_args.signature, arguments)

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        clean_tags = self.sanitiser.safe(tags, _principal()) if tags else tags
        self.inner.span_enter(
            id_=id_,
            bound_args=self._args(bound_args),
            instance=_ref(instance),
            parent_id=parent_id,
            tags=clean_tags,
            **kwargs,
        )

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        self.inner.span_exit(
            id_=id_,
            bound_args=self._args(bound_args),
            instance=_ref(instance),
            result=self.sanitiser.safe(result, _principal()),
            **kwargs,
        )

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        # an error message may quote content: only its type goes out
        clean = None if err is None else RuntimeError(type(err).__name__)
        self.inner.span_drop(
            id_=id_, bound_args=self._args(bound_args), instance=_ref(instance), err=clean, **kwargs
        )

    def new_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        self.inner.close()

    def detach(self) -> None:
        """Stop tracing: remove this handler from the root dispatcher."""
        _remove(_root().span_handlers, self)


class SanitisedCallbackHandler(BaseCallbackHandler):
    """A legacy callback handler (``LlamaDebugHandler``, Langfuse's) fed sanitised payloads."""

    def __init__(self, inner: BaseCallbackHandler, sanitiser: Sanitiser) -> None:
        super().__init__(
            event_starts_to_ignore=list(inner.event_starts_to_ignore),
            event_ends_to_ignore=list(inner.event_ends_to_ignore),
        )
        self.inner = inner
        self.sanitiser = sanitiser
        self.manager: Any = None

    def __repr__(self) -> str:
        return f"SanitisedCallbackHandler({type(self.inner).__name__})"

    def detach(self) -> None:
        """Stop tracing: remove this handler from the callback manager it was added to."""
        if self.manager is not None:
            _remove(self.manager.handlers, self)

    def on_event_start(
        self,
        event_type: Any,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        clean = self._payload(payload)
        return str(
            self.inner.on_event_start(event_type, clean, event_id=event_id, parent_id=parent_id, **kwargs)
        )

    def on_event_end(
        self, event_type: Any, payload: dict[str, Any] | None = None, event_id: str = "", **kwargs: Any
    ) -> None:
        clean = self._payload(payload)
        self.inner.on_event_end(event_type, clean, event_id=event_id, **kwargs)

    def _payload(self, payload: dict[str, Any] | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        clean = self.sanitiser.safe(payload, _principal())
        return clean if isinstance(clean, dict) else {}

    def start_trace(self, trace_id: str | None = None) -> None:
        self.inner.start_trace(trace_id)

    def end_trace(self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None) -> None:
        self.inner.end_trace(trace_id, trace_map)


def _root() -> Any:
    from llama_index_instrumentation import get_dispatcher

    return get_dispatcher()


def _remove(handlers: list[Any], handler: Any) -> None:
    handlers[:] = [h for h in handlers if h is not handler]


def _ours(handler: Any) -> bool:
    return isinstance(handler, SanitisedEventHandler | SanitisedSpanHandler | SanitisedCallbackHandler) or (
        type(handler).__module__.startswith("guardrail.")
    )


def trace(guardrail: Any, handler: Any = None, *, callback_manager: Any = None) -> Any:
    """Attach ``handler`` behind a sanitiser; with no handler, put every handler already attached (the
    root dispatcher's, ``Settings.callback_manager``'s) behind one. Returns the attached wrapper (or the
    list of wrappers)."""
    from llama_index.core import Settings
    from llama_index.core.instrumentation.span_handlers import NullSpanHandler
    from llama_index_instrumentation import get_dispatcher

    sanitiser = Sanitiser(guardrail)
    root = get_dispatcher()
    _TRACING["active"] = True
    if handler is None:
        wrapped: list[Any] = []
        for i, h in enumerate(list(root.event_handlers)):
            if not _ours(h):
                root.event_handlers[i] = SanitisedEventHandler(inner=h, sanitiser=sanitiser)
                wrapped.append(root.event_handlers[i])
        for i, s in enumerate(list(root.span_handlers)):
            if not _ours(s) and not isinstance(s, NullSpanHandler):
                root.span_handlers[i] = SanitisedSpanHandler(s, sanitiser)
                wrapped.append(root.span_handlers[i])
        manager = callback_manager or Settings.callback_manager
        for i, c in enumerate(list(manager.handlers)):
            if not _ours(c):
                callback = SanitisedCallbackHandler(c, sanitiser)
                callback.manager = manager
                manager.handlers[i] = callback
                wrapped.append(callback)
        return wrapped
    if isinstance(handler, BaseEventHandler):
        event_wrapper = SanitisedEventHandler(inner=handler, sanitiser=sanitiser)
        root.add_event_handler(event_wrapper)
        return event_wrapper
    if isinstance(handler, BaseSpanHandler):
        span_wrapper = SanitisedSpanHandler(handler, sanitiser)
        root.add_span_handler(span_wrapper)
        return span_wrapper
    if isinstance(handler, BaseCallbackHandler):
        callback_wrapper = SanitisedCallbackHandler(handler, sanitiser)
        callback_wrapper.manager = callback_manager or Settings.callback_manager
        callback_wrapper.manager.add_handler(callback_wrapper)
        return callback_wrapper
    from guardrail.errors import ConfigError

    raise ConfigError(
        f"gr.trace() takes a LlamaIndex BaseEventHandler, BaseSpanHandler or BaseCallbackHandler, not a "
        f"{type(handler).__name__}"
    )
