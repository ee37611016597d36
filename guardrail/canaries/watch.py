"""Watching for canaries: every place plaintext leaves guardrail's hands is shown to a
:class:`CanaryWatch`, which writes one ``canary.tripped`` audit event per canary found there.

The hooks are single calls, cheap when no watch is on (one attribute read):

- :func:`observe_release` at the release point (a node released to a principal, after redaction: a
  pseudonymised node no longer carries the planted values, so it does not trip);
- :func:`observe_unguarded` in the ``watch_unguarded`` handler (nodes a retrieval handed out without a
  guard);
- :func:`observe_answer` for answers (the response guard's observer hook when it is present; otherwise
  an instrumentation handler that sees every LLM completion and chat answer, streamed ones when the
  stream ends);
- dataset runs check their output themselves (:func:`guardrail.datasets.run.redact_file` fails its
  gate), since they have no ``Guardrail`` object.

An event names where the value was seen, the canary id and the entity types, never a value. An alert hook
given to ``gr.canaries(alert=...)`` is then called with a :class:`CanaryAlert`; an exception it raises is
logged by type and swallowed (the event is already written, and a broken pager must not stop service).
If the audit write fails at the release point, the retrieval fails closed like any failed audit write.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from guardrail.canaries.registry import CanaryMatcher, strings_of

__all__ = [
    "CanaryAlert",
    "CanaryWatch",
    "observe_answer",
    "observe_release",
    "observe_unguarded",
]

_log = logging.getLogger("guardrail.canaries")
_PRIVATE_METADATA = ("_gr_spans", "_gr_meta_spans")


@dataclass(frozen=True, slots=True)
class CanaryAlert:
    """What an alert hook receives for each tripped canary (never a value).

    Attributes:
        canary: the canary id (``cn-...``).
        where: ``rag.release``, ``rag.unguarded``, ``llm.output``, ``rag.response`` or ``dataset.export``.
        entities: the entity types of the planted values seen.
        actor: the principal it reached, when known.
        event_id: the ``canary.tripped`` audit event's id ("" without an audit log).
        resources: node ids (or record lines) where it was seen.
    """

    canary: str
    where: str
    entities: tuple[str, ...]
    actor: str | None
    event_id: str
    resources: tuple[str, ...] = ()


def _metadata_strings(metadata: Any) -> list[str]:
    if not isinstance(metadata, dict):
        return []
    out: list[str] = []
    for key, value in metadata.items():
        if key not in _PRIVATE_METADATA:
            out.append(str(key))  # keys travel too (a value used as a key)
            out.extend(strings_of(value))
    return out


def _node_texts(node: Any) -> list[str]:
    """The text, string metadata and relationship metadata of a node (all travel to the caller)."""
    get_content = getattr(node, "get_content", None)
    texts: list[str] = [str(get_content())] if get_content is not None else []
    texts += _metadata_strings(getattr(node, "metadata", None))
    for related in (getattr(node, "relationships", None) or {}).values():
        for info in related if isinstance(related, list) else [related]:
            texts += _metadata_strings(getattr(info, "metadata", None))
    return texts


def _node_of(item: Any) -> Any:
    return getattr(item, "node", item)  # a NodeWithScore or a node


class CanaryWatch:
    """Looks for the keyring's canaries in what a :class:`~guardrail.core.Guardrail` releases.

    Made by ``gr.canaries(alert=...)``; it holds the digests of the planted values, never the values.
    """

    def __init__(
        self, guardrail: Any, matcher: CanaryMatcher, *, alert: Callable[[CanaryAlert], Any] | None = None
    ) -> None:
        self._gr = weakref.ref(guardrail)
        self.matcher = matcher
        self.alert = alert
        self.tripped = 0
        self._lock = threading.Lock()
        self._handler: Any = None
        self._closers: list[Callable[[], Any]] = []
        # nodes the release point already showed us, by identity (weakly: never kept alive), so that the
        # unguarded handler seeing the same released objects does not count one exposure twice
        self._released: dict[int, weakref.ref[Any]] = {}
        self.closed = False

    def __repr__(self) -> str:
        return f"CanaryWatch(values={len(self.matcher)}, tripped={self.tripped})"

    # ------------------------------------------------------------------ observation points

    def observe(
        self,
        texts: Iterable[str],
        *,
        where: str,
        actor: Any = None,
        resources: Sequence[str] = (),
        outcome: str = "success",
    ) -> list[str]:
        """Scan ``texts`` (what reached ``actor`` at ``where``); one event per canary found.

        Returns:
            the ids of the canaries found.
        """
        if self.closed:
            return []
        found = self.matcher.canaries_in(texts)
        for canary, entities in found.items():
            self._trip(canary, entities, where=where, actor=actor, resources=resources, outcome=outcome)
        return list(found)

    def _remember(self, node: Any) -> None:
        key = id(node)

        def forget(_: Any) -> None:
            self._released.pop(key, None)

        # a node that is not weak-referenceable may be counted again by the unguarded handler
        with contextlib.suppress(TypeError):
            self._released[key] = weakref.ref(node, forget)

    def _seen(self, node: Any) -> bool:
        ref = self._released.get(id(node))
        return ref is not None and ref() is node

    def observe_nodes(self, nodes: Iterable[Any], *, where: str, actor: Any = None) -> list[str]:
        """:meth:`observe` over nodes (or nodes with scores): their text and string metadata."""
        found: list[str] = []
        for item in nodes:
            node = _node_of(item)
            if where == "rag.release":
                self._remember(node)
            elif self._seen(node):
                continue  # released (and checked) at the release point a moment ago
            node_id = str(getattr(node, "node_id", "") or "")
            found += self.observe(
                _node_texts(node), where=where, actor=actor, resources=(node_id,) if node_id else ()
            )
        return found

    def observe_answer(self, text: str, where: str = "rag.response") -> list[str]:
        """An answer that goes to a user (the response guard's observer: ``fn(text, where)``)."""
        from guardrail.access import current_principal

        return self.observe([text], where=where or "rag.response", actor=current_principal())

    # ------------------------------------------------------------------ events

    def _trip(
        self,
        canary: str,
        entities: Sequence[str],
        *,
        where: str,
        actor: Any,
        resources: Sequence[str],
        outcome: str,
    ) -> None:
        gr = self._gr()
        with self._lock:
            self.tripped += 1
        event_id = ""
        if gr is not None and getattr(gr, "audit", None) is not None:
            event_id = gr._audit_event(
                {"category": "canary.tripped", "action": "R", "outcome": outcome},
                **canary_fields(canary, entities, where=where, actor=actor, resources=resources),
            )
        ref = getattr(actor, "id", None) if actor is not None else None
        # the log line names the canary and the place, never the value
        _log.warning("canary %s tripped at %s (%s)", canary, where, ", ".join(entities))
        if self.alert is not None:
            try:
                self.alert(CanaryAlert(canary, where, tuple(entities), ref, event_id, tuple(resources)))
            except Exception as exc:  # noqa: BLE001 - a broken alert hook must not stop service
                _log.error("canary alert hook failed (%s)", type(exc).__name__)

    # ------------------------------------------------------------------ answers without a response guard

    def install_llm_handler(self) -> Any:
        """See every LLM completion and chat answer (LlamaIndex instrumentation): ``llm.output``."""
        from llama_index.core.instrumentation.event_handlers import BaseEventHandler
        from llama_index.core.instrumentation.events.llm import LLMChatEndEvent, LLMCompletionEndEvent
        from llama_index_instrumentation import get_dispatcher

        ref = weakref.ref(self)

        class CanaryLLMHandler(BaseEventHandler):
            @classmethod
            def class_name(cls) -> str:
                return "GuardrailCanaryLLMHandler"

            def handle(self, event: Any, **kwargs: Any) -> None:
                watch = ref()
                if watch is None or watch.closed:
                    return
                text = None
                if isinstance(event, LLMCompletionEndEvent) and event.response is not None:
                    text = event.response.text
                elif isinstance(event, LLMChatEndEvent) and event.response is not None:
                    text = event.response.message.content
                if text:
                    watch.observe_answer(str(text), "llm.output")

        handler = CanaryLLMHandler()
        get_dispatcher().add_event_handler(handler)
        self._handler = handler
        return handler

    def on_close(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` when the watch closes (e.g. to unregister an observer)."""
        self._closers.append(fn)

    def close(self) -> None:
        """Stop watching (and remove the LLM handler from LlamaIndex's dispatcher)."""
        self.closed = True
        while self._closers:
            self._closers.pop()()
        if self._handler is not None:
            from llama_index_instrumentation import get_dispatcher

            handlers = get_dispatcher().event_handlers
            if self._handler in handlers:
                handlers.remove(self._handler)
            self._handler = None


def canary_fields(
    canary: str, entities: Sequence[str], *, where: str, actor: Any = None, resources: Sequence[str] = ()
) -> dict[str, Any]:
    """The members of a ``canary.tripped`` event besides ``event`` (see :mod:`guardrail.audit.events`)."""
    from guardrail.audit.events import canary_member

    fields: dict[str, Any] = {"canary": canary_member(canary, entities, where=where)}
    if actor is not None and getattr(actor, "id", None):
        fields["actor"] = {"ref": str(actor.id), "type": "user", "roles": list(getattr(actor, "roles", ()))}
    if resources:
        fields["resources"] = [{"type": "chunk", "id": r} for r in resources]
    return fields


# --------------------------------------------------------------------------- hooks (single calls)


def _watch(guardrail: Any) -> CanaryWatch | None:
    watch = getattr(guardrail, "_canary_watch", None)
    return watch if watch is not None and not watch.closed else None


def observe_release(guardrail: Any, nodes: Iterable[Any], *, principal: Any = None) -> None:
    """The release point's hook: ``nodes`` were released to ``principal`` (after redaction)."""
    watch = _watch(guardrail)
    if watch is None:
        return
    try:
        watch.observe_nodes(nodes, where="rag.release", actor=principal)
    except Exception as exc:  # noqa: BLE001 - no audit record of a trip, no release (fail closed)
        from guardrail.llama_index.guard import RetrievalBlocked

        raise RetrievalBlocked(
            f"the canary.tripped audit record could not be written ({type(exc).__name__})"
        ) from None


def observe_unguarded(guardrail: Any, nodes: Iterable[Any]) -> None:
    """The ``watch_unguarded`` handler's hook: ``nodes`` were handed out without a guard."""
    watch = _watch(guardrail)
    if watch is not None:
        from guardrail.access import current_principal

        watch.observe_nodes(nodes, where="rag.unguarded", actor=current_principal())


def observe_answer(guardrail: Any, text: str, where: str = "rag.response") -> None:
    """An answer given to the current principal (for the response guard)."""
    watch = _watch(guardrail)
    if watch is not None:
        watch.observe_answer(text, where)
