"""The audit package's public API is tidy, and its core stays free of typer and llama_index."""

from __future__ import annotations

import json
import subprocess
import sys

import guardrail.audit


def test_all_is_sorted_and_importable() -> None:
    names = guardrail.audit.__all__
    # ruff's isort-style order (RUF022): CONSTANTS, then Classes, then functions
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(guardrail.audit, name), name


def test_core_imports_neither_typer_nor_llama_index() -> None:
    code = (
        "import json, sys; import guardrail.audit; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'llama_index'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
