"""Dataset runs end to end with the real detector: redaction with dataset-wide pseudonyms, the re-scan
and gate, signed manifests, cards and audit events, rejects, checkpoints and resume, re-identification."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from guardrail.access import AccessDenied, Principal
from guardrail.audit import AuditLog
from guardrail.audit.note import public_key_of
from guardrail.datasets.formats import FieldRules, iter_records
from guardrail.datasets.manifest import verify_manifest
from guardrail.datasets.reidentify import reidentify
from guardrail.datasets.run import GateFailed, RecordProcessor, redact_file, scan_file, tokens_for
from guardrail.errors import ConfigError, InputFormatError, OutputExistsError
from guardrail.findings import Finding
from guardrail.keys import Keyring
from guardrail.policy import load_policy

pytestmark = pytest.mark.slow

PEOPLE = ["Olivia Bennett", "Harold Finch", "Lucia Moreno", "Walter Kowalski"]
SYSTEM = "You are the scheduling assistant of Riverside Clinic."


def _email(name: str) -> str:
    return name.lower().replace(" ", ".") + "@example.com"


def chat_records(n: int) -> list[dict[str, Any]]:
    """Conversations where four people (and their e-mails) recur; some turns carry no PII."""
    out = []
    for i in range(n):
        name = PEOPLE[(i * 3) % len(PEOPLE)]
        out.append(
            {
                "id": f"r{i:04d}",
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Hi, this is {name}. Please write to {_email(name)}."},
                    {
                        "role": "assistant",
                        "content": "Of course, the change is done." if i % 2 else f"Done, {name}.",
                    },
                ],
                "meta": {"n": i},
            }
        )
    return out


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def texts_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring.create(tmp_path_factory.mktemp("ring") / "keys")


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("chat") / "train.jsonl", chat_records(40))


# --------------------------------------------------------------------------- redaction and pseudonyms


def test_chat_run_pseudonymizes_consistently_and_keeps_the_rest(
    chat: Path, keyring: Keyring, tmp_path: Path
) -> None:
    before = chat.read_bytes()
    result = redact_file(
        chat, tmp_path / "out.jsonl", keyring=keyring, policy="gdpr", audit_log=tmp_path / "audit"
    )
    assert chat.read_bytes() == before  # the input is never modified
    source = [json.loads(x) for x in before.decode().splitlines()]
    redacted = [json.loads(x) for x in texts_of(result.output).splitlines()]
    assert len(redacted) == len(source) == 40
    tokens: dict[str, set[str]] = {p: set() for p in PEOPLE}
    for a, b in zip(source, redacted, strict=True):
        assert b["id"] == a["id"]
        assert b["meta"] == a["meta"]
        assert b["messages"][0] == a["messages"][0]  # the system turn is left alone
        user = b["messages"][1]["content"]
        name = next(p for p in PEOPLE if p in a["messages"][1]["content"])
        assert name not in user
        assert _email(name) not in user
        tokens[name].update(re.findall(r"<PERSON_[a-z2-7]{10}>", user))
    # one token per person across the whole dataset, a different one per person
    assert all(len(t) == 1 for t in tokens.values()), tokens
    assert len({next(iter(t)) for t in tokens.values()}) == len(PEOPLE)
    m = result.manifest
    assert (m.input_records, m.output_records, m.rejects, m.residual) == (40, 40, 0, 0)
    assert m.findings_before["PERSON"] >= 40
    assert m.findings_before["EMAIL_ADDRESS"] == 40
    assert m.format == "jsonl-chat"
    assert m.token_method == "keyed-hmac-sha256"
    assert (m.policy.id, m.policy.version) == ("gdpr", "1.0.0")

    # the same keyring gives the same tokens in another run (and jobs=2 gives the same bytes)
    again = redact_file(chat, tmp_path / "again.jsonl", keyring=keyring, policy="gdpr", jobs=2)
    assert again.output.read_bytes() == result.output.read_bytes()
    # another keyring gives other tokens
    other = Keyring.create(tmp_path / "other-keys")
    third = redact_file(chat, tmp_path / "third.jsonl", keyring=other, policy="gdpr")
    assert set(re.findall(r"<PERSON_\w+>", texts_of(third.output))).isdisjoint(
        re.findall(r"<PERSON_\w+>", texts_of(result.output))
    )


def test_worker_processes_on_many_chunks_give_the_same_bytes(keyring: Keyring, tmp_path: Path) -> None:
    """Many more chunks than tasks in flight (a re-scan once waited behind unsendable input: a hang)."""
    src = write_jsonl(tmp_path / "many.jsonl", chat_records(1200))
    one = redact_file(src, tmp_path / "one.jsonl", keyring=keyring, policy="gdpr")
    two = redact_file(src, tmp_path / "two.jsonl", keyring=keyring, policy="gdpr", jobs=2)
    assert two.output.read_bytes() == one.output.read_bytes()
    assert two.manifest.findings_before == one.manifest.findings_before


def test_manifest_card_and_audit_events(chat: Path, keyring: Keyring, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    result = redact_file(
        chat, tmp_path / "out.jsonl", keyring=keyring, policy="gdpr", audit_log=audit, actor="ci-bot"
    )
    # signed with the audit key: the audit log's public key verifies it
    verified = verify_manifest(
        result.manifest_path, public_key=public_key_of(keyring.hmac_key("audit-checkpoint"))
    )
    assert verified.manifest == result.manifest
    card = texts_of(result.card_path)
    assert "## PII scan results" in card
    assert "| PERSON |" in card
    assert "user-supplied" in card
    records = [json.loads(line) for line in (audit / "segment-000001.jsonl").read_text().splitlines()]
    by_category = {r["event"]["category"]: r for r in records}
    scan, export = by_category["ft.scan"], by_category["ft.export"]
    assert scan["dataset"]["records"] == 40
    assert scan["pii"]["counts"] == dict(result.manifest.findings_before)
    ds = export["dataset"]
    assert ds["output_sha256"] == result.manifest.output_sha256
    assert ds["residual"] == 0
    assert ds["manifest"]["file"] == result.manifest_path.name
    assert export["pii"]["operators"]["PERSON"] == "pseudonymize"
    assert export["actor"]["ref"] == "ci-bot"
    assert export["policy"]["id"] == "gdpr"
    # no personal data or token anywhere in the evidence
    evidence = "".join(
        texts_of(p) for p in (result.manifest_path, result.card_path, audit / "segment-000001.jsonl")
    )
    for value in [*PEOPLE, *(_email(p) for p in PEOPLE), "<PERSON_"]:
        assert value not in evidence
    with AuditLog.for_keyring(audit, keyring) as log:
        assert log.size == len(records)


def test_outputs_refuse_to_overwrite_and_leave_nothing_on_error(
    chat: Path, keyring: Keyring, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    redact_file(chat, out, keyring=keyring, policy="gdpr")
    with pytest.raises(OutputExistsError):
        redact_file(chat, out, keyring=keyring, policy="gdpr")
    (tmp_path / "o2.jsonl.card.md").write_text("mine")
    with pytest.raises(OutputExistsError, match="card"):
        redact_file(chat, tmp_path / "o2.jsonl", keyring=keyring, policy="gdpr")
    with pytest.raises(ConfigError, match="must not be the input"):
        redact_file(chat, chat, keyring=keyring, force=True)
    bad = write_jsonl(tmp_path / "bad.jsonl", chat_records(3))
    bad.write_text(bad.read_text() + "{not json\n")
    with pytest.raises(InputFormatError, match=r"bad\.jsonl:4"):
        redact_file(bad, tmp_path / "b.jsonl", keyring=keyring, audit_log=tmp_path / "audit")
    (failed,) = [
        json.loads(x) for x in (tmp_path / "audit" / "segment-000001.jsonl").read_text().splitlines()
    ]
    assert failed["event"] == {"category": "ft.export", "action": "C", "outcome": "error"}
    assert failed["dataset"]["error"] == "InputFormatError"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("b.jsonl", ".b.jsonl"))]


# --------------------------------------------------------------------------- rejects


def test_skip_and_quarantine_write_rejects_without_pii_in_reasons(keyring: Keyring, tmp_path: Path) -> None:
    records = chat_records(6)
    lines = [json.dumps(r) for r in records]
    lines[2] = '{"id": "x", "messages": "Olivia Bennett wrote this"}'  # not a list
    lines[4] = "{broken json from Harold Finch"
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    skipped = redact_file(src, tmp_path / "s.jsonl", keyring=keyring, policy="gdpr", on_error="skip")
    assert skipped.rejects_path is not None
    rejects = [json.loads(x) for x in texts_of(skipped.rejects_path).splitlines()]
    assert [r["line"] for r in rejects] == [3, 5]
    assert all(set(r) == {"line", "reason"} for r in rejects)
    assert "Olivia" not in texts_of(skipped.rejects_path)
    assert "Harold" not in texts_of(skipped.rejects_path)
    assert (skipped.manifest.input_records, skipped.manifest.output_records, skipped.manifest.rejects) == (
        6,
        4,
        2,
    )

    quarantined = redact_file(
        src, tmp_path / "q.jsonl", keyring=keyring, policy="gdpr", on_error="quarantine"
    )
    assert quarantined.rejects_path is not None
    entries = [json.loads(x) for x in texts_of(quarantined.rejects_path).splitlines()]
    assert [e["record"] for e in entries] == [lines[2], lines[4]]  # kept as read, to fix and re-run
    assert (quarantined.rejects_path.stat().st_mode & 0o777) == 0o600
    # a clean re-run over the same name removes the stale rejects file
    clean = write_jsonl(tmp_path / "clean.jsonl", records)
    rerun = redact_file(clean, tmp_path / "q.jsonl", keyring=keyring, policy="gdpr", force=True)
    assert rerun.rejects_path is None
    assert not (tmp_path / "q.jsonl.rejects.jsonl").exists()


# --------------------------------------------------------------------------- re-scan and gate


class _SecondLook:
    """The real detector, plus one finding the first pass missed: what a re-scan exists to catch."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def detect_batch(self, texts: Sequence[str]) -> list[list[Finding]]:
        self.calls += 1
        found = self.real.detect_batch(texts)
        if self.calls % 2 == 0:  # the re-scan
            for i, text in enumerate(texts):
                at = text.find("Please")
                if at >= 0:
                    found[i] = [*found[i], Finding(at, at + 6, "PERSON", 0.9)]
        return found


