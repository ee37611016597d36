"""The activity report (``guardrail report AUDIT_DIR``): integrity, access, exposure, datasets, keys and
policies, built in one streaming pass with bounded memory.

Every aggregate is a counter keyed by something small (an hour, a role, a purpose, a rule, an entity type,
a policy version). Lists of individual events (re-identifications, dataset exports, key operations,
unguarded retrievals) keep the most recent ones in a bounded deque and count the rest. Principals are
counted in a table pruned to the busiest when it grows past a cap, with the error bound stated.
"""

from __future__ import annotations

import os
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from guardrail.policy import Policy
from guardrail.reports.legal import purpose_code, purpose_words
from guardrail.reports.model import (
    Block,
    Chart,
    Column,
    Facts,
    Integrity,
    Note,
    Period,
    Report,
    Section,
    Series,
    Table,
)
from guardrail.reports.safe_harbor import reference_identifiers, safe_harbor_table
from guardrail.reports.source import LogReader, PolicyIndex, check_integrity, get, now_text, parse_moment

__all__ = ["ERASURE_COLUMNS", "assemble", "build_report", "integrity_section"]

RECENT = 100  # individual events listed per kind (the most recent)
DATASETS_LISTED = 500
SAFE_HARBOR_TABLES = 20
PRINCIPALS_CAP = 10_000
TOP_PRINCIPALS = 15
_RETRIEVALS = ("rag.retrieval", "rag.unguarded")
#: what an erasure did (dsar.erasure events), after its time and subject columns
ERASURE_COLUMNS = (
    Column("deleted_nodes", "vector nodes deleted", True),
    Column("deleted_records", "docstore records deleted", True),
    Column("keys", "keys destroyed", True),
    Column("vault_tokens", "vault tokens deleted", True),
    Column("datasets", "dataset exports listed", True),
    Column("actor", "performed by"),
    Column("request", "request reference"),
)


def erasure_cells(record: dict[str, Any]) -> tuple[Any, ...]:
    """The :data:`ERASURE_COLUMNS` cells of one ``dsar.erasure`` event."""
    resources = [r for r in record.get("resources") or () if isinstance(r, Mapping)]
    actor, request = get(record, "actor", "ref"), get(record, "request", "ref")
    return (
        _int(get(record, "retrieval", "deleted_nodes")),
        _int(get(record, "retrieval", "deleted_records")),
        sum(1 for r in resources if r.get("type", "key") == "key"),
        _int(get(record, "retrieval", "vault_tokens_deleted")),
        sum(1 for r in resources if r.get("type") == "dataset"),
        actor if isinstance(actor, str) else "not recorded",
        request if isinstance(request, str) else "-",
    )


def _ints(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if type(v) is int}


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if type(value) is int else 0


def _text(value: Any, default: str = "-") -> str:
    return value if isinstance(value, str) and value else default


def _roles(record: dict[str, Any]) -> list[str]:
    roles = get(record, "actor", "roles")
    if isinstance(roles, list):
        named = [r for r in roles if isinstance(r, str)]
        if named:
            return named
    return ["(none)"]


class _Principals:
    """Event counts per principal, bounded: past ``cap`` entries the table keeps the busiest ``cap``.

    A principal dropped and seen again restarts from zero, so its count can be short by at most
    ``error`` (the largest count dropped so far): exact while no more than ``cap`` principals were seen.
    """

    def __init__(self, cap: int = PRINCIPALS_CAP) -> None:
        self.cap = cap
        self.counts: dict[str, list[Any]] = {}  # ref -> [events, denied, roles]
        self.error = 0

    def add(self, ref: str, denied: bool, roles: str) -> None:
        entry = self.counts.get(ref)
        if entry is None:
            if len(self.counts) >= 2 * self.cap:
                self._prune()
            entry = self.counts[ref] = [0, 0, roles]
        entry[0] += 1
        entry[1] += denied
        entry[2] = roles

    def _prune(self) -> None:
        ranked = sorted(self.counts.items(), key=lambda kv: kv[1][0], reverse=True)
        self.error = max(self.error, ranked[self.cap][1][0])
        self.counts = dict(ranked[: self.cap])

    def top(self, n: int) -> list[tuple[str, list[Any]]]:
        return sorted(self.counts.items(), key=lambda kv: (-kv[1][0], kv[0]))[:n]


