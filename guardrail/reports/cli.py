"""``guardrail report``: compliance reports from the audit log (the only reports module importing typer).

::

    guardrail report AUDIT_DIR -o FILE [--since T] [--until T] [--policy P]
    guardrail report ropa AUDIT_DIR -o FILE [--policy P ...]
    guardrail report dsar AUDIT_DIR --subject S --keyring DIR [--tenant T] -o FILE [--with-principals]
    guardrail report disclosures AUDIT_DIR --subject S --keyring DIR [--tenant T] --years 6 -o FILE

``report AUDIT_DIR`` is ``report build AUDIT_DIR``: a first argument that is not a subcommand name goes to
``build``. The format follows the output's extension (.html, .md, .json). Exit codes, as ``guardrail audit
verify``: 0 the log verified, 5 the log is damaged (the report is still written, and says FAILED first),
6 verified except a torn final record; user errors 2 (through ``guardrail.cli.main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from guardrail.audit.cli import EXIT_DAMAGED, EXIT_TORN_TAIL, _key_text
from guardrail.errors import SubjectNotFound
from guardrail.reports.model import Report, ReportError

__all__ = ["report_app"]

err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class _DefaultBuild(TyperGroup):
    """A group whose first argument, when it is not a subcommand name, goes to ``build``."""

    # Any: typer vendors its own click (typer._click), whose Context is not importable publicly
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


report_app = typer.Typer(
    cls=_DefaultBuild,
    help=(
        "Compliance reports from the audit log, as HTML, Markdown or JSON (from the -o extension). "
        "`guardrail report AUDIT_DIR -o report.html` builds the activity report."
    ),
    no_args_is_help=True,
)

DirArg = Annotated[Path, typer.Argument(help="The audit log directory.", show_default=False)]
OutOpt = Annotated[
    Path, typer.Option("--output", "-o", help="The report file: .html, .md or .json.", show_default=False)
]
SinceOpt = Annotated[
    str | None, typer.Option("--since", help="First moment included (ISO date or time, UTC if no zone).")
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", help="First moment excluded; a bare date means the end of that day.")
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key", help="The verifier key file (default: the log's audit.pub; use your off-host copy)."
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing report file.")]
SubjectOpt = Annotated[
    str | None,
    typer.Option("--subject", help="The data-subject id, as in the documents' metadata (needs --keyring)."),
]
SubjectRefOpt = Annotated[
    str | None,
    typer.Option(
        "--subject-ref", help="The subject's reference as the audit log records it (instead of --subject)."
    ),
]
KeyringOpt = Annotated[
    Path | None,
    typer.Option(
        "--keyring", "-k", envvar="GUARDRAIL_KEYRING", help="The keyring that computes subject references."
    ),
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", "-t", help="The tenant of the subject (default: the keyring's only tenant)."),
]
EmptyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-empty", help="Write the report even when no event names the subject (default: refuse)."
    ),
]
AuditKeyringOpt = Annotated[
    Path | None,
    typer.Option(
        "--keyring",
        "-k",
        envvar="GUARDRAIL_KEYRING",
        help="The log's keyring: generating the report is then recorded in the log (report.generate).",
    ),
]


_REQUEST_KINDS = {"dsar": "access (Art. 15)", "disclosures": "accounting of disclosures (164.528)"}
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who generates the report (recorded with --keyring; default: your OS user)."
    ),
]
RequestRefOpt = Annotated[
    str | None,
    typer.Option("--request-ref", help="Your reference of the request answered (a ticket id, not a name)."),
]


def _finish(
    report: Report,
    output: Path,
    force: bool,
    *,
    keyring: Path | None = None,
    subject_ref: str | None = None,
    actor: str | None = None,
    request_ref: str | None = None,
) -> None:
    from guardrail.reports.render import write_report

    audited = _audit_generation(
        Path(report.source), keyring, report.kind, subject_ref, actor=actor, request_ref=request_ref
    )
    write_report(report, output, force=force)
    if not audited:
        err.print("note: not recorded in the log as report.generate (pass --keyring to record it)")
    i = report.integrity
    if not i.ok:
        err.print(f"wrote {output}; INTEGRITY FAILED: {i.message}", markup=False)
        raise typer.Exit(EXIT_DAMAGED)
    err.print(
        f"wrote {output} ({report.kind}; audit log {i.status.lower()}: {i.records} records)", markup=False
    )
    if i.status != "VERIFIED":
        raise typer.Exit(EXIT_TORN_TAIL)


def _check_output(output: Path, force: bool) -> None:
    """Refuse a bad output before reading a large log."""
    from guardrail.errors import OutputExistsError
    from guardrail.io import check_output_path
    from guardrail.reports.render import FORMATS

    if output.suffix.lower() not in FORMATS:
        raise ReportError(f"{output}: the extension must be .html, .md or .json (it picks the report format)")
    check_output_path(output, option="--output")
    if output.exists() and not force:
        raise OutputExistsError(f"{output}: exists; pass --force to overwrite it")


def _ref(
    audit_dir: Path,
    subject: str | None,
    subject_ref: str | None,
    keyring: Path | None,
    tenant: str | None,
    *,
    allow_empty: bool,
) -> str:
    """The subject's reference; refuses (unless ``allow_empty``) one no event names, saying under which
    tenants the subject does have events."""
    from guardrail.keys import Keyring
    from guardrail.reports.subject import _check_ref, count_subject_events
    from guardrail.reports.subject import subject_ref as compute

    if (subject is None) == (subject_ref is None):
        raise ReportError("give --subject S (with --keyring DIR) or --subject-ref R")
    if subject_ref is not None:
        _check_ref(subject_ref)
        if not allow_empty and count_subject_events(audit_dir, subject_ref) == 0:
            raise SubjectNotFound(
                f"no event in {audit_dir} names the subject reference {subject_ref}: check it (as "
                "`guardrail erase` printed it), or pass --allow-empty to write an empty report"
            )
        return subject_ref
    if keyring is None:
        raise ReportError(
            "--subject needs --keyring DIR (or GUARDRAIL_KEYRING) to compute the subject's reference"
        )
    assert subject is not None
    from guardrail.tenants import default_tenant, known_tenants

    ring = Keyring.open(keyring)
    tenant = tenant or default_tenant(ring, audit_dir)
    ref = compute(ring, subject, tenant=tenant)
    if allow_empty or count_subject_events(audit_dir, ref) > 0:
        return ref
    elsewhere = []
    for other in known_tenants(ring, audit_dir):
        if other != tenant:
            other_ref = compute(ring, subject, tenant=other)
            n = count_subject_events(audit_dir, other_ref)
            if n:
                elsewhere.append(f"{n} event(s) under tenant {other!r} (reference {other_ref})")
    where = (
        "; the subject has " + ", ".join(elsewhere) + ": pass --tenant accordingly"
        if elsewhere
        else "; no other tenant of the keyring has events about this subject either"
    )
    raise SubjectNotFound(
        f"no event about this subject under tenant {tenant!r} (reference {ref}){where}; "
        "--allow-empty writes the empty report anyway"
    )


def _audit_generation(
    audit_dir: Path,
    keyring: Path | None,
    kind: str,
    subject_ref: str | None,
    actor: str | None = None,
    request_ref: str | None = None,
) -> bool:
    """Record ``report.generate`` in the log (before the report is written: no record, no report).
    Returns False when there is no keyring to sign with."""
    if keyring is None:
        return False
    from guardrail import __version__
    from guardrail.audit import AuditLog
    from guardrail.audit.events import actor_member
    from guardrail.keys import Keyring

    ring = Keyring.open(keyring)
    event: dict[str, Any] = {
        "event": {"category": "report.generate", "action": "R", "outcome": "success"},
        "source": {"app": f"guardrail@{__version__}", "component": "report"},
        "actor": actor_member(actor),
        "resources": [{"type": "report", "id": kind}],
    }
    if subject_ref is not None:
        event["subjects"] = [subject_ref]
    if request_ref:
        event["request"] = {"ref": request_ref, "kind": _REQUEST_KINDS.get(kind, kind)}
    with AuditLog.for_keyring(audit_dir, ring) as log:
        log.append(event)
    return True


@report_app.command("build")
def build_command(
    audit_dir: DirArg,
    output: OutOpt,
    since: SinceOpt = None,
    until: UntilOpt = None,
    policy: Annotated[
        str | None,
        typer.Option("--policy", "-p", help="Only events under this policy (name or name@version)."),
    ] = None,
    public_key: KeyOpt = None,
    force: ForceOpt = False,
    keyring: AuditKeyringOpt = None,
) -> None:
    """(default) The activity report: integrity, access, exposure, datasets, keys and policies."""
    from guardrail.reports.activity import build_report

    _check_output(output, force)
    report = build_report(
        audit_dir, since=since, until=until, policy=policy, public_key=_key_text(public_key)
    )
    _finish(report, output, force, keyring=keyring)


@report_app.command("ropa")
def ropa_command(
    audit_dir: DirArg,
    output: OutOpt,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", "-p", help="A policy pack or YAML in force (repeatable; default: those in the log)."
        ),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    public_key: KeyOpt = None,
    force: ForceOpt = False,
    keyring: AuditKeyringOpt = None,
    org: Annotated[
        Path | None,
        typer.Option(
            "--org", help="A YAML file with the controller, DPO, retention and transfer details to fill in."
        ),
    ] = None,
) -> None:
    """A draft GDPR Art. 30 record of processing activities; unknown fields are marked TO BE COMPLETED."""
    from guardrail.reports.ropa import build_ropa

    _check_output(output, force)
    refs: tuple[Any, ...] = tuple(policy or ())
    report = build_ropa(
        audit_dir, policies=refs, since=since, until=until, public_key=_key_text(public_key), org=org
    )
    _finish(report, output, force, keyring=keyring)


@report_app.command("dsar")
def dsar_command(
    audit_dir: DirArg,
    output: OutOpt,
    subject: SubjectOpt = None,
    subject_ref: SubjectRefOpt = None,
    keyring: KeyringOpt = None,
    tenant: TenantOpt = None,
    with_principals: Annotated[
        bool, typer.Option("--with-principals", help="List who accessed the data (default: roles only).")
    ] = False,
    since: SinceOpt = None,
    until: UntilOpt = None,
    public_key: KeyOpt = None,
    force: ForceOpt = False,
    allow_empty: EmptyOpt = False,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help="A policy YAML in force, for its retention (storage period); shipped packs are found alone.",
        ),
    ] = None,
    actor: ActorOpt = None,
    request_ref: RequestRefOpt = None,
) -> None:
    """GDPR Art. 15 access report for one data subject (identified in it by reference only)."""
    from guardrail.reports.subject import build_dsar

    _check_output(output, force)
    ref = _ref(audit_dir, subject, subject_ref, keyring, tenant, allow_empty=allow_empty)
    report = build_dsar(
        audit_dir,
        subject_ref=ref,
        with_principals=with_principals,
        since=since,
        until=until,
        public_key=_key_text(public_key),
        policies=tuple(policy or ()),
    )
    _finish(report, output, force, keyring=keyring, subject_ref=ref, actor=actor, request_ref=request_ref)


@report_app.command("disclosures")
def disclosures_command(
    audit_dir: DirArg,
    output: OutOpt,
    subject: SubjectOpt = None,
    subject_ref: SubjectRefOpt = None,
    keyring: KeyringOpt = None,
    tenant: TenantOpt = None,
    years: Annotated[int, typer.Option("--years", help="How many years back (164.528: 6).")] = 6,
    requested_on: Annotated[
        str | None,
        typer.Option(
            "--requested-on",
            help="The date of the individual's request: the window ends there (default: today).",
        ),
    ] = None,
    public_key: KeyOpt = None,
    force: ForceOpt = False,
    allow_empty: EmptyOpt = False,
    actor: ActorOpt = None,
    request_ref: RequestRefOpt = None,
) -> None:
    """HIPAA 164.528 accounting of disclosures of one individual's PHI."""
    from guardrail.reports.subject import build_disclosures, check_years

    _check_output(output, force)
    check_years(years)
    ref = _ref(audit_dir, subject, subject_ref, keyring, tenant, allow_empty=allow_empty)
    report = build_disclosures(
        audit_dir,
        subject_ref=ref,
        years=years,
        requested_on=requested_on,
        public_key=_key_text(public_key),
    )
    _finish(report, output, force, keyring=keyring, subject_ref=ref, actor=actor, request_ref=request_ref)
