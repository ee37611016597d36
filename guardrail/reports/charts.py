"""Inline SVG charts for the HTML report: no script, no external resource, readable when printed.

Each bar carries a ``<title>`` (its exact value on hover); the same numbers are in a table beside the chart.
"""

from __future__ import annotations

import math
from html import escape

from guardrail.reports.model import Chart

__all__ = ["TONES", "render_chart"]

TONES = {"ok": "#2e7d32", "danger": "#c62828", "warning": "#ef6c00", "info": "#1565c0", "blank": "#6a1b9a"}
_WIDTH = 880
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _nice_max(value: int) -> tuple[int, int]:
    """An axis maximum >= value and a tick step giving 4-5 ticks."""
    if value <= 4:
        return max(value, 1), 1
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, int(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)))
    return step * math.ceil(value / step), step


def _legend(chart: Chart, y: int) -> str:
    parts, x = [], 60
    for s in chart.series:
        colour = TONES.get(s.tone, TONES["info"])
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y}" {_FONT}>{escape(s.name)}</text>'
        )
        x += 24 + 7 * len(s.name)
    return "".join(parts)


def _empty(chart: Chart) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(chart.id)}" role="img" viewBox="0 0 {_WIDTH} 60" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(chart.title)}: no data</title>'
        f'<rect x="0.5" y="0.5" width="{_WIDTH - 1}" height="59" fill="none" stroke="#ccc"/>'
        f'<text x="{_WIDTH // 2}" y="34" text-anchor="middle" {_FONT} fill="#666">no data in the '
        "period</text></svg>"
    )


def _columns(chart: Chart) -> str:
    """Stacked columns over ordered categories (time buckets)."""
    n = len(chart.labels)
    totals = [sum(s.values[i] for s in chart.series) for i in range(n)]
    top, step = _nice_max(max(totals))
    left, right, upper, plot_h = 56, 12, 28, 180
    plot_w = _WIDTH - left - right
    height = upper + plot_h + 48
    slot = plot_w / n
    bar = min(48.0, max(1.0, slot * 0.8))
    parts = [
        f'<svg class="chart" data-chart="{escape(chart.id)}" role="img" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(chart.title)}</title>',
        _legend(chart, 14),
    ]
    for tick in range(0, top + 1, step):
        y = upper + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{left}" x2="{_WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT}>{tick}</text>'
        )
    for i, label in enumerate(chart.labels):
        x = left + i * slot + (slot - bar) / 2
        base: float = upper + plot_h
        for s in chart.series:
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / top
            base -= h
            parts.append(
                f'<rect class="bar" x="{x:.2f}" y="{base:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                f'fill="{TONES.get(s.tone, TONES["info"])}"><title>{escape(label)}: {value} {escape(s.name)}'
                "</title></rect>"
            )
    every = max(1, math.ceil(n / 8))
    for i in range(0, n, every):
        x = left + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{upper + plot_h + 16}" text-anchor="middle" '
            f"{_FONT}>{escape(chart.labels[i])}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{_WIDTH - right}" y1="{upper + plot_h}" y2="{upper + plot_h}" '
        'stroke="#555"/></svg>'
    )
    return "".join(parts)


def _bars(chart: Chart) -> str:
    """Grouped horizontal bars, one group per category (entity type)."""
    k = len(chart.series)
    bar_h, gap, left, right, upper = 9, 8, 190, 60, 28
    group = k * bar_h + gap
    height = upper + group * len(chart.labels) + 8
    top = max(max(s.values) for s in chart.series) or 1
    plot_w = _WIDTH - left - right
    parts = [
        f'<svg class="chart" data-chart="{escape(chart.id)}" role="img" viewBox="0 0 {_WIDTH} {height}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg"><title>{escape(chart.title)}</title>',
        _legend(chart, 14),
    ]
    for i, label in enumerate(chart.labels):
        y0 = upper + i * group
        parts.append(
            f'<text x="{left - 8}" y="{y0 + k * bar_h / 2 + 4:.1f}" text-anchor="end" '
            f"{_FONT}>{escape(label)}</text>"
        )
        for j, s in enumerate(chart.series):
            value = s.values[i]
            w = plot_w * value / top
            y = y0 + j * bar_h
            parts.append(
                f'<rect class="bar" x="{left}" y="{y}" width="{max(w, 0.5 if value else 0):.2f}" '
                f'height="{bar_h - 1}" fill="{TONES.get(s.tone, TONES["info"])}"><title>{escape(label)}: '
                f"{value} {escape(s.name)}</title></rect>"
                f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 1}" {_FONT} fill="#333">{value}</text>'
            )
    parts.append(f'<line x1="{left}" x2="{left}" y1="{upper - 4}" y2="{height - 4}" stroke="#555"/></svg>')
    return "".join(parts)


def render_chart(chart: Chart) -> str:
    """The chart as one inline ``<svg class="chart">`` element."""
    if not chart.labels or not any(any(s.values) for s in chart.series):
        return _empty(chart)
    return _columns(chart) if chart.kind == "columns" else _bars(chart)
