"""Canaries: planted fake identifiers that trip exactly one ``canary.tripped`` event where they reach
someone in clear (an unguarded retrieval, a clear release, an LLM answer, a dataset export), and never
when the release was redacted. No planted value ever appears in the audit log, logs or errors."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.node_parser import SentenceSplitter

from guardrail import Guardrail
from guardrail.access import Principal
from guardrail.audit import verify
from guardrail.canaries import (
    CanaryAlert,
    CanaryRegistry,
    CanaryRegistryError,
    check_file,
    make_canaries,
)
from guardrail.datasets.run import GateFailed, redact_file, rules_for
from guardrail.errors import ConfigError, OutputExistsError
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.policy import load_policy

SUPPORT = Principal("agent-7", ["support"], "support")  # gdpr: pseudonymised
DPO = Principal("dpo-1", ["dpo"], "legal")  # gdpr: in clear
OTHER = "The cafeteria is open from 07:00 to 19:00 on weekdays."


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A keyring with 2 note canaries and 2 record canaries, their files and their values."""
    base = tmp_path_factory.mktemp("canaries")
    ring = Keyring.create(base / "keys")
    notes = make_canaries("note", 2, base / "notes.jsonl", keyring=ring, tenant="acme")
    records = make_canaries("record", 2, base / "records.jsonl", keyring=ring, tenant="acme")
    registry = CanaryRegistry(ring)
    values = {cid: registry.reveal(cid) for cid in (*notes.ids, *records.ids)}
    texts = [json.loads(line)["text"] for line in (base / "notes.jsonl").read_text().splitlines()]
    return {"base": base, "keys": base / "keys", "notes": notes, "records": records, "values": values,
            "texts": texts}  # fmt: skip


def _strings(record: Any) -> list[str]:
    from guardrail.canaries import strings_of

    return list(strings_of(record))


def _value(planted: dict[str, Any], canary: str, entity: str) -> str:
    """The first planted value of ``entity`` (for PERSON: the full name; the surname comes second)."""
    return next(v for e, v in planted["values"][canary] if e == entity)


def _all_values(planted: dict[str, Any]) -> list[str]:
    return [v for pairs in planted["values"].values() for _, v in pairs]


def _events(audit: Path) -> list[dict[str, Any]]:
    out = []
    for segment in sorted(audit.glob("segment-*.jsonl")):
        out += [json.loads(x) for x in segment.read_text(encoding="utf-8").splitlines() if x.strip()]
    return out


def _trips(audit: Path) -> list[dict[str, Any]]:
    return [e for e in _events(audit) if e["event"]["category"] == "canary.tripped"]


def _assert_no_value_in(planted: dict[str, Any], *texts: str) -> None:
    for text in texts:
        for value in _all_values(planted):
            assert value not in text


def _gr(planted: dict[str, Any], tmp_path: Path, policy: str = "gdpr") -> Guardrail:
    return Guardrail(policy, keyring=planted["keys"], audit_log=tmp_path / "audit", tenant="acme")


class ScriptedLLM(CustomLLM):
    """A LlamaIndex LLM whose answer (and stream) is a fixed string; instrumented like every LlamaIndex
    LLM integration (``llm_completion_callback``)."""

    answer: str = "No answer."

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self.answer)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        text = ""
        for i in range(0, len(self.answer), 7):
            text += self.answer[i : i + 7]
            yield CompletionResponse(text=text, delta=self.answer[i : i + 7])


