"""Re-identification: a vault token back to the value it stands for, for the principals the policy allows.

Every call is a disclosure of personal data: it needs an audit log, and it writes one ``reidentify``
event (allowed or denied; counts per entity type, never a token or a value) before any value is
returned. Keyed tokens cannot be re-identified (they are one-way); only vault tokens can.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.access import AccessDenied, Principal
from guardrail.audit.events import purpose_member
from guardrail.datasets.run import _event, default_vault_path
from guardrail.db import is_postgres_url
from guardrail.errors import ConfigError, DataErased
from guardrail.policy import Policy, load_policy

if TYPE_CHECKING:
    from guardrail.keys import KeyringLike

__all__ = ["reidentify"]

_TOKEN = re.compile(r"<([A-Za-z][A-Za-z0-9_]{0,63})_([0-9A-Z]{6,20})>")


def _allowed(policy: Policy, principal: Principal) -> tuple[bool, str]:
    rules = policy.datasets.reidentify
    if not rules.roles:
        return False, f"policy {policy.id} allows no re-identification (datasets.reidentify.roles is empty)"
    if not set(principal.roles) & set(rules.roles):
        return False, f"re-identification needs one of the roles {', '.join(rules.roles)}"
    if rules.purposes and principal.purpose not in rules.purposes:
        return False, f"re-identification is allowed for the purposes {', '.join(rules.purposes)} only"
    return True, "allowed by datasets.reidentify"


def reidentify(
    tokens: Sequence[str],
    *,
    keyring: KeyringLike,
    principal: Principal,
    audit_log: str | Path,
    policy: str | Path | Policy = "hipaa-safe-harbor",
    tenant: str = "default",
    vault: str | Path | None = None,
) -> dict[str, str]:
    """The values behind vault ``tokens`` (``<ENTITY_XXXXXX>``), in a dict keyed by token.

    Raises:
        AccessDenied: the policy does not allow this principal and purpose (the denial is audited).
        ConfigError: no audit log, a malformed token, a policy with keyed tokens.
        VaultError: a token is not in the vault; DecryptionError: a sealed value does not open.
    """
    from guardrail.audit import AuditLog
    from guardrail.datasets.tokens import TokenVault
    from guardrail.keys import as_keyring

    keyring = as_keyring(keyring)

    pol = load_policy(policy)
    if pol.datasets.tokens != "vault":
        raise ConfigError(
            f"policy {pol.id} makes keyed tokens, which are one-way: only vault tokens can be re-identified"
        )
    if not audit_log:
        raise ConfigError("re-identification is a disclosure and is always audited: pass an audit log")
    counts: Counter[str] = Counter()
    for token in tokens:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ConfigError("not a vault token (expected <ENTITY_XXXXXX>); check the token's spelling")
        counts[match.group(1)] += 1
    ok, reason = _allowed(pol, principal)
    path = Path(vault) if vault is not None else default_vault_path(keyring, tenant)
    if not path.exists() and not is_postgres_url(path):
        raise ConfigError(f"{path}: no token vault here (pass the vault the dataset run used)")
    with TokenVault(path, keyring=keyring, tenant=tenant) as v:
        erased = sum(1 for token in dict.fromkeys(tokens) if v.is_erased(token))
    refused_erased = ok and erased > 0  # only an allowed principal learns that a token was erased
    if refused_erased:
        ok, reason = False, f"{erased} token(s) were erased (Art. 17 erasure or retention): no value is kept"
    event: dict[str, Any] = _event(
        "reidentify",
        "R",
        "success" if ok else "denied",
        pol,
        actor={"ref": principal.id, "type": "user", "roles": list(principal.roles)},
        purpose=purpose_member(pol, principal.purpose),
        resources=[{"type": "vault", "id": f"vault:{tenant}"}],
        pii={"counts": dict(sorted(counts.items()))},
    )
    rule = "dsar.erasure" if refused_erased else "datasets.reidentify"
    decision = "allow" if ok else ("erased" if refused_erased else "deny")
    event["policy"].update(decision=decision, rule_ids=[rule])
    with AuditLog.for_keyring(audit_log, keyring) as log:
        log.append(event)  # before any value is read: no event, no disclosure
    if refused_erased:
        raise DataErased(f"re-identification refused: {reason}")
    if not ok:
        raise AccessDenied(f"re-identification denied: {reason}", rule_ids=["datasets.reidentify"])
    with TokenVault(path, keyring=keyring, tenant=tenant) as v:
        return {token: v.reidentify(token) for token in dict.fromkeys(tokens)}