def test_residual_findings_are_counted_and_gate_the_run(chat: Path, keyring: Keyring, tmp_path: Path) -> None:
    from guardrail.core import _shared_detector

    real = _shared_detector(load_policy("gdpr"))
    result = redact_file(
        chat, tmp_path / "r.jsonl", keyring=keyring, policy="gdpr", detector=_SecondLook(real)
    )
    assert result.residual == 40
    assert result.manifest.findings_after == {"PERSON": 40}
    with pytest.raises(GateFailed, match="40 residual") as failed:
        redact_file(
            chat, tmp_path / "g.jsonl", keyring=keyring, policy="gdpr", detector=_SecondLook(real), fail_on=10
        )
    assert "Olivia" not in str(failed.value)
    assert not any(
        p.name.startswith(("g.jsonl", ".g.jsonl")) for p in tmp_path.iterdir()
    )  # nothing published


def test_replacements_themselves_are_not_residual(keyring: Keyring) -> None:
    """A re-scan finding inside or across a replacement is the replacement, not a leak."""
    policy = load_policy("gdpr")
    record = next(iter(iter_records_from([{"text": "Write to olivia@example.com today."}])))
    processor = RecordProcessor(policy, tokens_for(policy, keyring))
    staged, again = processor.redact([record], [[Finding(9, 26, "EMAIL_ADDRESS", 1.0)]])
    token_end = again[0].index(">") + 1
    inside = Finding(9, token_end, "EMAIL_ADDRESS", 1.0)
    outside = Finding(0, 5, "PERSON", 0.9)
    (done,) = RecordProcessor.residual(staged, [[inside, outside]])
    assert done.after == Counter({"PERSON": 1})
    assert done.before == Counter({"EMAIL_ADDRESS": 1})


