"""Verify an audit log directory, and prove one event's inclusion under a signed checkpoint.

:func:`verify` reads every segment once and checks, for each stored line, its format, that its
``integrity.leaf`` equals ``SHA-256(0x00 || canonical record without integrity)`` (recomputed from the
line: the canonical body is ``"{" + line[89:]``, see :mod:`guardrail.audit.schema`), that ``seq`` equals
the line's position (gap-free, 0-based) and that ``event_id`` is unique. It feeds the recomputed leaves
into a compact Merkle range and, at the size of every checkpoint whose Ed25519 signature verifies,
compares the root. A checkpoint larger than the log means truncation. Checkpoints exported off the host
can be passed in (``checkpoints=``): a holder of the signing key who rewrites history cannot make the
log match roots signed before the rewrite.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
from array import array
from binascii import hexlify
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrail.audit.auth import RecordMac, Seal, seal_text, state_mac
from guardrail.audit.canonical import CanonicalizationError, canonicalize
from guardrail.audit.errors import AuditIntegrityError, DamageKind
from guardrail.audit.ids import uuid7_time_ms
from guardrail.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
)
from guardrail.audit.note import (
    Checkpoint,
    NoteError,
    VerifierKey,
    parse_checkpoint,
    split_notes,
    verify_note,
)
from guardrail.audit.schema import (
    BODY_START,
    CATEGORIES,
    LEAF_END,
    LEAF_PREFIX,
    LINE_PREFIX_LEN,
    MAC_END,
    MAC_SEP,
    SCHEMA,
    SEAL_SEP,
    AuditEventError,
    parse_time,
    split_integrity,
)
from guardrail.audit.storage import (
    CHECKPOINTS,
    PUBLIC_KEY,
    STATE,
    Snapshot,
    iter_lines,
    read_prefix,
    snapshot,
)
from guardrail.db import is_postgres_url
from guardrail.errors import ConfigError

__all__ = [
    "InclusionProof",
    "TornTail",
    "VerifyReport",
    "iter_records",
    "keyring_audit_keys",
    "load_verifier_key",
    "prove",
    "verify",
    "verify_proof",
]

_PREFIX = LEAF_PREFIX.encode("ascii")
_PREFIX_END = b'"},'
_MAC_AT = LEAF_END + len(MAC_SEP)
_SEAL_AT = MAC_END + len(SEAL_SEP)
_TAIL_SEALS = 64  # seals after the last checkpoint kept for checking (the last one that verifies wins)
_PROOF_FORMAT = "guardrail.audit.proof/1"
_SEQ = re.compile(rb"(0|[1-9][0-9]{0,17})[,}]")
# on a tie at one index, the more specific finding wins
_PRIORITY: dict[str, int] = {"malformed": 0, "edited": 1, "inserted": 2, "deleted": 3, "reordered": 4}


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes after the last newline of a segment: a record whose write was cut short by a crash."""

    segment: str
    offset: int
    length: int

    def __str__(self) -> str:
        return (
            f"torn final record in {self.segment} at byte {self.offset} ({self.length} bytes, left as found)"
        )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :func:`verify`.

    Attributes:
        ok: no record or checkpoint is damaged (torn tails, a crash artefact, are reported but allowed).
        records: complete records read.
        checkpoints_verified: checkpoints whose signature verified and whose root matched.
        first_bad_index: 0-based index (= seq) of the first bad record; None when intact or when the
            damage is not in a record (e.g. a bad checkpoint signature).
        kind: the damage kind (:data:`guardrail.audit.errors.DAMAGE_KINDS`), ``"torn-tail"`` when the
            only finding is a torn tail, None when intact.
        message: one line for people.
        torn_tail: every torn tail found (segment, byte offset, length).
        covered: records covered by the largest verified checkpoint.
        signed: records covered by a verified checkpoint or by the last seal that verifies (a seal is
            the writer's signed tree head after each batch): authenticated with the public key alone.
        unsigned_tail: records after ``signed``: with ``record_key`` their MACs authenticate them,
            without it they are a finding (``unsigned-tail``).
        macs_checked: every record's MAC was checked (``record_key`` given).
    """

    ok: bool
    records: int
    checkpoints_verified: int
    first_bad_index: int | None
    kind: DamageKind | None
    message: str
    torn_tail: tuple[TornTail, ...] = ()
    covered: int = 0
    signed: int = 0
    unsigned_tail: int = 0
    macs_checked: bool = False

    def raise_for_damage(self) -> None:
        """Raise :class:`AuditIntegrityError` unless ``ok``.

        Raises:
            AuditIntegrityError: the log is damaged.
        """
        if not self.ok and self.kind is not None:
            raise AuditIntegrityError(self.first_bad_index, self.kind, self.message)


def load_verifier_key(
    directory: str | os.PathLike[str], public_key: bytes | str | None = None
) -> VerifierKey:
    """The verifier key: ``public_key`` (verifier-key text, or the raw 32-byte Ed25519 key with the name
    taken from ``audit.pub``), else ``audit.pub`` in the directory.

    Raises:
        ConfigError: missing or malformed.
    """
    if is_postgres_url(directory):
        from guardrail.audit.pg import read_verifier_key

        if isinstance(public_key, bytes) and len(public_key) == 32:
            return VerifierKey(VerifierKey.parse(read_verifier_key(directory)).name, public_key)
        if public_key is None:
            public_key = read_verifier_key(directory)
    directory = Path(directory)
    if isinstance(public_key, bytes) and len(public_key) == 32:
        name = _read_key_file(directory / PUBLIC_KEY).name
        return VerifierKey(name, public_key)
    if public_key is not None:
        text = public_key.decode("utf-8", "replace") if isinstance(public_key, bytes) else public_key
        try:
            return VerifierKey.parse(text)
        except NoteError as exc:
            raise ConfigError(f"the public key is not a verifier key: {exc}") from None
    return _read_key_file(directory / PUBLIC_KEY)


def keyring_audit_keys(keyring: Any) -> tuple[bytes, bytes]:
    """The audit keys a keyring holder verifies with: ``(public_key, record_key)``, the raw 32-byte Ed25519
    key derived from the keyring's checkpoint seed and the records' MAC key. Pass both to :func:`verify`:
    with the keyring, the log's ``audit.pub`` is not trusted (whoever can write the log directory can
    replace it, and sign a rewritten history with a key of their own). ``keyring``: a
    :class:`~guardrail.keys.Keyring` or the path of its directory."""
    from guardrail.audit.auth import RECORD_KEY_PURPOSE, SIGNING_KEY_PURPOSE
    from guardrail.audit.note import public_key_of

    if isinstance(keyring, str | os.PathLike):
        from guardrail.keys import as_keyring

        keyring = as_keyring(keyring)
    return public_key_of(keyring.hmac_key(SIGNING_KEY_PURPOSE)), keyring.hmac_key(RECORD_KEY_PURPOSE)


def _read_key_file(path: Path) -> VerifierKey:
    try:
        return VerifierKey.parse(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (give the log's public key)") from None
    except (NoteError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a verifier key ({exc})") from None


@dataclass(frozen=True, slots=True)
class _Checked:
    checkpoint: Checkpoint
    note: str
    source: str


def _load_checkpoints(
    files: Sequence[tuple[Path, int | None]], key: VerifierKey
) -> tuple[list[_Checked], tuple[DamageKind, str] | None]:
    """Verified checkpoints, and the first problem (bad signature, malformed note) if any."""
    checked: list[_Checked] = []
    problem: tuple[DamageKind, str] | None = None
    origins: set[str] = set()
    for path, size in files:
        try:
            data = (path.read_bytes() if size is None else read_prefix(path, size)).decode("utf-8")
        except FileNotFoundError:
            continue
        except UnicodeDecodeError:
            problem = problem or ("malformed", f"{path.name}: not UTF-8")
            continue
        try:
            notes = split_notes(data)
        except NoteError as exc:
            problem = problem or ("malformed", f"{path.name}: {exc}")
            continue
        for number, note in enumerate(notes, 1):
            try:
                text = verify_note(note, key)
                if text is None:
                    problem = problem or (
                        "bad-signature",
                        f"{path.name}: checkpoint {number} is not signed by {key.name}+{key.key_id.hex()}",
                    )
                    continue
                cp = parse_checkpoint(text)
            except NoteError as exc:
                problem = problem or ("malformed", f"{path.name}: checkpoint {number}: {exc}")
                continue
            origins.add(cp.origin)
            checked.append(_Checked(cp, note, path.name))
    if len(origins) > 1:
        problem = problem or ("bad-signature", f"checkpoints of several logs: {', '.join(sorted(origins))}")
    return checked, problem


def verify(
    directory: str | os.PathLike[str],
    *,
    public_key: bytes | str | None = None,
    checkpoints: Sequence[str | os.PathLike[str]] = (),
    strict: bool = False,
    record_key: bytes | None = None,
    allow_missing_checkpoints: bool = False,
) -> VerifyReport:
    """Verify every record and checkpoint of an audit log.

    Args:
        directory: the log directory.
        public_key: the verifier key (text or raw 32 bytes); default ``audit.pub``. Keep a copy of it
            off the host: whoever can rewrite the log can also replace ``audit.pub``.
        checkpoints: more checkpoint files, e.g. the copies exported off the host; all are checked.
        strict: also check that each record is in canonical form and fits the schema (slower).
        record_key: the records' MAC key (``Keyring.hmac_key("audit-record")``): every record's MAC is
            checked. Without it, records are authenticated by checkpoints and seals (public key alone),
            and records after the last verified signature are reported as an unsigned tail.
        allow_missing_checkpoints: accept a log whose ``checkpoints`` file is missing or empty (e.g.
            a writer killed before its first checkpoint); without it that is a finding.

    Returns:
        The report; ``ok`` is False when anything is damaged. Never raises for damage.

    Raises:
        ConfigError: the directory, the public key or an extra checkpoint file cannot be read.
    """
    if is_postgres_url(directory):  # a consistent snapshot, verified as the file log it exports to
        from guardrail.audit.pg import materialised

        with materialised(directory) as local:
            return verify(
                local,
                public_key=public_key,
                checkpoints=checkpoints,
                strict=strict,
                record_key=record_key,
                allow_missing_checkpoints=allow_missing_checkpoints,
            )
    root_dir = Path(directory)
    if not root_dir.is_dir():
        raise ConfigError(f"{root_dir}: not an audit log directory")
    try:
        key = load_verifier_key(root_dir, public_key)
    except ConfigError as exc:
        if public_key is not None or (root_dir / PUBLIC_KEY).exists():
            return VerifyReport(False, 0, 0, None, "malformed", str(exc))
        raise
    for extra in checkpoints:
        if not Path(extra).is_file():
            raise ConfigError(f"{extra}: no such checkpoint file")
    # read before the snapshot: a writer saves its state after its records, so an honest state never
    # counts more records than the snapshot holds
    state_size = _written_size(root_dir, record_key) if record_key is not None else None
    snap = snapshot(root_dir)
    files: list[tuple[Path, int | None]] = [(root_dir / CHECKPOINTS, snap.checkpoints_size)]
    files += [(Path(p), None) for p in checkpoints]
    checked, cp_problem = _load_checkpoints(files, key)
    roots: dict[int, set[bytes]] = {}
    for c in checked:
        roots.setdefault(c.checkpoint.size, set()).add(c.checkpoint.root)
    sizes = sorted(roots)

    # ---- one pass over the records (the hot loop: keep it lean)
    rng = CompactRange()
    seqs = array("q")
    # 16-byte digests of the event ids in one buffer (not a set of objects: ~8x less memory); the
    # repeats are found by sorting once at the end
    ids = bytearray()
    id_digest = hashlib.blake2b
    malformed: tuple[int, str] | None = None
    edited: int | None = None
    seq_anomaly: int | None = None
    root_mismatch: tuple[int, int] | None = None
    verified_sizes: list[int] = []
    torn: list[TornTail] = []
    next_cp = 0
    if sizes and sizes[0] == 0:
        if roots[0] != {EMPTY_ROOT}:
            root_mismatch = (0, 0)
        else:
            verified_sizes.append(0)
        next_cp = 1
    index = 0
    seed = hashlib.sha256(b"\x00{")
    append_leaf = rng.append
    add_seq = seqs.append
    match_seq = _SEQ.match
    next_size = sizes[next_cp] if next_cp < len(sizes) else -1
    mac_check = RecordMac(record_key, key.name).check if record_key is not None else None
    largest = sizes[-1] if sizes else 0
    bad_mac: int | None = None
    legacy: list[list[int]] = []  # runs [first, last] of records without a MAC (written before MACs)
    tail_seals: list[tuple[int, bytes, CompactRange]] = []
    for path, size in snap.segments:
        length = 0
        for _, line in iter_lines(path, limit=size):
            length += len(line) + 1
            seal: bytes | None = None
            start = 0
            if line[:22] == _PREFIX:
                if line[LEAF_END:LINE_PREFIX_LEN] == _PREFIX_END:
                    start = LINE_PREFIX_LEN
                    if legacy and legacy[-1][1] == index - 1:
                        legacy[-1][1] = index
                    else:
                        legacy.append([index, index])
                elif line[LEAF_END:_MAC_AT] == MAC_SEP:
                    if line[MAC_END:BODY_START] == _PREFIX_END:
                        start = BODY_START
                    elif line[MAC_END:_SEAL_AT] == SEAL_SEP:
                        stop = line.find(_PREFIX_END, _SEAL_AT)
                        if stop > 0:
                            start = stop + 3
                            seal = line[_SEAL_AT:stop]
            if not start:
                malformed = malformed or (index, "not a stored audit line")
                append_leaf(leaf_hash(line))
                add_seq(-1)
            else:
                h = seed.copy()
                h.update(line[start:])
                digest = h.digest()
                append_leaf(digest)
                if edited is None and hexlify(digest) != line[22:LEAF_END]:
                    edited = index
                if (
                    mac_check is not None
                    and bad_mac is None
                    and start != LINE_PREFIX_LEN
                    and not mac_check(digest, line[_MAC_AT:MAC_END], seal)
                ):
                    bad_mac = index
                if seal is not None and index >= largest:
                    tail_seals.append((index, seal, rng.copy()))
                    if len(tail_seals) > _TAIL_SEALS:
                        del tail_seals[0]
                # The log refuses its own field names at any depth, and '"seq":' cannot occur inside a JSON
                # string, so these are the record's own seq and event_id (no JSON parse: verify stays fast)
                m = match_seq(line, line.find(b'"seq":', start) + 6)
                e = line.find(b'"event_id":"', start) + 12
                if m is None or e < 12 or line[e + 36 : e + 37] != b'"':
                    malformed = malformed or (index, "no seq or event_id")
                    add_seq(-1)
                else:
                    seq = int(m.group(1))
                    add_seq(seq)
                    if seq != index and seq_anomaly is None:
                        seq_anomaly = index
                    event_id = line[e : e + 36]
                    ids += id_digest(event_id, digest_size=16).digest()
                    if strict and malformed is None:
                        problem = _strict_problem(line, start, seq, event_id)
                        if problem:
                            malformed = (index, problem)
            index += 1
            if index == next_size:
                if roots[index] == {rng.root()}:
                    verified_sizes.append(index)
                elif root_mismatch is None:
                    root_mismatch = (verified_sizes[-1] if verified_sizes else 0, index)
                next_cp += 1
                next_size = sizes[next_cp] if next_cp < len(sizes) else -1
        if size > length:
            torn.append(TornTail(path.name, length, size - length))
    records = index
    duplicate_id = _first_repeat(ids)
    del ids

    # ---- classify: the earliest finding wins
    findings: list[tuple[int, DamageKind, str]] = []
    if malformed is not None:
        findings.append((malformed[0], "malformed", f"record {malformed[0]} is malformed: {malformed[1]}"))
    if edited is not None:
        findings.append((edited, "edited", f"record {edited} does not match its leaf hash"))
    if seq_anomaly is not None:
        findings.append(_classify_seq(seqs, seq_anomaly, records))
    if duplicate_id is not None:
        findings.append((duplicate_id, "inserted", f"record {duplicate_id} repeats an earlier event_id"))
    covered = verified_sizes[-1] if verified_sizes else 0
    sealed, bad_seal, checkpointed = _check_seals(tail_seals, key, covered)
    signed = max(covered, sealed)
    unsigned = records - signed
    if bad_mac is not None:
        findings.append(
            (
                bad_mac,
                "unauthentic",
                f"record {bad_mac} does not carry this log's MAC: someone without the keyring added or "
                "rewrote it",
            )
        )
    # a seal or a tail that does not verify follows from most other damage: reported when nothing more
    # specific is found
    fallback: list[tuple[int, DamageKind, str]] = []
    if bad_seal is not None and (bad_mac is None or bad_seal < bad_mac):
        fallback.append(
            (bad_seal, "unauthentic", f"record {bad_seal} carries a seal that is not signed by {key.name}")
        )
    legacy_after = _first_at_or_after(legacy, signed)
    if legacy_after is not None and record_key is not None:
        findings.append(
            (
                legacy_after,
                "unauthentic",
                f"record {legacy_after} has no MAC and no verified signature covers it",
            )
        )
    if unsigned and record_key is None and bad_seal is None:
        fallback.append(
            (
                signed,
                "unsigned-tail",
                f"the last {unsigned} record(s) (from record {signed}) carry no valid signature: a crash cut "
                "their write short, or someone without the keyring added them; authenticate them with "
                "--keyring (their MACs), or open the log with its writer, which checks them and seals",
            )
        )
    checkpoints_size = snap.checkpoints_size
    file_findings: list[tuple[int, DamageKind, str]] = []
    if records and not checkpoints_size and not allow_missing_checkpoints:
        state = "missing" if not (root_dir / CHECKPOINTS).exists() else "empty"
        file_findings.append(
            (
                records,
                "truncated",
                f"the checkpoints file is {state} but the log holds {records} records: restore it from its "
                "off-host copy, or pass --allow-missing-checkpoints if the writer died before its first "
                "checkpoint",
            )
        )
    elif checkpointed > covered and not allow_missing_checkpoints:
        file_findings.append(
            (
                records,
                "truncated",
                f"a seal says a checkpoint covered {checkpointed} records, but the verified ones cover "
                f"{covered}: checkpoints were removed (restore the file from its off-host copy)",
            )
        )
    if state_size is not None and state_size > records:
        findings.append(
            (
                records,
                "truncated",
                f"the writer's state (authenticated by the keyring) says it wrote {state_size} records but "
                f"only {records} remain: records were cut from the end of the log",
            )
        )
    if largest > records:
        findings.append(
            (records, "truncated", f"a signed checkpoint covers {largest} records but only {records} remain")
        )
    findings.sort(key=lambda f: (f[0], _PRIORITY.get(f[1], 9)))
    if root_mismatch is not None and not (findings and findings[0][0] < root_mismatch[1]):
        low, high = root_mismatch
        findings.insert(
            0,
            (
                low,
                "edited",
                f"records {low}..{high - 1} do not match the signed checkpoint at size {high} "
                "(changed, removed or added, with their hashes recomputed)",
            ),
        )
    if public_key is not None and record_key is not None and (root_dir / PUBLIC_KEY).exists():
        # verified with the keyring's key: an audit.pub that names another key was replaced (and the
        # log's writers now refuse to open it)
        try:
            stored = _read_key_file(root_dir / PUBLIC_KEY).public_key
        except ConfigError:
            stored = b""
        if stored != key.public_key:
            file_findings.append(
                (
                    records,
                    "bad-signature",
                    f"{PUBLIC_KEY} is not this log's key (the keyring's): it was replaced; restore it from "
                    "its off-host copy",
                )
            )
    findings += file_findings
    if not findings and cp_problem is None:
        findings = fallback
    torn_tail = tuple(torn)
    macs = record_key is not None

    def report(ok: bool, count: int, bad: int | None, kind: DamageKind | None, message: str) -> VerifyReport:
        return VerifyReport(
            ok, records, count, bad, kind, message, torn_tail, covered, signed, unsigned, macs
        )

    if findings:
        index_bad, kind, message = findings[0]
        bad = None if findings[0] in file_findings else index_bad
        return report(False, len(verified_sizes), bad, kind, message)
    if cp_problem is not None:
        return report(False, len(verified_sizes), None, *cp_problem)
    count = sum(1 for c in checked if c.checkpoint.size in verified_sizes)
    summary = f"{records} records intact; {count} checkpoint(s) verified, covering {covered} records"
    if signed > covered:
        summary += f"; the writer's seal covers {signed}"
    if unsigned:
        summary += f"; the last {unsigned} record(s) are unsigned (a tail authenticated by their MACs only)"
    if macs:
        without = sum(last - first + 1 for first, last in legacy)
        summary += "; every MAC verified"
        if without:  # written before records carried MACs: authenticated by the signatures alone
            summary += f" ({without} record(s) from before MACs, authenticated by signed checkpoints)"
    if records and not checkpoints_size:
        summary += "; no checkpoints file (allowed by --allow-missing-checkpoints)"
    if torn_tail:
        return report(True, count, None, "torn-tail", summary + "; " + "; ".join(map(str, torn_tail)))
    return report(True, count, None, None, summary)


def _written_size(root_dir: Path, record_key: bytes) -> int | None:
    """How many records the writer's ``state.json`` says it wrote, if its MAC verifies (else None)."""
    try:
        data = json.loads((root_dir / STATE).read_text("utf-8"))
        if not isinstance(data, dict) or not hmac.compare_digest(
            str(data["mac"]), state_mac(record_key, data)
        ):
            return None
        return int(data["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_seals(
    seals: list[tuple[int, bytes, CompactRange]], key: VerifierKey, covered: int
) -> tuple[int, int | None, int]:
    """``(records the last valid seal covers, first record after it with an invalid seal, the seal's
    checkpointed)``. Seals (kept with the tree after their record) are checked from the last back; the
    first one that verifies wins."""
    bad: int | None = None
    for index, stored, head in reversed(seals):
        if index < covered:
            break
        seal = Seal.parse(stored)
        size = index + 1
        if seal is not None and key.verify(
            seal_text(key.name, size, head.root(), seal.checkpointed), seal.signature
        ):
            return size, bad, seal.checkpointed
        bad = index
    return 0, bad, 0


def _first_at_or_after(runs: list[list[int]], at: int) -> int | None:
    """The first index >= ``at`` in runs of consecutive indices ``[first, last]``."""
    for first, last in runs:
        if last >= at:
            return max(first, at)
    return None


def _classify_seq(seqs: array[int], first: int, records: int) -> tuple[int, DamageKind, str]:
    """Name the first sequence anomaly: a record missing, added or moved."""
    positions: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        positions.setdefault(s, []).append(i)
    s = seqs[first]
    if s > first and first not in positions:
        return first, "deleted", f"record {first} is missing (the record at its place has seq {s})"
    if len(positions.get(s, ())) > 1:
        at = positions[s][0]
        return at, "inserted", f"seq {s} appears {len(positions[s])} times (first at record {at})"
    if s < 0 or s >= records:
        return first, "inserted", f"record {first} has seq {s}, outside the log"
    return first, "reordered", f"record {first} has seq {s}: records are out of order"


def _first_repeat(ids: bytearray) -> int | None:
    """The index of the first record whose 16-byte id digest repeats an earlier one, or ``None``."""
    import numpy as np

    if len(ids) < 32:
        return None
    keys = np.frombuffer(ids, dtype=np.dtype([("hi", "<u8"), ("lo", "<u8")]))
    order = np.lexsort((keys["lo"], keys["hi"]))  # stable: equal ids stay in record order, side by side
    hi, lo = keys["hi"][order], keys["lo"][order]
    repeats = np.flatnonzero((hi[1:] == hi[:-1]) & (lo[1:] == lo[:-1]))
    return int(order[repeats + 1].min()) if repeats.size else None


def _strict_problem(line: bytes, start: int, seq: int, event_id: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return "not valid JSON"
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        return f"not a {SCHEMA} record"
    if record.get("seq") != seq or record.get("event_id") != event_id.decode("ascii", "replace"):
        return "seq or event_id is not the record's own"
    body = {k: v for k, v in record.items() if k != "integrity"}
    try:
        if b"{" + line[start:] != canonicalize(body):
            return "not in RFC 8785 canonical form"
    except CanonicalizationError:
        return "holds values JSON canonicalisation cannot represent"
    event = record.get("event")
    if not isinstance(event, dict) or event.get("category") not in CATEGORIES:
        return "event.category is missing or unknown"
    try:
        parse_time(record.get("occurred_at", ""))
        parse_time(record.get("recorded_at", ""))
        uuid7_time_ms(record["event_id"])
    except (AuditEventError, ValueError):
        return "bad occurred_at, recorded_at or event_id"
    return None


def iter_records(directory: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every complete record, in order (parsed JSON; nothing is verified: call :func:`verify` for that).

    Raises:
        ConfigError: not a log directory.
    """
    if is_postgres_url(directory):
        from guardrail.audit.pg import materialised

        with materialised(directory) as local:
            yield from iter_records(local)
        return
    root_dir = Path(directory)
    if not root_dir.is_dir():
        raise ConfigError(f"{root_dir}: not an audit log directory")
    for line in _all_lines(snapshot(root_dir)):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


# --------------------------------------------------------------------------- inclusion proofs


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """That one record is in the log, under a signed checkpoint (RFC 9162 §2.1.3 audit path).

    Attributes:
        event_id: the event.
        leaf_index: its index (= seq).
        tree_size: the size of the checkpoint the proof leads to.
        leaf_hash: hex ``SHA-256(0x00 || canonical record without integrity)``.
        audit_path: hex sibling hashes, leaf level first.
        checkpoint: the signed checkpoint note.
        record: the stored line (the proof is self-contained: the leaf is recomputed from it).
    """

    event_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    audit_path: tuple[str, ...]
    checkpoint: str
    record: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``format``: ``guardrail.audit.proof/1``)."""
        return {
            "format": _PROOF_FORMAT,
            "event_id": self.event_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash,
            "audit_path": list(self.audit_path),
            "checkpoint": self.checkpoint,
            "record": self.record,
        }

    def to_json(self) -> str:
        """The proof as JSON."""
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> InclusionProof:
        """Parse :meth:`to_json` output.

        Raises:
            ConfigError: not a proof.
        """
        try:
            data = json.loads(text)
            if data.get("format") != _PROOF_FORMAT:
                raise ValueError("format")
            return cls(
                event_id=str(data["event_id"]),
                leaf_index=int(data["leaf_index"]),
                tree_size=int(data["tree_size"]),
                leaf_hash=str(data["leaf_hash"]),
                audit_path=tuple(str(h) for h in data["audit_path"]),
                checkpoint=str(data["checkpoint"]),
                record=str(data["record"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"not a {_PROOF_FORMAT} inclusion proof") from None


def prove(
    directory: str | os.PathLike[str], event_id: str, *, public_key: bytes | str | None = None
) -> InclusionProof:
    """An inclusion proof of one event under the latest verified checkpoint that covers it.

    Raises:
        ConfigError: unknown event, or not yet covered by a checkpoint (wait for the next one).
        AuditIntegrityError: the records do not lead to the checkpoint's root (the log is damaged).
    """
    if is_postgres_url(directory):
        from guardrail.audit.pg import materialised

        with materialised(directory) as local:
            return prove(local, event_id, public_key=public_key)
    root_dir = Path(directory)
    if not root_dir.is_dir():
        raise ConfigError(f"{root_dir}: not an audit log directory")
    key = load_verifier_key(root_dir, public_key)
    snap = snapshot(root_dir)
    checked, _ = _load_checkpoints([(root_dir / CHECKPOINTS, snap.checkpoints_size)], key)
    if not checked:
        raise ConfigError(f"{root_dir}: no verified checkpoint yet; close the log or wait for the next one")
    latest = max(checked, key=lambda c: c.checkpoint.size)
    size = latest.checkpoint.size
    needle = f'"event_id":"{event_id}"'.encode()
    leaves: list[bytes] = []
    found: tuple[int, bytes] | None = None
    seed = hashlib.sha256(b"\x00{")
    for index, line in enumerate(_all_lines(snap)):
        if index < size:
            h = seed.copy()
            parts = split_integrity(line)
            h.update(line[parts[3] if parts else 0 :])
            leaves.append(h.digest())
        if found is None and needle in line:
            with contextlib.suppress(ValueError, AttributeError):
                if json.loads(line).get("event_id") == event_id:
                    found = (index, line)
        if found is not None and index + 1 >= size:
            break
    if found is None:
        raise ConfigError(f"no event {event_id!r} in {root_dir}")
    index, line = found
    if index >= size:
        raise ConfigError(
            f"event {event_id} is not covered by a checkpoint yet (the latest covers {size} records); "
            "close the log or wait for the next checkpoint"
        )
    if len(leaves) < size:
        raise AuditIntegrityError(len(leaves), "truncated", f"the checkpoint covers {size} records")
    if json.loads(line).get("seq") != index:
        raise AuditIntegrityError(index, "malformed", "the record's seq is not its position")
    path_hashes = inclusion_proof(index, leaves)
    computed = root_from_inclusion_proof(index, size, leaves[index], path_hashes)
    if computed != latest.checkpoint.root:
        raise AuditIntegrityError(None, "edited", f"the records do not match the checkpoint at size {size}")
    return InclusionProof(
        event_id=event_id,
        leaf_index=index,
        tree_size=size,
        leaf_hash=leaves[index].hex(),
        audit_path=tuple(h.hex() for h in path_hashes),
        checkpoint=latest.note,
        record=line.decode("utf-8"),
    )


def _all_lines(snap: Snapshot) -> Iterator[bytes]:
    for path, size in snap.segments:
        for _, line in iter_lines(path, limit=size):
            yield line


def verify_proof(proof: InclusionProof, public_key: bytes | str) -> bool:
    """Whether a proof holds: the checkpoint is signed by ``public_key`` (verifier-key text), the record
    hashes to the leaf, is the claimed event, and the audit path leads from it to the checkpoint's root.
    """
    try:
        text = public_key.decode("utf-8") if isinstance(public_key, bytes) else public_key
        key = VerifierKey.parse(text)
        body = verify_note(proof.checkpoint, key)
        if body is None:
            return False
        cp = parse_checkpoint(body)
        line = proof.record.encode("utf-8")
        parts = split_integrity(line)
        if parts is None:
            return False
        leaf = leaf_hash(b"{" + line[parts[3] :])
        if leaf.hex() != proof.leaf_hash or parts[0] != proof.leaf_hash.encode("ascii"):
            return False
        record = json.loads(line)
        if record.get("event_id") != proof.event_id or record.get("seq") != proof.leaf_index:
            return False
        path = [bytes.fromhex(h) for h in proof.audit_path]
    except (NoteError, ValueError, UnicodeError, AttributeError):
        return False
    if cp.size != proof.tree_size:
        return False
    return root_from_inclusion_proof(proof.leaf_index, cp.size, leaf, path) == cp.root
