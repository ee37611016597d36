"""Dataset runs: scan a dataset, or redact it into a new one with a re-scan, a signed manifest, a dataset
card, audit events, checkpoints and resume.

A redaction run reads the input as a stream (:func:`~guardrail.datasets.formats.iter_records`), groups
records into chunks, detects PII in the selected texts (in this process, in ``jobs`` worker processes,
or on Ray), redacts them with dataset-wide pseudonyms (:mod:`guardrail.datasets.tokens`), re-scans every
text that changed and counts what is still found outside the replacements (residual findings), then
writes the records, in input order, to a hidden partial file beside the output.

Nothing appears at the output path until the end: the partial file is fsynced; the manifest is made
from its hash and signed with the keyring's audit key; the ``ft.scan`` and ``ft.export`` events are
appended to the audit log (when one is given); the manifest, the card and the rejects file are written;
the partial file is renamed to the output last. A failed audit write, gate or detection publishes
nothing.

JSONL and CSV runs write a checkpoint (counts and positions, never data) every few seconds. An
interrupted run (Ctrl-C, SIGKILL, a crash) continues with ``resume=True``: the partial files are cut
back to the checkpoint and reading starts after the checkpoint's line, so the output is byte-identical
to an uninterrupted run's (pseudonyms are keyed or already in the vault, counters are restored).
Parquet and Hugging Face outputs are not appendable: their runs restart from the beginning.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import getpass
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import re
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from guardrail.canaries.registry import strings_of
from guardrail.datasets.formats import (
    DatasetFormat,
    DatasetReader,
    DatasetRecord,
    FieldRules,
    _csv_header,
    _fsync,
    iter_records,
    open_writer,
)
from guardrail.datasets.manifest import Manifest, dataset_card, manifest_path_for, sha256_file
from guardrail.detection.engine import stable_types_across
from guardrail.errors import ConfigError, GuardrailError, OutputExistsError
from guardrail.findings import Finding
from guardrail.io import set_field
from guardrail.policy import Policy, PseudonymizeOp, load_policy
from guardrail.redaction import PseudonymScope, Redactor, TokenSource

if TYPE_CHECKING:
    from guardrail.audit import AuditLog
    from guardrail.datasets.subjects import SubjectLinker
    from guardrail.keys import Keyring, KeyringLike

__all__ = [
    "CARD_SUFFIX",
    "REJECTS_SUFFIX",
    "FlaggedRecord",
    "GateFailed",
    "OnError",
    "Processed",
    "RecordProcessor",
    "RunResult",
    "ScanResult",
    "describe_flagged",
    "flagged_record",
    "redact_file",
    "rules_for",
    "scan_file",
    "text_redactor",
    "tokens_for",
]

OnError = Literal["stop", "skip", "quarantine"]
Engine = Literal["local", "ray"]
CARD_SUFFIX = ".card.md"
REJECTS_SUFFIX = ".rejects.jsonl"
_CHECKPOINT_SCHEMA = "guardrail.checkpoint/1"
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class FlaggedRecord:
    """A record that counts against a gate: where it is and what was found in it, never the values.

    Attributes:
        line: 1-based line (JSONL, CSV) or row (Parquet, Hugging Face) in the input.
        id: the record's ``id`` field when it is a plain identifier (an int, or up to 64 letters, digits
            and ``._:-``) outside the redacted texts; else ``None``.
        entities: findings per entity type.
    """

    line: int
    id: str | int | None
    entities: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "entities": dict(sorted(self.entities.items()))}

    def describe(self) -> str:
        """``line 12 (id conv-7): PERSON 2, EMAIL_ADDRESS 1``."""
        where = f"line {self.line}" + (f" (id {self.id})" if self.id is not None else "")
        found = ", ".join(
            f"{e} {n}" for e, n in sorted(self.entities.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        return f"{where}: {found}"


_PLAIN_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def flagged_record(record: DatasetRecord, entities: Mapping[str, int]) -> FlaggedRecord:
    """The gate's view of ``record``: its line, a plain ``id`` if it has one, the entity counts."""
    ident = record.data.get("id") if isinstance(record.data, dict) else None
    in_texts = any(path[:1] == ("id",) for path, _ in record.texts)
    plain = (isinstance(ident, int) and not isinstance(ident, bool)) or (
        isinstance(ident, str) and _PLAIN_ID.fullmatch(ident) is not None
    )
    return FlaggedRecord(record.line, ident if plain and not in_texts else None, dict(entities))


def describe_flagged(records: Sequence[FlaggedRecord], *, limit: int = 10) -> str:
    """The first ``limit`` flagged records, one per ``; ``, and how many more there are."""
    shown = "; ".join(r.describe() for r in records[:limit])
    more = len(records) - limit
    return shown + (f"; and {more} more record(s)" if more > 0 else "")


class GateFailed(GuardrailError):
    """More residual findings than ``fail_on`` allows: nothing was published.

    Attributes:
        records: the records with residual findings (line, plain id, entity counts; never values).
    """

    def __init__(self, message: str, records: Sequence[FlaggedRecord] = ()) -> None:
        super().__init__(message)
        self.records = tuple(records)


# --------------------------------------------------------------------------- configuration


def rules_for(
    policy: Policy,
    *,
    fields: Iterable[str] | None = None,
    roles: Iterable[str] | None = None,
    skip: Iterable[str] | None = None,
) -> FieldRules:
    """Field rules from the policy's ``datasets`` section, each overridden when given."""
    d = policy.datasets
    return FieldRules(
        fields=tuple(d.fields if fields is None else fields),
        roles=tuple(d.roles if roles is None else roles),
        skip=tuple(d.skip if skip is None else skip),
    )


def _pseudonymizes(policy: Policy) -> bool:
    settings = policy.redaction
    return isinstance(settings.default, PseudonymizeOp) or any(
        isinstance(op, PseudonymizeOp) for op in settings.operators.values()
    )


