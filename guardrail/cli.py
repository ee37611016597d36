"""The ``guardrail`` command line: a thin typer app. Errors are mapped to exit codes in one place
(:func:`main`); tracebacks appear only with ``--debug``."""

from __future__ import annotations

import contextlib
import copy
import csv
import inspect
import itertools
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from guardrail.audit.errors import AuditIntegrityError
from guardrail.errors import (
    ConfigError,
    DetectionError,
    DetectorUnavailable,
    GuardrailError,
    KeyUnavailable,
    OutputExistsError,
)
from guardrail.keys import KeyringError

# what a user may type after a flag by mistake: `--json true` must not make "true" a file name
_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n"})


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _commands(sub)


class _Root(TyperGroup):
    """The root group: plain help for every command (flags shown as flags, no type column, readable at 80
    columns), and a flag given a value (``--json true``) refused with the right spelling."""

    # Any: typer vendors its own click (typer._click), whose Context is not importable publicly
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        for command in _commands(self):  # also the sub-apps other modules add
            command.rich_markup_mode = None
            if command.short_help is None and command.help:  # click would cut "GDPR Art. 15" at "Art."
                command.short_help = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())
            for param in command.params:  # `--field FIELD`, not `--field <list[str]>`
                if getattr(param, "is_flag", False) or not param.name:
                    continue
                if param.metavar is None:
                    param.metavar = _metavar(command.name, param.name, param.nargs)
                if param.param_type_name == "argument":
                    _plain_argument(param)
        _refuse_flag_values(self, args)
        return super().parse_args(ctx, args)


# what a value is, in the words of the help (`--keyring DIR`, `scan FILE...`), by parameter name;
# (command, name) where one name means different things
_METAVARS = {
    "keyring": "DIR",
    "audit_log": "DIR",
    "audit_dir": "AUDIT_DIR",
    "directory": "DIR",
    "store": "DIR",
    "path": "DIR",
    "findings": "FILE",
    "gate_report": "FILE",
    "output": "FILE",
    "vault": "FILE",
    "certificate": "FILE",
    "public_key": "FILE",
    "file": "FILE",
    "module": "FILE",
    "input": "FILE",
    "inputs": "FILE",
    "fail_on": "N",
    "jobs": "N",
    "years": "N",
    "checkpoint_seconds": "SECONDS",
    "since": "TIME",
    "until": "TIME",
    "requested_on": "DATE",
    "tokens": "TOKEN",
    ("scan", "on_error"): "stop|skip",
    ("redact", "on_error"): "stop|skip|quarantine",
    "engine": "local|ray",
    "backend": "file|passphrase|pkcs11",
    ("verify", "checkpoints"): "FILE",
    ("apply", "checkpoints"): "DIR",
    ("demo", "output"): "DIR",
    ("build", "output"): "FILE",
}


def _metavar(command: str | None, name: str, nargs: int) -> str:
    label = _METAVARS.get((command or "", name)) or _METAVARS.get(name) or name.upper()
    return f"{label}..." if nargs == -1 else label


def _plain_argument(param: Any) -> None:
    """An argument as click writes it: `FILE...` in the usage line and the help, no python type."""
    name = param.metavar

    def usage() -> str:
        return name if param.required else f"[{name}]"

    param.display_type_rich = lambda ctx: None
    param._usage_display_name = usage
    param._rich_display_name = lambda: name


def _refuse_flag_values(root: Any, args: list[str]) -> None:
    command = root
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            break
        command = sub
    flags = {
        opt
        for c in _commands(command)  # a group's default command (``report AUDIT_DIR``) is among these
        for param in c.params
        if getattr(param, "is_flag", False)
        for opt in (*param.opts, *param.secondary_opts)
    }
    for flag, value in itertools.pairwise(args):
        if flag == "--":
            return
        if flag in flags and value.lower() in _BOOL_WORDS:
            raise ConfigError(f"{flag} is a flag: write {flag} alone, not {flag} {value}")


app = typer.Typer(
    cls=_Root,
    name="guardrail",
    help="Encryption, PII redaction, access policies and tamper-evident audit for RAG and fine-tuning data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
policy_app = typer.Typer(help="Validate and inspect policy packs.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
from guardrail.audit.cli import audit_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(audit_app, name="audit")
from guardrail.db.cli import db_app  # noqa: E402

app.add_typer(db_app, name="db")
from guardrail.datasets.cli import manifest_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(manifest_app, name="manifest")
from guardrail.reports.cli import report_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(report_app, name="report")
from guardrail.canaries.cli import canary_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(canary_app, name="canary")
keys_app = typer.Typer(
    help="Create and manage keyrings: list, rotate, re-encrypt, destroy, shred.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
retention_app = typer.Typer(help="Apply the policy's retention periods.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

# emoji off: "notes.jsonl:100:" must not become an emoji
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

_state = {"debug": False}

# exit codes: 0 ok, 1 gate failed (--fail-on), 2 user error, 3 missing dependency, 4 detection failed
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (DetectorUnavailable, 3),
    (DetectionError, 4),
    (ConfigError, 2),
    (KeyringError, 2),
    (AuditIntegrityError, 5),  # audit log damaged
    (OutputExistsError, 2),
    (KeyUnavailable, 2),
    (GuardrailError, 1),
]

PolicyOpt = Annotated[str, typer.Option("--policy", "-p", help="A policy pack name or a YAML file.")]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        "-f",
        help="Field (JSONL) or column (CSV) to process; repeatable. JSONL default: text, or chat messages.",
    ),
]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Worker processes.")]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="Force the dataset format: jsonl-chat, jsonl-alpaca, jsonl, csv, parquet, hf-disk "
        "(default: detected).",
    ),
]
RoleOpt = Annotated[
    list[str] | None,
    typer.Option("--role", help="Chat role whose turns are processed; repeatable (default: the policy's)."),
]
OptionalKeyringOpt = Annotated[
    Path | None,
    typer.Option(
        "--keyring", "-k", envvar="GUARDRAIL_KEYRING", help="The keyring directory (or GUARDRAIL_KEYRING)."
    ),
]
OnErrorOpt = Annotated[
    str, typer.Option("--on-error", help="What to do with a malformed record: stop (default) or skip.")
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress (bar on a terminal, a line every few seconds else)."),
]
GateReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--gate-report",
        help="Write the records that count against --fail-on (line, id, entity types; never values) "
        "as JSONL.",
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from guardrail import __version__

        out.print(f"guardrail {__version__} (distribution guardrail-privacy)")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    _state["debug"] = debug or os.environ.get("GUARDRAIL_DEBUG") == "1"


def _on_error(value: str) -> Literal["stop", "skip"]:
    if value not in ("stop", "skip"):
        raise ConfigError(f"--on-error must be stop or skip, not {value!r}")
    return value  # type: ignore[return-value]


def _field_name(reader: Any, path: tuple[str | int, ...]) -> str:
    if reader.kind == "csv":
        return str(reader.header[int(path[0])])
    return ".".join(str(p) for p in path) or "line"


def _texts(record: Any) -> list[str]:
    return [text for _, text in record.fields]


# --------------------------------------------------------------------------- scan


