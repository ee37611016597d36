"""HIPAA Safe Harbor coverage of one dataset export: the 18 identifiers of 45 CFR 164.514(b)(2)(i)(A)-(R)
and how the export handled each, from the ``ft.export`` event's counts and operators.

The identifier list (and the entity types that stand for each identifier) comes from the export's own
policy when it declares ``identifiers``, else from the shipped ``hipaa-safe-harbor`` pack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guardrail.policy import Policy, SafeHarborIdentifier, load_policy
from guardrail.reports.model import Column, Table

__all__ = ["SAFE_HARBOR_NOTE", "reference_identifiers", "safe_harbor_table"]

SAFE_HARBOR_NOTE = (
    "A redaction pass is evidence, not a certification: Safe Harbor (164.514(b)(2)(ii)) also requires "
    "that the covered entity has no actual knowledge that the remaining information could identify an "
    "individual, and applies to identifiers of relatives, employers and household members too."
)

_COLUMNS = (
    Column("id", "id"),
    Column("identifier", "identifier"),
    Column("entities", "entity types"),
    Column("found", "found", numeric=True),
    Column("remaining", "remaining", numeric=True),
    Column("operators", "operators"),
    Column("status", "status"),
)

# operators that leave part of the value or derive a code from it (164.514(c)): not a removal
_WEAK = {
    "mask": "PARTLY KEPT (mask)",
    "hash": "CODE DERIVED FROM VALUE (hash, 164.514(c))",
    "keyed": "CODE DERIVED FROM VALUE (keyed pseudonym, 164.514(c)): NOT Safe Harbor",
    "keep": "KEPT",
}


def reference_identifiers() -> tuple[SafeHarborIdentifier, ...]:
    """The 18 identifiers as the shipped ``hipaa-safe-harbor`` pack maps them to entity types."""
    return tuple(load_policy("hipaa-safe-harbor").identifiers)


def _ints(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


def safe_harbor_table(
    table_id: str,
    title: str,
    dataset: Mapping[str, Any],
    pii: Mapping[str, Any],
    policy: Policy | None,
    reference: tuple[SafeHarborIdentifier, ...],
) -> Table:
    """The coverage table of one export.

    Args:
        table_id: the block id.
        title: the table title.
        dataset: the event's ``dataset`` member (``findings_before``, ``findings_after``).
        pii: the event's ``pii`` member (``operators``: entity type -> operator name).
        policy: the export's policy when its exact text is known (to tell "not detected" from "none
            found"); None otherwise.
        reference: the identifier list to use when ``policy`` declares none.
    """
    identifiers = tuple(policy.identifiers) if policy is not None and policy.identifiers else reference
    before = _ints(dataset.get("findings_before"))
    after = _ints(dataset.get("findings_after"))
    raw_ops = pii.get("operators")
    operators = {str(k): str(v) for k, v in raw_ops.items()} if isinstance(raw_ops, Mapping) else {}
    if str(dataset.get("token_method", "")).startswith("keyed"):
        # keyed pseudonyms are computed from the value: a re-identification code derived from the
        # individual's information, which 164.514(c)(1) forbids
        operators = {e: ("keyed" if o == "pseudonymize" else o) for e, o in operators.items()}
    detected = policy.detection.all_entities if policy is not None else None
    rows = []
    for ident in identifiers:
        entities = tuple(ident.entities)
        found = sum(before.get(e, 0) for e in entities)
        remaining = sum(after.get(e, 0) for e in entities)
        ops = sorted({operators[e] for e in entities if e in operators})
        if policy is not None and detected is not None:
            ops = ops or sorted(
                {policy.redaction.operator_for(e).operator for e in entities if e in detected}
            )
        status = _status(ident, entities, found, remaining, ops, detected)
        rows.append(
            (
                ident.id,
                ident.name,
                ", ".join(entities) or "-",
                found,
                remaining,
                ", ".join(ops) or "-",
                status,
            )
        )
    note = SAFE_HARBOR_NOTE
    if policy is None:
        note = (
            "The export's policy text is not available (not a shipped pack with the recorded sha256): an "
            "identifier with nothing found may also be one the policy does not detect. " + note
        )
    return Table(table_id, title, _COLUMNS, tuple(rows), note=note)


def _status(
    ident: SafeHarborIdentifier,
    entities: tuple[str, ...],
    found: int,
    remaining: int,
    ops: list[str],
    detected: frozenset[str] | None,
) -> str:
    if not entities:
        return "HUMAN REVIEW (out of scope for text)" if ident.human_review else "no entity type mapped"
    if remaining:
        return f"RESIDUAL: {remaining} remaining"
    missing = [e for e in entities if detected is not None and e not in detected]
    if detected is not None and len(missing) == len(entities):
        return "NOT DETECTED by the export's policy"
    weak = [_WEAK[o] for o in ops if o in _WEAK]
    if found and weak:
        status = "; ".join(weak)
    elif found:
        status = f"handled ({', '.join(ops)})" if ops else "handled"
    else:
        status = "none found"
    if missing:
        status += f"; not detected: {', '.join(missing)}"
    if ident.human_review:
        status += "; human review"
    return status
