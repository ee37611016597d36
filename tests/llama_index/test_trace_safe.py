"""Trace-safe pipelines: handlers attached with ``gr.trace()`` see only what the principal may see, and
LlamaIndex's own DEBUG lines print no chunk text.

Each leak check has a control that can fail it: the same events captured by a handler attached
directly to the dispatcher (not through ``gr.trace``) do carry the personal data, and the clinician's
trace (treatment: may see PHI) shows the name, so "the trace is empty" cannot pass as "the trace is safe".
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager, LlamaDebugHandler
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.query import QueryEndEvent
from llama_index.core.instrumentation.events.retrieval import RetrievalEndEvent, RetrievalStartEvent
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index_instrumentation import get_dispatcher
from pydantic import BaseModel

from guardrail import Guardrail
from guardrail.access import Principal
from guardrail.errors import ConfigError
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding
from guardrail.llama_index.tracing import WITHHELD, tracing_request
from guardrail.logs import LlamaIndexLogFilter, protect_logs

pytestmark = pytest.mark.filterwarnings(
    "ignore:Payload indexes have no effect in the local Qdrant:UserWarning"
)

NOTE = (
    "Discharge plan for Harold Finch (MRN 88412095), 94 y/o, CHF: furosemide 40 mg daily. "
    "Follow-up with Dr. Amara Okafor."
)
PATH = "/records/harold_finch_ssn_123-45-6789.txt"
SECRETS = ("Harold Finch", "Finch", "88412095", "Amara Okafor", "harold_finch", "123-45-6789")
QUERY = "discharge plan for Harold Finch CHF"
CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")
RESEARCHER = Principal("r-1", ["researcher"], "research")
SUPPORT = Principal("s-1", ["support"], "support")


class Capture(BaseEventHandler):
    """A real instrumentation event handler, as a tracing integration writes one: keeps every event."""

    events: list[Any] = []  # noqa: RUF012 - a pydantic field (copied per instance)

    @classmethod
    def class_name(cls) -> str:
        return "Capture"

    def handle(self, event: Any, **kwargs: Any) -> None:
        self.events.append(event)


class SpanCapture(BaseSpanHandler[Any]):
    """A span handler that records every span's arguments, instance class and result."""

    seen: list[Any] = []  # noqa: RUF012 - a pydantic field (copied per instance)

    @classmethod
    def class_name(cls) -> str:
        return "SpanCapture"

    def new_span(self, id_: str, bound_args: Any, instance: Any = None, **kwargs: Any) -> None:
        self.seen.append(("enter", id_, dict(bound_args.arguments), instance))

    def prepare_to_exit_span(
        self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> None:
        self.seen.append(("exit", id_, dict(bound_args.arguments), result))

    def prepare_to_drop_span(self, id_: str, bound_args: Any, instance: Any = None, **kwargs: Any) -> None:
        self.seen.append(("drop", id_, dict(bound_args.arguments), kwargs.get("err")))


def dump(value: Any, depth: int = 0) -> str:
    """Every string reachable from ``value`` (fields, relationships, metadata, nested), joined."""
    if depth > 12:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return " ".join(f"{dump(k, depth + 1)} {dump(v, depth + 1)}" for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return " ".join(dump(v, depth + 1) for v in value)
    if isinstance(value, BaseModel):
        fields = {
            **type(value).model_fields,
            **dict.fromkeys(getattr(value, "__pydantic_extra__", None) or {}),
        }
        return " ".join(dump(getattr(value, f, None), depth + 1) for f in fields)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return " ".join(dump(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value))
    if value is not None and hasattr(value, "__dict__") and not callable(value):
        return dump(vars(value), depth + 1)
    return "" if value is None else str(value)


@pytest.fixture
def handlers() -> Iterator[list[Any]]:
    """Handlers a test attaches; all are detached afterwards (the dispatcher is process-wide)."""
    root = get_dispatcher()
    before_events, before_spans = list(root.event_handlers), list(root.span_handlers)
    before_callbacks = list(Settings.callback_manager.handlers)
    attached: list[Any] = []
    yield attached
    root.event_handlers[:] = before_events
    root.span_handlers[:] = before_spans
    Settings.callback_manager.handlers[:] = before_callbacks


def _gr(tmp_path: Path) -> Guardrail:
    if not (tmp_path / "keys").exists():
        Keyring.create(tmp_path / "keys")
    return Guardrail(
        policy="hipaa-safe-harbor", keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme"
    )


def _docs() -> list[Document]:
    return [
        Document(
            id_=PATH,
            text=NOTE,
            metadata={"subjects": ["patient-88412095"], "title": "Finch discharge"},
        ),
        Document(
            id_="/records/visiting.txt",
            text="Visiting hours are 10:00 to 20:00.",
            metadata={"classification": "public"},
        ),
    ]


def _engine(
    gr: Guardrail, *, encrypted: bool = True, callback_manager: Any = None, vector_store: Any = None
) -> Any:
    storage = gr.storage_context(vector_store=vector_store) if encrypted else None
    index = VectorStoreIndex.from_documents(
        _docs(),
        storage_context=storage,
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
        callback_manager=callback_manager or Settings.callback_manager,
    )
    engine = index.as_query_engine(similarity_top_k=3, llm=MockLLM())
    return gr.guard(engine)


def _query(gr: Guardrail, engine: Any, principal: Principal) -> str:
    with gr.acting_as(principal):
        return str(engine.query(QUERY))


# --------------------------------------------------------------------------- instrumentation events


def test_events_carry_only_what_the_researcher_may_see(
    tmp_path: Path, handlers: list[Any], backend: Any
) -> None:
    """Every encrypted store: Simple, Chroma, Qdrant local."""
    gr = _gr(tmp_path)
    _check_researcher_trace(gr, _engine(gr, vector_store=backend.vector_store()))


def test_events_over_a_plain_index_carry_only_what_the_researcher_may_see(
    tmp_path: Path, handlers: list[Any]
) -> None:
    """A guarded engine over an unencrypted index: the inner retriever's raw hits are stubs."""
    gr = _gr(tmp_path)
    _check_researcher_trace(gr, _engine(gr, encrypted=False))


def _check_researcher_trace(gr: Guardrail, engine: Any) -> None:
    safe, raw = Capture(events=[]), Capture(events=[])
    gr.trace(safe)
    get_dispatcher().add_event_handler(raw)  # the control: what a directly attached tracer records
    _query(gr, engine, RESEARCHER)
    kinds = {type(e).__name__ for e in safe.events}
    assert {"RetrievalStartEvent", "RetrievalEndEvent", "QueryStartEvent", "QueryEndEvent"} <= kinds
    assert len(safe.events) == len(raw.events)  # nothing dropped: every event reaches the handler
    raw_text, safe_text = dump(raw.events), dump(safe.events)
    assert "Harold Finch" in raw_text  # the control: unsanitised events do carry the name
    for value in SECRETS:
        assert value not in safe_text, value
    # positive control: the researcher's released, Safe-Harbor-redacted text is in the trace
    ends = [e for e in safe.events if isinstance(e, RetrievalEndEvent)]
    released = [n.node.get_content() for e in ends for n in e.nodes if n.node.get_content() != WITHHELD]
    assert any("furosemide" in t and "90+" in t for t in released)
    starts = [e for e in safe.events if isinstance(e, RetrievalStartEvent)]
    assert all("discharge plan for" in dump(e.str_or_query_bundle) for e in starts)  # redacted, not dropped
    assert all(e.nodes is not None for e in ends)
    # no embedding reaches a tracer (embeddings can be inverted)
    assert all(n.node.embedding is None for e in ends for n in e.nodes)
    gr.close()


def test_clinician_trace_shows_the_name_support_trace_shows_no_phi(
    tmp_path: Path, handlers: list[Any]
) -> None:
    gr = _gr(tmp_path)
    engine = _engine(gr)
    clinician, support = Capture(events=[]), Capture(events=[])
    wrapper = gr.trace(clinician)
    _query(gr, engine, CLINICIAN)
    get_dispatcher().event_handlers.remove(wrapper)
    assert "Harold Finch" in dump(clinician.events)  # treatment: handlers get what the clinician sees
    assert any(
        NOTE in n.node.get_content()
        for e in clinician.events
        if isinstance(e, RetrievalEndEvent)
        for n in e.nodes
    )
    gr.trace(support)
    answer = _query(gr, engine, SUPPORT)
    text = dump(support.events)
    for value in (*SECRETS, "furosemide"):
        assert value not in text, value
    assert "Visiting hours" in answer
    assert "Visiting hours" in text
    ends = [e for e in support.events if isinstance(e, QueryEndEvent)]
    assert ends
    assert "Harold" not in dump(ends[-1].response)
    gr.close()


def test_relationships_and_file_path_ids_never_reach_a_tracer(tmp_path: Path, handlers: list[Any]) -> None:
    gr = _gr(tmp_path)
    engine = _engine(gr)
    capture = Capture(events=[])
    gr.trace(capture)
    _query(gr, engine, CLINICIAN)  # even the clinician's trace: related nodes are keyed references
    nodes = [n.node for e in capture.events if isinstance(e, RetrievalEndEvent) for n in e.nodes]
    assert nodes
    for node in nodes:
        for info in node.relationships.values():
            for related in info if isinstance(info, list) else [info]:
                assert not related.metadata
                assert "records" not in related.node_id
                assert "finch" not in related.node_id.lower()
    gr.close()


def test_no_principal_gets_the_strictest_view(tmp_path: Path, handlers: list[Any]) -> None:
    """An unguarded retrieval over a plain index, nobody acting: the query is redacted, nodes withheld."""
    gr = _gr(tmp_path)
    index = VectorStoreIndex.from_documents(_docs(), embed_model=HashingEmbedding())
    capture, raw = Capture(events=[]), Capture(events=[])
    gr.trace(capture)
    get_dispatcher().add_event_handler(raw)
    with tracing_request(None):
        hits = index.as_retriever(similarity_top_k=2).retrieve(QUERY)
    assert any("Harold Finch" in h.node.get_content() for h in hits)  # an unguarded index is not the guard
    assert "Harold Finch" in dump(raw.events)
    text = dump(capture.events)
    for value in (*SECRETS, "furosemide"):
        assert value not in text, value
    ends = [e for e in capture.events if isinstance(e, RetrievalEndEvent)]
    assert ends
    assert all(n.node.get_content() == WITHHELD for n in ends[0].nodes)
    assert len(ends[0].nodes) == 2  # withheld, not dropped: the trace still shows the shape
    gr.close()


def test_trace_refuses_what_is_not_a_handler(tmp_path: Path) -> None:
    gr = _gr(tmp_path)
    with pytest.raises(ConfigError, match="BaseEventHandler"):
        gr.trace(print)


def test_trace_without_handler_wraps_what_an_instrumentor_attached(
    tmp_path: Path, handlers: list[Any]
) -> None:
    gr = _gr(tmp_path)
    engine = _engine(gr)
    capture = Capture(events=[])
    get_dispatcher().add_event_handler(capture)  # attached by an instrumentor, before guardrail knew
    wrapped = gr.trace()
    assert any(getattr(w, "inner", None) is capture for w in wrapped)
    _query(gr, engine, RESEARCHER)
    assert capture.events
    assert "Harold Finch" not in dump(capture.events)
    gr.close()


# --------------------------------------------------------------------------- spans and legacy callbacks


def test_span_handler_gets_sanitised_arguments_and_results(tmp_path: Path, handlers: list[Any]) -> None:
    gr = _gr(tmp_path)
    engine = _engine(gr)
    spans = SpanCapture()
    spans.seen = []
    gr.trace(spans)
    _query(gr, engine, SUPPORT)
    assert spans.seen
    text = dump([(kind, args, extra if kind != "enter" else None) for kind, _, args, extra in spans.seen])
    for value in SECRETS:
        assert value not in text, value
    assert "discharge plan for" in text  # the query is there, redacted
    from llama_index.core.base.base_retriever import BaseRetriever

    instances = [extra for kind, _, _, extra in spans.seen if kind == "enter" and extra is not None]
    assert any(isinstance(i, BaseRetriever) for i in instances)  # span kinds still work ...
    assert all(not hasattr(i, "_inner") and not hasattr(i, "_vector_store") for i in instances)  # ... no data
    gr.close()


def test_llama_debug_handler_payloads_are_sanitised(tmp_path: Path, handlers: list[Any]) -> None:
    gr = _gr(tmp_path)
    safe, raw = LlamaDebugHandler(), LlamaDebugHandler()
    manager = CallbackManager([raw])
    gr.trace(safe, callback_manager=manager)
    engine = _engine(gr, callback_manager=manager)
    _query(gr, engine, RESEARCHER)
    raw_text = dump([p for pair in raw.get_event_pairs() for p in pair])
    safe_text = dump([p for pair in safe.get_event_pairs() for p in pair])
    assert "Harold Finch" in raw_text  # the control
    assert safe.get_event_pairs()
    assert len(safe.get_event_pairs()) == len(raw.get_event_pairs())
    for value in SECRETS:
        assert value not in safe_text, value
    assert "furosemide" in safe_text  # the researcher's redacted chunk is there
    gr.close()


# --------------------------------------------------------------------------- logs


def test_llama_index_debug_lines_print_no_chunk_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, gr_hipaa: Guardrail
) -> None:
    protect_logs()
    with caplog.at_level(logging.DEBUG):
        nodes = SentenceSplitter().get_nodes_from_documents(_docs())
        index = VectorStoreIndex(nodes, embed_model=HashingEmbedding())
        index.as_retriever(similarity_top_k=2).retrieve(QUERY)
        logging.getLogger("myapp").debug("a line of the application: %s", "Harold Finch")
    llama = [r for r in caplog.records if r.name.startswith("llama_index")]
    assert any("Adding chunk" in r.getMessage() for r in llama)  # positive control: the lines are there
    assert any("Top 2 nodes" in r.getMessage() for r in llama)
    for record in llama:
        message = record.getMessage()
        for value in (*SECRETS, "furosemide", "Visiting hours"):
            assert value not in message, (record.name, message)
    own = [r.getMessage() for r in caplog.records if r.name == "myapp"]
    assert own == ["a line of the application: Harold Finch"]  # other loggers untouched


def test_log_filter_for_own_handlers() -> None:
    record = logging.LogRecord(
        "llama_index.core.x", logging.DEBUG, __file__, 1, "query: %s (%d nodes)", ("Harold Finch", 3), None
    )
    assert LlamaIndexLogFilter().filter(record)
    assert "Harold" not in record.getMessage()
    assert record.getMessage().startswith("query: ")
    record = logging.LogRecord(
        "llama_index.core.y", logging.INFO, __file__, 1, "Harold Finch called", (), None
    )
    LlamaIndexLogFilter().filter(record)
    assert "Harold" not in record.getMessage()


def test_detach_stops_tracing(tmp_path: Path, handlers: list[Any]) -> None:
    gr = _gr(tmp_path)
    capture, debug = Capture(events=[]), LlamaDebugHandler()
    manager = CallbackManager([])
    tracers = [gr.trace(capture), gr.trace(debug, callback_manager=manager)]
    assert any(getattr(h, "inner", None) is capture for h in get_dispatcher().event_handlers)
    for tracer in tracers:
        tracer.detach()
    assert all(getattr(h, "inner", None) is not capture for h in get_dispatcher().event_handlers)
    assert manager.handlers == []


def test_a_payload_the_sanitiser_cannot_handle_is_withheld_not_raised(
    tmp_path: Path, handlers: list[Any]
) -> None:
    from llama_index.core.callbacks import CBEventType, EventPayload

    gr = _gr(tmp_path)
    debug = LlamaDebugHandler()
    manager = CallbackManager([])
    gr.trace(debug, callback_manager=manager)

    class Hostile(BaseModel):
        text: str = "Harold Finch"

        def __getattribute__(self, name: str) -> Any:
            if name == "text":
                raise RuntimeError("boom")
            return super().__getattribute__(name)

    with manager.event(CBEventType.QUERY, payload={EventPayload.QUERY_STR: Hostile()}) as event:
        event.on_end(payload={EventPayload.RESPONSE: "Harold Finch is fine."})
    text = dump([p for pair in debug.get_event_pairs() for p in pair])
    assert "Harold" not in text
    assert debug.get_event_pairs()  # the events still reached the handler
