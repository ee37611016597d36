"""Structure-aware detection: in JSON, CSV and key=value log lines, the field name tells what a value is.

``{"name": "Nadia Rahman", "user_id": 88213}``, a CSV export under the header
``id,first_name,last_name,email,dob`` and ``user=jdoe ip=10.1.2.3`` carry no prose context: the small NER
model misses most of their values and patterns see bare numbers. Here a field whose (normalised) name
says it holds a person's name, e-mail, phone, username, id, date of birth, address part or coordinates
has its value reported as that entity, whatever the value looks like. GPS coordinates
(``59.3293, 18.0686``) are found in prose too.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import LocalRecognizer, RecognizerResult

from guardrail.detection.recognizers.base import result_metadata

__all__ = ["FIELD_ENTITIES", "StructuredFieldRecognizer", "field_entity"]

_FIELDS: dict[str, tuple[str, ...]] = {
    "PERSON": (
        "name", "fullname", "firstname", "givenname", "forename", "lastname", "surname", "familyname",
        "middlename", "maidenname", "contact", "contactname", "customername", "clientname", "patient",
        "patientname", "employeename", "employee", "owner", "assignee", "author", "recipient", "sender",
        "displayname", "cardholder", "holder", "accountholder", "nextofkin", "emergencycontact", "manager",
        "spouse", "guardian", "signedby", "createdby", "reporter", "requester", "agent", "rep",
    ),
    "EMAIL_ADDRESS": ("email", "mail", "emailaddress", "useremail", "contactemail", "workemail"),
    "PHONE_NUMBER": (
        "phone", "phonenumber", "mobile", "mobilephone", "cell", "cellphone", "tel", "telephone", "msisdn",
        "homephone", "workphone", "contactphone", "whatsapp", "fax",
    ),
    "USERNAME": ("user", "username", "login", "handle", "screenname", "nick", "nickname", "userlogin", "uid"),
    "ACCOUNT_NUMBER": (
        "id", "userid", "customerid", "custid", "accountid", "accountnumber", "account", "employeeid", "empid",
        "employeeno", "employeenumber", "staffid", "memberid", "orderid", "ordernumber", "clientid",
        "patientid", "customer", "customerno", "customernumber", "personid", "contactid", "profileid",
        "subscriberid", "policynumber", "policyid", "ticketid", "caseid", "claimid", "trackingnumber",
    ),
    "DATE_TIME": (
        "dob", "dateofbirth", "birthdate", "birthday", "born", "startdate", "hiredate", "hired", "joined",
        "enddate", "terminationdate", "dateofdeath", "dod", "admitted", "discharged", "visitdate",
    ),
    "LOCATION": (
        "address", "addr", "street", "streetaddress", "address1", "address2", "addressline1", "addressline2",
        "homeaddress", "city", "town", "postcode", "postalcode", "zip", "zipcode", "region", "county",
        "district", "suburb", "neighbourhood", "neighborhood", "lat", "latitude", "lon", "lng",
        "longitude", "geo", "coordinates", "coords", "gps", "homecity", "birthplace",
    ),
    "IP_ADDRESS": ("ip", "ipaddress", "clientip", "remoteaddr", "remoteip", "sourceip", "srcip"),
    "NATIONAL_ID": ("nationalid", "nin", "nino", "taxid", "tin", "passport", "passportnumber", "idnumber"),
    "US_SSN": ("ssn", "socialsecuritynumber"),
    "IBAN_CODE": ("iban",),
    "CREDIT_CARD": ("card", "cardnumber", "creditcard", "pan"),
    "ORGANIZATION": ("employer", "company", "organisation", "organization", "school", "university"),
    "AGE": ("age",),
}  # fmt: skip

#: normalised field name -> entity
FIELD_ENTITIES: dict[str, str] = {name: entity for entity, names in _FIELDS.items() for name in names}

_NOT_VALUES = frozenset({"", "null", "none", "nan", "n/a", "na", "-", "true", "false", "unknown", "[]", "{}"})


def field_entity(field: str) -> str | None:
    """The entity a field named ``field`` holds (``"First Name"``, ``first_name`` and ``firstName`` alike)."""
    key = re.sub(r"[^a-z0-9]", "", field.casefold())
    return FIELD_ENTITIES.get(key)


_JSON_PAIR = re.compile(
    r"[\"'](?P<k>[A-Za-z_][\w .-]{0,40})[\"']\s*:\s*(?:\"(?P<s>(?:[^\"\\\n]|\\.){1,200})\"|'(?P<q>[^'\n]{1,200})'|"
    r"(?P<n>-?[\w.+-]{1,40}))"
)
_KEY_VALUE = re.compile(
    r"(?<![\w.-])(?P<k>[A-Za-z_][\w.-]{0,40})=(?:\"(?P<s>[^\"\n]{1,200})\"|(?P<n>[^\s,;&\"]{1,120}))"
)
_COORDINATES = re.compile(
    r"(?<![\w.-])(?P<v>[-+]?(?:[1-8]?\d\.\d{3,8}|90\.0{3,8})°?\s*[NS]?,\s*[-+]?(?:1[0-7]\d|\d{1,2})\.\d{3,8}°?\s*[EW]?)(?![\w.])"
)
_HEADER_FIELD = re.compile(r"^[A-Za-z_][\w .()-]{0,40}$")


def _split_csv(line: str) -> list[tuple[int, int]]:
    """Field spans of one CSV line (quotes respected), relative to the line; quotes excluded."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(line)
    while i <= n:
        if i < n and line[i] == '"':
            j = i + 1
            while j < n and not (line[j] == '"' and (j + 1 == n or line[j + 1] != '"')):
                j += 2 if line[j] == '"' else 1
            spans.append((i + 1, min(j, n)))
            k = line.find(",", j)
            i = n + 1 if k < 0 else k + 1
        else:
            k = line.find(",", i)
            end = n if k < 0 else k
            spans.append((i, end))
            i = n + 1 if k < 0 else k + 1
    return spans


