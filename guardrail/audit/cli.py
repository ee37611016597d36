"""``guardrail audit``: verify, show and prove (the only audit module that imports typer).

Exit codes of ``verify`` (a verdict, so it exits by itself, as ``scan --fail-on`` does): 0 intact, 5 damaged
or not authentic (the first bad record's index and the damage kind are printed; an unsigned tail, a
missing or emptied checkpoints file are findings too), 6 intact except a torn final record (a
crash artefact, reported, never repaired). ``prove`` exits 0 when the proof verifies and 5 when it does
not. Other errors go through ``guardrail.cli.main``: ``ConfigError`` 2, ``AuditIntegrityError`` 5.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guardrail.audit.schema import parse_time
from guardrail.audit.verify import iter_records, load_verifier_key, prove, verify, verify_proof
from guardrail.errors import ConfigError

__all__ = ["EXIT_DAMAGED", "EXIT_TORN_TAIL", "audit_app"]

EXIT_DAMAGED = 5
EXIT_TORN_TAIL = 6

audit_app = typer.Typer(
    help="Verify, inspect and prove the tamper-evident audit log.",
    no_args_is_help=True,
)

# emoji off, as in guardrail.cli
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

DirArg = Annotated[Path, typer.Argument(help="The audit log directory.")]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="The verifier key file (default: the log's audit.pub; use your off-host copy).",
    ),
]


def _key_text(public_key: Path | None) -> str | None:
    if public_key is None:
        return None
    try:
        return public_key.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{public_key}: cannot read the public key ({exc.strerror})") from None


def _audit_keys(public_key: Path | None, keyring: Path | None) -> tuple[str | bytes | None, bytes | None]:
    """The verifier key and record MAC key: with --keyring, the keyring's own signing key (never the log's
    audit.pub, which whoever writes the log directory can replace) and its MAC key."""
    text = _key_text(public_key)
    if keyring is None:
        return text, None
    from guardrail.audit.note import VerifierKey
    from guardrail.audit.verify import keyring_audit_keys

    raw, record_key = keyring_audit_keys(keyring)
    if text is not None:
        given = VerifierKey.parse(text.strip())
        if given.public_key != raw:
            raise ConfigError(
                f"{public_key}: this public key is not the keyring's audit key ({keyring}): give the log's "
                "own keyring, or the public key alone"
            )
        return text, record_key
    return raw, record_key


@audit_app.command("verify")
def verify_command(
    directory: DirArg,
    public_key: KeyOpt = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option("--checkpoints", help="Exported checkpoint files to check too (repeatable)."),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Also check canonical form and schema (slower).")
    ] = False,
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring",
            "-k",
            help="The log's keyring: also check every record's MAC (without it: the public key alone "
            "checks checkpoints and the writer's seals).",
        ),
    ] = None,
    allow_missing_checkpoints: Annotated[
        bool,
        typer.Option(
            "--allow-missing-checkpoints",
            help="Accept a log whose checkpoints file is missing, empty or shorter than its seals say "
            "(only after you checked why).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Recompute every leaf, checkpoint root, seal and (with --keyring) MAC; exit 0 intact, 5 damaged or
    not authentic, 6 torn final record."""
    key, record_key = _audit_keys(public_key, keyring)
    report = verify(
        directory,
        public_key=key,
        checkpoints=checkpoints or [],
        strict=strict,
        record_key=record_key,
        allow_missing_checkpoints=allow_missing_checkpoints,
    )
    if as_json:
        data = {
            "ok": report.ok,
            "records": report.records,
            "checkpoints_verified": report.checkpoints_verified,
            "covered": report.covered,
            "signed": report.signed,
            "unsigned_tail": report.unsigned_tail,
            "macs_checked": report.macs_checked,
            "first_bad_index": report.first_bad_index,
            "kind": report.kind,
            "message": report.message,
            "torn_tail": [
                {"segment": t.segment, "offset": t.offset, "length": t.length} for t in report.torn_tail
            ],
        }
        out.print_json(json.dumps(data))
    if not report.ok:
        where = f"record {report.first_bad_index}" if report.first_bad_index is not None else "checkpoints"
        err.print(f"damaged: {where} ({report.kind}): {report.message}", markup=False)
        raise typer.Exit(EXIT_DAMAGED)
    if not as_json:
        out.print(f"ok: {report.message}", markup=False)
    if report.torn_tail:
        for torn in report.torn_tail:
            err.print(f"warning: {torn}", markup=False)
        raise typer.Exit(EXIT_TORN_TAIL)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: use an ISO date or time, e.g. 2025-01-31 or 2025-01-31T08:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _get(record: dict[str, Any], *path: str) -> Any:
    value: Any = record
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


