"""Dataset manifests (signed, verifiable) and dataset cards: evidence for EU AI Act Art. 10(2).

A manifest records what a redaction run did to a dataset: SHA-256 of the input and the output, record
counts, PII findings per entity type before and after, residual findings, rejected records, the policy
(id, version, sha256), the tool version, the times, the format, fields and token method. Counts only:
never a value, a token or a key.

It is signed with Ed25519 over its RFC 8785 canonical bytes (:func:`guardrail.audit.canonical.canonicalize`)
and written beside the output as ``OUTPUT.manifest.json``::

    {"manifest": {...}, "signature": {"algorithm": "Ed25519", "public_key": <base64 raw key>,
     "key_id": <hex>, "value": <base64 signature>}}

:func:`verify_manifest` checks the signature, that the manifest is unmodified, and that the output file's
SHA-256 matches. Without ``public_key`` the signature is checked against the key embedded in the file,
which proves the manifest was not modified after signing but not *who* signed it: pass the expected
public key (e.g. the audit log's ``audit.pub`` when the manifest was signed with the audit checkpoint
seed) for that.

Errors::

    ConfigError
    └── ManifestError                     bad input: unreadable or malformed manifest, bad public key
        └── ManifestVerificationError     verification failed; ``check`` names what (never the data)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guardrail.audit.canonical import CanonicalizationError, canonicalize
from guardrail.audit.note import NoteError, VerifierKey, public_key_of
from guardrail.errors import ConfigError
from guardrail.io import atomic_output

__all__ = [
    "DEFAULT_KNOWN_GAPS",
    "MANIFEST_SCHEMA",
    "MANIFEST_SUFFIX",
    "Manifest",
    "ManifestError",
    "ManifestVerificationError",
    "PolicyRef",
    "SignedManifest",
    "VerifyResult",
    "dataset_card",
    "load_public_key",
    "manifest_path_for",
    "sha256_file",
    "verify_manifest",
]

MANIFEST_SCHEMA = "guardrail.dataset-manifest/1"
MANIFEST_SUFFIX = ".manifest.json"
_ALGORITHM = "Ed25519"
_KEY_NAME = "guardrail-dataset-manifest"  # names the key only in the key id (C2SP key-id derivation)

DEFAULT_KNOWN_GAPS: tuple[str, ...] = (
    "Only the selected text fields were scanned; other fields, images, audio and biometric data "
    "(fingerprints, voice prints, face photographs) were not.",
    "Automated detection recall is not 100%: residual personal data may remain; a redaction pass is "
    "evidence, not a certification.",
    "Pseudonymised data remain personal data under GDPR (Art. 4(5), Recital 26); they are not anonymous.",
    "Quasi-identifiers in combination (rare conditions, small places, dates) may still single people out.",
)

Check = Literal["manifest", "public_key", "signature", "output_sha256"]


class ManifestError(ConfigError):
    """A manifest or public key cannot be read: missing, not JSON, or not a guardrail manifest."""


class ManifestVerificationError(ManifestError):
    """A manifest failed verification. ``check`` is ``public_key``, ``signature`` or ``output_sha256``."""

    def __init__(self, check: Check, message: str) -> None:
        super().__init__(message)
        self.check = check

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.check, str(self)))


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """The policy a run used: its id (name), version and the SHA-256 of its text."""

    id: str
    version: str
    sha256: str


def _tool_version() -> str:
    from guardrail import __version__

    return __version__


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ConfigError("manifest times must be timezone-aware (use datetime.now(UTC))")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes; for a directory (a saved Hugging Face dataset), of a listing
    ``"<sha256>  <relative path>\\n"`` of its files, sorted by path, after the line ``guardrail-tree/1``.

    Raises:
        ManifestError: the file cannot be read.
    """
    if Path(path).is_dir():
        root = Path(path)
        listing = ["guardrail-tree/1\n"]
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            listing.append(f"{sha256_file(file)}  {file.relative_to(root).as_posix()}\n")
        return hashlib.sha256("".join(listing).encode("utf-8")).hexdigest()
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it ({exc.strerror})") from None
    return digest.hexdigest()


def manifest_path_for(output_path: str | Path) -> Path:
    """``OUTPUT.manifest.json`` for an output file."""
    output_path = Path(output_path)
    return output_path.with_name(output_path.name + MANIFEST_SUFFIX)