def iter_records_from(rows: list[dict[str, Any]]) -> Any:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "rows.jsonl"
    write_jsonl(path, rows)
    return iter_records(path)


# --------------------------------------------------------------------------- checkpoints and resume


class _Stop(KeyboardInterrupt):
    pass


def test_interrupted_run_resumes_to_identical_output(keyring: Keyring, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "big.jsonl", chat_records(400))
    lines = src.read_text().splitlines()
    lines[150] = "{broken"
    src.write_text("\n".join(lines) + "\n")
    whole = redact_file(src, tmp_path / "whole.jsonl", keyring=keyring, policy="gdpr", on_error="skip")

    out = tmp_path / "out.jsonl"
    seen: list[int] = []

    def stop_after_200(done: int) -> None:
        seen.append(done)
        if done >= 200:
            raise _Stop

    with pytest.raises(_Stop):
        redact_file(
            src,
            out,
            keyring=keyring,
            policy="gdpr",
            on_error="skip",
            checkpoint_seconds=0,
            progress=stop_after_200,
        )
    assert not out.exists()  # never a half-written output at the output path
    checkpoint = tmp_path / ".out.jsonl.guardrail-checkpoint.json"
    assert checkpoint.exists()
    assert "Olivia" not in checkpoint.read_text()
    with pytest.raises(OutputExistsError, match="--resume"):
        redact_file(src, out, keyring=keyring, policy="gdpr", on_error="skip")
    resumed = redact_file(src, out, keyring=keyring, policy="gdpr", on_error="skip", resume=True)
    assert resumed.resumed_from > 0
    assert out.read_bytes() == whole.output.read_bytes()
    assert texts_of(resumed.rejects_path or out) == texts_of(whole.rejects_path or out)  # the reject once
    assert resumed.manifest.findings_before == whole.manifest.findings_before
    assert (resumed.manifest.input_records, resumed.manifest.rejects) == (400, 1)
    assert True
    assert not checkpoint.exists()
    assert not (tmp_path / ".out.jsonl.guardrail-partial").exists()