@dataclass
class _Tally:
    """Everything the report needs, accumulated one record at a time."""

    policies: PolicyIndex
    first: str | None = None
    last: str | None = None
    events: int = 0
    by_category: Counter[tuple[str, str]] = field(default_factory=Counter)
    # access
    hours: dict[str, list[int]] = field(default_factory=dict)  # "YYYY-MM-DDTHH" -> [ok, denied, unguarded]
    by_role: dict[str, list[int]] = field(
        default_factory=dict
    )  # role -> [retrievals, denied, chunks, denied chunks]
    by_purpose: dict[str, list[int]] = field(default_factory=dict)
    by_outcome: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)  # allow / partial / deny
    deny_rules: Counter[tuple[str, str]] = field(default_factory=Counter)  # (policy, rule) -> events
    unknown_rule_effects: bool = False
    denied_by_class: Counter[str] = field(default_factory=Counter)
    withheld: Counter[tuple[str, str]] = field(default_factory=Counter)  # (policy, rule) -> chunks
    withheld_events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (policy, rule) -> retrievals
    denied_events: int = 0
    principals: _Principals = field(default_factory=_Principals)
    unguarded: int = 0
    unguarded_recent: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=RECENT))
    canaries: int = 0  # canary.tripped events (guardrail.canaries)
    canary_recent: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=RECENT))
    # exposure
    ingested: Counter[str] = field(default_factory=Counter)
    ingest_chunks: int = 0
    redacted: Counter[str] = field(default_factory=Counter)
    reidentified: Counter[str] = field(default_factory=Counter)
    released: Counter[tuple[str, str]] = field(default_factory=Counter)  # (classification, profile) -> chunks
    reid_summary: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    reid_recent: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=RECENT))
    reid_total: int = 0
    # datasets
    datasets: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DATASETS_LISTED))
    dataset_total: int = 0
    # keys and policies
    rotations: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=RECENT))
    shreds: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=RECENT))
    erasures: deque[tuple[Any, ...]] = field(default_factory=lambda: deque(maxlen=RECENT))
    key_counts: Counter[str] = field(default_factory=Counter)
    versions: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)  # -> [first, last, events]

    def add(self, record: dict[str, Any]) -> None:
        category = _text(get(record, "event", "category"))
        outcome = _text(get(record, "event", "outcome"), "success")
        at = _text(record.get("occurred_at"), "")
        self.events += 1
        if at:
            if self.first is None or at < self.first:
                self.first = at
            if self.last is None or at > self.last:
                self.last = at
        self.by_category[category, outcome] += 1
        policy = record.get("policy")
        if isinstance(policy, dict) and isinstance(policy.get("id"), str):
            key = (policy["id"], _text(policy.get("version")), _text(policy.get("sha256")))
            seen = self.versions.get(key)
            if seen is None:
                self.versions[key] = [at, at, 1]
            else:
                seen[0] = min(seen[0], at) if at else seen[0]
                seen[1] = max(seen[1], at)
                seen[2] += 1
        if category in _RETRIEVALS:
            self._retrieval(record, category, outcome, at)
        elif category == "reidentify":
            self._reidentify(record, outcome, at)
        elif category in ("ft.scan", "ft.export"):
            self.dataset_total += 1
            self.datasets.append(record)
        elif category == "rag.ingest":
            self.ingested.update(_ints(get(record, "pii", "counts")))
            resources = record.get("resources")
            self.ingest_chunks += len(resources) if isinstance(resources, list) else 0
        elif category in ("key.rotate", "key.shred", "dsar.erasure"):
            self._key_op(record, category, at)
        elif category == "canary.tripped":
            self.canaries += 1
            canary = _obj(record.get("canary"))
            entities = canary.get("entities")
            self.canary_recent.append(
                (
                    at,
                    _text(canary.get("id")),
                    _text(canary.get("where")),
                    _text(get(record, "actor", "ref")),
                    ", ".join(e for e in entities if isinstance(e, str))
                    if isinstance(entities, list)
                    else "-",
                    "blocked" if outcome == "denied" else "reached",
                )
            )

    def _retrieval(self, record: dict[str, Any], category: str, outcome: str, at: str) -> None:
        unguarded = category == "rag.unguarded"
        retrieval = _obj(record.get("retrieval"))
        returned, denied_chunks = _int(retrieval.get("returned")), _int(retrieval.get("denied"))
        denied = outcome == "denied"
        bucket = self.hours.get(at[:13])
        if bucket is None:
            bucket = self.hours[at[:13]] = [0, 0, 0]
        bucket[2 if unguarded else (1 if denied else 0)] += 1
        self.by_outcome["unguarded" if unguarded else outcome] += 1
        roles = _roles(record)
        withheld = _ints(retrieval.get("withheld"))
        kept_out = sum(withheld.values())
        for role in roles:
            row = self.by_role.get(role)
            if row is None:
                row = self.by_role[role] = [0, 0, 0, 0, 0]
            row[0] += 1
            row[1] += denied
            row[2] += returned
            row[3] += denied_chunks
            row[4] += kept_out
        code = purpose_code(record)
        purpose = purpose_words(code, get(record, "purpose", "name")) if code else "(none)"
        prow = self.by_purpose.get(purpose)
        if prow is None:
            prow = self.by_purpose[purpose] = [0, 0, 0, 0, 0]
        prow[0] += 1
        prow[1] += denied
        prow[2] += returned
        prow[3] += denied_chunks
        prow[4] += kept_out
        pname = _text(get(record, "policy", "id"))
        for rule, n in withheld.items():
            self.withheld[pname, rule] += n
            self.withheld_events[pname, rule] += 1
        self.principals.add(_text(get(record, "actor", "ref"), "(unknown)"), denied, ", ".join(roles))
        if unguarded:
            self.unguarded += 1
            self.unguarded_recent.append((at, _text(get(record, "actor", "ref")), returned))
            return
        policy = _obj(record.get("policy"))
        self.decisions[_text(policy.get("decision"))] += 1
        self.redacted.update(_ints(get(record, "pii", "counts")))
        profiles = policy.get("redaction_profile")
        profile = profiles[0] if isinstance(profiles, list) and len(profiles) == 1 else "mixed"
        resources = record.get("resources")
        for res in resources if isinstance(resources, list) else ():
            if not isinstance(res, dict):
                continue
            labels = res.get("labels")
            label = labels[0] if isinstance(labels, list) and labels and isinstance(labels[0], str) else "-"
            decision = res.get("decision")
            if decision == "allow":
                own = res.get("profile")  # recorded per chunk since guardrail 0.1 (issue 13)
                self.released[label, own if isinstance(own, str) else str(profile)] += 1
            elif decision == "deny":
                self.denied_by_class[label] += 1
        if denied or denied_chunks:
            self.denied_events += 1
            self._deny_rules(policy)

    def _deny_rules(self, policy: dict[str, Any]) -> None:
        name = _text(policy.get("id"))
        known = self.policies.lookup(name, policy.get("sha256"))
        allow = {r.id for r in known.access.rules if r.effect == "allow"} if known is not None else set()
        rule_ids = policy.get("rule_ids")
        for rule in rule_ids if isinstance(rule_ids, list) else ():
            if not isinstance(rule, str) or rule in allow:
                continue
            if known is None and rule != "default-deny":
                self.unknown_rule_effects = True
            self.deny_rules[name, rule] += 1

    def _reidentify(self, record: dict[str, Any], outcome: str, at: str) -> None:
        self.reid_total += 1
        counts = _ints(get(record, "pii", "counts"))
        if outcome == "success":
            self.reidentified.update(counts)
        actor = _text(get(record, "actor", "ref"))
        roles = ", ".join(_roles(record))
        purpose = _text(get(record, "purpose", "code"))
        self.reid_summary[actor, roles, purpose, outcome] += 1
        rules = get(record, "policy", "rule_ids")
        vaults = [
            _text(r.get("id"))
            for r in record.get("resources") or ()
            if isinstance(r, dict) and r.get("type") == "vault"
        ]
        self.reid_recent.append(
            (
                at,
                actor,
                roles,
                purpose,
                outcome,
                ", ".join(r for r in rules if isinstance(r, str)) if isinstance(rules, list) else "-",
                sum(counts.values()),
                ", ".join(vaults) or "-",
            )
        )

    def _key_op(self, record: dict[str, Any], category: str, at: str) -> None:
        self.key_counts[category] += 1
        resources = [r for r in record.get("resources") or () if isinstance(r, dict)]
        keys = ", ".join(
            f"{_text(r.get('id'))} "
            f"({', '.join(x for x in r.get('labels') or () if isinstance(x, str)) or '-'})"
            for r in resources
        )
        component = _text(get(record, "source", "component"))
        actor, request = get(record, "actor", "ref"), get(record, "request", "ref")
        who = (
            actor if isinstance(actor, str) else "not recorded",
            request if isinstance(request, str) else "-",
        )
        if category == "key.rotate":
            self.rotations.append((at, component, len(resources), keys or "-", *who))
        elif category == "key.shred":
            self.shreds.append((at, component, len(resources), keys or "-", *who))
        else:
            subjects = record.get("subjects")
            refs = ", ".join(s for s in subjects if isinstance(s, str)) if isinstance(subjects, list) else "-"
            self.erasures.append((at, refs or "-", *erasure_cells(record)))


