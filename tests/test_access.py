"""Access policies: the shipped packs' matrix, deny overrides, default deny, purpose limitation,
principals in context variables, ``policy explain``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.access import (
    CLASSIFICATIONS,
    Principal,
    Resource,
    acting_as,
    current_principal,
    evaluate,
)
from guardrail.errors import ConfigError, PolicyError
from guardrail.policy import load_policy, parse_policy

HIPAA = load_policy("hipaa-safe-harbor")
GDPR = load_policy("gdpr")

# (role, purpose, classification) -> (effect, redaction profile) under hipaa-safe-harbor
HIPAA_MATRIX = {
    ("clinician", "treatment", "phi"): ("allow", "none"),
    ("clinician", "treatment", "public"): ("allow", "none"),
    ("clinician", "operations", "phi"): ("allow", "limited"),
    ("clinician", "research", "phi"): ("deny", "none"),
    ("researcher", "research", "phi"): ("allow", "redact"),
    ("researcher", "treatment", "phi"): ("deny", "none"),
    ("researcher", "research", "special_category"): ("deny", "none"),
    ("support", "support", "phi"): ("deny", "none"),
    ("support", "support", "internal"): ("allow", "redact"),
    ("support", "treatment", "internal"): ("deny", "none"),
    ("support", "support", "public"): ("allow", "none"),
    ("visitor", "browsing", "public"): ("allow", "none"),
    ("visitor", "browsing", "internal"): ("deny", "none"),
}


@pytest.mark.parametrize(
    ("case", "expected"), list(HIPAA_MATRIX.items()), ids=["-".join(k) for k in HIPAA_MATRIX]
)
def test_hipaa_matrix(case: tuple[str, str, str], expected: tuple[str, str]) -> None:
    role, purpose, classification = case
    decision = evaluate(HIPAA, Principal("p1", [role], purpose), Resource(classification=classification))
    assert (decision.effect, decision.redaction) == expected
    assert decision.rule_ids


GDPR_MATRIX = {
    ("support", "support", "confidential"): ("allow", "pseudonymize"),
    ("support", "marketing", "confidential"): ("deny", "none"),
    ("researcher", "research", "internal"): ("allow", "redact"),
    ("dpo", "legal", "special_category"): ("deny", "none"),
    ("dpo", "legal", "confidential"): ("allow", "none"),
    ("anyone", "anything", "public"): ("allow", "none"),
}


@pytest.mark.parametrize(
    ("case", "expected"), list(GDPR_MATRIX.items()), ids=["-".join(k) for k in GDPR_MATRIX]
)
def test_gdpr_matrix(case: tuple[str, str, str], expected: tuple[str, str]) -> None:
    role, purpose, classification = case
    decision = evaluate(GDPR, Principal("p1", [role], purpose), Resource(classification=classification))
    assert (decision.effect, decision.redaction) == expected


def test_special_categories_are_denied_whoever_asks() -> None:
    decision = evaluate(
        GDPR, Principal("p", ["dpo", "support"], "support"), Resource(classification="special_category")
    )
    assert decision.rule_ids == ("art9-special-category",)


def test_no_principal_is_denied() -> None:
    decision = evaluate(HIPAA, None, Resource(classification="public"))
    assert decision.effect == "deny"
    assert decision.rule_ids == ("no-principal",)


def test_purpose_limitation_denies_other_purposes() -> None:
    resource = Resource(classification="phi", purposes=("treatment",))
    assert evaluate(HIPAA, Principal("c", ["clinician"], "treatment"), resource).allowed
    denied = evaluate(HIPAA, Principal("c", ["clinician"], "operations"), resource)
    assert denied.rule_ids == ("purpose-limitation",)


def test_decision_carries_the_policy_identity() -> None:
    decision = evaluate(HIPAA, Principal("c", ["clinician"], "treatment"), Resource(classification="phi"))
    assert (decision.policy_id, decision.policy_version, decision.policy_sha256) == (
        HIPAA.name,
        HIPAA.version,
        HIPAA.sha256,
    )


_RULES = st.lists(
    st.fixed_dictionaries(
        {
            "effect": st.sampled_from(["allow", "deny"]),
            "roles": st.sampled_from([["*"], ["a"], ["b"], ["a", "b"]]),
            "purposes": st.sampled_from([["*"], ["x"], ["y"]]),
            "classifications": st.sampled_from([["*"], ["phi"], ["internal", "phi"], ["public"]]),
        }
    ),
    max_size=6,
)


def _policy(rules: list[dict[str, object]]) -> object:
    body = {
        "name": "prop",
        "version": "1",
        "detection": {"entities": ["PERSON"]},
        "access": {"rules": [dict(r, id=f"r{i}") for i, r in enumerate(rules)]},
    }
    return parse_policy(json.dumps(body))


@settings(max_examples=200, deadline=None)
@given(
    rules=_RULES,
    role=st.sampled_from(["a", "b", "c"]),
    purpose=st.sampled_from(["x", "y"]),
    classification=st.sampled_from(list(CLASSIFICATIONS)),
)
def test_deny_beats_allow_and_nothing_matching_denies(
    rules: list[dict[str, object]], role: str, purpose: str, classification: str
) -> None:
    principal, resource = Principal("p", [role], purpose), Resource(classification=classification)
    decision = evaluate(_policy(rules), principal, resource)
    matching = [
        r
        for r in rules
        if ("*" in r["roles"] or role in r["roles"])  # type: ignore[operator]
        and ("*" in r["purposes"] or purpose in r["purposes"])  # type: ignore[operator]
        and ("*" in r["classifications"] or classification in r["classifications"])  # type: ignore[operator]
    ]
    if any(r["effect"] == "deny" for r in matching):
        assert decision.effect == "deny"
    elif matching:
        assert decision.effect == "allow"
    else:
        assert decision.rule_ids == ("default-deny",)
    # adding a matching deny rule anywhere always denies
    denied = evaluate(_policy([*rules, {"effect": "deny"}]), principal, resource)
    assert denied.effect == "deny"


@pytest.mark.parametrize(
    ("access", "where"),
    [
        ('{"rules": [{"id": "a", "effect": "allow", "redaction": "nope"}]}', "access.rules[0].redaction"),
        (
            '{"rules": [{"id": "a", "effect": "allow", "classifications": ["secret"]}]}',
            "access.rules[0].classifications",
        ),
        ('{"rules": [{"id": "a", "effect": "deny"}, {"id": "a", "effect": "deny"}]}', "access.rules"),
        ('{"rules": [{"id": "a", "effect": "maybe"}]}', "access.rules[0].effect"),
        ('{"profiles": {"p": {"PERSON": "shred"}}}', "access.profiles"),
    ],
    ids=["unknown-profile", "unknown-classification", "duplicate-id", "bad-effect", "bad-profile-operator"],
)
def test_invalid_access_sections_name_the_place(access: str, where: str) -> None:
    text = f'name: bad\nversion: "1"\ndetection:\n  entities: [PERSON]\naccess: {access}\n'
    with pytest.raises(PolicyError) as excinfo:
        parse_policy(text, source="bad.yaml")
    assert f" at {where}: " in str(excinfo.value)


def test_principal_validation() -> None:
    with pytest.raises(ConfigError):
        Principal("", ["a"], "x")
    with pytest.raises(ConfigError):
        Principal("p", "clinician", "treatment")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Principal("p", ["a"], "")


def test_resource_labels_from_metadata() -> None:
    resource = Resource.from_metadata(
        {"classification": "phi", "subjects": "patient-1", "purposes": ["treatment"]}
    )
    assert resource == Resource(classification="phi", subjects=("patient-1",), purposes=("treatment",))
    assert Resource.from_metadata({}).classification == "internal"
    with pytest.raises(ConfigError):
        Resource.from_metadata({"classification": "top-secret"})


def test_acting_as_is_per_thread() -> None:
    seen: dict[str, str | None] = {}
    barrier = threading.Barrier(2)

    def worker(name: str) -> None:
        with acting_as(Principal(name, ["r"], "x")):
            barrier.wait()
            principal = current_principal()
            seen[name] = principal.id if principal else None

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("t1", "t2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"t1": "t1", "t2": "t2"}
    assert current_principal() is None


def test_acting_as_is_per_asyncio_task() -> None:
    async def task(name: str) -> str | None:
        with acting_as(Principal(name, ["r"], "x")):
            await asyncio.sleep(0.01)
            principal = current_principal()
            return principal.id if principal else None

    async def main() -> list[str | None]:
        return list(await asyncio.gather(task("a"), task("b"), task("c")))

    assert asyncio.run(main()) == ["a", "b", "c"]


def test_policy_explain_cli(tmp_path: Path) -> None:
    def explain(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "guardrail.cli", "policy", "explain", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    proc = explain(
        "hipaa-safe-harbor",
        "--principal",
        '{"id": "dr-chen", "roles": ["clinician"], "purpose": "treatment"}',
        "--resource",
        '{"classification": "phi"}',
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["effect"] == "allow"
    assert decision["rule_ids"] == ["clinician-treatment"]
    assert decision["policy"]["sha256"] == HIPAA.sha256
    bad = explain("hipaa-safe-harbor", "--principal", "{not json")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
