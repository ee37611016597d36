"""Signed dataset manifests, their verification (API and CLI) and dataset cards."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import guardrail
from guardrail.audit.note import VerifierKey, public_key_of
from guardrail.datasets.cli import manifest_app
from guardrail.datasets.manifest import (
    DEFAULT_KNOWN_GAPS,
    Manifest,
    ManifestError,
    ManifestVerificationError,
    PolicyRef,
    SignedManifest,
    dataset_card,
    manifest_path_for,
    verify_manifest,
)
from guardrail.errors import ConfigError, OutputExistsError

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
START = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
Files = tuple[Path, Path]
RAW = "Patient Zebulon Quayle, zq@example.org"


def _clock() -> datetime:
    return START + timedelta(seconds=42, milliseconds=5)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"text": RAW}) + "\n", encoding="utf-8")
    out.write_text(json.dumps({"text": "Patient <PERSON_7Q2K9X>, <EMAIL_ADDRESS>"}) + "\n", encoding="utf-8")
    return src, out


def _manifest(src: Path, out: Path) -> Manifest:
    return Manifest.create(
        input_path=src,
        output_path=out,
        input_records=120,
        output_records=118,
        findings_before={"PERSON": 57, "EMAIL_ADDRESS": 13, "US_SSN": 4},
        findings_after={"PERSON": 2},
        residual=2,
        rejects=2,
        policy=PolicyRef("hipaa-safe-harbor", "1.0", "ab" * 32),
        format="jsonl",
        fields=["text"],
        token_method="vault-random",
        started_at=START,
        clock=_clock,
    )


def _write(src: Path, out: Path, seed: bytes = SEED) -> Path:
    return _manifest(src, out).sign(seed).write(manifest_path_for(out))


class TestManifest:
    """A manifest holds hashes, counts and provenance; its JSON is canonical."""

    def test_fields(self, files: Files) -> None:
        src, out = files
        m = _manifest(src, out)
        assert m.input_sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
        assert m.output_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
        assert m.started_at == "2025-03-01T12:00:00.000Z"
        assert m.finished_at == "2025-03-01T12:00:42.005Z"
        assert m.tool_version == guardrail.__version__
        assert list(m.findings_before) == ["EMAIL_ADDRESS", "PERSON", "US_SSN"]

    def test_canonical_json_round_trip(self, files: Files) -> None:
        m = _manifest(*files)
        text = m.to_json()
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert Manifest.from_dict(json.loads(text)) == m

    def test_from_policy_object(self, files: Files) -> None:
        policy = guardrail.load_policy("default")
        m = Manifest.create(
            **{**_kwargs(*files), "policy": policy},
        )
        assert m.policy == PolicyRef(policy.name, policy.version, policy.sha256)

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"residual": -1}, "residual"),
            ({"findings_after": {"PERSON": -3}}, "findings_after"),
            ({"started_at": datetime(2025, 1, 1)}, "timezone-aware"),
        ],
        ids=["negative-count", "negative-finding", "naive-time"],
    )
    def test_rejects_bad_values(self, files: Files, change: dict[str, object], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            Manifest.create(**{**_kwargs(*files), **change})


def _kwargs(src: Path, out: Path) -> dict[str, Any]:
    return {
        "input_path": src,
        "output_path": out,
        "input_records": 1,
        "output_records": 1,
        "findings_before": {"PERSON": 1},
        "findings_after": {},
        "residual": 0,
        "rejects": 0,
        "policy": PolicyRef("default", "1", "cd" * 32),
        "format": "jsonl",
        "fields": ["text"],
        "token_method": "keyed-hmac-sha256",
        "started_at": START,
        "clock": _clock,
    }


class TestSignVerify:
    """Signature over the canonical bytes; verification names what failed."""

    def test_sign_and_verify(self, files: Files) -> None:
        src, out = files
        path = _write(src, out)
        assert path.name == "out.jsonl.manifest.json"
        assert path.stat().st_mode & 0o777 == 0o600
        result = verify_manifest(path)
        assert result.manifest == _manifest(src, out)
        assert result.output_path == out
        assert not result.key_trusted
        trusted = verify_manifest(path, public_key=public_key_of(SEED))
        assert trusted.key_trusted

    def test_signature_is_over_canonical_bytes(self, files: Files) -> None:
        m = _manifest(*files)
        signed = m.sign(SEED)
        assert VerifierKey("k", signed.public_key).verify(m.canonical(), signed.signature)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("rejects", 0), ("findings_after", {}), ("residual", 0), ("token_method", "none")],
        ids=["rejects", "findings", "residual", "token-method"],
    )
    def test_tampered_field_fails_on_signature(self, files: Files, field: str, value: object) -> None:
        path = _write(*files)
        data = json.loads(path.read_text())
        data["manifest"][field] = value
        path.write_text(json.dumps(data))
        with pytest.raises(ManifestVerificationError, match="signature invalid") as info:
            verify_manifest(path)
        assert info.value.check == "signature"

    def test_resigned_by_someone_else_fails_with_the_expected_key(self, files: Files) -> None:
        src, out = files
        path = _write(src, out, seed=OTHER_SEED)
        verify_manifest(path)  # self-consistent
        with pytest.raises(ManifestVerificationError, match="public key mismatch") as info:
            verify_manifest(path, public_key=public_key_of(SEED))
        assert info.value.check == "public_key"

    def test_modified_output_fails_on_output_hash(self, files: Files) -> None:
        src, out = files
        path = _write(src, out)
        out.write_text(out.read_text() + "\n", encoding="utf-8")
        with pytest.raises(ManifestVerificationError, match="output SHA-256 mismatch") as info:
            verify_manifest(path)
        assert info.value.check == "output_sha256"
        assert RAW not in str(info.value)

    def test_explicit_output_path(self, files: Files, tmp_path: Path) -> None:
        src, out = files
        path = _write(src, out)
        moved = tmp_path / "elsewhere.jsonl"
        out.rename(moved)
        with pytest.raises(ManifestError, match="no such file"):
            verify_manifest(path)
        assert verify_manifest(path, output_path=moved).output_path == moved

    @pytest.mark.parametrize(
        ("content", "match"),
        [
            ("not json", "not JSON"),
            ("[]", "not a guardrail manifest"),
            ('{"manifest": {}, "manifest": {}, "signature": {}}', "repeats"),
            ('{"manifest": {}, "signature": {"algorithm": "RSA"}}', "Ed25519"),
        ],
        ids=["not-json", "array", "duplicate-member", "wrong-algorithm"],
    )
    def test_bad_input(self, tmp_path: Path, content: str, match: str) -> None:
        path = tmp_path / "x.jsonl.manifest.json"
        path.write_text(content)
        with pytest.raises(ManifestError, match=match) as info:
            verify_manifest(path)
        assert not isinstance(info.value, ManifestVerificationError)

    def test_write_refuses_overwrite_and_bad_names(self, files: Files) -> None:
        src, out = files
        signed: SignedManifest = _manifest(src, out).sign(SEED)
        path = signed.write(manifest_path_for(out))
        with pytest.raises(OutputExistsError):
            signed.write(path)
        signed.write(path, force=True)
        with pytest.raises(ConfigError, match=r"\.manifest\.json"):
            signed.write(out.with_suffix(".json"))

    def test_seed_must_be_32_bytes(self, files: Files) -> None:
        with pytest.raises(ConfigError, match="32 bytes"):
            _manifest(*files).sign(b"short")


class TestDatasetCard:
    """The card reports origin, preparation, counts and gaps; never values."""

    def test_contents(self, files: Files) -> None:
        card = dataset_card(_manifest(*files))
        for text in [
            "user-supplied",
            "| PERSON | 57 | 2 |",
            "| EMAIL_ADDRESS | 13 | 0 |",
            "| US_SSN | 4 | 0 |",
            "| **total** | 74 | 2 |",
            "Residual findings (detected again in the output): 2",
            "Rejected records (not written to the output): 2",
            "hipaa-safe-harbor",
            "vault-random",
            "Art. 10(2)",
            "120 records",
        ]:
            assert text in card, text
        for gap in DEFAULT_KNOWN_GAPS:
            assert gap in card
        assert "biometric" in card
        assert "recall is not 100%" in card
        assert "remain personal data" in card

    def test_no_raw_values(self, files: Files) -> None:
        card = dataset_card(_manifest(*files), source_description="CRM export | Q1", known_gaps=["images"])
        for part in ["Zebulon", "Quayle", "zq@example.org", "7Q2K9X"]:
            assert part not in card
        assert "CRM export \\| Q1" in card
        assert "- images" in card


class TestCli:
    """``guardrail manifest verify``: 0 verified, 1 failed, bad input raises ConfigError (exit 2 in main)."""

    def test_ok(self, files: Files) -> None:
        path = _write(*files)
        result = CliRunner().invoke(manifest_app, ["verify", str(path)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok:")
        assert "--public-key" in result.output

    def test_ok_with_public_key_files(self, files: Files, tmp_path: Path) -> None:
        path = _write(*files)
        pub = public_key_of(SEED)
        for name, content in [
            ("audit.pub", (VerifierKey("audit-origin", pub).encode() + "\n").encode()),
            ("key.b64", base64.b64encode(pub) + b"\n"),
            ("key.raw", pub),
        ]:
            key_file = tmp_path / name
            key_file.write_bytes(content)
            result = CliRunner().invoke(manifest_app, ["verify", str(path), "--public-key", str(key_file)])
            assert result.exit_code == 0, (name, result.output)
            assert "pass --public-key" not in result.output

    def test_failures_exit_1(self, files: Files, tmp_path: Path) -> None:
        src, out = files
        path = _write(src, out)
        key_file = tmp_path / "other.pub"
        key_file.write_bytes(public_key_of(OTHER_SEED))
        result = CliRunner().invoke(manifest_app, ["verify", str(path), "--public-key", str(key_file)])
        assert result.exit_code == 1
        assert "FAILED (public_key)" in result.output
        out.write_text("changed\n")
        result = CliRunner().invoke(manifest_app, ["verify", str(path)])
        assert result.exit_code == 1
        assert "FAILED (output_sha256)" in result.output

    def test_bad_input_raises_config_error(self, tmp_path: Path) -> None:
        result = CliRunner().invoke(manifest_app, ["verify", str(tmp_path / "missing.jsonl.manifest.json")])
        assert isinstance(result.exception, ConfigError)
        assert "no such manifest file" in str(result.exception)
        bad_key = tmp_path / "bad.pub"
        bad_key.write_text("not a key")
        result = CliRunner().invoke(manifest_app, ["verify", "x.manifest.json", "--public-key", str(bad_key)])
        assert isinstance(result.exception, ConfigError)
