"""Guarded chat and composed engines: per-principal memory, guarded retrieval inside Router and
SubQuestion engines, refusals with a reason, and no principal -> AccessDenied (audited)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.base_selector import BaseSelector, SelectorResult, SingleSelection
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.query_engine import (
    CustomQueryEngine,
    RetrieverQueryEngine,
    RouterQueryEngine,
    SubQuestionQueryEngine,
)
from llama_index.core.question_gen.types import BaseQuestionGenerator, SubQuestion
from llama_index.core.tools import QueryEngineTool, ToolMetadata
from scripted import CLINICIAN, RESEARCHER, SUPPORT, ScriptedLLM, build, events

from guardrail.access import AccessDenied
from guardrail.llama_index.engines import EngineRefused, GuardedChatEngine

PHI = ("Harold Finch", "88412095", "Amara Okafor")
MODES = ["best", "condense_plus_context", "context", "condense_question", "simple"]


def _chat(index: Any, mode: str, **kwargs: Any) -> Any:
    """``index.as_chat_engine(...)`` with a plain memory buffer: LlamaIndex's default ``Memory`` opens an
    aiosqlite connection that it never closes (a ResourceWarning whenever it is collected)."""
    kwargs.setdefault("memory", ChatMemoryBuffer.from_defaults(token_limit=3000))
    engine = index.as_chat_engine(
        chat_mode=mode, llm=kwargs.pop("llm", MockLLM()), similarity_top_k=5, **kwargs
    )
    _OPENED.append(engine)
    return engine


_OPENED: list[Any] = []


def _close_memories() -> None:
    """Close the database connections of LlamaIndex's default ``Memory`` (context engines make one even
    when given an empty buffer: ``memory or Memory.from_defaults(...)``)."""
    while _OPENED:
        memory = getattr(_OPENED.pop(), "_memory", None)
        engine = getattr(getattr(memory, "sql_store", None), "_async_engine", None)
        if engine is not None:
            asyncio.run(engine.dispose())


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    root = tmp_path_factory.mktemp("engines")
    gr, index = build(root)
    return gr, index, root


class TestChatMemory:
    """A chat engine used by a second principal never shows it the first one's history."""

    @pytest.mark.parametrize("mode", MODES, ids=MODES)
    def test_second_principal_never_sees_the_first_ones_history(self, kb: Any, mode: str) -> None:
        gr, index, _ = kb
        original = _chat(index, mode)
        engine = gr.guard(original)
        assert isinstance(engine, GuardedChatEngine)
        with gr.acting_as(CLINICIAN):
            first = engine.chat("What is the discharge plan for Harold Finch?")
            history = engine.chat_history
        # positive control: the clinician's own turn (MockLLM echoes its prompt) carries the name
        assert "Harold Finch" in first.response
        assert any("Harold Finch" in str(m.content) for m in history)
        with gr.acting_as(RESEARCHER):
            second = engine.chat("and the follow-up?")
            seen = " ".join(str(m.content) for m in engine.chat_history)
        # the researcher's prompt (echoed) and history hold none of the clinician's turn
        for value in PHI:
            assert value not in second.response
            assert value not in seen
        with gr.acting_as(CLINICIAN):
            assert len(engine.chat_history) == 2  # the clinician's own history is kept
        assert original._memory.get_all() == []  # the engine that was given is unchanged

    def test_same_user_under_another_purpose_gets_another_history(self, kb: Any) -> None:
        from guardrail.access import Principal

        gr, index, _ = kb
        engine = gr.guard(_chat(index, "context"))
        with gr.acting_as(CLINICIAN):
            engine.chat("discharge plan for Harold Finch")
        with gr.acting_as(Principal("dr-chen", ["clinician"], "operations")):
            assert engine.chat_history == []

    # LlamaIndex's own condense_plus_context stream leaves an event loop resource behind (not guardrail's)
    @pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    @pytest.mark.parametrize("mode", ["condense_plus_context", "context", "simple"])
    def test_streamed_and_async_chat_keep_histories_apart(self, kb: Any, mode: str) -> None:
        gr, index, _ = kb
        engine = gr.guard(_chat(index, mode))
        with gr.acting_as(CLINICIAN):
            streamed = "".join(engine.stream_chat("discharge plan for Harold Finch").response_gen)
        assert "Harold Finch" in streamed

        async def research() -> str:
            with gr.acting_as(RESEARCHER):
                reply = await engine.achat("and the follow-up?")
                stream = await engine.astream_chat("anything else?")
                text = "".join([d async for d in stream.async_response_gen()])
                return reply.response + text + " ".join(str(m.content) for m in engine.chat_history)

        seen = asyncio.run(research())
        assert seen  # something was answered
        for value in PHI:
            assert value not in seen

    def test_reset_forgets_only_the_current_principal(self, kb: Any) -> None:
        gr, index, _ = kb
        engine = gr.guard(_chat(index, "simple"))
        with gr.acting_as(CLINICIAN):
            engine.chat("hello")
        with gr.acting_as(SUPPORT):
            engine.chat("hello")
            engine.reset()
            assert engine.chat_history == []
        with gr.acting_as(CLINICIAN):
            assert len(engine.chat_history) == 2

    def test_histories_are_bounded(self, kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from guardrail.access import Principal
        from guardrail.llama_index import engines

        gr, index, _ = kb
        monkeypatch.setattr(engines, "MAX_SESSIONS", 2)
        engine = gr.guard(_chat(index, "simple"))
        people = [Principal(f"u-{i}", ["support"], "support") for i in range(3)]
        for person in people:
            with gr.acting_as(person):
                engine.chat("hello")
        with gr.acting_as(people[0]):
            assert engine.chat_history == []  # the least recently used history was forgotten
        with gr.acting_as(people[2]):
            assert len(engine.chat_history) == 2


class TestRefusals:
    """What cannot be guarded safely is refused, saying why and what to do."""

    def test_prefilled_memory_is_refused(self, kb: Any) -> None:
        gr, index, _ = kb
        memory = ChatMemoryBuffer.from_defaults(
            token_limit=2000, chat_history=[ChatMessage(role="user", content="earlier turn")]
        )
        engine = _chat(index, "context", memory=memory)
        with pytest.raises(EngineRefused, match="already holds messages"):
            gr.guard(engine)

    def test_external_chat_store_is_refused(self, kb: Any) -> None:
        from llama_index.core.storage.chat_store.base import BaseChatStore
        from llama_index.core.storage.chat_store.simple_chat_store import SimpleChatStore

        class SharedStore(SimpleChatStore):
            pass

        assert issubclass(SharedStore, BaseChatStore)
        gr, index, _ = kb
        memory = ChatMemoryBuffer.from_defaults(token_limit=2000, chat_store=SharedStore())
        engine = _chat(index, "context", memory=memory)
        with pytest.raises(EngineRefused, match="shared by everyone"):
            gr.guard(engine)

    def test_custom_query_engine_is_refused(self, kb: Any) -> None:
        class Mine(CustomQueryEngine):
            def custom_query(self, query_str: str) -> str:
                return query_str

        gr, _, _ = kb
        with pytest.raises(EngineRefused, match=r"guard the retriever it uses"):
            gr.guard(Mine())

    def test_an_agent_is_refused(self, kb: Any) -> None:
        import warnings

        from llama_index.core.agent.workflow import ReActAgent

        gr, index, _ = kb
        tool = QueryEngineTool.from_defaults(index.as_query_engine(llm=MockLLM()), name="notes")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LlamaIndex's own deprecation warnings when building agents
            agent = ReActAgent(tools=[tool], llm=MockLLM())
        with pytest.raises(EngineRefused, match="agent"):
            gr.guard(agent)

    def test_no_principal_is_denied_and_audited(self, kb: Any) -> None:
        gr, index, root = kb
        engine = gr.guard(_chat(index, "context"))
        before = len(events(root / "audit", "rag.response"))
        with pytest.raises(AccessDenied, match="acting_as"):
            engine.chat("discharge plan for Harold Finch")
        query = gr.guard(index.as_query_engine(llm=MockLLM()))
        with pytest.raises(AccessDenied, match="acting_as"):
            query.query("discharge plan")
        denied = [
            e for e in events(root / "audit", "rag.response")[before:] if e["event"]["outcome"] == "denied"
        ]
        assert len(denied) == 2
        assert all(e["actor"]["ref"] == "anonymous" for e in denied)
        assert all("Harold" not in str(e) for e in denied)


# --------------------------------------------------------------------------- composed engines


class FirstTool(BaseSelector):
    """Always selects the first tool (a user-supplied selector; no LLM needed)."""

    def _get_prompts(self) -> dict[str, Any]:
        return {}

    def _update_prompts(self, prompts: Any) -> None:
        pass

    def _select(self, choices: Any, query: Any) -> SelectorResult:
        return SelectorResult(selections=[SingleSelection(index=0, reason="first")])

    async def _aselect(self, choices: Any, query: Any) -> SelectorResult:
        return self._select(choices, query)


class FixedQuestions(BaseQuestionGenerator):
    """Two fixed sub-questions on the notes tool."""

    def _get_prompts(self) -> dict[str, Any]:
        return {}

    def _update_prompts(self, prompts: Any) -> None:
        pass

    def generate(self, tools: Any, query: Any) -> list[SubQuestion]:
        return [
            SubQuestion(sub_question="What is the discharge plan?", tool_name="notes"),
            SubQuestion(sub_question="When is the follow-up?", tool_name="notes"),
        ]

    async def agenerate(self, tools: Any, query: Any) -> list[SubQuestion]:
        return self.generate(tools, query)


def _tool(index: Any, llm: Any) -> QueryEngineTool:
    return QueryEngineTool(
        query_engine=index.as_query_engine(llm=llm, similarity_top_k=5),
        metadata=ToolMetadata(name="notes", description="clinical notes"),
    )


class TestComposedEngines:
    """Router and SubQuestion engines: what their tools retrieve is guarded, answers too."""

    def test_router_guards_its_tools(self, kb: Any) -> None:
        gr, index, _ = kb
        llm = MockLLM()
        router = RouterQueryEngine(selector=FirstTool(), query_engine_tools=[_tool(index, llm)], llm=llm)
        engine = gr.guard(router)
        assert isinstance(engine, RouterQueryEngine)
        with gr.acting_as(CLINICIAN):
            assert "Harold Finch" in str(engine.query("discharge plan CHF"))  # positive control
        with gr.acting_as(RESEARCHER):
            response = engine.query("discharge plan CHF")
        text = str(response) + " ".join(n.node.get_content() for n in response.source_nodes)
        assert "furosemide" in text  # the researcher gets the redacted note, not nothing
        for value in PHI:
            assert value not in text

    @pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
    def test_subquestion_guards_its_tools_and_its_answer(self, kb: Any, use_async: bool) -> None:
        gr, index, root = kb
        llm = ScriptedLLM(answer="Harold Finch goes home; call john.carter@example.org.")
        engine = gr.guard(
            SubQuestionQueryEngine.from_defaults(
                query_engine_tools=[_tool(index, llm)],
                question_gen=FixedQuestions(),
                llm=llm,
                use_async=use_async,
            )
        )
        assert isinstance(engine, SubQuestionQueryEngine)
        with gr.acting_as(CLINICIAN):
            assert "Harold Finch" in str(engine.query("discharge plan"))  # positive control
        llm.prompts.clear()
        before = len(events(root / "audit", "rag.response"))
        with gr.acting_as(RESEARCHER):
            response = engine.query("discharge plan")
        text = str(response) + " ".join(n.node.get_content() for n in response.source_nodes)
        assert "goes home" in text
        for value in (*PHI, "john.carter@example.org"):
            assert value not in text
        # what the LLM was sent for the researcher: redacted chunks and redacted sub-answers
        assert llm.prompts
        assert all("88412095" not in p for p in llm.prompts)
        assert len(events(root / "audit", "rag.response")) == before + 1  # one event per answer

    def test_the_guarded_query_engine_is_still_a_retriever_query_engine(self, kb: Any) -> None:
        gr, index, _ = kb
        original = index.as_query_engine(llm=MockLLM(), similarity_top_k=5)
        engine = gr.guard(original)
        assert isinstance(engine, RetrieverQueryEngine)
        assert engine.retriever is not original.retriever
        assert gr.guard(engine) is engine  # guarding twice changes nothing


@pytest.fixture(autouse=True)
def _collect() -> Any:
    """Collect garbage after each test, so a leaked resource is reported by the test that leaked it."""
    import gc

    yield
    _close_memories()
    gc.collect()


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
def test_chat_memory_and_answers_over_every_store(backend: Any, tmp_path: Path) -> None:
    """The same isolation and response guard over Simple, Chroma and Qdrant local."""
    gr, index = build(tmp_path, vector_store=backend.vector_store())
    engine = gr.guard(_chat(index, "condense_plus_context"))
    with gr.acting_as(CLINICIAN):
        assert "Harold Finch" in engine.chat("discharge plan for Harold Finch").response  # positive control
    with gr.acting_as(RESEARCHER):
        reply = engine.chat("and the follow-up?").response
    assert "furosemide" in reply  # the researcher's own (redacted) context, echoed
    for value in PHI:
        assert value not in reply
    answer = ScriptedLLM(answer="Harold Finch goes home; call john.carter@example.org.")
    query = gr.guard(index.as_query_engine(llm=answer, similarity_top_k=5))
    with gr.acting_as(RESEARCHER):
        text = str(query.query("discharge plan CHF"))
    assert "goes home" in text
    assert "Harold Finch" not in text
    assert "john.carter@example.org" not in text
    gr.close()
