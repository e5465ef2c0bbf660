"""Server-rendered SVG interval charts (no JavaScript, no CDN, no inline styles: the CSP forbids them).

A chart is a list of rows: a label, a point (the posterior mean) and a bar (the 95 % interval), on one
shared axis from 0 to a round maximum. The template draws it; this computes the geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 560
LABEL_WIDTH = 150
ROW_HEIGHT = 26
TOP = 8
AXIS_HEIGHT = 22


@dataclass(frozen=True)
class Bar:
    label: str
    mean: float
    low: float
    high: float
    highlight: bool = False


@dataclass(frozen=True)
class Row:
    label: str
    y: float
    x_low: float
    x_high: float
    x_mean: float
    text: str
    highlight: bool


@dataclass(frozen=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    label_width: int
    rows: list[Row]
    ticks: list[Tick]
    axis_y: float


def _round_max(value: float) -> float:
    if value <= 0:
        return 0.01
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        top = step * 10**exponent
        if top >= value:
            return top
    return 10 ** (exponent + 1)


def interval_chart(bars: list[Bar]) -> Chart:
    top = _round_max(max((b.high for b in bars), default=0.01) * 1.05)
    plot = WIDTH - LABEL_WIDTH - 16

    def x(value: float) -> float:
        return round(LABEL_WIDTH + plot * min(max(value, 0.0), top) / top, 1)

    rows = [
        Row(
            label=bar.label[:24],
            y=TOP + i * ROW_HEIGHT + ROW_HEIGHT / 2,
            x_low=x(bar.low),
            x_high=x(bar.high),
            x_mean=x(bar.mean),
            text=f"{bar.mean:.2%} ({bar.low:.2%}–{bar.high:.2%})",
            highlight=bar.highlight,
        )
        for i, bar in enumerate(bars)
    ]
    axis_y = TOP + len(bars) * ROW_HEIGHT + 4
    ticks = [Tick(x=x(top * k / 4), text=f"{top * k / 4:.2%}") for k in range(5)]
    return Chart(
        width=WIDTH,
        height=int(axis_y + AXIS_HEIGHT),
        label_width=LABEL_WIDTH,
        rows=rows,
        ticks=ticks,
        axis_y=axis_y,
    )
