"""Hourly price history per coin (default currency), for 7-day sparklines.

Kept in the snapshot, so it is persisted and shared like the prices. One
point per coin per hour, 168 at most; a provider's own 7-day sparkline
(CoinGecko's) seeds a coin whose history is still short.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

from ticker.models import Quote

POINTS = 168  # 7 days of hours
STEP_SECONDS = 3600


def hour_of(moment: datetime) -> int:
    return int(moment.timestamp()) // STEP_SECONDS


def record(
    history: Mapping[str, tuple[tuple[int, float], ...]],
    quotes: Iterable[Quote],
    currency: str,
) -> Mapping[str, tuple[tuple[int, float], ...]]:
    """The history with this round's quotes added: one (hour, price) point per coin and hour."""
    updated = dict(history)
    for quote in quotes:
        if quote.currency != currency or quote.updated_at is None:
            continue
        points = updated.get(quote.symbol, ())
        hour = hour_of(quote.updated_at)
        if quote.sparkline_7d and len(points) < 24:
            points = _seed(quote.sparkline_7d, hour)
        if points and points[-1][0] == hour:
            continue
        updated[quote.symbol] = (*points, (hour, quote.price))[-POINTS:]
    return MappingProxyType(updated)


def _seed(prices: Sequence[float], last_hour: int) -> tuple[tuple[int, float], ...]:
    """A provider's hourly series ending now, placed on our hour grid (the last point is replaced by ours)."""
    tail = list(prices)[-POINTS:]
    return tuple((last_hour - len(tail) + i, float(p)) for i, p in enumerate(tail))[:-1]


def series(history: Mapping[str, tuple[tuple[int, float], ...]], symbol: str) -> list[float]:
    return [price for _, price in history.get(symbol, ())]
