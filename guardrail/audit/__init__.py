"""The tamper-evident audit log: ``guardrail.audit/1`` records, an RFC 6962 Merkle tree, signed checkpoints.

Write with :class:`AuditLog` (``append``), check with :func:`verify`, prove one event with :func:`prove`
and :func:`verify_proof`. The format, the guarantees and the honest limits are in ``docs/audit.md``.
"""

from guardrail.audit.errors import DAMAGE_KINDS, AuditIntegrityError, AuditWriteError, DamageKind
from guardrail.audit.log import AuditLog, default_origin
from guardrail.audit.schema import CATEGORIES, FORBIDDEN_KEYS, SCHEMA, AuditEventError
from guardrail.audit.verify import (
    InclusionProof,
    TornTail,
    VerifyReport,
    iter_records,
    load_verifier_key,
    prove,
    verify,
    verify_proof,
)

__all__ = [
    "CATEGORIES",
    "DAMAGE_KINDS",
    "FORBIDDEN_KEYS",
    "SCHEMA",
    "AuditEventError",
    "AuditIntegrityError",
    "AuditLog",
    "AuditWriteError",
    "DamageKind",
    "InclusionProof",
    "TornTail",
    "VerifyReport",
    "default_origin",
    "iter_records",
    "load_verifier_key",
    "prove",
    "verify",
    "verify_proof",
]