def default_vault_path(keyring: KeyringLike, tenant: str) -> Path:
    """``KEYRING/vault-TENANT.sqlite``: the token vault lives with the keys, never with the data."""
    keyring = _keyring(keyring)
    if not _TENANT.fullmatch(tenant):
        raise ConfigError(f"tenant {tenant!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return keyring.directory / f"vault-{tenant}.sqlite"


def tokens_for(
    policy: Policy, keyring: KeyringLike, tenant: str = "default", *, vault: str | Path | None = None
) -> TokenSource:
    """The dataset token source the policy asks for: keyed HMAC tokens, or a token vault.

    Raises:
        VaultError: the vault belongs to another keyring or tenant.
    """
    from guardrail.datasets.tokens import KeyedTokens, TokenVault

    keyring = _keyring(keyring)

    length = policy.datasets.token_length
    if policy.datasets.tokens == "vault":
        path = Path(vault) if vault is not None else default_vault_path(keyring, tenant)
        return TokenVault(path, keyring=keyring, tenant=tenant, length=min(length or 6, 20))
    return KeyedTokens.for_keyring(keyring, tenant, length=length or 10)


def _keyring(keyring: KeyringLike) -> Keyring:
    from guardrail.keys import as_keyring  # keys imports the crypto stack: loaded on first use

    return as_keyring(keyring)


def _run_tokens(
    policy: Policy, keyring: Keyring | None, tenant: str, vault: str | Path | None
) -> TokenSource | None:
    if not _pseudonymizes(policy):
        return None
    if keyring is None:
        return PseudonymScope()  # consistent within this run: <PERSON_1>, <PERSON_2>...
    return tokens_for(policy, keyring, tenant, vault=vault)


def _token_method(policy: Policy, tokens: TokenSource | None) -> str:
    if tokens is None or not _pseudonymizes(policy):
        return "none"
    if isinstance(tokens, PseudonymScope):
        return "sequential-per-run"
    return str(getattr(tokens, "method", type(tokens).__name__))


def _field_names(format: DatasetFormat, rules: FieldRules) -> tuple[str, ...]:
    names: list[str] = []
    if format in ("jsonl-chat",) and "messages" not in rules.skip:
        names.append(f"messages[].content (roles: {', '.join(rules.roles)})")
    if rules.fields:
        names += rules.fields
    elif format == "jsonl-alpaca":
        names += ["instruction", "input", "output"]
    elif format != "jsonl-chat":
        names.append("text")
    return tuple(n for n in names if n not in rules.skip)


# --------------------------------------------------------------------------- processing


@dataclass(frozen=True, slots=True)
class Processed:
    """One record after redaction: the new data and the findings per entity type before and after."""

    record: DatasetRecord
    data: dict[str, Any]
    before: Counter[str]
    after: Counter[str]


class RecordProcessor:
    """Detects, redacts and re-scans records; the same steps on every engine.

    Args:
        policy: the policy (detection and operators).
        tokens: the dataset's pseudonym source (``None``: the policy must not pseudonymize).
        hmac_key: the key of the ``hash`` operator.
        detector: a detector to use (default: the policy's shared one, loaded on first use).
    """

    def __init__(
        self,
        policy: Policy,
        tokens: TokenSource | None,
        *,
        hmac_key: bytes | None = None,
        detector: Any = None,
    ) -> None:
        if tokens is None and _pseudonymizes(policy):
            raise ConfigError(
                f"policy {policy.id} pseudonymizes: a dataset run needs a keyring for its tokens"
            )
        self.policy = policy
        self.tokens = tokens
        self.redactor = Redactor(policy, hmac_key=hmac_key)
        self._detector = detector

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from guardrail.core import _shared_detector

            self._detector = _shared_detector(self.policy)
        return self._detector

    def process(self, records: list[DatasetRecord]) -> list[Processed]:
        """Detect, redact and re-scan ``records`` in this process."""
        found = self.detector.detect_batch([t for r in records for _, t in r.texts])
        staged, again = self.redact(records, found)
        return self.residual(staged, self.detector.detect_batch(again))

    def redact(
        self, records: list[DatasetRecord], found: list[list[Finding]]
    ) -> tuple[list[_Staged], list[str]]:
        """Redact the records' texts given their findings; also the changed texts to re-scan."""
        staged: list[_Staged] = []
        again: list[str] = []
        pos = 0
        for record in records:
            data = copy.deepcopy(record.data) if record.texts else record.data
            before: Counter[str] = Counter()
            rescans: list[tuple[int, tuple[tuple[int, int], ...]]] = []
            # one value, one type across the record's turns, so one token per person (issue 12)
            record_found = stable_types_across(
                [t for _, t in record.texts], found[pos : pos + len(record.texts)]
            )
            pos += len(record.texts)
            scope = _NameParts.for_record(self.tokens, record.texts, record_found)
            for (path, text), findings in zip(record.texts, record_found, strict=True):
                result = self.redactor.redact(text, findings, scope=scope)
                before.update(f.entity for f in result.findings)
                if result.text != text:
                    set_field(data, path, result.text)
                    for start, end, spans in _windows(result.text, result.spans):
                        rescans.append((len(again), spans))
                        again.append(result.text[start:end])
            staged.append(_Staged(record, data, before, rescans))
        return staged, again

    @staticmethod
    def residual(staged: list[_Staged], found_again: list[list[Finding]]) -> list[Processed]:
        """Finish records with the re-scan's findings: those outside every replacement are residual."""
        out: list[Processed] = []
        for s in staged:
            after: Counter[str] = Counter()
            for index, spans in s.rescans:
                for f in found_again[index]:
                    if not any(f.start < end and start < f.end for start, end in spans):
                        after[f.entity] += 1
            out.append(Processed(s.record, s.data, s.before, after))
        return out


class _NameParts:
    """Tokens where a lone first or last name takes the token of the full name it stands for in the same
    record ("Thanks Olivia" after "Olivia Bennett"), so a conversation keeps one pseudonym per person."""

    def __init__(self, tokens: TokenSource, full_names: dict[str, str]) -> None:
        self.tokens = tokens
        self.full_names = full_names

    @classmethod
    def for_record(
        cls, tokens: TokenSource | None, texts: list[tuple[Any, str]], found: list[list[Finding]]
    ) -> Any:
        if tokens is None:
            return None
        names = {
            " ".join(text[f.start : f.end].split())
            for (_, text), fs in zip(texts, found, strict=True)
            for f in fs
            if f.entity == "PERSON"
        }
        parts: dict[str, dict[str, str]] = {}
        for name in names:
            words = name.split()
            if len(words) > 1:
                for word in (words[0], words[-1]):
                    parts.setdefault(word.casefold(), {})[name.casefold()] = name
        # a part shared by two people (two Olivias) stays its own token: guessing would merge them
        linked = {part: next(iter(full.values())) for part, full in parts.items() if len(full) == 1}
        return cls(tokens, linked) if linked else tokens

    def token(self, entity: str, value: str) -> str:
        if entity == "PERSON":
            value = self.full_names.get(" ".join(value.split()).casefold(), value)
        return self.tokens.token(entity, value)


# the re-scan looks at this many characters around each replacement (snapped to whitespace): the text
# further away is unchanged and was scanned already, and neither spaCy's NER nor the recognizers' context
# words reach that far
_RESCAN_MARGIN = 200


def _windows(
    text: str, spans: tuple[tuple[int, int], ...], margin: int = _RESCAN_MARGIN
) -> list[tuple[int, int, tuple[tuple[int, int], ...]]]:
    """Merged windows of ``text`` around the replacement ``spans``, each with its spans made relative."""
    merged: list[list[Any]] = []
    for start, end in spans:
        a, b = max(0, start - margin), min(len(text), end + margin)
        if a > 0:
            a = max(text.rfind(" ", 0, a), text.rfind("\n", 0, a)) + 1
        if b < len(text):
            cut = [i for i in (text.find(" ", b), text.find("\n", b)) if i >= 0]
            b = min(cut) if cut else len(text)
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2].append((start, end))
        else:
            merged.append([a, b, [(start, end)]])
    return [(a, b, tuple((s - a, e - a) for s, e in inside)) for a, b, inside in merged]


