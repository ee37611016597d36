"""Add guardrail to an existing LlamaIndex RAG pipeline in about three lines.

Run: python examples/wrap_existing_rag.py [WORKDIR]

The example builds an ordinary LlamaIndex pipeline over guardrail's bundled sample knowledge base (a
discharge summary, a referral letter, a support FAQ and a public visiting-hours notice) and runs one
retrieval: everything comes back as stored, names and record numbers included.

It then builds THE SAME pipeline with guardrail added (each added line is marked ``# + guardrail``):

* ``Guardrail(...)`` with a keyring, an audit log and a tenant;
* ``storage_context=gr.storage_context()``: the docstore, index store and vector store are encrypted;
* ``gr.annotator()`` in ``transformations``: personal data is detected once, at ingestion;
* ``retriever = gr.guard(...)``: every retrieval is decided per chunk by the policy, redacted per the
  rule's profile and written to a tamper-evident audit log; it fails closed.

Under the ``hipaa-safe-harbor`` policy three people ask the same question:

* a clinician, for treatment, sees the discharge summary as written;
* a researcher, for research, sees it Safe Harbor de-identified (names, MRN, contact details removed,
  dates cut to the year, ages over 89 shown as 90+);
* a support agent, for support, is denied every chunk holding PHI and gets only the public notice.

Finally it closes the log, verifies it and proves that the last retrieval event is in it.
WORKDIR (default ``wrap-rag-example``) receives the keyring (``keys/``) and the audit log (``audit/``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import NodeWithScore

import guardrail.audit
from guardrail import Guardrail
from guardrail.access import Principal
from guardrail.demo import sample_path
from guardrail.keys import Keyring
from guardrail.llama_index.hashing import HashingEmbedding

QUERY = "discharge plan for the patient with CHF"

# labels your ingestion already knows: whose record a document is (your own opaque subject ids, not
# names or MRNs) and what is public
METADATA: dict[str, dict[str, Any]] = {
    "discharge_summary_chf.md": {"subjects": ["patient-1042"]},
    "referral_diabetes.md": {"subjects": ["patient-2187"]},
    "public_policy_visiting_hours.md": {"classification": "public"},
    # unlabelled: the annotator classifies it (phi if personal data is found in it)
    "support_billing_faq.md": {},
}

PRINCIPALS = {
    "clinician": Principal("dr-chen", ["clinician"], "treatment"),
    "researcher": Principal("researcher-17", ["researcher"], "research"),
    "support": Principal("agent-5", ["support"], "support"),
}


def load_documents() -> list[Document]:
    """The bundled knowledge base as LlamaIndex documents."""
    return [
        Document(text=path.read_text(encoding="utf-8"), doc_id=path.name, metadata=dict(METADATA[path.name]))
        for path in sorted(sample_path("knowledge_base").glob("*.md"))
    ]


def show(title: str, hits: list[NodeWithScore]) -> list[str]:
    """Print the retrieved chunks; return their texts."""
    print(f"\n--- {title}: {len(hits)} chunk(s)")
    texts = []
    for hit in hits:
        text = hit.node.get_content()
        texts.append(text)
        print(f"[{hit.node.ref_doc_id}]")
        print("    " + text.strip().replace("\n", "\n    "))
    return texts


def last_retrieval(audit_dir: Path) -> dict[str, Any]:
    """The newest ``rag.retrieval`` record of the audit log."""
    records = [
        r for r in guardrail.audit.iter_records(audit_dir) if r["event"]["category"] == "rag.retrieval"
    ]
    return records[-1]


def main(workdir: Path) -> dict[str, list[str]]:
    keys, audit_dir = workdir / "keys", workdir / "audit"
    if not (keys / "keyring.json").exists():
        Keyring.create(keys)  # or: guardrail keys init WORKDIR/keys

    # ------------------------------------------------------------------ 1. an ordinary RAG pipeline
    index = VectorStoreIndex.from_documents(
        load_documents(),
        transformations=[SentenceSplitter()],
        embed_model=HashingEmbedding(),  # offline stand-in for your embedding model
    )
    retriever = index.as_retriever(similarity_top_k=3)
    print(f"query: {QUERY!r}")
    show("ordinary pipeline, anyone", retriever.retrieve(QUERY))

    # ------------------------------------------------------------------ 2. the same, with guardrail
    # + guardrail: one object per policy, with a keyring, an audit log and a tenant
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=keys, audit_log=audit_dir, tenant="riverside")
    index = VectorStoreIndex.from_documents(
        load_documents(),
        storage_context=gr.storage_context(),  # + guardrail: encrypted stores
        transformations=[SentenceSplitter(), gr.annotator()],  # + guardrail: detect PII at ingestion
        embed_model=HashingEmbedding(),
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=3))  # + guardrail: decide, redact, audit

    seen: dict[str, list[str]] = {}
    for name, principal in PRINCIPALS.items():
        with gr.acting_as(principal):
            hits = retriever.retrieve(QUERY)
        seen[name] = show(
            f"guarded, {name} ({', '.join(principal.roles)}, purpose {principal.purpose})", hits
        )
        # one audit record per retrieval: who, why, which rule, what was released (never the text).
        # Classifications a principal may not see at all (PHI for support) are excluded in the vector
        # query itself, so those chunks are never fetched or decrypted for them.
        record = last_retrieval(audit_dir)
        print(
            f"audit: {record['policy']['decision']} by {', '.join(record['policy']['rule_ids'])}; "
            f"returned {record['retrieval']['returned']}, denied {record['retrieval']['denied']}, "
            f"redacted {record['retrieval']['redacted']}"
        )

    # ------------------------------------------------------------------ 3. the audit log
    gr.close()  # flushes the log and signs a checkpoint covering every record
    report = guardrail.audit.verify(audit_dir)
    print(
        f"\naudit log {audit_dir}: ok={report.ok}, {report.records} records, "
        f"{report.checkpoints_verified} verified checkpoint(s)"
    )

    event_id = last_retrieval(audit_dir)["event_id"]
    proof = guardrail.audit.prove(audit_dir, event_id)
    valid = guardrail.audit.verify_proof(proof, (audit_dir / "audit.pub").read_text(encoding="utf-8"))
    print(
        f"inclusion proof for event {event_id}: leaf {proof.leaf_index} of {proof.tree_size}, "
        f"{len(proof.audit_path)} sibling hashes, valid={valid}"
    )
    return seen


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "wrap-rag-example"))
