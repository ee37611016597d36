"""Response guard cost vs detecting the answer text alone, and streaming latency per delta. One run.

Targets (issue 15): the response guard adds at most 1.3x the time of detecting the answer's text alone;
streaming holds a delta back no longer than the look-behind window (a sentence, or ``responses.window``
characters without a sentence end).

Setup: ``Guardrail(policy="hipaa-safe-harbor", keyring=..., audit_log=..., tenant="acme")``, an encrypted
index of one synthetic clinical note (``HashingEmbedding``), and a guarded query engine whose LLM is a
scripted ``CustomLLM``: it answers every prompt with a fixed ``--answer-chars`` (default ~600) answer
made of clinical sentences, two names, an e-mail address and a phone number that are not in the context.

What is measured, for the researcher (``Principal("r1", ["researcher"], "research")``: Safe Harbor
redaction applies), ``--runs`` times (default 30), paired and alternating:

* ``detect``: ``gr.detect(answer)`` (the warm Presidio detector on the whole answer text; the detector's
  result cache is off, ``GUARDRAIL_DETECTION_CACHE=0``, for both);
* ``gate``: ``ResponseGate.redact_text(answer_state, answer)``, the response guard's whole answer path
  (segmentation, batched detection of the segments, the released-values check, redaction) on the same
  text, with the context of a real retrieval recorded;

``ratio`` = p50(gate) / p50(detect). Then ``--stream-runs`` (default 10) streamed queries with the LLM
yielding 4 characters per delta: for each delta of the LLM, the time from the LLM yielding it to the
guarded stream releasing the text that contains it (the hold-back of the look-behind window plus the
guard's work) is recorded with ``time.perf_counter``, and p50/p95 over all deltas are reported, with the
hold-back in characters.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SENTENCES = [
    "The patient tolerated furosemide well and oedema improved over three days.",
    "Renal function stayed stable; potassium was replaced orally twice.",
    "Call John Carter on 617-555-0143 or write to j.carter@example.org with questions.",
    "Echo showed an ejection fraction of 35 percent with mild mitral regurgitation.",
    "Mary Whitfield from cardiology agreed with the plan and will review in clinic.",
    "Daily weights, fluid restriction of 1.5 litres and a low-salt diet were advised.",
    "Return precautions were explained: breathlessness, chest pain or rapid weight gain.",
]
NOTE = (
    "Discharge summary for Harold Finch (MRN 88412095), seen on March 3, 2025 by Dr. Amara Okafor. "
    "CHF exacerbation treated with IV furosemide, switched to oral 40 mg daily."
)


def _answer(chars: int) -> str:
    out, i = [], 0
    while sum(len(s) + 1 for s in out) < chars:
        out.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    return " ".join(out)


def main() -> None:
    import os

    # measure detection itself: the detector's result cache would answer a repeated text for free
    os.environ["GUARDRAIL_DETECTION_CACHE"] = "0"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--stream-runs", type=int, default=10)
    parser.add_argument("--answer-chars", type=int, default=600)
    args = parser.parse_args()

    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from llama_index.core.node_parser import SentenceSplitter

    from guardrail import Guardrail
    from guardrail.access import Principal
    from guardrail.keys import Keyring
    from guardrail.llama_index.engines import _gate
    from guardrail.llama_index.hashing import HashingEmbedding

    answer = _answer(args.answer_chars)
    yielded: list[float] = []

    class Scripted(CustomLLM):
        step: int = 4

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="scripted")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=answer)

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            def gen() -> Iterator[CompletionResponse]:
                for i in range(0, len(answer), self.step):
                    yielded.append(time.perf_counter())
                    yield CompletionResponse(text=answer[: i + self.step], delta=answer[i : i + self.step])

            return gen()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        Keyring.create(root / "keys")
        gr = Guardrail(
            policy="hipaa-safe-harbor", keyring=root / "keys", audit_log=root / "audit", tenant="acme"
        )
        index = VectorStoreIndex.from_documents(
            [Document(text=NOTE, metadata={"subjects": ["patient-88412095"]})],
            storage_context=gr.storage_context(),
            transformations=[SentenceSplitter(), gr.annotator()],
            embed_model=HashingEmbedding(),
        )
        engine = gr.guard(index.as_query_engine(llm=Scripted(), similarity_top_k=3))
        researcher = Principal("r1", ["researcher"], "research")
        gate = _gate(gr)
        gr.detect(answer)  # warm the detector
        with gr.acting_as(researcher):
            engine.query("discharge plan")  # warm the whole path once
            state, _ = gate.begin("discharge plan")
            retriever = gr.guard(index.as_retriever(similarity_top_k=3))
            state.add_released([n.node.get_content() for n in retriever.retrieve("discharge plan")])
        detect_times, gate_times = [], []
        for i in range(args.runs):
            for which in ("detect", "gate") if i % 2 == 0 else ("gate", "detect"):
                t0 = time.perf_counter()
                if which == "detect":
                    gr.detect(answer)
                else:
                    gate.redact_text(state, answer)
                (detect_times if which == "detect" else gate_times).append(time.perf_counter() - t0)
        d50, g50 = statistics.median(detect_times), statistics.median(gate_times)
        print(f"answer: {len(answer)} chars, {args.runs} runs (researcher, hipaa-safe-harbor)")
        print(f"detect answer alone   p50 {d50 * 1000:8.2f} ms")
        print(f"response guard        p50 {g50 * 1000:8.2f} ms   ratio {g50 / d50:.2f}x (target <= 1.3x)")

        streaming = gr.guard(index.as_query_engine(llm=Scripted(), similarity_top_k=3, streaming=True))
        from guardrail.llama_index.responses import _split

        segments, _ = _split(answer, gr.policy.responses.window, final=True)
        ends = [sum(len(x) for x in segments[: j + 1]) for j in range(len(segments))]
        latencies: list[float] = []
        held_deltas: list[int] = []
        for _ in range(args.stream_runs):
            yielded.clear()
            with gr.acting_as(researcher):
                response = streaming.query("discharge plan")
            done = 0  # LLM deltas released so far
            for _piece in response.response_gen:
                now = time.perf_counter()
                consumed = min(4 * len(yielded), len(answer))
                # the segments complete at this point are out: so is every LLM delta inside them
                out_to = max((e for e in ends if e < consumed or e == len(answer) == consumed), default=0)
                while done < len(yielded) and min(4 * (done + 1), len(answer)) <= out_to:
                    latencies.append(now - yielded[done])
                    held_deltas.append(len(yielded) - 1 - done)
                    done += 1
        latencies.sort()
        p50 = latencies[len(latencies) // 2]
        p95 = latencies[int(len(latencies) * 0.95)]
        print(
            f"streaming, 4-char LLM deltas ({len(latencies)}): from the LLM yielding a delta to its release"
            f" p50 {p50 * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms; held behind it p50 "
            f"{sorted(held_deltas)[len(held_deltas) // 2]} LLM deltas, max {max(held_deltas)} "
            f"(longest segment {max(len(x) for x in segments)} chars)"
        )
        gr.close()


if __name__ == "__main__":
    main()
