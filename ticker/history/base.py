"""The history store's interface: what the poller appends, and what charts and changes read.

Backends (all keep the same tiers, see rollup.py): sqlite.py (the default, one file), redis.py (when
cache.url is redis://; memory.py buffers it while Redis is away), memory.py (in process, bounded).
Every failure of a backend's own storage is a HistoryError; bad input (a price that is not a finite
positive number, a candle that does not nest in our buckets) is left out, never stored.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from ticker.models import Candle

# Chart ranges: their span in seconds; "max" is everything recorded.
RANGES: Mapping[str, int | None] = MappingProxyType(
    {"24h": 86_400, "7d": 604_800, "30d": 2_592_000, "1y": 31_536_000, "max": None}
)
MAX_POINTS = 500  # buckets one `candles` call returns at most
LATEST = 4_102_444_800  # 2100-01-01 UTC: a later time is nonsense (and past 32-bit bucket starts)


@dataclass(frozen=True, slots=True)
class Tick:
    """One accepted quote: symbol (upper-case), currency (lower-case ISO/btc/eth/sats), at (Unix seconds,
    float), price."""

    symbol: str
    currency: str
    at: float
    price: float

    @property
    def valid(self) -> bool:
        """A finite positive price at a time after 1970 and before 2100: anything else is never stored."""
        return 0 < self.at < LATEST and math.isfinite(self.price) and self.price > 0


class HistoryStore(Protocol):
    async def append(self, ticks: Sequence[Tick]) -> None:
        """Every accepted quote of a round, all currencies; duplicates (same symbol, currency, at) ignored."""
        ...

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        """Backfilled past: only buckets older than what is recorded for that coin/currency; returns how many
        were kept."""
        ...

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        """<= MAX_POINTS buckets oldest first covering (now - RANGES[range], now]; "max" = everything; each
        bucket keeps first/last/high/low of what it covers. [] when nothing recorded."""
        ...

    async def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        """The close of the recorded point/bucket nearest `at`, if within `tolerance` seconds."""
        ...

    async def earliest(self, symbol: str, currency: str) -> float | None:
        """Unix seconds of the oldest point (whole seconds)."""
        ...

    async def prune(self, keep: Collection[str], now: float) -> None:
        """Apply retention; forget coins not in `keep` not seen for the grace period."""
        ...

    async def close(self) -> None: ...
