"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, nothing to download.

Each function returns :class:`markupsafe.Markup` holding one ``<svg role="img">`` with a
``<title>`` and ``<desc>`` (read by screen readers), axis labels, gridlines and a legend.
Every text that comes from data is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#2c7be5", "#e5a52c", "#d9534f", "#6f42c1", "#18bc9c", "#95a5a6")
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 52


@dataclass(frozen=True)
class Series:
    """A named list of values, one per label."""

    name: str
    values: Sequence[int]
    color: str | None = None


def _nice_max(value: int) -> int:
    """The top of the axis: four times a whole round step (1, 2, 2.5 or 5 times a power of
    ten) at or above ``value``, so each of the four gridlines falls on the value it is
    labelled with (a top of 5 would put "1" at 1.25)."""
    magnitude = 1
    while True:
        for step in (1, 2, 2.5, 5):
            tick = step * magnitude
            if tick == int(tick) and 4 * tick >= value:
                return int(4 * tick)
        magnitude *= 10


def _short(value: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            number = value / size
            return f"{number:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)


def _frame(title: str, description: str, top: int, labels: Sequence[str]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="jifen-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>",
    ]
    for i in range(5):
        value = top * i // 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#e3e6ea" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#6c757d">{_short(value)}</text>'
        )
    count = max(len(labels), 1)
    every = max(1, -(-count // 10))  # at most about ten labels on the axis
    slot = (WIDTH - LEFT - RIGHT) / count
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = LEFT + slot * (i + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
            f'fill="#6c757d">{escape(label)}</text>'
        )
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts, x = [], LEFT
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 18}" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 16}" y="{HEIGHT - 8}" font-size="12" fill="#343a40">'
            f"{escape(s.name)}</text>"
        )
        x += 24 + 8 * len(s.name)
    return parts


def _describe(labels: Sequence[str], series: Sequence[Series]) -> str:
    totals = ", ".join(f"{s.name}: {sum(s.values):,} in total" for s in series)
    span = f"{labels[0]} to {labels[-1]}" if labels else "no data"
    return f"{span}; {totals}"


def bar_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, stacked: bool = False
) -> Markup:
    """Grouped (or ``stacked``) bars, one group per label."""
    if stacked:
        top = _nice_max(
            max((sum(v) for v in zip(*(s.values for s in series), strict=True)), default=0)
        )
    else:
        top = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    parts = _frame(title, _describe(labels, series), top, labels)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    width = slot * 0.8 if stacked else slot * 0.8 / max(len(series), 1)
    for i, label in enumerate(labels):
        base = 0.0
        for k, s in enumerate(series):
            value = max(int(s.values[i]), 0)
            if value == 0:
                continue
            color = s.color or PALETTE[k % len(PALETTE)]
            h = plot_h * value / top
            if stacked:
                x = LEFT + slot * i + slot * 0.1
                y = TOP + plot_h - base - h
                base += h
            else:
                x = LEFT + slot * i + slot * 0.1 + width * k
                y = TOP + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width - 1, 1):.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(label)} · {escape(s.name)}: {value:,}</title>'
                "</rect>"
            )
    parts.extend(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series, with a dot on each point."""
    top = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    parts = _frame(title, _describe(labels, series), top, labels)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        points = [
            (LEFT + slot * (i + 0.5), TOP + plot_h - plot_h * max(int(v), 0) / top)
            for i, v in enumerate(s.values)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (x, y), label, value in zip(points, labels, s.values, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(label)} · {escape(s.name)}: {int(value):,}</title></circle>"
            )
    parts.extend(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))