@app.command()
def scan(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Input files: .txt, .jsonl, .csv, .parquet, saved Hugging Face dataset folders."),
    ],
    policy: PolicyOpt = "default",
    field: FieldOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    findings: Annotated[
        Path | None, typer.Option("--findings", help="Write findings (no values) as JSONL.")
    ] = None,
    fail_on: Annotated[
        int | None, typer.Option("--fail-on", help="Exit 1 when more than N findings.")
    ] = None,
    jobs: JobsOpt = 1,
    on_error: OnErrorOpt = "stop",
    force: Annotated[bool, typer.Option("--force", help="Overwrite the --findings file.")] = False,
    format: FormatOpt = None,
    role: RoleOpt = None,
    keyring: OptionalKeyringOpt = None,
    tenant: TenantOpt = "default",
    audit_log: AuditOpt = None,
    quiet: QuietOpt = False,
    gate_report: GateReportOpt = None,
) -> None:
    """Count personal data in files and datasets, per entity type; optionally a CI gate.

    Datasets (JSONL chat/Alpaca/plain, CSV, Parquet, saved Hugging Face datasets) are read with the
    policy's dataset rules (roles, fields); .txt files line by line."""
    from guardrail.io import atomic_output, open_reader
    from guardrail.pipeline import detect_stream
    from guardrail.policy import load_policy

    pol = load_policy(policy)
    mode = _on_error(on_error)
    for name, extra in (("--findings", findings), ("--gate-report", gate_report)):
        if extra is not None and any(extra.resolve() == p.resolve() for p in inputs):
            raise ConfigError(f"{extra}: the {name} file must not be an input (inputs are never modified)")
    if gate_report is not None and gate_report.exists() and not force:
        raise OutputExistsError(f"{gate_report}: exists; pass --force to overwrite it")
    if gate_report is not None and findings is not None and gate_report.resolve() == findings.resolve():
        raise ConfigError(f"{gate_report}: --gate-report and --findings need two files")
    from guardrail.datasets.formats import iter_records
    from guardrail.datasets.run import scan_file

    ring = _open_keyring(keyring, "an audited scan") if audit_log is not None else None
    rules = _rules(pol, field, role)
    # every input is checked before any work: a missing file or bad option fails at once
    readers: list[Any] = [
        iter_records(p, format=format, rules=rules, on_error=mode)  # type: ignore[arg-type]
        if _is_dataset(p, format)
        else open_reader(p, fields=list(field or []), on_error=mode)
        for p in inputs
    ]
    if audit_log is not None and any(not _is_dataset(p, format) for p in inputs):
        raise ConfigError("--audit-log records dataset scans; .txt files are not datasets")
    from guardrail.datasets.run import FlaggedRecord, flagged_record

    counts: Counter[str] = Counter()
    affected: Counter[str] = Counter()
    records = records_with = skipped = 0
    flagged: list[tuple[Path, FlaggedRecord]] = []  # records with findings: what a failing gate names
    empty: list[Path] = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(atomic_output(findings, force=force)) if findings else None

        def write(path: Path, index: int, ident: Any, field_name: str, found: list[Any]) -> None:
            if handle is not None:
                entry = {"file": str(path), "record": index, "id": ident, "field": field_name}
                handle.write(json.dumps({**entry, "spans": [f.to_dict() for f in found]}) + "\n")

        for path, reader in zip(inputs, readers, strict=True):
            kind = reader.format if _is_dataset(path, format) else reader.kind
            progress = _progress(f"scanning {path.name}", path, kind, quiet)
            stack.callback(progress.finish)
            before = records + skipped
            if not _is_dataset(path, format):
                for record, per_text in detect_stream(reader, _texts, policy=pol, jobs=jobs):
                    records += 1
                    found_here = Counter(f.entity for found in per_text for f in found)
                    counts.update(found_here)
                    for (where, _), found in zip(record.fields, per_text, strict=True):
                        write(reader.path, record.index, record.id, _field_name(reader, where), found)
                    records_with += bool(found_here)
                    affected.update(found_here.keys())
                    if found_here:
                        ident = record.id if reader.kind == "csv" else None  # .txt lines have no id
                        flagged.append((path, FlaggedRecord(record.line, ident, dict(found_here))))
                    progress(records - before)
                skipped += reader.skipped
                progress.finish()
                if records + skipped == before:
                    empty.append(path)
                continue

            def on_record(
                record: Any,
                per_text: list[Any],
                path: Path = path,
                progress: Any = progress,
                base: int = before,
            ) -> None:
                ident = record.data.get("id")
                for (where, _), found in zip(record.texts, per_text, strict=True):
                    name = ".".join(str(p) for p in where)
                    write(path, record.index, ident if isinstance(ident, str | int) else None, name, found)
                found_here = Counter(f.entity for found in per_text for f in found)
                if found_here:
                    flagged.append((path, flagged_record(record, found_here)))
                progress(record.index + 1)

            result = scan_file(
                path,
                policy=pol,
                format=reader.format,
                rules=rules,
                jobs=jobs,
                on_error=mode,
                keyring=ring,
                audit_log=audit_log,
                on_record=on_record,
            )
            progress.finish()
            counts.update(result.findings)
            affected.update(result.records_per_entity)
            records += result.records
            records_with += result.records_with_findings
            skipped += result.rejects
            if result.records + result.rejects == 0:
                empty.append(path)
    for path in empty:
        err.print(f"warning: {path}: no records (an empty input); nothing was scanned", markup=False)
    if gate_report is not None:
        _write_gate_report(gate_report, flagged, force=force)
    _scan_summary(pol, counts, affected, records, records_with, skipped, started, as_json, fail_on, flagged)


def _write_gate_report(path: Path, flagged: list[tuple[Path, Any]], *, force: bool) -> None:
    """``--gate-report``: one JSON line per record that counts against the gate (never values)."""
    from guardrail.io import atomic_output

    with atomic_output(path, force=force) as f:
        for source, record in flagged:
            f.write(json.dumps({"file": str(source), **record.to_dict()}, ensure_ascii=False) + "\n")


def _scan_summary(
    pol: Any,
    counts: Counter[str],
    affected: Counter[str],
    records: int,
    records_with: int,
    skipped: int,
    started: float,
    as_json: bool,
    fail_on: int | None,
    flagged: list[tuple[Path, Any]],
) -> None:
    total = sum(counts.values())
    summary = {
        "policy": pol.id,
        "records": records,
        "records_with_findings": records_with,
        "findings": total,
        "skipped": skipped,
        "by_entity": {e: {"findings": n, "records": affected[e]} for e, n in sorted(counts.items())},
        "seconds": round(time.monotonic() - started, 3),
    }
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        table = Table(title=f"guardrail scan ({pol.id})")
        table.add_column("entity")
        table.add_column("findings", justify="right")
        table.add_column("records", justify="right")
        for e, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(e, str(n), str(affected[e]))
        table.add_row("[b]total[/b]", f"[b]{total}[/b]", f"[b]{records_with}[/b] of {records}")
        out.print(table)
        if skipped:
            err.print(f"skipped {skipped} malformed record(s)")
    if fail_on is not None and total > fail_on:
        several = len({p for p, _ in flagged}) > 1
        shown = [(f"{p.name} " if several else "") + r.describe() for p, r in flagged[:_GATE_SHOWN]]
        more = len(flagged) - _GATE_SHOWN
        err.print(
            f"gate failed: {total} findings > --fail-on {fail_on} in {len(flagged)} record(s): "
            + "; ".join(shown)
            + (f"; and {more} more (--gate-report FILE lists every one)" if more > 0 else ""),
            markup=False,
        )
        raise typer.Exit(1)


