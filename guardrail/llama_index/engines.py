"""Guarded query and chat engines: ``gr.guard(engine)`` for what ``index.as_query_engine()`` and
``index.as_chat_engine()`` build, and for Router and SubQuestion query engines.

:func:`guard_target` returns a guarded *copy*; the engine it is given is never changed. In the copy:

* every retriever is the guarded retriever (``gr.guard(retriever)``), and sub-engines (Router tools,
  SubQuestion tools, a condense-question engine's query engine) are guarded the same way;
* the LLM that writes answers sits behind the response guard (:class:`~.responses.GatedLLM`), so a
  synthesizer, a chat memory and the caller only ever see the guarded text;
* each answer goes through one :class:`~.responses.ResponseGate`: query guard, response guard,
  restoration for principals allowed it, one ``rag.response`` audit event.

Chat memory is per principal (id, roles and purpose): a guarded chat engine keeps a fresh, in-memory
history for each (at most :data:`MAX_SESSIONS`, the least recently used forgotten first), so nothing one
principal was told reaches another's prompt. Refused, with the reason:
engines whose memory already holds messages (they would be shown to every principal), memories kept in
an external chat store or with memory blocks, ``CustomQueryEngine`` (its code is opaque: guard the
retriever it uses) and agents (their tools call LLMs and retrievers that the guard cannot see).
"""

from __future__ import annotations

import contextlib
import copy as _copy
import inspect
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llama_index.core.base.response.schema import AsyncStreamingResponse, Response, StreamingResponse
from llama_index.core.chat_engine import (
    CondensePlusContextChatEngine,
    CondenseQuestionChatEngine,
    ContextChatEngine,
    SimpleChatEngine,
)
from llama_index.core.chat_engine.types import (
    AgentChatResponse,
    BaseChatEngine,
    StreamingAgentChatResponse,
)
from llama_index.core.llms import ChatMessage
from llama_index.core.llms.llm import LLM
from llama_index.core.query_engine import (
    CustomQueryEngine,
    RetrieverQueryEngine,
    RouterQueryEngine,
    SubQuestionQueryEngine,
)
from llama_index.core.schema import QueryBundle

from guardrail.access import AccessDenied, current_principal
from guardrail.errors import GuardrailError
from guardrail.llama_index.responses import (
    GatedLLM,
    ReleaseRecorder,
    ResponseGate,
    TokenMap,
    _Answer,
    _notify,
)

__all__ = ["GuardedChatEngine", "guard_target"]


class EngineRefused(GuardrailError, ValueError):
    """An engine ``gr.guard()`` cannot guard safely; the message says why and what to do instead."""


def _gate(gr: Any) -> ResponseGate:
    gate = getattr(gr, "_response_gate", None)
    if gate is None:
        gate = ResponseGate(gr)
        gr._response_gate = gate
    return gate


