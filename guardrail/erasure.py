"""Complete erasure of one data subject (GDPR Art. 17), with a signed certificate.

:func:`erase_subject` deletes the subject's nodes and docstore records from persisted encrypted stores
(and writes them back), destroys the subject's DEK (crypto-shredding: copies that escaped deletion,
backups included, stay unreadable), deletes the subject's token-vault entries (re-identifying their
tokens then answers "erased", and the attempt is audited), lists every dataset export that included the
subject (from the subject references on ``ft.export`` events), writes one ``dsar.erasure`` audit event
carrying the actor and the request reference, and a **certificate**: a JSON file with what was deleted
and destroyed, the counts, the key ids, and the audit event's inclusion proof, signed with the audit
log's Ed25519 key. :func:`verify_certificate` checks it against the log's verifier key.

Nothing in the certificate names the subject: only the keyed reference the audit log uses.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardrail.db import is_postgres_url
from guardrail.errors import ConfigError
from guardrail.keys import Keyring, KeyringLike, as_keyring

__all__ = [
    "CERTIFICATE_FORMAT",
    "ErasureResult",
    "destroyed_keys_state",
    "erase_subject",
    "subject_trace",
    "verify_certificate",
]

CERTIFICATE_FORMAT = "guardrail.erasure-certificate/1"
_NOTE_TITLE = "guardrail erasure certificate"


@dataclass(frozen=True, slots=True)
class ErasureResult:
    """What an erasure did (no names: the subject is its keyed reference).

    Attributes:
        subject_ref: the subject's keyed reference.
        vector_nodes_deleted: nodes deleted from the vector stores.
        docstore_records_deleted: docstore and index records deleted.
        keys_destroyed: ids of the subject's DEKs destroyed.
        vault_tokens_deleted: token-vault entries deleted.
        vault_tokens_shared: tokens kept because other subjects' records use them too.
        datasets: dataset exports recorded as including the subject (to delete or regenerate).
        event_id: the ``dsar.erasure`` audit event, when an audit log was given.
        certificate: the certificate file, when written.
    """

    subject_ref: str
    vector_nodes_deleted: int
    docstore_records_deleted: int
    keys_destroyed: list[str]
    vault_tokens_deleted: int = 0
    vault_tokens_shared: int = 0
    datasets: tuple[dict[str, Any], ...] = ()
    event_id: str | None = None
    certificate: Path | None = None
    stores: tuple[str, ...] = field(default=())


def subject_trace(
    keyring: Keyring, subject: str, tenant: str, audit_log: str | os.PathLike[str] | None
) -> tuple[bool, list[str]]:
    """Whether the keyring or the log knows ``subject`` under ``tenant`` (a key, destroyed or not, or an
    event naming its reference), and where else it has events: ``"N event(s) under tenant 'T'
    (reference R)"`` for the keyring's other tenants. Names are never returned, only keyed references."""
    from guardrail.reports.subject import count_subject_events
    from guardrail.tenants import known_tenants

    def ref_of(t: str) -> str:
        return keyring.token(t, "subject-ref", subject, length=16)

    log = Path(audit_log) if audit_log is not None and Path(audit_log).is_dir() else None
    known = bool(keyring.subject_key_ids(tenant, subject)) or (
        log is not None and count_subject_events(log, ref_of(tenant)) > 0
    )
    elsewhere = []
    if log is not None:
        for other in known_tenants(keyring, log):
            if other != tenant:
                n = count_subject_events(log, ref_of(other))
                if n:
                    elsewhere.append(f"{n} event(s) under tenant {other!r} (reference {ref_of(other)})")
                elif keyring.subject_key_ids(other, subject):
                    elsewhere.append(f"a key under tenant {other!r} (reference {ref_of(other)})")
    return known, elsewhere


