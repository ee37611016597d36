"""Gate a chat-format fine-tuning set: scan it, redact it with consistent pseudonyms, verify the manifest.

Run: python examples/scan_finetune_dataset.py [WORKDIR]

The CLI equivalent (README):

    guardrail keys init keys
    guardrail scan train.jsonl --policy gdpr
    guardrail redact train.jsonl -o train.redacted.jsonl --policy gdpr --keyring keys \\
        --audit-log audit --fail-on 0
    guardrail manifest verify train.redacted.jsonl.manifest.json --public-key audit/audit.pub

The same person gets the same keyed token in every conversation (and in every run with this keyring), so
a model trained on the output still sees that a customer recurs, without seeing who they are. The run is
re-scanned after redaction; ``fail_on=0`` makes it a gate: with residual findings nothing is written.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

from guardrail.audit.note import public_key_of
from guardrail.datasets.manifest import verify_manifest
from guardrail.datasets.run import redact_file, scan_file
from guardrail.demo import sample_path
from guardrail.keys import Keyring


def main(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    keys = workdir / "keys"
    keyring = Keyring.open(keys) if keys.exists() else Keyring.create(keys)
    train = sample_path("finetune_chat.jsonl")

    # 1. scan: what personal data is in the user and assistant turns (the gdpr pack's dataset rules)
    scan = scan_file(train, policy="gdpr")
    print(f"scan: {scan.records} conversations, {scan.total} findings: {scan.findings}")

    # 2. redact with keyed pseudonyms, re-scan, gate on residual findings, sign a manifest, audit it
    result = redact_file(
        train,
        workdir / "train.redacted.jsonl",
        keyring=keyring,
        policy="gdpr",
        audit_log=workdir / "audit",
        fail_on=0,
        force=True,
    )
    m = result.manifest
    print(f"redacted: {m.output_records} records, residual findings {m.residual}, rejects {m.rejects}")

    # the same person, the same token, in every conversation
    tokens = Counter(re.findall(r"<PERSON_[a-z2-7]+>", result.output.read_text(encoding="utf-8")))
    print(f"person tokens (occurrences): {dict(tokens.most_common(3))}")
    first = json.loads(result.output.read_text(encoding="utf-8").splitlines()[0])
    print(f"first user turn: {first['messages'][1]['content']}")

    # 3. verify: the signature (against the audit key), and that the output is the one described
    verified = verify_manifest(
        result.manifest_path, public_key=public_key_of(keyring.hmac_key("audit-checkpoint"))
    )
    print(f"manifest verified (key {verified.key_id}): output sha256 {m.output_sha256[:16]}...")
    print(f"dataset card: {result.card_path}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "finetune-gate"))
