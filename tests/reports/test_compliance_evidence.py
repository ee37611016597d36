"""Compliance evidence a DPO can sign (issue 13), over one real scenario: a policy declaring lawful bases,
processors and retention; an encrypted, persisted store; a guarded query engine with a named LLM; a
support agent whose PHI is pre-filtered; a dataset export naming its subjects; an erasure by the CLI
with a certificate; re-identification of an erased token; subject reports for right and wrong tenants."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guardrail.audit.verify import iter_records
from guardrail.cli import main
from guardrail.erasure import verify_certificate
from guardrail.reports import Report, Table, build_dsar, build_ropa, render_json, render_markdown

P1, P2 = "patient-5531", "patient-7702"
NOTE_1 = (
    "Discharge summary. Patient Ada Finch, MRN 44182209, was admitted with heart failure. "
    "Discharge plan: furosemide 40 mg daily, follow-up in cardiology clinic."
)
NOTE_2 = "Billing question from the patient: please write to jo.berg@example.org about the invoice."
POLICY = """
name: clinic
version: "2.0.0"
description: "Clinic knowledge base and fine-tuning sets."
detection:
  entities: [PERSON, MEDICAL_RECORD_NUMBER, EMAIL_ADDRESS, PHONE_NUMBER]
  threshold: 0.4
redaction:
  default: {operator: replace}
  operators:
    PERSON: {operator: pseudonymize}
datasets:
  tokens: vault
  purpose: research
  reidentify: {roles: [privacy_officer], purposes: [operations]}
access:
  default_classification: internal
  phi_classification: phi
  rules:
    - {id: support-no-phi, effect: deny, roles: [support], classifications: [phi, special_category]}
    - {id: public-to-all, effect: allow, classifications: [public], redaction: none}
    - {id: support-internal, effect: allow, roles: [support], purposes: [support],
       classifications: [internal], redaction: redact}
    - {id: clinician-treatment, effect: allow, roles: [clinician], purposes: [treatment],
       classifications: [public, internal, confidential, phi], redaction: none}
purposes:
  treatment: {code: TREAT, name: "treatment of the patient", gdpr_basis: "6(1)(c)", art9_basis: "9(2)(h)",
              hipaa_basis: treatment}
  research: {code: HRESCH, name: "clinical research", gdpr_basis: "6(1)(e)", art9_basis: "9(2)(j)",
             hipaa_basis: research-waiver, agreement: "IRB-2025-114"}
  support: {code: SUPPORT, name: "patient support", gdpr_basis: "6(1)(b)", hipaa_basis: operations}
  operations: {code: HOPERAT, name: "health care operations", hipaa_basis: operations}
processors:
  - {name: "Azure OpenAI (EU)", kind: llm, role: business-associate, region: "EU (Sweden Central)",
     transfer: "none (EU)", agreement: "BAA-2025-07", match: [clinic-gpt]}
retention:
  classifications: {phi: 6y, internal: 1y}
  vault: 6y
  checkpoints: 30d
  audit_log: 6y