def guard_target(target: Any, gr: Any, *, processors: Sequence[str] = ()) -> Any:
    """A guarded copy of a query or chat engine (see the module docstring).

    Raises:
        EngineRefused: an agent, a ``CustomQueryEngine``, a chat engine with pre-filled or external
            memory, or an engine of a kind guardrail does not know.
    """
    gate = _gate(gr)
    if isinstance(target, (_GuardedQuery, GuardedChatEngine)):
        return target
    if isinstance(target, CustomQueryEngine):
        raise EngineRefused(
            f"cannot guard a {type(target).__name__}: a CustomQueryEngine runs your own code, so guardrail "
            "cannot see what it retrieves or sends to an LLM; guard the retriever it uses "
            "(retriever = gr.guard(index.as_retriever())) and call that from your engine, or use "
            "index.as_query_engine()"
        )
    if _is_agent(target):
        raise EngineRefused(
            f"cannot guard a {type(target).__name__}: an agent's tools call retrievers and LLMs the guard "
            "cannot see; guard each query engine before making it a tool (QueryEngineTool.from_defaults("
            "gr.guard(engine), ...)) or use index.as_chat_engine(chat_mode='condense_plus_context')"
        )
    if isinstance(target, BaseChatEngine):
        return GuardedChatEngine(target, gr, gate, processors=processors)
    if isinstance(target, RetrieverQueryEngine):
        return _guard_retriever_engine(target, gr, gate, processors)
    if isinstance(target, RouterQueryEngine):
        _refuse_program(
            target._selector, "RouterQueryEngine", "selector", "LLMSingleSelector.from_defaults(llm=...)"
        )
        router: Any = _copy.copy(target)
        router._query_engines = [guard_target(e, gr, processors=processors) for e in target._query_engines]
        router._summarizer = _gated_synthesizer(target._summarizer, gate)
        router._selector = _gated_synthesizer(target._selector, gate)  # its reason is printed and returned
        return _swap(router, gate)
    if isinstance(target, SubQuestionQueryEngine):
        _refuse_program(
            target._question_gen,
            "SubQuestionQueryEngine",
            "question generator",
            "LLMQuestionGenerator.from_defaults(llm=...)",
        )
        engine: Any = _copy.copy(target)
        engine._query_engines = {
            name: guard_target(e, gr, processors=processors) for name, e in target._query_engines.items()
        }
        engine._response_synthesizer = _gated_synthesizer(target._response_synthesizer, gate)
        # the sub-questions an LLM writes are printed (verbose), traced and returned as source nodes
        engine._question_gen = _gated_synthesizer(target._question_gen, gate)
        return _swap(engine, gate)
    raise EngineRefused(
        f"cannot guard a {type(target).__name__}: pass a retriever, a query engine from "
        "index.as_query_engine(), a chat engine from index.as_chat_engine(), a RouterQueryEngine or a "
        "SubQuestionQueryEngine (or add gr.postprocessor() to its node_postprocessors)"
    )


def _refuse_program(part: Any, engine: str, role: str, instead: str) -> None:
    """A selector or question generator that writes through a pydantic / function-calling program: what
    its LLM writes (a selection's reason, sub-questions) cannot pass the response guard, so refuse."""
    for name, value in vars(part).items() if hasattr(part, "__dict__") else ():
        if name != "_llm" and (isinstance(value, LLM) or isinstance(getattr(value, "_llm", None), LLM)):
            raise EngineRefused(
                f"cannot guard a {engine} whose {role} ({type(part).__name__}) calls an LLM through "
                f"{type(value).__name__}: what that LLM writes is printed and returned without passing the "
                f"response guard; use {instead}"
            )


def _is_agent(target: Any) -> bool:
    names = {c.__name__ for c in type(target).__mro__}
    return bool(names & {"BaseWorkflowAgent", "AgentRunner", "BaseAgent", "BaseAgentWorker", "Workflow"})


# --------------------------------------------------------------------------- synthesizers and LLMs


def _gated_llm(llm: Any, gate: ResponseGate) -> Any:
    if llm is None or isinstance(llm, GatedLLM):
        return llm
    return GatedLLM(llm, gate)


def _rebind(copy: Any, original: Any) -> None:
    """Methods stored as attributes (a synthesizer's program factory) still point at the original."""
    for name, value in list(vars(copy).items()):
        if inspect.ismethod(value) and value.__self__ is original:
            setattr(copy, name, getattr(copy, value.__func__.__name__))


def _gated_synthesizer(synthesizer: Any, gate: ResponseGate) -> Any:
    if synthesizer is None:
        return None
    copy = _copy.copy(synthesizer)
    _rebind(copy, synthesizer)
    if hasattr(copy, "_llm"):
        copy._llm = _gated_llm(synthesizer._llm, gate)
    return copy


def _bind_synthesizer(synthesizer: Any, answer: _Answer) -> Any:
    llm = getattr(synthesizer, "_llm", None)
    if not isinstance(llm, GatedLLM):
        return synthesizer
    copy = _copy.copy(synthesizer)
    _rebind(copy, synthesizer)
    copy._llm = llm.bound(answer)
    return copy