# --------------------------------------------------------------------------- redact


@app.command()
def redact(
    input: Annotated[
        Path,
        typer.Argument(help="A .txt, .jsonl, .csv or .parquet file, or a saved Hugging Face dataset folder."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (same format).")],
    policy: PolicyOpt = "default",
    field: FieldOpt = None,
    jobs: JobsOpt = 1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="A malformed record: stop (default), skip (line and reason to OUTPUT.rejects.jsonl) or "
            "quarantine (the record too).",
        ),
    ] = "stop",
    format: FormatOpt = None,
    role: RoleOpt = None,
    skip_field: Annotated[
        list[str] | None, typer.Option("--skip-field", help="A field never touched; repeatable.")
    ] = None,
    keyring: OptionalKeyringOpt = None,
    tenant: TenantOpt = "default",
    vault: Annotated[
        Path | None, typer.Option("--vault", help="Token vault (default: KEYRING/vault-TENANT.sqlite).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="local (--jobs processes) or ray.")] = "local",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint.")
    ] = False,
    fail_on: Annotated[
        int | None,
        typer.Option("--fail-on", help="Gate: write nothing and exit 1 when more than N residual findings."),
    ] = None,
    audit_log: AuditOpt = None,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar="GUARDRAIL_ACTOR", help="Who runs this (audit).")
    ] = None,
    checkpoint_seconds: Annotated[
        float, typer.Option("--checkpoint-seconds", min=0.0, help="How often a run saves a checkpoint.")
    ] = 5.0,
    quiet: QuietOpt = False,
    gate_report: GateReportOpt = None,
    subject_field: Annotated[
        str | None,
        typer.Option(
            "--subject-field",
            help="The record field naming the data subject (dataset events then list the subjects, "
            "for access and erasure requests; needs --keyring).",
        ),
    ] = None,
) -> None:
    """Write a redacted copy: same records, same order, other fields untouched. Atomic; input untouched.

    Datasets (JSONL chat/Alpaca/plain, CSV, Parquet, saved Hugging Face datasets) are re-scanned after
    redaction and get a signed OUTPUT.manifest.json and a dataset card OUTPUT.card.md. With --keyring
    the manifest is signed with its audit key and pseudonyms hold across runs and workers."""
    from guardrail.core import Guardrail
    from guardrail.io import atomic_output, check_output_path, open_reader, set_field
    from guardrail.pipeline import detect_stream
    from guardrail.redaction import PseudonymScope

    if output.resolve() == input.resolve():
        raise ConfigError(f"{output}: the output must not be the input (inputs are never modified)")
    check_output_path(output, option="--output", directory=input.is_dir())
    if _is_dataset(input, format):
        _redact_dataset(
            input,
            output,
            policy=policy,
            field=field,
            role=role,
            skip_field=skip_field,
            format=format,
            keyring=keyring,
            tenant=tenant,
            vault=vault,
            engine=engine,
            jobs=jobs,
            on_error=on_error,
            resume=resume,
            force=force,
            fail_on=fail_on,
            audit_log=audit_log,
            actor=actor,
            checkpoint_seconds=checkpoint_seconds,
            quiet=quiet,
            gate_report=gate_report,
            subject_field=subject_field,
        )
        return
    if (
        on_error == "quarantine"
        or resume
        or fail_on is not None
        or engine != "local"
        or gate_report
        or subject_field
    ):
        raise ConfigError(
            f"{input}: --on-error quarantine, --resume, --fail-on, --gate-report, --engine and "
            "--subject-field apply to datasets, not to .txt files"
        )
    if output.is_dir():
        raise ConfigError(f"{output}: is a directory; give a file path for the output")
    if output.suffix.lower() != ".txt":
        raise ConfigError(
            f"{output}: the output keeps the input's format (text); name it with .txt (-o/--output)"
        )
    # the keyring keys the hash operator (its redaction-hash key) as it does for datasets
    gr = Guardrail(policy, keyring=keyring, tenant=tenant) if keyring is not None else Guardrail(policy)
    reader = open_reader(input, fields=list(field or []), on_error=_on_error(on_error))
    if output.exists() and not force:
        raise OutputExistsError(f"{output}: exists; pass --force to overwrite it")
    scope = PseudonymScope()  # one scope for the whole file: the same value gets the same token
    counts: Counter[str] = Counter()
    records = 0
    started = time.monotonic()
    progress = _progress(f"redacting {input.name}", input, reader.kind, quiet)
    from guardrail.datasets.run import canaries_of

    canaries, planted = canaries_of(gr.keyring), []  # a canary value in the output fails the run
    with contextlib.ExitStack() as stack:
        stack.callback(progress.finish)
        handle = stack.enter_context(atomic_output(output, force=force))
        writer = csv.writer(handle, lineterminator="\n") if reader.kind == "csv" else None
        header_written = False
        for record, per_text in detect_stream(reader, _texts, policy=gr.policy, jobs=jobs):
            if writer is not None and not header_written:
                writer.writerow(reader.header)
                header_written = True
            data = copy.deepcopy(record.data) if reader.kind != "txt" else record.data
            for (path, text), found in zip(record.fields, per_text, strict=True):
                result = gr.redactor.redact(text, found, scope=scope)
                counts.update(f.entity for f in result.findings)
                if reader.kind == "txt":
                    data = result.text + record.data[len(text) :]
                else:
                    set_field(data, path, result.text)
            found = canaries.canaries_in([data]) if canaries is not None and isinstance(data, str) else {}
            if found:
                planted.append(f"line {record.line}: canary {', '.join(found)}")
            if reader.kind == "jsonl":
                handle.write(json.dumps(data, ensure_ascii=False) + "\n")
            elif writer is not None:
                writer.writerow(data)
            else:
                handle.write(data)
            records += 1
            progress(records)
        if writer is not None and not header_written and reader.header:
            writer.writerow(reader.header)
        if planted:
            from guardrail.datasets.run import GateFailed

            raise GateFailed(
                f"gate failed: the output still holds canary values in {len(planted)} record(s): "
                f"{'; '.join(planted[:10])}; nothing was written"
            )
    if records == 0 and not reader.skipped:
        err.print(f"warning: {input}: no records (an empty input); the output is empty too", markup=False)
    seconds = time.monotonic() - started
    by_entity = ", ".join(f"{e} {n}" for e, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    err.print(
        f"redacted {sum(counts.values())} finding(s) in {records} record(s) in {seconds:.1f}s -> {output}"
        + (f" ({by_entity})" if by_entity else "")
    )
    if reader.skipped:
        err.print(f"skipped {reader.skipped} malformed record(s)")


def _is_dataset(path: Path, format: str | None) -> bool:
    return format is not None or path.is_dir() or path.suffix.lower() != ".txt"


def _rules(pol: Any, field: list[str] | None, role: list[str] | None, skip: list[str] | None = None) -> Any:
    from guardrail.datasets.run import rules_for

    return rules_for(pol, fields=field or None, roles=role or None, skip=skip or None)


def _open_keyring(keyring: Path | None, why: str) -> Any:
    from guardrail.keys import Keyring

    if keyring is None:
        raise ConfigError(
            f"{why} needs a keyring: pass --keyring DIR or set GUARDRAIL_KEYRING "
            "(create one with `guardrail keys init DIR`)"
        )
    return Keyring.open(keyring)


def _redact_dataset(input: Path, output: Path, **o: Any) -> None:
    from guardrail.datasets.formats import detect_format
    from guardrail.datasets.run import GateFailed
    from guardrail.keys import Keyring
    from guardrail.policy import load_policy

    pol = load_policy(o["policy"])
    ring = Keyring.open(o["keyring"]) if o["keyring"] is not None else None
    gate_report: Path | None = o["gate_report"]
    if gate_report is not None:
        from guardrail.datasets.manifest import manifest_path_for
        from guardrail.datasets.run import CARD_SUFFIX, REJECTS_SUFFIX

        sidecars = [output.with_name(output.name + suffix) for suffix in (CARD_SUFFIX, REJECTS_SUFFIX)]
        taken = [input, output, manifest_path_for(output), *sidecars]
        if any(gate_report.resolve() == p.resolve() for p in taken):
            raise ConfigError(
                f"{gate_report}: the --gate-report file must not be the input, the output or its sidecars"
            )
        if gate_report.exists() and not o["force"]:
            raise OutputExistsError(f"{gate_report}: exists; pass --force to overwrite it")
    kind = o["format"] or detect_format(input)
    progress = _progress(f"redacting {input.name}", input, kind, o["quiet"])
    try:
        result = _redact_file(input, output, ring, pol, progress, o)
    except KeyboardInterrupt:  # typer turns it into a silent exit 130: say what happened
        progress.finish()
        err.print(
            f"interrupted: nothing was written to {output}; `guardrail redact ... --resume` continues "
            "from the last checkpoint"
        )
        raise typer.Exit(130) from None
    except GateFailed as exc:
        progress.finish()
        if gate_report is not None:
            _write_gate_report(gate_report, [(input, r) for r in exc.records], force=o["force"])
            err.print(f"gate report: {gate_report} ({len(exc.records)} record(s))", markup=False)
        raise
    progress.finish(result.manifest.input_records)
    if gate_report is not None:
        _write_gate_report(gate_report, [(input, r) for r in result.flagged], force=o["force"])
    if result.manifest.input_records == 0:
        err.print(f"warning: {input}: no records (an empty input); the output is empty too", markup=False)
    _report_run(result, output, o["on_error"])


def _redact_file(input: Path, output: Path, ring: Any, pol: Any, progress: Any, o: dict[str, Any]) -> Any:
    from guardrail.datasets.run import redact_file

    return redact_file(
        input,
        output,
        keyring=ring,
        policy=pol,
        tenant=o["tenant"],
        format=o["format"],
        rules=_rules(pol, o["field"], o["role"], o["skip_field"]),
        jobs=o["jobs"],
        engine=o["engine"],
        on_error=o["on_error"],
        resume=o["resume"],
        force=o["force"],
        fail_on=o["fail_on"],
        audit_log=o["audit_log"],
        vault=o["vault"],
        actor=o["actor"],
        checkpoint_seconds=o["checkpoint_seconds"],
        progress=progress,
        subject_field=o.get("subject_field"),
    )


def _report_run(result: Any, output: Path, on_error: str) -> None:
    m = result.manifest
    found = sum(m.findings_before.values())
    by_entity = ", ".join(
        f"{e} {n}" for e, n in sorted(m.findings_before.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    rate = result.chars / result.seconds if result.seconds else 0.0
    err.print(
        f"redacted {found} finding(s) in {m.output_records} record(s) in {result.seconds:.1f}s "
        f"({rate:,.0f} chars/s) -> {output}" + (f" ({by_entity})" if by_entity else "")
    )
    if result.resumed_from:
        err.print(f"resumed after input line {result.resumed_from}")
    residual = ", ".join(f"{e} {n}" for e, n in sorted(m.findings_after.items()))
    err.print(f"residual findings after redaction: {m.residual}" + (f" ({residual})" if residual else ""))
    if result.rejects_path is not None:
        verb = "quarantined" if on_error == "quarantine" else "skipped"
        err.print(f"{verb} {m.rejects} malformed record(s) -> {result.rejects_path}")
    err.print(f"manifest: {result.manifest_path} (signed, key {result.key_id}); card: {result.card_path}")
    if not result.signed_by_keyring:
        err.print(
            "note: no --keyring: the manifest is signed with a one-time key (it proves integrity, not "
            "origin) and pseudonyms hold within this run only"
        )


_GATE_SHOWN = 10  # records a failing gate names on stderr (--gate-report has them all)


def _progress(label: str, path: Path, kind: str, quiet: bool) -> Any:
    """Progress on stderr: a bar with total and ETA on a terminal, else a line every few seconds.
    ``kind``: the input's format (``txt``, ``csv``, ``jsonl-chat``, ...), for the pre-count."""
    from guardrail.progress import Progress, count_records

    return Progress(
        label,
        total=None if quiet else count_records(path, kind),
        stream=sys.stderr,
        terminal=err.is_terminal,
        quiet=quiet,
        interval=float(os.environ.get("GUARDRAIL_PROGRESS_SECONDS", "5")),
        console=err,
    )


# --------------------------------------------------------------------------- policy


@policy_app.command("list")
def policy_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the packs as JSON.")] = False,
) -> None:
    """List the shipped policy packs: name, version and what each does."""
    from guardrail.policy import available_packs, load_policy

    packs = [load_policy(path) for path in available_packs().values()]
    if as_json:
        rows = [
            {"name": p.name, "version": p.version, "sha256": p.sha256, "description": p.description}
            for p in packs
        ]
        out.print_json(json.dumps(rows))
        return
    table = Table(title="shipped policy packs (--policy NAME)")
    for col in ("name", "version", "what it does"):
        table.add_column(col)
    for p in packs:
        summary = re.split(r"\.\s+(?=[A-Z])", " ".join((p.description or "").split()))[0].rstrip(".")
        table.add_row(p.name, p.version, summary)
    out.print(table)
    out.print("details: guardrail policy show NAME; your own: --policy path/to/policy.yaml")


@policy_app.command("lint")
def policy_lint(file: Annotated[Path, typer.Argument(help="A policy YAML file.")]) -> None:
    """Validate a policy file; print what is wrong and where."""
    from guardrail.policy import load_policy

    if not file.exists():
        raise ConfigError(f"{file}: no such file")
    pol = load_policy(file)
    out.print(f"ok: {pol.id} ({len(pol.detection.all_entities)} entities, sha256 {pol.sha256[:12]})")


@policy_app.command("show")
def policy_show(
    name: Annotated[str, typer.Argument(help="A shipped pack name or a YAML file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the validated policy as JSON.")] = False,
) -> None:
    """Show a policy: what it detects and how each entity is redacted."""
    from guardrail.policy import load_policy

    pol = load_policy(name)
    if as_json:
        out.print_json(pol.model_dump_json())
        return
    out.print(f"[b]{escape(pol.id)}[/b]  sha256 {pol.sha256}")
    if pol.description:
        out.print(pol.description.strip(), markup=False)
    out.print(f"model: {pol.detection.model}   threshold: {pol.detection.threshold}")
    table = Table()
    table.add_column("entity")
    table.add_column("threshold", justify="right")
    table.add_column("operator")
    for e in sorted(pol.detection.all_entities):
        op = pol.redaction.operator_for(e)
        table.add_row(e, str(pol.detection.thresholds.get(e, pol.detection.threshold)), op.operator)
    out.print(table)
    if pol.identifiers:
        ids = Table(title="HIPAA Safe Harbor identifiers")
        for col in ("id", "identifier", "entities", "handling"):
            ids.add_column(col)
        for i in pol.identifiers:
            ids.add_row(
                i.id,
                i.name,
                ", ".join(i.entities) or "-",
                escape(("[human review] " if i.human_review else "") + i.handling),
            )
        out.print(ids)


@policy_app.command("explain")
def policy_explain(
    name: Annotated[str, typer.Argument(help="A shipped pack name or a YAML file.")],
    principal: Annotated[str, typer.Option(help='JSON: {"id": ..., "roles": [...], "purpose": ...}')],
    resource: Annotated[
        str, typer.Option(help='JSON labels: {"classification": "phi", "purposes": [...], ...}')
    ] = "{}",
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Show the access decision for a principal and a resource, and the rule that made it."""
    from guardrail.access import Principal, Resource, evaluate
    from guardrail.policy import load_policy

    pol = load_policy(name)
    try:
        who = json.loads(principal)
        what = json.loads(resource)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--principal/--resource must be JSON objects ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(who, dict) or not isinstance(what, dict):
        raise ConfigError("--principal and --resource must be JSON objects")
    try:
        person = Principal(
            id=str(who["id"]),
            roles=list(who.get("roles", [])),
            purpose=str(who["purpose"]),
            attributes=who.get("attributes", {}),
        )
    except KeyError as exc:
        raise ConfigError(f"--principal needs {exc.args[0]!r}") from None
    decision = evaluate(
        pol, person, Resource.from_metadata(what, default_classification=pol.access.default_classification)
    )
    if as_json:
        out.print_json(json.dumps(decision.to_dict()))
        return
    colour = "green" if decision.allowed else "red"
    out.print(
        f"[{colour}][b]{decision.effect.upper()}[/b][/{colour}]  rule: {', '.join(decision.rule_ids)}"
        + (f"  redaction: {decision.redaction}" if decision.allowed else "")
    )
    out.print(f"reason: {escape(decision.reason)}")
    out.print(f"policy: {decision.policy_id}@{decision.policy_version} sha256 {decision.policy_sha256[:16]}")


# --------------------------------------------------------------------------- keys

KeyringOpt = Annotated[
    Path,
    typer.Option(
        "--keyring", "-k", envvar="GUARDRAIL_KEYRING", help="The keyring directory (or GUARDRAIL_KEYRING)."
    ),
]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="The tenant.")]
StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="A persisted encrypted storage directory.")]
AuditOpt = Annotated[
    Path | None,
    typer.Option("--audit-log", envvar="GUARDRAIL_AUDIT_LOG", help="Record the operation in this audit log."),
]


ActorOpt = Annotated[
    str | None, typer.Option("--actor", help="Who performs it (recorded; default: your OS user).")
]
RequestRefOpt = Annotated[
    str | None,
    typer.Option("--request-ref", help="Your reference of the request or change (a ticket id, not a name)."),
]


class _KeyOpAudit:
    """The audit log of a key operation, opened (and its records after the last checkpoint authenticated)
    BEFORE the keyring changes: a log that cannot be opened or is not authentic stops the operation
    with nothing changed (fail closed). ``record`` appends one event, durably (sync), with its actor and
    the request reference."""

    def __init__(
        self, audit_log: Path | None, ring: Any, actor: str | None = None, request_ref: str | None = None
    ) -> None:
        self._log: Any = None
        self._actor = actor
        self._request_ref = request_ref
        if audit_log is not None:
            from guardrail.audit import AuditLog

            self._log = AuditLog.for_keyring(audit_log, ring)

    def __enter__(self) -> _KeyOpAudit:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._log is not None:
            self._log.close()

    def record(self, category: str, action: str, **fields: Any) -> None:
        if self._log is None:
            return
        from guardrail import __version__
        from guardrail.audit.events import actor_member

        fields.setdefault("actor", actor_member(self._actor))
        if self._request_ref:
            fields.setdefault("request", {"ref": self._request_ref, "kind": "key management"})
        from guardrail.audit import AuditWriteError

        try:
            self._log.append(
                {
                    "event": {"category": category, "action": action, "outcome": "success"},
                    "source": {"app": f"guardrail@{__version__}", "component": "cli"},
                    **fields,
                },
                sync=True,
            )
        except AuditWriteError as exc:
            # the keyring has changed by now and cannot be changed back (a destroyed key is gone): say so,
            # never leave the impression that nothing happened
            keys = [str(r.get("id")) for r in fields.get("resources") or () if r.get("type") == "key"]
            raise AuditWriteError(
                f"the keyring WAS changed ({category}: key(s) {', '.join(keys) or '-'}), but its audit "
                f"record was not written ({exc}): the change stands, unrecorded; make the audit log "
                "writable and record it by hand (the key ids above)"
            ) from exc


@keys_app.command("init")
def keys_init(
    path: Annotated[Path, typer.Argument(help="A new keyring directory.")],
    backend: Annotated[
        str, typer.Option(help="file (a key file, 0600), passphrase (scrypt) or pkcs11 (an HSM).")
    ] = "file",
    module: Annotated[str | None, typer.Option(help="pkcs11: the PKCS#11 module (.so).")] = None,
    token: Annotated[str | None, typer.Option(help="pkcs11: the token label.")] = None,
    key_label: Annotated[str, typer.Option(help="pkcs11: the KEK's label in the token.")] = "guardrail-kek",
) -> None:
    """Create a keyring. Passphrase from GUARDRAIL_KEYRING_PASSPHRASE; HSM PIN from GUARDRAIL_PKCS11_PIN."""
    from guardrail.keys import Keyring, KeyringError

    if backend == "pkcs11":
        if not module or not token:
            raise ConfigError("--backend pkcs11 needs --module PATH.so and --token LABEL")
        from guardrail.kek_pkcs11 import Pkcs11Kek

        kek = Pkcs11Kek.generate(
            module=module,
            token_label=token,
            key_label=key_label,
            pin=os.environ.get("GUARDRAIL_PKCS11_PIN"),
        )
        Keyring.create(path, kek=kek)
    elif backend in ("file", "passphrase"):
        Keyring.create(path, backend=backend)
    else:
        raise KeyringError(f"unknown backend {backend!r}: use file, passphrase or pkcs11")
    out.print(f"created keyring {path} ({backend} KEK)")


@keys_app.command("list")
def keys_list(
    keyring: KeyringOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Key ids, scopes, versions and states (never key material, never owner names)."""
    from guardrail.keys import Keyring

    infos = Keyring.open(keyring).list_keys()
    if as_json:
        out.print_json(json.dumps([_info(i) for i in infos]))
        return
    table = Table(title=f"keyring {keyring}")
    for col in ("id", "scope", "version", "state", "opens old data", "created"):
        table.add_column(col)
    for i in infos:
        table.add_row(
            i.id, i.scope, str(i.version), i.state, "yes" if i.state != "destroyed" else "no", i.created
        )
    out.print(table)
    retired = sum(1 for i in infos if i.state == "decrypt-only")
    if retired:
        out.print(
            f"{retired} retired version(s) still decrypt everything sealed under them (old copies and "
            "backups too) until destroyed: after `guardrail keys reencrypt`, destroy them with "
            "`guardrail keys reencrypt ... --destroy-old` or `guardrail keys destroy`"
        )


def _info(i: Any) -> dict[str, Any]:
    return {
        "id": i.id,
        "scope": i.scope,
        "version": i.version,
        "state": i.state,
        "decrypts": i.state != "destroyed",
        "created": i.created,
    }


@keys_app.command("rotate")
def keys_rotate(
    keyring: KeyringOpt,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Rotate one tenant (default: all).")
    ] = None,
    audit_log: AuditOpt = None,
    actor: ActorOpt = None,
    request_ref: RequestRefOpt = None,
) -> None:
    """Make a new DEK version primary; older versions stay decrypt-only until re-encrypted and destroyed."""
    from guardrail.keys import Keyring

    ring = Keyring.open(keyring)
    with _KeyOpAudit(
        audit_log, ring, actor, request_ref
    ) as audit:  # the log opens first: no rotation it cannot record
        rotated = [ring.rotate(tenant)] if tenant else ring.rotate_all()
        keys = [{"type": "key", "id": i.id, "labels": [f"version-{i.version}"]} for i in rotated]
        audit.record("key.rotate", "U", resources=keys)
    for info in rotated:
        out.print(f"new primary {info.id} (version {info.version})")
    if not rotated:
        out.print("no tenant keys to rotate")


def _open_store(keyring: Path, store: Path, tenant: str, name: str | None = None) -> tuple[Any, Any]:
    from guardrail.crypto import Sealer
    from guardrail.keys import Keyring
    from guardrail.llama_index.storage import load_storage_context

    ring = Keyring.open(keyring)
    return ring, load_storage_context(store, sealer=Sealer(ring), keyring=ring, tenant=tenant, name=name)


def _binding_name(path: Path, name: str | None) -> str | None:
    """The name a store is bound to when re-encrypted: --name, the persisted one, or (a store written
    before bindings) its directory's name, so that two old stores do not end up with the same binding."""
    from guardrail.llama_index.storage import persisted_name

    if name is not None or persisted_name(path) is not None:
        return name
    return path.resolve().name.replace(":", "-") or "default"


@keys_app.command("reencrypt")
def keys_reencrypt(
    keyring: KeyringOpt,
    store: Annotated[
        list[Path],
        typer.Option("--store", "-s", help="A persisted encrypted storage directory; repeatable."),
    ],
    tenant: TenantOpt = "default",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count records per key (from headers).")
    ] = False,
    destroy_old: Annotated[
        bool,
        typer.Option(
            "--destroy-old",
            help="Then destroy the tenant's retired versions that no given store uses any more (give "
            "every store of the tenant: data sealed under a destroyed version elsewhere, backups too, "
            "stays closed).",
        ),
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Bind the store to this storage name (one --store only; default: its persisted name, or "
            "for a store written before bindings, its directory's name).",
        ),
    ] = None,
    audit_log: AuditOpt = None,
    actor: ActorOpt = None,
    request_ref: RequestRefOpt = None,
) -> None:
    """Re-seal every record of persisted stores under the tenant's primary key, bound to its collection.

    Records written before bindings (envelope version 1) are counted as unbound and re-sealed bound.

    Old ciphertext (a copy, a backup, a restored file) keeps opening until its key version is destroyed:
    --destroy-old does that once the given stores no longer use it."""
    from guardrail.llama_index.storage import reencrypt

    if destroy_old and dry_run:
        raise ConfigError("--destroy-old destroys keys; it cannot be combined with --dry-run")
    if name is not None and len(store) != 1:
        raise ConfigError("--name names one store: give exactly one --store with it")
    from guardrail.keys import Keyring

    in_use: Counter[str] = Counter()
    # the audit log opens before anything is re-sealed or destroyed (a dry run changes nothing)
    with _KeyOpAudit(None if dry_run else audit_log, Keyring.open(keyring), actor, request_ref) as audit:
        for path in store:
            ring, storage = _open_store(keyring, path, tenant, None if dry_run else _binding_name(path, name))
            report = reencrypt(storage, keyring=ring, tenant=tenant, dry_run=dry_run)
            primary = ring.primary_id(tenant)
            if not dry_run:
                storage.persist(persist_dir=str(path))
                stored_name = storage.index_store._kvstore.name
                audit.record(
                    "key.rotate",
                    "U",
                    resources=[
                        {"type": "key", "id": primary, "labels": ["reencrypt-target", "primary"]},
                        {
                            "type": "store",
                            "id": stored_name,
                            "labels": [
                                "reencrypted",
                                f"records:{report.total}",
                                f"resealed:{report.resealed}",
                                f"unbound-before:{report.unbound}",
                            ],
                        },
                    ],
                )
            for key_id, n in sorted(report.by_key.items()):
                mark = " (primary)" if key_id == primary else ""
                out.print(f"{path}: {key_id}{mark}: {n} record(s)")
            if report.unbound:
                out.print(
                    f"{path}: {report.unbound} record(s) not bound to their collection (written before "
                    "bindings: a copy of one into another collection would open there)"
                    + ("; run without --dry-run to bind them" if dry_run else "; re-sealed bound")
                )
            out.print(
                f"{path}: {report.resealed} of {report.total} record(s) re-sealed"
                + (" (dry run)" if dry_run else "")
            )
            if destroy_old:  # counted again from the persisted headers, as `keys destroy` does
                ring, storage = _open_store(keyring, path, tenant)
                in_use.update(reencrypt(storage, keyring=ring, tenant=tenant, dry_run=True).by_key)
        if destroy_old:
            _destroy_retired(keyring, tenant, in_use, audit)


def _destroy_retired(keyring: Path, tenant: str, in_use: Counter[str], audit: _KeyOpAudit) -> None:
    from guardrail.keys import Keyring

    ring = Keyring.open(keyring)
    states = {i.id: i for i in ring.list_keys()}
    destroyed = []
    for key_id in ring.tenant_key_ids(tenant):
        info = states[key_id]
        if info.state != "decrypt-only":
            continue
        if in_use[key_id]:
            out.print(f"kept {key_id} (version {info.version}): {in_use[key_id]} record(s) still use it")
            continue
        ring.destroy(key_id, in_use=0)
        labels = ["retired", f"version-{info.version}"]
        audit.record("key.shred", "D", resources=[{"type": "key", "id": key_id, "labels": labels}])
        destroyed.append(key_id)
        out.print(f"destroyed {key_id} (version {info.version}): data sealed under it no longer opens")
    if not destroyed:
        out.print("no retired version to destroy")


@keys_app.command("destroy")
def keys_destroy(
    key_id: Annotated[str, typer.Argument(help="The id of a decrypt-only key version.")],
    keyring: KeyringOpt,
    store: StoreOpt,
    tenant: TenantOpt = "default",
    audit_log: AuditOpt = None,
    actor: ActorOpt = None,
    request_ref: RequestRefOpt = None,
) -> None:
    """Destroy a retired key version, only once no record of the store uses it."""
    from guardrail.llama_index.storage import reencrypt

    ring, storage = _open_store(keyring, store, tenant)
    in_use = reencrypt(storage, keyring=ring, tenant=tenant, dry_run=True).by_key.get(key_id, 0)
    with _KeyOpAudit(
        audit_log, ring, actor, request_ref
    ) as audit:  # opened first: no destruction it cannot record
        ring.destroy(key_id, in_use=in_use)
        audit.record("key.shred", "D", resources=[{"type": "key", "id": key_id, "labels": ["retired"]}])
    out.print(f"destroyed key {key_id}")


@keys_app.command("shred")
def keys_shred(
    keyring: KeyringOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Shred a whole tenant.")] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Shred one data subject (of --tenant, default 'default').")
    ] = None,
    audit_log: AuditOpt = None,
    actor: ActorOpt = None,
    request_ref: RequestRefOpt = None,
) -> None:
    """Destroy keys: every record sealed under them becomes unreadable, backups included."""
    from guardrail.keys import Keyring

    if (tenant is None) == (subject is None) and subject is None:
        raise ConfigError("give --tenant T, or --subject S (with --tenant T if not 'default')")
    ring = Keyring.open(keyring)
    with _KeyOpAudit(
        audit_log, ring, actor, request_ref
    ) as audit:  # opened first: no shredding it cannot record
        destroyed = (
            ring.shred_subject(tenant or "default", subject) if subject else ring.shred_tenant(str(tenant))
        )
        keys = [{"type": "key", "id": k, "labels": ["shredded"]} for k in destroyed]
        audit.record("key.shred", "D", resources=keys)
    out.print(f"destroyed {len(destroyed)} key(s): {', '.join(destroyed) or '-'}")