# --------------------------------------------------------------------------- time buckets


def _bucket_plan(first: datetime, last: datetime) -> tuple[str, timedelta | None]:
    span = last - first
    if span <= timedelta(days=2):
        return "hour", timedelta(hours=1)
    if span <= timedelta(days=92):
        return "day", timedelta(days=1)
    if span <= timedelta(days=366):
        return "week", timedelta(weeks=1)
    return "month", None


def _bucket_start(moment: datetime, unit: str) -> datetime:
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_bucket(moment: datetime, unit: str, step: timedelta | None) -> datetime:
    if step is not None:
        return moment + step
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def _bucket_label(moment: datetime, unit: str) -> str:
    if unit == "hour":
        return f"{moment:%Y-%m-%d %H}:00"
    if unit == "month":
        return f"{moment:%Y-%m}"
    if unit == "week":
        return f"week of {moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%d}"


def _timeline(hours: dict[str, list[int]]) -> tuple[str, list[str], list[list[int]]]:
    """Re-bin hourly counts into at most ~100 contiguous buckets (hours, days, weeks or months)."""
    parsed: list[tuple[datetime, list[int]]] = []
    for key, counts in hours.items():
        try:
            parsed.append((datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC), counts))
        except ValueError:
            continue
    if not parsed:
        return "day", [], []
    parsed.sort(key=lambda item: item[0])
    unit, step = _bucket_plan(parsed[0][0], parsed[-1][0])
    totals: dict[datetime, list[int]] = {}
    for moment, counts in parsed:
        slot = totals.setdefault(_bucket_start(moment, unit), [0, 0, 0])
        for i, n in enumerate(counts):
            slot[i] += n
    labels: list[str] = []
    values: list[list[int]] = []
    cursor, end = _bucket_start(parsed[0][0], unit), _bucket_start(parsed[-1][0], unit)
    while cursor <= end:
        labels.append(_bucket_label(cursor, unit))
        values.append(totals.get(cursor, [0, 0, 0]))
        cursor = _next_bucket(cursor, unit, step)
    return unit, labels, values


