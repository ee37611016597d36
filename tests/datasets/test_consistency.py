"""One person, one token (issue 12): across the turns of a chat record, a person named in full in one
turn and by given name in another, or typed differently by the model per sentence, gets one pseudonym.

The 300 records are generated here (names from many cultures, several phrasings); none comes from an
evaluation corpus.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from guardrail.datasets.run import redact_file
from guardrail.keys import Keyring

GIVEN = [
    "Jonas", "Amara", "Kenji", "Siobhan", "Mateus", "Ingrid", "Tariq", "Lucía", "Dmitri", "Aisha",
    "Lars", "Ngozi", "Haruto", "Fatima", "Oskar", "Priya", "Emeka", "Yuki", "Bogdan", "Leilani",
    "Tomasz", "Chiara", "Kwame", "Astrid", "Rafael", "Mei", "Idris", "Freya", "Arjun", "Zanele",
]  # fmt: skip
SURNAMES = [
    "Eklund", "Okafor", "Takahashi", "Brennan", "Carvalho", "Halvorsen", "Rahimi", "Moreno", "Volkov",
    "Haddad", "Lindqvist", "Adeyemi", "Sato", "Benali", "Novak", "Raghavan", "Eze", "Morita", "Ionescu",
    "Kahale", "Zielinski", "Ferraro", "Mensah", "Nyberg", "Quintero", "Lin", "Abiodun", "McLeod",
]  # fmt: skip
OPENERS = [
    "hi, my name is {full} and my parcel has not arrived",
    "Hello, this is {full}. I need to change my delivery address.",
    "My name is {full}, I was charged twice last week.",
    "hey there, {full} here, the app keeps logging me out",
    "Good morning. I'm {full} and I would like a refund.",
]
REPLIES = [
    "Thanks {given}, I can help with that. Could you confirm the e-mail on the account?",
    "Sorry to hear that, {given}. Let me check.",
    "Hi {given}! I have found your account.",
]
FOLLOW_UPS = [
    "It is the same as always. Thanks, {given} {surname}",
    "ok thanks. {given}",
    "Great, please tell {given} {surname} by e-mail when it is done.",
    "Perfect. Regards, {given}",
]


def records(n: int) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        given, surname = GIVEN[i % len(GIVEN)], SURNAMES[(i * 7) % len(SURNAMES)]
        fill = {"full": f"{given} {surname}", "given": given, "surname": surname}
        out.append(
            {
                "id": f"c{i:03d}",
                "messages": [
                    {"role": "user", "content": OPENERS[i % len(OPENERS)].format(**fill)},
                    {"role": "assistant", "content": REPLIES[i % len(REPLIES)].format(**fill)},
                    {"role": "user", "content": FOLLOW_UPS[i % len(FOLLOW_UPS)].format(**fill)},
                ],
                "person": [given, surname],
            }
        )
    return out


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring.create(tmp_path_factory.mktemp("ring") / "keys")


TOKEN = re.compile(r"<([A-Z_]+?)_[a-z2-7]{6,}>")


def test_300_chat_records_one_person_one_token(keyring: Keyring, tmp_path: Path) -> None:
    rows = records(300)
    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = redact_file(src, out, keyring=keyring, policy="gdpr", rules=None)
    broken = []
    for row, line in zip(rows, out.read_text(encoding="utf-8").splitlines(), strict=True):
        record = json.loads(line)
        text = "\n".join(m["content"] for m in record["messages"])
        tokens = TOKEN.findall(text)
        person_tokens = set(re.findall(r"<PERSON_[a-z2-7]{6,}>", text))
        names_left = [p for p in row["person"] if re.search(rf"\b{re.escape(p)}\b", text)]  # type: ignore[union-attr]
        if names_left or len(person_tokens) != 1 or any(t != "PERSON" for t in tokens):
            broken.append(record["id"])
    # positive control: every record had its person replaced by a PERSON token at all
    assert not broken, f"{len(broken)} records broken, e.g. {broken[:5]}"
    assert result.manifest.residual == 0
