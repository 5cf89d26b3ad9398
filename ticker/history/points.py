"""Chart points from a store's buckets: what `/api/v1/history`, the chart widget and `ticker history` show.

A point is `(unix_seconds, price)`: the last price (close) of one bucket, at the end of that bucket
(start + length), or at `now` for the bucket still open. So a point says "the price as of this time":
the close is the last price recorded at or before it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ticker.models import Candle

Point = tuple[int, float]  # (Unix seconds, price)


def point_time(candle: Candle, now: float) -> int:
    """When a bucket's close stands: its end, or `now` (whole seconds) while it is still open."""
    return min(candle.start + candle.seconds, int(now))


def chart_points(candles: Sequence[Candle], now: float) -> list[Point]:
    """One (time, close) per bucket, oldest first, as the store returned them (<= MAX_POINTS)."""
    return [(point_time(candle, now), candle.close) for candle in candles]
