"""Time-series charts as inline SVG, drawn on the server (no JavaScript, no external assets).

Pure functions from data to markup: the status pages embed the result directly in HTML, so a
chart renders in any browser, in a screenshot, and with scripting disabled.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Protocol

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
"""Series colours (the widely used "tab10" set: distinct, readable on white)."""

TIME_STEPS = tuple(
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880)
)


def colour_for(index: int) -> str:
    """The palette colour of the ``index``-th series (wrapping round)."""
    return PALETTE[index % len(PALETTE)]


@dataclasses.dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: its name in the legend, its points (time, value) and its style."""

    name: str
    points: Sequence[tuple[datetime, float]]
    colour: str
    width: float = 1.5
    markers: bool = False


class Scale(Protocol):
    """Maps data values to a 0..1 position (bottom..top) and names its tick marks."""

    def position(self, value: float) -> float: ...

    def ticks(self) -> list[tuple[float, str]]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class LinearScale:
    """A plain linear axis from ``low`` to ``high``; values outside are pinned to the edge."""

    low: float
    high: float
    step: float

    def position(self, value: float) -> float:
        span = self.high - self.low
        return min(1.0, max(0.0, (value - self.low) / span)) if span > 0 else 0.5

    def ticks(self) -> list[tuple[float, str]]:
        count = round((self.high - self.low) / self.step)
        values = [self.low + i * self.step for i in range(count + 1)]
        return [(v, _number(v)) for v in values]


def score_scale(values: Sequence[float]) -> LinearScale:
    """The score axis: at least -20..20 (the step table's range), widened to fit the data."""
    low = min([-20.0, *values])
    high = max([20.0, *values])
    step = 10.0 if high - low <= 80 else 20.0
    return LinearScale(
        low=math.floor(low / step) * step, high=math.ceil(high / step) * step, step=step
    )


@dataclasses.dataclass(frozen=True, slots=True)
class SymlogScale:
    """A symmetric log axis for offsets (seconds): linear within ``linear`` of zero, then log.

    NTP offsets span microseconds to seconds; on a linear axis a 4 s outlier flattens every
    good server onto the zero line. Ticks are labelled in milliseconds.
    """

    limit: float = 10.0
    linear: float = 0.001

    def _transform(self, value: float) -> float:
        return math.copysign(math.log10(1 + abs(value) / self.linear), value)

    def position(self, value: float) -> float:
        top = self._transform(self.limit)
        clamped = max(-self.limit, min(self.limit, value))
        return 0.5 + self._transform(clamped) / (2 * top)

    def ticks(self) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = [(0.0, "0")]
        magnitude = self.linear
        while magnitude <= self.limit * 1.0001:
            label = _milliseconds(magnitude)
            out += [(magnitude, f"+{label}"), (-magnitude, f"-{label}")]
            magnitude *= 10
        return sorted(out)


def offset_scale(values: Sequence[float]) -> SymlogScale:
    """The offset axis: up to the next power of ten above the largest offset (at least 10 ms)."""
    largest = max([0.01, *(abs(v) for v in values)])
    return SymlogScale(limit=min(1000.0, 10 ** math.ceil(math.log10(largest))))


def _number(value: float) -> str:
    return f"{value:g}"


def _milliseconds(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:g} ms" if ms < 1000 else f"{seconds:g} s"


def time_ticks(start: datetime, end: datetime, target: int = 8) -> list[datetime]:
    """Round tick times between ``start`` and ``end``: the smallest step giving ≤ ``target``."""
    span = end - start
    step = next((s for s in TIME_STEPS if span / s <= target), TIME_STEPS[-1])
    seconds = int(step.total_seconds())
    epoch = datetime(1970, 1, 1, tzinfo=start.tzinfo)
    first = math.ceil((start - epoch).total_seconds() / seconds) * seconds
    ticks = []
    tick = epoch + timedelta(seconds=first)
    while tick <= end:
        ticks.append(tick)
        tick += step
    return ticks