"""


@dataclass
class World:
    root: Path
    keys: Path
    audit: Path
    kb: Path
    policy: Path
    dataset_out: Path
    tenant: str
    ref1: str
    ref2: str


def _llm() -> Any:
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata

    class ClinicLLM(CustomLLM):
        """A scripted LLM whose model name the policy declares as a business associate."""

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="clinic-gpt")

        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text="Follow the discharge plan.")

        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            yield CompletionResponse(text="Follow the discharge plan.", delta="Follow the discharge plan.")

    return ClinicLLM()


def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: object
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["guardrail", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), captured.out + captured.err


def rows(report: Report, block_id: str) -> list[dict[str, Any]]:
    table = report.block(block_id)
    assert isinstance(table, Table)
    return [dict(zip((c.key for c in table.columns), r, strict=True)) for r in table.rows]


def events(audit: Path, category: str) -> list[dict[str, Any]]:
    return [r for r in iter_records(audit) if r.get("event", {}).get("category") == category]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from guardrail import Guardrail, Principal
    from guardrail.datasets.run import redact_file
    from guardrail.keys import Keyring
    from guardrail.llama_index.hashing import HashingEmbedding

    root = tmp_path_factory.mktemp("evidence")
    keys, audit, kb, tenant = root / "keys", root / "audit", root / "kb", "clinic"
    policy = root / "clinic.yaml"
    policy.write_text(POLICY)
    ring = Keyring.create(keys)
    gr = Guardrail(policy=policy, keyring=keys, audit_log=audit, tenant=tenant)
    docs = [
        Document(text=NOTE_1, metadata={"subjects": [P1]}),
        Document(text=NOTE_2, metadata={"subjects": [P2]}),
        Document(
            text="Clinic opening hours: 8:00 to 18:00 on weekdays.", metadata={"classification": "internal"}
        ),
    ]
    storage = gr.storage_context()
    index = VectorStoreIndex.from_documents(
        docs,
        storage_context=storage,
        transformations=[SentenceSplitter(), gr.annotator()],
        embed_model=HashingEmbedding(),
    )
    storage.persist(persist_dir=str(kb))
    engine = gr.guard(index.as_query_engine(llm=_llm(), similarity_top_k=5))
    with gr.acting_as(Principal("dr-chen", ["clinician"], "treatment")):
        engine.query("discharge plan heart failure")
    retriever = gr.guard(index.as_retriever(similarity_top_k=5))
    with gr.acting_as(Principal("s-1", ["support"], "support")):
        retriever.retrieve("discharge plan heart failure")
    gr.close()
    dataset = root / "train.jsonl"
    dataset.write_text(
        json.dumps(
            {
                "patient_id": P1,
                "messages": [
                    {"role": "user", "content": "Summarise the stay of Ada Finch."},
                    {"role": "assistant", "content": "Ada Finch was treated for heart failure."},
                ],
            }
        )
        + "\n"
        + json.dumps(
            {
                "patient_id": P2,
                "messages": [
                    {"role": "user", "content": "Who is Bruno Keller?"},
                    {"role": "assistant", "content": "Bruno Keller asked about an invoice."},
                ],
            }
        )
        + "\n"
    )
    out = root / "train.redacted.jsonl"
    redact_file(
        dataset, out, keyring=ring, policy=policy, tenant=tenant, audit_log=audit, subject_field="patient_id"
    )
    ref1 = ring.token(tenant, "subject-ref", P1, length=16)
    ref2 = ring.token(tenant, "subject-ref", P2, length=16)
    return World(root, keys, audit, kb, policy, out, tenant, ref1, ref2)


class TestLawfulBases:
    """Purposes carry their declared bases into events and reports, in words with their codes."""

    def test_retrieval_event_records_the_bases(self, world: World) -> None:
        treatment = [e for e in events(world.audit, "rag.retrieval") if e["purpose"]["code"] == "TREAT"]
        assert treatment
        purpose = treatment[0]["purpose"]
        assert purpose == {
            "code": "TREAT",
            "name": "treatment of the patient",
            "gdpr_basis": "6(1)(c)",
            "art9_basis": "9(2)(h)",
            "hipaa_basis": "treatment",
        }

    def test_dataset_events_carry_the_declared_dataset_purpose(self, world: World) -> None:
        export = events(world.audit, "ft.export")[-1]
        assert export["purpose"]["code"] == "HRESCH"
        assert export["purpose"]["agreement"] == "IRB-2025-114"

    def test_ropa_shows_purposes_in_words_and_bases(self, world: World) -> None:
        report = build_ropa(world.audit, policies=(world.policy,))
        activities = {r["purpose"]: r for r in rows(report, "processing_activities")}
        row = activities["treatment of the patient (TREAT)"]
        assert row["gdpr_basis"] == "legal obligation (Art. 6(1)(c))"
        assert row["art9_basis"] == "health or social care (Art. 9(2)(h))"
        assert row["hipaa_basis"].startswith("treatment (TPO, 45 CFR 164.506)")
        research = activities["clinical research (HRESCH)"]  # the dataset export's declared purpose
        assert "Art. 9(2)(j)" in research["art9_basis"]
        assert not any("MODEL-TRAINING" in str(k) for k in activities)
        data = json.loads(render_json(report))
        assert "legal obligation (Art. 6(1)(c))" in json.dumps(data)

    def test_dsar_shows_the_bases(self, world: World) -> None:
        report = build_dsar(world.audit, subject_ref=world.ref1)
        text = render_markdown(report)
        assert "legal obligation (Art. 6(1)(c))" in text
        assert "treatment of the patient (TREAT)" in text

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ('gdpr_basis: "6(1)(c)"', 'gdpr_basis: "6(1)(x)"'),
            ('hipaa_basis: research-waiver, agreement: "IRB-2025-114"', "hipaa_basis: research-waiver"),
            ('art9_basis: "9(2)(h)"', 'art9_basis: "9(3)"'),
        ],
        ids=["gdpr", "waiver-without-agreement", "art9"],
    )
    def test_bad_bases_fail_with_file_line_and_path(self, change: str, message: str, tmp_path: Path) -> None:
        from guardrail.errors import PolicyError
        from guardrail.policy import load_policy

        bad = tmp_path / "bad.yaml"
        bad.write_text(POLICY.replace(change, message, 1))
        with pytest.raises(PolicyError, match=r"bad\.yaml:\d+: invalid policy at purposes\.") as info:
            load_policy(bad)
        assert "purposes." in str(info.value)


class TestProcessors:
    """The query engine's LLM, matched against the policy's processors, is a recipient in the reports."""

    def test_retrieval_event_names_the_llm_processor(self, world: World) -> None:
        treatment = [e for e in events(world.audit, "rag.retrieval") if e["purpose"]["code"] == "TREAT"]
        processors = treatment[0]["processors"]
        assert {
            "name": "Azure OpenAI (EU)",
            "kind": "llm",
            "role": "business-associate",
        }.items() <= processors[0].items()
        assert processors[0]["agreement"] == "BAA-2025-07"

    def test_ropa_recipients_and_transfers(self, world: World) -> None:
        report = build_ropa(world.audit, policies=(world.policy,))
        recipients = [r["recipient"] for r in rows(report, "recipients")]
        assert any("Azure OpenAI (EU)" in r and r.startswith("processor:") for r in recipients)
        table = rows(report, "processors")
        assert table[0]["processor"] == "Azure OpenAI (EU)"
        assert table[0]["region"] == "EU (Sweden Central)"
        assert table[0]["agreement"] == "BAA-2025-07"

    def test_dsar_recipients(self, world: World) -> None:
        facts = dict(build_dsar(world.audit, subject_ref=world.ref1).block("dsar_summary").items)  # type: ignore[union-attr]
        assert "processor: Azure OpenAI (EU)" in str(facts["recipients (15(1)(c))"])

    def test_an_undeclared_llm_is_flagged(self) -> None:
        from guardrail.audit.events import processor_members
        from guardrail.policy import parse_policy

        members = processor_members(parse_policy(POLICY), llm=type("OpenAI", (), {"model": "gpt-4o"})())
        assert members == [
            {"name": "undeclared", "kind": "llm", "class": "OpenAI", "received": "chunks", "model": "gpt-4o"}
        ]


class TestMinimumNecessary:
    """The support agent's PHI is withheld by the pre-filter: the event and the reports say so."""

    def test_withheld_before_retrieval_is_counted_per_rule(self, world: World) -> None:
        support = next(e for e in events(world.audit, "rag.retrieval") if e["actor"]["ref"] == "s-1")
        assert "phi" not in support["policy"]["prefilter"]
        assert support["retrieval"]["withheld"].get("support-no-phi", 0) >= 1
        # positive control: the clinician's retrieval withheld nothing and released the PHI
        clinician = next(e for e in events(world.audit, "rag.retrieval") if e["actor"]["ref"] == "dr-chen")
        assert clinician["retrieval"]["withheld"] == {}
        assert any("phi" in r["labels"] and r["decision"] == "allow" for r in clinician["resources"])

    def test_profile_recorded_per_released_chunk(self, world: World) -> None:
        for event in events(world.audit, "rag.retrieval"):
            for resource in event["resources"]:
                if resource["decision"] == "allow":
                    assert resource["profile"] in ("none", "redact", "pseudonymize")


