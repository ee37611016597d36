"""Access policies: who (principal, roles), why (purpose) and what (resource labels) decide ``deny``,
``allow`` or ``allow`` with a redaction profile.

Evaluation is pure and fast: deny rules override allow rules, the first matching allow rule chooses the
redaction profile, and nothing matching means deny (deny by default). Purpose limitation (GDPR Art.
5(1)(b)) is built in: a resource that names its allowed ``purposes`` is denied for any other purpose.
Every :class:`Decision` carries the policy's id, version and SHA-256.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guardrail.errors import ConfigError, GuardrailError

__all__ = [
    "CLASSIFICATIONS",
    "AccessDenied",
    "AccessSettings",
    "Decision",
    "Principal",
    "Resource",
    "Rule",
    "acting_as",
    "current_principal",
    "evaluate",
]

CLASSIFICATIONS = ("public", "internal", "confidential", "phi", "special_category")
Effect = Literal["allow", "deny"]
BUILTIN_PROFILES = ("none", "pseudonymize", "redact")


class AccessDenied(GuardrailError):
    """The principal may not see the resource (or no principal was set). Names the rule, not the data."""

    def __init__(self, message: str, *, rule_ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.rule_ids = tuple(rule_ids)


# --------------------------------------------------------------------------- who and what


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking and why: an id (your own user id), roles and the purpose of this request."""

    id: str
    roles: tuple[str, ...] | list[str]
    purpose: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ConfigError("a principal needs an id")
        if isinstance(self.roles, str):
            raise ConfigError("roles is a list of role names, not a string")
        object.__setattr__(self, "roles", tuple(self.roles))
        if not self.purpose:
            raise ConfigError("a principal needs a purpose (e.g. treatment, research, support)")


@dataclass(frozen=True, slots=True)
class Resource:
    """The labels of a chunk, from document metadata at ingestion."""

    tenant: str = "default"
    classification: str = "internal"
    purposes: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()

    @classmethod
    def from_metadata(
        cls, metadata: Mapping[str, Any] | None, *, default_classification: str = "internal"
    ) -> Resource:
        """Labels from node metadata (documented keys: tenant, classification, purposes, subjects, labels)."""
        m = metadata or {}

        def strings(key: str) -> tuple[str, ...]:
            value = m.get(key)
            if value is None:
                return ()
            if isinstance(value, str):
                return (value,)
            return tuple(str(v) for v in value)

        classification = str(m.get("classification") or default_classification)
        if classification not in CLASSIFICATIONS:
            raise ConfigError(f"classification {classification!r} is not one of {', '.join(CLASSIFICATIONS)}")
        return cls(
            tenant=str(m.get("tenant") or "default"),
            classification=classification,
            purposes=strings("purposes"),
            subjects=strings("subjects") or strings("subject"),
            labels=strings("labels"),
        )


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "guardrail_principal", default=None
)


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Set the current principal for this thread or asyncio task (a context variable)."""
    if not isinstance(principal, Principal):
        raise ConfigError("acting_as needs a Principal")
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def current_principal() -> Principal | None:
    """The principal set by the innermost :func:`acting_as`, if any."""
    return _current.get()


# --------------------------------------------------------------------------- rules


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Model):
    """One rule: if the principal has one of ``roles``, asks for one of ``purposes``, and the resource's
    classification is one of ``classifications`` (and it carries ``labels_any`` if given), then
    ``effect``. ``"*"`` matches anything."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    effect: Effect
    roles: list[str] = ["*"]
    purposes: list[str] = ["*"]
    classifications: list[str] = ["*"]
    labels_any: list[str] = []
    redaction: str = "redact"
    description: str = ""

    @field_validator("classifications")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c != "*" and c not in CLASSIFICATIONS]
        if unknown:
            raise ValueError(f"unknown classification {unknown[0]!r}; use {', '.join(CLASSIFICATIONS)} or *")
        return value

    def matches(self, principal: Principal, resource: Resource) -> bool:
        if "*" not in self.roles and not set(self.roles).intersection(principal.roles):
            return False
        if "*" not in self.purposes and principal.purpose not in self.purposes:
            return False
        if "*" not in self.classifications and resource.classification not in self.classifications:
            return False
        return not self.labels_any or bool(set(self.labels_any).intersection(resource.labels))