@dataclass(frozen=True, slots=True)
class _Staged:
    record: DatasetRecord
    data: dict[str, Any]
    before: Counter[str]
    rescans: list[tuple[int, tuple[tuple[int, int], ...]]]


class ChunkProcessor(Protocol):
    """An engine: turns chunks of records into processed chunks, one for one and in order."""

    def __call__(self, chunks: Iterator[list[DatasetRecord]]) -> Iterator[list[Processed]]: ...


def _in_process(processor: RecordProcessor) -> ChunkProcessor:
    def run(chunks: Iterator[list[DatasetRecord]]) -> Iterator[list[Processed]]:
        for chunk in chunks:
            yield processor.process(chunk) if chunk else []

    return run


def _worker_pool(processor: RecordProcessor, jobs: int) -> ChunkProcessor:
    """Detection (and the re-scan) in ``jobs`` processes; redaction here, so tokens come from one place.

    Every task is submitted from this thread with ``apply_async`` (the pool runs them first in, first
    out), at most ``2 * jobs`` detections and ``2 * jobs`` re-scans outstanding: memory stays bounded
    and a re-scan never waits behind input that cannot be sent.
    """
    from guardrail.pipeline import _detect_chunk, _init_worker

    def run(chunks: Iterator[list[DatasetRecord]]) -> Iterator[list[Processed]]:
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(processor.policy,)) as pool:
            detecting: deque[tuple[list[DatasetRecord], Any]] = deque()
            rescanning: deque[tuple[list[_Staged], Any]] = deque()
            source = iter(chunks)
            exhausted = False
            while True:
                while not exhausted and len(detecting) < 2 * jobs:
                    chunk = next(source, None)
                    if chunk is None:
                        exhausted = True
                    else:
                        texts = [t for r in chunk for _, t in r.texts]
                        detecting.append((chunk, pool.apply_async(_detect_chunk, (texts,))))
                head = rescanning[0][1] if rescanning else None
                if rescanning and (
                    head is None or head.ready() or len(rescanning) > 2 * jobs or not detecting
                ):
                    done, pending = rescanning.popleft()
                    yield processor.residual(done, pending.get() if pending is not None else [])
                elif detecting:
                    chunk, result = detecting.popleft()
                    staged, again = processor.redact(chunk, result.get())
                    rescanning.append((staged, pool.apply_async(_detect_chunk, (again,)) if again else None))
                else:
                    return

    return run


def text_redactor(
    policy: str | Path | Policy,
    keyring: KeyringLike | None,
    tenant: str = "default",
    *,
    vault: str | Path | None = None,
) -> Callable[[list[str]], list[str]]:
    """A batch function ``texts -> redacted texts`` with the dataset's pseudonyms, e.g. for
    :func:`~guardrail.datasets.formats.redact_dataset` on a Hugging Face ``Dataset``::

        redacted = redact_dataset(ds, text_redactor("gdpr", "keys/"))

    ``keyring`` is a :class:`~guardrail.keys.Keyring` or the path of its directory.
    """
    pol = load_policy(policy)
    keyring = _keyring(keyring) if keyring is not None else None
    tokens = _run_tokens(pol, keyring, tenant, vault)
    hmac_key = keyring.hmac_key(f"redaction-hash\0{tenant}") if keyring is not None else None
    processor = RecordProcessor(pol, tokens, hmac_key=hmac_key)

    def redact(texts: list[str]) -> list[str]:
        found = processor.detector.detect_batch(texts)
        return [processor.redactor.redact(t, f, scope=tokens).text for t, f in zip(texts, found, strict=True)]

    redact.canaries = canaries_of(keyring)  # type: ignore[attr-defined] # redact_dataset's canary gate
    return redact


# --------------------------------------------------------------------------- chunks and rejects


@dataclass
class _Chunk:
    records: list[DatasetRecord]
    rejects: list[dict[str, Any]]
    position: int  # input line/row of the last record (good or bad) in this chunk


def _chunked(
    reader: DatasetReader, *, quarantine: bool, max_records: int, max_chars: int
) -> Iterator[_Chunk]:
    """Records in chunks, each with the rejects read before its last record and its input position."""
    pending: list[dict[str, Any]] = []

    def reject(line: int, reason: str, raw: Any) -> None:
        entry: dict[str, Any] = {"line": line, "reason": reason}
        if quarantine:
            entry["record"] = raw
        pending.append(entry)

    reader.on_reject = reject
    records: list[DatasetRecord] = []
    chars = 0
    for record in reader:
        records.append(record)
        chars += sum(len(t) for _, t in record.texts)
        if len(records) >= max_records or chars >= max_chars:
            yield _Chunk(records, pending, reader.position)
            records, pending, chars = [], [], 0
    if records or pending:
        yield _Chunk(records, pending, reader.position)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ScanResult:
    """What a scan found: counts only."""

    path: Path
    format: DatasetFormat
    fields: tuple[str, ...]
    records: int
    records_with_findings: int
    findings: dict[str, int]
    records_per_entity: dict[str, int]
    rejects: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.findings.values())