class TestRegistry:
    """The keyring keeps sealed values and keyed digests, never a planted value in clear."""

    def test_registry_holds_no_plaintext(self, planted: dict[str, Any]) -> None:
        raw = (planted["keys"] / "canaries.json").read_text(encoding="utf-8")
        assert (planted["keys"] / "canaries.json").stat().st_mode & 0o777 == 0o600
        _assert_no_value_in(planted, raw)
        # positive control: the output file carries them, and every value is revealed from its seal
        notes = (planted["base"] / "notes.jsonl").read_text(encoding="utf-8")
        for cid in planted["notes"].ids:
            entities = {e for e, _ in planted["values"][cid]}
            assert entities == {"PERSON", "MEDICAL_RECORD_NUMBER", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER"}
            assert all(v in notes for _, v in planted["values"][cid])
        described = CanaryRegistry(planted["keys"]).describe()
        assert {d["id"] for d in described} == set(planted["values"])
        assert all(d["tenant"] == "acme" for d in described)

    def test_values_are_never_issued_kinds(self, planted: dict[str, Any]) -> None:
        for pairs in planted["values"].values():
            found = dict(pairs)  # the last value per entity
            assert found["US_SSN"].startswith("9")  # the SSA never issues area numbers 900-999
            assert found["EMAIL_ADDRESS"].split("@")[1] in ("example.org", "example.net")
            assert "555-01" in found["PHONE_NUMBER"]

    @pytest.mark.parametrize(
        ("mangle", "hits"),
        [
            (lambda v: v, True),
            (str.upper, True),
            (lambda v: v.replace("-", ""), True),
            (lambda v: v.replace("-", " "), True),
            (lambda v: v[:-1] + ("0" if v[-1] != "0" else "1"), False),  # another number
        ],
        ids=["as-is", "upper", "no-dashes", "spaces", "one-digit-off"],
    )
    def test_matcher_sees_through_spelling(self, planted: dict[str, Any], mangle: Any, hits: bool) -> None:
        matcher = CanaryRegistry(planted["keys"]).matcher()
        cid = planted["notes"].ids[0]
        ssn = _value(planted, cid, "US_SSN")
        found = matcher.canaries_in([f"the number is {mangle(ssn)}."])
        assert (cid in found) is hits

    def test_metadata_and_relationships_are_watched(self, planted: dict[str, Any], tmp_path: Path) -> None:
        from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

        gr = _gr(planted, tmp_path)
        watch = gr.canaries()
        email = _value(planted, planted["notes"].ids[0], "EMAIL_ADDRESS")
        mrn = _value(planted, planted["notes"].ids[1], "MEDICAL_RECORD_NUMBER")
        node = TextNode(text=OTHER, metadata={"authors": ["x", email]})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="d", metadata={"chart": mrn})
        assert sorted(watch.observe_nodes([node], where="rag.unguarded")) == sorted(planted["notes"].ids)
        assert (
            watch.observe_nodes([TextNode(text=OTHER, metadata={"title": "menu"})], where="rag.unguarded")
            == []
        )
        watch.close()
        gr.close()

    def test_given_name_alone_does_not_trip(self, planted: dict[str, Any]) -> None:
        matcher = CanaryRegistry(planted["keys"]).matcher()
        cid = planted["notes"].ids[0]
        name = _value(planted, cid, "PERSON")
        assert matcher.canaries_in([f"Hello {name.split()[0]}, welcome."]) == {}
        assert cid in matcher.canaries_in([f"Hello {name.upper()}, welcome."])

    def test_a_writable_registry_is_refused(self, planted: dict[str, Any]) -> None:
        path = planted["keys"] / "canaries.json"
        path.chmod(0o660)
        try:
            with pytest.raises(CanaryRegistryError, match="chmod 600"):
                CanaryRegistry(planted["keys"])
        finally:
            path.chmod(0o600)
        assert len(CanaryRegistry(planted["keys"]).matcher())

    def test_another_keyring_cannot_read_the_registry(self, planted: dict[str, Any], tmp_path: Path) -> None:
        other = Keyring.create(tmp_path / "other")
        (tmp_path / "other" / "canaries.json").write_text(
            (planted["keys"] / "canaries.json").read_text(encoding="utf-8"), encoding="utf-8"
        )
        with pytest.raises(CanaryRegistryError, match="another keyring"):
            CanaryRegistry(other)


