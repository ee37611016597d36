"""The Presidio-based detector: one ``AnalyzerEngine`` per policy, built once and reused."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

from guardrail.detection.normalize import View, normalised_view
from guardrail.detection.resolve import resolve
from guardrail.detection.windows import split_windows
from guardrail.errors import DetectionError
from guardrail.findings import Finding
from guardrail.policy import DEFAULT_SPACY_MODEL, Policy

__all__ = ["PresidioDetector", "model_for", "stable_types", "stable_types_across"]

# Context words near a finding raise its score (as Presidio's enhancer does, but on raw lower-cased text:
# the NER-only pipeline has no lemmas, and this is faster).
_CONTEXT_BEFORE = 48
_CONTEXT_AFTER = 24
_CONTEXT_BOOST = 0.35
_CONTEXT_FLOOR = 0.4
# a full stop after a word of 5+ letters or a digit ends a sentence rather than an abbreviation
_FULL_STOP = re.compile(r"(?:[^\W\d_]{5}|\d)\.$")


def model_for(policy: Policy) -> str:
    """The spaCy model to use: ``GUARDRAIL_SPACY_MODEL`` overrides the policy's default model."""
    env = os.environ.get("GUARDRAIL_SPACY_MODEL", "").strip()
    if env and policy.detection.model == DEFAULT_SPACY_MODEL:
        return env
    return policy.detection.model


