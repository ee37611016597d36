"""Reports about one data subject: the GDPR Art. 15 access report (``dsar``) and the HIPAA 164.528
accounting of disclosures (``disclosures``).

Events name subjects only by their keyed reference, ``Keyring.token(tenant, "subject-ref", id, length=16)``
(the one :class:`guardrail.Guardrail` writes). The reports are built from that reference and print only it:
the identifier the requester gave is never written into a report.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from guardrail.keys import Keyring
from guardrail.policy import Policy
from guardrail.reports.activity import ERASURE_COLUMNS, assemble, erasure_cells
from guardrail.reports.legal import (
    LEGACY_TPO_CODES,
    basis_words,
    is_tpo,
    processor_words,
    purpose_code,
    purpose_words,
    record_bases,
    retention_periods,
)
from guardrail.reports.model import (
    Blank,
    Block,
    Column,
    Facts,
    Note,
    Period,
    Report,
    ReportError,
    Section,
    Table,
)
from guardrail.reports.source import LogReader, PolicyIndex, check_integrity, get, now_text, parse_moment

__all__ = ["TPO_PURPOSES", "build_disclosures", "build_dsar", "count_subject_events", "subject_ref"]

LISTED = 10_000  # events listed per table (the earliest); totals count them all
#: purpose-of-use codes for treatment, payment and health care operations: disclosures for these are
#: excluded from the accounting (164.528(a)(1)(i))
TPO_PURPOSES = LEGACY_TPO_CODES
_REF = re.compile(r"[0-9a-f]{16}")


def subject_ref(keyring: str | Path | Keyring, subject: str, *, tenant: str = "default") -> str:
    """The keyed reference under which the audit log records ``subject`` (as ``Guardrail`` computes it).

    Raises:
        KeyringError: the keyring does not open.
        ReportError: an empty subject id.
    """
    if not subject:
        raise ReportError("--subject is empty: give the data-subject id used in the documents' metadata")
    ring = keyring if isinstance(keyring, Keyring) else Keyring.open(keyring)
    return ring.token(tenant, "subject-ref", subject, length=16)


def _check_ref(ref: str) -> str:
    if not _REF.fullmatch(ref):
        raise ReportError(f"{ref!r} is not a subject reference (16 hex characters, as in the audit log)")
    return ref


def _subject_records(reader: LogReader, ref: str) -> Iterator[dict[str, Any]]:
    for record in reader.records(containing=ref.encode("ascii")):
        subjects = record.get("subjects")
        if isinstance(subjects, list) and ref in subjects:
            yield record


def _own_chunks(audit_dir: str | os.PathLike[str], ref: str, until: str | None) -> set[str]:
    """The chunk ids the log's ingestion events attribute to ``ref`` (per chunk where the event records
    subjects per chunk; every chunk of an older per-event record otherwise)."""
    own: set[str] = set()
    for record in _subject_records(LogReader(audit_dir, since=None, until=until), ref):
        if get(record, "event", "category") != "rag.ingest":
            continue
        resources = [r for r in record.get("resources") or () if isinstance(r, dict)]
        per_chunk = any(isinstance(r.get("subjects"), list) for r in resources)
        for r in resources:
            subjects = r.get("subjects")
            if not per_chunk or (isinstance(subjects, list) and ref in subjects):
                own.add(str(r.get("id")))
    return own


def check_years(years: Any) -> None:
    """Raises ReportError unless ``years`` is a whole number from 1 to 100."""
    if not isinstance(years, int) or not 1 <= years <= 100:
        raise ReportError(f"--years must be a whole number of years from 1 to 100, not {years!r}")


def count_subject_events(audit_dir: str | os.PathLike[str], ref: str) -> int:
    """Events naming ``ref`` (report generations aside: asking about someone is not data about them)."""
    reader = LogReader(audit_dir, since=None, until=None)
    return sum(1 for r in _subject_records(reader, ref) if get(r, "event", "category") != "report.generate")


def _text(value: Any, default: str = "-") -> str:
    return value if isinstance(value, str) and value else default


def _roles(record: dict[str, Any]) -> str:
    roles = get(record, "actor", "roles")
    return ", ".join(r for r in roles if isinstance(r, str)) if isinstance(roles, list) and roles else "-"


def _counts(record: dict[str, Any]) -> dict[str, int]:
    counts = get(record, "pii", "counts")
    return {k: v for k, v in counts.items() if type(v) is int} if isinstance(counts, dict) else {}


def _categories(own: Counter[str], shared: Counter[str]) -> str:
    if own:
        text = ", ".join(sorted(own)) + " (found in the subject's own chunks)"
        extra = sorted(set(shared) - set(own))
        if extra:
            text += f"; possibly also {', '.join(extra)} (events written before per-subject counts)"
        return text
    if shared:
        return (
            ", ".join(sorted(shared)) + " (upper bound: these events did not count per subject and can "
            "cover other subjects' documents)"
        )
    return "-"


_CATEGORY_WORDS = {
    "PERSON": "names",
    "MEDICAL_RECORD_NUMBER": "medical record numbers",
    "HEALTH_PLAN_ID": "health plan numbers",
    "EMAIL_ADDRESS": "e-mail addresses",
    "PHONE_NUMBER": "telephone numbers",
    "DATE_TIME": "dates",
    "LOCATION": "addresses and places",
    "US_ZIP_CODE": "postal codes",
    "AGE": "ages",
    "US_SSN": "social security numbers",
    "ORGANIZATION": "names of organisations",
}


_REPORT_WORDS = {
    "dsar": "access request, Art. 15",
    "disclosures": "accounting of disclosures, 45 CFR 164.528",
}


def storage_period(policies: list[Policy]) -> Any:
    """Art. 15(1)(d): the retention the policies in force declare, or a blank for the controller."""
    periods = retention_periods(policies)
    if not periods:
        return Blank("retention period or the criteria that set it (policy retention section)")
    names = ", ".join(sorted({f"{p.name}@{p.version}" for p in policies if not p.retention.is_empty()}))
    return f"{'; '.join(periods)} (policy {names}; guardrail retention apply deletes what is older)"


def _plain_language(
    *,
    first: str | None,
    last: str | None,
    n_access: int,
    purposes: Counter[str],
    roles: Counter[str],
    recipients: Counter[str],
    processors: Counter[str],
    datasets: int,
    erasures: int,
    categories: list[str],
    periods: Sequence[str] = (),
    reports: int = 0,
) -> tuple[Block, ...]:
    """Art. 12(1): what the log holds about the person, in sentences rather than event codes."""
    if first is None:
        return (Note("We found no record of your data being used in the period of this report.", "info"),)
    lines = [
        f"Between {first[:10]} and {(last or first)[:10]} our records show {n_access} occasion(s) on which "
        "information about you was stored or looked at.",
    ]
    if categories:
        words = sorted({_CATEGORY_WORDS.get(c, c.lower().replace("_", " ")) for c in categories})
        lines.append(f"The information about you includes: {', '.join(words)}.")
    if purposes:
        lines.append("It was used for: " + "; ".join(p for p, _ in purposes.most_common()) + ".")
    if roles:
        lines.append(
            "It was seen by staff in these roles: " + ", ".join(r for r, _ in roles.most_common()) + "."
        )
    if recipients:
        lines.append("It was disclosed to: " + ", ".join(r for r, _ in recipients.most_common()) + ".")
    if processors:
        names = sorted({p.rsplit(" (", 1)[0] for p in processors})
        lines.append(
            "Parts of it were processed on our behalf by these service providers: " + ", ".join(names) + "."
        )
    if datasets:
        lines.append(
            f"It was included in {datasets} dataset(s) prepared for training or analysis, with names and "
            "identifiers replaced."
        )
    if periods:
        lines.append("We keep it for at most: " + "; ".join(periods) + ".")
    if reports:
        lines.append(
            f"We prepared {reports} report(s) about the use of your data (answers to requests such as this "
            "one); they contain no content of your documents."
        )
    if erasures:
        lines.append(f"Your data was erased at your request ({erasures} erasure(s) recorded).")
    lines.append(
        "The annex below gives the technical detail for our data protection officer. You can ask us to "
        "correct or erase your data, or complain to a data protection authority."
    )
    return tuple(Note(line, "info") for line in lines)


def build_dsar(
    audit_dir: str | os.PathLike[str],
    *,
    subject_ref: str,
    with_principals: bool = False,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    public_key: str | None = None,
    clock: datetime | None = None,
    policies: tuple[str | Path | Policy, ...] = (),
) -> Report:
    """The GDPR Art. 15 access report for one data subject: every event that touched the subject's
    documents (dates, purposes, outcomes), the datasets that included the subject, and erasures.

    Args:
        audit_dir: the audit log directory.
        subject_ref: the subject's keyed reference (:func:`subject_ref`).
        with_principals: also list who (``actor.ref``) accessed the data; by default employee identities
            are omitted and only their roles shown (CJEU C-579/21 does not require them).
        since: first moment included; until: first moment excluded.
        public_key: the verifier key text (default: the log's ``audit.pub``).
        clock: the generation time.
        policies: policies (pack names, YAML files) whose text the log's events name, to read the
            storage period (Art. 15(1)(d)) from their ``retention``; shipped packs are found alone.

    Raises:
        ReportError: a bad option or not a log directory.
    """
    ref = _check_ref(subject_ref)
    index = PolicyIndex(PolicyIndex.load(policies))
    own_chunks = _own_chunks(audit_dir, ref, parse_moment(until, option="--until", end=True))
    in_force: dict[str, Policy] = {}
    start = parse_moment(since, option="--since")
    end = parse_moment(until, option="--until", end=True)
    reader = LogReader(audit_dir, since=start, until=end)
    access: list[tuple[Any, ...]] = []
    datasets: list[tuple[Any, ...]] = []
    erasures: list[tuple[Any, ...]] = []
    totals: Counter[str] = Counter()
    purposes: Counter[str] = Counter()
    bases: set[str] = set()
    roles: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    recipients: Counter[str] = Counter()
    shared: Counter[str] = Counter()  # from events without per-subject counts (several subjects' chunks)
    processors: Counter[str] = Counter()
    first = last = None
    for record in _subject_records(reader, ref):
        at = _text(record.get("occurred_at"), "")
        first = at if first is None or at < first else first
        last = at if last is None or at > last else last
        category = _text(get(record, "event", "category"))
        outcome = _text(get(record, "event", "outcome"), "success")
        totals[category] += 1
        found_policy = index.lookup(get(record, "policy", "id"), get(record, "policy", "sha256"))
        if found_policy is not None:
            in_force.setdefault(found_policy.sha256, found_policy)
        own = get(record, "pii", "by_subject", ref)
        if isinstance(own, dict):
            entities.update({k: v for k, v in own.items() if type(v) is int})
        else:
            shared.update(_counts(record))
        disclosure = record.get("disclosure")
        if isinstance(disclosure, dict):
            recipients[_text(disclosure.get("recipient"))] += 1
        if category in ("ft.scan", "ft.export"):
            if len(datasets) < LISTED:
                datasets.append(
                    (
                        at,
                        category,
                        _text(get(record, "dataset", "id")),
                        _text(get(record, "dataset", "format")),
                        f"{_text(get(record, 'policy', 'id'))}@{_text(get(record, 'policy', 'version'))}",
                        sum(_counts(record).values()),
                    )
                )
            continue
        if category == "dsar.erasure":
            cells = erasure_cells(record)
            erasures.append((at, outcome, *(cells if with_principals else (*cells[:-2], "-", cells[-1]))))
            continue
        for p in record.get("processors") or ():
            if isinstance(p, dict):
                processors[processor_words(p)] += 1
        if category == "report.generate":
            # a report about the subject (an earlier access request, an accounting): listed, not counted
            # as a use of their data for a purpose
            kind = next(
                (_text(r.get("id")) for r in record.get("resources") or () if isinstance(r, dict)), "report"
            )
            request = get(record, "request", "ref")
            answered = f"; request {request}" if isinstance(request, str) and request else ""
            purpose = f"report about the subject ({_REPORT_WORDS.get(kind, kind)}{answered})"
        else:
            purpose = purpose_words(purpose_code(record), get(record, "purpose", "name"))
        if category not in ("rag.ingest", "report.generate"):
            purposes[purpose] += 1
            for role in _roles(record).split(", "):
                if role != "-":
                    roles[role] += 1
        found = record_bases(record)
        basis = "; ".join(found[k] for k in ("gdpr_basis", "art9_basis", "hipaa_basis") if k in found)
        if basis:
            bases.add(basis)
        if len(access) < LISTED:
            row: tuple[Any, ...] = (
                at,
                category,
                _text(get(record, "event", "action")),
                outcome,
                purpose,
                _text(basis, "-"),
                _roles(record),
            )
            if with_principals:
                row += (_text(get(record, "actor", "ref")),)
            resources = [r for r in record.get("resources") or () if isinstance(r, dict)]
            mine = [r for r in resources if str(r.get("id")) in own_chunks]
            row += (
                # the subject's own chunks when the log attributes chunks to subjects; else all of them
                len(mine) if mine else len(resources),
                _text(get(record, "policy", "decision")),
            )
            access.append(row)
    integrity = check_integrity(audit_dir, public_key=public_key, records_read=reader.read)
    period = Period(start, end, first, last)
    columns = [
        Column("occurred_at", "occurred at"),
        Column("event", "event"),
        Column("action", "action"),
        Column("outcome", "outcome"),
        Column("purpose", "purpose"),
        Column("gdpr_basis", "lawful basis"),
        Column("roles", "recipient roles"),
    ]
    if with_principals:
        columns.append(Column("principal", "principal"))
    columns += [Column("resources", "the subject's chunks", True), Column("decision", "decision")]
    n_access = sum(
        n for c, n in totals.items() if c not in ("ft.scan", "ft.export", "dsar.erasure", "report.generate")
    )
    subject_blocks: tuple[Block, ...] = (
        Note(
            f"The data subject is identified here only by the keyed reference {ref}, under which the audit "
            "log records them; the identifier given with the request is not written into this report.",
            "info",
        ),
        Facts(
            "dsar_summary",
            "Summary (Art. 15(1))",
            (
                ("subject reference", ref),
                ("events about the subject", sum(totals.values())),
                ("first event", first or "-"),
                ("last event", last or "-"),
                ("purposes (15(1)(a))", ", ".join(f"{p} ({n})" for p, n in purposes.most_common()) or "-"),
                (
                    "lawful bases recorded",
                    ", ".join(sorted(bases)) or Blank("lawful basis per purpose (Art. 6)"),
                ),
                ("categories of personal data (15(1)(b))", _categories(entities, shared)),
                (
                    "recipients (15(1)(c))",
                    ", ".join(f"role {r} ({n})" for r, n in roles.most_common())
                    + "".join(f"; external: {r} ({n})" for r, n in recipients.most_common())
                    + "".join(f"; processor: {r} ({n})" for r, n in processors.most_common())
                    or "-",
                ),
                ("storage period (15(1)(d))", storage_period(list(in_force.values()))),
                ("source of the data (15(1)(g))", Blank("where the documents came from, if not the subject")),
                ("automated decision-making (15(1)(h))", Blank("whether it applies, and its logic")),
                (
                    "employee identities",
                    "listed" if with_principals else "omitted (roles shown); --with-principals lists them",
                ),
            ),
        ),
    )
    plain = _plain_language(
        first=first,
        last=last,
        n_access=n_access,
        purposes=purposes,
        roles=roles,
        recipients=recipients,
        processors=processors,
        datasets=totals["ft.export"],
        erasures=len(erasures),
        categories=sorted(entities or shared),
        periods=retention_periods(list(in_force.values())),
        reports=totals["report.generate"],
    )
    sections = (
        Section("plain", "Your data: a summary in plain language (Art. 12(1))", plain),
        Section("subject", "Annex for the data protection officer: the data subject", subject_blocks),
        Section(
            "access",
            "Annex: processing of the subject's data",
            (
                Table(
                    "subject_events",
                    "Events that touched the subject's documents",
                    tuple(columns),
                    tuple(access),
                    total=n_access + totals["report.generate"],
                    empty="no event touched this subject's documents in the period",
                ),
            ),
        ),
        Section(
            "datasets",
            "Annex: datasets that included the subject",
            (
                Table(
                    "subject_datasets",
                    "Dataset scans and exports",
                    (
                        Column("occurred_at", "occurred at"),
                        Column("event", "event"),
                        Column("dataset", "dataset"),
                        Column("format", "format"),
                        Column("policy", "policy"),
                        Column("findings", "findings", True),
                    ),
                    tuple(datasets),
                    total=totals["ft.scan"] + totals["ft.export"],
                    empty="no dataset recorded as including this subject",
                ),
            ),
        ),
        Section(
            "erasures",
            "Annex: erasures (Art. 17)",
            (
                Table(
                    "subject_erasures",
                    "Erasures of the subject's data",
                    (Column("occurred_at", "occurred at"), Column("outcome", "outcome"), *ERASURE_COLUMNS),
                    tuple(erasures),
                    empty="no erasure recorded",
                ),
            ),
        ),
    )
    filters = (("subject reference", ref), ("principals", "listed" if with_principals else "omitted"))
    title = "GDPR Art. 15 access report"
    return assemble("dsar", title, audit_dir, integrity, period, sections, filters=filters, clock=clock)


def _disclosures_of(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The disclosures one event records: its ``disclosure`` member (a recipient outside the
    organisation), and each processor outside it (an LLM or embedding service, a business associate)
    that received chunks the retrieval released."""
    out: list[dict[str, Any]] = []
    disclosure = record.get("disclosure")
    if isinstance(disclosure, dict):
        out.append(disclosure)
    released = get(record, "retrieval", "returned")
    if get(record, "event", "category") != "rag.retrieval" or type(released) is not int or released < 1:
        return out
    for member in record.get("processors") or ():
        if not isinstance(member, dict) or member.get("role") == "internal":
            continue
        kind = {"llm": "language model", "embedding": "embedding service"}.get(
            str(member.get("kind")), str(member.get("kind") or "service")
        )
        out.append(
            {
                "recipient": processor_words(member),
                "description": f"{released} record chunk(s) sent to the {kind} with the request",
                "purpose": None,
                "processor": True,
            }
        )
    return out


def build_disclosures(
    audit_dir: str | os.PathLike[str],
    *,
    subject_ref: str,
    years: int = 6,
    requested_on: str | datetime | None = None,
    public_key: str | None = None,
    clock: datetime | None = None,
) -> Report:
    """The HIPAA 164.528 accounting of disclosures of one individual's PHI over the last ``years`` years:
    date, recipient, description and purpose of every event with a ``disclosure`` member about them.

    Chunks a retrieval released to a processor outside the organisation (the LLM or embedding service
    named in the event's ``processors``; a business associate) are disclosures too. Disclosures for
    treatment, payment or health care operations (from the purpose's recorded HIPAA basis) are excluded,
    as 164.528(a)(1)(i) allows; the report says how many.

    Raises:
        ReportError: a bad option or not a log directory.
    """
    ref = _check_ref(subject_ref)
    check_years(years)
    now = clock or datetime.now(UTC)
    asked = parse_moment(requested_on, option="--requested-on", end=True)
    request_day = datetime.strptime(asked[:10], "%Y-%m-%d").replace(tzinfo=UTC) if asked else now
    if asked is not None and asked > now_text(now):
        raise ReportError(f"--requested-on {requested_on}: the request date is in the future")
    # 164.528(a)(1): the six years before the date of the request (end of that day included)
    end = asked if asked is not None else None
    start = parse_moment(request_day - timedelta(days=round(365.25 * years)), option="--years")
    reader = LogReader(audit_dir, since=start, until=end)
    rows: list[tuple[Any, ...]] = []
    excluded: Counter[str] = Counter()
    total = 0
    first = last = None
    to_processors = 0
    for record in _subject_records(reader, ref):
        for disclosure in _disclosures_of(record):
            at = _text(record.get("occurred_at"), "")
            code = purpose_code(record) or ""
            purpose = _text(disclosure.get("purpose"), code or "-")
            if is_tpo(record, purpose):
                excluded[code or purpose.upper()] += 1
                continue
            name = get(record, "purpose", "name")
            purpose = purpose_words(code, name if isinstance(name, str) else purpose) if code else purpose
            hipaa = basis_words("hipaa_basis", get(record, "purpose", "hipaa_basis"))
            if hipaa:
                purpose += f"; {hipaa}"
            total += 1
            to_processors += 1 if disclosure.get("processor") else 0
            first = at if first is None or at < first else first
            last = at if last is None or at > last else last
            if len(rows) < LISTED:
                address = disclosure.get("address")
                rows.append(
                    (
                        at[:10],
                        _text(disclosure.get("recipient")),
                        address if isinstance(address, str) and address else Blank("address, if known"),
                        _text(disclosure.get("description")),
                        purpose,
                    )
                )
    integrity = check_integrity(audit_dir, public_key=public_key, records_read=reader.read)
    period = Period(start, end, first, last)
    blocks: list[Block] = [
        Note(
            f"Individual identified by the keyed reference {ref}; the identifier given with the request is "
            "not written into this report.",
            "info",
        ),
        Table(
            "disclosures",
            f"Disclosures in the {years} year(s) before {now_text(request_day)[:10]}"
            + (" (the date of the request)" if asked else " (no request date given: today)"),
            (
                Column("date", "date"),
                Column("recipient", "recipient"),
                Column("address", "recipient address"),
                Column("description", "description of the PHI"),
                Column("purpose", "purpose"),
            ),
            tuple(rows),
            total=total,
            empty="no disclosure of this individual's PHI recorded in the period",
        ),
    ]
    if to_processors:
        blocks.append(
            Note(
                f"{to_processors} of the disclosures listed are record chunks sent with a request to a "
                "service outside the organisation (the policy's processors: a business associate needs "
                "a BAA, 164.502(e)); an UNDECLARED one is missing from the policy.",
                "info",
            )
        )
    if excluded:
        blocks.append(
            Note(
                f"{sum(excluded.values())} disclosure(s) for treatment, payment or health care operations "
                f"({', '.join(sorted(excluded))}) are excluded from the accounting (164.528(a)(1)(i)).",
                "info",
            )
        )
    blocks.append(
        Note(
            "The accounting covers disclosures recorded in this audit log. Disclosures made outside "
            "guardrail (paper, phone, other systems) and the other exclusions of 164.528(a)(1) must be "
            "reviewed by the "
            "covered entity; a temporary suspension under 164.528(a)(2) is not recorded here.",
            "blank",
        )
    )
    section = Section("disclosures", "Accounting of disclosures", tuple(blocks))
    title = "HIPAA accounting of disclosures (45 CFR 164.528)"
    filters = (
        ("subject reference", ref),
        ("years", str(years)),
        ("requested on", now_text(request_day)[:10] if asked else "not given (today)"),
    )
    return assemble(
        "disclosures", title, audit_dir, integrity, period, (section,), filters=filters, clock=now
    )
