"""The wheel ships the policy packs and the demo data; the public API is tidy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import guardrail

REPO = Path(__file__).resolve().parents[1]


DIST = "guardrail-privacy"  # the distribution name on PyPI (`guardrail` there is an unrelated project)
EXTRAS = ("chroma", "qdrant", "datasets", "ray", "hsm", "all", "dev")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, offline (no build isolation, no index)."""
    out = tmp_path_factory.mktemp("wheel")
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
            str(out),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, list(out.iterdir())
    return wheels[0]


@pytest.mark.slow
def test_wheel_is_named_for_pypi_and_declares_every_extra(wheel: Path) -> None:
    assert wheel.name.startswith("guardrail_privacy-"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        (meta_name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = zf.read(meta_name).decode()
        entry_points = zf.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert f"Name: {DIST}\n" in meta
    declared = {line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Provides-Extra: ")}
    assert set(EXTRAS) <= declared
    # the light install carries no integration: those come with their extra only
    base = [
        line for line in meta.splitlines() if line.startswith("Requires-Dist: ") and "extra ==" not in line
    ]
    for heavy in ("chromadb", "qdrant", "ray", "pyarrow", "datasets", "pkcs11", "pytest", "mypy"):
        assert not any(heavy in line for line in base), (heavy, base)
    assert "guardrail = guardrail.cli:main" in entry_points


@pytest.mark.slow
def test_wheel_contains_policies_and_sample_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
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


@pytest.mark.slow
def test_wheel_installs_in_a_clean_venv_and_runs(wheel: Path, tmp_path: Path) -> None:
    """``pip install`` of the wheel under its name into a new venv, offline; then the command works.

    The dependencies come from this venv's site-packages (a path entry, so this checkout's editable
    install is not active there): the wheel itself is installed for real, from a local index directory.
    """
    import sysconfig
    import venv

    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "_deps_from_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-index",
            "--find-links",
            str(wheel.parent),
            "--no-deps",  # they are on the path already (and the checkout's own install must not count)
            "--ignore-installed",
            DIST,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    assert (site / "guardrail" / "__init__.py").exists()  # installed from the wheel, not linked
    command = target / "bin" / "guardrail"
    version = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"guardrail {guardrail.__version__} (distribution {DIST})"
    packs = subprocess.run(
        [str(command), "policy", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "200"},
        check=False,
        cwd=tmp_path,  # not the checkout: the packs must come from the wheel
    )
    assert packs.returncode == 0, packs.stderr
    assert {p["name"] for p in json.loads(packs.stdout)} == {"default", "gdpr", "hipaa-safe-harbor"}
    where = subprocess.run(
        [str(python), "-c", "import guardrail; print(guardrail.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=env,
    ).stdout
    assert where.startswith(str(site)), where


def test_make_demo_installs_the_runtime_only() -> None:
    """`make demo` installs the project without extras; `make test` installs the dev extra."""
    plan = subprocess.run(
        ["make", "-n", "-B", "demo"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line and "--upgrade pip" not in line]
    assert installs, plan
    assert all(re.search(r"pip install (--quiet )?-e \.(;|$)", line) for line in installs), installs
    test_plan = subprocess.run(
        ["make", "-n", "-B", "unit"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "pip install --quiet -e '.[dev]'" in test_plan


def test_all_is_sorted_and_importable() -> None:
    names = guardrail.__all__
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(guardrail, name), name
    namespace: dict[str, object] = {}
    exec(f"from guardrail import {', '.join(names)}", namespace)  # noqa: S102 - fixed names from __all__
    assert all(name in namespace for name in names)
