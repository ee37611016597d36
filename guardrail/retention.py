"""Retention (GDPR Art. 5(1)(e)): delete what the policy's ``retention`` section says is kept too long.

:func:`apply_retention` finds, from the audit log's ``rag.ingest`` events (when each chunk was ingested,
its classification and the purposes it names in its ``purposes`` metadata), the chunks older than the
shortest period that applies to them (``retention.classifications`` and ``retention.purposes``) and
deletes them from persisted encrypted stores. Where keys are per subject it then **shreds** the
subject's DEK once every chunk sealed under it is gone: no record of the given stores uses it any more
and the log shows no other chunk of those subjects still kept (a key whose chunks name no subject, and
every tenant key, is kept). It deletes token-vault entries older than ``retention.vault`` and the
partial files of interrupted dataset runs (checkpoints hold unredacted progress) older than
``retention.checkpoints``. One ``retention.apply`` event records what was deleted and shredded (counts
and ids, never content). ``dry_run`` counts without deleting.

Limits (stated in the reports): chunks are aged from their ingestion event, so chunks ingested before
the audit log existed are not seen; chunks without ``purposes`` metadata get their classification's
period only.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from guardrail.db import is_postgres_url
from guardrail.errors import ConfigError
from guardrail.keys import Keyring, KeyringLike, as_keyring
from guardrail.policy import Policy, load_policy

__all__ = ["RetentionResult", "apply_retention", "overdue_chunks"]


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What :func:`apply_retention` deleted (or, with ``dry_run``, would delete).

    ``keys_shredded``: the per-subject DEKs destroyed because every chunk sealed under them was deleted
    (crypto-shredding: copies and backups of those chunks stay unreadable).
    """

    chunks: int
    vault_tokens: int
    checkpoints: int
    dry_run: bool
    keys_shredded: tuple[str, ...] = ()


@dataclass
class _LogScan:
    """What the log says about chunks: when ingested, under which classification, purposes, subjects."""

    overdue: dict[str, str] = field(default_factory=dict)  # chunk id -> what expired it
    subjects: dict[str, set[str]] = field(default_factory=dict)  # chunk id -> subject refs
    live: dict[str, set[str]] = field(default_factory=dict)  # subject ref -> chunk ids not deleted
    own: set[str] = field(default_factory=set)  # chunks whose subjects the log records per chunk


def _expiry(policy: Policy, label: str | None, purposes: tuple[str, ...]) -> tuple[int, str] | None:
    """The retention (days) that applies to a chunk and what it comes from: the shortest of its
    classification's and its purposes' periods."""
    from guardrail.governance import parse_duration

    found: list[tuple[int, str]] = []
    r = policy.retention
    if label is not None and label in r.classifications:
        found.append((parse_duration(r.classifications[label]), label))
    found += [(parse_duration(r.purposes[p]), f"purpose {p}") for p in purposes if p in r.purposes]
    return min(found) if found else None


def _scan(audit_dir: str | os.PathLike[str], policy: Policy, moment: datetime) -> _LogScan:
    from guardrail.audit.schema import format_time
    from guardrail.reports.source import LogReader, get

    scan = _LogScan()
    for record in LogReader(audit_dir, since=None, until=None).records():
        category = get(record, "event", "category")
        if category == "retention.apply":
            for res in record.get("resources") or ():
                if isinstance(res, dict) and res.get("type", "chunk") == "chunk":
                    _forget(scan, str(res.get("id")))
            continue
        if category == "dsar.erasure" and get(record, "event", "outcome") == "success":
            refs = {s for s in record.get("subjects") or () if isinstance(s, str)}
            for ref in refs:  # the erasure deleted every chunk that names the subject
                for chunk in list(scan.live.get(ref, ())):
                    if chunk in scan.own:  # per-event subjects (older logs): not known to be theirs
                        _forget(scan, chunk)
            continue
        if category != "rag.ingest":
            continue
        at = str(record.get("occurred_at", ""))
        event_refs = {s for s in record.get("subjects") or () if isinstance(s, str)}
        resources = [res for res in record.get("resources") or () if isinstance(res, dict)]
        # older logs name the subjects per event only: then every chunk of the event counts for each
        # (keeps keys longer, never shreds too early)
        per_chunk = any(isinstance(res.get("subjects"), list) for res in resources)
        for res in resources:
            chunk = str(res.get("id"))
            labels = res.get("labels")
            label = labels[0] if isinstance(labels, list) and labels and isinstance(labels[0], str) else None
            own = res.get("subjects") if per_chunk else None
            refs = {s for s in own or () if isinstance(s, str)} if per_chunk else set(event_refs)
            scan.subjects[chunk] = refs
            if per_chunk:
                scan.own.add(chunk)
            for ref in refs:
                scan.live.setdefault(ref, set()).add(chunk)
            raw = res.get("purposes")
            purposes = tuple(p for p in raw if isinstance(p, str)) if isinstance(raw, list) else ()
            expiry = _expiry(policy, label, purposes)
            if expiry is not None and at < format_time(moment - timedelta(days=expiry[0])):
                scan.overdue[chunk] = expiry[1]
    return scan