@dataclass(frozen=True)
class RunResult:
    """What a redaction run wrote and found."""

    output: Path
    manifest_path: Path
    card_path: Path
    rejects_path: Path | None
    manifest: Manifest
    key_id: str
    #: signed with the keyring's audit key (else a one-time key: integrity without origin)
    signed_by_keyring: bool
    resumed_from: int
    seconds: float
    chars: int
    #: the records with residual findings, in input order (before a resume: line and counts only)
    flagged: tuple[FlaggedRecord, ...] = ()

    @property
    def residual(self) -> int:
        return self.manifest.residual


# --------------------------------------------------------------------------- audit


def _actor(actor: str | None) -> dict[str, Any]:
    if actor is None:
        try:
            actor = getpass.getuser()
        except (KeyError, OSError):
            actor = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return {"ref": actor, "type": "user"}


def _event(category: str, action: str, outcome: str, policy: Policy, **fields: Any) -> dict[str, Any]:
    from guardrail import __version__
    from guardrail.audit.events import dataset_purpose

    return {
        "event": {"category": category, "action": action, "outcome": outcome},
        "source": {"app": f"guardrail@{__version__}", "component": "datasets"},
        "policy": {"id": policy.name, "version": policy.version, "sha256": policy.sha256},
        **dataset_purpose(policy),
        **fields,
    }


def _dataset_id(input_sha256: str) -> str:
    return f"sha256:{input_sha256[:16]}"


def _dataset_event(
    log: AuditLog,
    category: str,
    outcome: str,
    pol: Policy,
    actor: str | None,
    dataset: dict[str, Any],
    counts: Mapping[str, int] | None = None,
    subjects: list[str] | None = None,
    **pii: Any,
) -> None:
    """Append one ``ft.scan`` (read) or ``ft.export`` (create) event about the dataset ``dataset["id"]``."""
    fields: dict[str, Any] = {
        "actor": _actor(actor),
        "resources": [{"type": "dataset", "id": dataset["id"]}],
        "dataset": dataset,
    }
    if subjects is not None:
        fields["subjects"] = subjects  # keyed references of the subjects the records name
    if counts is not None:
        fields["pii"] = {"detector": f"guardrail:{pol.detection.model}", "counts": dict(counts), **pii}
    log.append(_event(category, "R" if category == "ft.scan" else "C", outcome, pol, **fields))


def _subject_linker(
    field: str | None, keyring: Keyring | None, tenant: str, tokens: Any
) -> SubjectLinker | None:
    if field is None:
        return None
    if keyring is None:
        raise ConfigError("--subject-field records subjects by keyed reference: pass --keyring as well")
    from guardrail.datasets.subjects import SubjectLinker

    return SubjectLinker(keyring, tenant, field, vault=tokens)


def _open_audit(audit_log: str | Path | None, keyring: Keyring | None) -> AuditLog | None:
    if audit_log is None:
        return None
    if keyring is None:
        raise ConfigError("an audit log is signed with the keyring's audit key: pass a keyring as well")
    from guardrail.audit import AuditLog

    return AuditLog.for_keyring(audit_log, keyring)


# --------------------------------------------------------------------------- scan


def scan_file(
    path: str | Path,
    *,
    policy: str | Path | Policy = "default",
    format: DatasetFormat | None = None,
    rules: FieldRules | None = None,
    jobs: int = 1,
    on_error: Literal["stop", "skip"] = "stop",
    keyring: KeyringLike | None = None,
    audit_log: str | Path | None = None,
    actor: str | None = None,
    on_record: Callable[[DatasetRecord, list[list[Finding]]], None] | None = None,
) -> ScanResult:
    """Count PII per entity type in a dataset (and record an ``ft.scan`` event when ``audit_log`` is set).

    ``on_record`` is called with each record and its findings per text (e.g. to write a findings file).

    Raises:
        ConfigError, InputFormatError: bad options or input (``file:line``).
        DetectionError: detection failed (nothing is counted as clean).
    """
    from guardrail.pipeline import detect_stream

    pol = load_policy(policy)
    rules = rules if rules is not None else rules_for(pol)
    reader = iter_records(path, format=format, rules=rules, on_error="skip" if on_error == "skip" else "stop")
    log = _open_audit(audit_log, _keyring(keyring) if keyring is not None else None)
    started = time.monotonic()
    counts: Counter[str] = Counter()
    per_entity: Counter[str] = Counter()
    records = with_findings = 0
    try:
        for record, found in detect_stream(reader, _texts, policy=pol, jobs=jobs):
            records += 1
            entities = {f.entity for fs in found for f in fs}
            counts.update(f.entity for fs in found for f in fs)
            per_entity.update(entities)
            with_findings += bool(entities)
            if on_record is not None:
                on_record(record, found)
        result = ScanResult(
            Path(path),
            reader.format,
            _field_names(reader.format, rules),
            records,
            with_findings,
            dict(sorted(counts.items())),
            dict(sorted(per_entity.items())),
            reader.skipped,
            time.monotonic() - started,
        )
        if log is not None:
            sha = sha256_file(path)
            dataset = {
                "id": _dataset_id(sha),
                "input_sha256": sha,
                "records": records,
                "format": reader.format,
            }
            _dataset_event(log, "ft.scan", "success", pol, actor, dataset, result.findings)
        return result
    finally:
        if log is not None:
            log.close()


def _texts(record: DatasetRecord) -> list[str]:
    return [t for _, t in record.texts]


# --------------------------------------------------------------------------- redact