# --------------------------------------------------------------------------- sections


def integrity_section(i: Integrity, period: Period, *, extra: Iterable[Block] = ()) -> Section:
    """The integrity section shared by every report: the verifier's verdict and the period."""
    bad = i.first_bad_index
    verified: Any = i.records
    if not i.ok and bad is not None:
        # the records before the first damaged one are all that verified, whatever the count read
        verified = f"{min(bad, i.records)} (records 0 to {bad - 1}); record {bad} and later are NOT verified"
    elif not i.ok:
        verified = f"none: {i.records} record(s) read, the damage is not in one record"
    facts = Facts(
        "integrity",
        "Audit log verification",
        (
            ("status", i.status),
            ("records verified", verified),
            ("signed checkpoints verified", i.checkpoints_verified),
            ("records covered by a verified checkpoint", i.covered),
            ("first damaged record", i.first_bad_index if i.first_bad_index is not None else "-"),
            ("damage kind", i.kind or "-"),
            ("verifier", i.message),
            ("period", period.describe()),
        ),
    )
    blocks: list[Block] = []
    if not i.ok:
        blocks.append(
            Note(
                f"INTEGRITY FAILED: the audit log is damaged ({i.kind}). {i.message}. The figures below are "
                "read from a log that no longer matches its hashes or signed checkpoints; they are not "
                "evidence.",
                "danger",
            )
        )
    elif i.status != "VERIFIED":
        blocks.append(Note(f"Verified with a warning: {i.message}", "warning"))
    blocks.append(facts)
    if i.ok and i.covered < i.records:
        blocks.append(
            Note(
                f"The last {i.records - i.covered} record(s) are not yet covered by a signed checkpoint: "
                "they are "
                "protected by their leaf hashes only until the next checkpoint and its off-host copy.",
                "warning",
            )
        )
    if i.records_read and i.records_read != i.records:
        blocks.append(
            Note(
                f"The log grew while the report was built: {i.records} record(s) verified, {i.records_read} "
                "read.",
                "info",
            )
        )
    blocks.extend(extra)
    return Section("integrity", "Integrity", tuple(blocks))


_OCCURRED_AT = b'"occurred_at":"'


def unverified_from(audit_dir: str | os.PathLike[str], bad: int | None) -> str:
    """The earliest ``occurred_at`` among the records at or after the first damaged one (``""``: every
    record is unverified). A row whose time is at or after it may rest on an unverified record; a damaged
    record's time may itself be forged, so the earliest of all of them is taken (flagging more, never
    fewer)."""
    from guardrail.audit.storage import iter_lines, snapshot

    if bad is None:
        return ""
    earliest: str | None = None
    index = 0
    for path, size in snapshot(Path(audit_dir)).segments:
        for _, line in iter_lines(path, limit=size):
            if index >= bad:
                at = line.find(_OCCURRED_AT)
                moment = line[at + 15 : at + 39].decode("ascii", "replace") if at >= 0 else ""
                if earliest is None or moment < earliest:
                    earliest = moment
            index += 1
    return earliest if earliest is not None else "\uffff"  # nothing after: nothing flagged by time


def flag_block(block: Block, boundary: str, bad: int | None) -> Block:
    """A table over a damaged log: rows of events at or after ``boundary`` get an ``integrity`` cell
    saying UNVERIFIED; a table of counts (no event time) says in its note that its counts may include
    unverified records."""
    if not isinstance(block, Table):
        return block
    keys = [c.key for c in block.columns]
    where = f"record {bad} and later" if bad is not None else "a log whose checkpoints do not verify"
    if "occurred_at" not in keys:
        if not block.rows:
            return block
        note = f"UNVERIFIED: these counts may include {where}. {block.note}".strip()
        return replace(block, note=note)
    at = keys.index("occurred_at")

    def mark(row: tuple[Any, ...]) -> str:
        moment = row[at]
        return "UNVERIFIED" if not isinstance(moment, str) or moment >= boundary else "verified"

    return replace(
        block,
        columns=(*block.columns, Column("integrity", "integrity")),
        rows=tuple((*row, mark(row)) for row in block.rows),
        note=f"Rows marked UNVERIFIED rest on {where}. {block.note}".strip(),
    )


