"""The wheel ships the policy packs and the demo data; the public API is tidy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import guardrail

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_policies_and_sample_data(tmp_path: Path) -> None:
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(tmp_path.glob("guardrail-*.whl"))
    assert len(wheels) == 1, list(tmp_path.iterdir())
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
    for required in (
        "guardrail/policies/default.yaml",
        "guardrail/policies/gdpr.yaml",
        "guardrail/policies/hipaa-safe-harbor.yaml",
        "guardrail/data/finetune_chat.jsonl",
    ):
        assert required in names, required
    shipped_kb = {n.rsplit("/", 1)[1] for n in names if n.startswith("guardrail/data/knowledge_base/")}
    expected_kb = {p.name for p in (REPO / "guardrail" / "data" / "knowledge_base").glob("*.md")}
    assert expected_kb, "the source tree has no knowledge base samples"
    assert expected_kb <= shipped_kb


def test_all_is_sorted_and_importable() -> None:
    names = guardrail.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(guardrail, name), name
    namespace: dict[str, object] = {}
    exec(f"from guardrail import {', '.join(names)}", namespace)  # noqa: S102 - fixed names from __all__
    assert all(name in namespace for name in names)
