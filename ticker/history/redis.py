"""RedisHistory: the history store in Redis, so every instance serves the same charts (cache.url = redis://).

The keys, chunks, binary members and the Lua script that writes them are redis_layout.py's; the tiers and
their ages rollup.py's. Only the lease holder writes (the caller sees to that); every instance reads.
One `append` (a round) is one atomic script call that skips duplicates and merges each new quote into
its bucket of every tier, so instances writing at once (a lease handover, buffers written out when Redis
returns) lose nothing. A read takes two or three round trips (pipelined).

While Redis is away, writes go to a bounded MemoryHistory (`buffer_limit` quotes and buckets per tier,
see memory.py) and backfilled candles to a bounded queue (add_candles then returns 0); reads answer from
that buffer. The first call after Redis answers again (tried at most every RETRY_SECONDS) writes the
buffer out, series by series, before anything else. Lost and back are each logged once.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence

import anyio
from redis.asyncio import Redis

from ticker.history import rollup
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory, SeriesData
from ticker.history.redis_layout import SCRIPT, TIER_NAMES, Batch, SeriesKeys, bucket, chunk_of, raw_point
from ticker.history.rollup import TIERS, Bucket
from ticker.models import Candle
from ticker.redis_store import REDIS_FAILURES, describe

logger = logging.getLogger(__name__)

RETRY_SECONDS = 10.0  # while Redis is away, how often a call tries it again (others use the buffer at once)
BUFFER_LIMIT = 50_000  # raw quotes, and buckets of each of the 5-minute and hourly tiers, kept while away
PENDING_CANDLE_BATCHES = 1_000
RECORDS_PER_CALL = 2_000  # when writing the buffer out or a backfill: Redis is not blocked for long


class RedisHistory:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        *,
        buffer_limit: int = BUFFER_LIMIT,
        monotonic: Callable[[], float] = time.monotonic,
        owns_client: bool = False,
    ) -> None:
        """`redis`: a client (redis-py asyncio, bytes replies), closed by `close` only if `owns_client`."""
        self.redis = redis
        self._prefix = f"{namespace}:history:"
        self._script = redis.register_script(SCRIPT)
        self._owns_client = owns_client
        self._monotonic = monotonic
        self.buffer = MemoryHistory(limit=buffer_limit)
        self._pending: deque[tuple[str, str, tuple[Candle, ...]]] = deque(maxlen=PENDING_CANDLE_BATCHES)
        self._lost_at: float | None = None  # monotonic time of the last failed try; None: Redis answers
        self._writing = anyio.Lock()

    # ----------------------------------------------------------------- the interface

    async def append(self, ticks: Sequence[Tick]) -> None:
        async with self._writing:
            if await self._ready():
                try:
                    await self._append(ticks)
                    return
                except REDIS_FAILURES as err:
                    self._lost(err)
            self.buffer.add_ticks(ticks)

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        async with self._writing:
            if await self._ready():
                try:
                    return await self._add_candles(symbol, currency, candles)
                except REDIS_FAILURES as err:
                    self._lost(err)
            self._pending.append((symbol, currency, tuple(candles)))
            return 0  # applied (by the same rule) when Redis is back

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        if await self._readable():
            try:
                return await self._candles(symbol, currency, range, now)
            except REDIS_FAILURES as err:
                self._lost(err)
        return await self.buffer.candles(symbol, currency, range, now)

    async def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        if await self._readable():
            try:
                return await self._price_at(symbol, currency, at, tolerance)
            except REDIS_FAILURES as err:
                self._lost(err)
        return await self.buffer.price_at(symbol, currency, at, tolerance)

    async def earliest(self, symbol: str, currency: str) -> float | None:
        if await self._readable():
            try:
                return await self._earliest(self._series(symbol, currency))
            except REDIS_FAILURES as err:
                self._lost(err)
        return await self.buffer.earliest(symbol, currency)

    async def prune(self, keep: Collection[str], now: float) -> None:
        async with self._writing:
            self.buffer.prune_now(keep, now)
            if await self._ready():
                try:
                    await self._prune(keep, now)
                except REDIS_FAILURES as err:
                    self._lost(err)

    async def close(self) -> None:
        if self._owns_client:
            try:
                await self.redis.aclose()
            except REDIS_FAILURES:
                pass

    # ----------------------------------------------------------------- away and back

    @property
    def away(self) -> bool:
        return self._lost_at is not None

    def _lost(self, err: BaseException) -> None:
        if self._lost_at is None:
            logger.warning(
                "history: Redis lost (%s); keeping new points in memory (at most %d a tier) until it is back",
                describe(err),
                self.buffer.limit or 0,
            )
        self._lost_at = self._monotonic()

    async def _ready(self) -> bool:
        """Whether to write to Redis now: False while it is away (tried again every RETRY_SECONDS); the
        buffer is written out first when there is one. Call under `_writing`."""
        if self._lost_at is not None:
            if self._monotonic() - self._lost_at < RETRY_SECONDS:
                return False
            try:
                await self.redis.ping()
            except REDIS_FAILURES as err:
                self._lost(err)
                return False
        if not self.buffer.empty or self._pending:
            try:
                written = await self._flush()
            except REDIS_FAILURES as err:
                self._lost(err)
                return False
            logger.info("history: wrote %d points and buckets kept while Redis was away", written)
        if self._lost_at is not None:
            logger.info("history: Redis back")
            self._lost_at = None
        return True

    async def _readable(self) -> bool:
        """Whether to read from Redis: not while it is away; a buffer left to write goes first."""
        if not self.buffer.empty or self._pending or self._lost_at is not None:
            async with self._writing:
                return await self._ready()
        return True

    async def _flush(self) -> int:
        """Write the buffer out, series by series (each removed once written; writing twice is harmless)."""
        written = 0
        for (symbol, currency), data in self.buffer.series():
            points, buckets = _contents(data)
            await self._merge(self._series(symbol, currency), points, buckets)
            self.buffer.forget((symbol, currency))
            written += len(points) + len(buckets)
        while self._pending:
            symbol, currency, candles = self._pending[0]
            await self._add_candles(symbol, currency, candles)
            self._pending.popleft()
        return written

    # ----------------------------------------------------------------- Redis itself

    def _series(self, symbol: str, currency: str) -> SeriesKeys:
        return SeriesKeys(self._prefix, symbol, currency)

    async def _run(self, batch: Batch) -> None:
        if len(batch):
            await self._script(keys=batch.keys, args=batch.args())

    async def _append(self, ticks: Sequence[Tick]) -> None:
        batch = Batch(self._prefix + "series")
        for tick in ticks:
            if tick.valid:
                buckets = [(tier, rollup.tick_bucket(tick.at, tick.price, tier.seconds)) for tier in TIERS]
                batch.quote(self._series(tick.symbol, tick.currency), tick.at, tick.price, buckets)
        await self._run(batch)

    async def _add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        series = self._series(symbol, currency)
        kept = rollup.backfill(candles, await self._earliest(series))
        await self._merge(series, [], [pair for c in kept for pair in rollup.candle_buckets(c)])
        return len(kept)

    async def _merge(
        self, series: SeriesKeys, points: list[tuple[float, float]], buckets: list[tuple[rollup.Tier, Bucket]]
    ) -> None:
        """Raw points (kept if absent) and buckets (merged), a few thousand per script call."""
        batch = Batch(self._prefix + "series")
        for at, price in points:
            batch.point(series, at, price)
            if len(batch) >= RECORDS_PER_CALL:
                await self._run(batch)
                batch = Batch(self._prefix + "series")
        for tier, b in buckets:
            batch.bucket(series, tier, b)
            if len(batch) >= RECORDS_PER_CALL:
                await self._run(batch)
                batch = Batch(self._prefix + "series")
        await self._run(batch)

    async def _candles(self, symbol: str, currency: str, range_name: str, now: float) -> list[Candle]:
        series = self._series(symbol, currency)
        chart = rollup.plan(range_name, now, await self._earliest(series))
        if chart is None:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tier in chart.tiers:
                for key in series.chunks(tier.name, chart.after(tier), now):
                    pipe.zrangebyscore(key, f"({chart.after(tier)!r}", repr(now))
            replies = iter(await pipe.execute())
        rows = {
            tier.seconds: [bucket(m) for _ in series.chunks(tier.name, chart.after(tier), now) for m in next(replies)]
            for tier in chart.tiers
        }
        return rollup.assemble(chart, rows)

    async def _price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        if not math.isfinite(at):
            return None
        series = self._series(symbol, currency)
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in TIER_NAMES:
                # In this chunk and its neighbours: the point (or bucket) at or before `at` and the one before
                # it (a bucket's close may be nearer), and the first after it.
                number = chunk_of(name, at)
                for n in (number - 1, number):
                    pipe.zrevrangebyscore(series.chunk(name, n), repr(at), "-inf", start=0, num=2)
                for n in (number, number + 1):
                    pipe.zrangebyscore(series.chunk(name, n), f"({at!r}", "+inf", start=0, num=1)
            replies = await pipe.execute()
        points = [raw_point(m) for reply in replies[:4] for m in reply]
        points += [(b.close_at, b.close) for reply in replies[4:] for b in map(bucket, reply)]
        return rollup.nearest(points, at, tolerance)

    async def _earliest(self, series: SeriesKeys) -> float | None:
        first = await self.redis.zrange(series.index("1d"), 0, 0)
        if not first:
            return None
        members = await self.redis.zrange(series.chunk("1d", int(first[0])), 0, 0)
        if not members:
            return None
        b = bucket(members[0])
        return float(b.start + b.first)

    async def _prune(self, keep: Collection[str], now: float) -> None:
        """Whole chunks past their tier's age go, the rest of the oldest chunk by score; a removed coin's
        keys all go once its newest point is FORGET_AFTER old."""
        index = self._prefix + "series"
        all_series = [self._series(*m.decode().split(":", 1)) async for m in self.redis.sscan_iter(index)]
        cutoffs = {"raw": now - rollup.RAW_KEEP, **{t.name: rollup.expired(t, now) for t in TIERS}}
        async with self.redis.pipeline(transaction=False) as pipe:
            for series in all_series:
                for tier in TIER_NAMES:
                    pipe.zrange(series.index(tier), 0, -1)
            replies = iter(await pipe.execute())
            chunks = [{tier: [int(n) for n in next(replies)] for tier in TIER_NAMES} for _ in all_series]
            for series, held in zip(all_series, chunks, strict=True):
                pipe.zrange(series.chunk("1d", max(held["1d"], default=0)), -1, -1)
            newest = [bucket(last[0]).close_at if last else None for last in await pipe.execute()]
        async with self.redis.pipeline(transaction=False) as pipe:
            for series, held, last in zip(all_series, chunks, newest, strict=True):
                if series.symbol not in keep and (last is None or last <= now - rollup.FORGET_AFTER):
                    pipe.delete(
                        *(series.chunk(t, n) for t in TIER_NAMES for n in held[t]), *map(series.index, TIER_NAMES)
                    )
                    pipe.srem(index, series.name)
                    continue
                for tier, cutoff in cutoffs.items():
                    if cutoff is None:
                        continue
                    oldest = chunk_of(tier, cutoff)
                    gone = [n for n in held[tier] if n < oldest]
                    if gone:
                        pipe.delete(*(series.chunk(tier, n) for n in gone))
                        pipe.zrem(series.index(tier), *gone)
                    pipe.zremrangebyscore(series.chunk(tier, oldest), "-inf", f"({cutoff!r}")
            await pipe.execute()


def _contents(data: SeriesData) -> tuple[list[tuple[float, float]], list[tuple[rollup.Tier, Bucket]]]:
    """A buffered series: its raw points and its buckets of every tier."""
    points = list(data.raw.items.items())
    buckets = [(tier, b) for tier in TIERS for b in data.tiers[tier.seconds].items.values()]
    return points, buckets
