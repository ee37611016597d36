"""The detector engine: windows over long texts, batching, resolution of overlapping findings, the shared
detector per policy, a missing spaCy model, and reprs that never show text."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail import Guardrail
from guardrail.detection.resolve import resolve
from guardrail.detection.windows import Window, split_windows
from guardrail.errors import DetectorUnavailable
from guardrail.findings import Finding
from guardrail.policy import DEFAULT_SPACY_MODEL, parse_policy

# --------------------------------------------------------------------------- windows


def check_windows(text: str, windows: list[Window], size: int, overlap: int) -> None:
    n = len(text)
    assert windows
    assert windows[0].start == 0
    assert windows[0].keep_from == 0
    assert windows[-1].end == n
    assert windows[-1].keep_to == n
    for w in windows:
        assert 0 <= w.start <= w.keep_from <= w.keep_to <= w.end <= n, w
        assert w.end - w.start <= size, w
    for a, b in itertools.pairwise(windows):
        assert a.keep_to == b.keep_from, (a, b)  # contiguous keep ranges
        assert a.start < b.start, (a, b)
        assert b.start < a.end, (a, b)  # consecutive windows overlap
        # a finding shorter than overlap // 2 that starts in a keep range is seen whole by its window
        assert a.end - a.keep_to >= overlap // 2, (a, b)
        assert b.keep_from - b.start >= overlap // 2, (a, b)
    owners = [0] * n
    for w in windows:
        for i in range(w.keep_from, w.keep_to):
            owners[i] += 1
    assert all(count == 1 for count in owners)


def test_short_text_is_one_window() -> None:
    assert split_windows("hello world", size=1000, overlap=100) == [Window(0, 11, 0, 11)]
    assert split_windows("", size=1000, overlap=100) == [Window(0, 0, 0, 0)]


def test_windows_cut_on_whitespace() -> None:
    text = "word " * 2000
    windows = split_windows(text, size=1000, overlap=100)
    assert len(windows) > 1
    check_windows(text, windows, 1000, 100)
    for w in windows[:-1]:
        assert text[w.end - 1].isspace()
    for w in windows[1:]:
        assert text[w.start - 1].isspace()


def test_text_without_whitespace_is_cut_hard() -> None:
    text = "x" * 5000
    windows = split_windows(text, size=1000, overlap=100)
    check_windows(text, windows, 1000, 100)


_texts = st.text(alphabet="ab \n", max_size=6000) | st.builds(
    " ".join, st.lists(st.text(alphabet="abcdef", min_size=1, max_size=400), max_size=60)
)


@settings(max_examples=150, deadline=None)
@given(text=_texts, size=st.integers(1000, 2500), data=st.data())
def test_split_windows_invariants_in_policy_range(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(100, (size - 1) // 2), label="overlap")
    check_windows(text, split_windows(text, size=size, overlap=overlap), size, overlap)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet="ab \n", max_size=1500), size=st.integers(5, 300), data=st.data())
def test_split_windows_invariants_small_windows(text: str, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(1, max(1, (size - 1) // 2)), label="overlap")
    if overlap * 2 >= size:
        return
    check_windows(text, split_windows(text, size=size, overlap=overlap), size, overlap)


# --------------------------------------------------------------------------- long texts

SIZE, OVERLAP = 20_000, 1_000
LONG_POLICY = f"""
name: long-texts
version: "1"
detection:
  entities: [EMAIL_ADDRESS, US_SSN, PHONE_NUMBER]
  threshold: 0.4
  window: {{size: {SIZE}, overlap: {OVERLAP}}}
