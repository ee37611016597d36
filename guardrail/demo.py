"""``guardrail demo``: the main job on bundled sample data (a small clinical / customer-support
knowledge base and a small chat-format fine-tuning set, written for this project)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["run_demo", "sample_path"]


def sample_path(name: str) -> Path:
    """Path of a bundled sample file or folder (``knowledge_base``, ``finetune_chat.jsonl``)."""
    return Path(str(resources.files("guardrail") / "data" / name))


def run_demo(output: Path, *, console: Console) -> None:
    """Detect and redact the sample knowledge base and fine-tuning set; write results to ``output``."""
    from guardrail.core import Guardrail

    output.mkdir(parents=True, exist_ok=True)
    console.rule("[b]guardrail demo[/b]")
    gr = Guardrail("hipaa-safe-harbor")
    console.print(f"policy {gr.policy.id} (sha256 {gr.policy.sha256[:12]}), model {gr.detector.model}")  # type: ignore[attr-defined]

    # 1. the knowledge base, redacted under HIPAA Safe Harbor
    docs = sorted(sample_path("knowledge_base").glob("*.md"))
    texts = [d.read_text(encoding="utf-8") for d in docs]
    results = gr.redact_batch(texts)
    table = Table(title="knowledge base: findings per document (hipaa-safe-harbor)")
    table.add_column("document")
    table.add_column("findings", justify="right")
    table.add_column("by entity")
    kb_out = output / "knowledge_base.redacted"
    kb_out.mkdir(exist_ok=True)
    for doc, result in zip(docs, results, strict=True):
        counts = result.counts()
        table.add_row(
            doc.name, str(len(result.findings)), ", ".join(f"{e} {n}" for e, n in sorted(counts.items()))
        )
        (kb_out / doc.name).write_text(result.text, encoding="utf-8")
    console.print(table)
    console.print("[b]discharge summary, redacted:[/b]")
    console.print(results[0].text, markup=False)

    # 2. the knowledge base in an encrypted LlamaIndex store: nothing readable at rest
    console.print()
    _encrypted_store_demo(output, docs, texts, console=console)
    # 3. guarded retrieval: each principal gets what the policy allows, every retrieval audited
    console.print()
    _guarded_retrieval_demo(output, docs, texts, console=console)
    # 4. the fine-tuning set through the gate: scan, pseudonymise, re-scan, signed manifest, audited
    console.print()
    ft_out = _finetune_demo(output, console=console)
    # 5. the evidence: a compliance report from the audit log
    from guardrail.reports import build_report, write_report

    report = write_report(build_report(output / "audit"), output / "report.html", force=True)
    console.print()
    console.print(f"wrote {kb_out}/, {ft_out}, {output / 'kb'}/ (encrypted) and the report {report}")


def _encrypted_store_demo(output: Path, docs: list[Path], texts: list[str], *, console: Console) -> None:
    import shutil

    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from guardrail.core import Guardrail
    from guardrail.keys import Keyring
    from guardrail.llama_index.hashing import HashingEmbedding

    keys, kb = output / "keys", output / "kb"
    for old in (keys, kb):
        shutil.rmtree(old, ignore_errors=True)
    Keyring.create(keys)
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=keys, tenant="riverside")
    documents = [
        Document(
            text=text,
            doc_id=str(doc.relative_to(doc.parent.parent)),
            metadata={"title": doc.stem, "subjects": [doc.stem]},
        )
        for doc, text in zip(docs, texts, strict=True)
    ]
    storage = gr.storage_context()
    embed = HashingEmbedding()
    VectorStoreIndex.from_documents(
        documents,
        storage_context=storage,
        transformations=[SentenceSplitter(chunk_size=256)],
        embed_model=embed,
    )
    storage.persist(persist_dir=str(kb))
    secrets = ["Harold Finch", "88412095", "grace.finch@example.com", "Lucia Moreno", "knowledge_base/"]
    leaked = [s for s in secrets for f in kb.iterdir() if s.encode() in f.read_bytes()]
    size = sum(f.stat().st_size for f in kb.iterdir())
    console.print(
        f"[b]encrypted knowledge base[/b]: {len(list(kb.iterdir()))} files, {size:,} bytes in {kb}/"
    )
    console.print(
        f"  searched every byte for {len(secrets)} seeded values: "
        + (f"LEAKED {leaked}" if leaked else "none found")
    )
    reader = Guardrail(policy="hipaa-safe-harbor", keyring=keys, tenant="riverside")
    reopened = reader.load_storage_context(kb)
    index = VectorStoreIndex.from_vector_store(reopened.vector_stores["default"], embed_model=embed)
    # closed by default: an unguarded read is refused; this check of the store itself is maintenance
    with reader.release_all(reason="demo: the reopened store answers"):
        hits = index.as_retriever(similarity_top_k=1).retrieve("discharge plan for the patient with CHF")
    console.print(
        f"  reopened with the keyring; top hit for 'discharge plan ... CHF': {hits[0].node.metadata['title']}"
    )


def _guarded_retrieval_demo(output: Path, docs: list[Path], texts: list[str], *, console: Console) -> None:
    import shutil

    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from guardrail.access import Principal
    from guardrail.audit import verify
    from guardrail.core import Guardrail
    from guardrail.llama_index.hashing import HashingEmbedding

    audit = output / "audit"
    shutil.rmtree(audit, ignore_errors=True)
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=output / "keys", audit_log=audit, tenant="riverside")
    documents = [
        Document(
            text=text,
            metadata={"classification": "public"} if "public" in doc.stem else {"subjects": [doc.stem]},
        )
        for doc, text in zip(docs, texts, strict=True)
    ]
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=gr.storage_context(),
        transformations=[SentenceSplitter(chunk_size=256), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=2))
    question = "discharge plan for the patient with CHF"
    console.print(f"[b]guarded retrieval[/b] ({gr.policy.id}): {question!r}")
    for principal in (
        Principal("dr-chen", ["clinician"], "treatment"),
        Principal("r-17", ["researcher"], "research"),
        Principal("agent-5", ["support"], "support"),
    ):
        with gr.acting_as(principal):
            hits = retriever.retrieve(question)
        lines = hits[0].node.get_content().splitlines() if hits else []
        first = (lines[1] if len(lines) > 1 else lines[0])[:80] if lines else "(nothing released)"
        console.print(
            f"  {principal.roles[0]:>10} for {principal.purpose:<9} {len(hits)} node(s): {first}",
            markup=False,
        )
    gr.close()
    report = verify(audit)
    console.print(f"  audit log {audit}/: {report.message}")


def _finetune_demo(output: Path, *, console: Console) -> Path:
    from guardrail.datasets.run import redact_file, scan_file
    from guardrail.keys import Keyring

    keyring = Keyring.open(output / "keys")
    train = sample_path("finetune_chat.jsonl")
    scan = scan_file(train, policy="gdpr", keyring=keyring, audit_log=output / "audit", actor="demo")
    console.print(
        f"[b]fine-tuning set[/b] ({scan.records} chats, gdpr pack): {scan.total} findings in the user and "
        "assistant turns; redacting with keyed pseudonyms, re-scan gate --fail-on 0"
    )
    result = redact_file(
        train,
        output / "finetune_chat.redacted.jsonl",
        keyring=keyring,
        policy="gdpr",
        tenant="riverside",
        audit_log=output / "audit",
        fail_on=0,
        force=True,
        actor="demo",
    )
    rows = [json.loads(line) for line in result.output.read_text(encoding="utf-8").splitlines()]
    for row in rows[:1] + rows[6:7]:
        for message in row["messages"][1:]:
            console.print(f"  {message['role']:>9}: {message['content']}", markup=False)
    m = result.manifest
    console.print(
        f"  residual findings {m.residual}; signed manifest {result.manifest_path.name} "
        f"(key {result.key_id}); dataset card {result.card_path.name}"
    )
    return result.output
