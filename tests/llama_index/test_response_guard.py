"""The response guard, the query guard and pseudonym restoration, with a scripted LLM whose answer holds
personal data that is not in the context, the context's own released values and mangled tokens."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llama_index.core.memory import ChatMemoryBuffer
from scripted import CLINICIAN, RESEARCHER, SUPPORT, ScriptedLLM, build, events, policy_with

from guardrail.errors import PolicyError
from guardrail.llama_index import responses
from guardrail.llama_index.responses import WITHHELD, TokenMap, _Restorer, _split
from guardrail.policy import load_policy

# not in any document: memorised or hallucinated by the model
FOREIGN = ("John Carter", "john.carter@example.org", "123-45-6789")
ANSWER = (
    "Harold Finch goes home on furosemide. For questions call John Carter at john.carter@example.org "
    "(SSN 123-45-6789 on file). The front desk is frontdesk@stmarys-clinic.org."
)
RELEASED_TO_ALL = "frontdesk@stmarys-clinic.org"  # in the public notice: released in clear to everyone


def _engine(gr: Any, index: Any, llm: Any, **kwargs: Any) -> Any:
    return gr.guard(index.as_query_engine(llm=llm, similarity_top_k=5, **kwargs))


def _stream(engine: Any, question: str) -> list[str]:
    return list(engine.query(question).response_gen)


def _assert_never_shown(deltas: list[str], values: tuple[str, ...]) -> None:
    """No delta, and no prefix of the stream at any moment, shows any of ``values`` (even partly: the
    first 5 characters of a value never appear where the value would)."""
    text = ""
    for delta in deltas:
        text += delta
        for value in values:
            assert value not in text
            assert value[:5] not in delta or value[:5] in RELEASED_TO_ALL


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    root = tmp_path_factory.mktemp("responses")
    gr, index = build(root)
    return gr, index, root


class TestResponseGuard:
    """Personal data in an answer that the principal may not see is redacted, everyone else's stays."""

    def test_researcher_redacted_clinician_not(self, kb: Any) -> None:
        gr, index, _ = kb
        engine = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        with gr.acting_as(CLINICIAN):
            clinician = str(engine.query("discharge plan CHF"))
        assert clinician == ANSWER  # positive control: treatment sees everything
        with gr.acting_as(RESEARCHER):
            researcher = str(engine.query("discharge plan CHF"))
        assert "goes home on furosemide" in researcher  # redacted, not emptied
        for value in (*FOREIGN, "Harold Finch"):
            assert value not in researcher
        assert RELEASED_TO_ALL in researcher  # released in clear in this request: untouched

    def test_support_keeps_only_what_it_was_released(self, kb: Any) -> None:
        gr, index, _ = kb
        engine = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        with gr.acting_as(SUPPORT):
            text = str(engine.query("visiting hours front desk"))
        assert RELEASED_TO_ALL in text
        for value in (*FOREIGN, "Harold Finch"):
            assert value not in text

    def test_new_pseudonyms_never_reuse_a_context_token(self, kb: Any) -> None:
        gr, index, _ = kb
        llm = ScriptedLLM(answer=ANSWER)
        with gr.acting_as(RESEARCHER):
            text = str(_engine(gr, index, llm).query("discharge plan CHF"))
        seen = set(re.findall(r"<PERSON_\d+>", llm.prompts[-1]))
        assert seen  # the researcher's context is pseudonymised
        assert not seen & set(re.findall(r"<PERSON_\d+>", text))

    def test_block_mode_withholds_the_answer(self, tmp_path: Path) -> None:
        policy = policy_with(tmp_path, "responses:\n  mode: redact\n  profiles:\n    redact: {mode: block}\n")
        gr, index = build(tmp_path, policy)
        engine = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        with gr.acting_as(RESEARCHER):
            assert str(engine.query("discharge plan CHF")) == WITHHELD
            assert "".join(
                _stream(_engine(gr, index, ScriptedLLM(answer=ANSWER), streaming=True), "CHF")
            ) == (WITHHELD)
        with gr.acting_as(RESEARCHER):  # an answer without personal data is not withheld
            assert str(_engine(gr, index, ScriptedLLM(answer="Take furosemide daily.")).query("CHF")) == (
                "Take furosemide daily."
            )
        gr.close()
        withheld = [
            e for e in events(tmp_path / "audit", "rag.response") if e["event"]["outcome"] == "denied"
        ]
        assert len(withheld) == 2
        assert withheld[0]["response"]["withheld"]["PERSON"] >= 1

    def test_off_leaves_the_answer_alone(self, tmp_path: Path) -> None:
        gr, index = build(tmp_path, policy_with(tmp_path, "responses:\n  mode: off\n"))
        with gr.acting_as(RESEARCHER):
            assert str(_engine(gr, index, ScriptedLLM(answer=ANSWER)).query("CHF")) == ANSWER

    def test_chat_answer_and_memory_are_guarded(self, kb: Any) -> None:
        gr, index, _ = kb
        llm = ScriptedLLM(answer=ANSWER)
        engine = gr.guard(
            index.as_chat_engine(
                chat_mode="condense_question",
                llm=llm,
                memory=ChatMemoryBuffer.from_defaults(token_limit=3000),
            )
        )
        with gr.acting_as(RESEARCHER):
            reply = engine.chat("discharge plan CHF")
            engine.chat("and then?")
            history = " ".join(str(m.content) for m in engine.chat_history)
        for value in (*FOREIGN, "Harold Finch"):
            assert value not in reply.response
            assert value not in history  # the memory holds the guarded answer
            assert all(value not in p for p in llm.prompts[-2:])  # so the next prompt does too

    def test_audit_event_per_answer_counts_never_values(self, tmp_path: Path) -> None:
        gr, index = build(tmp_path)
        engine = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        with gr.acting_as(RESEARCHER):
            engine.query("discharge plan CHF")
            engine.query("discharge plan CHF")
        gr.close()
        answers = events(tmp_path / "audit", "rag.response")
        assert len(answers) == 2
        event = answers[0]
        assert event["response"]["redacted"]["PERSON"] >= 2
        assert event["response"]["redacted"]["EMAIL_ADDRESS"] == 1
        assert event["response"]["kept_released"] >= 1
        assert event["response"]["llm"] == [{"class": "ScriptedLLM", "model": "scripted-1"}]
        assert {"name": "undeclared", "class": "ScriptedLLM", "model": "scripted-1"}.items() <= (
            event["processors"][0].items()
        )
        assert event["query"]["chars"] == len("discharge plan CHF")
        assert len(event["query"]["mac"]) == 32
        raw = "\n".join(p.read_text() for p in (tmp_path / "audit").glob("segment-*.jsonl"))
        for value in (*FOREIGN, "Harold Finch", "discharge plan CHF"):
            assert value not in raw

    def test_no_audit_record_no_answer(self, kb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from guardrail.llama_index.guard import RetrievalBlocked

        gr, index, _ = kb
        engine = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        real = gr._audit_event

        def failing(event: dict[str, Any], **fields: Any) -> str:
            if event["category"] == "rag.response":
                raise OSError("disk full")
            return real(event, **fields)

        monkeypatch.setattr(gr, "_audit_event", failing)
        with gr.acting_as(CLINICIAN), pytest.raises(RetrievalBlocked, match="audit record"):
            engine.query("discharge plan CHF")

    def test_a_failing_observer_withholds_the_answer(self, kb: Any) -> None:
        from guardrail.llama_index.guard import RetrievalBlocked

        gr, index, _ = kb

        def broken(text: str, where: str) -> None:
            raise RuntimeError("alert endpoint down")

        responses.add_answer_observer(broken)
        try:
            with gr.acting_as(CLINICIAN), pytest.raises(RetrievalBlocked, match="observer"):
                _engine(gr, index, ScriptedLLM(answer=ANSWER)).query("discharge plan CHF")
        finally:
            responses.remove_answer_observer(broken)

    def test_reports_list_the_llm_as_processor(self, tmp_path: Path) -> None:
        from guardrail.reports import build_ropa, write_report

        gr, index = build(tmp_path)
        with gr.acting_as(RESEARCHER):
            _engine(gr, index, ScriptedLLM(answer=ANSWER)).query("discharge plan CHF")
        gr.close()
        text = write_report(build_ropa(tmp_path / "audit"), tmp_path / "ropa.md").read_text()
        assert "ScriptedLLM" in text


class TestStreaming:
    """The stream equals the full answer and never shows a raw value, even in one delta."""

    @pytest.mark.parametrize("step", [1, 2, 3, 7, 50], ids=lambda s: f"step{s}")
    def test_query_stream_equals_full_answer(self, kb: Any, step: int) -> None:
        gr, index, _ = kb
        full = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        streaming = _engine(gr, index, ScriptedLLM(answer=ANSWER, step=step), streaming=True)
        with gr.acting_as(RESEARCHER):
            expected = str(full.query("discharge plan CHF"))
            deltas = _stream(streaming, "discharge plan CHF")
        assert "".join(deltas) == expected
        assert len(deltas) > 1  # it does stream
        _assert_never_shown(deltas, (*FOREIGN, "Harold Finch"))
        with gr.acting_as(CLINICIAN):  # positive control: the clinician's stream is the raw answer
            assert "".join(_stream(streaming, "discharge plan CHF")) == ANSWER

    # LlamaIndex's own context-engine streams leave an event loop resource behind (not guardrail's)
    @pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    @pytest.mark.parametrize("mode", ["simple", "context", "condense_plus_context"])
    def test_stream_chat_and_astream_chat_equal_chat(self, kb: Any, mode: str) -> None:
        gr, index, _ = kb

        def engine() -> Any:
            return gr.guard(
                index.as_chat_engine(
                    chat_mode=mode,
                    llm=ScriptedLLM(answer=ANSWER, step=2),
                    memory=ChatMemoryBuffer.from_defaults(token_limit=3000),
                )
            )

        with gr.acting_as(RESEARCHER):
            expected = engine().chat("hello").response
            deltas = list(engine().stream_chat("hello").response_gen)

            async def run() -> tuple[list[str], str]:
                reply = await engine().achat("hello")
                stream = await engine().astream_chat("hello")
                return [d async for d in stream.async_response_gen()], reply.response

            adeltas, achat = asyncio.run(run())
        assert "".join(deltas) == expected == "".join(adeltas) == achat
        _assert_never_shown(deltas, (*FOREIGN, "Harold Finch"))
        _assert_never_shown(adeltas, (*FOREIGN, "Harold Finch"))

    def test_async_streamed_query_equals_query(self, kb: Any) -> None:
        gr, index, _ = kb
        streaming = _engine(gr, index, ScriptedLLM(answer=ANSWER, step=2), streaming=True)

        async def run() -> list[str]:
            response = await streaming.aquery("discharge plan CHF")
            return [d async for d in response.async_response_gen()]

        with gr.acting_as(RESEARCHER):
            expected = str(_engine(gr, index, ScriptedLLM(answer=ANSWER)).query("discharge plan CHF"))
            deltas = asyncio.run(run())
        assert "".join(deltas) == expected
        _assert_never_shown(deltas, (*FOREIGN, "Harold Finch"))

    def test_aquery_equals_query(self, kb: Any) -> None:
        gr, index, _ = kb
        engine = _engine(gr, index, ScriptedLLM(answer=ANSWER))
        with gr.acting_as(RESEARCHER):
            expected = str(engine.query("discharge plan CHF"))
            assert str(asyncio.run(engine.aquery("discharge plan CHF"))) == expected

    def test_observer_sees_every_released_text(self, kb: Any) -> None:
        gr, index, _ = kb
        seen: list[tuple[str, str]] = []
        observer = responses.add_answer_observer(lambda text, where: seen.append((where, text)))
        try:
            with gr.acting_as(RESEARCHER):
                deltas = _stream(_engine(gr, index, ScriptedLLM(answer=ANSWER), streaming=True), "CHF")
        finally:
            responses.remove_answer_observer(observer)
        assert [t for w, t in seen if w == "response.stream"] == deltas
        assert [t for w, t in seen if w == "response"] == ["".join(deltas)]

    @given(text=st.text(alphabet="ab .!?\n", max_size=60), cuts=st.lists(st.integers(0, 60), max_size=6))
    @settings(max_examples=200, deadline=None)
    def test_segments_do_not_depend_on_the_deltas(self, text: str, cuts: list[int]) -> None:
        whole, _ = _split(text, 8, final=True)
        pieces, buffer = [], ""
        for chunk in _chunks(text, cuts):
            buffer += chunk
            done, pos = _split(buffer, 8, final=False)
            pieces += done
            buffer = buffer[pos:]
        pieces += _split(buffer, 8, final=True)[0]
        assert pieces == whole
        assert "".join(whole) == text


def _chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


# --------------------------------------------------------------------------- restoration

RESTORE = "responses:\n  profiles:\n    none: {restore_in_response: true}\n    redact: {query: redact}\n"


@pytest.fixture(scope="module")
def restoring(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    root = tmp_path_factory.mktemp("restore")
    gr, index = build(root, policy_with(root, RESTORE))
    return gr, index, root


def _harold_token(gr: Any, index: Any) -> str:
    """The token Harold Finch gets in the clinician's context (the map is per request, deterministic)."""
    probe = ScriptedLLM(answer="ok")
    with gr.acting_as(CLINICIAN):
        _engine(gr, index, probe).query("discharge plan CHF")
    match = re.search(r"Discharge plan for <PERSON_(\d+)>", probe.prompts[-1])
    assert match is not None, "the clinician's context reached the LLM pseudonymised"
    return match.group(1)


class TestRestoration:
    """The LLM sees tokens; the principal allowed gets the values back, nobody else does."""

    def test_llm_sees_tokens_clinician_gets_values(self, restoring: Any) -> None:
        gr, index, root = restoring
        n = _harold_token(gr, index)
        mangled = [
            f"<PERSON_{n}>",
            f"<person_{n}>",
            f"< PERSON_{n} >",
            f"PERSON_{n}>",
            f"<PERSON{n}>",
            f"<Person {n}>",
        ]
        answer = " / ".join(mangled) + " and <PERSON_97> (unknown) take furosemide."
        llm = ScriptedLLM(answer=answer)
        with gr.acting_as(CLINICIAN):
            text = str(_engine(gr, index, llm).query("discharge plan CHF"))
        assert all("Harold Finch" not in p for p in llm.prompts)  # the LLM never saw the name
        assert text.count("Harold Finch") == len(mangled)
        assert "<PERSON_97>" in text  # never restore a token that is not in this request's map
        restored = events(root / "audit", "rag.reidentify")
        assert restored
        assert restored[-1]["pii"]["counts"] == {"PERSON": len(mangled)}

    def test_researcher_never_gets_restored_values(self, restoring: Any) -> None:
        gr, index, _ = restoring
        n = _harold_token(gr, index)
        with gr.acting_as(RESEARCHER):
            text = str(_engine(gr, index, ScriptedLLM(answer=f"<PERSON_{n}> goes home.")).query("CHF"))
        assert "Harold Finch" not in text
        assert f"<PERSON_{n}>" in text

    def test_a_profile_restores_only_what_it_releases_in_clear(self, tmp_path: Path) -> None:
        from guardrail.access import Principal

        policy = policy_with(tmp_path, "responses:\n  profiles:\n    limited: {restore_in_response: true}\n")
        gr, index = build(tmp_path, policy)
        operations = Principal("dr-chen", ["clinician"], "operations")  # profile limited: names pseudonymised
        llm = ScriptedLLM(answer="<PERSON_1> and <person 2> go home.")
        with gr.acting_as(operations):
            text = str(_engine(gr, index, llm).query("discharge plan CHF"))
        assert "<PERSON_1>" in llm.prompts[-1]  # the profile's own pseudonym reached the LLM
        assert "Harold Finch" not in text
        assert "Amara Okafor" not in text

    @pytest.mark.parametrize("step", [1, 2, 3, 5], ids=lambda s: f"step{s}")
    def test_streamed_restoration_never_flickers(self, restoring: Any, step: int) -> None:
        gr, index, _ = restoring
        n = _harold_token(gr, index)
        answer = f"Patient <PERSON_{n}> goes home; <person {n}> was told; <PERSON_98> is unknown."
        with gr.acting_as(CLINICIAN):
            full = str(_engine(gr, index, ScriptedLLM(answer=answer)).query("CHF"))
            deltas = _stream(_engine(gr, index, ScriptedLLM(answer=answer, step=step), streaming=True), "CHF")
        assert "".join(deltas) == full
        assert full.count("Harold Finch") == 2
        # a split token is restored once: no delta shows a piece of a known token
        assert not any(re.search(r"<\s*pers|ON_\d|on \d", d, re.IGNORECASE) for d in deltas if "98" not in d)

    def test_query_guard_redacts_what_the_llm_and_embedder_see(self, restoring: Any) -> None:
        gr, index, root = restoring
        llm = ScriptedLLM(answer="ok")
        question = "What is the plan for Harold Finch?"
        with gr.acting_as(RESEARCHER):  # profile redact: query: redact
            _engine(gr, index, llm).query(question)
        assert "Harold Finch" not in llm.prompts[-1]
        retrieval = events(root / "audit", "rag.retrieval")[-1]
        assert retrieval["query"]["chars"] != len(question)  # the retriever got the redacted question
        answer = events(root / "audit", "rag.response")[-1]
        assert answer["query"]["chars"] == len(question)
        assert answer["query"]["pii"] == {"PERSON": 1}
        with gr.acting_as(CLINICIAN):  # positive control: query: keep for the clinician's profile
            _engine(gr, index, llm).query(question)
        assert "Harold Finch" in llm.prompts[-1]


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("<PERSON_1>", True),
        ("<US_SSN>", True),
        ("<PERSON#0a1b2c3d4e5f6a7b>", True),
        ("J_SMITH_42", False),
        ("PERSON_1", False),
        ("<JSMITH_42>", False),
        ("<PERSON_1", False),
    ],
)
def test_only_guardrail_tokens_are_left_alone(value: str, token: bool) -> None:
    assert responses._is_token(value) is token


