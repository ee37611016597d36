"""Audit errors, under the package root ``GuardrailError``::

    GuardrailError
    ├── ConfigError (ValueError)
    │   └── AuditEventError          (guardrail.audit.schema) an event does not fit guardrail.audit/1
    ├── AuditIntegrityError          the log is damaged: index of the first bad record and the kind
    └── AuditWriteError              a record could not be made durable: the caller must fail (fail closed)

Messages name records by index and segment, never by content.
"""

from __future__ import annotations

from typing import Literal, get_args

from guardrail.errors import GuardrailError

__all__ = ["DAMAGE_KINDS", "AuditIntegrityError", "AuditWriteError", "DamageKind"]

DamageKind = Literal[
    "edited",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "bad-signature",
    "torn-tail",
    "malformed",
    "unauthentic",
    "unsigned-tail",
]
DAMAGE_KINDS: tuple[DamageKind, ...] = get_args(DamageKind)


class AuditIntegrityError(GuardrailError):
    """The audit log is damaged.

    Attributes:
        index: 0-based index (= ``seq``) of the first bad record, or None when the damage is not in a
            record (a checkpoint or the public key).
        kind: one of :data:`DAMAGE_KINDS`.
        reason: what was found, without record content.
    """

    def __init__(self, index: int | None, kind: DamageKind, reason: str) -> None:
        where = f"record {index}" if index is not None else "the checkpoints"
        super().__init__(f"audit log damaged at {where} ({kind}): {reason}")
        self.index = index
        self.kind: DamageKind = kind
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (AuditIntegrityError, (self.index, self.kind, self.reason))


class AuditWriteError(GuardrailError):
    """An audit record could not be written durably. The operation it records must not go ahead."""
