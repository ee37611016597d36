"""The PostgreSQL token vault shared by Ray actors: a dataset run on two Ray actors, the keyring state and
the vault both in PostgreSQL (no shared file for either), writes what the local engine writes, token for
token."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgcluster import PgLog

from guardrail.datasets import redact_file
from guardrail.datasets.tokens import TokenVault
from guardrail.keys import Keyring
from guardrail.keys_pg import move_state

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

NAMES = ["Harold Finch", "Amara Okafor", "Megan Murphy", "Ravi Shankar"]


@pytest.fixture
def ray_local() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_two_ray_actors_share_the_postgres_vault(pg: PgLog, tmp_path: Path, ray_local: None) -> None:
    Keyring.create(tmp_path / "keys")
    ring = move_state(tmp_path / "keys", pg.writer)
    src = tmp_path / "notes.jsonl"
    src.write_text(
        "".join(
            json.dumps(
                {"id": i, "text": f"{NAMES[i % 4]} was seen at Mercy Hospital on March {i % 9 + 1}, 2025."}
            )
            + "\n"
            for i in range(24)
        )
    )
    vault = pg.writer + "&vault=ray"
    local = redact_file(src, tmp_path / "local.jsonl", keyring=ring, policy="hipaa-safe-harbor", vault=vault)
    size = len(TokenVault(vault, keyring=ring, tenant="default"))
    on_ray = redact_file(
        src,
        tmp_path / "ray.jsonl",
        keyring=ring,
        policy="hipaa-safe-harbor",
        vault=vault,
        engine="ray",
        jobs=2,
    )
    text = on_ray.output.read_text()
    assert on_ray.output.read_bytes() == local.output.read_bytes()  # the actors got the same tokens
    assert re.search(r"<PERSON_[2-9A-Z]{6}>", text)
    assert not any(name in text for name in NAMES)
    assert len(TokenVault(vault, keyring=ring, tenant="default")) == size >= 3  # no new token on Ray