class AccessSettings(_Model):
    """The ``access`` section of a policy."""

    default_classification: str = "internal"
    phi_classification: str = "phi"
    purpose_codes: dict[str, str] = {}
    profiles: dict[str, dict[str, str]] = {}
    rules: list[Rule] = []

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, value: list[Rule]) -> list[Rule]:
        seen: set[str] = set()
        for rule in value:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return value

    @field_validator("profiles")
    @classmethod
    def _operators(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        ops = {"replace", "pseudonymize", "hash", "mask", "remove", "generalize", "keep"}
        for name, profile in value.items():
            if name in BUILTIN_PROFILES:
                raise ValueError(f"profile name {name!r} is built in; choose another")
            bad = sorted(set(profile.values()) - ops)
            if bad:
                raise ValueError(
                    f"profile {name!r}: unknown operator {bad[0]!r}; use one of {', '.join(sorted(ops))}"
                )
        return value

    def profile_names(self) -> set[str]:
        return set(BUILTIN_PROFILES) | set(self.profiles)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one principal and resource, with the rule(s) that made it."""

    effect: Effect
    rule_ids: tuple[str, ...]
    redaction: str
    policy_id: str
    policy_version: str
    policy_sha256: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    def to_dict(self) -> dict[str, Any]:
        return {
            "effect": self.effect,
            "rule_ids": list(self.rule_ids),
            "redaction": self.redaction,
            "policy": {"id": self.policy_id, "version": self.policy_version, "sha256": self.policy_sha256},
            "reason": self.reason,
        }


def possible_classifications(policy: Any, principal: Principal) -> list[str]:
    """Classifications some resource could be released under to ``principal`` (labels and purposes
    unknown): the pre-filter pushed into vector queries. A classification is left out only when no
    allow rule could match it, or a deny rule matches it whatever the labels."""
    settings: AccessSettings = policy.access_settings
    out = []
    for classification in CLASSIFICATIONS:
        probe = Resource(classification=classification)
        rules = [
            r
            for r in settings.rules
            if r.matches(principal, probe) or (r.labels_any and _matches_but_labels(r, principal, probe))
        ]
        if any(r.effect == "deny" and not r.labels_any for r in rules):
            continue
        if any(r.effect == "allow" for r in rules):
            out.append(classification)
    return out


def _matches_but_labels(rule: Rule, principal: Principal, resource: Resource) -> bool:
    return rule.model_copy(update={"labels_any": []}).matches(principal, resource)


def evaluate(policy: Any, principal: Principal | None, resource: Resource) -> Decision:
    """Decide ``principal``'s access to ``resource`` under ``policy`` (a :class:`~guardrail.policy.Policy`).

    Deny overrides allow; the first matching allow chooses the redaction profile; no match denies.
    """
    settings: AccessSettings = policy.access_settings

    def decide(effect: Effect, rule_ids: Sequence[str], redaction: str, reason: str) -> Decision:
        return Decision(
            effect, tuple(rule_ids), redaction, policy.name, policy.version, policy.sha256, reason
        )

    if principal is None:
        return decide("deny", ["no-principal"], "none", "no principal was set for this request")
    if resource.purposes and principal.purpose not in resource.purposes:
        return decide(
            "deny",
            ["purpose-limitation"],
            "none",
            f"purpose {principal.purpose!r} is not one the resource allows",
        )
    allow: Rule | None = None
    for rule in settings.rules:
        if not rule.matches(principal, resource):
            continue
        if rule.effect == "deny":
            return decide("deny", [rule.id], "none", rule.description or "denied by rule")
        if allow is None:
            allow = rule
    if allow is None:
        return decide("deny", ["default-deny"], "none", "no rule allows this (deny by default)")
    return decide("allow", [allow.id], allow.redaction, allow.description or "allowed by rule")
