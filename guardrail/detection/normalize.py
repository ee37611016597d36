"""A normalised view of a text for detection, with every character mapped back to the original.

Obfuscated or unusually encoded personal data defeats patterns written for plain text: a zero-width space
inside an e-mail address, full-width digits in a phone number, an en dash in an SSN, "jane dot doe at
example dot org". Detection runs on a normalised view instead, and each finding's span is mapped back to
the original offsets, so the original characters (zero-width ones included) are the ones redacted.

What the view changes, character by character (nothing else, so a finding's text in the view is the
normalised form of the original characters it maps to):

* compatibility forms are folded as NFKC folds them: full-width and half-width forms, mathematical
  alphanumerics (bold, italic, script, double-struck letters and digits), ligatures, and spaces of every
  kind (no-break, thin, ideographic) become a plain space; superscripts, fractions and other NFKC
  compatibility characters are left alone, since folding them would make new digit sequences
  ("10⁵" is not "105");
* format controls are removed: zero-width space, non-joiner and joiner, word joiner, soft hyphen, the
  byte-order mark, invisible operators and the bidirectional embedding, override and isolate controls;
* a Unicode dash or minus sign between two digits becomes "-" (``123–45–6789``, ``+44 20‒7946``);
* an e-mail address written with words, ``name at domain dot org``, ``name [at] domain [dot] com``,
  ``name(at)domain(dot)co(dot)uk``, becomes ``name@domain.org`` when it ends in a common top-level domain.

A text without any of these (nearly all text) is its own view, at the cost of one regex search.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["View", "normalised_view"]

# format controls that hide inside words: zero-width, soft hyphen, BOM, invisible operators, bidi controls
_REMOVE = frozenset(
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d")
# anything the character-level rules could change: not ASCII and one of the ranges below
_SPECIAL = re.compile(
    "[\u00a0\u00ad\u061c\u1680\u180e\u2000-\u200f\u2010-\u2015\u2028-\u202f\u205f-\u2064\u2066-\u2069"
    "\u2212\u3000\ufb00-\ufb06\ufe58\ufe63\ufeff\uff01-\uffee\U0001d400-\U0001d7ff]"
)
_TLD = (
    r"com|org|net|edu|gov|mil|int|info|biz|io|co|me|app|dev|ai|uk|us|ca|au|nz|ie|de|fr|es|it|nl|be|ch|at|"
    r"se|no|dk|fi|pl|cz|pt|br|mx|ar|cl|in|jp|cn|kr|sg|hk|tw|za|ng|ke|gh|ru|ua|tr|gr|ro|hu|il|ae|ph|my|id|vn"
)
# "at" / "dot" written as words, bracketed or not: " at ", "[at]", "(at)", "{at}", " AT "
_AT = r"(?:\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*|\s+(?i:at)\s+)"
_DOT = r"(?:\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*|\s+(?i:dot)\s+)"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_WORDY_EMAIL = re.compile(
    rf"(?<![\w.+-])(?P<local>[A-Za-z0-9](?:[A-Za-z0-9._+-]{{0,62}}[A-Za-z0-9])?"
    rf"(?:{_DOT}[A-Za-z0-9][A-Za-z0-9_+-]{{0,30}})*)"
    rf"(?P<at>{_AT}|@)(?P<domain>{_LABEL}(?:(?:{_DOT}|\.){_LABEL})*(?:{_DOT}|\.)(?i:{_TLD}))(?![\w-])"
)
# cheap test before the e-mail pattern: a bracketed at, the word "dot", or "jane.doe at example.org"
_WORDY_HINT = re.compile(r"(?i:[\[({<]\s*at\s*[\])}>]|\bdot\b|[._\d]\w*\s+at\s+[\w-]+\.[a-z])")
_DOT_WORD = re.compile(_DOT)


@dataclass(frozen=True, slots=True)
class View:
    """The normalised ``text`` and, for each of its characters, the original span it comes from."""

    original: str
    text: str
    starts: tuple[int, ...] | None = None  # None: the view is the original (identity mapping)
    ends: tuple[int, ...] | None = None

    @property
    def identity(self) -> bool:
        return self.starts is None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the view's ``[start, end)``; a non-empty span maps to a non-empty one."""
        if self.starts is None or self.ends is None:
            return start, end
        if end <= start:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


def _fold(c: str) -> str:
    if c in _REMOVE:
        return ""
    if unicodedata.category(c) == "Zs":
        return " "
    o = ord(c)
    if 0xFF01 <= o <= 0xFFEE or 0xFB00 <= o <= 0xFB06 or 0x1D400 <= o <= 0x1D7FF:
        return unicodedata.normalize("NFKC", c)
    return c


def normalised_view(text: str) -> View:
    """The view of ``text`` detection runs on (see the module docstring); cheap when nothing changes."""
    special = _SPECIAL.search(text) is not None
    wordy = _WORDY_HINT.search(text) is not None
    if not special and not wordy:
        return View(text, text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    n = len(text)
    for i, c in enumerate(text):
        folded = _fold(c) if special else c
        if c in _DASHES and folded != "-":
            # a dash between digits (skipping removed controls) is a hyphen; elsewhere it stays
            j = i - 1
            while j >= 0 and text[j] in _REMOVE:
                j -= 1
            k = i + 1
            while k < n and text[k] in _REMOVE:
                k += 1
            if j >= 0 and k < n and _digit(text[j]) and _digit(text[k]):
                folded = "-"
        for ch in folded:
            out.append(ch)
            starts.append(i)
            ends.append(i + 1)
    view_text = "".join(out)
    if wordy:
        view_text, starts, ends = _wordy_emails(view_text, starts, ends)
    if view_text == text:
        return View(text, text)
    return View(text, view_text, tuple(starts), tuple(ends))


def _digit(c: str) -> bool:
    return c.isdigit() or _fold(c).isdigit()


def _wordy_emails(text: str, starts: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    """``text`` with e-mail addresses written with words folded to their plain form, and the maps."""
    pieces: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    pos = 0
    for m in _WORDY_EMAIL.finditer(text):
        at = m.group("at")
        dotted = _DOT_WORD.search(m.group()) is not None
        if at == "@" and not dotted:
            continue  # a plain address: nothing to fold
        if not dotted and at.strip().lower() == "at" and not re.search(r"[._\d]", m.group("local")):
            continue  # "I work at example.com": a bare "at" needs a local part that looks like one
        pieces.append(text[pos : m.start()])
        new_starts.extend(starts[pos : m.start()])
        new_ends.extend(ends[pos : m.start()])
        cursor = m.start()
        for sub in _UNITS.finditer(m.group()):
            a, b = m.start() + sub.start(), m.start() + sub.end()
            if a > cursor:
                pieces.append(text[cursor:a])
                new_starts.extend(starts[cursor:a])
                new_ends.extend(ends[cursor:a])
            pieces.append("@" if sub.group("a") else ".")
            new_starts.append(starts[a])
            new_ends.append(ends[b - 1])
            cursor = b
        pieces.append(text[cursor : m.end()])
        new_starts.extend(starts[cursor : m.end()])
        new_ends.extend(ends[cursor : m.end()])
        pos = m.end()
    if pos == 0:
        return text, starts, ends
    pieces.append(text[pos:])
    new_starts.extend(starts[pos:])
    new_ends.extend(ends[pos:])
    return "".join(pieces), new_starts, new_ends


_UNITS = re.compile(rf"(?P<a>{_AT})|(?P<d>{_DOT})")
