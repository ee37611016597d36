"""The ``guardrail`` command line: a thin typer app. Errors are mapped to exit codes in one place
(:func:`main`); tracebacks appear only with ``--debug``."""

from __future__ import annotations

import copy
import csv
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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

app = typer.Typer(
    name="guardrail",
    help="Encryption, PII redaction, access policies and tamper-evident audit for RAG and fine-tuning data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Validate and inspect policy packs.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
from guardrail.audit.cli import audit_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(audit_app, name="audit")
from guardrail.datasets.cli import manifest_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(manifest_app, name="manifest")
from guardrail.reports.cli import report_app  # noqa: E402 - the sub-apps are assembled here

app.add_typer(report_app, name="report")
keys_app = typer.Typer(
    help="Create and manage keyrings: list, rotate, re-encrypt, destroy, shred.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

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
OnErrorOpt = Annotated[
    str, typer.Option("--on-error", help="What to do with a malformed record: stop (default) or skip.")
]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
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
    inputs: Annotated[list[Path], typer.Argument(help="Input files: .txt, .jsonl or .csv.")],
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
) -> None:
    """Count personal data in files, per entity type; optionally a CI gate."""
    from guardrail.io import atomic_output, open_reader
    from guardrail.pipeline import detect_stream
    from guardrail.policy import load_policy

    pol = load_policy(policy)
    mode = _on_error(on_error)
    if findings is not None and any(findings.resolve() == p.resolve() for p in inputs):
        raise ConfigError(f"{findings}: the findings file must not be an input (inputs are never modified)")
    readers = [open_reader(p, fields=list(field or []), on_error=mode) for p in inputs]
    counts: Counter[str] = Counter()
    affected: Counter[str] = Counter()
    records = records_with = 0
    started = time.monotonic()
    sink = atomic_output(findings, force=force) if findings else None
    handle = sink.__enter__() if sink else None
    try:
        for reader in readers:
            for record, per_text in detect_stream(reader, _texts, policy=pol, jobs=jobs):
                records += 1
                entities = set()
                for (path, _), found in zip(record.fields, per_text, strict=True):
                    for f in found:
                        counts[f.entity] += 1
                        entities.add(f.entity)
                    if handle is not None:
                        handle.write(
                            json.dumps(
                                {
                                    "file": str(reader.path),
                                    "record": record.index,
                                    "id": record.id,
                                    "field": _field_name(reader, path),
                                    "spans": [f.to_dict() for f in found],
                                }
                            )
                            + "\n"
                        )
                records_with += bool(entities)
                affected.update(entities)
    except BaseException:
        if sink:
            sink.__exit__(*sys.exc_info())
        raise
    if sink:
        sink.__exit__(None, None, None)
    total = sum(counts.values())
    skipped = sum(r.skipped for r in readers)
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
        err.print(f"gate failed: {total} findings > --fail-on {fail_on}")
        raise typer.Exit(1)


# --------------------------------------------------------------------------- redact


@app.command()
def redact(
    input: Annotated[Path, typer.Argument(help="Input file: .txt, .jsonl or .csv.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (same format).")],
    policy: PolicyOpt = "default",
    field: FieldOpt = None,
    jobs: JobsOpt = 1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    on_error: OnErrorOpt = "stop",
) -> None:
    """Write a redacted copy: same records, same order, other fields untouched. Atomic; input untouched."""
    from guardrail.core import Guardrail
    from guardrail.io import atomic_output, open_reader, set_field
    from guardrail.pipeline import detect_stream
    from guardrail.redaction import PseudonymScope

    if output.resolve() == input.resolve():
        raise ConfigError(f"{output}: the output must not be the input (inputs are never modified)")
    if output.is_dir():
        raise ConfigError(f"{output}: is a directory; give a file path for the output")
    gr = Guardrail(policy)
    reader = open_reader(input, fields=list(field or []), on_error=_on_error(on_error))
    if output.exists() and not force:
        raise OutputExistsError(f"{output}: exists; pass --force to overwrite it")
    scope = PseudonymScope()  # one scope for the whole file: the same value gets the same token
    counts: Counter[str] = Counter()
    records = 0
    started = time.monotonic()
    size = input.stat().st_size
    progress = _progress(size)
    with atomic_output(output, force=force) as handle:
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
            if reader.kind == "jsonl":
                handle.write(json.dumps(data, ensure_ascii=False) + "\n")
            elif writer is not None:
                writer.writerow(data)
            else:
                handle.write(data)
            records += 1
            if progress is not None and records % 200 == 0:
                progress(records)
        if writer is not None and not header_written and reader.header:
            writer.writerow(reader.header)
    if progress is not None:
        progress(records, done=True)
    seconds = time.monotonic() - started
    by_entity = ", ".join(f"{e} {n}" for e, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    err.print(
        f"redacted {sum(counts.values())} finding(s) in {records} record(s) in {seconds:.1f}s -> {output}"
        + (f" ({by_entity})" if by_entity else "")
    )
    if reader.skipped:
        err.print(f"skipped {reader.skipped} malformed record(s)")


def _progress(size: int) -> Any:
    """A simple record counter on stderr for long inputs, only when stderr is a terminal."""
    if size < 1_000_000 or not err.is_terminal:
        return None
    from rich.progress import Progress

    bar = Progress(console=err, transient=True)
    task = bar.add_task("redacting", total=None)
    bar.start()

    def update(records: int, *, done: bool = False) -> None:
        bar.update(task, completed=records, description=f"redacting: {records} records")
        if done:
            bar.stop()

    return update


# --------------------------------------------------------------------------- policy


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


def _audit_key_op(audit_log: Path | None, ring: Any, category: str, action: str, **fields: Any) -> None:
    """Append one key-operation event (key.rotate, key.shred, dsar.erasure) when an audit log is given."""
    if audit_log is None:
        return
    from guardrail import __version__
    from guardrail.audit import AuditLog

    with AuditLog(audit_log, signing_key=ring.hmac_key("audit-checkpoint")) as log:
        log.append(
            {
                "event": {"category": category, "action": action, "outcome": "success"},
                "source": {"app": f"guardrail@{__version__}", "component": "cli"},
                **fields,
            }
        )


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
    for col in ("id", "scope", "version", "state", "created"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.id, i.scope, str(i.version), i.state, i.created)
    out.print(table)


def _info(i: Any) -> dict[str, Any]:
    return {"id": i.id, "scope": i.scope, "version": i.version, "state": i.state, "created": i.created}


@keys_app.command("rotate")
def keys_rotate(
    keyring: KeyringOpt,
    tenant: Annotated[
        str | None, typer.Option("--tenant", "-t", help="Rotate one tenant (default: all).")
    ] = None,
    audit_log: AuditOpt = None,
) -> None:
    """Make a new DEK version primary; older versions stay decrypt-only until re-encrypted and destroyed."""
    from guardrail.keys import Keyring

    ring = Keyring.open(keyring)
    rotated = [ring.rotate(tenant)] if tenant else ring.rotate_all()
    keys = [{"type": "key", "id": i.id, "labels": [f"version-{i.version}"]} for i in rotated]
    _audit_key_op(audit_log, ring, "key.rotate", "U", resources=keys)
    for info in rotated:
        out.print(f"new primary {info.id} (version {info.version})")
    if not rotated:
        out.print("no tenant keys to rotate")


def _open_store(keyring: Path, store: Path, tenant: str) -> tuple[Any, Any]:
    from guardrail.crypto import Sealer
    from guardrail.keys import Keyring
    from guardrail.llama_index.storage import load_storage_context

    ring = Keyring.open(keyring)
    return ring, load_storage_context(store, sealer=Sealer(ring), keyring=ring, tenant=tenant)


@keys_app.command("reencrypt")
def keys_reencrypt(
    keyring: KeyringOpt,
    store: StoreOpt,
    tenant: TenantOpt = "default",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count records per key (from headers).")
    ] = False,
) -> None:
    """Re-seal every record of a persisted store under the tenant's primary key, and report progress."""
    from guardrail.llama_index.storage import reencrypt

    ring, storage = _open_store(keyring, store, tenant)
    report = reencrypt(storage, keyring=ring, tenant=tenant, dry_run=dry_run)
    if not dry_run:
        storage.persist(persist_dir=str(store))
    primary = ring.primary_id(tenant)
    for key_id, n in sorted(report.by_key.items()):
        mark = " (primary)" if key_id == primary else ""
        out.print(f"{key_id}{mark}: {n} record(s)")
    out.print(f"{report.resealed} of {report.total} record(s) re-sealed" + (" (dry run)" if dry_run else ""))


@keys_app.command("destroy")
def keys_destroy(
    key_id: Annotated[str, typer.Argument(help="The id of a decrypt-only key version.")],
    keyring: KeyringOpt,
    store: StoreOpt,
    tenant: TenantOpt = "default",
    audit_log: AuditOpt = None,
) -> None:
    """Destroy a retired key version, only once no record of the store uses it."""
    from guardrail.llama_index.storage import reencrypt

    ring, storage = _open_store(keyring, store, tenant)
    in_use = reencrypt(storage, keyring=ring, tenant=tenant, dry_run=True).by_key.get(key_id, 0)
    ring.destroy(key_id, in_use=in_use)
    _audit_key_op(
        audit_log, ring, "key.shred", "D", resources=[{"type": "key", "id": key_id, "labels": ["retired"]}]
    )
    out.print(f"destroyed key {key_id}")


@keys_app.command("shred")
def keys_shred(
    keyring: KeyringOpt,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Shred a whole tenant.")] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Shred one data subject (of --tenant, default 'default').")
    ] = None,
    audit_log: AuditOpt = None,
) -> None:
    """Destroy keys: every record sealed under them becomes unreadable, backups included."""
    from guardrail.keys import Keyring

    if (tenant is None) == (subject is None) and subject is None:
        raise ConfigError("give --tenant T, or --subject S (with --tenant T if not 'default')")
    ring = Keyring.open(keyring)
    destroyed = (
        ring.shred_subject(tenant or "default", subject) if subject else ring.shred_tenant(str(tenant))
    )
    keys = [{"type": "key", "id": k, "labels": ["shredded"]} for k in destroyed]
    _audit_key_op(audit_log, ring, "key.shred", "D", resources=keys)
    out.print(f"destroyed {len(destroyed)} key(s): {', '.join(destroyed) or '-'}")


