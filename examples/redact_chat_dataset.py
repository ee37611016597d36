"""Pseudonymise a chat-format fine-tuning set with consistent tokens, leaving system prompts alone.

Run: python examples/redact_chat_dataset.py [OUTPUT.jsonl]
The same person gets the same <PERSON_n> token in every conversation of the file, so a model trained on
the output still sees that a customer recurs, without seeing who they are.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from guardrail import Guardrail, PseudonymScope
from guardrail.demo import sample_path


def main(output: Path) -> None:
    gr = Guardrail(policy="gdpr")  # names and direct identifiers pseudonymised
    scope = PseudonymScope()  # one scope for the whole dataset
    counts: Counter[str] = Counter()
    rows = [
        json.loads(line)
        for line in sample_path("finetune_chat.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    for row in rows:
        turns = [m for m in row["messages"] if m["role"] != "system"]
        results = gr.redact_batch([m["content"] for m in turns], scope=scope)
        for message, result in zip(turns, results, strict=True):
            message["content"] = result.text
            counts.update(result.counts())
    output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} conversations, findings: {dict(sorted(counts.items()))}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "finetune_chat.redacted.jsonl"))
