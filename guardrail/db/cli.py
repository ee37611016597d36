"""``guardrail db``: create, upgrade and inspect guardrail's PostgreSQL schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

__all__ = ["db_app"]

db_app = typer.Typer(
    help="Create (init), migrate (upgrade) and inspect (status) guardrail's PostgreSQL schema.",
    no_args_is_help=True,
)
out = Console(highlight=False, soft_wrap=True, emoji=False)

UrlArg = Annotated[
    str,
    typer.Argument(
        help="postgresql://USER@HOST:PORT/DBNAME[?schema=guardrail&sslmode=...] (password: PGPASSWORD or "
        "~/.pgpass, never printed)."
    ),
]


@db_app.command("init")
def init_command(
    location: UrlArg,
    writer: Annotated[
        str | None,
        typer.Option("--writer", help="Grant the application role: append audit rows, keyring state, vault."),
    ] = None,
    reader: Annotated[
        str | None, typer.Option("--reader", help="Grant the auditor role: read the audit tables only.")
    ] = None,
) -> None:
    """Create the schema and its tables (or bring them to the current version) and grant the roles.
    Run it as the schema's owner, not as the application role."""
    from guardrail.db.schema import init

    before, now = init(location, writer=writer, reader=reader)
    what = (
        "created" if before is None else ("already current" if before == now else f"upgraded from {before}")
    )
    granted = ", ".join(f"{k} {v}" for k, v in (("writer", writer), ("reader", reader)) if v)
    out.print(f"schema version {now}: {what}" + (f"; granted {granted}" if granted else ""), markup=False)


@db_app.command("upgrade")
def upgrade_command(location: UrlArg) -> None:
    """Apply the pending migrations (in one transaction; other writers wait)."""
    from guardrail.db.schema import upgrade

    before, now = upgrade(location)
    out.print(f"schema version {now}" + ("" if before == now else f" (was {before})"), markup=False)


@db_app.command("status")
def status_command(location: UrlArg) -> None:
    """The schema version, audit records, checkpoints, keyring states and vault tokens."""
    from guardrail.db.schema import status

    s = status(location)
    if s.version is None:
        out.print(
            f"{s.location}: no guardrail schema {s.schema!r} (create it with `guardrail db init`)",
            markup=False,
        )
        raise typer.Exit(1)
    out.print(
        f"{s.location} schema {s.schema}: version {s.version} (this guardrail: {s.current}); "
        f"{s.records} audit records, {s.checkpoints} checkpoints, {s.keyrings} keyring state(s), "
        f"{s.vault_tokens} vault tokens",
        markup=False,
    )


@db_app.command("adopt-keyring")
def adopt_keyring_command(
    location: UrlArg,
    keyring: Annotated[
        str, typer.Option("--keyring", "-k", help="The keyring directory whose state moves to the database.")
    ],
    refresh_seconds: Annotated[
        float,
        typer.Option(
            "--refresh-seconds",
            help="The staleness bound: each host checks the state at least this often before a release.",
        ),
    ] = 1.0,
) -> None:
    """Move a keyring's mutable state (wrapped DEKs, versions, primaries, tombstones) into PostgreSQL.
    The directory keeps its KEK material and a pointer; copy it to the other hosts."""
    from guardrail.keys_pg import move_state

    ring = move_state(keyring, location, refresh_seconds=refresh_seconds)
    out.print(
        f"keyring state of {keyring} moved to {ring._db.location.display} "
        f"(keyring {ring._db.location.keyring!r}, {len(ring.list_keys())} keys); "
        f"releases see a change at most {refresh_seconds:g} s after it commits",
        markup=False,
    )
