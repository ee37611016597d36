"""The organisation's own details for the record of processing (``report ropa --org org.yaml``).

What the audit log and the policies cannot know (controller, DPO, categories of data subjects, retention
and transfers as the organisation has decided them) comes from this file::

    controller: {name: "Riverside Clinic", address: "1 River St, Springfield", contact: "privacy@example.org"}
    dpo: {name: "A. Data", contact: "dpo@example.org"}
    joint_controller: none
    representative: none
    data_subjects: [patients, staff]
    retention: "clinical notes 10 years after the last visit; audit log 6 years"
    transfers: "none outside the EEA"
    organisational_measures: "annual training, confidentiality clauses, incident response plan"

Fields left out stay TO BE COMPLETED in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from guardrail.reports.model import ReportError

__all__ = ["Organisation", "load_org"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    """A name with an address and a contact."""

    name: str
    address: str | None = None
    contact: str | None = None

    def describe(self) -> str:
        return ", ".join(p for p in (self.name, self.address, self.contact) if p)


class Organisation(_Model):
    """The controller's details for Art. 30(1)(a), (c), (e), (f) and (g)."""

    controller: Contact | None = None
    dpo: Contact | None = None
    joint_controller: Contact | str | None = None
    representative: Contact | str | None = None
    data_subjects: list[str] = []
    retention: str | None = None
    transfers: str | None = None
    organisational_measures: str | None = None


def load_org(path: str | Path) -> Organisation:
    """Read and validate an organisation file.

    Raises:
        ReportError: unreadable, not YAML, or a field that does not fit (named with its path).
    """
    file = Path(path)
    try:
        data: Any = yaml.safe_load(file.read_text("utf-8"))
    except OSError as exc:
        raise ReportError(f"{file}: cannot read the --org file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise ReportError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{file}:1: the --org file is a mapping (controller, dpo, retention, transfers...)")
    try:
        return Organisation.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        at = ".".join(str(p) for p in error["loc"])
        reason = error["msg"]
        if error["type"] == "extra_forbidden":
            reason = (
                "unknown key; known: controller, dpo, joint_controller, representative, data_subjects, "
                "retention, transfers, organisational_measures"
            )
        raise ReportError(f"{file}: --org at {at}: {reason}") from None