def assemble(
    kind: str,
    title: str,
    audit_dir: str | os.PathLike[str],
    integrity: Integrity,
    period: Period,
    sections: tuple[Section, ...],
    *,
    filters: tuple[tuple[str, str], ...] = (),
    clock: datetime | None = None,
) -> Report:
    """A report whose first section is the integrity verdict; over a damaged log every other section starts
    with a warning that its figures rest (or may rest) on records at or after the first damaged one."""
    if not integrity.ok:
        bad = integrity.first_bad_index
        where = (
            f"records at or after the first damaged record ({bad})"
            if bad is not None
            else "records of a log whose checkpoints do not verify"
        )
        flag = Note(
            f"UNVERIFIED FIGURES: the figures in this section include {where}; they are not evidence until "
            "the log is restored from its off-host copy. Rows marked UNVERIFIED rest on such records.",
            "danger",
        )
        boundary = unverified_from(audit_dir, bad)
        sections = tuple(
            Section(s.id, s.title, (flag, *(flag_block(b, boundary, bad) for b in s.blocks)), s.intro)
            for s in sections
        )
    return Report(
        kind=kind,
        title=title,
        generated_at=now_text(clock),
        source=_source_name(audit_dir),
        period=period,
        integrity=integrity,
        sections=(integrity_section(integrity, period), *sections),
        filters=filters,
    )


def _overview(t: _Tally) -> Section:
    categories = sorted({c for c, _ in t.by_category})
    rows = []
    for c in categories:
        ok, denied, error = (t.by_category.get((c, o), 0) for o in ("success", "denied", "error"))
        rows.append((c, ok + denied + error, ok, denied, error))
    table = Table(
        "events_by_category",
        "Events by category and outcome",
        (
            Column("category", "category"),
            Column("events", "events", True),
            Column("success", "success", True),
            Column("denied", "denied", True),
            Column("error", "error", True),
        ),
        tuple(rows),
    )
    return Section("overview", "Overview", (table,), intro=f"{t.events} event(s) in the period.")


