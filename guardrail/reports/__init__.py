"""Compliance reports from the audit log: activity (integrity, access, exposure, datasets, keys and
policies), a GDPR Art. 30 record of processing (draft), an Art. 15 access report for one data subject and a
HIPAA 164.528 accounting of disclosures, as self-contained HTML, Markdown or JSON.

Build with :func:`build_report`, :func:`build_ropa`, :func:`build_dsar` or :func:`build_disclosures`; write
with :func:`write_report` (the format follows the file extension). Every report starts with the verdict of
:func:`guardrail.audit.verify`: over a damaged log it says FAILED first and ``report.ok`` is False.
"""

from guardrail.reports.activity import build_report
from guardrail.reports.model import (
    Blank,
    Chart,
    Column,
    Facts,
    Integrity,
    Note,
    Period,
    Report,
    ReportError,
    Section,
    Series,
    Table,
)
from guardrail.reports.render import render, render_html, render_json, render_markdown, write_report
from guardrail.reports.ropa import build_ropa
from guardrail.reports.subject import TPO_PURPOSES, build_disclosures, build_dsar, subject_ref

__all__ = [
    "TPO_PURPOSES",
    "Blank",
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
    "build_disclosures",
    "build_dsar",
    "build_report",
    "build_ropa",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "subject_ref",
    "write_report",
]
