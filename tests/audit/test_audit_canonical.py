"""RFC 8785 (JCS) canonicalisation: the RFC's own vectors, and agreement of the fast and exact paths."""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardrail.audit.canonical import (
    CanonicalizationError,
    RefusedKeyError,
    canonical_text,
    canonicalize,
    format_number,
)

# RFC 8785 Appendix B: IEEE-754 bit patterns and their ECMAScript serialisation
APPENDIX_B = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def from_bits(hex_bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(hex_bits))[0]
    return value


class TestNumbers:
    """Doubles are written as ECMAScript's Number.prototype.toString writes them (RFC 8785 §3.2.2.3)."""

    @pytest.mark.parametrize(("bits", "expected"), APPENDIX_B, ids=[b for b, _ in APPENDIX_B])
    def test_appendix_b(self, bits: str, expected: str) -> None:
        assert format_number(from_bits(bits)) == expected
        assert canonicalize(from_bits(bits)) == expected.encode()

    @pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
    def test_nan_and_infinities_are_refused(self, bits: str) -> None:
        with pytest.raises(CanonicalizationError, match="NaN and infinities"):
            canonicalize(from_bits(bits))

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(1.0, "1"), (100.0, "100"), (1e20, "100000000000000000000"), (1e21, "1e+21"), (0.5, "0.5"),
         (1e-6, "0.000001"), (1e-7, "1e-7"), (-1.5e-10, "-1.5e-10"), (123.456, "123.456"), (-0.0, "0")],
    )  # fmt: skip
    def test_layouts(self, value: float, expected: str) -> None:
        assert format_number(value) == expected

    @given(st.floats(allow_nan=False, allow_infinity=False))
    def test_round_trips_and_matches_json_for_integers(self, value: float) -> None:
        text = format_number(value)
        assert float(text) == value
        if value.is_integer() and abs(value) <= 2**53:
            assert text == str(int(value))

    def test_integers_are_written_as_the_double_that_holds_them(self) -> None:
        assert canonicalize(2**53) == b"9007199254740992"
        assert canonicalize(2**53 + 2) == b"9007199254740994"  # a double
        assert canonicalize({"a": [-(2**70)]}) == b'{"a":[-1.1805916207174113e+21]}'
        assert canonicalize(2**68) == b"295147905179352830000"  # RFC 8785 Appendix B, ~2**68

    @pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 10**400], ids=["2**53+1", "-2**53-1", "huge"])
    def test_integers_no_double_holds_are_refused(self, value: int) -> None:
        with pytest.raises(CanonicalizationError, match="not exactly an IEEE-754 double"):
            canonicalize({"a": value})


class TestStructure:
    """Members sorted by UTF-16 code units, minimal JSON escaping, no whitespace."""

    def test_rfc8785_section_3_2_4_example(self) -> None:
        source = (
            '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
            ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
            ' "literals": [null, true, false]}'
        )
        expected = (
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
            '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
        )
        assert canonicalize(json.loads(source)) == expected.encode("utf-8")

    def test_rfc8785_section_3_2_3_sorting(self) -> None:
        source = {
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\U0001f600": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis",
        }
        order = [json.loads(f'"{k}"') for k in ["\\r", "1", "\\u0080", "\\u00f6", "\\u20ac", "\\ud83d\\ude00",
                                                "\\ufb33"]]  # fmt: skip
        text = canonical_text(source)
        assert list(json.loads(text)) == order
        # the emoji (a surrogate pair in UTF-16) sorts before U+FB33, unlike code-point order
        assert text.index("\U0001f600") < text.index("\ufb33")

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
            ("\b\f\n\r\t", '"\\b\\f\\n\\r\\t"'),
            ('"\\/', '"\\"\\\\/"'),
            ("é€😀", '"é€😀"'),
            ([], "[]"),
            ({}, "{}"),
            ((1, "a", None, True, False), '[1,"a",null,true,false]'),
            ({"b": {"d": 1, "c": 2}, "a": []}, '{"a":[],"b":{"c":2,"d":1}}'),
        ],
        ids=["controls", "short-escapes", "quote-backslash-slash", "non-ascii", "empty-list", "empty-dict",
             "tuple", "nested"],
    )  # fmt: skip
    def test_values(self, value: Any, expected: str) -> None:
        assert canonical_text(value) == expected

    @pytest.mark.parametrize(
        "value",
        [{1: "a"}, {"a": {1, 2}}, b"bytes", object(), {"a": float("nan")}],
        ids=["int-key", "set", "bytes", "object", "nan"],
    )
    def test_non_json_values_are_refused(self, value: Any) -> None:
        with pytest.raises(CanonicalizationError):
            canonicalize(value)

    def test_lone_surrogates_are_refused(self) -> None:
        with pytest.raises(CanonicalizationError, match="surrogate"):
            canonicalize({"a": "\ud800"})

    def test_circular_values_are_refused(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(CanonicalizationError, match="nested too deeply"):
            canonicalize(loop)

    def test_refused_keys_at_any_depth(self) -> None:
        with pytest.raises(RefusedKeyError) as info:
            canonical_text({"a": [{"b": {"Text": 1}}]}, refuse_keys=frozenset({"text"}))
        assert info.value.key == "Text"

    def test_other_mappings_and_subclasses_take_the_exact_path(self) -> None:
        assert canonical_text(OrderedDict([("b", 1), ("a", 2)])) == '{"a":2,"b":1}'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_canonical_form_is_json_and_idempotent(value: Any) -> None:
    """Property: the output parses back to an equal value, and canonicalising that again is a fixed point."""
    try:
        text = canonicalize(value)
    except CanonicalizationError:
        return  # lone surrogates drawn by st.text()
    parsed = json.loads(text)
    assert canonicalize(parsed) == text
    if isinstance(value, float):
        assert math.isclose(parsed, value) or parsed == value
