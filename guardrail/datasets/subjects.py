"""Data subjects of a dataset: which records name which subject (``--subject-field``), so that dataset
events list the subjects an export included (Art. 15 and Art. 17 look-ups) and the vault knows whose
tokens it holds (an erasure deletes them).

A record names its subject in one field (``patient_id``, or a dotted path ``meta.patient``). The subject
is recorded only as its keyed reference, ``Keyring.token(tenant, "subject-ref", id, length=16)`` (the one
RAG events use); the identifier itself is never written anywhere.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.errors import ConfigError

if TYPE_CHECKING:
    from guardrail.keys import Keyring

__all__ = ["SubjectLinker", "subject_field_value"]

_TOKEN = re.compile(r"<[A-Za-z][A-Za-z0-9_]{0,63}_[0-9A-Z]{6,20}>")


def subject_field_value(data: Any, field: str) -> str | None:
    """The value at ``field`` (a key, or a dotted path) of a record, as text; None when absent or empty."""
    value = data
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


class SubjectLinker:
    """Collects the subject references of a dataset run and links the vault tokens of each record to its
    subject.

    Args:
        keyring: computes subject references.
        tenant: the tenant of the subjects.
        field: the record field that names the data subject.
        vault: the run's token vault (its tokens are linked to subjects), or None for keyed tokens.
    """

    def __init__(
        self, keyring: Keyring | str | os.PathLike[str], tenant: str, field: str, vault: Any = None
    ) -> None:
        if not field or not field.strip():
            raise ConfigError("--subject-field is empty: give the record field that names the data subject")
        from guardrail.keys import as_keyring

        self.keyring = as_keyring(keyring)
        self.tenant = tenant
        self.field = field
        self.vault = vault if hasattr(vault, "link_subject") else None
        self._refs: set[str] = set()
        self.unnamed = 0

    def ref(self, subject: str) -> str:
        """The keyed reference of ``subject``."""
        return self.keyring.token(self.tenant, "subject-ref", subject, length=16)

    def observe(self, record_data: Any, output_data: Any) -> None:
        """One processed record: note its subject, link the vault tokens of its output to the subject."""
        subject = subject_field_value(record_data, self.field)
        if subject is None:
            self.unnamed += 1
            return
        ref = self.ref(subject)
        self._refs.add(ref)
        if self.vault is not None:
            text = json.dumps(output_data, ensure_ascii=False, default=str)
            for token in set(_TOKEN.findall(text)):
                self.vault.link_subject(token, ref)

    def add_from(self, path: Path, *, format: Any = None) -> None:
        """Collect the subjects of every record of ``path`` (after a resumed run, whose earlier records
        this process did not see)."""
        from guardrail.datasets.formats import iter_records

        for record in iter_records(path, format=format, on_error="skip"):
            subject = subject_field_value(record.data, self.field)
            if subject is not None:
                self._refs.add(self.ref(subject))

    def refs(self) -> list[str]:
        """The subject references seen, sorted."""
        return sorted(self._refs)