def _counts(name: str, value: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, count in value.items():
        if not isinstance(key, str) or type(count) is not int or count < 0:
            raise ManifestError(f"manifest field {name!r}: counts are entity type -> non-negative int")
        out[key] = count
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Manifest:
    """What one redaction run did to a dataset. Counts and hashes only; build it with :meth:`create`.

    Raises:
        ManifestError: a count is negative or a field has the wrong type.
    """

    input_sha256: str
    output_sha256: str
    input_records: int
    output_records: int
    findings_before: Mapping[str, int]
    findings_after: Mapping[str, int]
    residual: int
    rejects: int
    policy: PolicyRef
    format: str
    fields: tuple[str, ...]
    token_method: str
    started_at: str
    finished_at: str
    tool_version: str = field(default_factory=_tool_version)
    schema: str = MANIFEST_SCHEMA

    def __post_init__(self) -> None:
        for name in ("input_records", "output_records", "residual", "rejects"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ManifestError(f"manifest field {name!r} must be a non-negative integer")
        for name in ("input_sha256", "output_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
                raise ManifestError(f"manifest field {name!r} must be a lower-case hex SHA-256")
        # copies, sorted: the caller's dicts are not shared and the JSON is stable
        object.__setattr__(self, "findings_before", _counts("findings_before", self.findings_before))
        object.__setattr__(self, "findings_after", _counts("findings_after", self.findings_after))
        object.__setattr__(self, "fields", tuple(self.fields))
        if self.schema != MANIFEST_SCHEMA:
            raise ManifestError(f"not a {MANIFEST_SCHEMA} manifest (schema {self.schema!r})")

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    @classmethod
    def create(
        cls,
        *,
        input_path: str | Path,
        output_path: str | Path,
        input_records: int,
        output_records: int,
        findings_before: Mapping[str, int],
        findings_after: Mapping[str, int],
        residual: int,
        rejects: int,
        policy: PolicyRef | Any,
        format: str,
        fields: Sequence[str],
        token_method: str,
        started_at: datetime,
        clock: Callable[[], datetime] = _utc_now,
    ) -> Manifest:
        """A manifest for a finished run: hashes both files and takes ``finished_at`` from ``clock``.

        Args:
            policy: a :class:`PolicyRef` or a :class:`~guardrail.policy.Policy` (name, version, sha256).
            started_at: when the run started (timezone-aware).
            clock: returns the current time (injectable for tests).

        Raises:
            ManifestError: a file cannot be read, or a count is invalid.
            ConfigError: a time is not timezone-aware.
        """
        ref = (
            policy if isinstance(policy, PolicyRef) else PolicyRef(policy.name, policy.version, policy.sha256)
        )
        return cls(
            input_sha256=sha256_file(input_path),
            output_sha256=sha256_file(output_path),
            input_records=input_records,
            output_records=output_records,
            findings_before=findings_before,
            findings_after=findings_after,
            residual=residual,
            rejects=rejects,
            policy=ref,
            format=format,
            fields=tuple(fields),
            token_method=token_method,
            started_at=_iso(started_at),
            finished_at=_iso(clock()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest as a JSON object."""
        return {
            "schema": self.schema,
            "tool_version": self.tool_version,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "input_sha256": self.input_sha256,
            "output_sha256": self.output_sha256,
            "input_records": self.input_records,
            "output_records": self.output_records,
            "findings_before": dict(self.findings_before),
            "findings_after": dict(self.findings_after),
            "residual": self.residual,
            "rejects": self.rejects,
            "policy": {"id": self.policy.id, "version": self.policy.version, "sha256": self.policy.sha256},
            "format": self.format,
            "fields": list(self.fields),
            "token_method": self.token_method,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Parse :meth:`to_dict` output.

        Raises:
            ManifestError: a field is missing, unexpected or of the wrong type.
        """
        if not isinstance(data, dict):
            raise ManifestError("the manifest is not a JSON object")
        expected = set(_FIELD_TYPES)
        missing, extra = sorted(expected - set(data)), sorted(set(data) - expected)
        if missing or extra:
            what = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra)}"
            raise ManifestError(f"manifest fields do not match {MANIFEST_SCHEMA}: {what}")
        for name, kind in _FIELD_TYPES.items():
            if not isinstance(data[name], kind) or isinstance(data[name], bool):
                raise ManifestError(f"manifest field {name!r} must be {kind.__name__}")
        policy = data["policy"]
        if set(policy) != {"id", "version", "sha256"} or not all(isinstance(v, str) for v in policy.values()):
            raise ManifestError("manifest field 'policy' must be {id, version, sha256} strings")
        if not all(isinstance(f, str) for f in data["fields"]):
            raise ManifestError("manifest field 'fields' must be a list of strings")
        values = {k: v for k, v in data.items() if k not in ("policy", "fields")}
        return cls(
            **values,
            policy=PolicyRef(policy["id"], policy["version"], policy["sha256"]),
            fields=tuple(data["fields"]),
        )

    def canonical(self) -> bytes:
        """The RFC 8785 canonical bytes (what is signed)."""
        return canonicalize(self.to_dict())

    def to_json(self) -> str:
        """The canonical JSON text."""
        return self.canonical().decode("utf-8")

    def sign(self, signing_seed: bytes) -> SignedManifest:
        """Sign with an Ed25519 private seed (32 bytes; e.g. ``Keyring.hmac_key("audit-checkpoint")``,
        so the audit log's ``audit.pub`` also verifies the manifest).

        Raises:
            ConfigError: the seed is not 32 bytes.
        """
        if not isinstance(signing_seed, bytes) or len(signing_seed) != 32:
            raise ConfigError("the signing seed must be 32 bytes (an Ed25519 private seed)")
        signature = Ed25519PrivateKey.from_private_bytes(signing_seed).sign(self.canonical())
        return SignedManifest(self, signature, public_key_of(signing_seed))


_FIELD_TYPES: dict[str, type] = {
    "schema": str,
    "tool_version": str,
    "started_at": str,
    "finished_at": str,
    "input_sha256": str,
    "output_sha256": str,
    "input_records": int,
    "output_records": int,
    "findings_before": dict,
    "findings_after": dict,
    "residual": int,
    "rejects": int,
    "policy": dict,
    "format": str,
    "fields": list,
    "token_method": str,
}


def _key_id(public_key: bytes) -> str:
    return VerifierKey(_KEY_NAME, public_key).key_id.hex()


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest, its Ed25519 signature over the canonical bytes, and the signer's raw public key."""

    manifest: Manifest
    signature: bytes
    public_key: bytes

    @property
    def key_id(self) -> str:
        """A short hex id of the public key (first 4 bytes of its C2SP key hash)."""
        return _key_id(self.public_key)

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON object."""
        return {
            "manifest": self.manifest.to_dict(),
            "signature": {
                "algorithm": _ALGORITHM,
                "public_key": base64.b64encode(self.public_key).decode("ascii"),
                "key_id": self.key_id,
                "value": base64.b64encode(self.signature).decode("ascii"),
            },
        }

    def write(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the manifest file atomically (0600). ``path`` ends in ``.manifest.json``.

        Raises:
            ConfigError: ``path`` does not end in ``.manifest.json``.
            OutputExistsError: it exists and ``force`` is false.
        """
        path = Path(path)
        if not path.name.endswith(MANIFEST_SUFFIX) or path.name == MANIFEST_SUFFIX:
            raise ConfigError(
                f"{path}: a manifest file is named OUTPUT{MANIFEST_SUFFIX} (use manifest_path_for(output))"
            )
        with atomic_output(path, force=force) as f:
            f.write(json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        return path


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """A manifest that verified.

    Attributes:
        key_trusted: the signature was checked against a public key given by the caller; if false, only
            against the key embedded in the file (the manifest is unmodified, but anyone could have signed).
    """

    manifest: Manifest
    manifest_path: Path
    output_path: Path
    key_id: str
    key_trusted: bool


def _b64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise ManifestError(f"the manifest's {what} is not base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ManifestError(f"the manifest's {what} is not valid base64") from None


def load_public_key(data: bytes | str) -> bytes:
    """A raw 32-byte Ed25519 public key from raw bytes, base64 text or a verifier key (``audit.pub``).

    Raises:
        ManifestError: none of these.
    """
    if isinstance(data, bytes) and len(data) == 32:
        return data
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ManifestError("the public key is neither 32 raw bytes nor text") from None
    text = text.strip()
    if text.count("+") >= 2:
        with contextlib.suppress(NoteError):  # plain base64 may contain '+' too
            return VerifierKey.parse(text).public_key
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise ManifestError(
            "the public key must be a verifier key (name+id+base64, as in audit.pub), base64 of the 32-byte "
            "Ed25519 key, or the 32 raw bytes"
        )
    return raw


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ManifestError(f"the manifest repeats the member {key!r}")
        out[key] = value
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest file") from None
    except (OSError, UnicodeDecodeError):
        raise ManifestError(f"{path}: cannot read it as UTF-8 text") from None
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except ValueError as exc:
        if isinstance(exc, ManifestError):
            raise ManifestError(f"{path}: {exc}") from None
        raise ManifestError(f"{path}: not JSON (line {getattr(exc, 'lineno', '?')})") from None
    if not isinstance(data, dict) or set(data) != {"manifest", "signature"}:
        raise ManifestError(f"{path}: not a guardrail manifest (expected 'manifest' and 'signature')")
    return data


def verify_manifest(
    path: str | Path, *, output_path: str | Path | None = None, public_key: bytes | str | None = None
) -> VerifyResult:
    """Verify a manifest file: its signature, that it is unmodified, and the output file's SHA-256.

    Args:
        path: the ``OUTPUT.manifest.json`` file.
        output_path: the output it describes (default: ``path`` without ``.manifest.json``).
        public_key: the expected signer (see :func:`load_public_key`); without it the embedded key is used.

    Raises:
        ManifestVerificationError: the signer is not ``public_key``, the signature does not verify (the
            manifest was modified), or the output's SHA-256 differs (the output was modified).
        ManifestError: the manifest, the public key or the output cannot be read.
    """
    path = Path(path)
    if output_path is None:
        if not path.name.endswith(MANIFEST_SUFFIX) or path.name == MANIFEST_SUFFIX:
            raise ManifestError(f"{path}: not named OUTPUT{MANIFEST_SUFFIX}; give the output path")
        output_path = path.with_name(path.name[: -len(MANIFEST_SUFFIX)])
    output_path = Path(output_path)
    data = _read(path)
    sig = data["signature"]
    if not isinstance(sig, dict) or sig.get("algorithm") != _ALGORITHM:
        raise ManifestError(f"{path}: the signature is not an {_ALGORITHM} signature block")
    embedded = _b64(sig.get("public_key"), "public key")
    signature = _b64(sig.get("value"), "signature")
    if len(embedded) != 32:
        raise ManifestError(f"{path}: the embedded public key is not 32 bytes")
    expected = load_public_key(public_key) if public_key is not None else None
    if expected is not None and expected != embedded:
        raise ManifestVerificationError(
            "public_key",
            f"{path}: public key mismatch: signed by key {_key_id(embedded)}, expected {_key_id(expected)}",
        )
    try:
        message = canonicalize(data["manifest"])
    except CanonicalizationError:
        raise ManifestVerificationError(
            "signature", f"{path}: signature invalid (the manifest is not canonicalisable)"
        ) from None
    try:
        Ed25519PublicKey.from_public_bytes(embedded).verify(signature, message)
    except InvalidSignature:
        raise ManifestVerificationError(
            "signature", f"{path}: signature invalid: the manifest was modified or signed by another key"
        ) from None
    manifest = Manifest.from_dict(data["manifest"])
    actual = sha256_file(output_path)
    if actual != manifest.output_sha256:
        raise ManifestVerificationError(
            "output_sha256",
            f"{output_path}: output SHA-256 mismatch: the file is not the output this manifest describes "
            f"(expected {manifest.output_sha256[:16]}..., found {actual[:16]}...)",
        )
    return VerifyResult(manifest, path, output_path, _key_id(embedded), key_trusted=expected is not None)


# --------------------------------------------------------------------------- dataset card


def _md(text: str) -> str:
    """One line of Markdown-safe text for a table cell or a list item."""
    return " ".join(text.split()).replace("|", "\\|")


def dataset_card(
    manifest: Manifest,
    *,
    source_description: str = "user-supplied",
    known_gaps: Iterable[str] = DEFAULT_KNOWN_GAPS,
    title: str = "Dataset card",
) -> str:
    """A Markdown dataset card in the spirit of EU AI Act Art. 10(2): origin, preparation, PII scan
    results before and after, residual findings, rejects and known gaps. Counts only, never values.
    """
    m = manifest
    entities = sorted(set(m.findings_before) | set(m.findings_after))
    lines = [
        f"# {_md(title)}",
        "",
        f"Prepared by guardrail {_md(m.tool_version)} between {m.started_at} and {m.finished_at}. "
        "Evidence for data governance (EU AI Act Art. 10(2)); the legal assessment stays with the "
        "organisation that uses the data.",
        "",
        "## Origin",
        "",
        f"- Source: {_md(source_description)}.",
        "- The original purpose of collection and the legal basis are not recorded by this tool: the "
        "data provider documents them.",
        f"- Input: {m.input_records} records, {_md(m.format)} format, SHA-256 `{m.input_sha256}`.",
        "",
        "## Preparation",
        "",
        f"- PII detection on the fields: {', '.join(_md(f) for f in m.fields) or '(all text)'}.",
        f"- Redaction / pseudonymisation under policy `{_md(m.policy.id)}` version "
        f"`{_md(m.policy.version)}` (policy SHA-256 `{m.policy.sha256}`).",
        f"- Token method: {_md(m.token_method)}.",
        f"- Output: {m.output_records} records, SHA-256 `{m.output_sha256}`; a signed manifest "
        f"(`OUTPUT{MANIFEST_SUFFIX}`) binds these numbers to the output file.",
        "",
        "## PII scan results",
        "",
        "| entity type | before | after |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {_md(e)} | {m.findings_before.get(e, 0)} | {m.findings_after.get(e, 0)} |" for e in entities
    ]
    if not entities:
        lines.append("| (none found) | 0 | 0 |")
    lines += [
        f"| **total** | {sum(m.findings_before.values())} | {sum(m.findings_after.values())} |",
        "",
        f"- Residual findings (detected again in the output): {m.residual}.",
        f"- Rejected records (not written to the output): {m.rejects}.",
        "",
        "## Known gaps",
        "",
    ]
    lines += [f"- {_md(gap)}" for gap in known_gaps]
    return "\n".join(lines) + "\n"
