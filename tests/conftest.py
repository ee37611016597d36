"""Shared fixtures: the spaCy-backed detectors are built once per test session (loading takes ~1 s)."""

from __future__ import annotations

import pytest

from guardrail import Guardrail


@pytest.fixture(scope="session")
def gr_default() -> Guardrail:
    """The ``default`` pack, with its detector built."""
    gr = Guardrail("default")
    _ = gr.detector
    return gr


@pytest.fixture(scope="session")
def gr_hipaa() -> Guardrail:
    """The ``hipaa-safe-harbor`` pack (threshold 0.4, more entities), with its detector built."""
    gr = Guardrail("hipaa-safe-harbor")
    _ = gr.detector
    return gr