def _bound(engine: Any, answer: _Answer) -> Any:
    """A per-answer shallow copy of a guarded engine whose LLMs write for ``answer``."""
    copy = _copy.copy(engine)
    for name in ("_response_synthesizer", "_summarizer", "_selector", "_question_gen"):
        if getattr(engine, name, None) is not None:
            setattr(copy, name, _bind_synthesizer(getattr(engine, name), answer))
    if isinstance(getattr(engine, "_llm", None), GatedLLM):
        copy._llm = engine._llm.bound(answer)
    return copy


def _guard_retriever_engine(engine: RetrieverQueryEngine, gr: Any, gate: ResponseGate, named: Any) -> Any:
    from guardrail.audit.events import processor_members

    retriever = gr.guard(engine.retriever, processors=named)
    if hasattr(retriever, "_processors"):  # the retrieval events name the LLM the chunks go to
        retriever._processors = processor_members(
            gr.policy,
            llm=getattr(engine._response_synthesizer, "_llm", None),
            embed_model=getattr(engine.retriever, "_embed_model", None),
            named=named,
        )
    copy = _copy.copy(engine)
    copy._retriever = retriever
    copy._response_synthesizer = _gated_synthesizer(engine._response_synthesizer, gate)
    copy._node_postprocessors = [*engine._node_postprocessors, ReleaseRecorder(gate)]
    return _swap(copy, gate)


# --------------------------------------------------------------------------- guarded query engines


class _GuardedQuery:
    """Marks the guarded query engines (their class is made by :func:`_swap`)."""


@contextlib.contextmanager
def _answering(
    gate: ResponseGate, query_bundle: QueryBundle
) -> Iterator[tuple[ResponseGate, _Answer, bool, Any]]:
    """The answer a guarded engine's call is part of (active while it runs) and its guarded question."""
    answer, own = gate.begin(query_bundle.query_str)
    token = gate.activate(answer)
    try:
        yield gate, answer, own, gate.guard_bundle(answer, query_bundle)
    finally:
        gate.deactivate(token)


@contextlib.asynccontextmanager
async def _aanswering(
    gate: ResponseGate, query_bundle: QueryBundle
) -> AsyncIterator[tuple[ResponseGate, _Answer, bool, Any]]:
    """:func:`_answering` with the question guarded in a worker thread (detection off the loop)."""
    import asyncio
    import contextvars

    answer, own = gate.begin(query_bundle.query_str)
    token = gate.activate(answer)
    try:
        ctx = contextvars.copy_context()
        yield gate, answer, own, await asyncio.to_thread(ctx.run, gate.guard_bundle, answer, query_bundle)
    finally:
        gate.deactivate(token)


def _guarded_class(cls: type) -> type:
    """A subclass of ``cls`` in which each query is one answer of the response gate."""

    def _query(self: Any, query_bundle: QueryBundle) -> Any:
        with _answering(self._gr_gate, query_bundle) as (gate, answer, own, bundle):
            response = cls._query(_bound(self, answer), bundle)  # type: ignore[attr-defined]
            return _release(gate, answer, response) if own else response

    async def _aquery(self: Any, query_bundle: QueryBundle) -> Any:
        async with _aanswering(self._gr_gate, query_bundle) as (gate, answer, own, bundle):
            response = await cls._aquery(_bound(self, answer), bundle)  # type: ignore[attr-defined]
            return _release(gate, answer, response) if own else response

    # engine.retrieve(): the nodes its LLM would get, inside an answer (none is written: no LLM ran)
    def retrieve(self: Any, query_bundle: QueryBundle) -> Any:
        with _answering(self._gr_gate, query_bundle) as (_, _, _, bundle):
            return cls.retrieve(self, bundle)  # type: ignore[attr-defined]

    async def aretrieve(self: Any, query_bundle: QueryBundle) -> Any:
        async with _aanswering(self._gr_gate, query_bundle) as (_, _, _, bundle):
            return await cls.aretrieve(self, bundle)  # type: ignore[attr-defined]

    methods: dict[str, Any] = {"__module__": __name__, "_query": _query, "_aquery": _aquery}
    if hasattr(cls, "retrieve"):
        methods["retrieve"] = retrieve
    if hasattr(cls, "aretrieve"):
        methods["aretrieve"] = aretrieve
    # the marker goes last: a mixin before ``cls`` would change the instance layout
    return type(f"Guarded{cls.__name__}", (cls, _GuardedQuery), methods)