def datasets_including(audit_dir: str | os.PathLike[str], subject_ref: str) -> list[dict[str, Any]]:
    """The successful dataset exports whose events list ``subject_ref`` (newest last)."""
    from guardrail.db import is_postgres_url
    from guardrail.reports.source import LogReader, get

    found: list[dict[str, Any]] = []
    if not is_postgres_url(audit_dir) and not Path(audit_dir).is_dir():
        return found
    for record in LogReader(audit_dir, since=None, until=None).records(containing=subject_ref.encode()):
        subjects = record.get("subjects")
        if get(record, "event", "category") != "ft.export" or not isinstance(subjects, list):
            continue
        if subject_ref not in subjects or get(record, "event", "outcome") != "success":
            continue
        member = record.get("dataset")
        dataset: dict[str, Any] = member if isinstance(member, dict) else {}
        found.append(
            {
                "dataset": str(dataset.get("id", "-")),
                "exported_at": str(record.get("occurred_at", "")),
                "output_sha256": str(dataset.get("output_sha256", "")),
                "manifest": str(get(record, "dataset", "manifest", "file") or ""),
                "event_id": str(record.get("event_id", "")),
            }
        )
    return found


def erase_subject(
    subject: str,
    *,
    keyring: KeyringLike,
    tenant: str,
    stores: Sequence[str | os.PathLike[str]] = (),
    storages: Sequence[Any] = (),
    vault: str | os.PathLike[str] | None = None,
    audit_log: str | os.PathLike[str] | None = None,
    actor: str | None = None,
    request_ref: str | None = None,
    certificate: str | os.PathLike[str] | None = None,
    source: str = "erasure",
) -> ErasureResult:
    """Erase one data subject everywhere guardrail keeps their data, and certify it.

    Args:
        subject: the data-subject id (as in the documents' ``subjects`` metadata or ``--subject-field``).
        keyring: the keyring, or its directory's path (its subject DEKs are destroyed).
        tenant: the subject's tenant.
        stores: persisted encrypted storage directories: erased and written back.
        storages: open storage contexts to erase in memory (persist them yourself, or pass their
            directories in ``stores`` instead).
        vault: the token vault (default: the keyring's ``vault-TENANT.sqlite`` when it exists).
        audit_log: where the ``dsar.erasure`` event is written (needed for a certificate).
        actor: who performed the erasure (default: the OS user).
        request_ref: the organisation's reference of the erasure request (a ticket id, never a name).
        certificate: where to write the signed certificate (JSON); needs ``audit_log``.

    Raises:
        ConfigError: a certificate without an audit log, an existing certificate file, an empty subject.
        KeyringError: the keyring or tenant does not open a store.
    """
    from guardrail.audit.events import actor_member
    from guardrail.datasets.tokens import TokenVault
    from guardrail.llama_index.storage import erase_subject as erase_in_storages

    keyring = as_keyring(keyring)
    from guardrail.llama_index.storage import load_storage_context

    if not subject:
        raise ConfigError("--subject is empty: give the data-subject id used in the documents' metadata")
    if certificate is not None and audit_log is None:
        raise ConfigError("an erasure certificate holds the audit event's inclusion proof: pass --audit-log")
    cert_path = Path(certificate) if certificate is not None else None
    if cert_path is not None and cert_path.exists():
        raise ConfigError(f"{cert_path}: exists; give a new file for the erasure certificate")
    from guardrail.audit import AuditLog, AuditWriteError
    from guardrail.audit.auth import SIGNING_KEY_PURPOSE
    from guardrail.crypto import Sealer

    # the log is opened before anything is deleted: an erasure that cannot be recorded changes nothing
    log = AuditLog.for_keyring(audit_log, keyring) if audit_log is not None else None
    try:
        opened = [
            (
                Path(s),
                load_storage_context(Path(s), sealer=Sealer(keyring), keyring=keyring, tenant=tenant),
            )
            for s in stores
        ]
        report = erase_in_storages(
            [*storages, *(st for _, st in opened)], keyring=keyring, tenant=tenant, subject=subject
        )
        for path, storage in opened:
            storage.persist(persist_dir=str(path))
        ref = report.subject_ref
        vault_path = Path(vault) if vault is not None else keyring.directory / f"vault-{tenant}.sqlite"
        deleted = shared = 0
        if vault_path.exists() or is_postgres_url(vault_path):
            with TokenVault(vault_path, keyring=keyring, tenant=tenant) as v:
                done = v.erase_subject(ref)
                deleted, shared = done.deleted, done.shared
        elif vault is not None:
            raise ConfigError(f"{vault_path}: no token vault here (pass the vault the dataset runs used)")
        datasets = datasets_including(audit_log, ref) if audit_log is not None else []
        result = ErasureResult(
            subject_ref=ref,
            vector_nodes_deleted=report.vector_nodes_deleted,
            docstore_records_deleted=report.docstore_records_deleted,
            keys_destroyed=list(report.keys_destroyed),
            vault_tokens_deleted=deleted,
            vault_tokens_shared=shared,
            datasets=tuple(datasets),
            stores=tuple(str(p) for p, _ in opened),
        )
        if log is None:
            return result
        from guardrail import __version__

        event: dict[str, Any] = {
            "event": {"category": "dsar.erasure", "action": "D", "outcome": "success"},
            "source": {"app": f"guardrail@{__version__}", "component": source},
            "actor": actor_member(actor),
            "subjects": [ref],
            "resources": [{"type": "key", "id": k, "labels": ["destroyed"]} for k in result.keys_destroyed]
            + [{"type": "dataset", "id": d["dataset"], "labels": ["includes-subject"]} for d in datasets],
            "retrieval": {
                "deleted_nodes": result.vector_nodes_deleted,
                "deleted_records": result.docstore_records_deleted,
                "vault_tokens_deleted": deleted,
                "vault_tokens_shared": shared,
                "datasets_listed": len(datasets),
            },
            **({"request": {"ref": request_ref, "kind": "erasure (Art. 17)"}} if request_ref else {}),
        }
        try:
            event_id = log.append(event)
        except AuditWriteError as exc:
            # deleted and destroyed by now, for good: say what was done, never "nothing happened"
            raise AuditWriteError(
                f"subject ref {ref} WAS erased ({result.vector_nodes_deleted} node(s) and "
                f"{result.docstore_records_deleted} docstore record(s) deleted, key(s) "
                f"{', '.join(result.keys_destroyed) or '-'} destroyed, {deleted} vault token(s) deleted), "
                f"but the dsar.erasure record was not written ({exc}): no certificate was made; make the "
                "audit log writable and record the erasure by hand (the figures above)"
            ) from exc
    finally:
        if log is not None:
            log.close()
    # closing the log wrote a checkpoint covering the event: its inclusion proof exists now
    result = _replace(result, event_id=str(event_id))
    if cert_path is not None:
        assert audit_log is not None  # checked above: a certificate needs the log
        seed = keyring.hmac_key(SIGNING_KEY_PURPOSE)
        _write_certificate(cert_path, result, audit_log, seed, tenant=tenant, request_ref=request_ref)
        result = _replace(result, certificate=cert_path)
    return result


