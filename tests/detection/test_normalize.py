"""The normalised view detection runs on (issue 12): what it folds, and that offsets map back exactly."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail import Guardrail
from guardrail.detection.normalize import normalised_view

# characters the view changes, mixed with ordinary text in the property tests
_SPECIAL = list(
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u202e\u2066\u00a0\u3000\u2013\u2014\u2212－０９ＡｚＯ＠．ﬁ𝐀𝟗"
)
_PLAIN = list("abcxyz ABC019-.@_ ,;:()\n")
_WORDS = [" at ", " dot ", "[at]", "(dot)", "com", "org", "jane", "doe", ".", "example", "k.lee"]


def _fold_chars(text: str) -> str:
    """The view's character rules applied to a piece of text on its own (no e-mail folding)."""
    out = []
    for c in text:
        if unicodedata.category(c) == "Cf" or c == "\u00ad":
            continue
        if unicodedata.category(c) == "Zs":
            out.append(" ")
        elif 0xFF01 <= ord(c) <= 0xFFEE or 0xFB00 <= ord(c) <= 0xFB06 or 0x1D400 <= ord(c) <= 0x1D7FF:
            out.append(unicodedata.normalize("NFKC", c))
        else:
            out.append(c)
    return "".join(out)


texts = st.lists(st.sampled_from(_SPECIAL + _PLAIN + _WORDS), max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_every_view_character_maps_to_an_original_span(text: str) -> None:
    view = normalised_view(text)
    if view.identity:
        assert view.text == text
        return
    assert view.starts is not None
    assert view.ends is not None
    assert len(view.starts) == len(view.ends) == len(view.text)
    # monotone, within the original, never empty
    assert all(0 <= a < b <= len(text) for a, b in zip(view.starts, view.ends, strict=True))
    assert list(view.starts) == sorted(view.starts)
    assert list(view.ends) == sorted(view.ends)


@settings(max_examples=300, deadline=None)
@given(texts, st.data())
def test_a_view_span_maps_to_the_original_characters_it_came_from(text: str, data: st.DataObject) -> None:
    view = normalised_view(text)
    n = len(view.text)
    start = data.draw(st.integers(0, n))
    end = data.draw(st.integers(start, n))
    a, b = view.span(start, end)
    assert 0 <= a <= b <= len(text)
    if end > start:
        assert b > a
        piece = text[a:b]
        if "@" not in view.text[start:end] and "." not in view.text[start:end]:
            # without e-mail folding, the view's piece is inside the view of the original piece (a span
            # ending inside a ligature's expansion maps to the whole ligature); the dash rule looks at
            # neighbours, so dashes are compared folded
            assert _dashes(view.text[start:end]) in _dashes(_fold_chars(piece))


def _dashes(text: str) -> str:
    return text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2212", "-")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(_PLAIN), max_size=60))
def test_plain_text_is_its_own_view(text: str) -> None:
    view = normalised_view(text)
    if " at " not in text:
        assert view.identity
        assert view.text == text


def test_what_the_view_folds() -> None:
    assert normalised_view("123\u201345\u20136789").text == "123-45-6789"
    assert normalised_view("from 2019 \u2013 2021").text == "from 2019 \u2013 2021"  # not between digits
    assert normalised_view("jo\u200bhn\u2060@ex\u00adample.com").text == "john@example.com"
    assert normalised_view("０７７００ ９００１２３").text == "07700 900123"
    assert normalised_view("jane dot doe at example dot org").text == "jane.doe@example.org"
    assert normalised_view("r.okafor [at] unilag [dot] edu [dot] ng").text == "r.okafor@unilag.edu.ng"
    assert normalised_view("k.lee at example.org").text == "k.lee@example.org"


def test_look_alikes_are_not_folded() -> None:
    for text in (
        "I work at Amazon.com now",  # a bare "at" needs an address-like local part
        "meet me at the station at noon",
        "the dot matrix printer",
        "x\u00b2 and 10\u2075 stay superscripts",
        "Café Zürich, naïve résumé",
    ):
        assert normalised_view(text).text == text


def _redacted(gr: Guardrail, text: str) -> str:
    out = text
    for f in sorted(gr.detect(text), key=lambda f: f.start, reverse=True):
        out = out[: f.start] + "#" + out[f.end :]
    return out


def test_obfuscated_values_are_found_and_the_original_characters_redacted(gr_default: Guardrail) -> None:
    cases = {
        "My SSN is 123\u201345\u20136789 if you need it.": "123\u201345\u20136789",
        "Email: mar\u200bta.kowal\u200bska@example.com, thanks": "mar\u200bta.kowal\u200bska@example.com",
        "write to priya dot nair at outlook dot com any time": "priya dot nair at outlook dot com",
        "contact: r.okafor [at] unilag [dot] edu [dot] ng": "r.okafor [at] unilag [dot] edu [dot] ng",
        "Call me on ０７７００ ９００１２３ after six.": "０７７００ ９００１２３",
        "Reach me at ｍａｒｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ please.": "ｍａｒｉａ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    }
    for text, value in cases.items():
        out = _redacted(gr_default, text)
        assert value not in out
        # the whole value, zero-width characters included, is gone; nothing of it is left behind
        assert out == text.replace(value, "#"), out


def test_a_failure_in_the_view_fails_closed(gr_default: Guardrail, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardrail.detection import engine
    from guardrail.errors import DetectionError

    def broken(text: str) -> object:
        raise ValueError(text)  # a failure whose message would carry the text

    monkeypatch.setattr(engine, "normalised_view", broken)
    monkeypatch.setenv("GUARDRAIL_DETECTION_CACHE", "0")
    secret = "Call Ilse Maartens on 07700 900123 about a new text 41."
    with pytest.raises(DetectionError) as info:
        gr_default.detector._detect_uncached([secret])
    assert "Ilse" not in str(info.value)
    assert info.value.__cause__ is None