_CLASSES: dict[type, type] = {}
_CLASSES_LOCK = threading.Lock()


def _swap(engine: Any, gate: ResponseGate) -> Any:
    """The copy becomes an instance of a guarded subclass of its own class (same kind of object)."""
    cls = type(engine)
    with _CLASSES_LOCK:
        guarded = _CLASSES.get(cls)
        if guarded is None:
            guarded = _guarded_class(cls)
            _CLASSES[cls] = guarded
    engine.__class__ = guarded
    engine._gr_gate = gate
    return engine


def _release(gate: ResponseGate, answer: _Answer, response: Any) -> Any:
    """The engine's response as the principal gets it: restored, observed, audited."""
    if isinstance(response, StreamingResponse):
        response.response_gen = _restored_stream(gate, answer, response.response_gen, response)
        return response
    if isinstance(response, AsyncStreamingResponse):
        response.response_gen = _arestored_stream(gate, answer, response.response_gen, response)
        return response
    if isinstance(response, Response | AgentChatResponse):
        response.response = gate.release_text(answer, response.response or "")
        gate.finish(answer)
        return response
    gate.finish(answer, outcome="unknown-response")
    raise GuardrailError(
        f"a guarded engine returned a {type(response).__name__}, which guardrail cannot check"
    )


class _Releaser:
    """Releases a stream's deltas to the principal: restored, observed, audited when it ends."""

    def __init__(self, gate: ResponseGate, answer: _Answer, holder: Any) -> None:
        self._gate = gate
        self._answer = answer
        self._holder = holder
        self._restorer = gate.restorer(answer)
        self._text = ""
        self._complete = False

    def piece(self, delta: str | None) -> str:
        return self._out(self._restorer.feed(delta or ""))

    def end(self) -> str:
        piece = self._out(self._restorer.flush())
        self._answer.chars = len(self._text)
        _notify(self._text, "response")
        if hasattr(self._holder, "response_txt"):
            self._holder.response_txt = self._text
        self._complete = True
        return piece

    def close(self) -> None:
        self._gate.finish(self._answer, outcome=None if self._complete else "incomplete")

    def _out(self, piece: str) -> str:
        if piece:
            _notify(piece, "response.stream")
            self._text += piece
        return piece


def _restored_stream(
    gate: ResponseGate, answer: _Answer, deltas: Any, holder: Any
) -> Generator[str, None, None]:
    releaser = _Releaser(gate, answer, holder)
    try:
        for delta in deltas:
            piece = releaser.piece(delta)
            if piece:
                yield piece
        piece = releaser.end()
        if piece:
            yield piece
    finally:
        releaser.close()


async def _arestored_stream(
    gate: ResponseGate, answer: _Answer, deltas: Any, holder: Any
) -> AsyncGenerator[str, None]:
    releaser = _Releaser(gate, answer, holder)
    try:
        async for delta in deltas:
            piece = releaser.piece(delta)
            if piece:
                yield piece
        piece = releaser.end()
        if piece:
            yield piece
    finally:
        releaser.close()


# --------------------------------------------------------------------------- guarded chat engines

#: principals whose history a guarded chat engine keeps at once (in memory; the oldest is forgotten)
MAX_SESSIONS = 10_000

_CHAT_KINDS = (CondensePlusContextChatEngine, ContextChatEngine, CondenseQuestionChatEngine, SimpleChatEngine)


@dataclass
class _Session:
    engine: Any
    tokens: TokenMap
    lock: threading.Lock