def _replace(result: ErasureResult, **changes: Any) -> ErasureResult:
    from dataclasses import replace

    return replace(result, **changes)


def _body(result: ErasureResult, *, tenant: str, request_ref: str | None, proof: Any) -> dict[str, Any]:
    return {
        "format": CERTIFICATE_FORMAT,
        "subject_ref": result.subject_ref,
        "tenant": tenant,
        "request_ref": request_ref,
        "erased_at": json.loads(proof.record).get("occurred_at"),
        "deleted": {
            "vector_nodes": result.vector_nodes_deleted,
            "docstore_records": result.docstore_records_deleted,
            "vault_tokens": result.vault_tokens_deleted,
        },
        "kept": {
            "vault_tokens_shared_with_other_subjects": result.vault_tokens_shared,
        },
        "keys_destroyed": list(result.keys_destroyed),
        "stores": list(result.stores),
        "datasets_including_subject": [dict(d) for d in result.datasets],
        "to_do_by_the_controller": [
            "delete or regenerate the dataset exports listed (files outside guardrail's stores)",
            "erase the subject in systems outside guardrail (source documents, backups are shredded by "
            "key destruction only for records sealed under the subject's key)",
        ],
        "audit": {"event_id": result.event_id, "proof": proof.to_dict()},
    }