"""
_FILLER = "the patient was seen in clinic and the notes were filed "


def _ssn(k: int) -> str:
    return f"{100 + k % 500:03d}-{10 + k % 80:02d}-{1000 + k % 9000:04d}"


def build_long_text(length: int = 250_000) -> tuple[str, dict[tuple[int, int], str], list[tuple[int, int]]]:
    """Filler text with e-mail addresses, SSNs and phone numbers planted in it.

    Returns the text, the planted spans (start, end) -> entity, and the spans planted across window
    boundaries. A phone number "+44 20 7946 0958" has spaces, and windows end after whitespace, so one is
    planted at each window's end to be cut in two; an e-mail address is planted across each keep boundary.
    """
    chars = list((_FILLER * (length // len(_FILLER) + 1))[:length])
    planted: dict[tuple[int, int], str] = {}
    straddling: list[tuple[int, int]] = []

    def plant(pos: int, value: str, entity: str) -> tuple[int, int]:
        end = pos + len(value)
        assert all(e + 1 < pos or end + 1 < s for s, e in planted), "planted values overlap"
        chars[pos - 1] = " "
        chars[pos:end] = value
        chars[end] = " "
        planted[(pos, end)] = entity
        return pos, end

    k = 0
    start = 0
    while start + SIZE < length:
        # the phone's last space sits 5 characters before the largest possible window end, so the window
        # ends inside it and sees "+44 20 7946", itself shaped like a phone number
        straddling.append(
            plant(start + SIZE - 16, f"+44 20 {7000 + k % 999:04d} {1000 + k:04d}", "PHONE_NUMBER")
        )
        windows = split_windows("".join(chars), size=SIZE, overlap=OVERLAP)
        (i,) = [i for i, w in enumerate(windows) if w.start == start]
        window = windows[i]
        straddling.append(plant(window.keep_to - 9, f"straddle{k}@example.com", "EMAIL_ADDRESS"))
        # interior values, well away from the cut points
        for pos in range(window.keep_from + 2_000, window.keep_to - 2_000, 2_500):
            k += 1
            if k % 2:
                plant(pos, f"user{k}@example.org", "EMAIL_ADDRESS")
            else:
                plant(pos, _ssn(k), "US_SSN")
        k += 1
        start = windows[i + 1].start
    text = "".join(chars)
    return text, planted, straddling


@pytest.fixture(scope="module")
def gr_long() -> Guardrail:
    return Guardrail(parse_policy(LONG_POLICY))


def test_long_text_finds_every_planted_value_across_windows(gr_long: Guardrail) -> None:
    text, planted, straddling = build_long_text()
    windows = split_windows(text, size=SIZE, overlap=OVERLAP)
    assert len(windows) >= 12
    check_windows(text, windows, SIZE, OVERLAP)
    # the planted values really straddle the boundaries they were meant to
    ends = [w.end for w in windows[:-1]]
    keeps = [w.keep_to for w in windows[:-1]]
    assert all(any(s < end < e for s, e in straddling) for end in ends)
    assert all(any(s < keep < e for s, e in straddling) for keep in keeps)

    found = {(f.start, f.end): f.entity for f in gr_long.detect(text)}
    missing = {
        span: (text[span[0] : span[1]], entity)
        for span, entity in planted.items()
        if found.get(span) != entity
    }
    assert not missing
    extra = {span: (text[span[0] : span[1]], e) for span, e in found.items() if span not in planted}
    assert not extra


def test_detect_batch_with_windows_equals_detect(gr_long: Guardrail) -> None:
    text, _, _ = build_long_text(45_000)
    texts = [text, "Call (617) 555-0123 or write to jane@example.com.", ""]
    batch = gr_long.detect_batch(texts)
    assert [_full(b) for b in batch] == [_full(gr_long.detect(t)) for t in texts]


# --------------------------------------------------------------------------- batching


def _full(findings: list[Finding]) -> list[tuple[int, int, str, float, str]]:
    return [(f.start, f.end, f.entity, f.score, f.recognizer) for f in findings]


BATCH = [
    "Patient: Harold Finch  MRN: 88412095  DOB: 03/14/1931, 94 y/o, lives at 1458 Alder Crescent.",
    "",
    "   \n ",
    "Write to jane.doe@example.com or call (617) 555-0123.",
    "Nothing personal here.",
    "Dr. Amara Okafor (NPI 1234567893) referred the patient; SSN 536-22-8745.",
    "Write to jane.doe@example.com or call (617) 555-0123.",
]


def test_detect_batch_equals_detect(gr_default: Guardrail) -> None:
    batch = gr_default.detect_batch(BATCH)
    assert len(batch) == len(BATCH)
    assert [_full(b) for b in batch] == [_full(gr_default.detect(t)) for t in BATCH]
    assert batch[1] == []
    assert batch[2] == []
    assert batch[0]  # the batch is not trivially empty


def test_detect_batch_rejects_a_bare_string(gr_default: Guardrail) -> None:
    with pytest.raises(TypeError):
        gr_default.detector.detect_batch("a string, not a list")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        gr_default.detect_batch(["text", b"bytes"])  # type: ignore[list-item]


def test_findings_are_sorted_and_disjoint(gr_default: Guardrail) -> None:
    for text in BATCH:
        findings = gr_default.detect(text)
        assert findings == sorted(findings, key=lambda f: f.start)
        for a, b in itertools.pairwise(findings):
            assert a.end <= b.start


# --------------------------------------------------------------------------- resolve


def F(start: int, end: int, entity: str = "PERSON", score: float = 0.8, recognizer: str = "r") -> Finding:
    return Finding(start, end, entity, score, recognizer)


def test_overlapping_findings_merge_into_one_covering_span() -> None:
    merged = resolve([F(0, 10, "PERSON", 0.6), F(5, 20, "LOCATION", 0.9), F(18, 25, "PERSON", 0.5)])
    assert len(merged) == 1
    (m,) = merged
    assert (m.start, m.end) == (0, 25)
    assert m.score == 0.9


def test_nested_finding_leaves_no_fragment() -> None:
    merged = resolve([F(10, 12, "AGE", 0.9), F(0, 30, "LOCATION", 0.7)])
    assert [(m.start, m.end) for m in merged] == [(0, 30)]


def test_adjacent_same_entity_findings_merge() -> None:
    merged = resolve([F(0, 5, "PERSON", 0.7), F(5, 9, "PERSON", 0.9)])
    assert [(m.start, m.end, m.entity) for m in merged] == [(0, 9, "PERSON")]
    assert merged[0].score == 0.9


def test_adjacent_different_entities_stay_separate() -> None:
    merged = resolve([F(5, 9, "LOCATION"), F(0, 5, "PERSON")])
    assert [(m.start, m.end, m.entity) for m in merged] == [(0, 5, "PERSON"), (5, 9, "LOCATION")]


def test_separate_findings_are_kept_and_sorted() -> None:
    findings = [F(20, 25, "US_SSN"), F(0, 4), F(10, 15, "EMAIL_ADDRESS")]
    assert resolve(findings) == sorted(findings)


def test_merged_label_prefers_a_covering_identifier_over_an_ner_guess() -> None:
    (m,) = resolve([F(0, 10, "ORGANIZATION", 0.85), F(0, 10, "MEDICAL_RECORD_NUMBER", 0.85)])
    assert m.entity == "MEDICAL_RECORD_NUMBER"


_entities = st.sampled_from(["PERSON", "LOCATION", "US_SSN", "DATE_TIME", "PHONE_NUMBER"])
_findings = st.lists(
    st.builds(
        lambda start, length, entity, score, recognizer: Finding(
            start, start + length, entity, score, recognizer
        ),
        st.integers(0, 60),
        st.integers(1, 15),
        _entities,
        st.sampled_from([0.3, 0.5, 0.85, 1.0]),
        st.sampled_from(["a", "b"]),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(findings=_findings, data=st.data())
def test_resolve_is_independent_of_input_order(findings: list[Finding], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(findings), label="shuffled")
    assert _spans(resolve(shuffled)) == _spans(resolve(findings))


def _spans(findings: list[Finding]) -> list[tuple[int, int, str, float]]:
    return [(f.start, f.end, f.entity, f.score) for f in findings]


def test_resolve_recognizer_is_independent_of_input_order() -> None:
    a = F(0, 8, "PERSON", 0.85, "SpacyNerRecognizer")
    b = F(0, 8, "PERSON", 0.85, "TitledPersonRecognizer")
    assert _full(resolve([a, b])) == _full(resolve([b, a]))


@settings(max_examples=300, deadline=None)
@given(findings=_findings)
def test_resolve_output_covers_every_input_and_never_overlaps(findings: list[Finding]) -> None:
    merged = resolve(findings)
    for a, b in itertools.pairwise(merged):
        assert a.end <= b.start
    for f in findings:
        assert any(m.start <= f.start and f.end <= m.end for m in merged), f
    for m in merged:
        assert m.entity in {f.entity for f in findings if m.start <= f.start and f.end <= m.end}


# --------------------------------------------------------------------------- the shared detector


def test_guardrails_with_the_same_policy_share_one_detector(gr_default: Guardrail) -> None:
    again = Guardrail("default")
    assert again.detector is gr_default.detector
    assert Guardrail("hipaa-safe-harbor").detector is not gr_default.detector


def test_missing_spacy_model_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAIL_SPACY_MODEL", "en_core_web_xx_missing")
    gr = Guardrail("default")
    with pytest.raises(DetectorUnavailable) as excinfo:
        gr.detect("Jane Doe")
    message = str(excinfo.value)
    assert "pip install en-core-web-xx-missing" in message
    assert "Jane" not in message


def test_policy_model_is_used_when_it_is_not_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDRAIL_SPACY_MODEL", DEFAULT_SPACY_MODEL)
    policy = parse_policy(
        'name: m\nversion: "1"\ndetection:\n  model: en_core_web_yy_missing\n  entities: [PERSON]\n'
    )
    with pytest.raises(DetectorUnavailable, match="en-core-web-yy-missing"):
        _ = Guardrail(policy).detector


def test_reprs_hold_no_text(gr_default: Guardrail) -> None:
    text = "Patient Harold Finch, SSN 536-22-8745, jane.doe@example.com"
    result = gr_default.redact(text)
    assert result.findings
    for shown in (repr(gr_default), repr(gr_default.detector), repr(gr_default.redactor), repr(result)):
        for value in ("Harold", "Finch", "536-22-8745", "jane.doe"):
            assert value not in shown, shown
    assert "default" in repr(gr_default)


# --------------------------------------------------------------------------- the result cache


def test_repeated_texts_get_the_same_findings_from_a_cache_without_text(gr_default: Guardrail) -> None:
    from guardrail.detection.engine import PresidioDetector

    detector = PresidioDetector(gr_default.policy)  # its own cache, empty
    texts = [f"Call Harold Finch at 617-555-01{i % 3:02d} about order {i % 3}." for i in range(9)] + [
        "",
        "  ",
    ]
    fresh = [detector._detect_uncached([t])[0] for t in texts]  # no cache involved
    first = detector.detect_batch(texts)
    again = detector.detect_batch(list(reversed(texts)))[::-1]
    assert first == again == fresh
    assert any(first[0])
    # distinct texts only, keyed by a 16-byte digest: the cache never holds a text
    assert len(detector._cache) == 5
    assert all(isinstance(k, bytes) and len(k) == 16 for k in detector._cache)
    assert not any(b"Harold" in k for k in detector._cache)
    # callers get their own lists: changing one changes no other answer
    first[0].clear()
    assert detector.detect_batch([texts[0]])[0] == fresh[0]
    assert first[3] == fresh[3]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        # the model finds only the surname in these: the given name would be left beside the token
        ("Can you add Kenji Mwangi as an authorized user?", "Kenji Mwangi"),
        ("Can you add Siddharth Mwangi as an authorized user?", "Siddharth Mwangi"),
    ],
)
def test_a_given_name_before_a_detected_surname_is_part_of_the_name(
    gr_default: Guardrail, text: str, name: str
) -> None:
    redacted = gr_default.redact(text).text
    assert name.split(maxsplit=1)[0] not in redacted
    assert name.rsplit(maxsplit=1)[-1] not in redacted


def test_a_sentence_initial_word_before_a_surname_is_not_a_given_name(gr_default: Guardrail) -> None:
    text = "Please Contact Smith today."
    spans = [text[f.start : f.end] for f in gr_default.detect(text) if f.entity == "PERSON"]
    assert spans == ["Smith"]


def test_the_cache_can_be_turned_off(gr_default: Guardrail, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardrail.detection.engine import PresidioDetector

    monkeypatch.setenv("GUARDRAIL_DETECTION_CACHE", "0")
    detector = PresidioDetector(gr_default.policy)
    text = "Call Harold Finch at 617-555-0100."
    assert detector.detect_batch([text, text]) == [detector._detect_uncached([text])[0]] * 2
    assert len(detector._cache) == 0
