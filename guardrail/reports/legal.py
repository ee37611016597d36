"""Purposes and legal bases in words, as the reports print them (codes kept beside the words)."""

from __future__ import annotations

from typing import Any

from guardrail.governance import ART9_CONDITIONS, GDPR_BASES, HIPAA_BASES, TPO_BASES
from guardrail.reports.source import get

__all__ = [
    "basis_words",
    "is_tpo",
    "processor_words",
    "purpose_code",
    "purpose_words",
    "record_bases",
    "retention_periods",
]

#: purpose-of-use codes read as treatment, payment or operations when an event records no HIPAA basis
#: (events written before policies declared one)
LEGACY_TPO_CODES = frozenset({"TREAT", "ETREAT", "HPAYMT", "HOPERAT", "OPERATIONS", "PAYMENT", "TREATMENT"})


def purpose_code(record: dict[str, Any]) -> str | None:
    """The event's purpose code, upper-cased (``operations`` and ``OPERATIONS`` are one purpose)."""
    code = get(record, "purpose", "code")
    return code.upper() if isinstance(code, str) and code else None


def purpose_words(code: str | None, name: str | None) -> str:
    """``"treatment of the patient (TREAT)"``; ``"not declared"`` when there is no purpose."""
    if not code or code == "NONE":
        return "no purpose recorded"
    if name and name.upper() != code:
        return f"{name} ({code})"
    return code.lower().replace("_", " ") + f" ({code})"


def basis_words(kind: str, value: Any) -> str | None:
    """A declared basis code in words: ``6(1)(c)`` -> ``legal obligation (Art. 6(1)(c))``."""
    if not isinstance(value, str) or not value:
        return None
    table = {"gdpr_basis": GDPR_BASES, "art9_basis": ART9_CONDITIONS, "hipaa_basis": HIPAA_BASES}[kind]
    return table.get(value, value)


def record_bases(record: dict[str, Any], policy: Any = None) -> dict[str, str]:
    """The lawful bases of an event, from the event itself, else from the policy in force for its purpose
    code (marked ``per policy``)."""
    out: dict[str, str] = {}
    for kind in ("gdpr_basis", "art9_basis", "hipaa_basis"):
        words = basis_words(kind, get(record, "purpose", kind))
        if words is not None:
            out[kind] = words
    if policy is not None and len(out) < 3:
        code = purpose_code(record)
        for name in (*policy.purposes, *policy.access.purpose_codes):
            spec = policy.purpose(name)
            if spec.code == code:
                for kind in ("gdpr_basis", "art9_basis", "hipaa_basis"):
                    words = basis_words(kind, getattr(spec, kind))
                    if kind not in out and words is not None:
                        out[kind] = f"{words} (per policy)"
                break
    return out


def is_tpo(record: dict[str, Any], disclosure_purpose: str | None = None) -> bool:
    """Whether a disclosure is for treatment, payment or health care operations: from the recorded HIPAA
    basis when the event has one, else from the purpose code."""
    basis = get(record, "purpose", "hipaa_basis")
    if isinstance(basis, str) and basis:
        return basis in TPO_BASES
    code = purpose_code(record) or ""
    return code in LEGACY_TPO_CODES or (disclosure_purpose or "").upper() in LEGACY_TPO_CODES


def processor_words(member: dict[str, Any]) -> str:
    """``"Azure OpenAI EU (llm, processor, EU, DPA-17)"``; an undeclared component says so."""
    name = str(member.get("name") or "-")
    if name == "undeclared":
        what = " ".join(str(member.get(k)) for k in ("class", "model") if member.get(k))
        return f"UNDECLARED {member.get('kind', 'service')} {what} (declare it in the policy's processors)"
    details = [str(member[k]) for k in ("kind", "role", "region", "transfer", "agreement") if member.get(k)]
    return f"{name} ({', '.join(details)})" if details else name


def _days(period: int | str) -> str:
    from guardrail.governance import parse_duration

    days = parse_duration(period)
    if days % 365 == 0:
        return f"{days // 365} year(s)"
    if days % 30 == 0:
        return f"{days // 30} month(s)"
    return f"{days} day(s)"


def retention_periods(policies: list[Any]) -> list[str]:
    """The storage periods the policies declare, in words (``phi data: 6 year(s)``)."""
    out: list[str] = []
    for p in policies:
        r = p.retention
        out += [f"{c} data: {_days(d)}" for c, d in r.classifications.items()]
        out += [f"data kept for {u}: {_days(d)}" for u, d in r.purposes.items()]
        if r.vault is not None:
            out.append(f"pseudonym (token) vault: {_days(r.vault)}")
    return list(dict.fromkeys(out))