def _digest(body: dict[str, Any]) -> str:
    from guardrail.audit.canonical import canonicalize

    return hashlib.sha256(canonicalize(body)).hexdigest()


def _write_certificate(
    path: Path,
    result: ErasureResult,
    audit_dir: str | os.PathLike[str],
    seed: bytes,
    *,
    tenant: str,
    request_ref: str | None,
) -> None:
    from guardrail.audit.note import sign_note
    from guardrail.audit.verify import prove
    from guardrail.io import atomic_output

    assert result.event_id is not None
    proof = prove(audit_dir, result.event_id)
    body = _body(result, tenant=tenant, request_ref=request_ref, proof=proof)
    from guardrail.audit.verify import load_verifier_key

    key = load_verifier_key(audit_dir)  # audit.pub, or the PostgreSQL log's stored key
    note = sign_note(f"{_NOTE_TITLE}\nsha256 {_digest(body)}\n", key.name, seed)
    text = json.dumps({"certificate": body, "signature": note}, indent=1, ensure_ascii=False) + "\n"
    with atomic_output(path) as f:
        f.write(text)


def verify_certificate(path: str | os.PathLike[str], public_key: str) -> bool:
    """Whether an erasure certificate holds: signed by the audit key ``public_key`` (verifier-key text),
    its inclusion proof verifies under a checkpoint signed by the same key, and the proven record is the
    ``dsar.erasure`` event of this subject with the certified counts and keys."""
    from guardrail.audit.note import NoteError, VerifierKey, verify_note
    from guardrail.audit.verify import InclusionProof, verify_proof

    try:
        data = json.loads(Path(path).read_text("utf-8"))
        body, note = data["certificate"], data["signature"]
        key = VerifierKey.parse(public_key.strip())
        text = verify_note(note, key)
        if text != f"{_NOTE_TITLE}\nsha256 {_digest(body)}\n":
            return False
        if body.get("format") != CERTIFICATE_FORMAT:
            return False
        proof = InclusionProof.from_json(json.dumps(body["audit"]["proof"]))
        if not verify_proof(proof, public_key.strip()):
            return False
        record = json.loads(proof.record)
        counts = record.get("retrieval") or {}
        keys = [r.get("id") for r in record.get("resources") or () if r.get("type") == "key"]
        return bool(
            record.get("event", {}).get("category") == "dsar.erasure"
            and record.get("event_id") == body["audit"]["event_id"]
            and record.get("subjects") == [body["subject_ref"]]
            and counts.get("deleted_nodes") == body["deleted"]["vector_nodes"]
            and counts.get("deleted_records") == body["deleted"]["docstore_records"]
            and counts.get("vault_tokens_deleted") == body["deleted"]["vault_tokens"]
            and keys == body["keys_destroyed"]
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, NoteError, ConfigError):
        return False


def destroyed_keys_state(path: str | os.PathLike[str], keyring: Any) -> dict[str, str]:
    """What a keyring says today of each key an erasure certificate lists as destroyed: ``"destroyed"``,
    ``"usable"`` (its material is back: a keyring restored from a backup taken before the erasure) or
    ``"unknown"`` (this keyring never held it). The certificate proves what happened then; this checks
    that it still holds. ``keyring``: a :class:`~guardrail.keys.Keyring` or its directory.

    Raises:
        ConfigError: the certificate cannot be read.
    """
    try:
        ids = json.loads(Path(path).read_text("utf-8"))["certificate"]["keys_destroyed"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: not an erasure certificate") from None
    states = {k.id: k.state for k in as_keyring(keyring).list_keys()}
    return {
        i: "unknown" if i not in states else "destroyed" if states[i] == "destroyed" else "usable"
        for i in ids
    }
