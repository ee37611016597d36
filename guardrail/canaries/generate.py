"""Synthetic canary documents: realistic clinical notes, chat transcripts and dataset records, each
carrying its own fake identifiers.

The identifiers are made never to belong to anyone:

- names: a census given name and a made-up surname (three syllables that form no English word; checked
  against the given-name list so the surname is not a common name);
- medical record numbers: ``9`` and seven random digits, under an ``MRN`` label;
- SSN-shaped numbers in the 900-999 area, which the Social Security Administration never issues;
- e-mail addresses on ``example.org`` / ``example.net`` (reserved by RFC 2606);
- telephone numbers ``555-01xx`` (reserved for fiction by the North American Numbering Plan).

Every value is one the default detector finds (checked when the canary is made): a redacted release
never trips a canary, so a trip means the value really left in clear.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

Kind = Literal["note", "chat", "record"]
KINDS: tuple[Kind, ...] = ("note", "chat", "record")

_ONSETS = (
    "Brae", "Corv", "Dran", "Fenn", "Galv", "Harr", "Jask", "Kelv", "Lorr", "Marv", "Norv", "Orv",
    "Pell", "Quill", "Rasp", "Sorr", "Tarv", "Ulv", "Vask", "Wex", "Yarr", "Zell",
)  # fmt: skip
_MIDDLES = ("a", "e", "i", "o", "u", "ab", "en", "ip", "om", "ur", "ev", "ol")
_ENDS = (
    "mere", "thwaite", "combe", "stow", "holt", "wick", "gard", "brook", "lowe", "dell", "croft",
    "vane", "ridge", "by", "ton", "feld",
)  # fmt: skip
_CONDITIONS = (
    ("type 2 diabetes", "metformin 1000 mg twice daily"),
    ("chronic kidney disease stage 3", "lisinopril 10 mg daily"),
    ("atrial fibrillation", "apixaban 5 mg twice daily"),
    ("asthma", "budesonide-formoterol inhaler"),
    ("hypothyroidism", "levothyroxine 75 mcg daily"),
    ("major depressive disorder", "sertraline 100 mg daily"),
)
_CITIES = ("Springfield", "Riverton", "Fairview", "Greenville", "Lakewood", "Franklin")


@dataclass(frozen=True)
class Canary:
    """One generated canary: its document (or record) and the identifiers planted in it.

    Attributes:
        kind: ``note``, ``chat`` or ``record``.
        data: the JSON record (``{"id", "text"}``, ``{"id", "messages"}`` or a flat record).
        values: ``(entity type, value)`` for every planted identifier.
    """

    kind: Kind
    data: dict[str, Any]
    values: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        return f"Canary(kind={self.kind!r}, values={len(self.values)})"  # never the values

    def texts(self) -> list[str]:
        """The texts of the record that carry the identifiers."""
        if self.kind == "note":
            return [str(self.data["text"])]
        if self.kind == "chat":
            return [str(m["content"]) for m in self.data["messages"]]
        return [str(v) for k, v in self.data.items() if k != "id"]


def _given_names() -> list[str]:
    text = resources.files("guardrail.data").joinpath("first_names.txt").read_text(encoding="utf-8")
    return [
        w.strip() for w in text.splitlines() if w.strip() and not w.startswith("#") and len(w.strip()) > 3
    ]


class _Identity:
    def __init__(self, rng: secrets.SystemRandom, names: Sequence[str]) -> None:
        self.given = rng.choice(names).capitalize()
        lowered = set(names)
        while True:
            surname = rng.choice(_ONSETS) + rng.choice(_MIDDLES) + rng.choice(_ENDS)
            if surname.lower() not in lowered:
                break
        self.surname = surname
        self.name = f"{self.given} {self.surname}"
        self.mrn = "9" + "".join(rng.choice("0123456789") for _ in range(7))
        self.ssn = f"9{rng.randint(0, 99):02d}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        domain = rng.choice(("example.org", "example.net"))
        self.email = f"{self.given.lower()}.{self.surname.lower()}{rng.randint(10, 99)}@{domain}"
        self.phone = f"({rng.randint(201, 989)}) 555-01{rng.randint(0, 99):02d}"
        self.dob = f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(1938, 1999)}"
        self.condition, self.medication = rng.choice(_CONDITIONS)
        self.city = rng.choice(_CITIES)
        self.record = f"{rng.randint(10000, 99999)}"

    def values(self) -> tuple[tuple[str, str], ...]:
        return (
            ("PERSON", self.name),
            ("PERSON", self.surname),
            ("MEDICAL_RECORD_NUMBER", self.mrn),
            ("US_SSN", self.ssn),
            ("EMAIL_ADDRESS", self.email),
            ("PHONE_NUMBER", self.phone),
        )


def _note(p: _Identity) -> dict[str, Any]:
    text = (
        f"Patient: {p.name}  MRN: {p.mrn}  DOB: {p.dob}. SSN: {p.ssn}. "
        f"Seen today in the {p.city} clinic for follow-up of {p.condition}. "
        f"{p.surname} reports good adherence to {p.medication} and no new symptoms. "
        f"Plan: repeat labs in three months. Contact: {p.email}, phone {p.phone}."
    )
    return {"id": f"note-{p.record}", "text": text}


def _chat(p: _Identity) -> dict[str, Any]:
    return {
        "id": f"conv-{p.record}",
        "messages": [
            {"role": "system", "content": "You are a helpful clinic scheduling assistant."},
            {
                "role": "user",
                "content": f"Hi, this is {p.name}, DOB {p.dob}, MRN: {p.mrn}. I need to refill my "
                f"{p.medication.split()[0]} prescription.",
            },
            {
                "role": "assistant",
                "content": f"Thanks {p.given}. I have sent the refill request for {p.condition} "
                f"to your care team. We will confirm at {p.email} or by phone at {p.phone}.",
            },
            {
                "role": "user",
                "content": f"Great. For the insurance form, my SSN: {p.ssn}. Signed, {p.name}.",
            },
        ],
    }


def _record(p: _Identity) -> dict[str, Any]:
    return {
        "id": f"rec-{p.record}",
        "name": f"Patient {p.name}",
        "mrn": f"MRN: {p.mrn}",
        "ssn": f"SSN: {p.ssn}",
        "email": p.email,
        "phone": f"phone {p.phone}",
        "note": f"{p.name} seen in {p.city} for {p.condition}; continues {p.medication}.",
    }


_BUILDERS: dict[Kind, Callable[[_Identity], dict[str, Any]]] = {
    "note": _note,
    "chat": _chat,
    "record": _record,
}


def generate(kind: Kind, *, rng: secrets.SystemRandom | None = None) -> Canary:
    """One canary document of ``kind`` with fresh identifiers (not yet checked or registered)."""
    rng = rng or secrets.SystemRandom()
    identity = _Identity(rng, _given_names())
    return Canary(kind, _BUILDERS[kind](identity), identity.values())


def undetected(canary: Canary, findings_per_text: Sequence[Sequence[Any]]) -> list[str]:
    """The entity types of planted values that no finding covers (empty: every value is detected)."""
    missing = []
    texts = canary.texts()
    for entity, value in canary.values:
        covered = False
        placed = False
        for text, found in zip(texts, findings_per_text, strict=True):
            start = text.find(value)
            while start >= 0:
                placed = True
                end = start + len(value)
                if not any(f.start <= start and f.end >= end for f in found):
                    break
                start = text.find(value, end)
            else:
                if placed:
                    covered = True
                continue
            covered = False
            break
        if not covered:
            missing.append(entity)
    return missing
