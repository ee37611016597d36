"""The ROPA prints each policy's description: the shipped packs' descriptions describe what they do,
not the project's development history (issue 13: "the ROPA prints stale developer text")."""

from __future__ import annotations

import re

import pytest

from guardrail.policy import available_packs, load_policy

_DEVELOPER_TEXT = re.compile(r"later release|future release|TODO|FIXME|issue \d+|not yet implemented", re.I)


@pytest.mark.parametrize("pack", sorted(available_packs()))
def test_pack_descriptions_hold_no_developer_text(pack: str) -> None:
    description = " ".join(load_policy(pack).description.split())
    assert description
    assert not _DEVELOPER_TEXT.search(description), description