def _time_label(tick: datetime, span: timedelta) -> str:
    return tick.strftime("%m-%d %H:%M" if span > timedelta(days=1) else "%H:%M")


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """The pixel geometry of a chart: plot area inside margins for axis labels and legend."""

    width: int = 960
    height: int = 280
    left: int = 64
    right: int = 16
    top: int = 28
    bottom: int = 28
    legend_row: int = 18
    legend_columns: int = 3

    def legend_height(self, count: int) -> int:
        return math.ceil(count / self.legend_columns) * self.legend_row + (8 if count else 0)

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> int:
        return self.height - self.top - self.bottom


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def _segments(points: Sequence[tuple[float, float, datetime]], gap: timedelta) -> list[list]:
    """Split a line where consecutive points are further apart in time than ``gap``."""
    segments: list[list[tuple[float, float, datetime]]] = []
    for point in points:
        if not segments or point[2] - segments[-1][-1][2] > gap:
            segments.append([])
        segments[-1].append(point)
    return segments


def time_chart(
    series: Sequence[Series],
    *,
    title: str,
    start: datetime,
    end: datetime,
    scale: Scale,
    frame: Frame | None = None,
    gap: timedelta = timedelta(minutes=20),
    guide: float | None = None,
) -> str:
    """An SVG line chart of ``series`` over [start, end] with axes, grid and legend.

    Lines break where a series has no point for longer than ``gap`` (a monitor that stopped
    reporting should not look like a straight interpolation). ``guide`` draws a dashed
    reference line (e.g. the score above which a server is used).
    """
    f = frame or Frame()
    total_height = f.height + f.legend_height(len(series))
    span = max(end - start, timedelta(seconds=1))

    def x_of(ts: datetime) -> float:
        return f.left + (ts - start) / span * f.plot_width

    def y_of(value: float) -> float:
        return f.top + (1 - scale.position(value)) * f.plot_height

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{f.width}" height="{total_height}" viewBox="0 0 {f.width} {total_height}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{f.width}" height="{total_height}" fill="#ffffff"/>',
        f'<text x="{f.left}" y="18" class="chart-title" font-size="14" font-weight="bold" '
        f'fill="#222">{escape(title)}</text>',
        f'<rect x="{f.left}" y="{f.top}" width="{f.plot_width}" height="{f.plot_height}" '
        f'fill="#fafafa" stroke="#999"/>',
    ]
    for value, label in scale.ticks():
        y = _fmt(y_of(value))
        parts.append(
            f'<line x1="{f.left}" x2="{f.left + f.plot_width}" y1="{y}" y2="{y}" '
            f'stroke="#e2e2e2"/>'
            f'<text x="{f.left - 6}" y="{y}" font-size="11" text-anchor="end" '
            f'dominant-baseline="middle" fill="#444">{escape(label)}</text>'
        )
    for tick in time_ticks(start, end):
        x = _fmt(x_of(tick))
        parts.append(
            f'<line x1="{x}" x2="{x}" y1="{f.top}" y2="{f.top + f.plot_height}" '
            f'stroke="#e2e2e2"/>'
            f'<text x="{x}" y="{f.top + f.plot_height + 16}" font-size="11" '
            f'text-anchor="middle" fill="#444">{_time_label(tick, span)}</text>'
        )
    if guide is not None:
        y = _fmt(y_of(guide))
        parts.append(
            f'<line x1="{f.left}" x2="{f.left + f.plot_width}" y1="{y}" y2="{y}" '
            f'stroke="#2a2" stroke-dasharray="6 4"/>'
        )
    for s in series:
        located = [(x_of(ts), y_of(v), ts) for ts, v in s.points if start <= ts <= end]
        parts.append(f'<g class="series" data-name="{escape(s.name)}">')
        for segment in _segments(located, gap):
            coords = " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y, _ in segment)
            if len(segment) == 1 or s.markers:
                parts.extend(
                    f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="2.5" fill="{s.colour}"/>'
                    for x, y, _ in segment
                )
            if len(segment) > 1:
                parts.append(
                    f'<polyline points="{coords}" fill="none" stroke="{s.colour}" '
                    f'stroke-width="{s.width}" stroke-linejoin="round"/>'
                )
        parts.append("</g>")
    parts.append(_legend(series, f))
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[Series], f: Frame) -> str:
    column_width = f.plot_width / f.legend_columns
    items = []
    for i, s in enumerate(series):
        row, column = divmod(i, f.legend_columns)
        x = f.left + column * column_width
        y = f.height + row * f.legend_row
        items.append(
            f'<rect x="{_fmt(x)}" y="{y}" width="14" height="10" fill="{s.colour}"/>'
            f'<text x="{_fmt(x + 20)}" y="{y + 9}" font-size="12" fill="#222">'
            f"{escape(s.name)}</text>"
        )
    return "".join(items)