@app.command()
def erase(
    subject: Annotated[
        str, typer.Option("--subject", help="The data-subject id (as in metadata 'subjects').")
    ],
    keyring: KeyringOpt,
    store: Annotated[
        list[Path] | None,
        typer.Option("--store", "-s", help="A persisted encrypted storage directory (repeatable)."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The tenant (default: the keyring's only tenant).")
    ] = None,
    audit_log: AuditOpt = None,
    vault: Annotated[
        Path | None, typer.Option("--vault", help="Token vault (default: KEYRING/vault-TENANT.sqlite).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who performs the erasure (default: your OS user).")
    ] = None,
    request_ref: Annotated[
        str | None,
        typer.Option("--request-ref", help="Your reference of the request (a ticket id, not a name)."),
    ] = None,
    certificate: Annotated[
        Path | None,
        typer.Option("--certificate", help="Write the signed erasure certificate (JSON; needs --audit-log)."),
    ] = None,
) -> None:
    """GDPR Art. 17 erasure: delete the subject's nodes, records and vault tokens, destroy their key,
    list the dataset exports that included them, audit it and (with --certificate) certify it."""
    from guardrail.erasure import erase_subject
    from guardrail.keys import Keyring
    from guardrail.tenants import default_tenant

    ring = Keyring.open(keyring)
    tenant = tenant or default_tenant(ring, audit_log)
    if not store and vault is None and not (ring.directory / f"vault-{tenant}.sqlite").exists():
        raise ConfigError("nothing to erase from: give --store DIR (repeatable) and/or --vault FILE")
    from guardrail.erasure import subject_trace

    known, elsewhere = subject_trace(ring, subject, tenant, audit_log)
    if not known and elsewhere:  # a wrong tenant: erasing here would certify an erasure of nothing
        raise ConfigError(
            f"no key or event of this subject under tenant {tenant!r}; the subject has "
            + ", ".join(elsewhere)
            + ": pass --tenant accordingly"
        )
    result = erase_subject(
        subject,
        keyring=ring,
        tenant=tenant,
        stores=store or (),
        vault=vault,
        audit_log=audit_log,
        actor=actor,
        request_ref=request_ref,
        certificate=certificate,
        source="cli",
    )
    out.print(
        f"erased subject ref {result.subject_ref}: {result.vector_nodes_deleted} node(s) deleted from "
        f"the vector store, {result.docstore_records_deleted} docstore record(s) deleted, "
        f"{len(result.keys_destroyed)} key(s) destroyed, {result.vault_tokens_deleted} vault token(s) "
        f"deleted ({result.vault_tokens_shared} kept: shared with other subjects)",
        markup=False,
    )
    for d in result.datasets:
        out.print(
            f"dataset export {d['dataset']} ({d['exported_at']}, manifest {d['manifest'] or '-'}) included "
            "the subject: delete or regenerate it",
            markup=False,
        )
    if known and not (result.vector_nodes_deleted or result.keys_destroyed or result.vault_tokens_deleted):
        err.print(
            "note: nothing left to delete: the subject was erased before (its key is destroyed)"
            if ring.subject_key_ids(tenant, subject)
            else "note: nothing about this subject was found in the given stores and vault",
            markup=False,
        )
    if not known and not (result.vector_nodes_deleted or result.docstore_records_deleted):
        err.print(
            f"warning: nothing about this subject under tenant {tenant!r} (no key, no event, nothing "
            "deleted): check the subject id as the documents' metadata spells it",
            markup=False,
        )
    if audit_log is None:
        err.print("warning: no --audit-log: the erasure is not recorded", markup=False)
    if result.certificate is not None:
        out.print(f"certificate: {result.certificate}", markup=False)


@app.command("verify-certificate")
def verify_certificate_command(
    certificate: Annotated[
        Path, typer.Argument(help="An erasure certificate (guardrail erase --certificate).")
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="The audit log's verifier key (audit.pub; use your off-host copy)."
        ),
    ] = None,
    audit_log: Annotated[
        Path | None, typer.Option("--audit-log", help="The audit log directory (its audit.pub is used).")
    ] = None,
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring",
            "-k",
            help="Also check that every key the certificate lists as destroyed is still destroyed in this "
            "keyring (a keyring restored from an older backup brings erased keys back).",
        ),
    ] = None,
) -> None:
    """Check an erasure certificate: its signature, its audit event's inclusion proof under a signed
    checkpoint, and that the proven dsar.erasure event carries the certified counts and keys (with
    --keyring: that those keys are still destroyed). Exit 0 when it holds, 1 when it does not."""
    from guardrail.erasure import verify_certificate

    if (public_key is None) == (audit_log is None):
        raise ConfigError("give --public-key FILE (the audit log's audit.pub) or --audit-log DIR")
    key_file = public_key if public_key is not None else Path(str(audit_log)) / "audit.pub"
    try:
        key_text = key_file.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{key_file}: cannot read the verifier key ({exc.strerror})") from None
    if not certificate.is_file():
        raise ConfigError(f"{certificate}: no such certificate file")
    if keyring is not None:
        # the keyring's own audit key, never an audit.pub whoever writes the log directory can replace
        from guardrail.audit.note import NoteError, VerifierKey
        from guardrail.audit.verify import keyring_audit_keys

        raw, _ = keyring_audit_keys(_open_keyring(keyring, "checking the destroyed keys"))
        try:
            given = VerifierKey.parse(key_text.strip())
        except NoteError:
            raise ConfigError(f"{key_file}: not a verifier key") from None
        if given.public_key != raw:
            err.print(
                f"{certificate}: NOT VERIFIED ({key_file} is not the audit key of {keyring}: a replaced "
                "audit.pub, or another log's key)",
                markup=False,
            )
            raise typer.Exit(1)
    if verify_certificate(certificate, key_text):
        body = json.loads(certificate.read_text("utf-8"))["certificate"]
        if keyring is not None:
            from guardrail.erasure import destroyed_keys_state

            states = destroyed_keys_state(certificate, _open_keyring(keyring, "checking the destroyed keys"))
            back = [i for i, state in states.items() if state == "usable"]
            if back:
                err.print(
                    f"{certificate}: NOT HOLDING: the signature verifies, but {len(back)} key(s) it lists "
                    f"as destroyed are usable again in {keyring} ({', '.join(back)}): the keyring was "
                    "restored from a backup taken before the erasure; erase the subject again "
                    "(guardrail erase) and destroy that backup",
                    markup=False,
                )
                raise typer.Exit(1)
            unknown = [i for i, state in states.items() if state == "unknown"]
            if unknown:
                err.print(
                    f"warning: {keyring} never held key(s) {', '.join(unknown)}: not the keyring that "
                    "erased the subject, so their destruction is not checked",
                    markup=False,
                )
        out.print(
            f"certificate verified: subject ref {body['subject_ref']}, erased {body['erased_at']}, request "
            f"{body.get('request_ref') or '-'}, {body['deleted']['vector_nodes']} node(s), "
            f"{len(body['keys_destroyed'])} key(s) destroyed",
            markup=False,
        )
        return
    err.print(
        f"{certificate}: NOT VERIFIED (the signature, the inclusion proof or the certified figures do not "
        "match this audit key)",
        markup=False,
    )
    raise typer.Exit(1)


