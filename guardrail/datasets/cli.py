"""``guardrail manifest``: verify a signed dataset manifest.

``verify`` is a verdict and exits by itself: 0 verified, 1 verification failed (the check that failed is
printed). Bad input (an unreadable manifest or public key, a missing output) raises
:class:`~guardrail.errors.ConfigError`, which ``guardrail.cli.main`` maps to exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guardrail.datasets.manifest import (
    ManifestError,
    ManifestVerificationError,
    load_public_key,
    verify_manifest,
)

__all__ = ["EXIT_FAILED", "manifest_app"]

EXIT_FAILED = 1

manifest_app = typer.Typer(help="Verify signed dataset manifests.", no_args_is_help=True)


@manifest_app.callback()
def _group() -> None:
    """Verify signed dataset manifests (OUTPUT.manifest.json)."""


@manifest_app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="The OUTPUT.manifest.json file.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", help="The output file it describes (default: FILE minus .manifest.json)."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="The expected signer: a verifier key file (e.g. audit.pub), base64 or raw 32-byte key.",
        ),
    ] = None,
    keyring: Annotated[
        Path | None,
        typer.Option(
            "--keyring",
            "-k",
            help="The expected signer is this keyring's audit key (what redaction runs sign with).",
        ),
    ] = None,
) -> None:
    """Check the manifest's signature, that it is unmodified, and the output file's SHA-256."""
    key: bytes | None = None
    if public_key is not None:
        try:
            raw = public_key.read_bytes()
        except OSError:
            raise ManifestError(f"{public_key}: cannot read the public key file") from None
        key = load_public_key(raw)
    if keyring is not None:
        from guardrail.audit.verify import keyring_audit_keys

        own, _ = keyring_audit_keys(keyring)
        if key is not None and key != own:
            raise ManifestError(f"{public_key}: not the audit key of {keyring}: give one of them")
        key = own
    try:
        result = verify_manifest(file, output_path=output, public_key=key)
    except ManifestVerificationError as exc:
        typer.echo(f"FAILED ({exc.check}): {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    m = result.manifest
    typer.echo(f"ok: {result.manifest_path}")
    typer.echo(f"  signature: valid (key {result.key_id})")
    if not result.key_trusted:
        typer.echo("  note: checked against the key in the file; pass --public-key to check the signer")
    typer.echo(f"  output: {result.output_path} sha256 matches")
    typer.echo(
        f"  records: {m.input_records} in, {m.output_records} out, {m.rejects} rejected; "
        f"residual findings: {m.residual}; policy {m.policy.id}@{m.policy.version}"
    )