@dataclass
class _Totals:
    input_records: int = 0
    output_records: int = 0
    rejects: int = 0
    chars: int = 0
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    flagged: list[FlaggedRecord] = field(default_factory=list)
    # records whose output still holds a canary value (guardrail.canaries): line, plain id, canary ids
    canaries: list[FlaggedRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_records": self.input_records,
            "output_records": self.output_records,
            "rejects": self.rejects,
            "chars": self.chars,
            "before": dict(self.before),
            "after": dict(self.after),
            # positions and counts only: a checkpoint never holds data, so no ids
            "flagged": [[r.line, dict(r.entities)] for r in self.flagged],
            "canaries": [[r.line, dict(r.entities)] for r in self.canaries],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Totals:
        return cls(
            int(data["input_records"]),
            int(data["output_records"]),
            int(data["rejects"]),
            int(data["chars"]),
            Counter({str(k): int(v) for k, v in data["before"].items()}),
            Counter({str(k): int(v) for k, v in data["after"].items()}),
            [
                FlaggedRecord(int(line), None, {str(k): int(v) for k, v in entities.items()})
                for line, entities in data.get("flagged", [])
            ],
            [
                FlaggedRecord(int(line), None, {str(k): int(v) for k, v in found.items()})
                for line, found in data.get("canaries", [])
            ],
        )


class _Sidecars:
    """The files of one run: the output, its manifest, card and rejects, and the hidden partial files."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.manifest = manifest_path_for(output)
        self.card = output.with_name(output.name + CARD_SUFFIX)
        self.rejects = output.with_name(output.name + REJECTS_SUFFIX)
        hidden = output.with_name(f".{output.name}.guardrail")
        self.partial = hidden.with_name(hidden.name + "-partial")
        self.partial_rejects = hidden.with_name(hidden.name + "-rejects")
        self.checkpoint = hidden.with_name(hidden.name + "-checkpoint.json")

    def published(self) -> list[Path]:
        return [self.output, self.manifest, self.card, self.rejects]

    def scratch(self) -> list[Path]:
        return [self.partial, self.partial_rejects, self.checkpoint]


def _fingerprint(
    input_sha256: str,
    policy: Policy,
    format: str,
    rules: FieldRules,
    method: str,
    tenant: str,
    on_error: str,
    keyring: Keyring | None,
) -> str:
    """What a resumed run must share with the interrupted one (the keyring by a keyed id, never a key)."""
    from guardrail import __version__

    keyring_id = hmac.digest(keyring.hmac_key("checkpoint"), b"keyring id", "sha256").hex() if keyring else ""
    text = json.dumps(
        [
            input_sha256,
            policy.sha256,
            format,
            list(rules.fields),
            list(rules.roles),
            list(rules.skip),
            method,
            tenant,
            on_error,
            keyring_id,
            __version__,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _fsync_file(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def _private_open(path: Path, mode: str) -> Any:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC), 0o600)
    return open(fd, mode, encoding="utf-8", newline="")


def redact_file(
    input: str | Path,
    output: str | Path,
    *,
    keyring: KeyringLike | None = None,
    policy: str | Path | Policy = "default",
    tenant: str = "default",
    format: DatasetFormat | None = None,
    rules: FieldRules | None = None,
    jobs: int = 1,
    engine: Engine = "local",
    on_error: OnError = "stop",
    resume: bool = False,
    force: bool = False,
    fail_on: int | None = None,
    audit_log: str | Path | None = None,
    vault: str | Path | None = None,
    actor: str | None = None,
    subject_field: str | None = None,
    checkpoint_seconds: float = 5.0,
    progress: Callable[[int], None] | None = None,
    detector: Any = None,
) -> RunResult:
    """Redact a dataset into ``output`` (same format), with a re-scan, a signed manifest and a card.

    Args:
        keyring: signs the manifest (its audit key) and keys the pseudonyms, so they hold across runs and
            workers. Without it, pseudonyms hold within this run only (``<PERSON_1>``) and a one-time key
            signs the manifest.
        on_error: ``stop`` at the first bad record (``file:line``); ``skip`` writes its line and reason to
            ``OUTPUT.rejects.jsonl``; ``quarantine`` also writes the bad record itself there (the file is
            private: the record is unredacted input). Rejects are counted in the manifest.
        resume: continue an interrupted run from its checkpoint (same input, policy and options).
        fail_on: publish nothing and raise :class:`GateFailed` when residual findings exceed this.
        audit_log: record ``ft.scan`` and ``ft.export`` events there (fail closed: no event, no output).
        checkpoint_seconds: how often a JSONL or CSV run saves a checkpoint.
        progress: called with the number of input records done, after each chunk.
        detector: a detector to use in this process (``jobs=1``); default: the policy's.
        subject_field: the record field that names the data subject: the export's audit events then list
            the subjects' keyed references, and vault tokens are linked to their subject (for erasure).

    Raises:
        OutputExistsError: the output or a sidecar exists (without ``force``), or an interrupted run's
            checkpoint is there (without ``resume`` or ``force``).
        GateFailed: the residual gate failed.
        ConfigError, InputFormatError, DetectionError: bad options or input; detection failed.
    """
    src, out = Path(input), Path(output)
    pol = load_policy(policy)
    keyring = _keyring(keyring) if keyring is not None else None
    if on_error not in get_args(OnError):
        raise ConfigError(f"on_error must be stop, skip or quarantine, not {on_error!r}")
    if engine not in get_args(Engine):
        raise ConfigError(f"engine must be local or ray, not {engine!r}")
    if out.resolve() == src.resolve():
        raise ConfigError(f"{out}: the output must not be the input (inputs are never modified)")
    rules = rules if rules is not None else rules_for(pol)
    reader = iter_records(src, format=format, rules=rules, on_error="stop" if on_error == "stop" else "skip")
    fmt = reader.format
    _check_output_suffix(out, fmt)
    files = _Sidecars(out)
    appendable = fmt not in ("parquet", "hf-disk")
    state = _load_checkpoint(files) if files.checkpoint.exists() else None
    if state is not None and not resume and not force:
        raise OutputExistsError(
            f"{out}: an interrupted run left a checkpoint; pass --resume to continue it "
            "or --force to start over"
        )
    if not force:
        for path in files.published():
            if path.exists():
                raise OutputExistsError(f"{path}: exists; pass --force to overwrite it")
    if out.is_dir() and fmt != "hf-disk":
        raise ConfigError(f"{out}: is a directory; give a file path for the output")

    if keyring is None and engine == "ray":
        raise ConfigError("--engine ray needs a keyring: Ray workers agree on tokens through its keys")
    if keyring is None and resume and state is not None and _pseudonymizes(pol):
        raise ConfigError(
            f"{out}: without a keyring pseudonyms hold for one run only, so this run cannot be resumed; "
            "run again with --force (and pass --keyring for resumable runs)"
        )
    tokens = _run_tokens(pol, keyring, tenant, vault)
    try:
        linker = _subject_linker(subject_field, keyring, tenant, tokens)
        method = _token_method(pol, tokens)
        hmac_key = keyring.hmac_key(f"redaction-hash\0{tenant}") if keyring is not None else None
        processor = RecordProcessor(pol, tokens, hmac_key=hmac_key, detector=detector)
        log = _open_audit(audit_log, keyring)
        try:
            input_sha = sha256_file(src)
            fingerprint = _fingerprint(input_sha, pol, fmt, rules, method, tenant, on_error, keyring)
            if state is not None and resume and (state.get("fingerprint") != fingerprint or not appendable):
                raise ConfigError(
                    f"{out}: the checkpoint is from a run with another input, policy, keyring or options; "
                    "run again with --force to start over"
                )
            if not (resume and state is not None):
                state = None
            else:
                _authenticate_checkpoint(files, state, keyring)
            if engine == "ray":
                from guardrail.datasets.ray_engine import ray_processor

                assert keyring is not None  # checked above
                chunk_processor: ChunkProcessor = ray_processor(pol, keyring, tenant, vault=vault, jobs=jobs)
            elif jobs > 1 and detector is None:
                chunk_processor = _worker_pool(processor, jobs)
            else:
                chunk_processor = _in_process(processor)
            try:
                return _run(
                    src,
                    files,
                    reader,
                    pol,
                    rules,
                    keyring,
                    chunk_processor,
                    jobs=jobs,
                    on_error=on_error,
                    state=state,
                    appendable=appendable,
                    input_sha=input_sha,
                    fingerprint=fingerprint,
                    method=method,
                    fail_on=fail_on,
                    log=log,
                    actor=actor,
                    checkpoint_seconds=checkpoint_seconds,
                    progress=progress,
                    linker=linker,
                    canaries=canaries_of(keyring),
                )
            except GateFailed:
                raise  # discarded and audited as denied by _run
            except GuardrailError as exc:
                _discard(files)  # bad input or failed detection: rerun after the fix, from the start
                if log is not None:
                    # the attempt is evidence too; the error's class, never its message (it may quote a path)
                    failed = {
                        "id": _dataset_id(input_sha),
                        "input_sha256": input_sha,
                        "error": type(exc).__name__,
                    }
                    _dataset_event(log, "ft.export", "error", pol, actor, failed)
                raise
            except BaseException:
                if not files.checkpoint.exists():
                    _discard(files)  # nothing to resume from
                raise
        finally:
            if log is not None:
                log.close()
    finally:
        close = getattr(tokens, "close", None)
        if close is not None:
            close()


def _checkpoint_mac(keyring: Keyring, data: Mapping[str, Any]) -> str:
    """HMAC-SHA256 under the keyring's ``dataset-checkpoint`` key of the checkpoint's canonical JSON."""
    fields = {k: v for k, v in data.items() if k != "mac"}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return hmac.digest(
        keyring.hmac_key("dataset-checkpoint"), _CHECKPOINT_SCHEMA.encode() + b"\0" + text, "sha256"
    ).hex()


def _authenticate_checkpoint(files: _Sidecars, state: Mapping[str, Any], keyring: Keyring | None) -> None:
    """A resumed run trusts its checkpoint (counts, positions, digests of the partial files) only when the
    keyring's MAC over it verifies; the partial files are checked against its digests when opened."""
    if keyring is None:
        raise ConfigError(
            f"{files.checkpoint}: a checkpoint is authenticated under a keyring and this run has none, so it "
            "cannot be resumed; run again with --force (and pass --keyring for resumable runs)"
        )
    mac = state.get("mac")
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _checkpoint_mac(keyring, state)):
        raise ConfigError(
            f"{files.checkpoint}: the checkpoint is not authentic (edited, or not written by a run with this "
            "keyring); nothing was resumed: run again with --force to start over"
        )


