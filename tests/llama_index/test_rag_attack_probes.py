"""Attack probes: paths a LlamaIndex user composes that the guard must cover (found by probing, kept as
regressions). Each has a positive control: the principal allowed to see the value sees it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RouterQueryEngine, SubQuestionQueryEngine
from llama_index.core.question_gen import LLMQuestionGenerator
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.core.selectors import LLMSingleSelector
from llama_index.core.tools import QueryEngineTool, ToolMetadata
from scripted import CLINICIAN, RESEARCHER, SUPPORT, ScriptedLLM, build, policy_with

from guardrail.access import AccessDenied, Principal
from guardrail.llama_index.hashing import HashingEmbedding

#: what an LLM may write on its own (memorised, inferred): never in the store, so no retrieval decides it
WRITTEN = ("Harold Finch", "555-867-5309")


def _leaks(text: str) -> list[str]:
    return [value for value in WRITTEN if value in text]


def _texts(response: Any) -> str:
    parts = [str(response), json.dumps(response.metadata or {}, default=str)]
    parts += [n.node.get_content() for n in response.source_nodes]
    return "\n".join(parts)


def _subquestion_engine(index: Any) -> tuple[SubQuestionQueryEngine, ScriptedLLM]:
    writer = ScriptedLLM(answer="furosemide 40 mg daily.")
    planner = ScriptedLLM(
        answer='```json\n{"items": [{"sub_question": "What does Harold Finch (555-867-5309) take?", '
        '"tool_name": "notes"}]}\n```'
    )
    tool = QueryEngineTool(
        query_engine=index.as_query_engine(llm=writer),
        metadata=ToolMetadata(name="notes", description="clinical notes"),
    )
    engine = SubQuestionQueryEngine.from_defaults(
        query_engine_tools=[tool],
        llm=writer,
        question_gen=LLMQuestionGenerator.from_defaults(llm=planner),
        use_async=False,
        verbose=True,
    )
    return engine, planner


def _router_engine(index: Any) -> RouterQueryEngine:
    writer = ScriptedLLM(answer="furosemide 40 mg daily.")
    chooser = ScriptedLLM(answer='[{"choice": 1, "reason": "Harold Finch (555-867-5309) is in the notes"}]')
    tools = [
        QueryEngineTool(
            query_engine=index.as_query_engine(llm=writer),
            metadata=ToolMetadata(name=name, description=f"{name} notes"),
        )
        for name in ("ward", "clinic")
    ]
    return RouterQueryEngine(
        selector=LLMSingleSelector.from_defaults(llm=chooser),
        query_engine_tools=tools,
        llm=writer,
        verbose=True,
    )


@pytest.mark.parametrize("principal", [RESEARCHER, SUPPORT], ids=lambda p: p.id)
def test_subquestion_questions_written_by_the_llm_pass_the_response_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], principal: Principal
) -> None:
    gr, index = build(tmp_path)
    engine, planner = _subquestion_engine(index)
    guarded = gr.guard(engine)
    with gr.acting_as(principal):
        response = guarded.query("what is the discharge plan?")
    printed = capsys.readouterr().out
    assert planner.prompts, "the question generator was not called"
    assert "[notes] Q:" in printed  # verbose printed the sub-question...
    assert _leaks(printed) == []  # ...as the principal may see it
    assert _leaks(_texts(response)) == []
    assert "Sub question:" in _texts(response)
    gr.close()


def test_subquestion_positive_control_clinician_sees_the_question(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gr, index = build(tmp_path)
    engine, _ = _subquestion_engine(index)
    guarded = gr.guard(engine)
    with gr.acting_as(CLINICIAN):
        response = guarded.query("what is the discharge plan?")
    assert "Harold Finch" in capsys.readouterr().out
    assert "Harold Finch" in _texts(response)
    gr.close()


@pytest.mark.parametrize("principal", [RESEARCHER, SUPPORT], ids=lambda p: p.id)
def test_router_selector_reason_written_by_the_llm_passes_the_response_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], principal: Principal
) -> None:
    gr, index = build(tmp_path)
    guarded = gr.guard(_router_engine(index))
    with gr.acting_as(principal):
        response = guarded.query("what is the discharge plan?")
    printed = capsys.readouterr().out
    assert "Selecting query engine" in printed
    assert _leaks(printed) == []
    assert _leaks(_texts(response)) == []
    gr.close()


def test_router_positive_control_clinician_sees_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gr, index = build(tmp_path)
    guarded = gr.guard(_router_engine(index))
    with gr.acting_as(CLINICIAN):
        response = guarded.query("what is the discharge plan?")
    assert "Harold Finch" in capsys.readouterr().out
    assert "Harold Finch" in json.dumps(response.metadata, default=str)
    gr.close()


def _fusion(index: Any, planner: ScriptedLLM) -> Any:
    from llama_index.core.retrievers import QueryFusionRetriever

    return QueryFusionRetriever(
        [index.as_retriever(similarity_top_k=2)],
        num_queries=3,
        llm=planner,
        similarity_top_k=2,
        verbose=True,
        use_async=False,
    )


#: queries a fusion retriever's LLM writes: a full name, then its surname alone on another line
GENERATED = "1. Harold Finch discharge 555-867-5309\n2. Finch furosemide"


@pytest.mark.parametrize("principal", [RESEARCHER, SUPPORT], ids=lambda p: p.id)
def test_fusion_queries_written_by_the_llm_pass_the_response_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], principal: Principal
) -> None:
    gr, index = build(tmp_path)
    planner = ScriptedLLM(answer=GENERATED)
    retriever = gr.guard(_fusion(index, planner))
    with gr.acting_as(principal):
        nodes = retriever.retrieve("discharge plan")
    printed = capsys.readouterr().out
    assert planner.prompts
    assert "Generated queries:" in printed
    assert _leaks(printed) == []
    assert "Finch" not in printed
    assert all("Finch" not in n.node.get_content() for n in nodes)
    gr.close()


def test_fusion_positive_control_clinician_sees_the_queries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gr, index = build(tmp_path)
    retriever = gr.guard(_fusion(index, ScriptedLLM(answer=GENERATED)))
    with gr.acting_as(CLINICIAN):
        nodes = retriever.retrieve("discharge plan")
    assert "2. Finch furosemide" in capsys.readouterr().out
    assert any("Harold Finch" in n.node.get_content() for n in nodes)
    gr.close()


ANSWER = "Harold Finch goes home today. Finch: furosemide."


def test_surname_alone_in_a_later_sentence_of_the_answer_is_redacted(tmp_path: Path) -> None:
    gr, index = build(tmp_path)
    llm = ScriptedLLM(answer=ANSWER)
    engine = gr.guard(index.as_query_engine(llm=llm))
    streaming = gr.guard(index.as_query_engine(llm=llm, streaming=True))
    with gr.acting_as(RESEARCHER):
        whole = str(engine.query("discharge plan"))
        streamed = "".join(streaming.query("discharge plan").response_gen)
    with gr.acting_as(CLINICIAN):
        clear = str(engine.query("discharge plan"))
    assert "Finch" not in whole
    assert "Finch" not in streamed
    assert "furosemide" in whole
    assert clear == llm.answer  # positive control
    gr.close()


class PinnedNote(BaseNodePostprocessor):
    """A user's postprocessor adding a node from outside the guarded store (a plain docstore, a cache)."""

    @classmethod
    def class_name(cls) -> str:
        return "PinnedNote"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: Any = None) -> list[NodeWithScore]:
        pinned = TextNode(text="Pinned: Harold Finch, call 555-867-5309, needs furosemide.")
        return [*nodes, NodeWithScore(node=pinned, score=1.0)]


