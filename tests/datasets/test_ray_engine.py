"""The Ray engine on a real local Ray (2 CPUs): the same bytes, counts, rejects and pseudonyms as local."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guardrail.datasets import redact_ray_dataset
from guardrail.datasets.ray_engine import ray_processor
from guardrail.datasets.run import RunResult, redact_file
from guardrail.datasets.tokens import TokenVault
from guardrail.errors import ConfigError
from guardrail.keys import Keyring, KeyringError
from guardrail.policy import load_policy

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'guardrail-privacy[ray]')")

pytestmark = [
    pytest.mark.slow,
    # Ray Data warns about its own deprecated settings while copying its context (not our use of it)
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
]

NAMES = ["Megan Murphy", "Jonas Albrecht", "Priya Raman", "Tomás Ortega", "Aiko Tanaka", "Liam O'Connor"]
CITIES = ["Boston", "Chicago", "Denver"]
RECORDS = 200
BAD_LINE = 58  # 1-based line of the record whose 'messages' is not a list


def _chat(i: int) -> dict[str, Any]:
    name, other = NAMES[i % len(NAMES)], NAMES[(i * 7 + 3) % len(NAMES)]
    user = (
        f"Hi, I'm {name}. My email is {name.split()[0].lower()}.{i}@example.org and my phone is "
        f"(617) 555-{1000 + i:04d}. I moved to {CITIES[i % 3]} on March {i % 28 + 1}, 2021."
    )
    assistant = f"Thanks {name}, I have updated the record and told {other} about it."
    return {
        "id": i,
        "messages": [
            {"role": "system", "content": f"You are a support agent for Acme; ticket {i}."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ],
    }


def _rows() -> list[dict[str, Any]]:
    return [_chat(i) for i in range(RECORDS) if i != BAD_LINE - 1]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def keyring(workdir: Path) -> Keyring:
    return Keyring.create(workdir / "keys")


@pytest.fixture(scope="module")
def chat_file(workdir: Path) -> Path:
    path = workdir / "chat.jsonl"
    lines = [json.dumps(_chat(i), ensure_ascii=False) for i in range(RECORDS)]
    lines[BAD_LINE - 1] = json.dumps({"id": BAD_LINE - 1, "messages": "not a list"})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _run(src: Path, out: Path, keyring: Keyring, policy: str, **options: Any) -> RunResult:
    return redact_file(src, out, keyring=keyring, policy=policy, on_error="skip", **options)


@pytest.fixture(scope="module")
def gdpr(ray_local: None, workdir: Path, chat_file: Path, keyring: Keyring) -> tuple[RunResult, RunResult]:
    """The ``gdpr`` pack (keyed tokens) on the local engine, then on Ray with two actors."""
    local = _run(chat_file, workdir / "gdpr-local.jsonl", keyring, "gdpr")
    on_ray = _run(chat_file, workdir / "gdpr-ray.jsonl", keyring, "gdpr", engine="ray", jobs=2)
    return local, on_ray


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _wait_for_cpus(n: float, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while (free := ray.available_resources().get("CPU", 0)) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return float(free)


class TestRedactFileOnRay:
    """``redact_file(engine="ray")`` writes what the local engine writes, byte for byte."""

    def test_output_is_byte_identical_to_local(self, gdpr: tuple[RunResult, RunResult]) -> None:
        local, on_ray = gdpr
        assert on_ray.output.read_bytes() == local.output.read_bytes()
        text = on_ray.output.read_text(encoding="utf-8")
        assert "<PERSON_" in text
        assert "Megan Murphy" not in text
        assert "@example.org" not in text

    def test_recurring_names_get_one_token_across_actors(self, gdpr: tuple[RunResult, RunResult]) -> None:
        rows = _lines(gdpr[1].output)
        # records 0, 6, 12, ... greet Megan Murphy; at 64 records a chunk, they span several actors' chunks
        greetings = {
            re.findall(r"^Thanks (<PERSON_[a-z2-7]{10}>),", r["messages"][2]["content"])[0]
            for r in rows
            if r["id"] % len(NAMES) == 0
        }
        assert len(greetings) == 1

    def test_system_turns_are_left_alone(self, gdpr: tuple[RunResult, RunResult]) -> None:
        rows = _lines(gdpr[1].output)
        assert [r["messages"][0]["content"] for r in rows] == [m["messages"][0]["content"] for m in _rows()]

    def test_manifest_counts_match(self, gdpr: tuple[RunResult, RunResult]) -> None:
        local, on_ray = (r.manifest for r in gdpr)
        assert (on_ray.input_records, on_ray.output_records, on_ray.rejects) == (RECORDS, RECORDS - 1, 1)
        assert on_ray.findings_before == local.findings_before
        assert on_ray.findings_after == local.findings_after
        assert on_ray.output_sha256 == local.output_sha256
        assert on_ray.findings_before["PERSON"] >= RECORDS

    def test_bad_record_is_rejected_the_same_way(self, gdpr: tuple[RunResult, RunResult]) -> None:
        local, on_ray = gdpr
        assert local.rejects_path is not None
        assert on_ray.rejects_path is not None
        assert on_ray.rejects_path.read_bytes() == local.rejects_path.read_bytes()
        (entry,) = _lines(on_ray.rejects_path)
        assert entry == {"line": BAD_LINE, "reason": "no 'messages' list in this record"}

    def test_actors_are_released_after_the_run(self, gdpr: tuple[RunResult, RunResult]) -> None:
        assert _wait_for_cpus(2) == 2

    def test_vault_tokens_are_shared_through_the_vault(
        self, ray_local: None, workdir: Path, chat_file: Path, keyring: Keyring
    ) -> None:
        vault = workdir / "vault.sqlite"
        local = _run(chat_file, workdir / "hipaa-local.jsonl", keyring, "hipaa-safe-harbor", vault=vault)
        with TokenVault(vault, keyring=keyring, tenant="default") as v:
            size = len(v)
        out = workdir / "hipaa-ray.jsonl"
        on_ray = _run(chat_file, out, keyring, "hipaa-safe-harbor", vault=vault, engine="ray", jobs=2)
        assert on_ray.output.read_bytes() == local.output.read_bytes()
        assert re.search(r"<PERSON_[2-9A-Z]{6}>", on_ray.output.read_text(encoding="utf-8"))
        assert on_ray.manifest.token_method == "vault-random"
        with TokenVault(vault, keyring=keyring, tenant="default") as v:
            assert len(v) == size >= len(NAMES)


class TestRedactRayDataset:
    """``redact_ray_dataset`` gives a Ray Dataset the values the local engine writes for the same rows."""

    def test_same_texts_as_local(self, gdpr: tuple[RunResult, RunResult], keyring: Keyring) -> None:
        ds = redact_ray_dataset(ray.data.from_items(_rows()), policy="gdpr", keyring=keyring)
        got = sorted(ds.take_all(), key=lambda r: r["id"])
        want = _lines(gdpr[0].output)
        assert [r["id"] for r in got] == [r["id"] for r in want]
        assert [r["messages"] for r in got] == [r["messages"] for r in want]


class TestFailures:
    """Errors come back as guardrail's own, named, with nothing left running."""

    def test_missing_ray_names_the_extra(self, keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "ray", None)
        with pytest.raises(ConfigError, match=re.escape("pip install 'guardrail-privacy[ray]'")):
            ray_processor(load_policy("gdpr"), keyring, jobs=2)

    def test_more_jobs_than_cpus_is_refused(self, ray_local: None, keyring: Keyring) -> None:
        with pytest.raises(ConfigError, match="has 2 CPUs; ask for at most 2"):
            ray_processor(load_policy("gdpr"), keyring, jobs=3)

    def test_an_actor_error_is_raised_as_itself(self, ray_local: None, tmp_path: Path) -> None:
        keyring = Keyring.create(tmp_path / "keys")
        run = ray_processor(load_policy("gdpr"), keyring, jobs=1)
        (tmp_path / "keys" / "keyring.json").rename(tmp_path / "moved.json")  # the actors cannot open it
        with pytest.raises(KeyringError, match="no keyring here"):
            next(iter(run(iter([]))))
        assert _wait_for_cpus(2) == 2