class _PrefixDigest:
    """SHA-256 of a partial file's first bytes, advanced as the run writes (each byte is read back once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha = hashlib.sha256()
        self.upto = 0

    def advance(self, size: int) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.upto)
            while self.upto < size:
                block = f.read(min(1 << 20, size - self.upto))
                if not block:
                    raise ConfigError(f"{self.path}: shorter than written; run again with --force")
                self.sha.update(block)
                self.upto += len(block)
        return self.sha.hexdigest()


def _load_checkpoint(files: _Sidecars) -> dict[str, Any]:
    try:
        data = json.loads(files.checkpoint.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("schema") != _CHECKPOINT_SCHEMA:
        raise ConfigError(f"{files.checkpoint}: not a guardrail checkpoint; remove it or pass --force")
    return data


def _write_checkpoint(files: _Sidecars, data: dict[str, Any]) -> None:
    tmp = files.checkpoint.with_name(files.checkpoint.name + ".tmp")
    with _private_open(tmp, "w") as f:
        f.write(json.dumps(data, sort_keys=True))
        _fsync_file(f)
    os.replace(tmp, files.checkpoint)


def _run(
    src: Path,
    files: _Sidecars,
    reader: DatasetReader,
    pol: Policy,
    rules: FieldRules,
    keyring: Keyring | None,
    chunk_processor: ChunkProcessor,
    *,
    jobs: int,
    on_error: OnError,
    state: dict[str, Any] | None,
    appendable: bool,
    input_sha: str,
    fingerprint: str,
    method: str,
    fail_on: int | None,
    log: AuditLog | None,
    actor: str | None,
    checkpoint_seconds: float,
    progress: Callable[[int], None] | None,
    linker: SubjectLinker | None = None,
    canaries: Any = None,
) -> RunResult:
    started = time.monotonic()
    if state is not None:
        totals = _Totals.from_dict(state["totals"])
        started_at = datetime.fromisoformat(state["started_at"])
        reader.resume_after(int(state["position"]), totals.input_records)
        resumed_from = int(state["position"])
    else:
        totals, started_at, resumed_from = _Totals(), datetime.now(UTC), 0
        for path in files.scratch():
            path.unlink(missing_ok=True)
    max_chars = 128_000 if jobs <= 1 else 16_000
    chunks = _chunked(reader, quarantine=on_error == "quarantine", max_records=64, max_chars=max_chars)
    positions: deque[_Chunk] = deque()

    def records_of() -> Iterator[list[DatasetRecord]]:
        for chunk in chunks:
            positions.append(chunk)
            yield chunk.records

    with contextlib.ExitStack() as stack:
        rejects_file = None
        if appendable:
            out_file, out_digest = _open_partial(files.partial, state, "output_bytes")
            stack.callback(out_file.close)
            rejects_file, rejects_digest = _open_partial(files.partial_rejects, state, "rejects_bytes")
            stack.callback(rejects_file.close)
            emit = _line_emitter(out_file, reader, state is None)
        else:
            _discard(files)
            writer_cm = open_writer(files.partial, reader.format, like=src, force=True)
            emit = stack.enter_context(writer_cm).write
            rejects_list: list[dict[str, Any]] = []
        last = time.monotonic()
        for processed in chunk_processor(records_of()):
            chunk = positions.popleft()
            for p in processed:
                emit(p.data)
                if linker is not None:
                    linker.observe(p.record.data, p.data)
                totals.before.update(p.before)
                totals.after.update(p.after)
                if p.after:
                    totals.flagged.append(flagged_record(p.record, p.after))
                if canaries is not None:  # a canary value in the output fails the gate below
                    planted = canaries.canaries_in(strings_of(p.data))
                    if planted:
                        totals.canaries.append(flagged_record(p.record, dict.fromkeys(planted, 1)))
                totals.chars += sum(len(t) for _, t in p.record.texts)
            totals.input_records += len(processed) + len(chunk.rejects)
            totals.output_records += len(processed)
            totals.rejects += len(chunk.rejects)
            for entry in chunk.rejects:
                if rejects_file is not None:
                    rejects_file.write(json.dumps(entry, ensure_ascii=False) + "\n")
                else:
                    rejects_list.append(entry)
            if appendable and time.monotonic() - last >= checkpoint_seconds:
                assert rejects_file is not None
                _checkpoint(
                    files,
                    (out_file, out_digest),
                    (rejects_file, rejects_digest),
                    chunk.position,
                    totals,
                    started_at,
                    fingerprint,
                    keyring,
                )
                last = time.monotonic()
            if progress is not None:
                progress(totals.input_records)
        if appendable:
            assert rejects_file is not None
            _fsync_file(out_file)
            _fsync_file(rejects_file)
        else:
            stack.close()  # open_writer moves the finished file (or dataset directory) to the partial path
            if rejects_list:
                with _private_open(files.partial_rejects, "w") as f:
                    f.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in rejects_list)

    if appendable:
        # the manifest counts what is in the file that will be published, not what the run believes
        written = _count_written(files.partial, reader)
        if written != totals.output_records:
            raise ConfigError(
                f"{files.partial}: holds {written} records but the run wrote {totals.output_records} "
                "(changed while the run was going); nothing was published: run again with --force"
            )
    residual = sum(totals.after.values())
    manifest = Manifest.create(
        input_path=src,
        output_path=files.partial,
        input_records=totals.input_records,
        output_records=totals.output_records,
        findings_before=totals.before,
        findings_after=totals.after,
        residual=residual,
        rejects=totals.rejects,
        policy=pol,
        format=reader.format,
        fields=_field_names(reader.format, rules),
        token_method=method,
        started_at=started_at,
    )
    dataset_id = _dataset_id(input_sha)
    if linker is not None and state is not None:
        linker.add_from(src, format=reader.format)  # records done before the interruption
    subjects = linker.refs() if linker is not None else None
    if totals.canaries:
        _audit_export(log, pol, manifest, None, dataset_id, actor, outcome="denied", subjects=subjects)
        _audit_canaries(log, totals.canaries, dataset_id)
        _discard(files)
        shown = "; ".join(
            f"line {r.line}"
            + (f" (id {r.id})" if r.id is not None else "")
            + ": canary "
            + ", ".join(r.entities)
            for r in totals.canaries[:10]
        )
        more = len(totals.canaries) - 10
        raise GateFailed(
            f"gate failed: the output still holds canary values in {len(totals.canaries)} record(s): {shown}"
            + (f"; and {more} more record(s)" if more > 0 else "")
            + "; nothing was written (a planted canary must never leave in clear: check the fields and "
            "roles the run processes, e.g. --field, --role, --skip-field)",
            totals.canaries,
        )
    if fail_on is not None and residual > fail_on:
        _audit_export(log, pol, manifest, None, dataset_id, actor, outcome="denied", subjects=subjects)
        _discard(files)
        by_type = ", ".join(
            f"{e} {n}" for e, n in sorted(totals.after.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        raise GateFailed(
            f"gate failed: {residual} residual finding(s) after redaction > --fail-on {fail_on} ({by_type}) "
            f"in {len(totals.flagged)} record(s): {describe_flagged(totals.flagged)}; nothing was written",
            totals.flagged,
        )
    # without a keyring a one-time key signs: verification then proves integrity, not origin
    signed = manifest.sign(keyring.hmac_key("audit-checkpoint") if keyring is not None else os.urandom(32))
    manifest_text = json.dumps(signed.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    _audit_export(
        log,
        pol,
        manifest,
        (manifest_text, signed.key_id, files.manifest.name),
        dataset_id,
        actor,
        subjects=subjects,
    )
    _publish(
        files,
        manifest_text,
        dataset_card(manifest, title=f"Dataset card: {files.output.name}"),
        totals.rejects > 0,
    )
    return RunResult(
        files.output,
        files.manifest,
        files.card,
        files.rejects if totals.rejects else None,
        manifest,
        signed.key_id,
        keyring is not None,
        resumed_from,
        time.monotonic() - started,
        totals.chars,
        tuple(totals.flagged),
    )


_OUTPUT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "parquet": (".parquet", ".pq"),
    "jsonl": (".jsonl", ".ndjson"),
}


def _check_output_suffix(out: Path, fmt: DatasetFormat) -> None:
    """The output keeps the input's format: a name that promises another one (``out.pdf``) is refused."""
    if fmt == "hf-disk":
        return
    allowed = _OUTPUT_SUFFIXES["jsonl" if fmt.startswith("jsonl") else fmt]
    if out.suffix.lower() not in allowed:
        raise ConfigError(
            f"{out}: the output keeps the input's format ({fmt}); name it with "
            f"{' or '.join(allowed)} (-o/--output)"
        )