@app.command()
def erase(
    subject: Annotated[
        str, typer.Option("--subject", help="The data-subject id (as in metadata 'subjects').")
    ],
    keyring: KeyringOpt,
    store: StoreOpt,
    tenant: TenantOpt = "default",
    audit_log: AuditOpt = None,
) -> None:
    """GDPR Art. 17 erasure: delete the subject's nodes from a persisted store and destroy its key."""
    from guardrail.llama_index.storage import erase_subject

    ring, storage = _open_store(keyring, store, tenant)
    report = erase_subject([storage], keyring=ring, tenant=tenant, subject=subject)
    storage.persist(persist_dir=str(store))
    _audit_key_op(
        audit_log,
        ring,
        "dsar.erasure",
        "D",
        subjects=[report.subject_ref],
        resources=[{"type": "key", "id": k, "labels": ["destroyed"]} for k in report.keys_destroyed],
        retrieval={
            "deleted_nodes": report.vector_nodes_deleted,
            "deleted_records": report.docstore_records_deleted,
        },
    )
    out.print(
        f"erased subject ref {report.subject_ref}: {report.vector_nodes_deleted} node(s) deleted from "
        f"the vector store, {report.docstore_records_deleted} docstore record(s) deleted, "
        f"{len(report.keys_destroyed)} key(s) destroyed"
    )


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


def main() -> None:
    """Entry point: run the app, mapping guardrail errors to one line and an exit code."""
    try:
        app()
    except GuardrailError as exc:
        if _state["debug"]:
            raise
        code = next(c for t, c in EXIT_CODES if isinstance(exc, t))
        err.print(f"error: {exc}", markup=False)
        sys.exit(code)
    except KeyboardInterrupt:
        err.print("interrupted: no output was written")
        sys.exit(130)


if __name__ == "__main__":
    main()
