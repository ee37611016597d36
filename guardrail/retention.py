"""Retention (GDPR Art. 5(1)(e)): delete what the policy's ``retention`` section says is kept too long.

:func:`apply_retention` finds, from the audit log's ``rag.ingest`` events (when each chunk was ingested
and its classification), the chunks older than their classification's period and deletes them from
persisted encrypted stores; it deletes token-vault entries older than ``retention.vault`` and the
partial files of interrupted dataset runs (checkpoints hold unredacted progress) older than
``retention.checkpoints``. One ``retention.apply`` event records what was deleted (counts and ids, never
content). ``dry_run`` counts without deleting.

Limits (stated in the reports): chunks are aged from their ingestion event, so chunks ingested before
the audit log existed are not seen; per-purpose periods apply to chunks whose ingestion recorded their
purposes (none do yet), so today only the classification periods apply to chunks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from guardrail.db import is_postgres_url
from guardrail.errors import ConfigError
from guardrail.keys import Keyring
from guardrail.policy import Policy, load_policy

__all__ = ["RetentionResult", "apply_retention", "overdue_chunks"]


@dataclass(frozen=True, slots=True)
class RetentionResult:
    """What :func:`apply_retention` deleted (or, with ``dry_run``, would delete)."""

    chunks: int
    vault_tokens: int
    checkpoints: int
    dry_run: bool


def overdue_chunks(
    audit_dir: str | os.PathLike[str], policy: Policy, *, now: datetime | None = None
) -> dict[str, str]:
    """Chunk id -> classification, for chunks the log shows ingested longer ago than their classification's
    retention and not deleted since by ``retention.apply``."""
    from guardrail.audit.schema import format_time
    from guardrail.reports.source import LogReader, get

    moment = now or datetime.now(UTC)
    limits = {
        c: format_time(moment - timedelta(days=policy.retention.days_for(classification=c) or 0))
        for c in policy.retention.classifications
    }
    overdue: dict[str, str] = {}
    for record in LogReader(audit_dir, since=None, until=None).records():
        category = get(record, "event", "category")
        if category == "retention.apply":
            for res in record.get("resources") or ():
                if isinstance(res, dict):
                    overdue.pop(str(res.get("id")), None)
            continue
        if category != "rag.ingest":
            continue
        at = str(record.get("occurred_at", ""))
        for res in record.get("resources") or ():
            labels = res.get("labels") if isinstance(res, dict) else None
            label = labels[0] if isinstance(labels, list) and labels else None
            if isinstance(label, str) and label in limits and at < limits[label]:
                overdue[str(res.get("id"))] = label
    return overdue


def apply_retention(
    *,
    keyring: Keyring,
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

    Raises:
        ConfigError: the policy declares no retention, or a vault path that does not exist.
    """
    from guardrail import __version__
    from guardrail.audit import AuditLog
    from guardrail.audit.events import actor_member
    from guardrail.audit.schema import format_time
    from guardrail.crypto import Sealer
    from guardrail.datasets.tokens import TokenVault
    from guardrail.governance import parse_duration
    from guardrail.llama_index.storage import load_storage_context

    pol = load_policy(policy)
    if pol.retention.is_empty():
        raise ConfigError(f"policy {pol.id} declares no retention periods (add a `retention` section)")
    moment = now or datetime.now(UTC)
    expired = overdue_chunks(audit_log, pol, now=moment)
    deleted_chunks: list[str] = []
    for directory in stores:
        storage = load_storage_context(
            Path(directory), sealer=Sealer(keyring), keyring=keyring, tenant=tenant
        )
        store: Any = storage.vector_store  # an EncryptedVectorStore (load_storage_context)
        ids = list(expired)
        present = set(store.matching_ids(store._filters(None), ids)) if ids else set()
        if present and not dry_run:
            store.delete_nodes(node_ids=sorted(present))
            for node_id in present:
                storage.docstore.delete_document(node_id, raise_error=False)
            storage.persist(persist_dir=str(directory))
        deleted_chunks += sorted(present)
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
    if not dry_run:
        event: dict[str, Any] = {
            "event": {"category": "retention.apply", "action": "D", "outcome": "success"},
            "source": {"app": f"guardrail@{__version__}", "component": "retention", "tenant": tenant},
            "actor": actor_member(actor),
            "policy": {"id": pol.name, "version": pol.version, "sha256": pol.sha256},
            "resources": [{"type": "chunk", "id": i, "labels": [expired[i]]} for i in deleted_chunks],
            "retrieval": {"deleted_nodes": len(deleted_chunks), "vault_tokens_deleted": tokens,
                          "checkpoints_deleted": checkpoints},
        }  # fmt: skip
        with AuditLog.for_keyring(audit_log, keyring) as log:
            log.append(event)
    return RetentionResult(len(deleted_chunks), tokens, checkpoints, dry_run)
