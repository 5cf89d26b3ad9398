"""MemoryHistory: the history store in process memory, bounded.

The same tiers as every backend (rollup.py), in dicts. It holds the Redis backend's points while Redis
is away (redis.py writes them out with `series` and `forget`), and suits a demo or a test. With `limit`, raw quotes,
5-minute and hourly buckets are each at most `limit` in all (the oldest go first, 10 % at a time; the
coarser tiers keep their aggregate, so the daily and hourly figures stay exact); daily buckets, one per
coin and currency a day, are not limited.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from ticker.history import rollup
from ticker.history.base import Tick
from ticker.history.rollup import TIERS, Bucket, Tier
from ticker.models import Candle

Series = tuple[str, str]  # (symbol, currency)


@dataclass
class SeriesData:
    """One coin in one currency: raw quotes (at -> price) and each tier's buckets (start -> bucket)."""

    raw: dict[float, float] = field(default_factory=dict)
    tiers: dict[int, dict[int, Bucket]] = field(default_factory=lambda: {tier.seconds: {} for tier in TIERS})

    def earliest(self) -> float | None:
        days = self.tiers[rollup.DAY]
        return min((b.start + b.first for b in days.values()), default=None)

    def newest(self) -> float | None:
        days = self.tiers[rollup.DAY]
        return max((b.close_at for b in days.values()), default=None)


class MemoryHistory:
    def __init__(self, *, limit: int | None = None) -> None:
        self._series: dict[Series, SeriesData] = {}
        self._limit = limit

    @property
    def empty(self) -> bool:
        return not self._series

    @property
    def limit(self) -> int | None:
        return self._limit

    def __len__(self) -> int:
        """Raw quotes and buckets held, all tiers."""
        return sum(len(s.raw) + sum(len(t) for t in s.tiers.values()) for s in self._series.values())

    # ----------------------------------------------------------------- the interface

    async def append(self, ticks: Sequence[Tick]) -> None:
        self.add_ticks(ticks)

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        data = self._series.get((symbol, currency))
        kept = rollup.backfill(candles, data.earliest() if data else None)
        self.add_buckets(symbol, currency, [pair for c in kept for pair in rollup.candle_buckets(c)])
        return len(kept)

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        data = self._series.get((symbol, currency))
        chart = rollup.plan(range, now, data.earliest() if data else None)
        if data is None or chart is None:
            return []
        rows = {t.seconds: list(data.tiers[t.seconds].values()) for t in chart.tiers}
        return rollup.assemble(chart, rows)

    async def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        data = self._series.get((symbol, currency))
        if data is None:
            return None
        points = [*data.raw.items()]
        for tier in TIERS:
            points += [(b.close_at, b.close) for b in data.tiers[tier.seconds].values()]
        return rollup.nearest(points, at, tolerance)

    async def earliest(self, symbol: str, currency: str) -> float | None:
        data = self._series.get((symbol, currency))
        return data.earliest() if data else None

    async def prune(self, keep: Collection[str], now: float) -> None:
        self.prune_now(keep, now)

    async def close(self) -> None:
        return None

    # ----------------------------------------------------------------- synchronous core (also the buffer's)

    def add_ticks(self, ticks: Sequence[Tick]) -> None:
        for tick in ticks:
            if not tick.valid:
                continue
            data = self._series.setdefault((tick.symbol, tick.currency), SeriesData())
            if tick.at in data.raw:
                continue  # a duplicate: the first one stands
            data.raw[tick.at] = tick.price
            for tier in TIERS:
                self._merge(data, tier, rollup.tick_bucket(tick.at, tick.price, tier.seconds))
        self._bound()

    def add_buckets(self, symbol: str, currency: str, buckets: Sequence[tuple[Tier, Bucket]]) -> None:
        if not buckets:
            return
        data = self._series.setdefault((symbol, currency), SeriesData())
        for tier, bucket in buckets:
            self._merge(data, tier, bucket)
        self._bound()

    def prune_now(self, keep: Collection[str], now: float) -> None:
        for key, data in list(self._series.items()):
            newest = data.newest()
            if key[0] not in keep and (newest is None or newest <= now - rollup.FORGET_AFTER):
                del self._series[key]
                continue
            data.raw = {at: p for at, p in data.raw.items() if at >= now - rollup.RAW_KEEP}
            for tier in TIERS:
                cutoff = rollup.expired(tier, now)
                if cutoff is not None:
                    buckets = data.tiers[tier.seconds]
                    data.tiers[tier.seconds] = {s: b for s, b in buckets.items() if s >= cutoff}

    def series(self) -> list[tuple[Series, SeriesData]]:
        """Everything held, series by series (for writing it elsewhere, then `forget`)."""
        return list(self._series.items())

    def forget(self, key: Series) -> None:
        self._series.pop(key, None)

    @staticmethod
    def _merge(data: SeriesData, tier: Tier, bucket: Bucket) -> None:
        buckets = data.tiers[tier.seconds]
        old = buckets.get(bucket.start)
        buckets[bucket.start] = bucket if old is None else rollup.merge(old, bucket)

    def _bound(self) -> None:
        """Drop the oldest raw quotes and 5-minute and hourly buckets beyond `limit` (each), 10 % at a time."""
        if self._limit is None:
            return
        series = list(self._series.values())
        if sum(len(s.raw) for s in series) > self._limit:
            times = sorted(at for s in series for at in s.raw)
            cutoff = times[len(times) - self._limit * 9 // 10]
            for s in series:
                s.raw = {at: p for at, p in s.raw.items() if at >= cutoff}
        for tier in TIERS[:-1]:
            if sum(len(s.tiers[tier.seconds]) for s in series) > self._limit:
                starts = sorted(start for s in series for start in s.tiers[tier.seconds])
                cut = starts[len(starts) - self._limit * 9 // 10]
                for s in series:
                    s.tiers[tier.seconds] = {k: b for k, b in s.tiers[tier.seconds].items() if k >= cut}
