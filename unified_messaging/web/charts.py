"""Charts as inline SVG, drawn on the server: no script, no external service, printable.

Each chart has a ``<title>`` and every bar a ``<title>`` with its figure (shown on hover and read
by screen readers); the pages also give the figures as a table.  Colours come from the
stylesheet (classes ``s-<key>``), so a chart matches the status badges.
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


def stacked_columns(title: str, categories: Sequence[str], series: Sequence[Series],
                    values: dict[tuple[str, str], int], *, width: int = 640, height: int = 240) -> Markup:
    """Columns per category (a month...), stacked by series (a status...); ``values[(category, key)]``."""
    left, bottom, top_pad, legend_h = 44, 28, 10, 22
    plot_h = height - bottom - top_pad - legend_h
    totals = [sum(values.get((c, s.key), 0) for s in series) for c in categories]
    top = _nice_top(max(totals, default=0) or 1)
    slot = (width - left - 8) / max(len(categories), 1)
    bar = max(4.0, min(48.0, slot * 0.7))
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for fraction in (0, 0.5, 1):
        y = top_pad + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 4}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{int(top * fraction)}</text>')
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
    parts.extend(_legend(series, height - 8, left))
    parts.append("</svg>")
    return Markup("".join(parts))


def horizontal_bars(title: str, items: Sequence[tuple[str, int]], *, key: str = "bar", width: int = 640) -> Markup:
    """One bar per (label, count), longest first as given."""
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
    if not items:
        parts.append(f'<text class="axis" x="{label_w}" y="18">0</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(series: Sequence[Series], y: float, x: float) -> list[str]:
    parts = []
    for s in series:
        parts.append(f'<rect class="s-{s.key}" x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10"/>')
        parts.append(f'<text class="axis" x="{x + 14:.0f}" y="{y:.0f}">{escape(s.label)}</text>')
        x += 24 + 7 * len(s.label)
    return parts


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