class PresidioDetector:
    """Detects personal data with Presidio's ``AnalyzerEngine``, guardrail's recognizers and spaCy NER.

    Build it once (model loading takes seconds) and reuse it; it is safe to share between threads.

    Args:
        policy: the policy whose detection settings apply.
        model: a spaCy model name overriding the policy (``GUARDRAIL_SPACY_MODEL`` also does).

    Raises:
        DetectorUnavailable: the spaCy model is not installed.
    """

    name: ClassVar[str] = "presidio"

    def __init__(self, policy: Policy, *, model: str | None = None) -> None:
        from guardrail.detection.registry import build_analyzer

        self.policy = policy
        self.model = model or model_for(policy)
        settings = policy.detection
        self._entities = sorted(settings.all_entities)
        self._thresholds = {e: settings.thresholds.get(e, settings.threshold) for e in self._entities}
        self._allow = {v.casefold() for v in settings.allow_list}
        self._allow_patterns = [re.compile(p) for p in settings.allow_patterns]
        self._deny = _deny_regex([e.value for e in settings.deny_entries])
        self._deny_entity = {e.value.casefold(): e.entity for e in settings.deny_entries}
        self._window = settings.window
        self._analyzer = build_analyzer(policy, self.model)
        # GUARDRAIL_DETECTION_CACHE=0 turns the result cache off (e.g. to measure detection itself)
        self._cache_on = os.environ.get("GUARDRAIL_DETECTION_CACHE", "1") != "0"
        self._cache: OrderedDict[bytes, tuple[Finding, ...]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._nlp = self._analyzer.nlp_engine
        self._context = {
            r.name: re.compile(r"\b(?:" + "|".join(re.escape(w.lower()) for w in r.context) + ")")
            for r in self._analyzer.registry.recognizers
            if r.context
        }

    def __repr__(self) -> str:
        return f"PresidioDetector(policy={self.policy.id!r}, model={self.model!r})"

    # ------------------------------------------------------------------ public

    def detect(self, text: str) -> list[Finding]:
        """Findings in ``text``: non-overlapping, sorted by offset.

        Raises:
            DetectionError: the analyzer failed (the caller must not release the text).
        """
        return self.detect_batch([text])[0]

    def detect_batch(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings for each text; the NLP model runs over all of them (and their windows) batched.

        Detection is deterministic, so a text seen recently (the same chat turn in many conversations, a
        repeated template) is answered from a small cache keyed by a digest of the text; the cache never
        holds a text.
        """
        if isinstance(texts, str):
            raise TypeError("detect_batch takes a list of texts")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text {i} is {type(text).__name__}, not str")
        if not self._cache_on:
            return self._detect_uncached(texts)
        keys: list[bytes | None] = []
        known: dict[int, list[Finding]] = {}
        first: dict[bytes, int] = {}
        todo: list[str] = []
        todo_index: list[int] = []
        with self._cache_lock:
            for i, text in enumerate(texts):
                key = _digest(text) if len(text) <= _CACHE_MAX_CHARS else None
                keys.append(key)
                if key is not None:
                    hit = self._cache.get(key)
                    if hit is not None:
                        self._cache.move_to_end(key)
                        known[i] = list(hit)
                        continue
                    if key in first:
                        continue  # the same text earlier in this batch: copied below
                    first[key] = i
                todo.append(text)
                todo_index.append(i)
        found = self._detect_uncached(todo) if todo else []
        out: list[list[Finding]] = [[] for _ in texts]
        for i, findings in zip(todo_index, found, strict=True):
            out[i] = findings
        for i, findings in known.items():
            out[i] = findings
        with self._cache_lock:
            for i, key in enumerate(keys):
                if key is None:
                    continue
                if i not in known and first.get(key) != i:
                    out[i] = list(out[first[key]])
                elif first.get(key) == i:
                    self._cache[key] = tuple(out[i])
                    if len(self._cache) > _CACHE_ENTRIES:
                        self._cache.popitem(last=False)
        return out

    def _detect_uncached(self, originals: Sequence[str]) -> list[list[Finding]]:
        try:
            return self._detect_views(originals)
        except Exception as exc:  # noqa: BLE001 - any failure must fail closed, whatever its type
            # fail closed, and never echo the text: the message names the failure type only
            raise DetectionError(f"detection failed ({type(exc).__name__})") from (
                exc if os.environ.get("GUARDRAIL_DEBUG") else None
            )

    def _detect_views(self, originals: Sequence[str]) -> list[list[Finding]]:
        # detection runs on each text's normalised view (zero-width controls removed, full-width forms
        # folded, "at"/"dot" e-mails ...); findings are mapped back to the original offsets at the end
        views = [normalised_view(t) for t in originals]
        texts = [v.text for v in views]
        pieces: list[tuple[int, int, int, int, str]] = []  # text index, offset, keep_from, keep_to, piece
        for i, text in enumerate(texts):
            if not text.strip():
                continue
            for w in split_windows(text, size=self._window.size, overlap=self._window.overlap):
                pieces.append((i, w.start, w.keep_from, w.keep_to, text[w.start : w.end]))
        raw: list[list[Finding]] = [[] for _ in texts]
        artifacts = self._nlp.process_batch([p[4] for p in pieces], "en")
        for (i, offset, keep_from, keep_to, piece), (_, nlp_artifacts) in zip(pieces, artifacts, strict=True):
            for f in self._analyze(piece, nlp_artifacts):
                start = f.start + offset
                if keep_from <= start < keep_to:
                    raw[i].append(Finding(start, f.end + offset, f.entity, f.score, f.recognizer))
        return [_mapped(view, self._finish(view.text, found)) for view, found in zip(views, raw, strict=True)]

    # ------------------------------------------------------------------ internals

    def _analyze(self, text: str, nlp_artifacts: Any) -> list[Finding]:
        results = self._analyzer.analyze(
            text=text,
            language="en",
            entities=self._entities,
            nlp_artifacts=nlp_artifacts,
            score_threshold=0.0,
        )
        out = []
        lowered = text.lower()
        for r in results:
            meta = r.recognition_metadata or {}
            name = str(meta.get("recognizer_name", ""))
            score = float(r.score)
            context = self._context.get(name)
            if (
                context is not None
                and score < _CONTEXT_FLOOR + _CONTEXT_BOOST
                and (
                    context.search(lowered, max(0, r.start - _CONTEXT_BEFORE), r.start)
                    or context.search(lowered, r.end, r.end + _CONTEXT_AFTER)
                )
            ):
                score = max(_CONTEXT_FLOOR, min(1.0, score + _CONTEXT_BOOST))
            if score < self._thresholds.get(r.entity_type, 1.01):
                continue
            start, end = r.start, r.end
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end - start > 1 and text[end - 1] == "." and _FULL_STOP.search(text, start, end):
                end -= 1  # "123 Main Street." - but "Main St." keeps its abbreviation point
            if r.entity_type == "UK_NHS" and not _NHS_CONTEXT.search(
                lowered, max(0, start - _CONTEXT_BEFORE), end + _CONTEXT_AFTER
            ):
                # one 10-digit number in 11 passes the NHS checksum: without NHS context it is more likely
                # the phone or account number it is labelled as, which then wins the overlap; alone it is
                # still redacted
                score = min(score, 0.5)
            if start < end:
                out.append(Finding(start, end, r.entity_type, score, name))
        return out

    def _finish(self, text: str, found: list[Finding]) -> list[Finding]:
        found = _outside_placeholders(text, found)
        found = [f for f in found if not self._allowed(text[f.start : f.end])]
        found = _personal_names(text, found)
        found.extend(_propagate(text, found))
        found.extend(_coordinated_names(text, found))
        found.extend(_name_aliases(text, found))
        found = _given_names(text, found)
        found = _extend_addresses(text, found)
        found = [f for f in found if not self._allowed(text[f.start : f.end])]
        if self._deny is not None:
            for m in self._deny.finditer(text):
                entity = self._deny_entity.get(m.group().casefold(), "DENY_LIST")
                found.append(Finding(m.start(), m.end(), entity, 1.0, "DenyList"))
        return stable_types(text, resolve(found))

    def _allowed(self, value: str) -> bool:
        if value.strip().casefold() in self._allow:
            return True
        return any(p.fullmatch(value) for p in self._allow_patterns)


def _mapped(view: View, found: list[Finding]) -> list[Finding]:
    """``found`` (offsets in the normalised view) with offsets in the original text."""
    if view.identity:
        return found
    out = []
    for f in found:
        start, end = view.span(f.start, f.end)
        out.append(Finding(start, end, f.entity, f.score, f.recognizer))
    return out


# Names found on weak evidence (the small model's label, a given-name list, a role word) that are
# brands, products or software in a commerce sense, or clinical vocabulary, are not personal data.
_NAMED_TYPES = frozenset({"PERSON", "ORGANIZATION", "LOCATION"})
_STRONG_NAME = 0.8


_LEGAL_NAME = re.compile(
    r"[\s,](?:Inc|Incorporated|Corp|Corporation|Ltd|Limited|LLC|LLP|PLC|Plc|plc|AG|SA|BV|NV|GmbH|KG|SE|SpA|"
    r"Srl|SAS|SARL|Oy|Oyj|AB|ASA|A/S|ApS|Pty|Holdings|Group|Bancorp|Trust)\b\.?\s*$"
)


_NAMED_OR_GROUP = frozenset({"PERSON", "ORGANIZATION", "LOCATION", "NRP"})
# a demonym as a language: "in Hungarian", "speaks Polish", "translated into Greek"
_LANGUAGE_BEFORE = re.compile(
    r"(?i)\b(?:in|into|speaks?|spoke|speaking|learn(?:s|ed|ing|t)?|fluent(?:\s+in)?|translat\w*(?:\s+(?:from|into|to))?|"
    r"subtitles?\s+in|written\s+in|version\s+in|dubbed\s+in)\s+$"
)
# a demonym describing a thing, not a person: "Greek labour law", "the Polish payment options"
_THING_AFTER = re.compile(
    r"(?i)^\s+(?:labou?r\s+law|law|laws|language|version|translation|subtitles|menu|keyboard|layout|food|cuisine|"
    r"restaurant|dishes|recipes?|payment|payments|market|markets|tax|taxes|vat|"
    r"holidays?|time|timezone|text|site|website|edition|branch|office|suppliers?|retailers?|banks?|"
    r"regulators?|regulations?|rules|standards?|grammar|alphabet|script|spelling|easter|christmas|"
    r"new\s+year|festival|calendar)\b"
)
# a place in a business sense: where a company ships, sells, hosts or operates
_MARKET_BEFORE = re.compile(
    r"(?i)\b(?:ship(?:s|ped|ping)?\s+(?:to|from|within)|deliver(?:s|y|ies)?\s+to|sell(?:s|ing)?\s+in|sold\s+in|"
    r"available\s+in|launch(?:ed|es|ing)?\s+in|reviewed\s+in(?:\s+the)?|operat(?:e|es|ing)\s+in|"
    r"expand(?:s|ed|ing)?\s+(?:in)?to|hosted\s+in|(?:data\s*cent(?:er|re)s?|servers?|region)\s+in|"
    r"headquartered\s+in|parent\s+company\s+in|"
    r"trade\s+fair\s+in|must\s+stay\s+in|stored\s+in)\s+$"
)
_SITE_DETERMINER = re.compile(r"(?i)\b(?:our|your|their|its)\s+$")
_SITE_AFTER = re.compile(
    r"(?i)\s+(?:office|offices|branch|store|stores|shop|warehouse|region|site|campus|plant|factory|hub|"
    r"headquarters|market|data\s*cent(?:er|re)|depot|showroom|team)\b"
)


def _SITE_AROUND(text: str, f: Finding) -> bool:
    return bool(
        _SITE_DETERMINER.search(text, max(0, f.start - 12), f.start) and _SITE_AFTER.match(text, f.end)
    )


_DEPARTMENT_WORDS = (
    r"Operations|Sales|Marketing|Finance|Financial|Engineering|Data|Platforms?|Products?|Growth|People|"
    r"Talent|Acquisition|Procurement|Purchasing|Logistics|Supply|Chain|Strategy|Research|Development|"
    r"Support|Customer|Success|Security|Infrastructure|Legal|Compliance|Risk|Analytics|Design|Quality|"
    r"Manufacturing|Partnerships|Business|Communications|Admissions|Facilities|Technology|Innovation|"
    r"Digital|Transformation|Accounts|Payroll|Treasury|Audit|Investor|Relations|Public|Affairs|Events|"
    r"Content|Brand|Cloud|Mobile|Backend|Frontend|Services|Experience|Insights|Intelligence|Revenue|"
    r"Enablement|Programs?|Projects?|Delivery|Solutions|Administration|Resources|Human|and|&"
)
_DEPARTMENT = re.compile(rf"(?:(?:{_DEPARTMENT_WORDS})(?:[ ,]+|$))+$")


def _is_demonym(value: str) -> bool:
    from guardrail.detection.recognizers.gazetteers import demonym_forms

    words = re.findall(r"[^\W\d_]+", value)
    return len(words) == 1 and words[0].lower() in demonym_forms()


def _personal_names(text: str, found: list[Finding]) -> list[Finding]:
    from guardrail.detection.recognizers.ner import CALENDAR_NAME
    from guardrail.detection.recognizers.vocabulary import (
        COMMERCE_AFTER,
        COMMERCE_BEFORE,
        EMPLOYMENT_BEFORE,
        commerce_name,
        not_personal,
    )

    out = []
    for original in found:
        f = original
        value = text[f.start : f.end]
        if (
            f.entity in _NAMED_OR_GROUP
            and CALENDAR_NAME.match(value.strip())
            and (f.score < 0.9 or f.recognizer == "SpacyNerRecognizer")
        ):
            # "Monday", "Thu", "Golden Week" found as a name on weak evidence: a weekday or a holiday
            # ("call me Thu" is strong evidence of a name and stays)
            continue
        if value.startswith("@") and commerce_name(value[1:]):
            continue  # "@Ryanair": a company's own handle
        if f.entity in _NAMED_TYPES and _DEPARTMENT.match(value):
            continue  # "Operations" in "Head of Operations", "Data Platforms": a department, not a name
        if f.recognizer == "SpacyNerRecognizer" and f.entity in _NAMED_TYPES and _is_demonym(value):
            f = Finding(f.start, f.end, "NRP", f.score, f.recognizer)  # "Hungarian 🙂" as an organisation
        if f.entity == "NRP" and f.score < _STRONG_NAME + 0.1:
            before, after = text[max(0, f.start - 40) : f.start], text[f.end : f.end + 30]
            # the model's NORP on a brand ("Bose headphones"); a language ("surname first in Hungarian",
            # "speaks Polish"); an adjective of a country's things ("Greek labour law"): no group of people
            if (f.recognizer == "SpacyNerRecognizer" and not_personal(value, before=before, after=after)) or (
                _LANGUAGE_BEFORE.search(before) or _THING_AFTER.match(after)
            ):
                continue
        if f.recognizer == "SpacyNerRecognizer" and (
            (f.entity == "LOCATION" and _MARKET_BEFORE.search(text, max(0, f.start - 40), f.start))
            or (f.entity in ("LOCATION", "ORGANIZATION") and _SITE_AROUND(text, f))
        ):
            continue  # "do you ship to Canada?", "our Bergen office": a place in a business sense
        if f.entity in _NAMED_TYPES and (
            f.score < _STRONG_NAME or f.recognizer in ("SpacyNerRecognizer", "FacilityRecognizer")
        ):
            before, after = text[max(0, f.start - 40) : f.start], text[f.end : f.end + 30]
            if _LEGAL_NAME.search(text, f.start, f.end) or EMPLOYMENT_BEFORE.search(before):
                out.append(f)  # "MoneyGram International Inc.", "joined Goldman Sachs": identifies someone
                continue
            if not_personal(text[f.start : f.end], before=before, after=after):
                continue
            if (
                f.entity == "ORGANIZATION"
                and f.recognizer == "SpacyNerRecognizer"
                and (COMMERCE_BEFORE.search(before) or COMMERCE_AFTER.match(after))
            ):
                continue  # "bought at X", "supplier to X", "the X app": a business in a commerce sense
        out.append(f)
    return out


def _placeholder_regex() -> re.Pattern[str]:
    from guardrail.policy import BUILTIN_ENTITIES

    names = "|".join(sorted(BUILTIN_ENTITIES | {"DENY_LIST", "REDACTED"}, key=len, reverse=True))
    # <PERSON>, <PERSON_3>, <PERSON_3ffsbnqyim>, <PERSON_7Q2K9X>, and the bare PERSON_3ffsbnqyim
    code = r"(?:\d{1,6}|[a-z2-7]{6,16}|[2-9A-Z]{6,16})"
    return re.compile(rf"<[A-Z][A-Z0-9_]*>|(?<![\w<])(?:{names})_{code}(?![\w>])")


_PLACEHOLDER: list[re.Pattern[str]] = []


def _outside_placeholders(text: str, found: list[Finding]) -> list[Finding]:
    """Findings with guardrail's own placeholders and tokens cut out: a re-scan of redacted text (or text
    redacted earlier) never counts ``<PERSON_3>`` or a vault code as personal data."""
    if "_" not in text and "<" not in text:
        return found
    if not _PLACEHOLDER:
        _PLACEHOLDER.append(_placeholder_regex())
    spans = [m.span() for m in _PLACEHOLDER[0].finditer(text)]
    if not spans:
        return found
    out = []
    for f in found:
        start, end = f.start, f.end
        for a, b in spans:
            if a < end and start < b:
                # keep the longer part of the finding outside the placeholder, if any
                left, right = (start, min(end, a)), (max(start, b), end)
                start, end = max(left, right, key=lambda p: p[1] - p[0])
        if text[start:end].strip(" \t,.;:()-") and end - start > 0:
            if (start, end) == (f.start, f.end):
                out.append(f)
            else:
                while start < end and not text[start].isalnum():
                    start += 1
                while end > start and not text[end - 1].isalnum():
                    end -= 1
                if start < end:
                    out.append(Finding(start, end, f.entity, f.score, f.recognizer))
    return out


# Within one text, one surface value has one entity type (so one pseudonym token), whatever the model
# says per sentence: the type with the strongest evidence wins, and pattern or context evidence ("my name
# is X", a title, a field) outranks the model's label.
_STABLE_TYPES = frozenset({"PERSON", "ORGANIZATION", "LOCATION", "NRP", "USERNAME"})


def _evidence(f: Finding) -> float:
    return f.score + (0.0 if f.recognizer in ("SpacyNerRecognizer", "Propagation") else 0.2)


def stable_types(text: str, found: list[Finding]) -> list[Finding]:
    """``found`` with every surface value of a name-like type relabelled to its best-evidenced type."""
    return stable_types_across([text], [found])[0]


def stable_types_across(texts: Sequence[str], found: Sequence[list[Finding]]) -> list[list[Finding]]:
    """:func:`stable_types` over several texts of one record or document (the turns of a chat): one
    surface value, one entity type in all of them; a lone part of a person's full name ("Jonas" after
    "Jonas Eklund") is a person too."""
    best: dict[str, Finding] = {}
    parts: set[str] = set()
    for text, fs in zip(texts, found, strict=True):
        for f in fs:
            if f.entity in _STABLE_TYPES:
                key = " ".join(text[f.start : f.end].split()).casefold()
                if key not in best or _evidence(f) > _evidence(best[key]):
                    best[key] = f
    for key, f in best.items():
        if f.entity == "PERSON" and " " in key:
            parts.update(w for w in key.split() if len(w) > 2)
    if len(texts) > 1:
        found = _propagate_across(texts, found, best)
    out: list[list[Finding]] = []
    for text, fs in zip(texts, found, strict=True):
        row = []
        for f in fs:
            if f.entity in _STABLE_TYPES:
                key = " ".join(text[f.start : f.end].split()).casefold()
                entity = "PERSON" if key in parts else best[key].entity
                if entity != f.entity:
                    row.append(Finding(f.start, f.end, entity, f.score, f.recognizer))
                    continue
            row.append(f)
        out.append(row)
    return out


def _propagate_across(
    texts: Sequence[str], found: Sequence[list[Finding]], best: dict[str, Finding]
) -> list[list[Finding]]:
    """People's names and name parts found in one text of a record, found in its other texts too
    ("Thanks, Mateus" in the reply to "I'm Mateus Eklund")."""
    from guardrail.detection.recognizers.gazetteers import AMBIGUOUS_NAMES

    names: set[str] = set()
    for key, f in best.items():
        if f.entity == "PERSON":
            for word in key.split():
                if len(word) > 2 and word not in AMBIGUOUS_NAMES and word not in _TITLE_WORDS:
                    names.add(word)
    if not names:
        return list(found)
    pattern = re.compile(
        r"(?<![\w@.-])(?:"
        + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        + r")(?![\w@-])",
        re.IGNORECASE,
    )
    out = []
    for text, fs in zip(texts, found, strict=True):
        extra = [
            Finding(m.start(), m.end(), "PERSON", 0.6, "Propagation")
            for m in pattern.finditer(text)
            if m.group()[:1].isupper() and not any(f.start < m.end() and m.start() < f.end for f in fs)
        ]
        out.append(resolve([*fs, *extra]) if extra else fs)
    return out


_NHS_CONTEXT = re.compile(r"\bnhs\b|health service|chi number|\bnhs(?:no|number)")

# recent results, keyed by a digest of the text (never the text): chat datasets repeat turns and templates
_CACHE_ENTRIES = 16_384
_CACHE_MAX_CHARS = 4_096


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# Values of these types are redacted wherever else they occur in the same text; a person's name parts
# too ("Finch" after "Harold Finch"). Short numbers (ages, dates, ZIPs) are not: "45" is too common.
# NRP values are: a word judged a nationality or group once is one everywhere in the text (found by the
# property test: "tlzt ... tlzt" left its second occurrence in clear).
_PROPAGATE_EXCLUDE = frozenset({"AGE", "DATE_TIME", "US_ZIP_CODE"})
_NAME_PART = re.compile(r"[A-ZÀ-ÞĀ-Ž][\w'’-]{2,}")


def _propagate(text: str, found: list[Finding]) -> list[Finding]:
    from guardrail.detection.recognizers.gazetteers import AMBIGUOUS_NAMES

    values: dict[str, str] = {}
    for f in found:
        if f.entity in _PROPAGATE_EXCLUDE:
            continue
        value = text[f.start : f.end].strip()
        if len(value) >= 3:
            values.setdefault(value, f.entity)
        if f.entity == "PERSON":
            for part in _NAME_PART.findall(value):
                if part.lower() not in AMBIGUOUS_NAMES and part.lower() not in _TITLE_WORDS:
                    values.setdefault(part, "PERSON")
                    values.setdefault(part.upper(), "PERSON")  # "RODRIGUEZ, Maria" after "Ana Rodriguez"
    if not values:
        return []
    pattern = re.compile(
        r"(?<![\w@.-])(?:"
        + "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
        + r")(?![\w@-])"
    )
    return [
        Finding(m.start(), m.end(), values[m.group()], 0.6, "Propagation") for m in pattern.finditer(text)
    ]


# Names listed together: "Tell Sven and Ingrid", "They had 6: Santo, Willie, Jodi and Crystal". When one
# member of such a list is a person, the other single capitalised words in it are people too.
_LIST_WORD = r"[A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž]+(?:-[A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž]+)?"
_NAME_LIST = re.compile(rf"\b{_LIST_WORD}(?:,[ ]{_LIST_WORD})*,?[ ](?:and|or|&)[ ]{_LIST_WORD}\b")
_LIST_ITEM = re.compile(_LIST_WORD)


def _coordinated_names(text: str, found: list[Finding]) -> list[Finding]:
    from guardrail.detection.recognizers.gazetteers import AMBIGUOUS_NAMES

    people = {(f.start, f.end) for f in found if f.entity == "PERSON"}
    if not people:
        return []
    out: list[Finding] = []
    for m in _NAME_LIST.finditer(text):
        items = [(i.start(), i.end()) for i in _LIST_ITEM.finditer(text, m.start(), m.end())]
        named = sum(span in people for span in items)
        if named:
            # a word that is also a common word ("Crystal", "Hope") is a person too when two or more other
            # members of the list are
            out.extend(
                Finding(s, e, "PERSON", 0.6, "Coordination")
                for s, e in items
                if (s, e) not in people
                and (named >= 2 or text[s:e].lower() not in AMBIGUOUS_NAMES)
                and text[s:e] not in _LIST_STOP
                and text[s:e] not in _NOT_GIVEN
            )
    return out


# A capitalised word right before a detected surname, inside a sentence ("add Kenji Okafor as a user"),
# is a given name even when the model does not know it. Not at a sentence start ("Contact Smith"), and
# not a word that is capitalised for another reason.
_GIVEN_BEFORE = re.compile(r"(?<![\w'’-])[a-zß-ÿ][\w'’-]*,? ([A-ZÀ-ÞĀ-Ž][a-zß-ÿā-ž'’-]{1,20}) $")
_NOT_GIVEN = frozenset(
    {
        "I", "Mr", "Mrs", "Ms", "Dr", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
        "Sunday", "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December", "God", "Christmas", "Easter", "English", "French", "Spanish",
        "German", "Internet", "Street", "Avenue", "Road", "Saint", "Lake", "Mount", "Fort", "Port", "North",
        "South", "East", "West", "New", "San", "Santa", "Los", "Las", "Le", "La",
    }
)  # fmt: skip


def _given_names(text: str, found: list[Finding]) -> list[Finding]:
    taken = sorted((f.start, f.end) for f in found)
    out: list[Finding] = []
    for f in found:
        if f.entity != "PERSON" or " " in text[f.start : f.end].strip():
            out.append(f)  # only a lone surname (one word) is extended
            continue
        m = _GIVEN_BEFORE.search(text, max(0, f.start - 48), f.start)
        word = m.group(1) if m else None
        if m is None or word in _NOT_GIVEN or any(s < f.start and e > m.start(1) for s, e in taken):
            out.append(f)
            continue
        out.append(Finding(m.start(1), f.end, "PERSON", f.score, f.recognizer))
    return out


# What follows a person's name in brackets is the same person: the name in its own script
# ("Park Ji-woo (박지우)", "Wei Zhang (张伟)") or a nickname ('Ahmed, Zainab (goes by "Zee")', '("Femi")').
_ALIAS = re.compile(
    r"[ \t]*\((?:(?:goes\s+by|aka|a\.k\.a\.|called|prefers|nickname:?)[ \t]+)?[\"“'‘]?"
    r"(?P<v>[^\W\d_][^()\"”'’\n,;:]{0,30}?)[\"”'’]?\)"
)
_ALIAS_AFTER = re.compile(
    r"[ \t]*,?[ \t]*(?:goes\s+by|aka|a\.k\.a\.|known\s+as)[ \t]+[\"“'‘](?P<v>[^\"”'’\n]{1,30})[\"”'’]"
)


def _name_aliases(text: str, found: list[Finding]) -> list[Finding]:
    out = []
    for f in found:
        if f.entity != "PERSON":
            continue
        m = _ALIAS.match(text, f.end) or _ALIAS_AFTER.match(text, f.end)
        if m is None:
            continue
        alias = m.group("v").strip()
        # a name in a non-Latin script, or a quoted or "goes by" nickname; not "(admin)" or "(MD)"
        quoted = m.group(0).lstrip(" \t(")[:1] in "\"“'‘" or "by" in m.group(0) or "aka" in m.group(0)
        foreign = any(ord(c) > 0x2FF for c in alias) and not any("a" <= c.lower() <= "z" for c in alias)
        if alias and (quoted or foreign) and len(alias.split()) <= 4:
            out.append(
                Finding(m.start("v"), m.start("v") + len(m.group("v").rstrip()), "PERSON", 0.7, "Alias")
            )
    return out


_LIST_STOP = frozenset(
    {"Tell", "Ask", "Please", "Dear", "Hi", "Hello", "Thanks", "Both", "Either", "Neither"}
)


# Address blocks: a postcode after a place on the same line, and the short capitalised lines (city,
# region, country, postcode) that continue or precede a located line.
_BLOCK_WORD = r"(?:[A-ZÀ-ÞĀ-Žά-ώΑ-Ω][\w'’.-]*|nan|\d{3,6}(?:-\d{3,4})?|[a-zß-ÿ]{1,3})"
_LINE_AFTER = re.compile(rf"[ \t]*\n[ \t]*,?[ \t]*{_BLOCK_WORD}(?:[ \t,]+{_BLOCK_WORD}){{0,3}}[ \t]*(?=\n|$)")
_LINE_BEFORE = re.compile(rf"(?:^|\n)[ \t]*({_BLOCK_WORD}(?:[ \t]+{_BLOCK_WORD}){{0,2}})[ \t]*\n[ \t]*$")
_POSTCODE_AFTER = re.compile(r"[ \t]*,?[ \t]*\d{3,6}(?:-\d{3,4})?(?=[ \t]*(?:\n|$)|[.,;)](?:\s|$))")


def _extend_addresses(text: str, found: list[Finding]) -> list[Finding]:
    out = []
    for f in found:
        if f.entity != "LOCATION":
            out.append(f)
            continue
        start, end = f.start, f.end
        for _ in range(4):
            m = _POSTCODE_AFTER.match(text, end) or _LINE_AFTER.match(text, end)
            if m is None or m.end() == end:
                break
            end = m.end()
        line_start = text.rfind("\n", 0, start) + 1
        if not text[line_start:start].strip():
            m = _LINE_BEFORE.search(text, max(0, line_start - 60), line_start)
            if m is not None and not any(c.isdigit() for c in m.group(1)):
                start = m.start(1)
        out.append(
            f if (start, end) == (f.start, f.end) else Finding(start, end, f.entity, f.score, f.recognizer)
        )
    return out


_TITLE_WORDS = frozenset({"mr", "mrs", "ms", "dr", "prof", "miss", "mister", "doctor", "the", "and"})


def _deny_regex(values: list[str]) -> re.Pattern[str] | None:
    if not values:
        return None
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