class GuardedChatEngine(BaseChatEngine):
    """A chat engine with one history per principal, each answer through the response gate."""

    def __init__(
        self, template: BaseChatEngine, gr: Any, gate: ResponseGate, *, processors: Sequence[str] = ()
    ):
        if not isinstance(template, _CHAT_KINDS):
            raise EngineRefused(
                f"cannot guard a {type(template).__name__}: guardrail guards the chat engines of "
                "index.as_chat_engine() (condense_plus_context, context, condense_question, simple)"
            )
        memory = getattr(template, "_memory", None)
        _check_memory(memory, type(template).__name__)
        self._template: Any = template
        self._gr = gr
        self._gate = gate
        self._sessions: dict[tuple[str, tuple[str, ...], str], _Session] = {}
        self._lock = threading.Lock()
        self._llm = _gated_llm(getattr(template, "_llm", None), gate)
        self._retriever = None
        inner_retriever = getattr(template, "_retriever", None)
        if inner_retriever is not None:
            from guardrail.audit.events import processor_members

            self._retriever = gr.guard(inner_retriever, processors=processors)
            if hasattr(self._retriever, "_processors"):
                self._retriever._processors = processor_members(
                    gr.policy,
                    llm=getattr(template, "_llm", None),
                    embed_model=getattr(inner_retriever, "_embed_model", None),
                    named=processors,
                )
        self._query_engine = None
        if isinstance(template, CondenseQuestionChatEngine):
            self._query_engine = guard_target(template._query_engine, gr, processors=processors)

    # ------------------------------------------------------------------ sessions

    def _session(self, message: str) -> _Session:
        principal = current_principal()
        if principal is None:
            self._gate._audit_denied(message)
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        key = (principal.id, tuple(principal.roles), principal.purpose)
        with self._lock:
            session = self._sessions.pop(key, None)
            if session is None:
                session = _Session(self._build(), TokenMap(), threading.Lock())
                while len(self._sessions) >= MAX_SESSIONS:  # the least recently used history goes first
                    self._sessions.pop(next(iter(self._sessions)))
            self._sessions[key] = session  # most recently used last
            return session

    def _build(self) -> Any:
        template = self._template
        engine = _copy.copy(template)
        engine._memory = _fresh_memory(template._memory)
        engine._llm = self._llm
        if self._retriever is not None:
            engine._retriever = self._retriever
        if hasattr(template, "_node_postprocessors"):
            engine._node_postprocessors = [*template._node_postprocessors, ReleaseRecorder(self._gate)]
        if self._query_engine is not None:
            engine._query_engine = self._query_engine
        return engine

    def _begin(self, message: str) -> tuple[_Session, _Answer, Any, str]:
        session = self._session(message)
        answer, _ = self._gate.begin(message, tokens=session.tokens)
        token = self._gate.activate(answer)
        try:
            guarded = self._gate.guard_query(answer, message)
        except BaseException:
            self._gate.deactivate(token)
            raise
        return session, answer, token, guarded

    # ------------------------------------------------------------------ chat

    def chat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AgentChatResponse:
        session, answer, token, guarded = self._begin(message)
        try:
            with session.lock:
                response = _bound(session.engine, answer).chat(guarded, chat_history)
            return _release(self._gate, answer, response)  # type: ignore[no-any-return]
        finally:
            self._gate.deactivate(token)

    async def achat(self, message: str, chat_history: list[ChatMessage] | None = None) -> AgentChatResponse:
        session, answer, token, guarded = self._begin(message)
        try:
            response = await _bound(session.engine, answer).achat(guarded, chat_history)
            return _release(self._gate, answer, response)  # type: ignore[no-any-return]
        finally:
            self._gate.deactivate(token)

    def stream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        session, answer, token, guarded = self._begin(message)
        try:
            response = _bound(session.engine, answer).stream_chat(guarded, chat_history)
            stream: StreamingAgentChatResponse = _guarded_stream(response, self._gate, answer)
            return stream
        finally:
            self._gate.deactivate(token)

    async def astream_chat(
        self, message: str, chat_history: list[ChatMessage] | None = None
    ) -> StreamingAgentChatResponse:
        session, answer, token, guarded = self._begin(message)
        try:
            response = await _bound(session.engine, answer).astream_chat(guarded, chat_history)
            stream: StreamingAgentChatResponse = _guarded_stream(response, self._gate, answer)
            return stream
        finally:
            self._gate.deactivate(token)

    def reset(self) -> None:
        """Forget the current principal's history (and their token map)."""
        principal = current_principal()
        if principal is None:
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        with self._lock:
            self._sessions.pop((principal.id, tuple(principal.roles), principal.purpose), None)

    @property
    def chat_history(self) -> list[ChatMessage]:
        """The current principal's history (guarded answers, as the LLM saw them)."""
        principal = current_principal()
        if principal is None:
            raise AccessDenied("no principal: wrap the call in `with gr.acting_as(Principal(...))`")
        with self._lock:
            session = self._sessions.get((principal.id, tuple(principal.roles), principal.purpose))
        return list(session.engine.chat_history) if session is not None else []

    def __repr__(self) -> str:
        return f"GuardedChatEngine({type(self._template).__name__}, sessions={len(self._sessions)})"


