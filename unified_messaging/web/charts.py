"""Charts as inline SVG, drawn on the server: no script, no external service, printable.

Each chart has a ``<title>`` and every bar a ``<title>`` with its figure (shown on hover and read
by screen readers); the pages also give the figures as a table.  Colours come from the
stylesheet (classes ``s-<key>``), so a chart matches the status badges.  A chart without figures says
so in words (``empty``, translated by the caller) instead of drawing an axis of zeros.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from markupsafe import Markup, escape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Series:
    key: str  # a CSS-safe name: the bar's class is "s-<key>"
    label: str


def _nice_top(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if top * step >= value:
                return top * step
        top *= 10


def _axis_label(value: float) -> str:
    """2.5 stays 2.5; 2.0 is written 2."""
    return f"{value:g}"


def _no_data(title: str, text: str, width: int, height: int) -> Markup:
    return Markup(f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
                  f"<title>{escape(title)}: {escape(text)}</title>"
                  f'<text class="empty" x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">'
                  f"{escape(text)}</text></svg>")


def stacked_columns(title: str, categories: Sequence[str], series: Sequence[Series],
                    values: dict[tuple[str, str], int], *, width: int = 640, height: int = 240,
                    empty: str = "No data") -> Markup:
    """Columns per category (a month...), stacked by series (a status...); ``values[(category, key)]``."""
    totals = [sum(values.get((c, s.key), 0) for s in series) for c in categories]
    if not any(totals):
        return _no_data(title, empty, width, 80)
    legend, legend_h = _legend(series, width, 44)
    left, bottom, top_pad = 44, 28, 10
    height += legend_h - LEGEND_LINE
    plot_h = height - bottom - top_pad - legend_h
    top = _nice_top(max(totals))
    slot = (width - left - 8) / max(len(categories), 1)
    bar = max(4.0, min(48.0, slot * 0.7))
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for fraction in (0, 0.5, 1):
        y = top_pad + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{_axis_label(top * fraction)}</text>")
    for index, category in enumerate(categories):
        x = left + slot * index + (slot - bar) / 2
        y = top_pad + plot_h
        for s in series:
            n = values.get((category, s.key), 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            parts.append(f'<rect class="s-{s.key}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
                         f"<title>{escape(category)}: {escape(s.label)} {n}</title></rect>")
        parts.append(f'<text class="axis" x="{x + bar / 2:.1f}" y="{top_pad + plot_h + 16}" '
                     f'text-anchor="middle">{escape(category)}</text>')
    legend_top = top_pad + plot_h + bottom
    parts.extend(_place(legend, legend_top))
    parts.append("</svg>")
    return Markup("".join(parts))


def horizontal_bars(title: str, items: Sequence[tuple[str, int]], *, key: str = "bar", width: int = 640,
                    empty: str = "No data") -> Markup:
    """One bar per (label, count), longest first as given."""
    if not any(n for _, n in items):
        return _no_data(title, empty, width, 80)
    row, label_w = 24, 260
    height = max(row * len(items), row) + 8
    top = max((n for _, n in items), default=0) or 1
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for index, (label, n) in enumerate(items):
        y = 4 + index * row
        w = (width - label_w - 60) * n / top
        parts.append(f'<text class="axis" x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(_cut(label, 40))}'
                     f"<title>{escape(label)}</title></text>")
        parts.append(f'<rect class="s-{key}" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}">'
                     f"<title>{escape(label)}: {n}</title></rect>")
        parts.append(f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 15}">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


LEGEND_LINE = 18
CHARACTER_WIDTH = 7.2  # a generous average at the legend's 11 px: wide enough for Dutch and French labels


def _legend(series: Sequence[Series], width: int, left: float) -> tuple[list[tuple[float, int, Series]], int]:
    """Where each legend item goes, (x, line, series), wrapped onto as many lines as the labels need so
    that none runs into the next or past the edge; and the legend's height."""
    items, x, line = [], left, 0
    for s in series:
        size = 14 + CHARACTER_WIDTH * len(s.label) + 12
        if x > left and x + size > width - 4:
            x, line = left, line + 1
        items.append((x, line, s))
        x += size
    return items, (line + 1) * LEGEND_LINE + 4


def _place(legend: list[tuple[float, int, Series]], top: float) -> list[str]:
    parts = []
    for x, line, s in legend:
        y = top + line * LEGEND_LINE
        parts.append(f'<rect class="s-{s.key}" x="{x:.0f}" y="{y:.0f}" width="10" height="10"/>')
        parts.append(f'<text class="axis" x="{x + 14:.0f}" y="{y + 9:.0f}">{escape(s.label)}</text>')
    return parts


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
