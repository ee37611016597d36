"""National identity, tax, social-insurance and passport numbers of other countries (``NATIONAL_ID``).

Two kinds of evidence:

* a label naming the identifier ("PESEL", "BSN", "Steuer-ID", "codice fiscale", "NIE", "SIN", "JMBG",
  "Aadhaar", "PAN", "NI no", "passport", "carte d'identité n°", ...) and a value after it, a few filler
  words allowed ("his BSN, it is 182145906"). A labelled value is redacted even when its checksum fails:
  a typo in a national id is still that person's id;
* without a label, only formats distinctive enough on their own, verified by their checksum or check
  letter where one exists: Brazilian CPF (``123.456.789-09``), Spanish DNI/NIE (check letter), UK
  National Insurance numbers, Indian PAN, Italian codice fiscale, Aadhaar in 4-4-4 groups (Verhoeff),
  Serbian/ex-Yugoslav JMBG (mod 11 with a valid birth date), Malaysian MyKad.
"""

from __future__ import annotations

import re

from guardrail.detection.recognizers.base import Rule, RuleRecognizer

__all__ = [
    "aadhaar_ok",
    "bsn_ok",
    "cpf_ok",
    "dni_ok",
    "jmbg_ok",
    "national_id_recognizer",
    "pesel_ok",
    "steuer_id_ok",
]


def _digits(value: str) -> list[int]:
    return [int(c) for c in value if c.isdigit()]


def cpf_ok(value: str) -> bool:
    """Brazilian CPF: 11 digits, two mod-11 check digits (all-equal digits are invalid)."""
    d = _digits(value)
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        total = sum(d[i] * (n + 1 - i) for i in range(n))
        check = (total * 10) % 11 % 10
        if d[n] != check:
            return False
    return True


def pesel_ok(value: str) -> bool:
    """Polish PESEL: 11 digits, weights 1-3-7-9."""
    d = _digits(value)
    if len(d) != 11:
        return False
    total = sum(w * x for w, x in zip([1, 3, 7, 9, 1, 3, 7, 9, 1, 3], d, strict=False))
    return (10 - total % 10) % 10 == d[10]


def bsn_ok(value: str) -> bool:
    """Dutch BSN: 9 digits passing the 11-proof."""
    d = _digits(value)
    if len(d) != 9:
        return False
    total = sum(d[i] * (9 - i) for i in range(8)) - d[8]
    return total % 11 == 0 and total != 0


def steuer_id_ok(value: str) -> bool:
    """German Steuer-ID: 11 digits, first not 0, ISO 7064 MOD 11,10 check digit."""
    d = _digits(value)
    if len(d) != 11 or d[0] == 0:
        return False
    product = 10
    for x in d[:10]:
        total = (x + product) % 10 or 10
        product = (total * 2) % 11
    return (11 - product) % 10 == d[10]


