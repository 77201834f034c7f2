"""Server-rendered SVG charts: geometry computed here, drawn by the template (no script, no remote
library, nothing for the CSP to allow). Numbers only — labels are escaped by the template."""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 720
HEIGHT = 260
MARGIN_LEFT = 44
MARGIN_BOTTOM = 28
MARGIN_TOP = 12


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    value: int
    y: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    ticks: list[Tick]
    baseline: float
    left: float

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def _nice_step(top: int) -> int:
    """A round tick step giving about four ticks up to `top`."""
    raw = max(top / 4, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return int(factor * magnitude)
    return int(10 * magnitude)  # pragma: no cover - the loop always returns


def hourly_bars(counts: dict[int, int], first_hour: int = 7, last_hour: int = 19) -> BarChart:
    """One bar per hour of day; the range widens to include every hour that has a count."""
    hours = [h for h, c in counts.items() if c]
    first = min([first_hour, *hours])
    last = max([last_hour, *hours])
    slots = list(range(first, last + 1))
    top = max([0, *counts.values()])
    step = _nice_step(top)
    scale_top = max(step, math.ceil(top / step) * step)
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    plot_w = WIDTH - MARGIN_LEFT - 8
    slot_w = plot_w / len(slots)
    baseline = HEIGHT - MARGIN_BOTTOM
    bars = []
    for i, hour in enumerate(slots):
        value = counts.get(hour, 0)
        height = plot_h * value / scale_top
        bars.append(
            Bar(
                label=f"{hour:02d}",
                value=value,
                x=round(MARGIN_LEFT + i * slot_w + slot_w * 0.15, 1),
                y=round(baseline - height, 1),
                width=round(slot_w * 0.7, 1),
                height=round(height, 1),
            )
        )
    ticks = [Tick(v, round(baseline - plot_h * v / scale_top, 1)) for v in range(0, scale_top + 1, step)]
    return BarChart(WIDTH, HEIGHT, bars, ticks, baseline, MARGIN_LEFT)