def test_resume_refuses_a_checkpoint_from_another_policy(keyring: Keyring, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", chat_records(200))
    out = tmp_path / "out.jsonl"

    def stop(done: int) -> None:
        if done >= 64:
            raise _Stop

    with pytest.raises(_Stop):
        redact_file(src, out, keyring=keyring, policy="gdpr", checkpoint_seconds=0, progress=stop)
    with pytest.raises(ConfigError, match="another input, policy, keyring or options"):
        redact_file(src, out, keyring=keyring, policy="default", resume=True)
    other = Keyring.create(tmp_path / "other-keys")  # other keys would mean other tokens mid-file
    with pytest.raises(ConfigError, match="another input, policy, keyring or options"):
        redact_file(src, out, keyring=other, policy="gdpr", resume=True)
    fresh = redact_file(src, out, keyring=keyring, policy="default", force=True)  # --force starts over
    assert fresh.resumed_from == 0
    assert fresh.manifest.output_records == 200


# --------------------------------------------------------------------------- formats


def test_csv_parquet_and_hf_outputs_keep_format_and_schema(keyring: Keyring, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    datasets = pytest.importorskip("datasets")
    rows = [
        {"id": i, "text": f"Contact {PEOPLE[i % 4]} at {_email(PEOPLE[i % 4])}.", "label": i % 2}
        for i in range(12)
    ]
    with (tmp_path / "in.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "text", "label"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "in_hf"))

    outs = {}
    for name in ("in.csv", "in.parquet", "in_hf"):
        out = tmp_path / f"out-{name}"
        result = redact_file(tmp_path / name, out, keyring=keyring, policy="gdpr")
        assert result.manifest.output_records == 12
        assert verify_manifest(result.manifest_path).manifest
        outs[name] = out
    csv_rows = list(csv.DictReader(outs["in.csv"].read_text().splitlines()))
    pq_rows = pq.read_table(outs["in.parquet"]).to_pylist()
    hf_rows = datasets.load_from_disk(str(outs["in_hf"])).to_list()
    assert [r["text"] for r in csv_rows] == [r["text"] for r in pq_rows] == [r["text"] for r in hf_rows]
    assert all(p not in r["text"] for r in pq_rows for p in PEOPLE)
    assert pq.read_schema(outs["in.parquet"]) == pq.read_schema(tmp_path / "in.parquet")
    assert [r["label"] for r in hf_rows] == [r["label"] for r in rows]


def test_hf_dataset_object_with_dataset_pseudonyms(keyring: Keyring, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from guardrail.datasets.formats import redact_dataset
    from guardrail.datasets.run import text_redactor

    rows = [{"text": f"Ask {PEOPLE[i % 2]} about it.", "n": i} for i in range(6)]
    out = redact_dataset(datasets.Dataset.from_list(rows), text_redactor("gdpr", keyring))
    texts = out["text"]
    assert out["n"] == list(range(6))
    assert all(p not in t for t in texts for p in PEOPLE)
    assert texts[0] == texts[2] == texts[4] != texts[1]  # one token per person
    # the same tokens as a file run with this keyring
    src = write_jsonl(tmp_path / "rows.jsonl", rows)
    result = redact_file(src, tmp_path / "rows.out.jsonl", keyring=keyring, policy="gdpr")
    assert [json.loads(x)["text"] for x in texts_of(result.output).splitlines()] == texts


def test_forced_format_and_field_rules(keyring: Keyring, chat: Path, tmp_path: Path) -> None:
    # forced plain JSONL: the chat records have no "text" field
    with pytest.raises(InputFormatError, match="no field 'text'"):
        redact_file(chat, tmp_path / "x.jsonl", keyring=keyring, format="jsonl")
    # every role, the system prompt included
    rules = FieldRules(roles=("system", "user", "assistant"))
    result = redact_file(chat, tmp_path / "all.jsonl", keyring=keyring, policy="gdpr", rules=rules)
    first = json.loads(texts_of(result.output).splitlines()[0])
    assert "Riverside Clinic" not in first["messages"][0]["content"]
    scan = scan_file(chat, policy="gdpr")
    assert scan.records == 40
    assert scan.findings["EMAIL_ADDRESS"] == 40
    assert "ORGANIZATION" not in scan.findings  # the system prompt is not scanned by default


# ------------------------------------------------------------------ vault tokens and re-identification


def test_vault_tokens_and_audited_reidentification(chat: Path, keyring: Keyring, tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    vault = tmp_path / "vault.sqlite"
    one = redact_file(chat, tmp_path / "one.jsonl", keyring=keyring, policy="hipaa-safe-harbor", vault=vault)
    two = redact_file(
        chat, tmp_path / "two.jsonl", keyring=keyring, policy="hipaa-safe-harbor", vault=vault, jobs=2
    )
    assert one.output.read_bytes() == two.output.read_bytes()  # the vault keeps tokens across runs
    assert one.manifest.token_method == "vault-random"
    first = json.loads(texts_of(one.output).splitlines()[0])
    token = re.findall(r"<PERSON_[0-9A-Z]{6}>", first["messages"][1]["content"])[0]

    officer = Principal("po-7", ["privacy_officer"], "operations")
    values = reidentify([token], keyring=keyring, principal=officer, audit_log=audit, vault=vault)
    assert values == {token: PEOPLE[0]}
    clinician = Principal("dr-2", ["clinician"], "operations")
    with pytest.raises(AccessDenied, match="privacy_officer"):
        reidentify([token], keyring=keyring, principal=clinician, audit_log=audit, vault=vault)
    with pytest.raises(ConfigError, match="keyed tokens"):
        reidentify([token], keyring=keyring, principal=officer, audit_log=audit, policy="gdpr")
    events = [json.loads(x) for x in (audit / "segment-000001.jsonl").read_text().splitlines()]
    outcomes = [(e["event"]["category"], e["event"]["outcome"], e["actor"]["ref"]) for e in events]
    assert outcomes == [("reidentify", "success", "po-7"), ("reidentify", "denied", "dr-2")]
    assert token not in (audit / "segment-000001.jsonl").read_text()
    assert PEOPLE[0] not in outcomes.__repr__()


def test_a_lone_first_name_takes_the_full_names_token_within_a_record(
    keyring: Keyring, tmp_path: Path
) -> None:
    rows = [
        {"messages": [
            {"role": "user", "content": "Hi, this is Olivia Bennett. I need a new appointment."},
            {"role": "assistant", "content": "Thanks Olivia, you are booked. Mr. Finch is also booked."},
        ]},
        # two people share the first name: the lone "Olivia" is not guessed
        {"messages": [
            {"role": "user", "content": "Olivia Bennett and Olivia Moreno called."},
            {"role": "assistant", "content": "Thanks Olivia, you are booked."},
        ]},
    ]  # fmt: skip
    src = write_jsonl(tmp_path / "names.jsonl", rows)
    out = redact_file(src, tmp_path / "names.out.jsonl", keyring=keyring, policy="gdpr").output
    first, second = (json.loads(x)["messages"] for x in texts_of(out).splitlines())
    full = re.findall(r"<PERSON_\w+>", first[0]["content"])
    assert len(full) == 1
    assert re.findall(r"<PERSON_\w+>", first[1]["content"])[0] == full[0]
    both = re.findall(r"<PERSON_\w+>", second[0]["content"])
    lone = re.findall(r"<PERSON_\w+>", second[1]["content"])
    assert len(set(both)) == 2
    assert full[0] in both
    assert lone[0] not in both
