"""Inline SVG sparklines: a few hundred bytes per coin, no script, no external request."""

from __future__ import annotations

import math
from collections.abc import Sequence

WIDTH = 64
HEIGHT = 20
MAX_POINTS = 42  # 7 days at 4-hour steps is enough detail at 64 px


def sparkline_svg(prices: Sequence[float], *, up: bool | None = None, max_points: int = MAX_POINTS) -> str | None:
    """A polyline of the prices (at most `max_points` of them), scaled to fit; None when there are too few
    points to draw."""
    points = _downsample([p for p in prices if math.isfinite(p) and p > 0], max_points)
    if len(points) < 2:
        return None
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = WIDTH / (len(points) - 1)
    coords = " ".join(
        f"{i * step:.1f},{HEIGHT - 1 - (price - low) / span * (HEIGHT - 2):.1f}" for i, price in enumerate(points)
    )
    trend = "up" if (points[-1] >= points[0] if up is None else up) else "down"
    return (
        f'<svg class="tk-spark tk-{trend}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'aria-hidden="true"><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{coords}"/></svg>'
    )


def _downsample(values: Sequence[float], limit: int) -> list[float]:
    if len(values) <= limit:
        return list(values)
    stride = (len(values) - 1) / (limit - 1)
    return [values[round(i * stride)] for i in range(limit)]
