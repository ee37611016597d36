"""Redaction operators (replace, pseudonymize, hash, mask, remove, generalize), applied to hand-made
findings, and a property test of the whole detect-and-redact path."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrail import Guardrail
from guardrail.errors import KeyUnavailable
from guardrail.findings import Finding, RedactionResult
from guardrail.policy import Policy, parse_policy
from guardrail.redaction import RESTRICTED_ZIP3, PseudonymScope, Redactor, generalize_value

ENTITIES = "[PERSON, EMAIL_ADDRESS, US_SSN, PHONE_NUMBER, CREDIT_CARD, DATE_TIME, AGE, US_ZIP_CODE]"
KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def make_policy(operators: dict[str, str] | None = None, default: str = "{operator: replace}") -> Policy:
    """A policy with the given operators (YAML flow mappings) per entity."""
    lines = [
        "name: redaction-test",
        'version: "1"',
        "detection:",
        f"  entities: {ENTITIES}",
        "redaction:",
        f"  default: {default}",
        "  operators:" if operators else "  operators: {}",
    ]
    lines += [f"    {entity}: {spec}" for entity, spec in (operators or {}).items()]
    return parse_policy("\n".join(lines) + "\n")


def fixed_clock(year: int = 2025) -> dt.datetime:
    return dt.datetime(year, 6, 1, 12, 0, tzinfo=dt.UTC)


def make_redactor(
    operators: dict[str, str] | None = None,
    default: str = "{operator: replace}",
    *,
    hmac_key: bytes | None = None,
    year: int = 2025,
) -> Redactor:
    return Redactor(make_policy(operators, default), hmac_key=hmac_key, clock=lambda: fixed_clock(year))


def spans(text: str, *values: tuple[str, str]) -> list[Finding]:
    """Findings for each (substring, entity); a substring is taken at its first unused occurrence."""
    out: list[Finding] = []
    taken: set[int] = set()
    for value, entity in values:
        start = text.index(value)
        while start in taken:
            start = text.index(value, start + 1)
        taken.add(start)
        out.append(Finding(start, start + len(value), entity, 0.9, "test"))
    return out


def redact(
    redactor: Redactor, text: str, *values: tuple[str, str], scope: PseudonymScope | None = None
) -> str:
    return redactor.redact(text, spans(text, *values), scope=scope).text


# --------------------------------------------------------------------------- replace


def test_replace_uses_the_entity_name() -> None:
    text = "Patient Jane Doe, SSN 536-22-8745."
    out = redact(make_redactor(), text, ("Jane Doe", "PERSON"), ("536-22-8745", "US_SSN"))
    assert out == "Patient <PERSON>, SSN <US_SSN>."


def test_replace_with_a_custom_label() -> None:
    redactor = make_redactor({"PERSON": "{operator: replace, label: REDACTED}"})
    text = "Jane Doe wrote to jane@example.com"
    out = redact(redactor, text, ("Jane Doe", "PERSON"), ("jane@example.com", "EMAIL_ADDRESS"))
    assert out == "<REDACTED> wrote to <EMAIL_ADDRESS>"


def test_text_without_findings_is_unchanged() -> None:
    result = make_redactor().redact("nothing to see here", [])
    assert result.text == "nothing to see here"
    assert result.findings == ()


# --------------------------------------------------------------------------- pseudonymize


PSEUDO = {"PERSON": "{operator: pseudonymize}", "EMAIL_ADDRESS": "{operator: pseudonymize}"}


def test_pseudonymize_same_value_same_token_ignoring_case_and_whitespace() -> None:
    text = "Jane Doe called. Later JANE  DOE called again, then jane\ndoe."
    out = redact(
        make_redactor(PSEUDO),
        text,
        ("Jane Doe", "PERSON"),
        ("JANE  DOE", "PERSON"),
        ("jane\ndoe", "PERSON"),
    )
    assert out == "<PERSON_1> called. Later <PERSON_1> called again, then <PERSON_1>."


def test_pseudonymize_different_values_get_different_numbers() -> None:
    text = "Jane Doe, John Roe and Jane Doe met Ann Poe."
    out = redact(
        make_redactor(PSEUDO),
        text,
        ("Jane Doe", "PERSON"),
        ("John Roe", "PERSON"),
        ("Jane Doe", "PERSON"),
        ("Ann Poe", "PERSON"),
    )
    assert out == "<PERSON_1>, <PERSON_2> and <PERSON_1> met <PERSON_3>."


def test_pseudonymize_numbers_each_entity_type_separately() -> None:
    text = "Jane Doe <jane@example.com>"
    out = redact(make_redactor(PSEUDO), text, ("Jane Doe", "PERSON"), ("jane@example.com", "EMAIL_ADDRESS"))
    assert out == "<PERSON_1> <<EMAIL_ADDRESS_1>>"


def test_pseudonyms_are_consistent_within_a_scope_across_texts() -> None:
    redactor = make_redactor(PSEUDO)
    scope = PseudonymScope()
    first = redact(
        redactor, "Jane Doe and John Roe", ("Jane Doe", "PERSON"), ("John Roe", "PERSON"), scope=scope
    )
    second = redact(
        redactor, "john roe, then Ann Poe", ("john roe", "PERSON"), ("Ann Poe", "PERSON"), scope=scope
    )
    assert first == "<PERSON_1> and <PERSON_2>"
    assert second == "<PERSON_2>, then <PERSON_3>"
    assert len(scope) == 3


def test_a_new_scope_restarts_numbering() -> None:
    redactor = make_redactor(PSEUDO)
    scope = PseudonymScope()
    redact(redactor, "Jane Doe", ("Jane Doe", "PERSON"), scope=scope)
    assert redact(redactor, "John Roe", ("John Roe", "PERSON"), scope=scope) == "<PERSON_2>"
    assert redact(redactor, "John Roe", ("John Roe", "PERSON"), scope=PseudonymScope()) == "<PERSON_1>"
    # without a scope, every call is its own scope
    assert redact(redactor, "John Roe", ("John Roe", "PERSON")) == "<PERSON_1>"


def test_pseudonym_scope_repr_holds_no_value() -> None:
    scope = PseudonymScope()
    token = scope.token("PERSON", "Jane Doe")
    assert token == "<PERSON_1>"
    assert "Jane" not in repr(scope)
    assert repr(scope) == "PseudonymScope(values=1)"


# --------------------------------------------------------------------------- hash

HASH = {"PERSON": "{operator: hash}", "US_SSN": "{operator: hash, length: 32}"}
_HASH_TOKEN = re.compile(r"<(?P<entity>[A-Z_]+)#(?P<hex>[0-9a-f]+)>")


def _hash_token(redactor: Redactor, value: str, entity: str = "PERSON") -> str:
    text = f"value: {value}"
    return redact(redactor, text, (value, entity)).removeprefix("value: ")


def test_hash_is_keyed_and_deterministic() -> None:
    one = _hash_token(make_redactor(HASH, hmac_key=KEY), "Jane Doe")
    again = _hash_token(make_redactor(HASH, hmac_key=KEY), "Jane Doe")
    other_key = _hash_token(make_redactor(HASH, hmac_key=OTHER_KEY), "Jane Doe")
    other_value = _hash_token(make_redactor(HASH, hmac_key=KEY), "John Roe")
    m = _HASH_TOKEN.fullmatch(one)
    assert m is not None, one
    assert m["entity"] == "PERSON"
    assert len(m["hex"]) == 16
    assert one == again
    assert one != other_key
    assert one != other_value


def test_hash_length_option() -> None:
    token = _hash_token(make_redactor(HASH, hmac_key=KEY), "536-22-8745", "US_SSN")
    m = _HASH_TOKEN.fullmatch(token)
    assert m is not None, token
    assert len(m["hex"]) == 32


@pytest.mark.parametrize("value", ["Jane Doe", "536-22-8745", "x"], ids=["name", "ssn", "one-char"])
def test_hash_is_never_the_unkeyed_sha256(value: str) -> None:
    token = _hash_token(make_redactor({"PERSON": "{operator: hash, length: 64}"}, hmac_key=KEY), value)
    m = _HASH_TOKEN.fullmatch(token)
    assert m is not None, token
    digest = m["hex"]
    for candidate in (value, value.casefold(), f"PERSON\0{value}", f"PERSON\0{value.casefold()}"):
        assert digest != hashlib.sha256(candidate.encode()).hexdigest()
    assert value not in token


def test_hash_without_any_key_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDRAIL_HMAC_KEY", raising=False)
    with pytest.raises(KeyUnavailable, match="GUARDRAIL_HMAC_KEY"):
        make_redactor(HASH)


def test_hash_as_the_default_operator_needs_a_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDRAIL_HMAC_KEY", raising=False)
    with pytest.raises(KeyUnavailable):
        make_redactor(default="{operator: hash}")


def test_policies_without_hash_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDRAIL_HMAC_KEY", raising=False)
    make_redactor(PSEUDO)  # does not raise


@pytest.mark.parametrize(
    ("env_value", "key"),
    [
        ("00112233445566778899aabbccddeeff", bytes.fromhex("00112233445566778899aabbccddeeff")),
        ("a text key of more than sixteen bytes", b"a text key of more than sixteen bytes"),
    ],
    ids=["hex", "text"],
)
def test_hash_key_from_the_environment(monkeypatch: pytest.MonkeyPatch, env_value: str, key: bytes) -> None:
    monkeypatch.setenv("GUARDRAIL_HMAC_KEY", env_value)
    from_env = _hash_token(make_redactor(HASH), "Jane Doe")
    explicit = _hash_token(make_redactor(HASH, hmac_key=key), "Jane Doe")
    assert from_env == explicit


@pytest.mark.parametrize(
    "env_value", ["tiny-key", "00112233445566778899aabbccddee"], ids=["text", "hex-15-bytes"]
)
def test_too_short_environment_key_raises(monkeypatch: pytest.MonkeyPatch, env_value: str) -> None:
    monkeypatch.setenv("GUARDRAIL_HMAC_KEY", env_value)
    with pytest.raises(KeyUnavailable, match="too short") as excinfo:
        make_redactor(HASH)
    assert env_value not in str(excinfo.value)


# --------------------------------------------------------------------------- mask


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("{operator: mask, keep_last: 4}", "4111111111111111", "************1111"),
        ("{operator: mask}", "4111-1111-1111-1111", "***************1111"),
        ("{operator: mask, keep_last: 0}", "4111111111111111", "****************"),
        ("{operator: mask, keep_last: 2, char: '#'}", "4111111111111111", "##############11"),
        ("{operator: mask, keep_last: 4}", "123", "***"),
        ("{operator: mask, keep_last: 4}", "1234", "****"),
        ("{operator: mask, keep_last: 4}", "12345", "*2345"),
    ],
    ids=[
        "keep-4",
        "default-keep",
        "keep-0",
        "custom-char",
        "shorter-than-keep",
        "equal-to-keep",
        "one-masked",
    ],
)
def test_mask(spec: str, value: str, expected: str) -> None:
    redactor = make_redactor({"CREDIT_CARD": spec})
    assert redact(redactor, f"card {value} ok", (value, "CREDIT_CARD")) == f"card {expected} ok"


# --------------------------------------------------------------------------- remove


def test_remove_deletes_the_value() -> None:
    redactor = make_redactor({"PHONE_NUMBER": "{operator: remove}"})
    text = "Call (617) 555-0123 today"
    assert redact(redactor, text, ("(617) 555-0123", "PHONE_NUMBER")) == "Call  today"


# --------------------------------------------------------------------------- generalize


@pytest.mark.parametrize(
    ("entity", "value", "expected"),
    [
        ("DATE_TIME", "03/14/2024", "2024"),
        ("DATE_TIME", "March 3, 2025", "2025"),
        ("DATE_TIME", "22 July 1987", "1987"),
        ("DATE_TIME", "2024-03-14T09:30:00", "2024"),
        ("DATE_TIME", "14.03.1987", "1987"),
        ("DATE_TIME", "03/14/24", "2024"),
        ("DATE_TIME", "Feb 2024", "2024"),
        ("DATE_TIME", "1930-05-01", "<=1935"),
        ("DATE_TIME", "1935", "<=1935"),
        ("DATE_TIME", "1936", "1936"),
        ("DATE_TIME", "03/14/31", "<=1935"),
        ("DATE_TIME", "March 3", "<DATE_TIME>"),
        ("DATE_TIME", "Friday", "<DATE_TIME>"),
        ("AGE", "92", "90+"),
        ("AGE", "90", "90+"),
        ("AGE", "89", "89"),
        ("AGE", "45", "45"),
        ("AGE", "92 years old", "90+"),
        ("US_ZIP_CODE", "02139", "021"),
        ("US_ZIP_CODE", "03601", "000"),
        ("US_ZIP_CODE", "89301", "000"),
        ("US_ZIP_CODE", "02139-4307", "021"),
        ("US_ZIP_CODE", "89301-1234", "000"),
        ("US_ZIP_CODE", "SW1A 1AA", "<US_ZIP_CODE>"),
        ("US_ZIP_CODE", "K1A 0B1", "<US_ZIP_CODE>"),
        ("US_ZIP_CODE", "1234", "<US_ZIP_CODE>"),
        ("PERSON", "Jane Doe", "<PERSON>"),
    ],
    ids=[
        "date-mdy",
        "date-month-name",
        "date-day-month-year",
        "date-iso-time",
        "date-dmy-dots",
        "date-two-digit-year",
        "date-month-year",
        "date-90-years-ago",
        "year-exactly-90-years-ago",
        "year-89-years-ago",
        "two-digit-year-over-89-years-ago",
        "date-without-year",
        "weekday",
        "age-92",
        "age-90",
        "age-89",
        "age-45",
        "age-with-words",
        "zip",
        "zip-restricted-036",
        "zip-restricted-893",
        "zip-plus-4",
        "zip-plus-4-restricted",
        "uk-postcode",
        "canadian-postcode",
        "four-digits",
        "other-entity",
    ],
)
def test_generalize(entity: str, value: str, expected: str) -> None:
    redactor = make_redactor({entity: "{operator: generalize}"}, year=2025)
    assert redact(redactor, f"[{value}]", (value, entity)) == f"[{expected}]"
    assert generalize_value(entity, value, reference_year=2025) == expected


@pytest.mark.parametrize("zip3", sorted(RESTRICTED_ZIP3))
def test_generalize_every_restricted_zip3_to_000(zip3: str) -> None:
    assert generalize_value("US_ZIP_CODE", f"{zip3}42", reference_year=2025) == "000"


def test_generalize_uses_the_injected_clock() -> None:
    ops = {"DATE_TIME": "{operator: generalize}"}
    text = "DOB 1930-05-01"
    assert redact(make_redactor(ops, year=2019), text, ("1930-05-01", "DATE_TIME")) == "DOB 1930"
    assert redact(make_redactor(ops, year=2025), text, ("1930-05-01", "DATE_TIME")) == "DOB <=1935"


def test_hipaa_style_generalisation_of_a_record() -> None:
    ops = dict.fromkeys(("DATE_TIME", "AGE", "US_ZIP_CODE"), "{operator: generalize}")
    text = "Jane Doe, DOB 03/14/1931, 94 y/o, ZIP 03601, seen 2025-01-02"
    out = redact(
        make_redactor(ops, year=2025),
        text,
        ("Jane Doe", "PERSON"),
        ("03/14/1931", "DATE_TIME"),
        ("94", "AGE"),
        ("03601", "US_ZIP_CODE"),
        ("2025-01-02", "DATE_TIME"),
    )
    assert out == "<PERSON>, DOB <=1935, 90+ y/o, ZIP 000, seen 2025"


# --------------------------------------------------------------------------- the result


def _sample() -> tuple[str, list[Finding], RedactionResult]:
    text = "Jane Doe, SSN 536-22-8745, jane@example.com"
    findings = spans(
        text, ("jane@example.com", "EMAIL_ADDRESS"), ("Jane Doe", "PERSON"), ("536-22-8745", "US_SSN")
    )
    return text, findings, make_redactor().redact(text, findings)


def test_result_is_frozen() -> None:
    _, _, result = _sample()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.findings = ()  # type: ignore[misc]


def test_result_repr_holds_no_value() -> None:
    _, _, result = _sample()
    shown = repr(result)
    for value in ("Jane", "536-22-8745", "jane@example.com", "<PERSON>", result.text):
        assert value not in shown
    assert "PERSON" in shown  # counts per entity type are fine
    assert result.counts() == {"PERSON": 1, "US_SSN": 1, "EMAIL_ADDRESS": 1}


def test_result_keeps_the_findings_in_text_order() -> None:
    text, findings, result = _sample()
    assert result.findings == tuple(sorted(findings, key=lambda f: f.start))
    assert [text[f.start : f.end] for f in result.findings] == ["Jane Doe", "536-22-8745", "jane@example.com"]
    assert result.text == "<PERSON>, SSN <US_SSN>, <EMAIL_ADDRESS>"


def test_input_text_is_not_changed() -> None:
    text = "Jane Doe, SSN 536-22-8745"
    original = str(text)
    make_redactor().redact(text, spans(text, ("Jane Doe", "PERSON")))
    assert text == original


def test_overlapping_findings_leave_no_fragment() -> None:
    text = "id 536-22-8745-99 end"
    findings = [Finding(3, 14, "US_SSN", 0.9), Finding(8, 17, "PHONE_NUMBER", 0.5)]
    out = make_redactor().redact(text, findings).text
    assert out == "id <US_SSN> end"


def test_redactor_repr_holds_no_key() -> None:
    redactor = make_redactor(HASH, hmac_key=KEY)
    assert "kkkk" not in repr(redactor)
    assert "redaction-test" in repr(redactor)


# --------------------------------------------------------------------------- property: nothing survives

_LETTERS = string.ascii_lowercase
# Filler words have at least 3 letters: spaCy now and then tags a 1-2 letter token as a place or name,
# and such short values are neither propagated to their other occurrences nor distinguishable from
# fragments of longer words, which would make the property flaky without saying anything about leaks.
_words = st.text(alphabet=_LETTERS, min_size=3, max_size=10)
_emails = st.builds(
    "{}@{}.com".format,
    st.text(alphabet=_LETTERS, min_size=1, max_size=12),
    st.text(alphabet=_LETTERS, min_size=1, max_size=12),
)
_ssns = st.builds(
    "{:03d}-{:02d}-{:04d}".format, st.integers(100, 665), st.integers(1, 99), st.integers(1, 9999)
)
_phones = st.builds(
    "({}{:02d}) {:03d}-{:04d}".format,
    st.integers(2, 9),
    st.integers(0, 99),
    st.integers(200, 999),
    st.integers(0, 9999),
)
_pieces = st.lists(
    st.one_of(
        _words.map(lambda w: ("word", w)),
        _emails.map(lambda v: ("email", v)),
        _ssns.map(lambda v: ("ssn", v)),
        _phones.map(lambda v: ("phone", v)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=_pieces)
def test_redacted_text_contains_no_detected_value(
    gr_default: Guardrail, pieces: list[tuple[str, str]]
) -> None:
    text = " ".join(value for _, value in pieces)
    result = gr_default.redact(text)
    for f in result.findings:
        value = text[f.start : f.end]
        # the value as a token of its own: "zsf" found in "azsf zsf" must go, the "zsf" inside the
        # word "azsf" is a fragment of another word, not the value
        standalone = re.compile(rf"(?<![\w@.-]){re.escape(value)}(?![\w@-])")
        assert not standalone.search(result.text), (f.entity, value)
    for kind, value in pieces:
        if kind == "email":
            assert value not in result.text
