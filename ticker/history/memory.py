"""MemoryHistory: the history store in process memory, bounded.

The same tiers as every backend (rollup.py), each a map kept sorted by time. It holds the Redis
backend's points while Redis is away (redis.py writes them out with `series` and `forget`), and suits
a demo or a test. With `limit`, raw quotes, 5-minute and hourly buckets are each at most `limit` in all
(the oldest go first, 10 % at a time; the coarser tiers keep their aggregate, so hourly and daily
figures stay exact); daily buckets, one per coin and currency a day, are not limited.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Collection, Sequence
from typing import Generic, TypeVar

from ticker.history import rollup
from ticker.history.base import Tick
from ticker.history.rollup import TIERS, Bucket, Tier
from ticker.models import Candle

Series = tuple[str, str]  # (symbol, currency)
K = TypeVar("K", int, float)
V = TypeVar("V")


class SortedMap(Generic[K, V]):
    """A dict whose keys (times) are also kept in a sorted list, for ranges and dropping the oldest."""

    def __init__(self) -> None:
        self.items: dict[K, V] = {}
        self.keys: list[K] = []

    def __len__(self) -> int:
        return len(self.keys)

    def put(self, key: K, value: V) -> None:
        if key not in self.items:
            if not self.keys or key > self.keys[-1]:
                self.keys.append(key)  # the usual case: time moves on
            else:
                insort(self.keys, key)
        self.items[key] = value

    def drop_before(self, key: K | float) -> None:
        cut = bisect_left(self.keys, key)
        for old in self.keys[:cut]:
            del self.items[old]
        del self.keys[:cut]

    def between(self, after: float, until: float) -> list[V]:
        """Values with after < key <= until, oldest first."""
        return [self.items[k] for k in self.keys[bisect_right(self.keys, after) : bisect_right(self.keys, until)]]

    def around(self, at: float) -> list[V]:
        """The two values at or before `at` and the one after it."""
        i = bisect_right(self.keys, at)
        return [self.items[k] for k in self.keys[max(i - 2, 0) : i + 1]]


class SeriesData:
    """One coin in one currency: raw quotes (at -> price) and each tier's buckets (start -> bucket)."""

    def __init__(self) -> None:
        self.raw: SortedMap[float, float] = SortedMap()
        self.tiers: dict[int, SortedMap[int, Bucket]] = {tier.seconds: SortedMap() for tier in TIERS}

    def earliest(self) -> float | None:
        days = self.tiers[rollup.DAY]
        return float(days.items[days.keys[0]].start + days.items[days.keys[0]].first) if days else None

    def newest(self) -> float | None:
        days = self.tiers[rollup.DAY]
        return float(days.items[days.keys[-1]].close_at) if days else None

    def size(self) -> int:
        return len(self.raw) + sum(len(t) for t in self.tiers.values())


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
        return sum(data.size() for data in self._series.values())

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
        rows = {t.seconds: data.tiers[t.seconds].between(chart.after(t), now) for t in chart.tiers}
        return rollup.assemble(chart, rows)

    async def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        data = self._series.get((symbol, currency))
        if data is None:
            return None
        raw = data.raw
        i = bisect_right(raw.keys, at)
        points = [(k, raw.items[k]) for k in raw.keys[max(i - 1, 0) : i + 1]]
        for tier in TIERS:
            points += [(b.close_at, b.close) for b in data.tiers[tier.seconds].around(at)]
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
            data = self._series.get((tick.symbol, tick.currency))
            if data is None:
                data = self._series[(tick.symbol, tick.currency)] = SeriesData()
            if tick.at in data.raw.items:
                continue  # a duplicate: the first one stands
            data.raw.put(tick.at, tick.price)
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
            data.raw.drop_before(now - rollup.RAW_KEEP)
            for tier in TIERS:
                cutoff = rollup.expired(tier, now)
                if cutoff is not None:
                    data.tiers[tier.seconds].drop_before(cutoff)

    def series(self) -> list[tuple[Series, SeriesData]]:
        """Everything held, series by series (for writing it elsewhere, then `forget`)."""
        return list(self._series.items())

    def forget(self, key: Series) -> None:
        self._series.pop(key, None)

    @staticmethod
    def _merge(data: SeriesData, tier: Tier, bucket: Bucket) -> None:
        buckets = data.tiers[tier.seconds]
        old = buckets.items.get(bucket.start)
        buckets.put(bucket.start, bucket if old is None else rollup.merge(old, bucket))

    def _bound(self) -> None:
        """Drop the oldest raw quotes and 5-minute and hourly buckets beyond `limit` (each), 10 % at a time."""
        if self._limit is None:
            return
        series = list(self._series.values())
        maps: list[list[SortedMap[float, float]] | list[SortedMap[int, Bucket]]] = [[s.raw for s in series]]
        maps += [[s.tiers[tier.seconds] for s in series] for tier in TIERS[:-1]]
        for tier_maps in maps:
            if sum(len(m) for m in tier_maps) > self._limit:
                times = sorted(k for m in tier_maps for k in m.keys)
                cutoff = times[len(times) - self._limit * 9 // 10]
                for m in tier_maps:
                    m.drop_before(cutoff)
