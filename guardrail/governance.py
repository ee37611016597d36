"""The policy's governance sections: purposes with their lawful bases, processors, retention.

These sections do not change what is released; they say *why* and *to whom* it is processed, and for
how long it may be kept, so that every audit event and report can carry the answer:

- ``purposes``: per purpose of use, its code, its name in words, the GDPR Art. 6(1) basis, the Art. 9(2)
  condition where special categories are processed, and the HIPAA basis for uses and disclosures
  (treatment, payment, operations under 164.506; research under 164.512(i) with a waiver or an
  authorization; a limited data set under 164.514(e) with a data use agreement; an authorization under
  164.508; required by law, public health).
- ``processors``: the services that receive released text (LLM, embedding, vector database host), their
  role (processor, business associate), region, transfer mechanism and agreement (DPA/BAA).
- ``retention``: how long knowledge, vault entries and dataset checkpoints may be kept, per
  classification and per purpose.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ART9_CONDITIONS",
    "GDPR_BASES",
    "HIPAA_BASES",
    "TPO_BASES",
    "ProcessorSpec",
    "PurposeSpec",
    "RetentionSettings",
    "parse_duration",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: GDPR Art. 6(1) lawful bases, by the code a policy writes
GDPR_BASES: dict[str, str] = {
    "6(1)(a)": "consent (Art. 6(1)(a))",
    "6(1)(b)": "performance of a contract (Art. 6(1)(b))",
    "6(1)(c)": "legal obligation (Art. 6(1)(c))",
    "6(1)(d)": "vital interests (Art. 6(1)(d))",
    "6(1)(e)": "public interest or official authority (Art. 6(1)(e))",
    "6(1)(f)": "legitimate interests (Art. 6(1)(f))",
}
#: GDPR Art. 9(2) conditions for special categories of personal data
ART9_CONDITIONS: dict[str, str] = {
    "9(2)(a)": "explicit consent (Art. 9(2)(a))",
    "9(2)(b)": "employment and social security law (Art. 9(2)(b))",
    "9(2)(c)": "vital interests (Art. 9(2)(c))",
    "9(2)(d)": "not-for-profit body (Art. 9(2)(d))",
    "9(2)(e)": "made manifestly public by the data subject (Art. 9(2)(e))",
    "9(2)(f)": "legal claims (Art. 9(2)(f))",
    "9(2)(g)": "substantial public interest (Art. 9(2)(g))",
    "9(2)(h)": "health or social care (Art. 9(2)(h))",
    "9(2)(i)": "public health (Art. 9(2)(i))",
    "9(2)(j)": "archiving, research or statistics (Art. 9(2)(j), Art. 89(1))",
}
#: HIPAA bases for uses and disclosures of PHI
HIPAA_BASES: dict[str, str] = {
    "treatment": "treatment (TPO, 45 CFR 164.506)",
    "payment": "payment (TPO, 45 CFR 164.506)",
    "operations": "health care operations (TPO, 45 CFR 164.506)",
    "research-waiver": "research with an IRB/privacy board waiver (45 CFR 164.512(i)(1)(i))",
    "research-authorization": "research with the individual's authorization (45 CFR 164.508, 164.512(i))",
    "limited-data-set": "limited data set under a data use agreement (45 CFR 164.514(e))",
    "authorization": "the individual's authorization (45 CFR 164.508)",
    "required-by-law": "required by law (45 CFR 164.512(a))",
    "public-health": "public health activities (45 CFR 164.512(b))",
}
#: the HIPAA bases whose disclosures the 164.528 accounting excludes (164.528(a)(1)(i))
TPO_BASES = frozenset({"treatment", "payment", "operations"})

_CODE = re.compile(r"^[A-Z][A-Z0-9_-]*$")


def _choice(value: str, known: dict[str, str], what: str) -> str:
    if value not in known:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(known)}")
    return value


class PurposeSpec(_Model):
    """One purpose of use: its code, its name in words and its legal bases.

    ``code``: the purpose-of-use code recorded in events (e.g. ``TREAT``, ``HRESCH``); default: the
    purpose name upper-cased. ``agreement``: the data use agreement (limited data set), the waiver or the
    authorization form that the HIPAA basis rests on.
    """

    code: str | None = None
    name: str | None = None
    gdpr_basis: str | None = None
    art9_basis: str | None = None
    hipaa_basis: str | None = None
    agreement: str | None = None

    @field_validator("code")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is not None and not _CODE.match(value):
            raise ValueError(f"purpose codes are UPPER_CASE (e.g. TREAT, HRESCH), got {value!r}")
        return value

    @field_validator("gdpr_basis")
    @classmethod
    def _gdpr(cls, value: str | None) -> str | None:
        return None if value is None else _choice(value, GDPR_BASES, "gdpr_basis")

    @field_validator("art9_basis")
    @classmethod
    def _art9(cls, value: str | None) -> str | None:
        return None if value is None else _choice(value, ART9_CONDITIONS, "art9_basis")

    @field_validator("hipaa_basis")
    @classmethod
    def _hipaa(cls, value: str | None) -> str | None:
        return None if value is None else _choice(value, HIPAA_BASES, "hipaa_basis")

    @model_validator(mode="after")
    def _agreement_where_needed(self) -> PurposeSpec:
        if self.hipaa_basis in ("limited-data-set", "research-waiver") and not self.agreement:
            what = "data use agreement" if self.hipaa_basis == "limited-data-set" else "waiver"
            raise ValueError(
                f"hipaa_basis {self.hipaa_basis} needs agreement: the reference of the {what} it rests on"
            )
        return self


ProcessorKind = Literal["llm", "embedding", "vector-db"]
ProcessorRole = Literal["processor", "business-associate", "controller", "internal"]


class ProcessorSpec(_Model):
    """A service that receives text released by the guard (an LLM, an embedding API) or hosts the store.

    ``match``: class or model names (case-insensitive) that identify this processor among a query
    engine's LLM and embed model, e.g. ``[AzureOpenAI, gpt-4o]``. ``transfer``: the transfer mechanism for
    a third country (``none``, ``adequacy``, ``SCCs``, ``BCRs``, ...). ``agreement``: the DPA (Art. 28) or
    BAA (45 CFR 164.504(e)) reference; a business associate must have one.
    """

    name: str = Field(min_length=1, max_length=120)
    kind: ProcessorKind
    role: ProcessorRole = "processor"
    region: str | None = None
    transfer: str | None = None
    agreement: str | None = None
    match: list[str] = []

    @model_validator(mode="after")
    def _baa(self) -> ProcessorSpec:
        if self.role == "business-associate" and not self.agreement:
            raise ValueError(
                f"processor {self.name!r} is a business associate: give agreement: (the BAA reference, "
                "45 CFR 164.502(e))"
            )
        return self

    def matches(self, *names: str | None) -> bool:
        """Whether one of ``names`` (a class or model name) is this processor's name or in ``match``."""
        wanted = {m.lower() for m in (self.name, *self.match)}
        return any(n is not None and n.lower() in wanted for n in names)


