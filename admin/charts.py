"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, nothing to download.

Each function returns :class:`markupsafe.Markup` holding one ``<svg role="img">`` with a
``<title>`` and ``<desc>`` (read by screen readers), axis labels, gridlines and a legend.
Every text that comes from data is escaped. Each bar carries its value in ``data-value`` and
in a tooltip; a label may hold a line break (``"01-27\\n02-02"``), drawn as two lines.

:func:`flow_chart` draws what comes in above the zero line and what goes out below it, and
keeps one outlier from flattening the rest: the axis stops at the largest value that is not
an outlier (:func:`robust_limit`), and a bar past it is cut, marked with a break and labelled
with its value.

:func:`small_bar_chart` and :func:`small_line_chart` draw small multiples (the Analytics
page): one series per chart on its own scale, clipped the same way, with markers (a rule
version taking effect) and shaded bands (a campaign running) over the days.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from unicodedata import east_asian_width

from flask_babel import gettext as _
from markupsafe import Markup, escape

PALETTE = ("#2c7be5", "#e5a52c", "#d9534f", "#6f42c1", "#18bc9c", "#95a5a6")
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 52
# Daily charts carry their values on both sides, and their legend on the right: on a phone
# they open scrolled to the latest day, at the right.
MIRRORED_RIGHT = LEFT
PLOT_H = HEIGHT - TOP - BOTTOM
ROUND_STEPS = (1, 2, 2.5, 5)
# A value more than this many times the 90th percentile of the others is an outlier.
OUTLIER_FACTOR = 3
MIN_VALUES_FOR_OUTLIERS = 5
MINUS = "\u2212"


@dataclass(frozen=True)
class Series:
    """A named list of values, one per label."""

    name: str
    values: Sequence[int]
    color: str | None = None


@dataclass(frozen=True)
class Axis:
    """The value axis: from ``low`` (zero or below) to ``high``, a gridline every ``step``."""

    low: int
    high: int
    step: int

    def y(self, value: float) -> float:
        """The vertical position of ``value``, clamped to the plot."""
        value = min(max(value, self.low), self.high)
        return TOP + PLOT_H * (self.high - value) / (self.high - self.low)


def _round_steps() -> list[int]:
    """Round steps (1, 2, 2.5 or 5 times a power of ten) that are whole numbers, ascending."""
    steps = []
    for power in range(19):
        for step in ROUND_STEPS:
            value = step * 10**power
            if value == int(value):
                steps.append(int(value))
    return steps


def _nice_max(value: int) -> int:
    """The top of the axis: four times a whole round step (1, 2, 2.5 or 5 times a power of
    ten) at or above ``value``, so each of the four gridlines falls on the value it is
    labelled with (a top of 5 would put "1" at 1.25)."""
    return 4 * next(step for step in _round_steps() if 4 * step >= value)


def _axis(high: int, low: int = 0, *, intervals: int = 4) -> Axis:
    """An axis over ``low..high`` (``low <= 0``) with at most ``intervals`` round steps; all
    of them above zero when nothing is below it."""
    if low >= 0:
        top = _nice_max(high)
        return Axis(0, top, top // 4)
    for step in _round_steps():
        up, down = math.ceil(max(high, 0) / step), math.ceil(-low / step)
        if up + down <= intervals:
            return Axis(-down * step, max(up, 1) * step, step)
    raise ValueError("values too large for a chart")


def robust_limit(values: Sequence[int]) -> int:
    """The largest of ``values`` that is not an outlier: no more than :data:`OUTLIER_FACTOR`
    times the 90th percentile of the values above zero. With fewer than
    :data:`MIN_VALUES_FOR_OUTLIERS` such values, the largest."""
    above = sorted(v for v in values if v > 0)
    if len(above) < MIN_VALUES_FOR_OUTLIERS:
        return max(above, default=0)
    typical = above[int(0.9 * (len(above) - 1))]
    return max(v for v in above if v <= OUTLIER_FACTOR * typical)


def _short(value: int) -> str:
    sign = MINUS if value < 0 else ""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            number = abs(value) / size
            return sign + f"{number:.1f}".rstrip("0").rstrip(".") + suffix
    return sign + str(abs(value))


def _one_line(label: str) -> str:
    return label.replace("\n", " to ")


def _axis_label(x: float, label: str) -> str:
    lines = label.split("\n")
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if n == 0 else 13}">{escape(line)}</tspan>'
        for n, line in enumerate(lines)
    )
    return (
        f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" font-size="11" '
        f'fill="#6c757d">{spans}</text>'
    )