def _forget(scan: _LogScan, chunk: str) -> None:
    scan.overdue.pop(chunk, None)
    for ref in scan.subjects.pop(chunk, set()):
        scan.live.get(ref, set()).discard(chunk)


def overdue_chunks(
    audit_dir: str | os.PathLike[str], policy: Policy, *, now: datetime | None = None
) -> dict[str, str]:
    """Chunk id -> what expired it (its classification, or ``purpose P``), for chunks the log shows
    ingested longer ago than the shortest retention of their classification and purposes, and not
    deleted since (by ``retention.apply`` or an erasure of their subject)."""
    return _scan(audit_dir, policy, now or datetime.now(UTC)).overdue


def _keys_of_nodes(vector: Any, ids: set[str]) -> dict[str, list[str]]:
    """Node id -> the key ids its envelope is sealed under, read from headers (no decryption)."""
    from guardrail.llama_index.storage import _ids
    from guardrail.llama_index.stores import _ENVELOPE_KEY

    inner = vector.inner
    data = getattr(inner, "data", None)
    simple = data is not None and hasattr(data, "metadata_dict")
    shadows = vector._stored(None, None) if simple else inner.get_nodes(node_ids=sorted(ids))
    return {
        s.node_id: _ids(s.metadata.get(_ENVELOPE_KEY) or s.get_content()) for s in shadows if s.node_id in ids
    }