def _open_partial(path: Path, state: dict[str, Any] | None, key: str) -> tuple[Any, _PrefixDigest]:
    digest = _PrefixDigest(path)
    if state is None:
        return _private_open(path, "w"), digest
    size = int(state[key])
    if not path.exists() or path.stat().st_size < size:
        raise ConfigError(
            f"{path}: the partial output is shorter than its checkpoint; run again with --force"
        )
    with open(path, "r+b") as f:
        f.truncate(size)  # what was written after the last checkpoint is written again
    wanted = state.get(key.replace("_bytes", "_sha256"))
    if not isinstance(wanted, str) or not hmac.compare_digest(digest.advance(size), wanted):
        raise ConfigError(
            f"{path}: the partial output does not match its checkpoint (changed after the run stopped); "
            "nothing was resumed: run again with --force to start over"
        )
    return _private_open(path, "a"), digest


def _count_written(path: Path, reader: DatasetReader) -> int:
    """Records in a written JSONL (one per line) or CSV (rows after the header) partial file."""
    if reader.format != "csv":
        count = 0
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                count += block.count(b"\n")
        return count
    with open(path, encoding="utf-8", newline="") as f:
        rows = sum(1 for _ in csv.reader(f))
    return rows - (1 if _csv_header(reader.path) else 0) if rows else 0