def _holds_messages(memory: Any) -> bool:
    if type(memory).__name__ == "Memory":
        store = getattr(memory, "sql_store", None)
        if getattr(store, "_async_engine", None) is None:
            return False  # never connected: nothing was ever written (and reading would connect)
    return bool(memory.get_all())


def _check_memory(memory: Any, kind: str) -> None:
    if memory is None:
        return
    if _holds_messages(memory):
        raise EngineRefused(
            f"cannot guard this {kind}: its memory already holds messages, which would be shown to every "
            "principal; build the engine without chat_history (guardrail keeps one history per principal)"
        )
    name = type(memory).__name__
    if name == "ChatMemoryBuffer":
        if type(memory.chat_store).__name__ != "SimpleChatStore":
            raise EngineRefused(_EXTERNAL.format(kind=kind, store=type(memory.chat_store).__name__))
        return
    if name == "Memory":
        if memory.memory_blocks:
            raise EngineRefused(
                f"cannot guard this {kind}: memory blocks keep facts across conversations, which would mix "
                "principals; build the engine with the default memory"
            )
        uri = str(getattr(memory.sql_store, "async_database_uri", "") or "")
        if uri and ":memory:" not in uri:
            raise EngineRefused(_EXTERNAL.format(kind=kind, store="a database"))
        return
    raise EngineRefused(
        f"cannot guard this {kind}: guardrail does not know its memory ({name}); build the engine with "
        "the default memory (guardrail keeps one in-memory history per principal)"
    )


_EXTERNAL = (
    "cannot guard this {kind}: its memory is kept in {store}, shared by everyone who chats; build the engine "
    "with the default memory (guardrail keeps one in-memory history per principal)"
)


def _fresh_memory(memory: Any) -> Any:
    """An empty in-process history with the template's token budget (a plain buffer: no database
    connection per principal)."""
    from llama_index.core.memory import ChatMemoryBuffer

    limit = int(memory.token_limit)
    if type(memory).__name__ == "Memory":
        limit = int(limit * float(memory.chat_history_token_ratio))
    return ChatMemoryBuffer.from_defaults(token_limit=max(limit, 256))


class _GuardedStreamingChat(StreamingAgentChatResponse):
    """A chat stream whose deltas are restored (for principals allowed it) and observed; the answer is
    audited when the stream ends."""

    _gr_gate: ResponseGate
    _gr_answer: _Answer

    @property
    def response_gen(self) -> Generator[str, None, None]:
        base = StreamingAgentChatResponse.response_gen.fget(self)  # type: ignore[attr-defined]
        gen = _restored_stream(self._gr_gate, self._gr_answer, base, None)
        text = ""
        for piece in gen:
            text += piece
            yield piece
        self.response = text.strip()

    async def async_response_gen(self) -> AsyncGenerator[str, None]:
        base = StreamingAgentChatResponse.async_response_gen(self)
        text = ""
        async for piece in _arestored_stream(self._gr_gate, self._gr_answer, base, None):
            text += piece
            yield piece
        self.response = text.strip()


def _guarded_stream(response: Any, gate: ResponseGate, answer: _Answer) -> Any:
    if not isinstance(response, StreamingAgentChatResponse):
        return _release(gate, answer, response)
    response.__class__ = _GuardedStreamingChat
    response._gr_gate = gate  # type: ignore[attr-defined]
    response._gr_answer = answer  # type: ignore[attr-defined]
    return response