def apply_retention(
    *,
    keyring: KeyringLike,
    policy: str | Path | Policy,
    tenant: str,
    audit_log: str | os.PathLike[str],
    stores: Sequence[str | os.PathLike[str]] = (),
    vault: str | os.PathLike[str] | None = None,
    checkpoint_dirs: Sequence[str | os.PathLike[str]] = (),
    actor: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RetentionResult:
    """Delete chunks, vault entries and dataset checkpoints past the policy's retention; audited.

    ``keyring`` is a :class:`~guardrail.keys.Keyring` or the path of its directory.

    Raises:
        ConfigError: the policy declares no retention, or a vault path that does not exist.
    """
    from guardrail import __version__
    from guardrail.audit import AuditLog, AuditWriteError
    from guardrail.audit.events import actor_member
    from guardrail.audit.schema import format_time
    from guardrail.crypto import Sealer
    from guardrail.datasets.tokens import TokenVault
    from guardrail.governance import parse_duration
    from guardrail.llama_index.storage import _collections, _kv_stores, load_storage_context, reencrypt

    keyring = as_keyring(keyring)

    pol = load_policy(policy)
    if pol.retention.is_empty():
        raise ConfigError(f"policy {pol.id} declares no retention periods (add a `retention` section)")
    moment = now or datetime.now(UTC)
    # the log is opened before anything is deleted or shredded: no record, no change
    log = None if dry_run else AuditLog.for_keyring(audit_log, keyring)
    try:
        scan = _scan(audit_log, pol, moment)
        expired = scan.overdue
        deleted_chunks: list[str] = []
        sealed_by: dict[str, set[str]] = {}  # subject-or-tenant key id -> deleted chunks sealed under it
        remaining: Counter[str] = Counter()  # key id -> records still sealed under it in the given stores
        for directory in stores:
            storage = load_storage_context(
                Path(directory), sealer=Sealer(keyring), keyring=keyring, tenant=tenant
            )
            store: Any = storage.vector_store  # an EncryptedVectorStore (load_storage_context)
            ids = list(expired)
            present = set(store.matching_ids(store._filters(None), ids)) if ids else set()
            for node_id, key_ids in _keys_of_nodes(store, present).items():
                for key_id in key_ids:
                    sealed_by.setdefault(key_id, set()).add(node_id)
            if present:  # deleted in memory either way (a dry run does not write it back)
                store.delete_nodes(node_ids=sorted(present))
                for node_id in present:
                    storage.docstore.delete_document(node_id, raise_error=False)
                for kv in _kv_stores(storage):  # and any other record about the nodes (their doc_hash)
                    for collection in _collections(kv):
                        for node_id in present:
                            kv.delete(node_id, collection)
                if not dry_run:
                    storage.persist(persist_dir=str(directory))
            remaining.update(reencrypt(storage, keyring=keyring, tenant=tenant, dry_run=True).by_key)
            deleted_chunks += sorted(present)
        shred = _shreddable(keyring, scan, sealed_by, remaining, set(deleted_chunks))
        if shred and not dry_run:
            shred = [k for k in shred if keyring.shred_subject_key(k)]
        tokens = 0
        vault_path = Path(vault) if vault is not None else keyring.directory / f"vault-{tenant}.sqlite"
        vault_there = vault_path.exists() or is_postgres_url(vault_path)
        if pol.retention.vault is not None and vault_there:
            cutoff = format_time(moment - timedelta(days=parse_duration(pol.retention.vault)))
            with TokenVault(vault_path, keyring=keyring, tenant=tenant) as v:
                old = v.created_before(cutoff)
                tokens = len(old) if dry_run else v.delete_tokens(old)
        elif vault is not None and not vault_there:
            raise ConfigError(f"{vault_path}: no token vault here")
        checkpoints = 0
        if pol.retention.checkpoints is not None:
            limit = time.time() - parse_duration(pol.retention.checkpoints) * 86400
            for directory in checkpoint_dirs:
                for path in Path(directory).glob(".*.guardrail-*"):
                    if path.is_file() and path.stat().st_mtime < limit:
                        checkpoints += 1
                        if not dry_run:
                            path.unlink()
        if log is not None:
            event: dict[str, Any] = {
                "event": {"category": "retention.apply", "action": "D", "outcome": "success"},
                "source": {"app": f"guardrail@{__version__}", "component": "retention", "tenant": tenant},
                "actor": actor_member(actor),
                "policy": {"id": pol.name, "version": pol.version, "sha256": pol.sha256},
                "resources": [{"type": "chunk", "id": i, "labels": [expired[i]]} for i in deleted_chunks]
                + [{"type": "key", "id": k, "labels": ["shredded", "retention"]} for k in shred],
                "retrieval": {"deleted_nodes": len(deleted_chunks), "vault_tokens_deleted": tokens,
                              "checkpoints_deleted": checkpoints, "keys_shredded": len(shred)},
            }  # fmt: skip
            try:
                log.append(event)
            except AuditWriteError as exc:
                # deleted and shredded by now, for good: say what was done, never "nothing happened"
                raise AuditWriteError(
                    f"retention WAS applied ({len(deleted_chunks)} chunk(s) deleted, key(s) "
                    f"{', '.join(shred) or '-'} shredded, {tokens} vault token(s) and {checkpoints} "
                    f"checkpoint(s) deleted), but the retention.apply record was not written ({exc}); make "
                    "the audit log writable and record it by hand (the figures above)"
                ) from exc
    finally:
        if log is not None:
            log.close()
    return RetentionResult(len(deleted_chunks), tokens, checkpoints, dry_run, tuple(shred))


def _shreddable(
    keyring: Keyring,
    scan: _LogScan,
    sealed_by: dict[str, set[str]],
    remaining: Counter[str],
    deleted: set[str],
) -> list[str]:
    """The per-subject keys to destroy: every chunk deleted now that was sealed under the key names only
    subjects whose every chunk (per the log) is deleted, and no record of the given stores still uses
    the key. Tenant keys are never shredded by retention; a key whose chunks name no subject is kept."""
    subject_keys = {i.id for i in keyring.list_keys() if i.scope == "subject" and i.state != "destroyed"}
    out = []
    for key_id, chunks in sorted(sealed_by.items()):
        if key_id not in subject_keys or remaining[key_id]:
            continue
        refs = set().union(*(scan.subjects.get(c, set()) for c in chunks))
        if refs and all(scan.live.get(ref, set()) <= deleted for ref in refs):
            out.append(key_id)
    return out