class StructuredFieldRecognizer(LocalRecognizer):
    """Values of JSON fields, key=value pairs and CSV columns whose names say what they hold."""

    def __init__(self, *, entities: list[str]) -> None:
        super().__init__(
            supported_entities=entities, supported_language="en", name="StructuredFieldRecognizer"
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[RecognizerResult]:
        wanted = set(entities) & set(self.supported_entities)
        meta = result_metadata(self)
        out: list[RecognizerResult] = []

        def add(entity: str | None, start: int, end: int, score: float = 0.8) -> None:
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if entity in wanted and text[start:end].casefold() not in _NOT_VALUES:
                out.append(RecognizerResult(entity, start, end, score, recognition_metadata=dict(meta)))

        if ":" in text or "=" in text:
            for pattern in (_JSON_PAIR, _KEY_VALUE):
                for m in pattern.finditer(text):
                    entity = field_entity(m.group("k"))
                    if entity is None:
                        continue
                    group = next(
                        g for g in ("s", "q", "n") if g in m.re.groupindex and m.group(g) is not None
                    )
                    add(entity, m.start(group), m.end(group))
        if text.count(",") >= 2 and "\n" in text:
            self._csv(text, add)
        if "LOCATION" in wanted and "." in text:
            for m in _COORDINATES.finditer(text):
                add("LOCATION", m.start("v"), m.end("v"), 0.75)
        return out

    @staticmethod
    def _csv(text: str, add: Any) -> None:
        header: list[str | None] | None = None
        offset = 0
        for line in text.split("\n"):
            spans = _split_csv(line) if line.count(",") >= 2 else []
            if not spans:
                header = None
            elif header is None or len(spans) < 2:
                names = [line[a:b].strip() for a, b in spans]
                if all(_HEADER_FIELD.match(n) for n in names):
                    mapped = [field_entity(n) for n in names]
                    header = mapped if sum(e is not None for e in mapped) >= 2 else None
            else:
                for (a, b), entity in zip(spans, header, strict=False):
                    if entity is not None:
                        add(entity, offset + a, offset + b)
            offset += len(line) + 1
