"""The test tree itself: pytest imports test modules by basename (no packages under tests/), so two
files with one name in different directories stop the whole run at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_module_basenames_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert sorted(n for n, c in names.items() if c > 1) == []