@pytest.mark.parametrize("kind", ["note", "chat", "record"])
def test_redacted_canaries_never_match(kind: str, tmp_path: Path, gr_default: Guardrail) -> None:
    """Every planted value is one the detector finds: redacting a canary leaves nothing to match."""
    Keyring.create(tmp_path / "keys")
    made = make_canaries(kind, 8, tmp_path / "c.jsonl", keyring=tmp_path / "keys")  # type: ignore[arg-type]
    matcher = CanaryRegistry(tmp_path / "keys").matcher()
    records = [json.loads(x) for x in (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()]
    texts = [[t for t in _strings(r) if t not in ("system",)] for r in records]
    for canary, strings in zip(made.ids, texts, strict=True):
        assert canary in matcher.canaries_in(strings)  # control: the clear record trips
        redacted = [r.text for r in gr_default.redact_batch(strings)]
        assert matcher.canaries_in(redacted) == {}


class TestMake:
    """``make_canaries`` refuses bad outputs like every other output, and writes atomically."""

    def test_bad_outputs_are_refused(self, planted: dict[str, Any], tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"--kind chat writes \.jsonl"):
            make_canaries("chat", 1, tmp_path / "chat.txt", keyring=planted["keys"])
        with pytest.raises(ConfigError, match="no such directory"):
            make_canaries("note", 1, tmp_path / "missing" / "n.txt", keyring=planted["keys"])
        with pytest.raises(OutputExistsError, match="--force"):
            make_canaries("note", 1, planted["base"] / "notes.jsonl", keyring=planted["keys"])
        with pytest.raises(ConfigError, match="-n/--count"):
            make_canaries("note", 0, tmp_path / "n.txt", keyring=planted["keys"])
        assert not list(tmp_path.iterdir())  # nothing left behind

    def test_chat_canaries_are_openai_chat_records(self, planted: dict[str, Any], tmp_path: Path) -> None:
        made = make_canaries("chat", 1, tmp_path / "chat.jsonl", keyring=planted["keys"], tenant="acme")
        record = json.loads((tmp_path / "chat.jsonl").read_text(encoding="utf-8"))
        assert [m["role"] for m in record["messages"]][:2] == ["system", "user"]
        assert made.ids[0] not in json.dumps(record)  # the file does not say it is a canary
        assert (tmp_path / "chat.jsonl").stat().st_mode & 0o777 == 0o600


class TestRetrieval:
    """Unguarded retrievals and clear releases trip; a pseudonymised release does not."""

    def _docs(self, planted: dict[str, Any]) -> list[Document]:
        return [
            Document(text=planted["texts"][0], metadata={"classification": "confidential"}),
            Document(text=OTHER, metadata={"classification": "public"}),
        ]

    def test_unguarded_plain_store_trips_once(self, planted: dict[str, Any], tmp_path: Path) -> None:
        gr = _gr(planted, tmp_path)
        alerts: list[CanaryAlert] = []
        handler = gr.watch_unguarded()
        watch = gr.canaries(alert=alerts.append)
        try:
            plain = VectorStoreIndex.from_documents(self._docs(planted), embed_model=HashingEmbedding())
            with gr.acting_as(DPO):
                got = plain.as_retriever(similarity_top_k=2).retrieve("patient follow-up")
            assert any(planted["texts"][0] == n.node.get_content() for n in got)  # it did reach the caller
        finally:
            watch.close()
            from llama_index_instrumentation import get_dispatcher

            get_dispatcher().event_handlers.remove(handler)
        gr.close()
        trips = _trips(tmp_path / "audit")
        assert len(trips) == 1
        assert trips[0]["canary"]["id"] == planted["notes"].ids[0]
        assert trips[0]["canary"]["where"] == "rag.unguarded"
        assert trips[0]["actor"]["ref"] == "dpo-1"
        assert [a.canary for a in alerts] == [planted["notes"].ids[0]]
        assert alerts[0].event_id
        assert verify(tmp_path / "audit").ok

    def test_unguarded_store_without_canary_does_not_trip(
        self, planted: dict[str, Any], tmp_path: Path
    ) -> None:
        gr = _gr(planted, tmp_path)
        handler = gr.watch_unguarded()
        watch = gr.canaries()
        try:
            plain = VectorStoreIndex.from_documents([Document(text=OTHER)], embed_model=HashingEmbedding())
            assert plain.as_retriever().retrieve("cafeteria")
        finally:
            watch.close()
            from llama_index_instrumentation import get_dispatcher

            get_dispatcher().event_handlers.remove(handler)
        gr.close()
        categories = [e["event"]["category"] for e in _events(tmp_path / "audit")]
        assert "rag.unguarded" in categories  # the handler ran
        assert "canary.tripped" not in categories

    def _guarded(self, planted: dict[str, Any], tmp_path: Path) -> tuple[Guardrail, Any]:
        gr = _gr(planted, tmp_path)
        index = VectorStoreIndex.from_documents(
            self._docs(planted),
            storage_context=gr.storage_context(),
            transformations=[SentenceSplitter(chunk_size=1024), gr.annotator()],
            embed_model=HashingEmbedding(),
        )
        return gr, gr.guard(index.as_retriever(similarity_top_k=2))

    def _released(self, planted: dict[str, Any], tmp_path: Path, principal: Principal) -> list[str]:
        """What a guarded retrieval as ``principal`` released, with a canary watch on."""
        gr, retriever = self._guarded(planted, tmp_path)
        watch = gr.canaries()
        try:
            with gr.acting_as(principal):
                return [n.node.get_content() for n in retriever.retrieve("patient follow-up")]
        finally:
            watch.close()
            gr.close()

    def test_pseudonymised_release_does_not_trip(self, planted: dict[str, Any], tmp_path: Path) -> None:
        released = " ".join(self._released(planted, tmp_path, SUPPORT))
        assert "<PERSON_1>" in released  # positive control: the canary note was released, pseudonymised
        _assert_no_value_in(planted, released)
        assert _trips(tmp_path / "audit") == []

    def test_clear_release_trips_once(self, planted: dict[str, Any], tmp_path: Path) -> None:
        assert planted["texts"][0] in self._released(planted, tmp_path, DPO)
        trips = _trips(tmp_path / "audit")
        assert [(t["canary"]["id"], t["canary"]["where"], t["actor"]["ref"]) for t in trips] == [
            (planted["notes"].ids[0], "rag.release", "dpo-1")
        ]
        assert set(trips[0]["canary"]["entities"]) >= {"PERSON", "US_SSN", "EMAIL_ADDRESS"}
        assert verify(tmp_path / "audit").ok

    def test_direct_retrieval_of_an_encrypted_store_is_refused_and_trips_nothing(
        self, planted: dict[str, Any], tmp_path: Path
    ) -> None:
        """A retriever built on the store behind the guard's back: the store is closed by default, so the
        read is refused (audited ``rag.unguarded``, denied) and no canary reaches anyone; the same query
        through the guard releases the canary in clear to the DPO and trips (positive control)."""
        from guardrail.access import AccessDenied

        gr = _gr(planted, tmp_path)
        storage = gr.storage_context()
        VectorStoreIndex.from_documents(
            self._docs(planted), storage_context=storage, transformations=[gr.annotator()],
            embed_model=HashingEmbedding(),
        )  # fmt: skip
        index = VectorStoreIndex.from_vector_store(storage.vector_store, embed_model=HashingEmbedding())
        guarded = gr.guard(index.as_retriever(similarity_top_k=2))
        handler = gr.watch_unguarded()
        watch = gr.canaries()
        try:
            with gr.acting_as(DPO), pytest.raises(AccessDenied, match=r"gr\.guard"):
                index.as_retriever(similarity_top_k=2).retrieve("follow-up")
            assert _trips(tmp_path / "audit") == []
            with gr.acting_as(DPO):
                got = [n.node.get_content() for n in guarded.retrieve("follow-up")]
        finally:
            watch.close()
            from llama_index_instrumentation import get_dispatcher

            get_dispatcher().event_handlers.remove(handler)
        gr.close()
        assert planted["texts"][0] in got
        events = _events(tmp_path / "audit")
        assert [e["event"]["outcome"] for e in events if e["event"]["category"] == "rag.unguarded"] == [
            "denied"
        ]
        trips = _trips(tmp_path / "audit")
        assert [(t["canary"]["id"], t["canary"]["where"]) for t in trips] == [
            (planted["notes"].ids[0], "rag.release")
        ]

    def test_a_trip_that_cannot_be_audited_blocks_the_release(
        self, planted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from guardrail.llama_index.guard import RetrievalBlocked

        gr, retriever = self._guarded(planted, tmp_path)
        watch = gr.canaries()
        append = gr.audit.append

        def refuse_trips(record: dict[str, Any], **kwargs: Any) -> Any:
            if record["event"]["category"] == "canary.tripped":
                raise OSError("disk full")
            return append(record, **kwargs)

        monkeypatch.setattr(gr.audit, "append", refuse_trips)
        with gr.acting_as(DPO), pytest.raises(RetrievalBlocked, match=r"canary.tripped .*\(OSError\)"):
            retriever.retrieve("patient follow-up")
        with gr.acting_as(SUPPORT):  # control: a pseudonymised release trips nothing and goes through
            assert retriever.retrieve("patient follow-up")
        watch.close()
        gr.close()

    def test_postprocessor_over_a_plain_store(self, planted: dict[str, Any], tmp_path: Path) -> None:
        from llama_index.core.query_engine import RetrieverQueryEngine

        gr = _gr(planted, tmp_path)
        handler = gr.watch_unguarded()
        watch = gr.canaries()
        try:
            plain = VectorStoreIndex.from_documents(self._docs(planted), embed_model=HashingEmbedding())
            engine = RetrieverQueryEngine.from_args(
                plain.as_retriever(similarity_top_k=2),
                llm=ScriptedLLM(),
                node_postprocessors=[gr.postprocessor()],
            )
            with gr.acting_as(SUPPORT):
                response = engine.query("patient follow-up")
        finally:
            watch.close()
            from llama_index_instrumentation import get_dispatcher

            get_dispatcher().event_handlers.remove(handler)
        gr.close()
        assert any("<PERSON_1>" in n.node.get_content() for n in response.source_nodes)
        # the postprocessor decided the nodes before anything else saw them: pseudonymised, no exposure
        assert all(planted["texts"][0] not in n.node.get_content() for n in response.source_nodes)
        assert _trips(tmp_path / "audit") == []


class TestAnswers:
    """An LLM answer carrying a canary trips once, streamed or not."""

    def test_llm_answer_trips_once(self, planted: dict[str, Any], tmp_path: Path) -> None:
        cid = planted["notes"].ids[1]
        name, email = _value(planted, cid, "PERSON"), _value(planted, cid, "EMAIL_ADDRESS")
        llm = ScriptedLLM(answer=f"The patient is {name}, reachable at {email}.")
        gr = _gr(planted, tmp_path)
        watch = gr.canaries(llm_outputs=True)  # raw LLM answers, with or without a response guard
        try:
            with gr.acting_as(SUPPORT):
                llm.complete("who is the patient?")
            assert len(_trips(tmp_path / "audit")) == 1
            with gr.acting_as(SUPPORT):
                streamed = "".join(r.delta or "" for r in llm.stream_complete("who?"))
            assert streamed == llm.answer
            ScriptedLLM(answer="I cannot share patient details.").complete("who?")  # negative control
        finally:
            watch.close()
        llm.complete("after close")  # a closed watch sees nothing
        gr.close()
        trips = _trips(tmp_path / "audit")
        assert [(t["canary"]["id"], t["canary"]["where"]) for t in trips] == [(cid, "llm.output")] * 2
        assert set(trips[0]["canary"]["entities"]) == {"PERSON", "EMAIL_ADDRESS"}
        assert trips[0]["actor"]["ref"] == "agent-7"

    def test_guarded_query_engine_whose_llm_emits_a_canary(
        self, planted: dict[str, Any], tmp_path: Path
    ) -> None:
        """A memorised canary in the answer of a guarded query engine, none in its context: the response
        guard passes it in clear only to a principal allowed PHI (a clinician under HIPAA), and that
        exposure trips once; a support agent gets it redacted and nothing trips."""
        from llama_index.core.query_engine import RetrieverQueryEngine

        cid = planted["records"].ids[1]
        gr = _gr(planted, tmp_path, policy="hipaa-safe-harbor")
        index = VectorStoreIndex.from_documents(
            [Document(text=OTHER, metadata={"classification": "internal"})],
            storage_context=gr.storage_context(),
            transformations=[gr.annotator()],
            embed_model=HashingEmbedding(),
        )
        name, mrn = _value(planted, cid, "PERSON"), _value(planted, cid, "MEDICAL_RECORD_NUMBER")
        llm = ScriptedLLM(answer=f"Ask {name}, MRN {mrn}.")
        engine = gr.guard(RetrieverQueryEngine.from_args(index.as_retriever(), llm=llm))
        watch = gr.canaries()
        try:
            with gr.acting_as(Principal("agent-7", ["support"], "operations")):
                redacted = str(engine.query("when is the cafeteria open?"))
            assert name not in redacted
            assert mrn not in redacted
            assert _trips(tmp_path / "audit") == []
            with gr.acting_as(Principal("dr-chen", ["clinician"], "treatment")):
                answer = str(engine.query("when is the cafeteria open?"))
        finally:
            watch.close()
        gr.close()
        assert answer == llm.answer  # the clinician may see it in clear: it reached them
        trips = _trips(tmp_path / "audit")
        assert [t["canary"]["id"] for t in trips] == [cid]
        assert trips[0]["canary"]["where"] != "rag.release"  # the context held no canary

    def test_answer_observer_for_the_response_guard(self, planted: dict[str, Any], tmp_path: Path) -> None:
        from guardrail.canaries import answer_observer

        gr = _gr(planted, tmp_path)
        watch = gr.canaries()
        observe = answer_observer(gr)
        ssn = _value(planted, planted["records"].ids[0], "US_SSN")
        observe(f"Your SSN on file is {ssn}.", "rag.response")
        observe("Nothing to see.", "rag.response")
        watch.close()
        observe(f"Your SSN on file is {ssn}.", "rag.response")
        gr.close()
        assert [t["canary"]["where"] for t in _trips(tmp_path / "audit")] == ["rag.response"]

    def test_the_response_guards_observer_hook_is_used_when_present(
        self, planted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import types

        from llama_index_instrumentation import get_dispatcher

        # the contract of the response guard (guardrail.llama_index.responses): observers fn(text, where)
        observers: list[Any] = []
        hook = types.ModuleType("guardrail.llama_index.responses")
        hook.add_answer_observer = observers.append  # type: ignore[attr-defined]
        hook.remove_answer_observer = observers.remove  # type: ignore[attr-defined]
        monkeypatch.setitem(__import__("sys").modules, "guardrail.llama_index.responses", hook)
        handlers = len(get_dispatcher().event_handlers)
        gr = _gr(planted, tmp_path)
        watch = gr.canaries()
        assert len(observers) == 1
        assert len(get_dispatcher().event_handlers) == handlers  # one answer trips once: no LLM handler
        ssn = _value(planted, planted["notes"].ids[0], "US_SSN")
        observers[0](f"SSN {ssn}", "rag.response")
        watch.close()
        assert observers == []
        gr.close()
        assert [t["canary"]["where"] for t in _trips(tmp_path / "audit")] == ["rag.response"]

    def test_a_watch_needs_canaries_and_an_audit_log(self, tmp_path: Path, planted: dict[str, Any]) -> None:
        Keyring.create(tmp_path / "empty")
        gr = Guardrail("gdpr", keyring=tmp_path / "empty", audit_log=tmp_path / "audit")
        with pytest.raises(ConfigError, match="guardrail canary make"):
            gr.canaries()
        with pytest.raises(ConfigError, match="audit_log"):
            Guardrail("gdpr", keyring=planted["keys"]).canaries()


class TestDatasets:
    """A dataset run whose output still holds a canary value fails its gate; a redacted one passes."""

    def _redact(self, planted: dict[str, Any], out: Path, fields: list[str], **options: Any) -> None:
        pol = load_policy("default")
        redact_file(
            planted["base"] / "records.jsonl",
            out,
            keyring=planted["keys"],
            tenant="acme",
            policy=pol,
            rules=rules_for(pol, fields=fields),
            **options,
        )

    def test_export_with_a_canary_fails_the_gate(self, planted: dict[str, Any], tmp_path: Path) -> None:
        out = tmp_path / "out.jsonl"
        with pytest.raises(
            GateFailed, match=r"canary values in 2 record\(s\): line 1 \(id rec-\d+\): canary cn-"
        ) as info:
            # the identifier fields are left as they are
            self._redact(planted, out, ["note"], audit_log=tmp_path / "audit")
        assert not out.exists()
        assert [r.line for r in info.value.records] == [1, 2]
        _assert_no_value_in(planted, str(info.value))
        trips = _trips(tmp_path / "audit")
        assert sorted(t["canary"]["id"] for t in trips) == sorted(planted["records"].ids)
        assert {(t["canary"]["where"], t["event"]["outcome"]) for t in trips} == {
            ("dataset.export", "denied")
        }
        exports = [e for e in _events(tmp_path / "audit") if e["event"]["category"] == "ft.export"]
        assert exports[-1]["event"]["outcome"] == "denied"

    def test_redacted_export_passes(self, planted: dict[str, Any], tmp_path: Path) -> None:
        out = tmp_path / "out.jsonl"
        self._redact(planted, out, ["name", "mrn", "ssn", "email", "phone", "note"])
        _assert_no_value_in(planted, out.read_text(encoding="utf-8"))
        redact_file(planted["base"] / "notes.jsonl", tmp_path / "notes.jsonl", keyring=planted["keys"])

    def test_hugging_face_redact_dataset_gate(self, planted: dict[str, Any]) -> None:
        datasets = pytest.importorskip("datasets")
        from guardrail.datasets import FieldRules, redact_dataset
        from guardrail.datasets.run import text_redactor

        lines = (planted["base"] / "records.jsonl").read_text(encoding="utf-8").splitlines()
        dataset = datasets.Dataset.from_list([json.loads(line) for line in lines])
        redactor = text_redactor("default", planted["keys"], "acme")
        with pytest.raises(GateFailed, match=r"row 1 \(id rec-\d+\): canary cn-") as info:
            redact_dataset(dataset, redactor, FieldRules(fields=("note",)))
        _assert_no_value_in(planted, str(info.value))
        every = FieldRules(fields=("name", "mrn", "ssn", "email", "phone", "note"))
        out = redact_dataset(dataset, redactor, every)  # control: all fields redacted, the gate passes
        _assert_no_value_in(planted, json.dumps(out.to_list()))

    def test_no_keyring_no_canary_check(self, planted: dict[str, Any], tmp_path: Path) -> None:
        pol = load_policy("default")
        # without the keyring nobody can know the canaries: the run is an ordinary run (control)
        redact_file(
            planted["base"] / "records.jsonl",
            tmp_path / "out.jsonl",
            policy=pol,
            rules=rules_for(pol, fields=["note"]),
        )
        assert check_file(tmp_path / "out.jsonl", keyring=planted["keys"])


class TestCheckAndLogs:
    """``check_file`` finds canaries in model outputs; nothing logs a value."""

    def test_check_file(self, planted: dict[str, Any], tmp_path: Path) -> None:
        cid = planted["records"].ids[1]
        email = _value(planted, cid, "EMAIL_ADDRESS")
        outputs = tmp_path / "outputs.jsonl"
        outputs.write_text(
            json.dumps({"prompt": "p", "output": "no idea"}) + "\n"
            + json.dumps({"prompt": "p", "output": f"write to\n{email.upper()}"}) + "\n",
            encoding="utf-8",
        )  # fmt: skip
        hits = check_file(outputs, keyring=planted["keys"])
        assert [(h.line, h.canary, h.entities) for h in hits] == [(2, cid, ("EMAIL_ADDRESS",))]
        clean = tmp_path / "clean.txt"
        clean.write_text("nothing\nat all\n", encoding="utf-8")
        assert check_file(clean, keyring=planted["keys"]) == []

    def test_logs_name_ids_never_values(
        self, planted: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        gr = _gr(planted, tmp_path)
        watch = gr.canaries(
            alert=lambda alert: 1 / 0, llm_outputs=True
        )  # a broken alert hook is logged, not raised
        name = _value(planted, planted["notes"].ids[0], "PERSON")
        with caplog.at_level(logging.DEBUG):
            ScriptedLLM(answer=f"It is {name}.").complete("who?")
        watch.close()
        gr.close()
        assert planted["notes"].ids[0] in caplog.text
        assert "ZeroDivisionError" in caplog.text
        _assert_no_value_in(
            planted, caplog.text, *(p.read_text() for p in (tmp_path / "audit").rglob("*") if p.is_file())
        )
        assert repr(watch).startswith("CanaryWatch(")
        assert name not in repr(watch)
        matcher = CanaryRegistry(planted["keys"]).matcher()
        with pytest.raises(TypeError, match="pickled"):
            pickle.dumps(matcher)

    def test_activity_report_shows_trips(self, planted: dict[str, Any], tmp_path: Path) -> None:
        from guardrail.reports.activity import build_report

        gr = _gr(planted, tmp_path)
        watch = gr.canaries(llm_outputs=True)
        ssn = _value(planted, planted["notes"].ids[0], "US_SSN")
        with gr.acting_as(DPO):
            ScriptedLLM(answer=f"SSN {ssn}").complete("x")
        watch.close()
        gr.close()
        report = build_report(tmp_path / "audit")
        blocks = {getattr(b, "id", None): b for s in report.sections for b in s.blocks}
        table = blocks["canary_trips"]
        assert table.rows[0][1:4] == (planted["notes"].ids[0], "llm.output", "dpo-1")
        # and a report of a log without trips has no such table (control)
        other = tmp_path / "other"
        Guardrail("gdpr", keyring=planted["keys"], audit_log=other).close()
        assert "canary_trips" not in {
            getattr(b, "id", None) for s in build_report(other).sections for b in s.blocks
        }