@pytest.mark.parametrize("principal", [RESEARCHER, SUPPORT], ids=lambda p: p.id)
def test_node_a_postprocessor_adds_is_decided_before_the_llm_sees_it(
    tmp_path: Path, principal: Principal
) -> None:
    gr, index = build(tmp_path)
    llm = ScriptedLLM(answer="See the notes.")
    engine = gr.guard(index.as_query_engine(llm=llm, node_postprocessors=[PinnedNote()]))
    with gr.acting_as(principal):
        response = engine.query("visiting hours")
    assert llm.prompts
    assert _leaks(llm.prompts[-1]) == []
    assert _leaks(_texts(response)) == []
    assert "Visiting hours" in llm.prompts[-1]  # the guarded store's public node still reaches the LLM
    gr.close()


def test_node_a_postprocessor_adds_positive_control_clinician(tmp_path: Path) -> None:
    gr, index = build(tmp_path)
    llm = ScriptedLLM(answer="See the notes.")
    engine = gr.guard(index.as_query_engine(llm=llm, node_postprocessors=[PinnedNote()]))
    with gr.acting_as(CLINICIAN):
        engine.query("visiting hours")
    assert "Harold Finch, call 555-867-5309" in llm.prompts[-1]
    gr.close()


def test_router_with_a_function_calling_selector_is_refused(tmp_path: Path) -> None:
    from llama_index.core.base.base_selector import SingleSelection
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.program.function_program import FunctionCallingProgram
    from llama_index.core.selectors import PydanticSingleSelector

    from guardrail.llama_index.engines import EngineRefused

    gr, index = build(tmp_path)
    tools = [
        QueryEngineTool(
            query_engine=index.as_query_engine(llm=ScriptedLLM()),
            metadata=ToolMetadata(name=n, description=n),
        )
        for n in ("ward", "clinic")
    ]
    program = FunctionCallingProgram.from_defaults(
        output_cls=SingleSelection,
        prompt_template_str="{context_list} {query_str}",
        llm=MockFunctionCallingLLM(),
    )
    selector = PydanticSingleSelector(selector_program=program)
    with pytest.raises(EngineRefused, match="LLMSingleSelector"):
        gr.guard(RouterQueryEngine(selector=selector, query_engine_tools=tools, llm=ScriptedLLM()))
    # the LLM selector is guarded (its output passes the response guard: tests above)
    gr.guard(
        RouterQueryEngine(
            selector=LLMSingleSelector.from_defaults(llm=ScriptedLLM()),
            query_engine_tools=tools,
            llm=ScriptedLLM(),
        )
    )
    gr.close()