@audit_app.command("show")
def show_command(
    directory: DirArg,
    principal: Annotated[str | None, typer.Option("--principal", help="Only this actor.ref.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only events that occurred at or after this UTC time.")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Only this event category, e.g. rag.retrieval.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Only events about this subject pseudonym (Art. 15).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print matching records as JSON lines.")] = False,
    public_key: KeyOpt = None,
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring",
            "-k",
            help="The log's keyring: authenticate every record by its MAC (without it: by checkpoints "
            "and seals, with the public key).",
        ),
    ] = None,
) -> None:
    """List events (a table, or JSON lines), each marked with what verification says of it: ok,
    unsigned (after the last seal; authenticate with --keyring), NOT AUTHENTIC or DAMAGED (the first bad
    record) and untrusted (everything after it). Exit 5 when any listed record is not verified ok."""
    start = _since(since)
    statuses, report = _statuses(directory, public_key, keyring)
    table = Table()
    for column in (
        "seq", "occurred_at", "event", "action", "outcome", "actor", "purpose", "subjects", "verified"
    ):  # fmt: skip
        table.add_column(column, overflow="fold")  # narrow terminals wrap, never hide, a value
    shown = 0
    flagged: dict[str, int] = {}
    for index, record in enumerate(iter_records(directory)):
        status = statuses(index)
        if principal is not None and _get(record, "actor", "ref") != principal:
            continue
        if event is not None and _get(record, "event", "category") != event:
            continue
        if subject is not None and subject not in (record.get("subjects") or []):
            continue
        if start is not None:
            try:
                if parse_time(str(record.get("occurred_at"))) < start:
                    continue
            except ConfigError:
                continue
        shown += 1
        if status != "ok":
            flagged[status] = flagged.get(status, 0) + 1
        if as_json:
            line = {**record, "_verified": status}
            out.print(json.dumps(line, ensure_ascii=False, separators=(",", ":")), markup=False)
            continue
        table.add_row(
            *(
                escape(str(v if v is not None else "-"))
                for v in (
                    record.get("seq"),
                    record.get("occurred_at"),
                    _get(record, "event", "category"),
                    _get(record, "event", "action"),
                    _get(record, "event", "outcome"),
                    _get(record, "actor", "ref"),
                    _get(record, "purpose", "code"),
                    len(record.get("subjects") or []),
                )
            ),
            status if status == "ok" else f"[bold red]{escape(status)}[/]",
        )
    if not as_json:
        out.print(table)
        out.print(f"{shown} event(s)")
    if flagged:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(flagged.items()))
        err.print(
            f"warning: {counts} record(s) listed: not verified as written by this log's writer "
            f"({report.message})",
            markup=False,
        )
    elif not report.ok:
        err.print(f"warning: the log does not verify: {report.message}", markup=False)
    if flagged or not report.ok:
        raise typer.Exit(EXIT_DAMAGED)


def _statuses(directory: Path, public_key: Path | None, keyring: Path | None) -> tuple[Any, Any]:
    """``status(index)`` for every record (what :func:`verify` says of it), and the report."""
    key, record_key = _audit_keys(public_key, keyring)
    report = verify(directory, public_key=key, record_key=record_key, allow_missing_checkpoints=False)
    bad = report.first_bad_index
    if report.ok:
        bad = None
    elif bad is None:
        bad = report.signed  # a checkpoint problem: only what the seals authenticate is trusted
    first = {
        "unsigned-tail": "unsigned",
        "unauthentic": "NOT AUTHENTIC",
    }.get(str(report.kind), f"DAMAGED ({report.kind})")
    later = "unsigned" if report.kind == "unsigned-tail" else "untrusted"

    def status(index: int) -> str:
        if bad is None or index < bad:
            return "ok"
        return first if index == bad else later

    return status, report


@audit_app.command("prove")
def prove_command(
    directory: DirArg,
    event_id: Annotated[str, typer.Argument(help="The event_id (UUIDv7) to prove.")],
    public_key: KeyOpt = None,
) -> None:
    """Print an inclusion proof (RFC 9162) of one event under the latest checkpoint; exit 0 if it verifies."""
    key_text = _key_text(public_key)
    proof = prove(directory, event_id, public_key=key_text)
    out.print(proof.to_json(), markup=False)
    key = load_verifier_key(directory, key_text)
    if not verify_proof(proof, key.encode()):
        err.print("the proof does not verify", markup=False)
        raise typer.Exit(EXIT_DAMAGED)


@audit_app.command("export")
def export_command(
    location: Annotated[str, typer.Argument(help="The PostgreSQL log: postgresql://USER@HOST:PORT/DBNAME.")],
    output: Annotated[Path, typer.Argument(help="A new (or empty) directory for the file log.")],
) -> None:
    """Write a consistent snapshot of a PostgreSQL audit log as a file log that `verify` checks offline
    (audit.pub, segment files, checkpoints): evidence an auditor can take away."""
    from guardrail.audit.pg import export
    from guardrail.db import is_postgres_url

    if not is_postgres_url(location):
        raise ConfigError(f"{location}: export reads a postgresql:// location (a file log is copied as is)")
    count = export(location, output)
    out.print(
        f"exported {count} records to {output}; check it with `guardrail audit verify {output}`", markup=False
    )
