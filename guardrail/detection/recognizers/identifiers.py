"""Identifier recognizers: medical record numbers, health plan ids, accounts, licences and certificates,
vehicles, devices, fax numbers, phone numbers.

Most identifiers have no checksum and no fixed shape, so they are found by their label ("MRN:",
"Member ID #", "Serial No.") and the value that follows it; where a checksum exists (VIN, DEA, NPI,
IMEI) it is verified, and a verified value needs no label.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from guardrail.detection.recognizers.base import Rule, RuleRecognizer, luhn_ok

__all__ = ["PHONE_CONTEXT", "context_id_recognizers", "identifier_recognizers", "labelled", "phone_ok"]

# words near a phone number that make a weak match (a digit group, a valid national number) strong
PHONE_CONTEXT = (
    "phone call tel telephone mobile cell number contact reach text dial office home work answer registered "
    "whatsapp sms ring line extension"
).split()

# A value after a label: letters, digits and inner separators, at least two digits somewhere.
_VALUE = r"(?P<v>(?=[A-Za-z0-9-]*\d[A-Za-z0-9-]*\d)[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){3,24})"
# "number", "no.", "#", "id" between a label and its value, a few words that only say when or how
# ("is my MRN still 48213377", "account number was changed to ..."), then an optional ":" or "is".
_FILLER = (
    r"(?:\s+(?i:still|now|currently|was|were|is|are|be|should|will|remain|remains|stays|listed|as|shown|"
    r"showing|reads|says|actually|again|it's|its|it|changed|updated|corrected|new|old|the|same|correct|right))"
)
_JOIN = (
    r"(?:\s*(?:(?i:number|num|nbr|no)\.?|#|(?i:id)\b))?"
    rf"{_FILLER}{{0,3}}"
    r"\s*(?:[:#=]|(?i:\bis\b|\bof\b|\bto\b|\bat\b))?\s*#?\s*"
)


def labelled(labels: str, value: str = _VALUE) -> str:
    """A regex: one of ``labels`` (case-insensitive, as a whole word) then the value (group ``v``)."""
    return rf"(?<![A-Za-z])(?i:{labels})(?![A-Za-z]){_JOIN}{value}(?![A-Za-z0-9])"


def _has_digits(n: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        return sum(c.isdigit() for c in value) >= n

    return check


_VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]
_VIN_VALUES = {**{str(d): d for d in range(10)}, **dict(zip("ABCDEFGH", range(1, 9), strict=True))}
_VIN_VALUES.update(dict(zip("JKLMN", range(1, 6), strict=True)))
_VIN_VALUES.update({"P": 7, "R": 9})
_VIN_VALUES.update(dict(zip("STUVWXYZ", range(2, 10), strict=True)))


def vin_ok(value: str) -> bool:
    """The North American VIN check digit (position 9)."""
    vin = value.upper()
    if len(vin) != 17 or any(c not in _VIN_VALUES for c in vin):
        return False
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return vin[8] == check


def dea_ok(value: str) -> bool:
    """The DEA registration number checksum: 2 letters, 7 digits."""
    v = value.upper()
    if not re.fullmatch(r"[A-Z][A-Z9]\d{7}", v):
        return False
    d = [int(c) for c in v[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def npi_ok(value: str) -> bool:
    """The NPI check digit: Luhn over ``80840`` + the 10 digits."""
    digits = re.sub(r"\D", "", value)
    return len(digits) == 10 and digits[0] in "12" and luhn_ok("80840" + digits)


def imei_ok(value: str) -> bool:
    """An IMEI: 15 digits passing Luhn."""
    digits = re.sub(r"\D", "", value)
    return len(digits) == 15 and luhn_ok(digits)


_PHONE_CORE = (
    r"(?:\+\d{1,3}[\s.-]?)?(?:\(0\)\s?)?(?:\(\d{1,5}\)[\s.-]?)?\d{1,5}(?:[\s.-]\d{1,8}){1,5}"
    r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?"
)
_DATE_PREFIX = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./](?:19|20)\d\d(?!\d)")
_IPV4_LIKE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_DATE_LIKE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}$")


def phone_ok(value: str) -> bool:
    """Plausible phone number: 7 to 15 digits before any extension, not shaped like a date."""
    core = re.split(r"(?i)\s?(?:x|ext\.?|extension)\s?\d", value)[0]
    digits = sum(c.isdigit() for c in core)
    if not 7 <= digits <= 15:
        return False
    core = core.strip()
    return not (_DATE_LIKE.match(core) or _DATE_PREFIX.match(core) or _IPV4_LIKE.match(core))


# Identifiers known by their context: orders, parcels, bookings, tickets, cases, claims, customers,
# employees (ACCOUNT_NUMBER: an id tied to a person), and ids of rooms, beds, runs, jobs, messages,
# interpreters (OTHER_ID). A value has a digit and is written in capitals and digits, so words never are.
_CONTEXT_LABELS = (
    r"order|orders|pedido|commande|bestellung|ordine|tracking|track(?:ing)?\s+(?:no|number|id)|shipment|parcel|"
    r"waybill|consignment|awb|booking|confirmation|reservation|itinerary|pnr|ticket|case|claim|incident|"
    r"alert|application|reference|ref|customer|cust\.?|client|member(?:ship)?|employee|emp\.?|staff|payroll|"
    r"pers\.?-?nr\.?|personnel|personalnummer|uid|contract|invoice|subscription|loyalty|policy|loan|"
    r"mortgage|acc(?:ount)?\.?|a/c|sort\s+code|iban|wallet|request|req\.?\s+id|dispute|complaint|"
    r"pir|return|rma|refund|quote|quotation|proposal|opportunity|deal|lead|account\s+id|badge"
)
_CONTEXT_VALUE = r"(?P<v>#?(?=[A-Z0-9 ./-]*\d)(?=(?:[^\s]*\d){3}|[A-Z0-9]{6,})[A-Z0-9](?:[A-Z0-9]|[-/.](?=[A-Z0-9])|[ ](?=\d{3,}\b)){3,30})"
_CONTEXT_GAP = (
    r"(?:\s*(?:(?i:number|num|nbr|no|nr|n[º°o]|id|ref(?:erence)?|code|#)\.?))*"
    r"(?:\s+(?i:for|any|all|follow-up|further|queries|is|was|will|be|now|still|the|your|my|our|his|her|of|as|on|in))*"
    r"\s*(?:[:#=(]|(?i:\bis\b))?\s*"
)
_OTHER_LABELS = (
    r"room|rm|bed|bay|cubicle|run|interp(?:reter)?|job|msg|message|rx|prescription|script|client\s+id|"
    r"lockbox(?:\s+code)?|key\s*safe(?:\s+code)?|gate\s+code|door\s+code|access\s+code|locker|ID"
)
_QUESTION = (
    r"(?i:(?:order|booking|confirmation|reservation|tracking|reference|ticket|case|claim|customer|account|"
    r"member|policy|membership|application|employee)\b[^\n?]{0,40}\?)[^\n]{0,60}\n+[ \t]*"
    r"(?:[A-Z][\w ]{0,15}:[ \t]*)?(?i:(?:it'?s|it\s+is|sure|yes|ok|here)[,:]?\s+)?"
)
_ANSWER_ID = r"(?P<v>#?(?=[A-Z0-9-]*\d)[A-Z0-9](?:[A-Z0-9]|[- ](?=[A-Z0-9])){4,24})(?![\w-])"


def context_id_recognizers() -> list[RuleRecognizer]:
    """Ids named by the words before them, or given as the answer to a question asking for one."""
    return [
        RuleRecognizer(
            entity="ACCOUNT_NUMBER",
            name="ContextIdRecognizer",
            rules=[
                Rule(
                    "context labelled",
                    rf"(?<![\w-])(?i:{_CONTEXT_LABELS})(?![\w-]){_CONTEXT_GAP}{_CONTEXT_VALUE}(?![\w-])",
                    0.8,
                ),
                # "Order number?" / "User: NH-771-20458": the id answering the question before it
                Rule("answer to question", rf"{_QUESTION}{_ANSWER_ID}", 0.8),
                # "EMP-7731", "CUST-004512", "ORD-118834-GR": an id with the prefix of what it numbers
                Rule(
                    "prefixed id",
                    r"(?<![\w-])(?:EMP|CUS|CUST|ORD|INV|TKT|CASE|CLM|ACC|ACCT|MEM|MBR|PAT|REF|RMA|SR|CS|BKG|"
                    r"RES|APP|LN|POL|SUB|USR|UID|STU|EE)-?\d{3,12}(?:-[A-Z0-9]{1,6})?(?![\w-])",
                    0.7,
                ),
                # "cus_Nf3kQ2x9", "acct_1Mx...", "usr-88213": prefixed keys of payment and SaaS systems
                Rule(
                    "prefixed key",
                    r"(?<![\w-])(?:cus|acct|usr|user|cust|uid|emp|ord|mem|sub)_(?=[A-Za-z]*\d)[A-Za-z0-9]{6,32}(?![\w-])",
                    0.8,
                ),
            ],
            context=["order", "tracking", "booking", "ticket", "case", "claim", "customer", "employee"],
        ),
        RuleRecognizer(
            entity="ACCOUNT_NUMBER",
            name="CardEndingRecognizer",
            rules=[
                # the last digits of a card or an account: "card ending 4431", "account ending in 0917"
                Rule(
                    "ending digits",
                    r"(?i:\b(?:card|account|acct|visa|mastercard|amex|debit|credit)\b[^\n.]{0,20}?\b(?:ending|"
                    r"ends)(?:\s+(?:in|with))?|last\s+(?:four|4)(?:\s+digits)?(?:\s+(?:of|are|is))?)[\s:#*x•.]*"
                    r"(?P<v>\d{4})(?!\d)",
                    0.8,
                )
            ],
        ),
        RuleRecognizer(
            entity="OTHER_ID",
            name="OtherIdRecognizer",
            rules=[
                Rule(
                    "labelled",
                    rf"(?<![\w-])(?i:{_OTHER_LABELS})(?![\w-])(?:\s*(?:(?i:number|no|nr|id)\.?|#))*\s*[:#]?\s*#?"
                    r"(?P<v>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){1,14})(?![\w-])",
                    0.7,
                    validate=_has_digits(1),
                ),
                # "interpreter Beatriz (#22713)"
                Rule("interpreter number", r"(?i:interp\w*)\s+[A-Z][\w'-]+\s*\(#?(?P<v>\d{3,10})\)", 0.8),
            ],
        ),
    ]


def identifier_recognizers() -> list[RuleRecognizer]:
    """The identifier recognizers guardrail adds to Presidio's."""
    mrn_labels = (
        r"MRN|MR\s?#|medical\s+record(?:\s+(?:number|no|#))?|med\.?\s*rec(?:ord)?\.?|chart|"
        r"(?:patient\s+|health\s+|hospital\s+|clinic\s+)?record\s+(?:number|no|#|id)|"
        r"(?:patient|medical|hospital)\s+file|"
        r"patient\s+(?:id|identifier|number|no)|(?:patient|pt)(?=\s*#)|hospital\s+(?:number|no|id)|unit\s+number|case\s+(?:number|no)|"
        # other record identifiers (HIPAA (R)): accession, specimen, encounter, visit and order numbers
        r"accession|specimen|encounter|visit\s+(?:id|number|no)|FIN|CSN|order\s+(?:id|number|no)|requisition|"
        # label variants: "MR: 00418832", "MR No.", "EMR #", "Hosp #", "Pt ID", "Med Rec #", "Acc:", "Req#"
        r"MR|EMR|EHR|Hosp(?:ital)?(?=\s*#)|Pt\.?\s+ID|Med\s+Rec|acc|req"
    )
    plan_labels = (
        r"health\s*plan(?:\s+beneficiary)?|beneficiary|member(?:ship)?|subscriber|policy(?:\s+holder)?|"
        r"insurance(?:\s+(?:policy|member|plan|card))?|insurer|group|medicare(?:\s+beneficiary)?|"
        r"medicaid|MBI|HICN|plan|insur(?:ance)?\s+id|payer\s+id|coverage\s+id"
    )
    account_labels = (
        r"account|acct\.?|a/c|billing\s+account|bank\s+account|checking|savings|routing|"
        r"customer\s+(?:id|number|no)|invoice|claim"
    )
    licence_labels = (
        r"licen[cs]e|driver'?s?\s+licen[cs]e|DL|certificate|cert\.?|certification|registration|"
        r"permit|DEA|NPI|passport|badge|employee\s+(?:id|number|no)|staff\s+(?:id|number)|"
        r"student\s+(?:id|number)|tax\s+(?:id|number)|TIN|EIN|national\s+id|ID\s+card|lic|CDL|CLIA"
    )
    vehicle_labels = (
        r"VIN|vehicle\s+identification|licen[cs]e\s+plate|plate|tag|registration\s+plate|reg\.?\s+plate|"
        r"reg|registration|immatricul[ée]e?|immatriculation|kenteken|kennzeichen|targa|matr[íi]cula"
    )
    device_labels = (
        r"serial|S/N|SN|device(?:\s+(?:id|identifier|serial))?|UDI|IMEI|MEID|ESN|implant|pacemaker|"
        r"pump|model\s+and\s+serial|asset\s+tag|lot|transmitter|sensor|receiver"
    )
    two = _has_digits(2)
    return [
        RuleRecognizer(
            entity="MEDICAL_RECORD_NUMBER",
            name="MedicalRecordNumberRecognizer",
            rules=[Rule("mrn labelled", labelled(mrn_labels), 0.9, validate=_has_digits(3))],
            context=["mrn", "record", "chart", "patient"],
        ),
        RuleRecognizer(
            entity="US_SSN",
            name="LabelledSsnRecognizer",
            rules=[
                Rule(
                    "ssn labelled",
                    labelled(
                        r"SSN|SS#|social\s+security(?:\s+(?:number|no|#))?|soc\.?\s*sec\.?",
                        r"(?P<v>\d{3}[- ]?\d{2}[- ]?\d{4})",
                    ),
                    0.9,
                )
            ],
        ),
        RuleRecognizer(
            entity="HEALTH_PLAN_ID",
            name="HealthPlanIdRecognizer",
            rules=[
                Rule("plan labelled", labelled(plan_labels), 0.85, validate=_has_digits(3)),
                # "Health plan ID: HP 99123456": a short letter prefix, a space, the number
                Rule("plan prefix number", labelled(plan_labels, r"(?P<v>[A-Z]{1,4} \d{5,14})"), 0.85),
                # Medicare Beneficiary Identifier (CMS format), 11 characters
                Rule(
                    "mbi",
                    r"\b[1-9][AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?[AC-HJKMNP-RT-Y][AC-HJKMNP-RT-Y0-9]\d-?"
                    r"[AC-HJKMNP-RT-Y]{2}\d{2}\b",
                    0.6,
                ),
            ],
            context=["member", "plan", "insurance", "beneficiary", "policy", "medicare", "medicaid"],
        ),
        RuleRecognizer(
            entity="ACCOUNT_NUMBER",
            name="AccountNumberRecognizer",
            rules=[Rule("account labelled", labelled(account_labels), 0.85, validate=_has_digits(4))],
            context=["account", "acct", "bank", "billing"],
        ),
        RuleRecognizer(
            entity="LICENSE_NUMBER",
            name="LicenseNumberRecognizer",
            rules=[
                Rule("licence labelled", labelled(licence_labels), 0.85, validate=two),
                # "lic R 188214": a short letter prefix, a space, the number
                Rule("licence prefix number", labelled(licence_labels, r"(?P<v>[A-Z]{1,3} \d{4,12})"), 0.85),
                Rule("npi labelled", labelled("NPI", r"(?P<v>\d{10})"), 0.9, validate=npi_ok),
            ],
            context=["license", "licence", "certificate", "dea", "npi", "registration"],
        ),
        # anything shaped like an e-mail address, whatever its top-level domain (Presidio's recognizer
        # validates the domain; an unknown one would otherwise leave the address to URL fragments)
        RuleRecognizer(
            entity="EMAIL_ADDRESS",
            name="EmailShapeRecognizer",
            rules=[Rule("email shape", r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+(?![\w-])", 0.6)],
        ),
        RuleRecognizer(
            entity="MEDICAL_LICENSE",
            name="DeaNumberRecognizer",
            rules=[Rule("dea", r"\b[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}\b", 0.9, validate=dea_ok)],
            context=["dea", "license", "licence", "prescriber", "registration"],
        ),
        RuleRecognizer(
            entity="VEHICLE_ID",
            name="VehicleIdRecognizer",
            rules=[
                Rule("vin", r"\b(?P<v>[A-HJ-NPR-Z0-9]{17})\b", 0.95, flags=re.IGNORECASE, validate=vin_ok),
                Rule("vin labelled", labelled("VIN", r"(?P<v>[A-HJ-NPR-Z0-9]{11,17})"), 0.9),
                # "VIN in the service book: ...": a VIN-shaped value after a VIN label in the same line
                Rule("vin line", r"\bVIN\b[^\n:]{0,40}:\s*(?P<v>[A-HJ-NPR-Z0-9]{17})\b", 0.9),
                Rule(
                    "plate labelled",
                    labelled(
                        vehicle_labels,
                        r"(?P<v>(?=[A-Z0-9 -]*\d)[A-Z0-9]{1,4}[ -]?[A-Z0-9]{1,5}(?:[ -][A-Z0-9]{1,4})?)",
                    ),
                    0.85,
                ),
            ],
            context=["vehicle", "vin", "plate", "car", "truck"],
        ),
        RuleRecognizer(
            entity="DEVICE_ID",
            name="DeviceIdRecognizer",
            rules=[
                Rule("serial labelled", labelled(device_labels), 0.85, validate=two),
                Rule(
                    "imei",
                    labelled("IMEI|MEID", r"(?P<v>\d{2}[- ]?\d{6}[- ]?\d{6}[- ]?\d)"),
                    0.95,
                    validate=imei_ok,
                ),
                # GS1 unique device identifier: (01) GTIN then application identifiers
                Rule("udi gs1", r"\(01\)\d{14}(?:\(\d{2,4}\)[A-Za-z0-9]{1,20})*", 0.95),
                Rule("mac address", r"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b", 0.8),
            ],
            context=["serial", "device", "implant", "pacemaker", "pump", "udi", "imei"],
        ),
        RuleRecognizer(
            entity="FAX_NUMBER",
            name="FaxNumberRecognizer",
            rules=[
                Rule(
                    "fax labelled",
                    labelled(r"fax|facsimile|telefax", rf"(?P<v>{_PHONE_CORE})"),
                    0.95,
                    validate=phone_ok,
                )
            ],
        ),
        RuleRecognizer(
            entity="PHONE_NUMBER",
            name="PhoneNumberRecognizer",
            rules=[
                # international or bracketed forms are distinctive on their own
                Rule("phone intl", rf"(?<![\w+])(?=[+(]){_PHONE_CORE}(?!\w)", 0.7, validate=phone_ok),
                Rule(
                    "phone us",
                    r"(?<![\w+])\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?!\w)",
                    0.6,
                    validate=phone_ok,
                ),
                Rule("phone grouped", rf"(?<![\w+.-]){_PHONE_CORE}(?![\w-])", 0.35, validate=phone_ok),
                Rule(
                    "phone groups",
                    r"(?<![\w+.-])\d{1,5}(?:[ .-]\d{1,8}){2,5}(?![\w-])",
                    0.45,
                    validate=phone_ok,
                ),
                Rule(
                    "phone trunk 0",
                    r"(?<![\w+.-])0\d{1,4}(?:[ .-]\d{2,8}){1,4}(?![\w-])",
                    0.5,
                    validate=phone_ok,
                ),
                Rule("phone plain", r"(?<![\w+.-])(?:\+|00|0)\d{8,13}(?![\w-])", 0.3, validate=phone_ok),
                # an internal extension alone: "Handler: K. Doyle, ext. 4471"
                Rule("extension", r"(?<![\w.])(?i:ext\.?|extension)[ \t]?(?P<v>\d{2,6})(?![\w-])", 0.6),
                Rule(
                    "phone labelled",
                    labelled(
                        r"phone|tel|telephone|mobile|cell|call|contact|reach(?:ed)?\s+at|pager|landline|whatsapp",
                        rf"(?P<v>{_PHONE_CORE}|\+?\d{{7,15}})",
                    ),
                    0.9,
                    validate=phone_ok,
                ),
            ],
            context=PHONE_CONTEXT,
        ),
    ]