def _recursive(index: Any) -> Any:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.retrievers import RecursiveRetriever
    from llama_index.core.schema import IndexNode

    from guardrail.llama_index.hashing import HashingEmbedding

    top = VectorStoreIndex(
        [IndexNode(text="discharge plans", index_id="notes")], embed_model=HashingEmbedding()
    )
    writer = ScriptedLLM(answer="Harold Finch (call 555-867-5309) goes home.")
    return RecursiveRetriever(
        "top",
        retriever_dict={"top": top.as_retriever()},
        query_engine_dict={"notes": index.as_query_engine(llm=writer)},  # not guarded by the user
        verbose=True,
    )


@pytest.mark.parametrize("principal", [RESEARCHER, SUPPORT], ids=lambda p: p.id)
def test_recursive_retriever_query_engine_answers_pass_the_response_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], principal: Principal
) -> None:
    gr, index = build(tmp_path)
    retriever = gr.guard(_recursive(index))
    with gr.acting_as(principal):
        nodes = retriever.retrieve("discharge plan")
    printed = capsys.readouterr().out
    assert "Got response:" in printed
    assert _leaks(printed) == []
    assert all(_leaks(n.node.get_content()) == [] for n in nodes)
    gr.close()


def test_recursive_retriever_positive_control_clinician(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gr, index = build(tmp_path)
    retriever = gr.guard(_recursive(index))
    with gr.acting_as(CLINICIAN):
        nodes = retriever.retrieve("discharge plan")
    assert "Got response: Harold Finch (call 555-867-5309)" in capsys.readouterr().out
    assert any("Harold Finch" in n.node.get_content() for n in nodes)
    gr.close()


class SpyEmbedding(HashingEmbedding):
    """Records the query strings an embedding model (often a remote API) is sent."""

    seen: list[str] = []  # noqa: RUF012 - a pydantic field: each instance gets its own list

    def _get_query_embedding(self, query: str) -> list[float]:
        self.seen.append(query)
        return super()._get_query_embedding(query)


@pytest.mark.parametrize(
    ("principal", "clear"), [(RESEARCHER, False), (SUPPORT, False), (CLINICIAN, True)], ids=str
)
def test_hyde_document_written_by_the_llm_passes_the_response_guard(
    tmp_path: Path, principal: Principal, clear: bool
) -> None:
    from llama_index.core.indices.query.query_transform import HyDEQueryTransform
    from llama_index.core.retrievers import TransformRetriever

    gr, index = build(tmp_path)
    writer = ScriptedLLM(answer="Harold Finch (call 555-867-5309) was discharged on furosemide.")
    spy = SpyEmbedding()
    retriever = gr.guard(
        TransformRetriever(index.as_retriever(embed_model=spy), HyDEQueryTransform(llm=writer))
    )
    with gr.acting_as(principal):
        retriever.retrieve("discharge plan")
    assert writer.prompts
    assert any("furosemide" in q for q in spy.seen)  # the hypothetical document was embedded
    assert any("Harold Finch" in q for q in spy.seen) is clear
    gr.close()


@pytest.mark.parametrize(
    ("principal", "query_mode", "clear"),
    [
        (RESEARCHER, "redact", False),
        (SUPPORT, "redact", False),
        (CLINICIAN, "redact", True),  # profile none: the question as asked
        (RESEARCHER, "keep", True),
    ],
    ids=str,
)
def test_query_guard_applies_to_a_bare_guarded_retriever(
    tmp_path: Path, principal: Principal, query_mode: str, clear: bool
) -> None:
    from llama_index.core.schema import QueryBundle

    gr, index = build(tmp_path, policy_with(tmp_path, f"responses:\n  query: {query_mode}\n"))
    spy = SpyEmbedding()
    retriever = gr.guard(index.as_retriever(embed_model=spy))
    with gr.acting_as(principal):
        retriever.retrieve("discharge plan for Harold Finch")
        retriever.retrieve(QueryBundle("discharge plan", custom_embedding_strs=["plan of Harold Finch"]))
    assert len(spy.seen) == 2
    assert all(("Harold Finch" in q) is clear for q in spy.seen)
    gr.close()


@pytest.mark.parametrize(
    ("principal", "clear"), [(RESEARCHER, False), (SUPPORT, False), (CLINICIAN, True)], ids=str
)
def test_guarded_engine_retrieve_returns_what_its_llm_would_get(
    tmp_path: Path, principal: Principal, clear: bool
) -> None:
    import asyncio

    from llama_index.core.schema import QueryBundle

    gr, index = build(tmp_path)
    engine = gr.guard(index.as_query_engine(llm=ScriptedLLM(), node_postprocessors=[PinnedNote()]))
    with gr.acting_as(principal):
        nodes = engine.retrieve(QueryBundle("visiting hours"))
        anodes = asyncio.run(engine.aretrieve(QueryBundle("visiting hours")))
    for got in (nodes, anodes):
        texts = [n.node.get_content() for n in got]
        assert any("Visiting hours" in t for t in texts)
        assert any("Harold Finch" in t for t in texts) is clear  # the pinned node, decided on the spot
    with pytest.raises(AccessDenied):
        engine.retrieve(QueryBundle("visiting hours"))  # no principal
    gr.close()


def test_summary_and_keyword_indices_over_the_sealed_docstore_release_what_each_may_see(
    tmp_path: Path,
) -> None:
    from llama_index.core import SimpleKeywordTableIndex, SummaryIndex, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import Document
    from scripted import NOTE, PUBLIC

    gr, _ = build(tmp_path)
    storage = gr.storage_context(name="summary")
    docs = [
        Document(text=NOTE, metadata={"subjects": ["patient-88412095"]}),
        Document(text=PUBLIC, metadata={"classification": "public"}),
    ]
    nodes = gr.annotator()(SentenceSplitter().get_nodes_from_documents(docs))
    VectorStoreIndex(
        nodes, storage_context=storage, embed_model=HashingEmbedding(), store_nodes_override=True
    )
    ids = [n.node_id for n in nodes]
    with gr.release_all(reason="build the summary and keyword indices"):
        opened = storage.docstore.get_nodes(ids)
    summary = SummaryIndex([], storage_context=storage, llm=ScriptedLLM())
    summary.insert_nodes(opened)
    keywords = SimpleKeywordTableIndex([], storage_context=storage, llm=ScriptedLLM())
    keywords.insert_nodes(opened)
    for index in (summary, keywords):
        retriever = gr.guard(index.as_retriever())
        with gr.acting_as(SUPPORT):  # failed with "doc_id ... not found" on the withheld note
            support = [n.node.get_content() for n in retriever.retrieve("Finch visiting hours")]
        with gr.acting_as(RESEARCHER):
            research = [n.node.get_content() for n in retriever.retrieve("Finch visiting hours")]
        with gr.acting_as(CLINICIAN):
            clinician = [n.node.get_content() for n in retriever.retrieve("Finch visiting hours")]
        assert support == [PUBLIC]
        assert any("<PERSON_" in t for t in research)
        assert all("Harold Finch" not in t for t in research)
        assert any("Harold Finch" in t for t in clinician)  # positive control
    gr.close()
