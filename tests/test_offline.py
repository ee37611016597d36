"""Detection works with networking disabled, and ``import guardrail`` stays light.

Both checks run in a fresh interpreter, so nothing is pre-imported by pytest or by other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

TEXT = "Write to jane.doe@example.com or visit https://www.example.org today"

# The socket guard is installed before anything from guardrail (or its dependencies) is imported.
SCRIPT = textwrap.dedent(
    """
    import json
    import socket
    import sys

    attempts = []


    def _blocked(name):
        def guard(*args, **kwargs):
            attempts.append(name)
            raise RuntimeError(f"network disabled in this test: socket {name}")

        return guard


    socket.socket.connect = _blocked("connect")
    socket.socket.connect_ex = _blocked("connect_ex")
    socket.create_connection = _blocked("create_connection")
    socket.getaddrinfo = _blocked("getaddrinfo")

    import guardrail

    heavy = sorted(m for m in ("spacy", "presidio_analyzer") if m in sys.modules)

    from guardrail import Guardrail

    text = sys.argv[1]
    found = Guardrail("default").detect(text)
    print(
        json.dumps(
            {
                "heavy_after_import": heavy,
                "findings": [{"entity": f.entity, "value": text[f.start : f.end]} for f in found],
                "attempts": attempts,
            }
        )
    )
    """
)


def _run_isolated() -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP", "HTTPS", "GUARDRAIL_"))}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, TEXT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def offline_run() -> dict[str, object]:
    proc = _run_isolated()
    assert proc.returncode == 0, proc.stderr
    for noise in ("Traceback", "urllib", "requests", "network disabled"):
        assert noise not in proc.stderr, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_detection_works_without_network(offline_run: dict[str, object]) -> None:
    assert offline_run["attempts"] == []
    findings = offline_run["findings"]
    assert isinstance(findings, list)
    by_entity = {f["entity"]: f["value"] for f in findings}
    assert by_entity.get("EMAIL_ADDRESS") == "jane.doe@example.com"
    assert "URL" in by_entity
    assert "www.example.org" in by_entity["URL"]


@pytest.mark.slow
def test_import_guardrail_does_not_load_nlp_stack(offline_run: dict[str, object]) -> None:
    assert offline_run["heavy_after_import"] == []