def _frame(
    title: str,
    description: str,
    axis: Axis,
    labels: Sequence[str],
    *,
    max_labels: int = 10,
    right: int = RIGHT,
) -> list[str]:
    """Title, gridlines with their values (on both sides when ``right`` leaves room for them)
    and the labels under the plot."""
    parts = [
        f'<svg class="jifen-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>",
    ]
    for value in range(axis.low, axis.high + 1, axis.step):
        y = axis.y(value)
        stroke = "#adb5bd" if value == 0 and axis.low < 0 else "#e3e6ea"
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - right}" y2="{y:.1f}" '
            f'stroke="{stroke}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#6c757d">{_short(value)}</text>'
        )
        if right > RIGHT:
            parts.append(
                f'<text x="{WIDTH - right + 6}" y="{y + 4:.1f}" font-size="11" '
                f'fill="#6c757d">{_short(value)}</text>'
            )
    count = max(len(labels), 1)
    every = max(1, -(-count // max_labels))
    slot = (WIDTH - LEFT - right) / count
    for i, label in enumerate(labels):
        if not i % every:
            parts.append(_axis_label(LEFT + slot * (i + 0.5), label))
    return parts


def _legend(
    series: Sequence[Series], names: Sequence[str] | None = None, *, right: int | None = None
) -> list[str]:
    """One swatch and name per series, from the left, or ending at ``WIDTH - right``."""
    shown = [s.name for s in series] if names is None else list(names)
    widths = [24 + text_width(name) for name in shown]
    parts, x = [], LEFT if right is None else WIDTH - right - sum(widths) + 8
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        name = shown[k]
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 18}" width="12" height="12" fill="{color}"/>'
            f'<text x="{x + 16}" y="{HEIGHT - 8}" font-size="12" fill="#343a40">'
            f"{escape(name)}</text>"
        )
        x += widths[k]
    return parts


def text_width(text: str) -> int:
    """About how wide ``text`` is at 12 px, in px: Chinese and other wide characters take
    about twice the room of Latin ones (a legend sized for Latin letters overlaps in Chinese)."""
    return sum(13 if east_asian_width(ch) in "WF" else 7 for ch in text)


def _span(labels: Sequence[str]) -> str:
    if not labels:
        return str(_("no data"))
    return str(_("%(first)s to %(last)s", first=_one_line(labels[0]), last=_one_line(labels[-1])))


def _describe(labels: Sequence[str], series: Sequence[Series]) -> str:
    totals = ", ".join(
        str(_("%(name)s: %(total)s in total", name=s.name, total=f"{sum(s.values):,}"))
        for s in series
    )
    return f"{_span(labels)}; {totals}"