def _line_emitter(f: Any, reader: DatasetReader, fresh: bool) -> Callable[[Mapping[str, Any]], None]:
    if reader.format != "csv":

        def emit_json(data: Mapping[str, Any]) -> None:
            f.write(json.dumps(data, ensure_ascii=False) + "\n")

        return emit_json
    header = _csv_header(reader.path) or []
    with open(reader.path, "rb") as raw:
        first = raw.readline()
    # the input's line ending (csv's default is \r\n; most tools write \n)
    writer = csv.DictWriter(f, fieldnames=header, lineterminator="\r\n" if first.endswith(b"\r\n") else "\n")
    if fresh and header:
        writer.writeheader()

    def emit_csv(data: Mapping[str, Any]) -> None:
        writer.writerow(data)

    return emit_csv


def _checkpoint(
    files: _Sidecars,
    out: tuple[Any, _PrefixDigest],
    rejects: tuple[Any, _PrefixDigest],
    position: int,
    totals: _Totals,
    started_at: datetime,
    fingerprint: str,
    keyring: Keyring | None,
) -> None:
    (out_file, out_digest), (rejects_file, rejects_digest) = out, rejects
    _fsync_file(out_file)
    _fsync_file(rejects_file)
    data: dict[str, Any] = {
        "schema": _CHECKPOINT_SCHEMA,
        "fingerprint": fingerprint,
        "position": position,
        "output_bytes": out_file.tell(),
        "output_sha256": out_digest.advance(out_file.tell()),
        "rejects_bytes": rejects_file.tell(),
        "rejects_sha256": rejects_digest.advance(rejects_file.tell()),
        "totals": totals.to_dict(),
        "started_at": started_at.isoformat(),
    }
    # without a keyring the checkpoint only says that a run stopped here: it cannot be resumed
    data["mac"] = _checkpoint_mac(keyring, data) if keyring is not None else ""
    _write_checkpoint(files, data)


def _audit_export(
    log: AuditLog | None,
    pol: Policy,
    manifest: Manifest,
    signed: tuple[str, str, str] | None,
    dataset_id: str,
    actor: str | None,
    *,
    outcome: str = "success",
    subjects: list[str] | None = None,
) -> None:
    if log is None:
        return
    m = manifest
    scanned = {
        "id": dataset_id,
        "input_sha256": m.input_sha256,
        "records": m.input_records,
        "format": m.format,
    }
    _dataset_event(log, "ft.scan", "success", pol, actor, scanned, m.findings_before, subjects=subjects)
    dataset: dict[str, Any] = {
        "id": dataset_id,
        "input_sha256": m.input_sha256,
        "output_sha256": m.output_sha256,
        "records": m.output_records,
        "input_records": m.input_records,
        "rejects": m.rejects,
        "residual": m.residual,
        "findings_before": dict(m.findings_before),
        "findings_after": dict(m.findings_after),
        "format": m.format,
        "token_method": m.token_method,
    }
    if signed is not None:
        text, key_id, name = signed
        dataset["manifest"] = {
            "file": name,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "key_id": key_id,
        }
    operators = {
        e: pol.redaction.operator_for(e).operator
        for e in sorted(set(m.findings_before) | set(m.findings_after))
    }
    _dataset_event(
        log,
        "ft.export",
        outcome,
        pol,
        actor,
        dataset,
        m.findings_before,
        subjects=subjects,
        operators=operators,
    )


def canaries_of(keyring: Keyring | None) -> Any:
    """The matcher of the keyring's canaries (``guardrail canary make``), or ``None`` when there are none."""
    from guardrail.canaries import matcher_for

    return matcher_for(keyring)


def _audit_canaries(log: AuditLog | None, records: Sequence[FlaggedRecord], dataset_id: str) -> None:
    """One ``canary.tripped`` event per canary held back by the gate (outcome ``denied``: not published)."""
    if log is None:
        return
    from guardrail import __version__
    from guardrail.canaries.watch import canary_fields

    lines: dict[str, list[int]] = {}
    for r in records:
        for canary in r.entities:
            lines.setdefault(canary, []).append(r.line)
    for canary in sorted(lines):
        fields = canary_fields(canary, [], where="dataset.export")
        fields["resources"] = [{"type": "dataset", "id": dataset_id}]
        fields["dataset"] = {"id": dataset_id, "lines": lines[canary][:100]}
        log.append(
            {
                "event": {"category": "canary.tripped", "action": "C", "outcome": "denied"},
                "source": {"app": f"guardrail@{__version__}", "component": "datasets"},
                **fields,
            }
        )


def _discard(files: _Sidecars) -> None:
    for path in files.scratch():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _publish(files: _Sidecars, manifest_text: str, card: str, has_rejects: bool) -> None:
    """Sidecars first, the output last: the output path appears only when everything is in place."""
    from guardrail.io import atomic_output

    with atomic_output(files.manifest, force=True) as f:
        f.write(manifest_text)
    with atomic_output(files.card, force=True) as f:
        f.write(card)
    if has_rejects:
        os.replace(files.partial_rejects, files.rejects)
    else:
        files.rejects.unlink(missing_ok=True)
        files.partial_rejects.unlink(missing_ok=True)
    if files.output.is_file():
        os.chmod(files.partial, files.output.stat().st_mode & 0o777)  # an overwritten file keeps its mode
    if files.output.is_dir() and files.partial.is_dir():
        old = files.output.with_name(f".{files.output.name}.guardrail-old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(files.output, old)
        os.replace(files.partial, files.output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(files.partial, files.output)
    files.checkpoint.unlink(missing_ok=True)
    _fsync_dir(files.output.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can fsync a directory
        _fsync(path)
