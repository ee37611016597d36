"""Audit logs for the report tests: a synthetic one with known figures, and a real guarded-RAG scenario."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrail.audit import AuditLog
from guardrail.keys import Keyring
from guardrail.policy import load_policy

SEED = bytes(range(32))
RECORD_KEY = bytes(range(2, 34))
ORIGIN = "test.example/guardrail.audit/1"
HIPAA = load_policy("hipaa-safe-harbor")
GDPR = load_policy("gdpr")
SOURCE = {"app": "guardrail@0.1.0", "component": "test"}


def _policy(pol: Any = HIPAA, **extra: Any) -> dict[str, Any]:
    return {"id": pol.name, "version": pol.version, "sha256": pol.sha256, **extra}


def retrieval(
    at: str,
    *,
    actor: str = "dr-chen",
    roles: tuple[str, ...] = ("clinician",),
    purpose: str = "TREAT",
    outcome: str = "success",
    decision: str = "allow",
    rule_ids: tuple[str, ...] = ("clinician-treatment",),
    resources: tuple[tuple[str, str], ...] = (("phi", "allow"),),
    redacted: dict[str, int] | None = None,
    profile: str = "none",
    subjects: tuple[str, ...] = (),
    category: str = "rag.retrieval",
    pol: Any = HIPAA,
) -> dict[str, Any]:
    """A rag.retrieval event as ``Guardrail._audit_retrieval`` writes it."""
    allowed = sum(1 for _, d in resources if d == "allow")
    return {
        "occurred_at": at,
        "event": {"category": category, "action": "R", "outcome": outcome},
        "source": SOURCE,
        "actor": {"ref": actor, "type": "user", "roles": list(roles)},
        "purpose": {"code": purpose},
        "policy": _policy(
            pol, decision=decision, rule_ids=list(rule_ids), redaction_profile=[profile], prefilter="none"
        ),
        "subjects": list(subjects),
        "resources": [
            {"type": "chunk", "id": f"n-{i}", "labels": [label], "decision": d}
            for i, (label, d) in enumerate(resources)
        ],
        "query": {"mac": "ab" * 16, "chars": 30},
        "retrieval": {
            "k": len(resources),
            "returned": allowed,
            "denied": len(resources) - allowed,
            "redacted": 1 if redacted else 0,
        },
        "pii": {"detector": "presidio", "counts": redacted or {}},
    }


def ft_scan(at: str, dataset: str, counts: dict[str, int], *, pol: Any = HIPAA) -> dict[str, Any]:
    """An ``ft.scan`` event (the datasets contract)."""
    return {
        "occurred_at": at,
        "event": {"category": "ft.scan", "action": "R", "outcome": "success"},
        "source": SOURCE,
        "actor": {"ref": "svc-train", "type": "service"},
        "policy": _policy(pol),
        "resources": [{"type": "dataset", "id": dataset}],
        "dataset": {"id": dataset, "input_sha256": "11" * 32, "records": 120, "format": "jsonl-chat"},
        "pii": {"detector": "presidio", "counts": counts},
    }


def ft_export(
    at: str,
    dataset: str,
    before: dict[str, int],
    after: dict[str, int],
    operators: dict[str, str],
    *,
    pol: Any = HIPAA,
    subjects: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An ``ft.export`` event (the datasets contract)."""
    event: dict[str, Any] = {
        "occurred_at": at,
        "event": {"category": "ft.export", "action": "C", "outcome": "success"},
        "source": SOURCE,
        "actor": {"ref": "svc-train", "type": "service"},
        "policy": _policy(pol),
        "resources": [{"type": "dataset", "id": dataset}],
        "dataset": {
            "id": dataset,
            "input_sha256": "11" * 32,
            "output_sha256": "22" * 32,
            "records": 118,
            "input_records": 120,
            "rejects": 2,
            "residual": sum(after.values()),
            "findings_before": before,
            "findings_after": after,
            "format": "jsonl-chat",
            "token_method": "vault",
            "manifest": {"file": f"{dataset}.manifest.json", "sha256": "33" * 32, "key_id": "k-sign-1"},
        },
        "pii": {"detector": "presidio", "counts": before, "operators": operators},
    }
    if subjects:
        event["subjects"] = list(subjects)
    return event


