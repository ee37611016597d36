"""The dataset API takes a keyring as a :class:`~guardrail.keys.Keyring` or as the path of its directory,
and its runs are importable from :mod:`guardrail.datasets` (as the README writes them)."""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

from guardrail.keys import Keyring, KeyringError, as_keyring

MODULES = (
    "guardrail.datasets.run",
    "guardrail.datasets.tokens",
    "guardrail.datasets.reidentify",
    "guardrail.datasets.ray_engine",
    "guardrail.core",
)


def _public_callables() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # pragma: no cover - an optional extra
            continue
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            targets = [obj]
            if inspect.isclass(obj):
                targets = [obj.__init__, *(m for _, m in inspect.getmembers(obj, inspect.ismethod))]
            found += [(f"{name}.{attr}", t) for t in targets if callable(t)]
    return found


def test_every_public_keyring_parameter_accepts_a_path() -> None:
    checked = 0
    for where, fn in _public_callables():
        try:
            params = inspect.signature(fn).parameters  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if "keyring" in params:
            checked += 1
            annotation = str(params["keyring"].annotation)
            assert "KeyringLike" in annotation or "str" in annotation, (where, annotation)
    assert checked >= 6  # text_redactor, scan_file, redact_file, tokens_for, reidentify, Guardrail, ...


def test_datasets_exports_the_runs() -> None:
    from guardrail import datasets
    from guardrail.datasets import GateFailed, redact_file, scan_file, text_redactor
    from guardrail.datasets import run as run_module

    assert (redact_file, scan_file, text_redactor, GateFailed) == (
        run_module.redact_file,
        run_module.scan_file,
        run_module.text_redactor,
        run_module.GateFailed,
    )
    assert {"redact_file", "scan_file", "text_redactor"} <= set(datasets.__all__)
    with pytest.raises(AttributeError):
        _ = datasets.no_such_name


def test_as_keyring(tmp_path: Path) -> None:
    ring = Keyring.create(tmp_path / "keys")
    assert as_keyring(ring) is ring
    assert as_keyring(str(tmp_path / "keys")).directory == ring.directory
    assert as_keyring(tmp_path / "keys").directory == ring.directory
    with pytest.raises(KeyringError, match="no keyring here"):
        as_keyring(tmp_path / "nothing")
    with pytest.raises(TypeError, match="keyring directory's path"):
        as_keyring(42)  # type: ignore[arg-type]


def test_runs_with_a_keyring_path_match_runs_with_a_keyring(tmp_path: Path) -> None:
    from guardrail.datasets import redact_file, scan_file, text_redactor

    ring = Keyring.create(tmp_path / "keys")
    src = tmp_path / "chat.jsonl"
    row = {"messages": [{"role": "user", "content": "I am Olivia Bennett, email olivia@example.com."}]}
    src.write_text(json.dumps(row) + "\n")
    by_object = redact_file(src, tmp_path / "a.jsonl", policy="gdpr", keyring=ring)
    by_path = redact_file(src, tmp_path / "b.jsonl", policy="gdpr", keyring=str(tmp_path / "keys"))
    assert by_path.signed_by_keyring
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert "Olivia" not in (tmp_path / "b.jsonl").read_text()
    assert by_object.manifest.output_records == 1
    redact = text_redactor("gdpr", tmp_path / "keys")
    (text,) = redact(["I am Olivia Bennett, email olivia@example.com."])
    assert text == json.loads((tmp_path / "a.jsonl").read_text())["messages"][0]["content"]
    audited = scan_file(src, policy="gdpr", keyring=tmp_path / "keys", audit_log=tmp_path / "audit")
    assert audited.records == 1
    assert (tmp_path / "audit").is_dir()
