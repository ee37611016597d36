"""Overlapping windows for texts longer than the NLP model accepts, with offsets mapped back."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Window", "split_windows"]


@dataclass(frozen=True, slots=True)
class Window:
    """``text[start:end]``; findings starting in ``[keep_from, keep_to)`` belong to this window."""

    start: int
    end: int
    keep_from: int
    keep_to: int


def _cut(text: str, pos: int, lo: int) -> int:
    """A cut point at or before ``pos`` (and after ``lo``) on whitespace, so no word is split."""
    for i in range(pos, max(lo, pos - 200), -1):
        if text[i - 1].isspace():
            return i
    return pos


def split_windows(text: str, *, size: int, overlap: int) -> list[Window]:
    """Windows of at most ``size`` characters overlapping by about ``overlap``.

    Every offset belongs to exactly one window's keep range, and each keep range sits at least
    ``overlap // 2`` characters inside its window (except at the ends of the text), so a finding shorter
    than that is seen whole by the window that keeps it.
    """
    n = len(text)
    if n <= size:
        return [Window(0, n, 0, n)]
    windows: list[Window] = []
    start = 0
    keep_from = 0
    while True:
        end = n if start + size >= n else _cut(text, start + size, start + overlap * 2)
        if end == n:
            windows.append(Window(start, end, keep_from, n))
            return windows
        next_start = _cut(text, end - overlap, start + 1)
        keep_to = (next_start + end) // 2
        windows.append(Window(start, end, keep_from, keep_to))
        start, keep_from = next_start, keep_to