class TestSubjectCategories:
    def test_categories_come_from_the_subjects_own_chunks(self, world: World) -> None:
        facts = dict(build_dsar(world.audit, subject_ref=world.ref2).block("dsar_summary").items)  # type: ignore[union-attr]
        categories = str(facts["categories of personal data (15(1)(b))"])
        assert "EMAIL_ADDRESS" in categories
        assert "MEDICAL_RECORD_NUMBER" not in categories  # patient 1's MRN is not patient 2's data
        own = dict(build_dsar(world.audit, subject_ref=world.ref1).block("dsar_summary").items)  # type: ignore[union-attr]
        assert "MEDICAL_RECORD_NUMBER" in str(own["categories of personal data (15(1)(b))"])


class TestNoSilentZeros:
    def test_wrong_tenant_names_where_the_events_are(
        self,
        world: World,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        out = tmp_path / "dsar.md"
        code, output = cli(
            capsys, monkeypatch, "report", "dsar", world.audit, "--subject", P2, "--keyring", world.keys,
            "--tenant", "default", "-o", out,
        )  # fmt: skip
        assert code == 2
        assert "under tenant 'clinic'" in output
        assert world.ref2 in output
        assert P2 not in output
        assert not out.exists()
        code, _ = cli(
            capsys, monkeypatch, "report", "dsar", world.audit, "--subject", P2, "--keyring", world.keys,
            "--tenant", "default", "-o", out, "--allow-empty",
        )  # fmt: skip
        assert code == 0
        assert out.exists()

    def test_tenant_defaults_to_the_keyrings_only_tenant(
        self,
        world: World,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        out = tmp_path / "dsar.json"
        code, output = cli(
            capsys,
            monkeypatch,
            "report",
            "dsar",
            world.audit,
            "--subject",
            P2,
            "--keyring",
            world.keys,
            "-o",
            out,
        )
        assert code == 0, output
        data = json.loads(out.read_text())
        assert world.ref2 in json.dumps(data)
        generated = events(world.audit, "report.generate")
        assert generated, "generating a subject report is audited"
        assert generated[-1]["subjects"] == [world.ref2]


@pytest.fixture(scope="module")
def erased(world: World) -> dict[str, Any]:
    import subprocess

    cert = world.root / "erasure-cert.json"
    proc = subprocess.run(
        [
            sys.executable, "-m", "guardrail.cli", "erase", "--subject", P1, "--keyring", str(world.keys),
            "--store", str(world.kb), "--audit-log", str(world.audit), "--actor", "dpo-anna",
            "--request-ref", "DSAR-2026-17", "--certificate", str(cert),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return {"cert": cert, "stdout": proc.stdout}


class TestErasure:
    """Erasure by the CLI: store, key, vault, datasets listed, certificate; then re-identification."""

    def test_the_certificate_verifies_and_tampering_fails(self, world: World, erased: dict[str, Any]) -> None:
        public = (world.audit / "audit.pub").read_text()
        cert: Path = erased["cert"]
        assert verify_certificate(cert, public)
        data = json.loads(cert.read_text())
        body = data["certificate"]
        assert body["subject_ref"] == world.ref1
        assert body["deleted"]["vector_nodes"] >= 1
        assert body["deleted"]["vault_tokens"] >= 1
        assert body["keys_destroyed"]
        assert body["request_ref"] == "DSAR-2026-17"
        assert [d["dataset"] for d in body["datasets_including_subject"]]
        assert P1 not in cert.read_text()
        assert "Finch" not in cert.read_text()
        forged = dict(data, certificate=dict(body, deleted=dict(body["deleted"], vector_nodes=99)))
        bad = world.root / "forged.json"
        bad.write_text(json.dumps(forged))
        assert not verify_certificate(bad, public)

    def test_the_certificate_verifies_from_the_cli(
        self,
        world: World,
        erased: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        code, output = cli(
            capsys, monkeypatch, "verify-certificate", erased["cert"], "--audit-log", world.audit
        )
        assert code == 0, output
        assert f"certificate verified: subject ref {world.ref1}" in output
        assert "request DSAR-2026-17" in output
        data = json.loads(erased["cert"].read_text())
        data["certificate"]["keys_destroyed"] = []
        forged = world.root / "forged-keys.json"
        forged.write_text(json.dumps(data))
        code, output = cli(
            capsys, monkeypatch, "verify-certificate", forged, "--public-key", world.audit / "audit.pub"
        )
        assert code == 1
        assert "NOT VERIFIED" in output

    def test_the_erasure_event_carries_actor_and_request(self, world: World, erased: dict[str, Any]) -> None:
        event = events(world.audit, "dsar.erasure")[-1]
        assert event["actor"]["ref"] == "dpo-anna"
        assert event["request"]["ref"] == "DSAR-2026-17"
        assert event["subjects"] == [world.ref1]

    def test_the_store_on_disk_no_longer_holds_the_subject(
        self, world: World, erased: dict[str, Any]
    ) -> None:
        from guardrail import Guardrail

        gr = Guardrail(policy=world.policy, keyring=world.keys, tenant=world.tenant)
        storage = gr.load_storage_context(world.kb)
        with gr.release_all(reason="test: what is left on disk"):
            texts = [n.get_content() for n in storage.vector_store.get_nodes()]
        assert texts, "positive control: the other documents are still there"
        assert not any("Finch" in t for t in texts)
        assert any("invoice" in t for t in texts)

    def test_reidentifying_an_erased_token_is_refused_and_audited(
        self,
        world: World,
        erased: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        lines = [json.loads(line) for line in world.dataset_out.read_text().splitlines()]
        token1 = re.search(r"<PERSON_[0-9A-Z]{6,}>", json.dumps(lines[0]))
        token2 = re.search(r"<PERSON_[0-9A-Z]{6,}>", json.dumps(lines[1]))
        assert token1 is not None
        assert token2 is not None
        base = ["reidentify", "--keyring", world.keys, "--principal", "po-1", "--role", "privacy_officer",
                "--purpose", "operations", "--audit-log", world.audit, "--policy", world.policy,
                "--tenant", world.tenant]  # fmt: skip
        code, output = cli(capsys, monkeypatch, *base[:1], token1.group(0), *base[1:])
        assert code == 1
        assert "erased" in output
        assert "Finch" not in output
        last = events(world.audit, "reidentify")[-1]
        assert last["event"]["outcome"] == "denied"
        assert last["policy"]["decision"] == "erased"
        # positive control: the other subject's token still re-identifies
        code, output = cli(capsys, monkeypatch, *base[:1], token2.group(0), *base[1:])
        assert code == 0, output
        assert "Bruno Keller" in output

    def test_dsar_lists_dataset_exports_and_the_erasure(self, world: World, erased: dict[str, Any]) -> None:
        report = build_dsar(world.audit, subject_ref=world.ref1)
        datasets = rows(report, "subject_datasets")
        assert any(d["event"] == "ft.export" for d in datasets)
        erasures = rows(report, "subject_erasures")
        assert erasures
        assert erasures[-1]["request"] == "DSAR-2026-17"
        assert erasures[-1]["actor"] == "-"  # employee identities only with --with-principals

    def test_python_erasure_writes_a_reopened_store_back(self, world: World, erased: dict[str, Any]) -> None:
        from guardrail import Guardrail

        gr = Guardrail(policy=world.policy, keyring=world.keys, tenant=world.tenant, audit_log=world.audit)
        gr.load_storage_context(world.kb)
        result = gr.erase_subject(P2, actor="dpo-anna", request_ref="DSAR-2026-18")
        gr.close()
        assert result.vector_nodes_deleted >= 1
        again = Guardrail(policy=world.policy, keyring=world.keys, tenant=world.tenant)
        with again.release_all(reason="test: what is left on disk"):
            texts = [n.get_content() for n in again.load_storage_context(world.kb).vector_store.get_nodes()]
        assert not any("invoice" in t for t in texts)  # persisted without a second persist() call
        assert any("opening hours" in t for t in texts)


class TestActivityReport:
    """One consistent set of denial figures, withheld PHI visible, the profile per chunk, the matrix."""

    def test_withheld_before_retrieval_per_rule_and_role(self, world: World) -> None:
        from guardrail.reports import build_report

        report = build_report(world.audit, policies=(world.policy,))
        by_rule = {r["rule"]: r for r in rows(report, "denials_by_rule")}
        assert by_rule["support-no-phi"]["withheld"] >= 1
        assert by_rule["support-no-phi"]["withheld_events"] == 1
        by_role = {r["role"]: r for r in rows(report, "retrievals_by_role")}
        assert by_role["support"]["chunks_withheld"] >= 1
        assert by_role["clinician"]["chunks_withheld"] == 0
        text = render_markdown(report)
        assert "withheld before retrieval" in text

    def test_profile_per_chunk_never_mixed(self, world: World) -> None:
        from guardrail.reports import build_report

        released = rows(build_report(world.audit, policies=(world.policy,)), "chunks_released")
        assert released
        assert {r["profile"] for r in released} <= {"none", "redact", "pseudonymize"}
        assert ("phi", "none") in {(r["classification"], r["profile"]) for r in released}

    def test_minimum_necessary_matrix(self, world: World) -> None:
        from guardrail.reports import build_report

        matrix = rows(build_report(world.audit, policies=(world.policy,)), "minimum_necessary")
        cell = {(r["role"], r["classification"]): r["profiles"] for r in matrix}
        assert "support: deny (support-no-phi)" in cell["support", "phi"]
        assert "treatment: none" in cell["clinician", "phi"]
        assert "support: redact" in cell["support", "internal"]


class TestRightFigures:
    def test_safe_harbor_table_only_for_exports_claiming_it(self, tmp_path: Path) -> None:
        from _report_helpers import GDPR, HIPAA, ft_export, write_log

        from guardrail.reports import build_report

        audit = write_log(
            tmp_path / "audit",
            [
                ft_export(
                    "2025-03-01T08:00:00.000Z",
                    "gdpr-set",
                    {"PERSON": 4},
                    {},
                    {"PERSON": "pseudonymize"},
                    pol=GDPR,
                ),
                ft_export(
                    "2025-03-01T09:00:00.000Z",
                    "hipaa-set",
                    {"PERSON": 2},
                    {},
                    {"PERSON": "pseudonymize"},
                    pol=HIPAA,
                ),
            ],
        )
        report = build_report(audit)
        titles = [b.title for s in report.sections for b in s.blocks if isinstance(b, Table)]
        assert any("hipaa-set" in t for t in titles if t.startswith("HIPAA Safe Harbor"))
        assert not any("gdpr-set" in t for t in titles if t.startswith("HIPAA Safe Harbor"))
        assert "does not claim Safe Harbor" in render_markdown(report)

    def test_keyed_codes_are_never_compliant(self) -> None:
        from guardrail.reports.safe_harbor import reference_identifiers, safe_harbor_table

        table = safe_harbor_table(
            "t",
            "t",
            {"findings_before": {"PERSON": 3}, "findings_after": {}, "token_method": "keyed-hmac-sha256"},
            {"operators": {"PERSON": "pseudonymize"}},
            None,
            reference_identifiers(),
        )
        names = next(r for r in table.rows if r[0] == "A")
        assert "CODE DERIVED FROM VALUE" in str(names[-1])
        assert "handled" not in str(names[-1])

    def test_damaged_log_flags_every_section(self, tmp_path: Path) -> None:
        from _report_helpers import synthetic_events, write_log

        from guardrail.reports import build_report

        audit = write_log(tmp_path / "audit", synthetic_events())
        segment = sorted(p for p in audit.iterdir() if p.name.startswith("segment") or p.suffix == ".jsonl")[
            0
        ]
        lines = segment.read_bytes().splitlines(keepends=True)
        lines[3] = lines[3].replace(b'"success"', b'"denied"', 1)
        segment.write_bytes(b"".join(lines))
        report = build_report(audit)
        assert not report.ok
        facts = dict(report.block("integrity").items)  # type: ignore[union-attr]
        assert "NOT verified" in str(facts["records verified"])
        assert facts["first damaged record"] == 3
        for section in report.sections[1:]:
            first = section.blocks[0]
            assert "UNVERIFIED FIGURES" in getattr(first, "text", ""), section.id


class TestRetention:
    def test_apply_deletes_what_is_past_retention_and_is_audited(self, tmp_path: Path) -> None:
        from datetime import UTC, datetime, timedelta

        from llama_index.core import Document, VectorStoreIndex
        from llama_index.core.node_parser import SentenceSplitter

        from guardrail import DataErased, Guardrail
        from guardrail.datasets.tokens import TokenVault
        from guardrail.keys import Keyring
        from guardrail.llama_index.hashing import HashingEmbedding
        from guardrail.retention import apply_retention

        keys, audit, kb, policy = (
            tmp_path / "keys",
            tmp_path / "audit",
            tmp_path / "kb",
            tmp_path / "clinic.yaml",
        )
        policy.write_text(POLICY)
        ring = Keyring.create(keys)
        gr = Guardrail(policy=policy, keyring=keys, audit_log=audit, tenant="clinic")
        storage = gr.storage_context()
        VectorStoreIndex.from_documents(
            [
                Document(text=NOTE_1, metadata={"subjects": [P1]}),
                Document(
                    text="Clinic opening hours: 8:00 to 18:00.", metadata={"classification": "internal"}
                ),
            ],
            storage_context=storage,
            transformations=[SentenceSplitter(), gr.annotator()],
            embed_model=HashingEmbedding(),
        )
        storage.persist(persist_dir=str(kb))
        gr.close()
        with TokenVault(keys / "vault-clinic.sqlite", keyring=ring, tenant="clinic") as v:
            token = v.token("PERSON", "Ada Finch")
        later = datetime.now(UTC) + timedelta(days=400)  # internal (1y) expired, phi (6y) not
        report = build_ropa(audit, policies=(policy,), clock=later)
        facts = dict(report.block("retention").items)  # type: ignore[union-attr]
        assert "OVERDUE: 1 (internal 1)" in str(facts["chunks past retention, not yet deleted (per the log)"])
        dry = apply_retention(keyring=ring, policy=policy, tenant="clinic", audit_log=audit, stores=[kb],
                              dry_run=True, now=later)  # fmt: skip
        assert (dry.chunks, dry.vault_tokens) == (1, 0)
        done = apply_retention(
            keyring=ring, policy=policy, tenant="clinic", audit_log=audit, stores=[kb], now=later
        )
        assert done.chunks == 1
        reader = Guardrail(policy=policy, keyring=keys, tenant="clinic")
        with reader.release_all(reason="test: what is left on disk"):
            texts = [n.get_content() for n in reader.load_storage_context(kb).vector_store.get_nodes()]
        assert not any("opening hours" in t for t in texts)
        assert any("Discharge" in t for t in texts)  # phi is kept 6 years
        event = events(audit, "retention.apply")[-1]
        assert event["retrieval"]["deleted_nodes"] == 1
        report = build_ropa(audit, policies=(policy,), clock=later)
        facts = dict(report.block("retention").items)  # type: ignore[union-attr]
        assert facts["chunks past retention, not yet deleted (per the log)"] == "none"
        much_later = datetime.now(UTC) + timedelta(days=7 * 365)
        gone = apply_retention(keyring=ring, policy=policy, tenant="clinic", audit_log=audit, now=much_later)
        assert gone.vault_tokens == 1
        with (
            TokenVault(keys / "vault-clinic.sqlite", keyring=ring, tenant="clinic") as v,
            pytest.raises(DataErased),
        ):
            v.reidentify(token)


def test_dsar_opens_with_a_plain_language_summary(world: World) -> None:
    report = build_dsar(world.audit, subject_ref=world.ref1)
    assert report.sections[1].id == "plain"  # right after the integrity verdict
    text = " ".join(getattr(b, "text", "") for b in report.sections[1].blocks)
    assert "treatment of the patient (TREAT)" in text
    assert "medical record numbers" in text
    assert "Azure OpenAI (EU)" in text
    assert "rag.retrieval" not in text  # sentences, not event codes
    assert report.sections[2].title.startswith("Annex for the data protection officer")


def test_dsar_storage_period_comes_from_the_policy_retention(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrail.reports.model import Blank

    report = build_dsar(world.audit, subject_ref=world.ref2, policies=(world.policy,))
    facts = dict(report.block("dsar_summary").items)  # type: ignore[union-attr]
    period = str(facts["storage period (15(1)(d))"])
    assert "phi data: 6 year(s)" in period
    assert "internal data: 1 year(s)" in period
    assert "clinic@2.0.0" in period
    plain = " ".join(getattr(b, "text", "") for b in report.sections[1].blocks)
    assert "We keep it for at most: phi data: 6 year(s)" in plain
    # the policy file is not a shipped pack: without it the period stays for the controller to fill
    alone = dict(build_dsar(world.audit, subject_ref=world.ref2).block("dsar_summary").items)  # type: ignore[union-attr]
    assert isinstance(alone["storage period (15(1)(d))"], Blank)
    out = tmp_path / "dsar.md"
    code, output = cli(
        capsys, monkeypatch, "report", "dsar", world.audit, "--subject-ref", world.ref2, "--policy",
        world.policy, "-o", out, "--allow-empty",
    )  # fmt: skip
    assert code == 0, output
    assert "phi data: 6 year(s)" in out.read_text()


def test_reports_about_the_subject_are_listed_not_counted_as_uses(world: World) -> None:
    """A DSAR generated after an earlier one: the earlier report.generate event is listed with what it
    was, and is neither a purpose ("no purpose recorded") nor an occasion of use of the data."""
    from _report_helpers import write_log

    from guardrail.audit.schema import LOG_FIELDS

    records = [
        {k: v for k, v in r.items() if k not in LOG_FIELDS}
        for r in iter_records(world.audit)
        if world.ref2 in (r.get("subjects") or ())
    ]
    before = build_dsar(world.audit, subject_ref=world.ref2)
    generated = {
        "occurred_at": "2999-01-01T00:00:00.000Z",
        "event": {"category": "report.generate", "action": "R", "outcome": "success"},
        "source": {"app": "guardrail@test", "component": "reports"},
        "actor": {"ref": "dpo-anna", "type": "user", "roles": []},
        "subjects": [world.ref2],
        "resources": [{"type": "report", "id": "dsar"}],
    }
    audit = write_log(world.root / "with-report", [*records, generated])
    after = build_dsar(audit, subject_ref=world.ref2)
    facts = dict(after.block("dsar_summary").items)  # type: ignore[union-attr]
    assert "no purpose recorded" not in str(facts["purposes (15(1)(a))"])
    assert str(facts["purposes (15(1)(a))"]) == str(
        dict(before.block("dsar_summary").items)["purposes (15(1)(a))"]
    )  # type: ignore[union-attr]
    events_table = rows(after, "subject_events")
    assert events_table[-1]["event"] == "report.generate"
    assert events_table[-1]["purpose"] == "report about the subject (access request, Art. 15)"
    plain = " ".join(getattr(b, "text", "") for b in after.sections[1].blocks)
    n = sum(1 for r in records if r["event"]["category"] == "report.generate") + 1
    assert f"We prepared {n} report(s) about the use of your data" in plain
    assert "no purpose recorded" not in plain


def test_subject_reports_record_actor_and_request_and_refuse_the_wrong_tenant(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "acc.md"
    code, output = cli(
        capsys, monkeypatch, "report", "disclosures", world.audit, "--subject", P1, "--keyring", world.keys,
        "--tenant", "default", "-o", out,
    )  # fmt: skip
    assert code == 2
    assert "under tenant 'clinic'" in output
    assert P1 not in output
    assert not out.exists()
    code, output = cli(
        capsys, monkeypatch, "report", "disclosures", world.audit, "--subject", P1, "--keyring", world.keys,
        "-o", out, "--actor", "privacy-officer-1", "--request-ref", "ACC-2026-3",
    )  # fmt: skip
    assert code == 0, output
    event = events(world.audit, "report.generate")[-1]
    assert event["actor"]["ref"] == "privacy-officer-1"
    assert event["request"] == {"ref": "ACC-2026-3", "kind": "accounting of disclosures (164.528)"}
    assert event["subjects"] == [world.ref1]
    listed = rows(build_dsar(world.audit, subject_ref=world.ref1), "subject_events")
    assert any(
        r["purpose"]
        == "report about the subject (accounting of disclosures, 45 CFR 164.528; request ACC-2026-3)"
        for r in listed
    )


def test_dsar_counts_only_the_subjects_own_chunks_of_a_retrieval(world: World) -> None:
    clinician = next(e for e in events(world.audit, "rag.retrieval") if e["actor"]["ref"] == "dr-chen")
    assert len(clinician["resources"]) >= 2  # the retrieval touched other documents too
    ingest = events(world.audit, "rag.ingest")
    own = {r["id"] for e in ingest for r in e["resources"] if world.ref1 in r.get("subjects", [])}
    expected = sum(1 for r in clinician["resources"] if r["id"] in own)
    assert expected >= 1
    listed = rows(build_dsar(world.audit, subject_ref=world.ref1), "subject_events")
    row = next(r for r in listed if r["occurred_at"] == clinician["occurred_at"])
    assert row["resources"] == expected