def _access(t: _Tally) -> Section:
    unit, labels, values = _timeline(t.hours)
    chart = Chart(
        "retrievals_over_time",
        f"Retrievals over time (per {unit})",
        "columns",
        tuple(labels),
        (
            Series("released (guarded)", tuple(v[0] for v in values), "ok"),
            Series("denied", tuple(v[1] for v in values), "danger"),
            Series("unguarded", tuple(v[2] for v in values), "warning"),
        ),
    )
    cols = (
        Column("retrievals", "retrievals", True),
        Column("denied", "denied retrievals", True),
        Column("chunks_released", "chunks released", True),
        Column("chunks_denied", "chunks denied at release", True),
        Column("chunks_withheld", "chunks withheld before retrieval", True),
    )
    by_role = Table(
        "retrievals_by_role",
        "By role",
        (Column("role", "role"), *cols),
        tuple((r, *v) for r, v in sorted(t.by_role.items(), key=lambda kv: (-kv[1][0], kv[0]))),
        note="A principal with several roles counts under each of them.",
    )
    by_purpose = Table(
        "retrievals_by_purpose",
        "By purpose",
        (Column("purpose", "purpose (code)"), *cols),
        tuple((p, *v) for p, v in sorted(t.by_purpose.items(), key=lambda kv: (-kv[1][0], kv[0]))),
    )
    outcomes = Table(
        "retrievals_by_outcome",
        "By outcome and decision",
        (Column("what", "outcome / decision"), Column("retrievals", "retrievals", True)),
        tuple((f"outcome: {k}", v) for k, v in sorted(t.by_outcome.items()))
        + tuple((f"decision: {k}", v) for k, v in sorted(t.decisions.items())),
    )
    rule_keys = sorted(
        set(t.deny_rules) | set(t.withheld),
        key=lambda k: (-(t.deny_rules[k] + t.withheld_events[k]), k),
    )
    rules = Table(
        "denials_by_rule",
        "Denials by rule: at release, and withheld before retrieval (classification pre-filter)",
        (
            Column("policy", "policy"),
            Column("rule", "rule"),
            Column("events", "retrievals with denials at release", True),
            Column("withheld_events", "retrievals with chunks withheld before retrieval", True),
            Column("withheld", "chunks withheld before retrieval", True),
        ),
        tuple((p, r, t.deny_rules[p, r], t.withheld_events[p, r], t.withheld[p, r]) for p, r in rule_keys),
        note=(
            "Some policies are not available as a shipped pack with the recorded sha256: their rules are "
            "listed whatever their effect."
            if t.unknown_rule_effects
            else ""
        ),
    )
    denied_class = Table(
        "denied_chunks_by_classification",
        "Denied chunks by classification",
        (Column("classification", "classification"), Column("chunks", "chunks", True)),
        tuple((c, n) for c, n in sorted(t.denied_by_class.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
    unguarded = Table(
        "unguarded_retrievals",
        "Unguarded retrievals (bypassed the guard)",
        (
            Column("occurred_at", "occurred at"),
            Column("actor", "principal"),
            Column("returned", "returned", True),
        ),
        tuple(reversed(t.unguarded_recent)),
        total=t.unguarded,
        empty="none: every retrieval went through the guard",
    )
    top = t.principals.top(TOP_PRINCIPALS)
    principals = Table(
        "top_principals",
        f"Top {TOP_PRINCIPALS} principals",
        (
            Column("principal", "principal"),
            Column("roles", "roles"),
            Column("retrievals", "retrievals", True),
            Column("denied", "denied", True),
        ),
        tuple((ref, v[2], v[0], v[1]) for ref, v in top),
        note=(
            f"More than {t.principals.cap} distinct principals: counts may be short by up to "
            f"{t.principals.error}."
            if t.principals.error
            else ""
        ),
    )
    blocks: list[Block] = [chart, outcomes, by_role, by_purpose, rules, denied_class]
    if t.unguarded:
        blocks.append(
            Note(
                f"{t.unguarded} retrieval(s) bypassed the guard (rag.unguarded): chunks were read without a "
                "policy "
                "decision by the guard. Find the code path that calls the retriever directly.",
                "warning",
            )
        )
    if t.canaries:
        blocks += _canary_blocks(t)
    blocks += [unguarded, principals]
    total = sum(t.by_outcome.values())
    known = [
        pol
        for (name, _, sha) in t.versions
        if (pol := t.policies.lookup(name, sha)) is not None and pol.access.rules
    ]
    unique = list({pol.sha256: pol for pol in known}.values())
    blocks.append(minimum_necessary_table(unique))
    return Section("access", "Access", tuple(blocks), intro=f"{total} retrieval(s) in the period.")


def _canary_blocks(t: _Tally) -> list[Block]:
    """Shown only when a canary tripped: a planted fake identifier was seen in clear."""
    return [
        Note(
            f"{t.canaries} canary trip(s) (canary.tripped): a planted fake identifier was seen in clear "
            "(released, answered or exported). Find the path from the 'where' column; the canary id names "
            "the planted record (`guardrail canary list`).",
            "danger",
        ),
        Table(
            "canary_trips",
            "Canary trips",
            (
                Column("occurred_at", "occurred at"),
                Column("canary", "canary"),
                Column("where", "where"),
                Column("actor", "principal"),
                Column("entities", "entity types"),
                Column("outcome", "outcome"),
            ),
            tuple(reversed(t.canary_recent)),
            total=t.canaries,
        ),
    ]


def minimum_necessary_table(policies: Iterable[Policy], block_id: str = "minimum_necessary") -> Table:
    """Role x classification -> the profile each purpose gets (or deny, with the rule), from the policies'
    access rules: the workforce-class x PHI-category view of 164.514(d)(2)."""
    from guardrail.access import CLASSIFICATIONS, Principal, Resource, evaluate

    rows = []
    for pol in policies:
        rules = pol.access.rules
        roles = sorted({r for rule in rules for r in rule.roles if r != "*"})
        purposes = sorted({u for rule in rules for u in rule.purposes if u != "*"} | set(pol.purposes))
        for role in roles:
            for classification in CLASSIFICATIONS:
                cells = []
                for purpose in purposes or ["(any)"]:
                    d = evaluate(
                        pol, Principal("matrix", [role], purpose), Resource(classification=classification)
                    )
                    what = d.redaction if d.allowed else f"deny ({', '.join(d.rule_ids) or 'default-deny'})"
                    cells.append(f"{purpose}: {what}")
                rows.append((pol.id, role, classification, "; ".join(cells)))
    return Table(
        block_id,
        "Minimum necessary: role x classification -> redaction profile per purpose (from the policy)",
        (
            Column("policy", "policy"),
            Column("role", "role"),
            Column("classification", "classification"),
            Column("profiles", "profile per purpose (none = as stored)"),
        ),
        tuple(rows),
        empty="no policy text available (pass it with --policy)",
        note="Deny overrides allow; anything no rule allows is denied (deny by default).",
    )


def _exposure(t: _Tally) -> Section:
    entities = sorted(
        set(t.redacted) | set(t.reidentified) | set(t.ingested),
        key=lambda e: (-(t.redacted[e] + t.reidentified[e]), e),
    )
    chart = Chart(
        "entities_released_vs_redacted",
        "Entities redacted at release vs re-identified (released in clear), by type",
        "bars",
        tuple(entities),
        (
            Series("redacted at release", tuple(t.redacted[e] for e in entities), "ok"),
            Series("re-identified", tuple(t.reidentified[e] for e in entities), "danger"),
        ),
        note=(
            "Chunks released under the profile 'none' (e.g. treatment) are released as stored: the log "
            "counts "
            "them per classification below, not per entity."
        ),
    )
    table = Table(
        "entities_by_type",
        "Entities by type",
        (
            Column("entity", "entity type"),
            Column("ingested", "detected at ingestion", True),
            Column("redacted", "redacted at release", True),
            Column("reidentified", "re-identified", True),
        ),
        tuple((e, t.ingested[e], t.redacted[e], t.reidentified[e]) for e in entities),
    )
    released = Table(
        "chunks_released",
        "Chunks released, by classification and redaction profile",
        (
            Column("classification", "classification"),
            Column("profile", "redaction profile"),
            Column("chunks", "chunks", True),
        ),
        tuple((c, p, n) for (c, p), n in sorted(t.released.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
    summary = Table(
        "reidentifications_by_principal",
        "Re-identifications by principal, purpose and outcome",
        (
            Column("principal", "principal"),
            Column("roles", "roles"),
            Column("purpose", "purpose"),
            Column("outcome", "outcome"),
            Column("events", "events", True),
        ),
        tuple((*k, n) for k, n in sorted(t.reid_summary.items(), key=lambda kv: (-kv[1], kv[0]))[:50]),
        total=len(t.reid_summary),
    )
    recent = Table(
        "reidentifications",
        "Re-identifications (most recent first)",
        (
            Column("occurred_at", "occurred at"),
            Column("principal", "principal"),
            Column("roles", "roles"),
            Column("purpose", "purpose"),
            Column("outcome", "outcome"),
            Column("rules", "rules"),
            Column("entities", "entities", True),
            Column("vault", "vault"),
        ),
        tuple(reversed(t.reid_recent)),
        total=t.reid_total,
    )
    return Section(
        "exposure",
        "Exposure",
        (chart, table, released, summary, recent),
        intro=f"{t.ingest_chunks} chunk(s) ingested; {t.reid_total} re-identification request(s).",
    )


def _dataset_row(record: dict[str, Any]) -> tuple[Any, ...]:
    ds = _obj(record.get("dataset"))
    category = _text(get(record, "event", "category"))
    before = _ints(ds.get("findings_before")) or _ints(get(record, "pii", "counts"))
    after = _ints(ds.get("findings_after"))
    manifest = _obj(ds.get("manifest"))
    policy = _obj(record.get("policy"))
    exported = category == "ft.export"
    return (
        _text(record.get("occurred_at")),
        category,
        _text(get(record, "event", "outcome"), "success"),
        _text(ds.get("id")),
        _text(ds.get("format")),
        _int(ds.get("input_records")) if exported and "input_records" in ds else _int(ds.get("records")),
        _int(ds.get("records")) if exported else None,
        _int(ds.get("rejects")) if exported else None,
        sum(before.values()),
        sum(after.values()) if exported else None,
        _int(ds.get("residual")) if exported else None,
        f"{_text(policy.get('id'))}@{_text(policy.get('version'))}",
        (f"{_text(manifest.get('file'))} sha256:{_text(manifest.get('sha256'))[:16]}" if manifest else "-"),
    )


def _datasets(t: _Tally) -> Section:
    records = list(t.datasets)
    table = Table(
        "dataset_events",
        "Dataset scans and exports",
        (
            Column("occurred_at", "occurred at"),
            Column("event", "event"),
            Column("outcome", "outcome"),
            Column("dataset", "dataset"),
            Column("format", "format"),
            Column("input_records", "input records", True),
            Column("output_records", "output records", True),
            Column("rejects", "rejects", True),
            Column("findings_before", "findings before", True),
            Column("findings_after", "findings after", True),
            Column("residual", "residual", True),
            Column("policy", "policy"),
            Column("manifest", "manifest"),
        ),
        tuple(_dataset_row(r) for r in records),
        total=t.dataset_total,
        empty="no dataset was scanned or exported in the period",
    )
    blocks: list[Block] = [table]
    residual = sum(_int(get(r, "dataset", "residual")) for r in records)
    if residual:
        blocks.append(
            Note(
                f"{residual} residual finding(s) remain in exported datasets: review them before use.",
                "warning",
            )
        )
    exports = [r for r in records if get(r, "event", "category") == "ft.export"][-SAFE_HARBOR_TABLES:]
    reference = reference_identifiers() if exports else ()
    not_claimed: list[str] = []
    for n, record in enumerate(exports, 1):
        ds, pii = _obj(record.get("dataset")), _obj(record.get("pii"))
        policy: Policy | None = t.policies.lookup(
            get(record, "policy", "id"), get(record, "policy", "sha256")
        )
        if policy is not None and not policy.identifiers:
            # the table is evidence for a Safe Harbor claim: only a policy that declares the 18
            # identifiers makes one (a GDPR export is not de-identified under 164.514(b))
            not_claimed.append(f"{_text(ds.get('id'))} ({policy.id})")
            continue
        blocks.append(
            safe_harbor_table(
                f"safe_harbor_{n}",
                f"HIPAA Safe Harbor coverage: export of {_text(ds.get('id'))} at "
                f"{_text(record.get('occurred_at'))}",
                ds,
                pii,
                policy,
                reference,
            )
        )
    if not_claimed:
        blocks.append(
            Note(
                f"No HIPAA Safe Harbor table for {len(not_claimed)} export(s) whose policy does not claim "
                f"Safe Harbor (no `identifiers` section): {', '.join(not_claimed[:10])}"
                + (" ..." if len(not_claimed) > 10 else "")
                + ". Pseudonymised output remains personal data (GDPR Recital 26).",
                "info",
            )
        )
    if t.dataset_total > len(records):
        blocks.append(Note(f"Listing the last {len(records)} of {t.dataset_total} dataset events.", "info"))
    return Section("datasets", "Datasets", tuple(blocks))


def _keys(t: _Tally) -> Section:
    key_cols = (
        Column("occurred_at", "occurred at"),
        Column("component", "component"),
        Column("keys", "keys", True),
        Column("key_ids", "key ids (labels)"),
        Column("actor", "performed by"),
        Column("request", "request reference"),
    )
    key_tables = [
        Table(block_id, title, key_cols, tuple(reversed(recent)), total=t.key_counts[category])
        for block_id, title, recent, category in (
            ("key_rotations", "Key rotations", t.rotations, "key.rotate"),
            ("key_shreds", "Keys destroyed (shred, retire)", t.shreds, "key.shred"),
        )
    ]
    erasures = Table(
        "erasures",
        "Erasures (GDPR Art. 17)",
        (Column("occurred_at", "occurred at"), Column("subjects", "subject refs"), *ERASURE_COLUMNS),
        tuple(reversed(t.erasures)),
        total=t.key_counts["dsar.erasure"],
    )
    versions = Table(
        "policy_versions",
        "Policy versions in force",
        (
            Column("policy", "policy"),
            Column("version", "version"),
            Column("sha256", "sha256"),
            Column("first_seen", "first seen"),
            Column("last_seen", "last seen"),
            Column("events", "events", True),
        ),
        tuple(
            (p, v, s, first, last, n)
            for (p, v, s), (first, last, n) in sorted(t.versions.items(), key=lambda kv: (kv[1][0], kv[0]))
        ),
    )
    blocks: list[Block] = [*key_tables, erasures, versions]
    if len({p for p, _, _ in t.versions}) < len(t.versions):
        blocks.append(
            Note("A policy changed during the period: several versions or texts were in force.", "info")
        )
    return Section("keys", "Keys and policies", tuple(blocks))


def _retention(t: _Tally, audit_dir: str | os.PathLike[str], clock: datetime | None) -> Facts | None:
    """The retention the policies in force declare, and the chunks the log shows past it (GDPR Art.
    5(1)(e)); None when no policy in force declares retention."""
    from guardrail.reports.legal import retention_periods
    from guardrail.retention import overdue_chunks

    in_force = {
        pol.sha256: pol
        for (name, _, sha) in t.versions
        if (pol := t.policies.lookup(name, sha)) is not None and not pol.retention.is_empty()
    }
    if not in_force:
        return None
    overdue: dict[str, str] = {}
    for pol in in_force.values():
        overdue.update(overdue_chunks(audit_dir, pol, now=clock))
    by_reason = Counter(overdue.values())
    return Facts(
        "retention_in_force",
        "Retention in force (GDPR Art. 5(1)(e))",
        (
            ("retention", "; ".join(retention_periods(list(in_force.values())))),
            (
                "chunks past retention, not yet deleted (per the log)",
                f"OVERDUE: {len(overdue)} ("
                + ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items()))
                + "); run `guardrail retention apply`"
                if overdue
                else "none",
            ),
        ),
    )


def build_report(
    audit_dir: str | os.PathLike[str],
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    policy: str | None = None,
    policies: tuple[str | Path | Policy, ...] = (),
    public_key: str | None = None,
    clock: datetime | None = None,
) -> Report:
    """Build the activity report of an audit log.

    Args:
        audit_dir: the audit log directory.
        since: the first moment included (ISO date or time, or an aware datetime).
        until: the first moment excluded; a bare date means the end of that day.
        policy: only events recorded under this policy (``name`` or ``name@version``); events that
            carry no policy (key operations, erasures, ingestion) are kept.
        policies: policy files whose exact text the log refers to (shipped packs are found by themselves).
        public_key: the verifier key text (default: the log's ``audit.pub``; use your off-host copy).
        clock: the report's generation time (default: now).

    Returns:
        The report; ``report.ok`` is False when the log failed verification (the report says so first).

    Raises:
        ReportError: a bad option or not a log directory.
        PolicyError: a policy file is invalid.
    """
    start = parse_moment(since, option="--since")
    end = parse_moment(until, option="--until", end=True)
    reader = LogReader(audit_dir, since=start, until=end)
    tally = _Tally(PolicyIndex(PolicyIndex.load(policies)))
    add = tally.add
    for record in reader.records():
        if policy is not None:
            pid = get(record, "policy", "id")
            if isinstance(pid, str) and policy not in (pid, f"{pid}@{get(record, 'policy', 'version')}"):
                continue
        add(record)
    integrity = check_integrity(audit_dir, public_key=public_key, records_read=reader.read)
    period = Period(start, end, tally.first, tally.last)
    filters = (("policy", policy),) if policy else ()
    keys = _keys(tally)
    retention = _retention(tally, audit_dir, clock)
    if retention is not None:
        keys = Section(keys.id, keys.title, (*keys.blocks, retention), keys.intro)
    sections = (_overview(tally), _access(tally), _exposure(tally), _datasets(tally), keys)
    return assemble(
        "activity",
        "guardrail compliance report",
        audit_dir,
        integrity,
        period,
        sections,
        filters=filters,
        clock=clock,
    )


def _source_name(audit_dir: str | os.PathLike[str]) -> str:
    """The log's name in a report: a path, or a PostgreSQL location without its password."""
    from guardrail.db import is_postgres_url, parse_location

    return parse_location(audit_dir).url() if is_postgres_url(audit_dir) else str(audit_dir)
