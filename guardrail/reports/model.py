"""The report model: a report is a title, an integrity verdict and sections of typed blocks.

Every renderer (HTML, Markdown, JSON) walks the same blocks, so the three formats carry the same
content by construction. Blocks hold only counts, pseudonymous references, ids, policy names and times:
builders never put record content into a report (the log holds none to begin with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from guardrail.errors import ConfigError

__all__ = [
    "Blank",
    "Block",
    "Cell",
    "Chart",
    "Column",
    "Facts",
    "Integrity",
    "Note",
    "Period",
    "Report",
    "ReportError",
    "Section",
    "Series",
    "Table",
]

REPORT_FORMAT = "guardrail.report/1"


class ReportError(ConfigError):
    """A report cannot be built or written as asked (bad option, unknown format, unreadable input)."""


@dataclass(frozen=True, slots=True)
class Blank:
    """A field the audit log cannot know: left for the controller to fill in, clearly marked."""

    hint: str


Cell = str | int | float | None | Blank
Tone = Literal["info", "ok", "warning", "danger", "blank"]


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: ``key`` in JSON rows, ``label`` for people."""

    key: str
    label: str
    numeric: bool = False


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of cells under named columns. ``total`` says how many rows exist when only some are kept."""

    id: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    empty: str = "none in the period"
    note: str = ""
    total: int | None = None


@dataclass(frozen=True, slots=True)
class Series:
    """One data series of a chart; ``tone`` picks its colour (ok, danger, warning, info)."""

    name: str
    values: tuple[int, ...]
    tone: Tone = "info"


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart over categories: ``columns`` (stacked, e.g. over time) or ``bars`` (grouped, horizontal)."""

    id: str
    title: str
    kind: Literal["columns", "bars"]
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Facts:
    """Name/value pairs (a definition list)."""

    id: str
    title: str
    items: tuple[tuple[str, Cell], ...]


@dataclass(frozen=True, slots=True)
class Note:
    """A sentence for the reader: a caveat, a legal note, a warning."""

    text: str
    tone: Tone = "info"


Block = Table | Chart | Facts | Note


@dataclass(frozen=True, slots=True)
class Section:
    """A titled group of blocks with a stable ``id`` (the JSON key and the HTML anchor)."""

    id: str
    title: str
    blocks: tuple[Block, ...]
    intro: str = ""


@dataclass(frozen=True, slots=True)
class Integrity:
    """The verdict of :func:`guardrail.audit.verify` over the log the report was built from.

    Attributes:
        ok: no record or checkpoint is damaged.
        status: ``VERIFIED``, ``VERIFIED (WARNING)`` (a torn final record, a crash artefact) or ``FAILED``.
        records: records verified.
        checkpoints_verified: signed checkpoints whose signature and root matched.
        covered: records covered by the largest verified checkpoint.
        first_bad_index: the first damaged record, when the damage is in a record.
        kind: the damage kind, None when intact.
        message: the verifier's one line.
        records_read: records the report read (differs from ``records`` when the log grew meanwhile).
    """

    ok: bool
    status: str
    records: int
    checkpoints_verified: int
    covered: int
    first_bad_index: int | None
    kind: str | None
    message: str
    records_read: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "records": self.records,
            "checkpoints_verified": self.checkpoints_verified,
            "covered": self.covered,
            "first_bad_index": self.first_bad_index,
            "kind": self.kind,
            "message": self.message,
            "records_read": self.records_read,
        }


@dataclass(frozen=True, slots=True)
class Period:
    """The window asked for (``since`` inclusive, ``until`` exclusive) and the events actually found."""

    since: str | None = None
    until: str | None = None
    first_event: str | None = None
    last_event: str | None = None

    def describe(self) -> str:
        asked = f"{self.since or 'the beginning'} to {self.until or 'the end'}"
        if self.first_event is None:
            return f"{asked}: no events"
        return f"{asked}: events from {self.first_event} to {self.last_event}"


@dataclass(frozen=True, slots=True)
class Report:
    """A built report, ready for :func:`guardrail.reports.write_report`.

    Attributes:
        kind: ``activity``, ``ropa``, ``dsar`` or ``disclosures``.
        title: the report's title.
        generated_at: when it was built (UTC, audit time format).
        source: the audit log directory, as given.
        period: the window and the events found in it.
        integrity: the verification verdict; a report over a damaged log says FAILED first.
        sections: the content.
        filters: the options that narrowed it (policy, subject reference, years...).
    """

    kind: str
    title: str
    generated_at: str
    source: str
    period: Period
    integrity: Integrity
    sections: tuple[Section, ...]
    filters: tuple[tuple[str, str], ...] = field(default=())

    @property
    def ok(self) -> bool:
        """The log verified (a torn final record still counts as verified, with a warning)."""
        return self.integrity.ok

    def section(self, section_id: str) -> Section:
        """The section with this id.

        Raises:
            KeyError: no such section.
        """
        for s in self.sections:
            if s.id == section_id:
                return s
        raise KeyError(section_id)

    def block(self, block_id: str) -> Block:
        """The table, chart or facts block with this id, in any section.

        Raises:
            KeyError: no such block.
        """
        for s in self.sections:
            for b in s.blocks:
                if not isinstance(b, Note) and b.id == block_id:
                    return b
        raise KeyError(block_id)
