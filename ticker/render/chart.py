"""The chart's drawing: price points scaled into an SVG line and area, a few KB for 500 points.

The SVG's viewBox is WIDTH x HEIGHT user units, stretched to the page's width and the chart's height
(preserveAspectRatio="none"; the stroke keeps its width with vector-effect="non-scaling-stroke"), so one
drawing reads at 300 px and at 800 px; every text lies outside it, in HTML. Time runs left to right in
proportion (a gap in the history stays a gap); the vertical scale runs from `low` (bottom) to `high`
(top), the buckets' own lows and highs, with PAD of the height kept free at each edge. Coordinates are
whole user units (a 1000-unit width puts 2 units between 500 points), written as one absolute moveto
and then relative steps computed from the rounded absolute positions, so rounding never accumulates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import escape

WIDTH = 1000
HEIGHT = 300
PAD = 0.03  # of the height, free above the high and below the low (room for the stroke)


@dataclass(frozen=True)
class Geometry:
    """A drawn series: `coords` in user units (x right, y down), `line` and `area` as SVG path data, and
    the scale (`low`, `high`: prices at the bottom and top edges of the padded band; `t0`, `t1`: Unix
    seconds at the left and right edges)."""

    coords: tuple[tuple[int, int], ...]
    line: str
    area: str
    low: float
    high: float
    t0: float
    t1: float


def y_of(price: float, low: float, high: float) -> float:
    """A price's height in user units: PAD from the top at `high`, PAD from the bottom at `low`; the middle
    when the band is flat (or not a finite span)."""
    span = high - low
    if not math.isfinite(span) or span <= 0:
        return HEIGHT / 2
    share = min(max((price - low) / span, 0.0), 1.0)
    return HEIGHT * (1 - PAD - share * (1 - 2 * PAD))


def geometry(points: Sequence[tuple[float, float]], low: float | None = None, high: float | None = None) -> Geometry:
    """The drawing of (Unix seconds, price) points (any order; sorted by time here). `low`/`high` widen the
    scale (the buckets' extremes); the points' own range always fits. Raises ValueError with fewer than two
    points or a price that is not a finite positive number."""
    if len(points) < 2:
        raise ValueError("a line needs at least two points")
    ordered = sorted(points)
    prices = [price for _, price in ordered]
    if not all(math.isfinite(p) and p > 0 for p in prices) or not all(math.isfinite(t) for t, _ in ordered):
        raise ValueError("prices must be finite positive numbers at finite times")
    lo = min([*prices, *([low] if low is not None and math.isfinite(low) and low > 0 else [])])
    hi = max([*prices, *([high] if high is not None and math.isfinite(high) else [])])
    t0, t1 = ordered[0][0], ordered[-1][0]
    duration = (t1 - t0) or 1.0
    coords = tuple((round((t - t0) / duration * WIDTH), round(y_of(price, lo, hi))) for t, price in ordered)
    line = path(coords)
    area = f"{line}V{HEIGHT}H{coords[0][0]}Z"
    return Geometry(coords, line, area, lo, hi, t0, t1)


def path(coords: Sequence[tuple[int, int]]) -> str:
    """SVG path data through integer coordinates: "M0,150l2,-3 2,5" (relative steps after the first)."""
    x, y = coords[0]
    steps = []
    for nx, ny in coords[1:]:
        dx, dy = nx - x, ny - y
        steps.append(f"{dx}{dy}" if dy < 0 else f"{dx},{dy}")  # a minus sign separates numbers by itself
        x, y = nx, ny
    return f"M{coords[0][0]},{coords[0][1]}l" + " ".join(steps) if steps else f"M{x},{y}"


def svg(shape: Geometry, label: str) -> str:
    """The inline SVG (escaped `label` as its accessible name); classes style it from the page's CSS."""
    return (
        f'<svg class="tc-svg" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}"><path class="tc-area" d="{shape.area}"/>'
        f'<path class="tc-line" d="{shape.line}" vector-effect="non-scaling-stroke"/></svg>'
    )