def reidentify(
    at: str, *, outcome: str = "success", counts: dict[str, int], subjects: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A ``reidentify`` event (the datasets contract)."""
    return {
        "occurred_at": at,
        "event": {"category": "reidentify", "action": "R", "outcome": outcome},
        "source": SOURCE,
        "actor": {"ref": "dr-lee", "type": "user", "roles": ["clinician"]},
        "purpose": {"code": "TREAT"},
        "policy": _policy(
            decision="allow" if outcome == "success" else "deny", rule_ids=["clinician-treatment"]
        ),
        "resources": [{"type": "vault", "id": "vault-default"}],
        "pii": {"counts": counts},
        "subjects": list(subjects),
    }


def disclosure(at: str, subject: str, *, recipient: str, purpose: str, code: str) -> dict[str, Any]:
    """A disclosure outside the organisation about one subject."""
    return {
        "occurred_at": at,
        "event": {"category": "rag.retrieval", "action": "R", "outcome": "success"},
        "source": SOURCE,
        "actor": {"ref": "him-clerk", "type": "user", "roles": ["records"]},
        "purpose": {"code": code},
        "policy": _policy(decision="allow", rule_ids=["clinician-operations"], redaction_profile=["limited"]),
        "subjects": [subject],
        "resources": [{"type": "document", "id": "d-1", "labels": ["phi"], "decision": "allow"}],
        "disclosure": {"recipient": recipient, "description": "discharge summary", "purpose": purpose},
    }


def key_op(at: str, category: str, action: str, **fields: Any) -> dict[str, Any]:
    return {
        "occurred_at": at,
        "event": {"category": category, "action": action, "outcome": "success"},
        "source": {"app": "guardrail@0.1.0", "component": "cli"},
        **fields,
    }


def write_log(directory: Path, events: list[dict[str, Any]], **options: Any) -> Path:
    """A closed log of ``events`` (sync=False appends, one checkpoint at close)."""
    with AuditLog(directory, signing_key=SEED, record_key=RECORD_KEY, origin=ORIGIN, **options) as log:
        for e in events:
            log.append(e, sync=False)
    return directory


def synthetic_events() -> list[dict[str, Any]]:
    """Three days of activity with known figures (see the assertions in test_report_content.py)."""
    day1, day2, day3 = "2025-03-01T", "2025-03-02T", "2025-03-03T"
    events: list[dict[str, Any]] = [
        key_op(day1 + "08:00:00.000Z", "policy.load", "R", policy=_policy()),
        # day 1: 3 clinician retrievals (treatment), 1 researcher (redacted)
        *(retrieval(day1 + f"09:0{i}:00.000Z") for i in range(3)),
        retrieval(
            day1 + "10:00:00.000Z",
            actor="r-17",
            roles=("researcher",),
            purpose="HRESCH",
            rule_ids=("researcher-safe-harbor",),
            profile="redact",
            redacted={"PERSON": 3, "MEDICAL_RECORD_NUMBER": 1},
        ),
        # day 2: a support agent denied PHI twice, one partial
        *(
            retrieval(
                day2 + f"11:0{i}:00.000Z",
                actor="agent-5",
                roles=("support",),
                purpose="OPERATIONS",
                outcome="denied",
                decision="deny",
                rule_ids=("support-no-phi",),
                resources=(("phi", "deny"),),
            )
            for i in range(2)
        ),
        retrieval(
            day2 + "12:00:00.000Z",
            actor="agent-5",
            roles=("support",),
            purpose="OPERATIONS",
            decision="partial",
            rule_ids=("public-to-all", "support-no-phi"),
            resources=(("public", "allow"), ("phi", "deny")),
            profile="none",
        ),
        retrieval(day2 + "13:00:00.000Z", actor="dev-1", roles=("engineer",), category="rag.unguarded"),
        # day 3: datasets, re-identifications, keys
        ft_scan(day3 + "08:00:00.000Z", "chats-2025-03", {"PERSON": 40, "EMAIL_ADDRESS": 5}),
        ft_export(
            day3 + "08:10:00.000Z",
            "chats-2025-03",
            before={"PERSON": 40, "EMAIL_ADDRESS": 5, "DATE_TIME": 12, "CREDIT_CARD": 2},
            after={"PERSON": 1},
            operators={
                "PERSON": "pseudonymize",
                "EMAIL_ADDRESS": "replace",
                "DATE_TIME": "generalize",
                "CREDIT_CARD": "mask",
            },
        ),
        reidentify(day3 + "09:00:00.000Z", counts={"PERSON": 2}),
        reidentify(day3 + "09:05:00.000Z", outcome="denied", counts={"PERSON": 1}),
        key_op(
            day3 + "10:00:00.000Z",
            "key.rotate",
            "U",
            resources=[{"type": "key", "id": "k-2", "labels": ["version-2"]}],
        ),
        key_op(
            day3 + "10:30:00.000Z",
            "key.shred",
            "D",
            resources=[{"type": "key", "id": "k-1", "labels": ["retired"]}],
        ),
        key_op(
            day3 + "11:00:00.000Z",
            "dsar.erasure",
            "D",
            subjects=["0123456789abcdef"],
            resources=[{"type": "key", "id": "k-s-9", "labels": ["destroyed"]}],
            retrieval={"deleted_nodes": 3, "deleted_records": 4},
        ),
        key_op(day3 + "12:00:00.000Z", "policy.load", "R", policy=_policy(GDPR)),
    ]
    return events


# --------------------------------------------------------------------------- a real scenario

PATIENT = "patient-88412095"
NOTE = (
    "Discharge plan for Harold Finch (MRN 88412095), 94 y/o, CHF: furosemide 40 mg daily. "
    "Call 617-555-0199 or write to harold.finch@example.com. Follow-up on March 3, 2025 "
    "with Dr. Amara Okafor."
)
#: values seeded into the scenario that must never appear in any report
SEEDED_PII = (
    "Harold Finch",
    "Finch",
    "88412095",
    "617-555-0199",
    "harold.finch@example.com",
    "Amara Okafor",
    "March 3, 2025",
    PATIENT,
    "discharge plan CHF",
)


@dataclass(frozen=True)
class Scenario:
    audit: Path
    keys: Path
    tenant: str
    subject_ref: str


def build_scenario(root: Path) -> Scenario:
    """A real Guardrail (keyring, encrypted store, guarded retrieval by three principals, erasure), then
    dataset, re-identification and disclosure events about the same patient appended with ``AuditLog``."""
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from guardrail import Guardrail
    from guardrail.access import Principal
    from guardrail.llama_index.hashing import HashingEmbedding

    keys, audit, tenant = root / "keys", root / "audit", "acme"
    Keyring.create(keys)
    gr = Guardrail(policy="hipaa-safe-harbor", keyring=keys, audit_log=audit, tenant=tenant)
    docs = [
        Document(text=NOTE, metadata={"subjects": [PATIENT], "title": "Finch discharge"}),
        Document(text="Visiting hours are 10:00 to 20:00.", metadata={"classification": "public"}),
    ]
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=gr.storage_context(),
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    retriever = gr.guard(index.as_retriever(similarity_top_k=5))
    for principal in (
        Principal("dr-chen", ["clinician"], "treatment"),
        Principal("r-1", ["researcher"], "research"),
        Principal("s-1", ["support"], "support"),
    ):
        with gr.acting_as(principal):
            retriever.retrieve("discharge plan CHF")
    ref = gr._subject_ref(PATIENT)
    ring = Keyring.open(keys)
    now = "2026-01-15T10:00:00.000Z"
    # a second writer on the same directory (the log is safe across writers)
    with AuditLog.for_keyring(audit, ring) as log:
        log.append(
            ft_export(
                now,
                "notes-export",
                before={"PERSON": 3, "MEDICAL_RECORD_NUMBER": 1, "PHONE_NUMBER": 1},
                after={},
                operators={
                    "PERSON": "replace",
                    "MEDICAL_RECORD_NUMBER": "replace",
                    "PHONE_NUMBER": "replace",
                },
                subjects=(ref,),
            )
        )
        log.append(reidentify(now, counts={"PERSON": 1}, subjects=(ref,)))
        log.append(
            disclosure(now, ref, recipient="State cancer registry", purpose="public health", code="PUBHLTH")
        )
    gr.erase_subject(PATIENT)
    gr.close()
    return Scenario(audit, keys, tenant, ref)