@retention_app.command("apply")
def retention_apply(
    keyring: KeyringOpt,
    policy: PolicyOpt,
    audit_log: Annotated[
        Path,
        typer.Option("--audit-log", envvar="GUARDRAIL_AUDIT_LOG", help="The log (ingestion times; audited)."),
    ],
    store: Annotated[
        list[Path] | None, typer.Option("--store", "-s", help="A persisted encrypted store (repeatable).")
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="The tenant (default: the keyring's only tenant).")
    ] = None,
    vault: Annotated[
        Path | None, typer.Option("--vault", help="Token vault (default: KEYRING/vault-TENANT.sqlite).")
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoints", help="A directory of dataset outputs whose stale checkpoints to delete."
        ),
    ] = None,
    actor: Annotated[
        str | None, typer.Option("--actor", help="Who applies it (default: your OS user).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what is past retention; delete nothing.")
    ] = False,
) -> None:
    """Delete chunks, vault entries and dataset checkpoints older than the policy's retention; audited."""
    from guardrail.keys import Keyring
    from guardrail.retention import apply_retention
    from guardrail.tenants import default_tenant

    ring = Keyring.open(keyring)
    result = apply_retention(
        keyring=ring,
        policy=policy,
        tenant=tenant or default_tenant(ring, audit_log),
        audit_log=audit_log,
        stores=store or (),
        vault=vault,
        checkpoint_dirs=checkpoints or (),
        actor=actor,
        dry_run=dry_run,
    )
    verb = "past retention (dry run, nothing deleted)" if dry_run else "deleted"
    out.print(
        f"{verb}: {result.chunks} chunk(s), {result.vault_tokens} vault token(s), "
        f"{result.checkpoints} dataset checkpoint file(s); "
        f"{len(result.keys_shredded)} subject key(s) {'to shred' if dry_run else 'shredded'}",
        markup=False,
    )