def _bar(x: float, y: float, width: float, height: float, color: str, tip: str, value: int) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width - 1, 1):.1f}" height="{height:.1f}" '
        f'fill="{color}" data-value="{value}"><title>{escape(tip)}</title></rect>'
    )


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    stacked: bool = False,
    max_labels: int = 10,
    notes: Sequence[str] = (),
) -> Markup:
    """Grouped (or ``stacked``) bars, one group per label; ``notes`` (one per label, may be
    blank) are written above the bars of a stacked chart and in their tooltips."""
    if stacked:
        top = max((sum(v) for v in zip(*(s.values for s in series), strict=True)), default=0)
    else:
        top = max((max(s.values, default=0) for s in series), default=0)
    axis = _axis(top)
    parts = _frame(title, _describe(labels, series), axis, labels, max_labels=max_labels)
    slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
    width = slot * 0.8 if stacked else slot * 0.8 / max(len(series), 1)
    for i, label in enumerate(labels):
        base = 0
        for k, s in enumerate(series):
            value = max(int(s.values[i]), 0)
            if value == 0:
                continue
            color = s.color or PALETTE[k % len(PALETTE)]
            x = LEFT + slot * i + slot * 0.1 + (0 if stacked else width * k)
            low = base if stacked else 0
            y, bottom = axis.y(low + value), axis.y(low)
            base += value
            note = notes[i] if i < len(notes) else ""
            tip = f"{_one_line(label)} · {s.name}: {value:,}" + (f" ({note})" if note else "")
            parts.append(_bar(x, y, width, bottom - y, color, tip, value))
        if stacked and base and i < len(notes) and notes[i]:
            parts.append(
                f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{axis.y(base) - 4:.1f}" '
                f'text-anchor="middle" font-size="10" fill="#343a40" class="jifen-note">'
                f"{escape(notes[i])}</text>"
            )
    parts.extend(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def flow_chart(
    title: str, labels: Sequence[str], inflows: Sequence[Series], outflows: Sequence[Series]
) -> Markup:
    """What comes in stacked above the zero line, what goes out stacked below it, one bar
    each per label; an outlier is cut at the axis, marked and labelled with its total."""
    ins = [sum(int(s.values[i]) for s in inflows) for i in range(len(labels))]
    outs = [sum(int(s.values[i]) for s in outflows) for i in range(len(labels))]
    axis = _axis(robust_limit(ins), -robust_limit(outs), intervals=6)
    description = _describe(labels, [*inflows, *outflows])
    parts = _frame(title, description, axis, labels, right=MIRRORED_RIGHT)
    slot = (WIDTH - LEFT - MIRRORED_RIGHT) / max(len(labels), 1)
    for direction, group, totals in ((1, inflows, ins), (-1, outflows, outs)):
        for i, label in enumerate(labels):
            base = 0
            for k, s in enumerate(group):
                value = max(int(s.values[i]), 0)
                if value == 0:
                    continue
                color = s.color or PALETTE[k % len(PALETTE)]
                ends = sorted((axis.y(direction * base), axis.y(direction * (base + value))))
                base += value
                tip = f"{label} · {s.name}: {value:,}"
                parts.append(
                    _bar(
                        LEFT + slot * (i + 0.1),
                        ends[0],
                        slot * 0.8,
                        ends[1] - ends[0],
                        color,
                        tip,
                        value,
                    )
                )
            if direction * totals[i] > axis.high or direction * totals[i] < axis.low:
                parts.extend(_clip_mark(axis, slot, i, direction, totals[i], label))
    names = [f"{s.name} \u25b2" for s in inflows] + [f"{s.name} \u25bc" for s in outflows]
    parts.extend(_legend([*inflows, *outflows], names, right=MIRRORED_RIGHT))
    parts.append("</svg>")
    return Markup("".join(parts))


def _clip_mark(
    axis: Axis, slot: float, i: int, direction: int, total: int, label: str
) -> list[str]:
    """A bar cut at the end of the axis: a white break across it and its total beside it."""
    edge = axis.y(axis.high if direction > 0 else axis.low)
    x0, x1 = LEFT + slot * (i + 0.05), LEFT + slot * (i + 0.95)
    y = edge + 6 * direction
    left_half = i * slot < (WIDTH - LEFT - MIRRORED_RIGHT) / 2
    text_x = x1 + 3 if left_half else x0 - 3
    anchor = "start" if left_half else "end"
    return [
        f'<path d="M{x0:.1f},{y + 2:.1f} L{x1:.1f},{y - 2:.1f}" stroke="#fff" stroke-width="2.5"/>',
        f'<text x="{text_x:.1f}" y="{edge + 10 * direction + 3:.1f}" text-anchor="{anchor}" '
        f'font-size="11" font-weight="600" fill="#343a40" class="jifen-clipped" '
        f'data-clipped="{total}">{total:,}'
        f"<title>{escape(label)}: {total:,}, beyond the axis</title></text>",
    ]


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One line per series, with a dot on each point; below zero when a value is."""
    values = [int(v) for s in series for v in s.values]
    axis = _axis(max(values, default=0), min(0, *values) if values else 0, intervals=5)
    parts = _frame(title, _describe(labels, series), axis, labels, right=MIRRORED_RIGHT)
    slot = (WIDTH - LEFT - MIRRORED_RIGHT) / max(len(labels), 1)
    for k, s in enumerate(series):
        color = s.color or PALETTE[k % len(PALETTE)]
        points = [(LEFT + slot * (i + 0.5), axis.y(int(v))) for i, v in enumerate(s.values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for (x, y), label, value in zip(points, labels, s.values, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(_one_line(label))} · {escape(s.name)}: {int(value):,}</title>"
                "</circle>"
            )
    parts.extend(_legend(series, right=MIRRORED_RIGHT))
    parts.append("</svg>")
    return Markup("".join(parts))


# --- small multiples (the Analytics page) -----------------------------------------------------
#
# One small chart per series, each on its own scale, so a flow of hundreds is not drawn as a
# line along the floor of a flow of millions. One huge day does not flatten the others either:
# the axis is clipped at the largest value that is not an outlier (:func:`robust_limit`, the
# same rule as :func:`flow_chart`), and a bar past it is cut with a white break and labelled
# with its value. A clipped linear axis keeps bars comparable by length, which a log scale
# would not (and a log scale has no place for zero or negative days).

# Drawn about as wide as they are shown (a third of a laptop's page, a phone's width), so the
# 12-unit labels read at about 12 px.
SMALL_W, SMALL_H = 380, 210
SMALL_LEFT, SMALL_RIGHT, SMALL_TOP, SMALL_BOTTOM = 46, 10, 26, 30
SMALL_PLOT_H = SMALL_H - SMALL_TOP - SMALL_BOTTOM
SMALL_PLOT_W = SMALL_W - SMALL_LEFT - SMALL_RIGHT
MARKER_COLOR = "#343a40"
BAND_COLOR = "#fff3cd"


@dataclass(frozen=True)
class ChartMarker:
    """A vertical line through the slot of label ``index``, named ``label`` above the plot
    (a rule version that took effect that day)."""

    index: int
    label: str
    title: str = ""


@dataclass(frozen=True)
class ChartBand:
    """A shaded span behind the slots ``first`` to ``last`` (a campaign that ran then)."""

    first: int
    last: int
    label: str


@dataclass(frozen=True)
class _SmallAxis:
    low: float
    high: float
    ticks: tuple[float, ...]

    def y(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        return SMALL_TOP + SMALL_PLOT_H * (self.high - value) / (self.high - self.low)


def _small_axis(high: int, low: int = 0) -> _SmallAxis:
    axis = _axis(high, low, intervals=4)
    return _SmallAxis(axis.low, axis.high, tuple(range(axis.low, axis.high + 1, axis.step)))


def _small_frame(
    title: str,
    description: str,
    axis: _SmallAxis,
    labels: Sequence[str],
    *,
    max_labels: int,
    tick_text: Callable[[float], str],
) -> list[str]:
    parts = [
        f'<svg class="jifen-chart jifen-small-chart" viewBox="0 0 {SMALL_W} {SMALL_H}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>",
    ]
    for value in axis.ticks:
        y = axis.y(value)
        stroke = "#adb5bd" if value == 0 and axis.low < 0 else "#e3e6ea"
        parts.append(
            f'<line x1="{SMALL_LEFT}" y1="{y:.1f}" x2="{SMALL_W - SMALL_RIGHT}" y2="{y:.1f}" '
            f'stroke="{stroke}" stroke-width="1"/>'
            f'<text x="{SMALL_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#6c757d">{escape(tick_text(value))}</text>'
        )
    count = max(len(labels), 1)
    every = max(1, -(-count // max_labels))
    slot = SMALL_PLOT_W / count
    for i, label in enumerate(labels):
        if not i % every:
            parts.append(
                f'<text x="{SMALL_LEFT + slot * (i + 0.5):.1f}" y="{SMALL_H - SMALL_BOTTOM + 16}" '
                f'text-anchor="middle" font-size="12" fill="#6c757d">{escape(label)}</text>'
            )
    return parts


def _bands_and_markers(
    count: int, bands: Sequence[ChartBand], markers: Sequence[ChartMarker]
) -> tuple[list[str], list[str]]:
    """Shaded bands (drawn under the bars) and marker lines (drawn over them)."""
    slot = SMALL_PLOT_W / max(count, 1)
    under, over = [], []
    for band in bands:
        x0, x1 = SMALL_LEFT + slot * band.first, SMALL_LEFT + slot * (band.last + 1)
        under.append(
            f'<rect class="jifen-band" x="{x0:.1f}" y="{SMALL_TOP}" width="{x1 - x0:.1f}" '
            f'height="{SMALL_PLOT_H}" fill="{BAND_COLOR}"><title>{escape(band.label)}</title>'
            "</rect>"
        )
    for marker in markers:
        x = SMALL_LEFT + slot * (marker.index + 0.5)
        anchor = "end" if x > SMALL_W - 50 else "start"
        dx = -3 if anchor == "end" else 3
        over.append(
            f'<g class="jifen-marker" data-label="{escape(marker.label)}">'
            f'<line x1="{x:.1f}" y1="{SMALL_TOP - 4}" x2="{x:.1f}" '
            f'y2="{SMALL_TOP + SMALL_PLOT_H}" stroke="{MARKER_COLOR}" stroke-width="1.5" '
            f'stroke-dasharray="4 3"/>'
            f'<text x="{x + dx:.1f}" y="{SMALL_TOP - 8}" text-anchor="{anchor}" font-size="12" '
            f'font-weight="600" fill="{MARKER_COLOR}">{escape(marker.label)}</text>'
            f"<title>{escape(marker.title or marker.label)}</title></g>"
        )
    return under, over


def _small_clip_mark(axis: _SmallAxis, slot: float, i: int, value: int, label: str) -> list[str]:
    """A bar cut at the end of the axis: a white break across it and its value beside it."""
    up = value > 0
    edge = axis.y(axis.high if up else axis.low)
    y = edge + (6 if up else -6)
    x0, x1 = SMALL_LEFT + slot * (i + 0.05), SMALL_LEFT + slot * (i + 0.95)
    left_half = i * slot < SMALL_PLOT_W / 2
    text_x, anchor = (x1 + 3, "start") if left_half else (x0 - 3, "end")
    text_y = edge + (11 if up else -4)
    return [
        f'<path d="M{x0:.1f},{y + 2:.1f} L{x1:.1f},{y - 2:.1f}" stroke="#fff" stroke-width="2.5"/>',
        f'<text x="{text_x:.1f}" y="{text_y:.1f}" text-anchor="{anchor}" font-size="12" '
        f'font-weight="600" fill="#343a40" class="jifen-clipped" data-clipped="{value}">'
        f"{_signed_text(value)}<title>{escape(label)}: {_signed_text(value)}, beyond the axis"
        "</title></text>",
    ]


def _signed_text(value: int) -> str:
    return f"{MINUS}{-value:,}" if value < 0 else f"{value:,}"


def small_bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[int],
    *,
    color: str,
    markers: Sequence[ChartMarker] = (),
    bands: Sequence[ChartBand] = (),
    max_labels: int = 6,
    empty: str = "",
) -> Markup:
    """One series as bars on its own scale: above zero, or below it for negative values; an
    outlier either way is cut at the axis, marked and labelled with its value. ``markers``
    draw a dashed line through a slot, ``bands`` shade a span of slots; ``empty`` is written
    across the plot when every value is zero."""
    ints = [int(v) for v in values]
    axis = _small_axis(robust_limit(ints), -robust_limit([-v for v in ints]))
    total = sum(ints)
    parts = _small_frame(
        title,
        f"{_span(labels)}; " + str(_("%(total)s in total", total=_signed_text(total))),
        axis,
        labels,
        max_labels=max_labels,
        tick_text=lambda v: _short(int(v)),
    )
    under, over = _bands_and_markers(len(labels), bands, markers)
    parts.extend(under)
    slot = SMALL_PLOT_W / max(len(labels), 1)
    for i, (label, value) in enumerate(zip(labels, ints, strict=True)):
        if value == 0:
            continue
        top, bottom = sorted((axis.y(value), axis.y(0)))
        tip = f"{label}: {_signed_text(value)}"
        parts.append(
            _bar(SMALL_LEFT + slot * (i + 0.1), top, slot * 0.8, bottom - top, color, tip, value)
        )
        if value > axis.high or value < axis.low:
            parts.extend(_small_clip_mark(axis, slot, i, value, label))
    if empty and not any(ints):
        parts.append(
            f'<text x="{SMALL_LEFT + SMALL_PLOT_W / 2:.1f}" y="{SMALL_TOP + SMALL_PLOT_H / 2:.1f}" '
            f'text-anchor="middle" font-size="13" fill="#6c757d" class="jifen-empty">'
            f"{escape(empty)}</text>"
        )
    parts.extend(over)
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class LineSeries:
    """A named line; ``None`` leaves a gap (a rate without a whole)."""

    name: str
    values: Sequence[float | None]
    color: str


def _percent_tick(value: float) -> str:
    return f"{value:g} %"


def small_line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[LineSeries],
    *,
    percent: bool = False,
    max_labels: int = 6,
) -> Markup:
    """Lines on one small chart, a dot on each value, with a legend at the top right when
    there are several; ``percent`` labels the axis in percent."""
    known = [float(v) for s in series for v in s.values if v is not None]
    high = math.ceil(max(known, default=0))
    low = math.floor(min(0.0, *known)) if known else 0
    axis = _small_axis(high, low)
    description = "; ".join(f"{s.name}: last {_line_value(_last(s), percent)}" for s in series)
    parts = _small_frame(
        title,
        description,
        axis,
        labels,
        max_labels=max_labels,
        tick_text=_percent_tick if percent else (lambda v: _short(int(v))),
    )
    slot = SMALL_PLOT_W / max(len(labels), 1)
    for s in series:
        points = [
            (SMALL_LEFT + slot * (i + 0.5), axis.y(float(v)), label, v)
            for i, (label, v) in enumerate(zip(labels, s.values, strict=True))
            if v is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"/>'
            )
        for x, y, label, v in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{s.color}" data-value="{v}">'
                f"<title>{escape(label)} · {escape(s.name)}: {_line_value(v, percent)}</title>"
                "</circle>"
            )
    if len(series) > 1:
        parts.extend(_small_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def _last(series: LineSeries) -> float | None:
    return next((v for v in reversed(series.values) if v is not None), None)


def _line_value(value: float | None, percent: bool) -> str:
    if value is None:
        return "none"
    return f"{value:.1f} %" if percent else f"{int(value):,}"


def _small_legend(series: Sequence[LineSeries]) -> list[str]:
    widths = [22 + 7 * len(s.name) for s in series]
    x = SMALL_W - SMALL_RIGHT - sum(widths) + 6
    parts = []
    for s, width in zip(series, widths, strict=True):
        parts.append(
            f'<rect x="{x}" y="6" width="10" height="10" fill="{s.color}"/>'
            f'<text x="{x + 14}" y="15" font-size="12" fill="#343a40">{escape(s.name)}</text>'
        )
        x += width
    return parts
