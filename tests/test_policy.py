"""Policy packs: the shipped packs, validation errors that point at the file, YAML path and line, and the
detection settings (custom recognizers, allow and deny lists, thresholds) end to end."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from guardrail import Guardrail
from guardrail.errors import ConfigError, PolicyError
from guardrail.policy import BUILTIN_ENTITIES, Policy, available_packs, load_policy, parse_policy

PACKS = ["default", "gdpr", "hipaa-safe-harbor"]


# --------------------------------------------------------------------------- shipped packs


@pytest.mark.parametrize("name", PACKS)
def test_shipped_pack_loads(name: str) -> None:
    policy = load_policy(name)
    assert isinstance(policy, Policy)
    assert policy.name == name
    assert policy.id == f"{name}@{policy.version}"
    assert Path(policy.source).name == f"{name}.yaml"
    assert policy.detection.entities
    assert set(policy.detection.entities) <= BUILTIN_ENTITIES


def test_available_packs_lists_the_shipped_packs() -> None:
    assert set(PACKS) <= set(available_packs())


@pytest.mark.parametrize("name", PACKS)
def test_sha256_is_the_hash_of_the_file_text(name: str) -> None:
    policy = load_policy(name)
    path = available_packs()[name]
    assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert policy.sha256 == hashlib.sha256(policy.source_text.encode()).hexdigest()


def test_sha256_changes_with_the_text() -> None:
    text = load_policy("default").source_text
    assert parse_policy(text).sha256 == load_policy("default").sha256
    assert parse_policy(text + "# a comment\n").sha256 != load_policy("default").sha256


def test_sha256_of_a_crlf_file_is_the_hash_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "crlf.yaml"
    path.write_bytes(b'name: crlf\r\nversion: "1"\r\ndetection:\r\n  entities: [PERSON]\r\n')
    assert load_policy(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_hipaa_pack_lists_the_18_identifiers_once_each() -> None:
    policy = load_policy("hipaa-safe-harbor")
    ids = [identifier.id for identifier in policy.identifiers]
    assert sorted(ids) == list("ABCDEFGHIJKLMNOPQR")
    assert len(ids) == len(set(ids)) == 18
    review = {i.id for i in policy.identifiers if i.human_review}
    assert {"P", "Q"} <= review
    for identifier in policy.identifiers:
        assert identifier.name
        assert identifier.handling


def test_hipaa_pack_detects_every_entity_its_identifiers_name_and_nothing_unmapped() -> None:
    policy = load_policy("hipaa-safe-harbor")
    named = {e for identifier in policy.identifiers for e in identifier.entities}
    assert named <= set(policy.detection.entities)
    assert set(policy.detection.entities) <= named


def test_hipaa_pack_generalizes_dates_ages_and_zip_codes() -> None:
    redaction = load_policy("hipaa-safe-harbor").redaction
    for entity in ("DATE_TIME", "AGE", "US_ZIP_CODE"):
        assert redaction.operator_for(entity).operator == "generalize"
    # names and MRNs become re-identification codes (164.514(c)), from the vault in datasets
    assert redaction.operator_for("PERSON").operator == "pseudonymize"
    assert redaction.operator_for("MEDICAL_RECORD_NUMBER").operator == "pseudonymize"
    assert redaction.operator_for("US_SSN").operator == "replace"
    assert load_policy("hipaa-safe-harbor").datasets.tokens == "vault"
    assert load_policy("gdpr").datasets.tokens == "keyed"
    assert load_policy("hipaa-safe-harbor").detection.threshold == 0.4


def test_unknown_pack_name_lists_the_shipped_packs() -> None:
    with pytest.raises(PolicyError) as excinfo:
        load_policy("hipaa-safe-harbour")
    message = str(excinfo.value)
    assert "hipaa-safe-harbour" in message
    for name in PACKS:
        assert name in message
    assert isinstance(excinfo.value, ConfigError)
    assert isinstance(excinfo.value, ValueError)


def test_missing_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(PolicyError, match="cannot read") as excinfo:
        load_policy(path)
    assert str(path) in str(excinfo.value)


def test_load_policy_accepts_paths_and_policies(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text('name: mine\nversion: "2"\ndetection:\n  entities: [PERSON]\n', encoding="utf-8")
    policy = load_policy(path)
    assert policy.id == "mine@2"
    assert load_policy(str(path)).sha256 == policy.sha256
    assert load_policy(policy) is policy


# --------------------------------------------------------------------------- invalid policies

_HEAD = 'name: t\nversion: "1"\n'

# (yaml text, expected YAML path, expected line, a fragment of the reason)
INVALID: dict[str, tuple[str, str, int, str]] = {
    "unknown-top-level-key": (
        _HEAD + "detection:\n  entities: [PERSON]\ncolour: blue\n",
        "colour",
        5,
        "unknown key 'colour'",
    ),
    "unknown-key-under-detection": (
        _HEAD + "detection:\n  entities: [PERSON]\n  treshold: 0.5\n",
        "detection.treshold",
        5,
        "unknown key 'treshold'",
    ),
    "threshold-out-of-range": (
        _HEAD + "detection:\n  entities: [PERSON]\n  thresholds:\n    PERSON: 1.5\n",
        "detection.thresholds.PERSON",
        6,
        "less than or equal to 1",
    ),
    "bad-custom-regex": (
        _HEAD
        + textwrap.dedent(
            """\
            detection:
              entities: [EMPLOYEE_ID]
              custom_recognizers:
                - name: employee
                  entity: EMPLOYEE_ID
                  patterns:
                    - regex: 'EMP-(\\d{6}'
            """
        ),
        "detection.custom_recognizers[0].patterns[0].regex",
        9,
        "does not compile",
    ),
    "custom-entity-not-upper-snake-case": (
        _HEAD
        + textwrap.dedent(
            """\
            detection:
              entities: [PERSON]
              custom_recognizers:
                - name: employee
                  entity: employee-id
                  patterns: [{regex: 'EMP-\\d{6}'}]
            """
        ),
        "detection.custom_recognizers[0].entity",
        7,
        "UPPER_SNAKE_CASE",
    ),
    "unknown-entity-name": (
        _HEAD + "detection:\n  threshold: 0.5\n  entities: [PERSON, PERSONN]\n",
        "detection.entities[1]",
        5,
        "PERSONN",
    ),
    "threshold-for-an-entity-not-detected": (
        _HEAD + "detection:\n  entities: [PERSON]\n  thresholds:\n    EMAIL_ADDRESS: 0.5\n",
        "detection.thresholds.EMAIL_ADDRESS",
        6,
        "EMAIL_ADDRESS",
    ),
    "deny-entry-empty": (
        _HEAD + "detection:\n  entities: [PERSON]\n  deny_list:\n    - value: ''\n",
        "detection.deny_list[0].value",
        6,
        "at least 1 character",
    ),
    "window-overlap-too-large": (
        _HEAD + "detection:\n  entities: [PERSON]\n  window: {size: 2000, overlap: 1000}\n",
        "detection.window",
        5,
        "overlap must be less than half of size",
    ),
    "unknown-operator": (
        _HEAD
        + "detection:\n  entities: [PERSON]\nredaction:\n  operators:\n    PERSON: {operator: obliterate}\n",
        "redaction.operators.PERSON",
        7,
        "obliterate",
    ),
    "unknown-key-in-operator": (
        _HEAD
        + "detection:\n  entities: [PERSON]\nredaction:\n  operators:\n    PERSON:\n      operator: replace\n"
        + "      lable: X\n",
        "redaction.operators.PERSON.lable",
        9,
        "unknown key 'lable'",
    ),
    "mask-keep-last-negative": (
        _HEAD
        + "detection:\n  entities: [PERSON, US_SSN]\nredaction:\n  operators:\n    US_SSN:\n"
        + "      operator: mask\n      keep_last: -1\n",
        "redaction.operators.US_SSN.keep_last",
        9,
        "greater than or equal to 0",
    ),
    "hash-length-too-short": (
        _HEAD + "detection:\n  entities: [PERSON]\nredaction:\n  default: {operator: hash, length: 4}\n",
        "redaction.default.length",
        6,
        "greater than or equal to 8",
    ),
    "operator-for-an-entity-not-detected": (
        _HEAD
        + "detection:\n  entities: [PERSON]\nredaction:\n  operators:\n    PERSON: {operator: replace}\n"
        + "    US_SSN: {operator: remove}\n",
        "redaction.operators.US_SSN",
        8,
        "US_SSN",
    ),
    "name-not-a-slug": (
        'name: Not A Slug\nversion: "1"\ndetection:\n  entities: [PERSON]\n',
        "name",
        1,
        "should match pattern",
    ),
    "detection-missing": (_HEAD + "description: nothing to detect\n", "detection", 1, "Field required"),
}


def _invalid_params() -> list[object]:
    params = []
    for case_id, case in INVALID.items():
        marks = []
        params.append(pytest.param(*case, id=case_id, marks=marks))
    return params


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken-policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "yaml_path", "line", "reason"), _invalid_params())
def test_invalid_policy_names_file_path_and_line(
    tmp_path: Path, text: str, yaml_path: str, line: int, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    error = excinfo.value
    message = str(error)
    assert message.startswith(f"{path}:{line}: "), message
    assert f" at {yaml_path}: " in message, message
    assert reason in message, message
    assert error.source == str(path)
    assert error.path == yaml_path
    assert error.line == line


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        pytest.param(
            _HEAD + "detection:\n  entities: [PERSON\n  threshold: 0.5\n", 5, "malformed YAML", id="malformed"
        ),
        pytest.param(_HEAD + "detection: {entities: [PERSON]\n", 4, "malformed YAML", id="unclosed-mapping"),
        pytest.param("- name: t\n- version: '1'\n", 1, "top level must be a mapping", id="top-level-list"),
        pytest.param("just a string\n", 1, "top level must be a mapping", id="top-level-scalar"),
        pytest.param("", 1, "top level must be a mapping", id="empty-file"),
    ],
)
def test_unparseable_policy_names_file_and_line(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message, message
    assert excinfo.value.line == line


def test_parse_policy_names_its_source() -> None:
    with pytest.raises(PolicyError) as excinfo:
        parse_policy(_HEAD + "detection:\n  entities: []\n", source="inline-test")
    assert str(excinfo.value).startswith("inline-test:4: invalid policy at detection.entities: ")


# --------------------------------------------------------------------------- detection settings end to end

CUSTOM = textwrap.dedent(
    r"""
    name: custom-e2e
    version: "1"
    detection:
      entities: [PERSON, EMAIL_ADDRESS, EMPLOYEE_ID]
      allow_list: ["Amara Okafor"]
      allow_patterns: ['[a-z]+@example\.org']
      deny_list:
        - Project Falcon
        - {value: Bluebird, entity: CODENAME}
      custom_recognizers:
        - name: employee
          entity: EMPLOYEE_ID
          ignore_case: true
          patterns:
            - regex: 'EMP-\d{6}'
              score: 0.9
          context: [employee]
    """
)

NO_PERSONS = textwrap.dedent(
    """
    name: no-persons
    version: "1"
    detection:
      entities: [PERSON, EMAIL_ADDRESS]
      thresholds:
        PERSON: 1.0
    """
)


@pytest.fixture(scope="module")
def gr_custom() -> Guardrail:
    return Guardrail(parse_policy(CUSTOM))


@pytest.fixture(scope="module")
def gr_no_persons() -> Guardrail:
    return Guardrail(parse_policy(NO_PERSONS))


def _values(gr: Guardrail, text: str) -> set[tuple[str, str]]:
    return {(text[f.start : f.end], f.entity) for f in gr.detect(text)}


def test_custom_recognizer_detects_its_entity(gr_custom: Guardrail) -> None:
    text = "Badge EMP-204518 was issued; the old one was emp-000123 and EMP-12 is too short."
    found = _values(gr_custom, text)
    assert ("EMP-204518", "EMPLOYEE_ID") in found
    assert ("emp-000123", "EMPLOYEE_ID") in found  # ignore_case
    assert not any(value == "EMP-12" for value, _ in found)
    assert gr_custom.redact(text).text.startswith("Badge <EMPLOYEE_ID> was issued")


def test_custom_recognizer_findings_name_the_recognizer(gr_custom: Guardrail) -> None:
    text = "Employee EMP-204518 signed in."
    (finding,) = [f for f in gr_custom.detect(text) if f.entity == "EMPLOYEE_ID"]
    assert finding.recognizer == "custom:employee"


def test_allow_listed_name_is_not_redacted(gr_custom: Guardrail) -> None:
    text = "Dr. Amara Okafor referred the patient to Dr. Harold Finch."
    found = _values(gr_custom, text)
    assert ("Harold Finch", "PERSON") in found
    assert not any("Okafor" in value for value, _ in found)
    redacted = gr_custom.redact(text).text
    assert "Amara Okafor" in redacted
    assert "Harold Finch" not in redacted


def test_allow_listed_name_is_case_insensitive(gr_custom: Guardrail) -> None:
    text = "Dr. AMARA OKAFOR and Dr. Harold Finch"
    assert "AMARA OKAFOR" in gr_custom.redact(text).text


def test_allow_pattern_keeps_matching_values(gr_custom: Guardrail) -> None:
    text = "Write to info@example.org or to jane.doe@hospital.com."
    redacted = gr_custom.redact(text).text
    assert "info@example.org" in redacted
    assert "jane.doe@hospital.com" not in redacted


def test_deny_listed_value_is_always_redacted(gr_custom: Guardrail) -> None:
    text = "Project Falcon starts Monday; PROJECT FALCON is secret, project falcon too."
    result = gr_custom.redact(text)
    assert "falcon" not in result.text.lower()
    assert result.text.count("<DENY_LIST>") == 3
    assert {f.entity for f in result.findings} >= {"DENY_LIST"}


def test_deny_list_entry_with_its_own_entity_matches_whole_words(gr_custom: Guardrail) -> None:
    text = "Codename Bluebird; bluebirds sing."
    result = gr_custom.redact(text)
    assert result.text == "Codename <CODENAME>; bluebirds sing."


def test_per_entity_threshold_filters_findings(gr_custom: Guardrail, gr_no_persons: Guardrail) -> None:
    text = "Dr. Harold Finch wrote to Mrs. Megan Murphy at megan.murphy@hospital.com."
    with_persons = {e for _, e in _values(gr_custom, text)}
    assert "PERSON" in with_persons
    found = _values(gr_no_persons, text)
    assert "PERSON" not in {e for _, e in found}
    assert ("megan.murphy@hospital.com", "EMAIL_ADDRESS") in found