# --------------------------------------------------------------------------- reidentify


@app.command()
def reidentify(
    tokens: Annotated[list[str], typer.Argument(help="Vault tokens, e.g. '<PERSON_7Q2K9X>'.")],
    keyring: KeyringOpt,
    principal: Annotated[str, typer.Option("--principal", help="Your user id (recorded in the audit log).")],
    role: Annotated[list[str], typer.Option("--role", help="Your role; repeatable.")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why (the policy must allow it).")],
    audit_log: Annotated[
        Path,
        typer.Option("--audit-log", envvar="GUARDRAIL_AUDIT_LOG", help="Every re-identification is audited."),
    ],
    policy: PolicyOpt = "hipaa-safe-harbor",
    tenant: TenantOpt = "default",
    vault: Annotated[
        Path | None, typer.Option("--vault", help="Token vault (default: KEYRING/vault-TENANT.sqlite).")
    ] = None,
) -> None:
    """Show the values behind vault tokens, for principals the policy allows; audited (allowed or denied)."""
    from guardrail.access import AccessDenied, Principal
    from guardrail.datasets.reidentify import reidentify as run
    from guardrail.errors import DataErased
    from guardrail.keys import Keyring

    who = Principal(id=principal, roles=role, purpose=purpose)
    try:
        values = run(
            tokens,
            keyring=Keyring.open(keyring),
            principal=who,
            audit_log=audit_log,
            policy=policy,
            tenant=tenant,
            vault=vault,
        )
    except (AccessDenied, DataErased) as exc:
        err.print(f"denied: {exc} (the attempt was recorded in the audit log)", markup=False)
        raise typer.Exit(1) from None
    for token, value in values.items():
        sys.stdout.write(f"{token}\t{value}\n")  # tab-separated for scripts (rich would expand the tab)


# --------------------------------------------------------------------------- demo


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the demo's files.")] = Path(
        "demo-output"
    ),
) -> None:
    """Run guardrail on the bundled sample data and show what it found and redacted."""
    from guardrail.demo import run_demo

    run_demo(output, console=out)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app on ``argv`` (default: the command line), mapping guardrail errors to one
    line and an exit code; always ends with :class:`SystemExit`."""
    args = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in args or os.environ.get("GUARDRAIL_DEBUG") == "1"
    try:
        app(args=args, prog_name="guardrail")
    except GuardrailError as exc:
        if _state["debug"]:
            raise
        from guardrail.db import scrub_passwords

        code = next(c for t, c in EXIT_CODES if isinstance(exc, t))
        # a location the user typed may carry a password (postgresql://u:PW@...): never echo it
        err.print(scrub_passwords(f"error: {exc}"), markup=False)
        sys.exit(code)
    except KeyboardInterrupt:
        err.print("interrupted: no output was written")
        sys.exit(130)


if __name__ == "__main__":
    main()