class TestRestorer:
    """Restoration alone: tolerant of what LLMs do, never restoring what is not in the map."""

    def _restorer(self) -> _Restorer:
        tokens = TokenMap()
        assert tokens.token("PERSON", "Ada Finch") == "<PERSON_1>"
        assert tokens.token("MEDICAL_RECORD_NUMBER", "88412095") == "<MEDICAL_RECORD_NUMBER_1>"
        answer = responses._Answer(
            principal=CLINICIAN, decision=None, profile="none", mode="off", query_mode="keep", tokens=tokens
        )
        return _Restorer(answer)

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("<PERSON_1>", "Ada Finch"),
            ("<person_1>", "Ada Finch"),
            ("<PERSON 1>", "Ada Finch"),
            ("PERSON_1>", "Ada Finch"),
            ("<PERSON_1", "Ada Finch"),
            ("PERSON_1", "Ada Finch"),
            ("<MEDICAL RECORD NUMBER 1>", "88412095"),
            ("<MEDICALRECORDNUMBER_1>", "88412095"),
            ("<PERSON_2>", "<PERSON_2>"),
            ("<EMAIL_ADDRESS_1>", "<EMAIL_ADDRESS_1>"),
            ("person 1", "person 1"),
            ("SUPERPERSON_1>", "SUPERPERSON_1>"),
            ("<PERSON_10>", "<PERSON_10>"),
        ],
    )
    def test_forms(self, raw: str, expected: str) -> None:
        restorer = self._restorer()
        assert restorer.feed(f"x {raw} y") + restorer.flush() == f"x {expected} y"

    def test_tokens_already_in_the_context_are_never_reused(self) -> None:
        tokens = TokenMap()
        tokens.reserve(["seen by <PERSON_1> and <PERSON_2>, MRN <MEDICAL_RECORD_NUMBER_1>"])
        assert tokens.token("PERSON", "Ada Finch") == "<PERSON_3>"
        assert tokens.value("PERSON", 1) is None  # a context token is not restorable

    def test_any_cut_gives_the_same_text(self) -> None:
        text = "Ask <PERSON_1> (MRN <MEDICAL_RECORD_NUMBER_1>), not <PERSON_3> or PERSONAL data, person 1."
        expected = self._restorer().feed(text)
        rnd = random.Random(7)
        for _ in range(200):
            restorer = self._restorer()
            cuts = sorted(rnd.sample(range(1, len(text)), 6))
            out = ""
            for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True):
                out += restorer.feed(text[a:b])
            assert out + restorer.flush() == expected + self._restorer().flush()


class TestPolicySection:
    """``responses`` is validated like the rest of the policy: file, YAML path, line, reason."""

    def test_shipped_packs_load(self) -> None:
        for pack in ("default", "gdpr", "hipaa-safe-harbor"):
            assert load_policy(pack).responses.mode == "redact"

    def test_unknown_profile(self, tmp_path: Path) -> None:
        path = policy_with(tmp_path, "responses:\n  profiles:\n    nobody: {mode: block}\n")
        with pytest.raises(PolicyError, match=r"responses\.profiles\.nobody.*not defined") as info:
            load_policy(path)
        assert str(path) in str(info.value)
        assert re.search(r":\d+", str(info.value))

    def test_unknown_mode(self, tmp_path: Path) -> None:
        path = policy_with(tmp_path, "responses:\n  mode: scrub\n")
        with pytest.raises(PolicyError, match=r"responses\.mode"):
            load_policy(path)


def test_audit_records_stay_json(kb: Any) -> None:
    _, _, root = kb
    for segment in (root / "audit").glob("segment-*.jsonl"):
        for line in segment.read_text().splitlines():
            json.loads(line)
