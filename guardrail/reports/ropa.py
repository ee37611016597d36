"""A draft GDPR Art. 30(1) record of processing activities, from the policies and the audit log.

What the log and the policies show (purposes used, data categories detected, recipient roles, external
recipients, erasures, the technical measures in force) is filled in; what they cannot know (the controller
and DPO, lawful bases not recorded, categories of data subjects, third-country transfers, time limits,
organisational measures) is left as a clearly marked blank for the controller to complete.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from guardrail.policy import Policy
from guardrail.reports.activity import assemble
from guardrail.reports.legal import processor_words, purpose_code, purpose_words, record_bases
from guardrail.reports.model import Blank, Block, Column, Facts, Note, Period, Report, Section, Table
from guardrail.reports.org import Organisation, load_org
from guardrail.reports.source import LogReader, PolicyIndex, check_integrity, get, parse_moment

__all__ = ["build_ropa"]

_SUBJECTS_CAP = 100_000  # distinct subject references counted exactly up to this many
_SPECIAL = {
    "NRP": "racial or ethnic origin (Art. 9)",
    "MEDICAL_RECORD_NUMBER": "health (Art. 9)",
    "HEALTH_PLAN_ID": "health (Art. 9)",
}


def _text(value: Any, default: str = "-") -> str:
    return value if isinstance(value, str) and value else default


class _Activity:
    __slots__ = ("art9", "bases", "classes", "events", "exports", "first", "hipaa", "last", "name", "roles")

    def __init__(self) -> None:
        self.events = 0
        self.exports = 0
        self.name = ""
        self.hipaa: set[str] = set()
        self.roles: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()
        self.bases: set[str] = set()
        self.art9: set[str] = set()
        self.first = ""
        self.last = ""


def _retention_text(policies: list[Policy], org: Organisation) -> Any:
    from guardrail.governance import parse_duration

    parts = []
    for p in policies:
        r = p.retention
        items = [f"{c} {parse_duration(d)} days" for c, d in r.classifications.items()]
        items += [f"purpose {u} {parse_duration(d)} days" for u, d in r.purposes.items()]
        if r.vault is not None:
            items.append(f"vault tokens {parse_duration(r.vault)} days")
        if items:
            parts.append(f"{p.id}: " + ", ".join(items))
    if org.retention:
        parts.append(org.retention)
    return "; ".join(parts) or Blank("retention per category (policy retention section or --org FILE)")


def _overdue(audit_dir: str | os.PathLike[str], policies: list[Policy], clock: datetime | None) -> Any:
    from guardrail.retention import overdue_chunks

    with_periods = [p for p in policies if p.retention.classifications or p.retention.purposes]
    if not with_periods:
        return "-"
    found: dict[str, str] = {}
    for p in with_periods:
        found.update(overdue_chunks(audit_dir, p, now=clock))
    if not found:
        return "none"
    by_class: Counter[str] = Counter(found.values())
    return f"OVERDUE: {len(found)} ({', '.join(f'{c} {n}' for c, n in sorted(by_class.items()))}); " + (
        "run `guardrail retention apply`"
    )


def _audit_retention(policies: list[Policy]) -> Any:
    from guardrail.governance import parse_duration

    declared = [
        f"{p.id}: {parse_duration(p.retention.audit_log)} days" for p in policies if p.retention.audit_log
    ]
    return "; ".join(declared) or Blank(
        "at least 6 months (AI Act Art. 19); 6 years for HIPAA documentation (retention.audit_log)"
    )


def build_ropa(
    audit_dir: str | os.PathLike[str],
    *,
    policies: tuple[str | Path | Policy, ...] = (),
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    public_key: str | None = None,
    clock: datetime | None = None,
    org: str | Path | Organisation | None = None,
) -> Report:
    """Draft the Art. 30(1) record of processing activities.

    Args:
        audit_dir: the audit log directory.
        policies: the policy packs or files in force; default: those the log names that are shipped packs
            with the recorded text (sha256).
        since: first moment included; until: first moment excluded.
        public_key: the verifier key text (default: the log's ``audit.pub``).
        clock: the generation time.
        org: the organisation's details (a YAML file, see :mod:`guardrail.reports.org`): controller, DPO,
            categories of data subjects, retention, transfers, organisational measures.

    Raises:
        ReportError: a bad option, a bad --org file, or not a log directory.
        PolicyError: a policy file is invalid.
    """
    organisation = org if isinstance(org, Organisation) or org is None else load_org(org)
    start = parse_moment(since, option="--since")
    end = parse_moment(until, option="--until", end=True)
    given = PolicyIndex.load(policies)
    index = PolicyIndex(given)
    reader = LogReader(audit_dir, since=start, until=end)
    activities: dict[tuple[str, str], _Activity] = {}
    entities: Counter[str] = Counter()
    recipients: Counter[tuple[str, str]] = Counter()
    subjects: set[str] = set()
    subjects_overflow = False
    seen_policies: dict[str, Policy | None] = {}
    processors: Counter[str] = Counter()
    processor_members: dict[str, dict[str, Any]] = {}
    categories: Counter[str] = Counter()
    datasets = 0
    first = last = None
    for record in reader.records():
        at = _text(record.get("occurred_at"), "")
        first = at if first is None or at < first else first
        last = at if last is None or at > last else last
        category = _text(get(record, "event", "category"))
        categories[category] += 1
        pid, sha = get(record, "policy", "id"), get(record, "policy", "sha256")
        if isinstance(pid, str) and isinstance(sha, str) and sha not in seen_policies:
            seen_policies[sha] = index.lookup(pid, sha)
        counts = get(record, "pii", "counts")
        if isinstance(counts, dict) and category in ("rag.ingest", "ft.scan", "ft.export"):
            entities.update({k: v for k, v in counts.items() if type(v) is int})
        refs = record.get("subjects")
        if isinstance(refs, list) and not subjects_overflow:
            subjects.update(r for r in refs if isinstance(r, str))
            if len(subjects) > _SUBJECTS_CAP:
                subjects_overflow, subjects = True, set()
        disclosure = record.get("disclosure")
        if isinstance(disclosure, dict):
            recipients[_text(disclosure.get("recipient")), _text(disclosure.get("purpose"))] += 1
        for member in record.get("processors") or ():
            if isinstance(member, dict):
                key = processor_words(member)
                processors[key] += 1
                processor_members.setdefault(key, member)
        if category in ("ft.scan", "ft.export"):
            datasets += 1
        if (
            category not in ("rag.retrieval", "reidentify", "ft.export")
            or get(record, "event", "outcome") == "denied"
        ):
            continue
        code = purpose_code(record) or ("(not declared)" if category == "ft.export" else "NONE")
        act = activities.get((_text(pid), code))
        if act is None:
            act = activities[_text(pid), code] = _Activity()
            act.first = at
        name = get(record, "purpose", "name")
        if isinstance(name, str) and name:
            act.name = name
        if category == "ft.export":
            act.exports += 1
        act.events += 1
        act.last = max(act.last, at)
        for role in get(record, "actor", "roles") or ():
            if isinstance(role, str):
                act.roles[role] += 1
        for res in record.get("resources") or ():
            labels = res.get("labels") if isinstance(res, dict) else None
            if isinstance(labels, list) and labels and res.get("decision", "allow") == "allow":
                act.classes[str(labels[0])] += 1
        bases = record_bases(record, seen_policies.get(sha) if isinstance(sha, str) else None)
        for kind, target in (("gdpr_basis", act.bases), ("art9_basis", act.art9), ("hipaa_basis", act.hipaa)):
            if kind in bases:
                target.add(bases[kind])
    integrity = check_integrity(audit_dir, public_key=public_key, records_read=reader.read)
    period = Period(start, end, first, last)
    in_force = list(given) + [p for p in seen_policies.values() if p is not None and p not in given]
    unknown = sum(1 for p in seen_policies.values() if p is None)
    names = {code: name for p in in_force for code, name in p.purpose_names().items()}

    o = organisation or Organisation()

    def filled(value: Any, hint: str) -> Any:
        if value is None:
            return Blank(f"{hint} (--org FILE)")
        return value if isinstance(value, str) else value.describe()

    controller = Facts(
        "controller",
        "Controller (Art. 30(1)(a))",
        (
            ("name and contact details of the controller", filled(o.controller, "controller name, contact")),
            ("joint controller, if any", filled(o.joint_controller, "joint controller")),
            ("representative (Art. 27), if any", filled(o.representative, "EU representative")),
            ("data protection officer", filled(o.dpo, "DPO name and contact")),
        ),
    )
    rows = []
    for (pid, code), act in sorted(activities.items(), key=lambda kv: (-kv[1].events, kv[0])):
        if code == "(not declared)":
            words: Any = Blank("the purpose of dataset exports (set datasets.purpose in the policy)")
        else:
            words = purpose_words(code, act.name or names.get(code))
        rows.append(
            (
                words,
                pid,
                ", ".join(sorted(act.bases)) or Blank("lawful basis, Art. 6(1) (purposes.*.gdpr_basis)"),
                ", ".join(sorted(act.art9))
                or (
                    "-"
                    if not act.classes.keys() & {"phi", "special_category"}
                    else Blank("Art. 9(2) condition (declare purposes.*.art9_basis)")
                ),
                ", ".join(sorted(act.hipaa)) or "-",
                ", ".join(r for r, _ in act.roles.most_common()) or "-",
                ", ".join(c for c, _ in act.classes.most_common()) or "-",
                act.events,
                act.first,
                act.last,
            )
        )
    purposes = Table(
        "processing_activities",
        "Purposes of the processing (Art. 30(1)(b)), as observed",
        (
            Column("purpose", "purpose (code)"),
            Column("policy", "policy"),
            Column("gdpr_basis", "lawful basis (Art. 6)"),
            Column("art9_basis", "Art. 9(2) condition"),
            Column("hipaa_basis", "HIPAA basis"),
            Column("roles", "recipient roles"),
            Column("classifications", "data classifications"),
            Column("events", "events", True),
            Column("first_seen", "first seen"),
            Column("last_seen", "last seen"),
        ),
        tuple(rows),
        note="One row per policy and purpose code in retrievals, re-identifications and dataset exports.",
    )
    declared = sorted({e for p in in_force for e in p.detection.all_entities})
    data_rows = tuple(
        (e, entities.get(e, 0), "yes" if e in declared else "no", _SPECIAL.get(e, "-"))
        for e in sorted(set(declared) | set(entities), key=lambda e: (-entities.get(e, 0), e))
    )
    data = Table(
        "data_categories",
        "Categories of personal data (Art. 30(1)(c))",
        (
            Column("entity", "entity type"),
            Column("detected", "detected (ingestion, datasets)", True),
            Column("declared", "in a policy"),
            Column("special", "special category"),
        ),
        data_rows,
    )
    subject_facts = Facts(
        "data_subjects",
        "Categories of data subjects (Art. 30(1)(c))",
        (
            (
                "categories",
                ", ".join(o.data_subjects) if o.data_subjects else Blank("e.g. patients (--org FILE)"),
            ),
            (
                "distinct subject references in the log",
                f"more than {_SUBJECTS_CAP}" if subjects_overflow else len(subjects),
            ),
        ),
    )
    recipient_rows = tuple((f"external: {r}", p, n) for (r, p), n in recipients.most_common())
    role_totals: Counter[str] = Counter()
    for act in activities.values():
        role_totals.update(act.roles)
    recipient_rows = (
        tuple((f"internal role: {r}", "-", n) for r, n in role_totals.most_common()) + recipient_rows
    )
    recipient_rows += tuple(
        (f"processor: {name}", "receives released text" if "UNDECLARED" not in name else "-", n)
        for name, n in processors.most_common()
    )
    recipient_table = Table(
        "recipients",
        "Categories of recipients (Art. 30(1)(d))",
        (Column("recipient", "recipient"), Column("purpose", "purpose"), Column("events", "events", True)),
        recipient_rows,
    )
    declared_processors = {p.name: p for pol in in_force for p in pol.processors}
    transfer_rows = []
    for member in processor_members.values():
        name = str(member.get("name"))
        spec = declared_processors.get(name)
        region = member.get("region") or (spec.region if spec else None)
        transfer = member.get("transfer") or (spec.transfer if spec else None)
        agreement = member.get("agreement") or (spec.agreement if spec else None)
        transfer_rows.append(
            (
                processor_words(member) if name == "undeclared" else name,
                str(member.get("kind", "-")),
                str(member.get("role", "-")),
                region or Blank("region / country"),
                transfer or Blank("transfer mechanism (adequacy, SCCs...) or none"),
                agreement or Blank("DPA (Art. 28) / BAA reference"),
            )
        )
    for name, spec in declared_processors.items():
        if name not in {str(m.get("name")) for m in processor_members.values()}:
            transfer_rows.append(
                (
                    f"{name} (declared, not seen in the period)",
                    spec.kind,
                    spec.role,
                    spec.region or Blank("region / country"),
                    spec.transfer or Blank("transfer mechanism or none"),
                    spec.agreement or Blank("DPA / BAA reference"),
                )
            )
    processor_table = Table(
        "processors",
        "Processors and where the data goes (Art. 28, 30(1)(d)(e); HIPAA business associates)",
        (
            Column("processor", "processor"),
            Column("kind", "kind"),
            Column("role", "role"),
            Column("region", "region"),
            Column("transfer", "transfer mechanism"),
            Column("agreement", "DPA / BAA"),
        ),
        tuple(transfer_rows),
        empty="no processor recorded or declared (declare processors in the policy)",
    )
    transfers = Facts(
        "transfers",
        "Transfers to third countries (Art. 30(1)(e))",
        (
            (
                "third countries or international organisations, and safeguards",
                o.transfers
                if o.transfers
                else Blank("transfers and Art. 46 safeguards (see the processors table; --org FILE)"),
            ),
        ),
    )
    retention = Facts(
        "retention",
        "Time limits for erasure (Art. 30(1)(f))",
        (
            ("envisaged time limits per data category", _retention_text(in_force, o)),
            ("audit log retention", _audit_retention(in_force)),
            ("chunks past retention, not yet deleted (per the log)", _overdue(audit_dir, in_force, clock)),
            ("oldest event in the log", first or "-"),
            ("erasures recorded (Art. 17)", categories["dsar.erasure"]),
        ),
    )
    rules = sum(len(p.access.rules) for p in in_force)
    toms = Facts(
        "security_measures",
        "Technical and organisational security measures (Art. 30(1)(g), Art. 32)",
        (
            (
                "encryption at rest",
                "AES-256-GCM envelope encryption per record, keys wrapped by a KEK held apart"
                if categories["rag.ingest"]
                else "-",
            ),
            (
                "pseudonymisation / redaction",
                ", ".join(f"{p.id}: default {p.redaction.default.operator}" for p in in_force) or "-",
            ),
            (
                "access control",
                f"{rules} rule(s) in {len(in_force)} policy pack(s); deny by default; a purpose on each "
                "request",
            ),
            (
                "audit",
                f"tamper-evident log (RFC 6962 Merkle tree, signed checkpoints): {integrity.status}, "
                f"{integrity.checkpoints_verified} checkpoint(s) verified",
            ),
            (
                "key management",
                f"{categories['key.rotate']} rotation(s), {categories['key.shred']} key destruction(s)",
            ),
            ("training data", f"{datasets} dataset scan(s)/export(s) with manifests" if datasets else "-"),
            (
                "organisational measures",
                o.organisational_measures
                or Blank("training, confidentiality, incident response, reviews (--org FILE)"),
            ),
        ),
    )
    blocks_policies: list[Block] = [
        Table(
            "policies",
            "Policies in force",
            (Column("policy", "policy"), Column("sha256", "sha256"), Column("description", "description")),
            tuple((p.id, p.sha256[:16], " ".join(p.description.split())) for p in in_force),
        )
    ]
    if unknown:
        blocks_policies.append(
            Note(
                f"{unknown} policy text(s) named in the log are not available (not a shipped pack with "
                "the recorded sha256): pass them with --policy FILE to describe them.",
                "warning",
            )
        )
    draft = Note(
        "Draft generated from the policies and the audit log. Fields marked TO BE COMPLETED cannot be "
        "known from them and must be filled in by the controller; the record of processing is the "
        "controller's document "
        "(Art. 30(1)), guardrail provides evidence for it.",
        "blank",
    )
    sections = (
        Section("controller", "Controller", (draft, controller)),
        Section("processing", "Processing activities", (purposes, data, subject_facts, recipient_table)),
        Section(
            "transfers", "Processors, transfers and time limits", (processor_table, transfers, retention)
        ),
        Section("measures", "Security measures", (toms, *blocks_policies)),
    )
    title = "GDPR Art. 30 record of processing activities (draft)"
    filters = tuple(("policy", p.id) for p in given)
    return assemble("ropa", title, audit_dir, integrity, period, sections, filters=filters, clock=clock)
