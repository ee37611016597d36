"""Shared by the engine and response-guard tests: a scripted LLM, a knowledge base, principals.

The scripted LLM is a LlamaIndex ``CustomLLM`` whose answer (and stream, cut into small deltas) is a fixed
string; it records every prompt it was sent, so a test can see exactly what the model saw.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.llms import CompletionResponse, CompletionResponseGen, CustomLLM, LLMMetadata
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.node_parser import SentenceSplitter

from guardrail import Guardrail
from guardrail.access import Principal
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding

NOTE = (
    "Discharge plan for Harold Finch (MRN 88412095), 94 y/o, CHF: furosemide 40 mg daily. "
    "Follow-up on March 3, 2025 with Dr. Amara Okafor."
)
PUBLIC = "Visiting hours are 10:00 to 20:00. Questions go to frontdesk@stmarys-clinic.org at any time."
CLINICIAN = Principal("dr-chen", ["clinician"], "treatment")
RESEARCHER = Principal("r-1", ["researcher"], "research")
SUPPORT = Principal("s-1", ["support"], "support")

HIPAA = (Path(__file__).resolve().parents[2] / "policies" / "hipaa-safe-harbor.yaml").read_text()


def policy_with(tmp_path: Path, responses: str, name: str = "clinic.yaml") -> Path:
    """The HIPAA pack with a ``responses`` section (YAML text, top-level key included)."""
    path = tmp_path / name
    path.write_text(HIPAA.replace("name: hipaa-safe-harbor", "name: clinic") + "\n" + responses)
    return path


class ScriptedLLM(CustomLLM):
    """Answers every prompt with ``answer``; streams it ``step`` characters at a time."""

    answer: str = ""
    step: int = 3
    prompts: list[str] = []  # noqa: RUF012 - a pydantic field: each instance gets its own list

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted-1", is_chat_model=False)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.answer)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def gen() -> Iterator[CompletionResponse]:
            text = ""
            for i in range(0, len(self.answer), self.step):
                delta = self.answer[i : i + self.step]
                text += delta
                yield CompletionResponse(text=text, delta=delta)

        return gen()


def build(
    tmp_path: Path, policy: str | Path = "hipaa-safe-harbor", *, vector_store: Any = None
) -> tuple[Guardrail, VectorStoreIndex]:
    """An encrypted index with one PHI note and one public notice (over ``vector_store``: Chroma,
    Qdrant...; ``None``: an encrypted SimpleVectorStore)."""
    if not (tmp_path / "keys").exists():
        Keyring.create(tmp_path / "keys")
    gr = Guardrail(policy=policy, keyring=tmp_path / "keys", audit_log=tmp_path / "audit", tenant="acme")
    docs = [
        Document(text=NOTE, metadata={"subjects": ["patient-88412095"], "title": "Finch discharge"}),
        Document(text=PUBLIC, metadata={"classification": "public"}),
    ]
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=gr.storage_context(vector_store=vector_store),
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    return gr, index


def events(directory: Path, category: str) -> list[dict[str, Any]]:
    import json

    out = []
    for segment in sorted(directory.glob("segment-*.jsonl")):
        for line in segment.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                if record["event"]["category"] == category:
                    out.append(record)
    return out