_DURATION = re.compile(r"^\s*(\d+)\s*(d|days?|w|weeks?|m|months?|y|years?)\s*$", re.IGNORECASE)
_UNIT_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


def parse_duration(value: int | str) -> int:
    """Days in ``value``: an int (days) or ``"30d"``, ``"18 months"``, ``"6y"`` (a month is 30 days, a
    year 365).

    Raises:
        ValueError: not a duration.
    """
    if isinstance(value, bool):
        raise ValueError("a retention period is a number of days or a text like 30d, 18m, 6y")
    if isinstance(value, int):
        if value < 1:
            raise ValueError("a retention period is at least 1 day")
        return value
    match = _DURATION.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a retention period (use days, or a text like 30d, 18m, 6y)")
    days = int(match.group(1)) * _UNIT_DAYS[match.group(2)[0].lower()]
    if days < 1:
        raise ValueError("a retention period is at least 1 day")
    return days


class RetentionSettings(_Model):
    """How long data may be kept (GDPR Art. 5(1)(e), Art. 30(1)(f)); ``guardrail retention apply``
    deletes what is older.

    ``classifications``: per data classification, for stored chunks (and the vault entries of datasets
    processed under the policy: ``vault``). ``purposes``: per purpose of use, for chunks that name their
    purposes (the shortest applicable period wins). ``checkpoints``: interrupted dataset runs' checkpoints.
    ``audit_log``: how long the audit log is kept (documentation, not applied by guardrail: at least 6
    months, AI Act Art. 19; 6 years for HIPAA documentation, 164.316(b)(2)).
    """

    classifications: dict[str, int | str] = {}
    purposes: dict[str, int | str] = {}
    vault: int | str | None = None
    checkpoints: int | str | None = None
    audit_log: int | str | None = None

    @field_validator("classifications", "purposes")
    @classmethod
    def _periods(cls, value: dict[str, int | str]) -> dict[str, int | str]:
        for key, period in value.items():
            try:
                parse_duration(period)
            except ValueError as exc:
                raise _RetentionAt(str(exc), key) from None
        return value

    @field_validator("vault", "checkpoints", "audit_log")
    @classmethod
    def _period(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _audit_floor(self) -> RetentionSettings:
        if self.audit_log is not None and parse_duration(self.audit_log) < 183:
            raise ValueError("audit_log retention must be at least 6 months (AI Act Art. 19)")
        return self

    def days_for(self, *, classification: str | None, purposes: tuple[str, ...] = ()) -> int | None:
        """The retention in days for a chunk (the shortest that applies), or None if none applies."""
        found = []
        if classification is not None and classification in self.classifications:
            found.append(parse_duration(self.classifications[classification]))
        found += [parse_duration(self.purposes[p]) for p in purposes if p in self.purposes]
        return min(found) if found else None

    def is_empty(self) -> bool:
        """No retention period is declared."""
        return not (self.classifications or self.purposes or self.vault or self.checkpoints)


class _RetentionAt(ValueError):
    """An error about one key of a retention mapping (policy.py reads ``where``)."""

    def __init__(self, message: str, *where: str | int) -> None:
        super().__init__(message)
        self.where = where
