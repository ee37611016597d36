"""Render a :class:`~guardrail.reports.model.Report` as JSON, Markdown or self-contained HTML, and write it.

The HTML page holds everything inline (CSS, SVG charts) and forbids itself any other resource with a
Content-Security-Policy (``default-src 'none'``): opened offline, printed or archived, it shows the same.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

from guardrail.io import atomic_output
from guardrail.reports.charts import TONES, render_chart
from guardrail.reports.model import (
    REPORT_FORMAT,
    Blank,
    Block,
    Cell,
    Chart,
    Column,
    Facts,
    Note,
    Report,
    ReportError,
    Table,
)

__all__ = ["FORMATS", "render", "render_html", "render_json", "render_markdown", "write_report"]

FORMATS = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json"}
_BLANK = "TO BE COMPLETED"
_NO_PII = (
    "This report holds counts, pseudonymous references, opaque ids, policy names and times only: the audit "
    "log never stores text, queries or identifiers of data subjects."
)


# --------------------------------------------------------------------------- JSON


def _cell_json(cell: Cell) -> Any:
    if isinstance(cell, Blank):
        return {"blank": True, "hint": cell.hint}
    return cell


def _block_json(block: Block) -> dict[str, Any]:
    if isinstance(block, Table):
        keys = [c.key for c in block.columns]
        return {
            "type": "table",
            "id": block.id,
            "title": block.title,
            "columns": [{"key": c.key, "label": c.label} for c in block.columns],
            "rows": [dict(zip(keys, map(_cell_json, row), strict=True)) for row in block.rows],
            "total": block.total if block.total is not None else len(block.rows),
            "note": block.note,
        }
    if isinstance(block, Chart):
        return {
            "type": "chart",
            "id": block.id,
            "title": block.title,
            "kind": block.kind,
            "labels": list(block.labels),
            "series": [{"name": s.name, "values": list(s.values)} for s in block.series],
            "note": block.note,
        }
    if isinstance(block, Facts):
        return {
            "type": "facts",
            "id": block.id,
            "title": block.title,
            "items": {name: _cell_json(value) for name, value in block.items},
        }
    return {"type": "note", "tone": block.tone, "text": block.text}


def report_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (``format``: ``guardrail.report/1``)."""
    p = report.period
    return {
        "format": REPORT_FORMAT,
        "kind": report.kind,
        "title": report.title,
        "generated_at": report.generated_at,
        "source": report.source,
        "filters": dict(report.filters),
        "period": {
            "since": p.since,
            "until": p.until,
            "first_event": p.first_event,
            "last_event": p.last_event,
        },
        "integrity": report.integrity.to_dict(),
        "notice": _NO_PII,
        "sections": [
            {"id": s.id, "title": s.title, "intro": s.intro, "blocks": [_block_json(b) for b in s.blocks]}
            for s in report.sections
        ],
    }


