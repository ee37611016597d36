"""``guardrail canary``: make canary documents, list them, check model outputs for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

canary_app = typer.Typer(
    help="Canaries (honeytokens): make synthetic records with unique fake identifiers, and check outputs "
    "for them.",
    no_args_is_help=True,
)
_out = Console(highlight=False, soft_wrap=True, emoji=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

KeyringOpt = Annotated[
    Path,
    typer.Option(
        "--keyring", "-k", envvar="GUARDRAIL_KEYRING", help="The keyring directory (or GUARDRAIL_KEYRING)."
    ),
]


@canary_app.command("make")
def canary_make(
    kind: Annotated[str, typer.Option("--kind", help="note (clinical note), chat (transcript) or record.")],
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=100_000, help="How many canaries.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output file: .txt or .jsonl (note), .jsonl (chat), .jsonl or .csv (record).",
        ),
    ],
    keyring: KeyringOpt,
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="The tenant whose key seals the values.")] = (
        "default"
    ),
    policy: Annotated[
        str, typer.Option("--policy", "-p", help="The policy whose detector must find every value.")
    ] = "default",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    audit_log: Annotated[
        Path | None,
        typer.Option("--audit-log", envvar="GUARDRAIL_AUDIT_LOG", help="Record a canary.make event here."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the ids as JSON.")] = False,
) -> None:
    """Write N synthetic documents with unique fake identifiers and register them in the keyring.

    The file holds the only clear copy of the values: plant it (ingest it, add it to a training set),
    then delete or lock it away. The keyring keeps keyed digests and sealed values only."""
    from guardrail.canaries import make_canaries
    from guardrail.keys import Keyring

    if kind not in ("note", "chat", "record"):
        from guardrail.errors import ConfigError

        raise ConfigError(f"--kind {kind!r} is not one of note, chat, record")
    made = make_canaries(
        kind,  # type: ignore[arg-type]
        count,
        output,
        keyring=Keyring.open(keyring),
        tenant=tenant,
        policy=policy,
        force=force,
        audit_log=audit_log,
    )
    if json_out:
        _out.print(
            json.dumps({"output": str(made.output), "kind": kind, "ids": list(made.ids)}), markup=False
        )
        return
    for canary_id in made.ids:
        _out.print(canary_id, markup=False)
    _err.print(
        f"made {len(made.ids)} {kind} canar{'y' if len(made.ids) == 1 else 'ies'} -> {made.output} "
        f"(registered in {keyring})",
        markup=False,
    )


@canary_app.command("list")
def canary_list(
    keyring: KeyringOpt,
    json_out: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """The registered canaries: id, kind, tenant, created, entity types (never values)."""
    from guardrail.canaries import CanaryRegistry
    from guardrail.keys import Keyring

    for entry in CanaryRegistry(Keyring.open(keyring)).describe():
        if json_out:
            _out.print(json.dumps(entry, sort_keys=True), markup=False)
        else:
            _out.print(
                f"{entry['id']}  {entry['kind']:<6}  {entry['tenant']}  {entry['created_at']}  "
                f"{', '.join(entry['entities'])}",
                markup=False,
            )


@canary_app.command("check")
def canary_check(
    file: Annotated[Path, typer.Argument(help="Model outputs, one per line (.txt, .jsonl), or - for stdin.")],
    keyring: KeyringOpt,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per finding.")] = False,
    audit_log: Annotated[
        Path | None,
        typer.Option(
            "--audit-log", envvar="GUARDRAIL_AUDIT_LOG", help="Record each canary found (canary.tripped)."
        ),
    ] = None,
) -> None:
    """Scan model outputs for canary values; exit 1 when one is found (prints canary ids and lines,
    never the values)."""
    import sys

    from guardrail.canaries import audit_check, check_file, check_lines
    from guardrail.keys import Keyring

    ring = Keyring.open(keyring)
    name = "<stdin>" if str(file) == "-" else str(file)
    found = check_lines(sys.stdin, keyring=ring) if str(file) == "-" else check_file(file, keyring=ring)
    for hit in found:
        if json_out:
            record = {"line": hit.line, "canary": hit.canary, "entities": list(hit.entities)}
            _out.print(json.dumps(record), markup=False)
        else:
            _out.print(f"{name}:{hit.line}: canary {hit.canary} ({', '.join(hit.entities)})", markup=False)
    if found and audit_log is not None:
        audit_check(audit_log, ring, found, source=Path(name).name)
    if found:
        canaries = len({h.canary for h in found})
        lines = len({h.line for h in found})
        _err.print(
            f"{canaries} canar{'y' if canaries == 1 else 'ies'} found on {lines} line(s) of {name}",
            markup=False,
        )
        raise typer.Exit(1)
    _err.print(f"no canary found in {name}", markup=False)
