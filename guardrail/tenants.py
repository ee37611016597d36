"""Which tenant a command means when none is given: the keyring's only tenant.

The keyring stores owners only as keyed hashes, so tenant names are recognised, not listed: candidates
come from the audit log (``source.tenant`` of guardrail's events), the token vaults beside the keys
(``vault-TENANT.sqlite``) and ``default``; a candidate is a tenant of the keyring when it has a DEK there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from guardrail.errors import ConfigError

__all__ = ["default_tenant", "known_tenants"]


def _candidates(ring: Any, audit_dir: str | os.PathLike[str] | None) -> set[str]:
    names = {"default"}
    names |= {p.name[len("vault-") : -len(".sqlite")] for p in Path(ring.directory).glob("vault-*.sqlite")}
    if audit_dir is not None and Path(audit_dir).is_dir():
        from guardrail.reports.source import LogReader, get

        for record in LogReader(audit_dir, since=None, until=None).records(containing=b'"tenant":'):
            tenant = get(record, "source", "tenant")
            if isinstance(tenant, str) and tenant:
                names.add(tenant)
    return names


def known_tenants(ring: Any, audit_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """The tenants of ``ring`` among the names the log and the keyring directory mention, sorted."""
    return sorted(t for t in _candidates(ring, audit_dir) if ring.tenant_key_ids(t))


def tenant_count(ring: Any) -> int:
    """How many tenants hold a DEK in the keyring (their names are not stored)."""
    return len({k["owner"] for k in ring._data["keys"] if k["scope"] == "tenant"})


def default_tenant(ring: Any, audit_dir: str | os.PathLike[str] | None = None) -> str:
    """The keyring's only tenant; ``default`` for a keyring without tenant keys.

    Raises:
        ConfigError: the keyring holds several tenants (or one whose name nothing here mentions).
    """
    count = tenant_count(ring)
    if count == 0:
        return "default"
    known = known_tenants(ring, audit_dir)
    if count == 1 and len(known) == 1:
        return known[0]
    listed = f" ({', '.join(known)}{', ...' if len(known) < count else ''})" if known else ""
    if count == 1:
        raise ConfigError("the keyring's tenant is not named in the log or beside the keys: pass --tenant T")
    raise ConfigError(f"the keyring holds {count} tenants{listed}: pass --tenant T")