def jmbg_ok(value: str) -> bool:
    """JMBG (Serbia, Bosnia, North Macedonia, Montenegro, ...): 13 digits, DDMMYYY, mod-11 check."""
    d = _digits(value)
    if len(d) != 13 or not (1 <= d[0] * 10 + d[1] <= 31 and 1 <= d[2] * 10 + d[3] <= 12):
        return False
    total = sum((7 - i % 6) * (d[i] + d[i + 6]) for i in range(6))
    m = 11 - total % 11
    return (0 if m > 9 else m) == d[12]


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_ok(value: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the check letter."""
    v = re.sub(r"[\s-]", "", value.upper())
    m = re.fullmatch(r"([XYZ]?)(\d{7,8})([A-Z])", v)
    if m is None or len(m.group(1) + m.group(2)) != 8:
        return False
    number = int(str("XYZ".index(m.group(1))) + m.group(2) if m.group(1) else m.group(2))
    return _DNI_LETTERS[number % 23] == m.group(3)


_VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def aadhaar_ok(value: str) -> bool:
    """Indian Aadhaar: 12 digits, first not 0 or 1, Verhoeff check digit."""
    d = _digits(value)
    if len(d) != 12 or d[0] < 2:
        return False
    c = 0
    for i, x in enumerate(reversed(d)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][x]]
    return c == 0


def _mykad_ok(value: str) -> bool:
    d = _digits(value)
    return len(d) == 12 and 1 <= d[2] * 10 + d[3] <= 12 and 1 <= d[4] * 10 + d[5] <= 31


# Labels of national, tax, social-insurance, health-insurance and passport numbers (case-insensitive).
_LABELS = (
    r"pesel|cpf|cnpj|rg|bsn|burgerservicenummer|sofi(?:nummer)?|steuer-?id|steuer-?identifikationsnummer|"
    r"steuernummer|idnr|tax\s*(?:id|number|no|code|file\s+number)|tin|taxpayer(?:\s+(?:number|id))?|"
    r"rnokpp|inn|snils|codice\s+fiscale|c\.f\.|nie|dni|nif|nss|cif|sin|social\s+insurance(?:\s+number)?|"
    r"jmbg|emšo|emso|egn|oib|cnp|iin|bin|aadhaar|aadhar|uidai|pan|ni\s+(?:no|number)|nino|"
    r"national\s+insurance(?:\s+(?:no|number))?|national\s+(?:id|identity|identification)(?:\s+(?:no|number|card))?|"
    r"id\s+(?:card|document|no|number)|identity\s+(?:card|number|document)|carte\s+d['’]identit[ée]|"
    r"personal\s+(?:id|number|identity\s+code)|personnummer|henkilötunnus|hetu|cpr(?:-nr)?|amka|afm|"
    r"mykad|nric|fin|hkid|my\s+number|kojin\s+bangō|rrn|resident\s+registration(?:\s+number)?|"
    r"ppsn?|pps\s+(?:no|number)|nir|insee|curp|rfc|rut|run|cuit|cuil|dpi|cédula|cedula|ghana\s+card|"
    r"tfn|medicare\s+card|ird(?:\s+number)?|nhi|passport(?:\s+(?:no|number|nr|n[º°o]))?|passeport|reisepass|pasaporte|"
    r"voter\s+id|epic|driving\s+licen[cs]e\s+(?:no|number)"
)
# a value: upper-case letters and digits with inner separators, at least five digits
_VALUE = r"(?P<v>(?=(?:[A-Z\-./ ]*\d){5})[A-Z0-9](?:[A-Z0-9]|[ .\-/](?=[A-Z0-9])){4,22})"
# between a label and its value: punctuation, "no.", "n°", "#", and a few words ("it is", "you wrote")
_GAP = (
    r"(?:[ \t]*(?:[:#=,(]|n[º°o]\.?|nr\.?|no\.?|number|(?i:is|was|it|you|wrote|sent|of|the|my|his|her|their|"
    r"card|copy|shows|reads|as|on\s+file|\((?:[A-Z]{2})\)))){0,6}[ \t]*"
)


def national_id_recognizer() -> RuleRecognizer:
    """National ids: labelled values, and checksum-verified distinctive formats without a label."""
    return RuleRecognizer(
        entity="NATIONAL_ID",
        name="NationalIdRecognizer",
        rules=[
            Rule(
                "labelled",
                rf"(?<![\w-])(?i:{_LABELS})(?![\w-]){_GAP}{_VALUE}(?![A-Za-z0-9])",
                0.85,
            ),
            Rule("cpf", r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?![\d.])", 0.9, validate=cpf_ok),
            Rule("dni nie", r"(?<![\w-])[XYZ]?\d{7,8}-?[A-Z](?![\w-])", 0.75, validate=dni_ok),
            Rule(
                "uk nino",
                r"(?<![\w-])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D](?![\w-])",
                0.8,
            ),
            Rule("in pan", r"(?<![\w-])[A-Z]{3}[ABCFGHLJPT][A-Z]\d{4}[A-Z](?![\w-])", 0.75),
            Rule(
                "it codice fiscale",
                r"(?<![\w-])[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z](?![\w-])",
                0.9,
                flags=re.IGNORECASE,
            ),
            Rule("aadhaar", r"(?<![\d-])[2-9]\d{3}[ -]\d{4}[ -]\d{4}(?![\d-])", 0.75, validate=aadhaar_ok),
            Rule("jmbg", r"(?<!\d)\d{13}(?!\d)", 0.6, validate=jmbg_ok),
            Rule("mykad", r"(?<![\d-])\d{6}-\d{2}-\d{4}(?![\d-])", 0.75, validate=_mykad_ok),
        ],
        context=["national", "identity", "passport", "tax", "citizen", "id"],
    )