def render_json(report: Report) -> str:
    """The report as indented JSON."""
    return json.dumps(report_dict(report), indent=1, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- Markdown


def _md(value: Cell) -> str:
    if isinstance(value, Blank):
        return f"**[{_BLANK}: {value.hint}]**"
    if value is None:
        return ""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


_MD_TONE = {
    "danger": "**FAILED:** ",
    "warning": "**Warning:** ",
    "blank": f"**[{_BLANK}]** ",
    "ok": "",
    "info": "",
}


def _block_md(block: Block) -> list[str]:
    if isinstance(block, Note):
        return [f"> {_MD_TONE[block.tone]}{_md(block.text)}", ""]
    lines = [f"### {_md(block.title)}", ""]
    if isinstance(block, Facts):
        lines += [f"- **{_md(name)}**: {_md(value)}" for name, value in block.items]
    elif isinstance(block, Chart):
        if block.note:
            lines += [block.note, ""]
        rows = [
            [_md(label), *(str(s.values[i]) for s in block.series)] for i, label in enumerate(block.labels)
        ]
        lines += (
            _md_table(["", *(_md(s.name) for s in block.series)], rows)
            if rows
            else ["_no data in the period_"]
        )
    else:
        if block.note:
            lines += [_md(block.note), ""]
        if block.rows:
            lines += _md_table(
                [_md(c.label) for c in block.columns], [[_md(c) for c in r] for r in block.rows]
            )
            if block.total is not None and block.total > len(block.rows):
                lines += ["", f"_showing {len(block.rows)} of {block.total}_"]
        else:
            lines.append(f"_{_md(block.empty)}_")
    return [*lines, ""]


def render_markdown(report: Report) -> str:
    """The report as GitHub-flavoured Markdown."""
    i = report.integrity
    lines = [
        f"# {_md(report.title)}",
        "",
        f"- **integrity**: {i.status}" + ("" if i.ok else f" ({_md(i.kind)}: {_md(i.message)})"),
        f"- **generated**: {report.generated_at}",
        f"- **audit log**: `{report.source}`",
        f"- **period**: {_md(report.period.describe())}",
        *(f"- **{_md(k)}**: {_md(v)}" for k, v in report.filters),
        "",
        f"> {_NO_PII}",
        "",
    ]
    if not i.ok:
        lines += [f"> **INTEGRITY FAILED**: {_md(i.message)}", ""]
    for section in report.sections:
        lines += [f"## {_md(section.title)}", ""]
        if section.intro:
            lines += [_md(section.intro), ""]
        for block in section.blocks:
            lines += _block_md(block)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- HTML

_ROOT = ":root { " + " ".join(f"--{name}: {colour};" for name, colour in TONES.items()) + " }"
_CSS = """
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a;
       margin: 0 auto; max-width: 1000px; padding: 24px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.meta { color: #555; margin: 0 0 12px; } .meta span { margin-right: 16px; }
.banner { padding: 12px 16px; border-radius: 6px; font-weight: 600; margin: 12px 0; color: #fff; }
.banner.ok { background: var(--ok); } .banner.danger { background: var(--danger); font-size: 18px; }
.banner.warning { background: var(--warning); }
nav { margin: 12px 0; } nav a { margin-right: 12px; color: var(--info); text-decoration: none; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f3f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafafa; }
dl { display: grid; grid-template-columns: fit-content(40%) minmax(0, 1fr); gap: 4px 16px; margin: 4px 0; }
dt { font-weight: 600; color: #333; } dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.note, .meta, h1, h2, h3 { overflow-wrap: anywhere; }
.note { border-left: 4px solid var(--info); background: #eef4fb; padding: 8px 12px; margin: 8px 0; }
.note.warning { border-color: var(--warning); background: #fff4e5; }
.note.danger { border-color: var(--danger); background: #fdecea; font-weight: 600; }
.note.blank, .blank { border-color: var(--blank); background: #f4ecf7; }
.blank { display: inline-block; padding: 0 6px; border: 1px dashed var(--blank); color: var(--blank);
         font-weight: 600; }
.empty { color: #666; font-style: italic; } .more { color: #666; font-size: 12px; }
svg.chart { display: block; margin: 4px 0 8px; max-width: 100%; }
details summary { cursor: pointer; color: #555; font-size: 12px; }
footer { margin-top: 32px; color: #666; font-size: 12px; border-top: 1px solid #ddd; padding-top: 8px; }
@page { size: auto; margin: 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; } nav { display: none; }
  table { font-size: 9px; } th, td { padding: 2px 4px; } tr { break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  svg.chart, .note { break-inside: avoid; } h2, h3 { break-after: avoid; }
  details > *:not(summary) { display: block; } details summary { display: none; }
}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _h(value: Cell) -> str:
    if isinstance(value, Blank):
        return f'<span class="blank">{_BLANK}: {escape(value.hint)}</span>'
    return "" if value is None else escape(str(value))


def _table_html(block: Table) -> str:
    if not block.rows:
        return f'<p class="empty">{escape(block.empty)}</p>'
    head = "".join(f"<th>{escape(c.label)}</th>" for c in block.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_h(v)}</td>' if c.numeric else f"<td>{_h(v)}</td>"
            for c, v in zip(block.columns, row, strict=True)
        )
        + "</tr>"
        for row in block.rows
    )
    more = ""
    if block.total is not None and block.total > len(block.rows):
        more = f'<p class="more">showing {len(block.rows)} of {block.total}</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _block_html(block: Block) -> str:
    if isinstance(block, Note):
        return f'<div class="note {block.tone}">{escape(block.text)}</div>'
    parts = [f'<div class="block" id="{escape(block.id)}"><h3>{escape(block.title)}</h3>']
    if isinstance(block, Facts):
        parts.append(
            "<dl>" + "".join(f"<dt>{escape(n)}</dt><dd>{_h(v)}</dd>" for n, v in block.items) + "</dl>"
        )
    elif isinstance(block, Chart):
        parts.append(render_chart(block))
        if block.note:
            parts.append(f'<p class="more">{escape(block.note)}</p>')
        if block.labels:
            rows: tuple[tuple[Cell, ...], ...] = tuple(
                (label, *(s.values[i] for s in block.series)) for i, label in enumerate(block.labels)
            )
            data = Table(
                f"{block.id}_data",
                "",
                (Column("label", ""), *(Column(s.name, s.name, True) for s in block.series)),
                rows,
            )
            parts.append(f"<details><summary>data</summary>{_table_html(data)}</details>")
    else:
        if block.note:
            parts.append(f'<p class="more">{escape(block.note)}</p>')
        parts.append(_table_html(block))
    parts.append("</div>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no script, no external resource)."""
    i = report.integrity
    tone = "ok" if i.status == "VERIFIED" else ("danger" if not i.ok else "warning")
    banner = f"INTEGRITY {i.status}" + (
        f": {i.message}" if not i.ok or tone == "warning" else f" ({i.message})"
    )
    meta = [
        f"<span>generated {escape(report.generated_at)}</span>",
        f"<span>audit log <code>{escape(report.source)}</code></span>",
        f"<span>period {escape(report.period.describe())}</span>",
        *(f"<span>{escape(k)}: {escape(v)}</span>" for k, v in report.filters),
    ]
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in report.sections)
    sections = "".join(
        f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>'
        + (f"<p>{escape(s.intro)}</p>" if s.intro else "")
        + "".join(_block_html(b) for b in s.blocks)
        + "</section>"
        for s in report.sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="guardrail {REPORT_FORMAT}">'
        f"<title>{escape(report.title)}</title><style>{_ROOT}{_CSS}</style></head>"
        f'<body data-report="{escape(report.kind)}" data-integrity="{escape(i.status)}">'
        f'<header><h1>{escape(report.title)}</h1><p class="meta">{"".join(meta)}</p>'
        f'<div class="banner {tone}" id="integrity-banner">{escape(banner)}</div>'
        f"<nav>{nav}</nav></header><main>{sections}</main>"
        f"<footer>{escape(_NO_PII)} Format {REPORT_FORMAT}.</footer></body></html>\n"
    )


# --------------------------------------------------------------------------- writing

_RENDERERS = {"html": render_html, "markdown": render_markdown, "json": render_json}


def render(report: Report, fmt: str) -> str:
    """The report in ``html``, ``markdown`` or ``json``.

    Raises:
        ReportError: an unknown format.
    """
    try:
        return _RENDERERS[fmt](report)
    except KeyError:
        raise ReportError(f"unknown report format {fmt!r}; use html, markdown or json") from None


def write_report(report: Report, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write the report atomically, in the format its extension names (.html, .md or .json).

    Raises:
        ReportError: the extension names no format.
        OutputExistsError: the file exists and ``force`` is false.
    """
    out = Path(path)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ReportError(f"{out}: the extension must be .html, .md or .json (it picks the report format)")
    text = render(report, fmt)
    with atomic_output(out, force=force) as handle:
        handle.write(text)
    return out
