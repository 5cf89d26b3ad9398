"""RedisHistory: the history store in Redis, so every instance serves the same charts (cache.url = redis://).

Keys, under cache.namespace (spelled as redis_store.py spells its own):

    {ns}:history:{SYMBOL}:{currency}:raw       sorted set: score at, member "at:price"
    {ns}:history:{SYMBOL}:{currency}:5m|1h|1d  sorted set: score start, member "start:open:high:low:close:first:last"
    {ns}:history:series                        set of "SYMBOL:currency", for prune

The tiers and their ages are rollup.py's. Only the lease holder writes (the caller sees to that); every
instance reads. Writes are Lua scripts: one `append` (a round) is one atomic call that skips duplicates
and merges each new quote into its bucket of every tier (rollup.merge's rule), so instances writing at
once (a lease handover, buffers written when Redis returns) lose nothing. Numbers travel as Python's
repr and stay those very strings, so prices round-trip exactly.

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
from typing import Any

import anyio
from redis.asyncio import Redis

from ticker.history import rollup
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory, SeriesData
from ticker.history.rollup import TIERS, Bucket
from ticker.models import Candle
from ticker.redis_store import REDIS_FAILURES, describe

logger = logging.getLogger(__name__)

RETRY_SECONDS = 10.0  # while Redis is away, how often a call tries it again (others use the buffer at once)
BUFFER_LIMIT = 50_000  # raw quotes, and buckets of each of the 5-minute and hourly tiers, kept while away
PENDING_CANDLE_BATCHES = 1_000
REPLAY_CHUNK = 2_000  # records per Lua call when writing the buffer out: Redis is not blocked for long

_MERGE_FUNCTION = """
local function merge(key, start, o, h, l, c, f, z)
  local old = redis.call('ZRANGEBYSCORE', key, start, start, 'LIMIT', 0, 1)[1]
  if old then
    local p = {}
    for part in string.gmatch(old, '[^:]+') do p[#p + 1] = part end
    if tonumber(f) >= tonumber(p[6]) then o = p[2]; f = p[6] end
    if tonumber(z) < tonumber(p[7]) then c = p[5]; z = p[7] end
    if tonumber(p[3]) > tonumber(h) then h = p[3] end
    if tonumber(p[4]) < tonumber(l) then l = p[4] end
    redis.call('ZREM', key, old)
  end
  redis.call('ZADD', key, start, start .. ':' .. o .. ':' .. h .. ':' .. l .. ':' .. c .. ':' .. f .. ':' .. z)
end
local function add_raw(key, at, price)
  if redis.call('ZCOUNT', key, at, at) > 0 then return false end
  redis.call('ZADD', key, at, at .. ':' .. price)
  return true
end
local n = tonumber(ARGV[1])
for i = 1, n do redis.call('SADD', KEYS[1], ARGV[1 + i]) end
"""
# KEYS: the series set, then per series its raw, 5m, 1h, 1d keys. ARGV: n, n series names, then per quote
# 9 values: series number (1-based), at, price, and (start, offset) in each of the three tiers.
APPEND_LUA = (
    _MERGE_FUNCTION
    + """
for pos = 2 + n, #ARGV, 9 do
  local keys = 1 + (tonumber(ARGV[pos]) - 1) * 4
  local price = ARGV[pos + 2]
  if add_raw(KEYS[keys + 1], ARGV[pos + 1], price) then
    for t = 1, 3 do
      local start, off = ARGV[pos + 1 + 2 * t], ARGV[pos + 2 + 2 * t]
      merge(KEYS[keys + 1 + t], start, price, price, price, price, off, off)
    end
  end
end
"""
)
# The same KEYS; ARGV: n, names, then per record 9 values: series number, key (1 raw, 2-4 a tier), and
# either at, price (raw) or start, open, high, low, close, first, last (a bucket).
MERGE_LUA = (
    _MERGE_FUNCTION
    + """
for pos = 2 + n, #ARGV, 9 do
  local key = KEYS[1 + (tonumber(ARGV[pos]) - 1) * 4 + tonumber(ARGV[pos + 1])]
  if ARGV[pos + 1] == '1' then
    add_raw(key, ARGV[pos + 2], ARGV[pos + 3])
  else
    merge(key, ARGV[pos + 2], ARGV[pos + 3], ARGV[pos + 4], ARGV[pos + 5], ARGV[pos + 6], ARGV[pos + 7], ARGV[pos + 8])
  end
end
"""
)


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
        self._append_script = redis.register_script(APPEND_LUA)
        self._merge_script = redis.register_script(MERGE_LUA)
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
                return await self._earliest(self._keys(symbol, currency)[-1])
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
        for key, data in self.buffer.series():
            records = _records(data)
            for chunk in range(0, len(records), REPLAY_CHUNK):
                part = records[chunk : chunk + REPLAY_CHUNK]
                await self._merge_script(keys=self._keys_of([key]), args=[1, _name(key), *_flat(part)])
            self.buffer.forget(key)
            written += len(records)
        while self._pending:
            symbol, currency, candles = self._pending[0]
            await self._add_candles(symbol, currency, candles)
            self._pending.popleft()
        return written

    # ----------------------------------------------------------------- Redis itself

    def _keys(self, symbol: str, currency: str) -> list[str]:
        """The series' raw, 5m, 1h and 1d keys."""
        base = f"{self._prefix}{symbol}:{currency}:"
        return [base + "raw", *(base + tier.name for tier in TIERS)]

    def _keys_of(self, series: Sequence[tuple[str, str]]) -> list[str]:
        return [self._prefix + "series", *(k for s, c in series for k in self._keys(s, c))]

    async def _append(self, ticks: Sequence[Tick]) -> None:
        series: dict[tuple[str, str], int] = {}
        args: list[Any] = []
        for tick in ticks:
            if not tick.valid:
                continue
            number = series.setdefault((tick.symbol, tick.currency), len(series) + 1)
            args += [number, repr(tick.at), repr(tick.price)]
            for tier in TIERS:
                bucket = rollup.tick_bucket(tick.at, tick.price, tier.seconds)
                args += [bucket.start, bucket.first]
        if series:
            await self._append_script(keys=self._keys_of(list(series)), args=[len(series), *map(_name, series), *args])

    async def _add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        keys = self._keys(symbol, currency)
        kept = rollup.backfill(candles, await self._earliest(keys[-1]))
        records: list[tuple[Any, ...]] = [
            (2 + TIERS.index(tier), *_bucket_values(b)) for c in kept for tier, b in rollup.candle_buckets(c)
        ]
        for chunk in range(0, len(records), REPLAY_CHUNK):
            part = records[chunk : chunk + REPLAY_CHUNK]
            await self._merge_script(
                keys=self._keys_of([(symbol, currency)]), args=[1, _name((symbol, currency)), *_flat(part)]
            )
        return len(kept)

    async def _candles(self, symbol: str, currency: str, range_name: str, now: float) -> list[Candle]:
        keys = self._keys(symbol, currency)
        chart = rollup.plan(range_name, now, await self._earliest(keys[-1]))
        if chart is None:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tier in chart.tiers:
                pipe.zrangebyscore(keys[1 + TIERS.index(tier)], f"({chart.since - tier.seconds!r}", repr(now))
            replies = await pipe.execute()
        rows = {tier.seconds: [_bucket(m) for m in reply] for tier, reply in zip(chart.tiers, replies, strict=True)}
        return rollup.assemble(chart, rows)

    async def _price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        if not math.isfinite(at):
            return None
        keys = self._keys(symbol, currency)
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                # The point or bucket holding `at`, the one before (a bucket's close may be nearer), the one after.
                pipe.zrevrangebyscore(key, repr(at), "-inf", start=0, num=1 if key == keys[0] else 2)
                pipe.zrangebyscore(key, f"({at!r}", "+inf", start=0, num=1)
            replies = await pipe.execute()
        points: list[tuple[float, float]] = []
        for index, reply in enumerate(replies):
            for member in reply:
                if index < 2:
                    when, price = member.split(b":")
                    points.append((float(when), float(price)))
                else:
                    bucket = _bucket(member)
                    points.append((bucket.close_at, bucket.close))
        return rollup.nearest(points, at, tolerance)

    async def _earliest(self, daily_key: str) -> float | None:
        first = await self.redis.zrange(daily_key, 0, 0)
        if not first:
            return None
        bucket = _bucket(first[0])
        return float(bucket.start + bucket.first)

    async def _prune(self, keep: Collection[str], now: float) -> None:
        index = self._prefix + "series"
        names = sorted([m.decode() async for m in self.redis.sscan_iter(index)])
        series = [tuple(name.split(":", 1)) for name in names]
        async with self.redis.pipeline(transaction=False) as pipe:
            for symbol, currency in series:
                pipe.zrange(self._keys(symbol, currency)[-1], -1, -1)
            newest = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, (symbol, currency), last in zip(names, series, newest, strict=True):
                keys = self._keys(symbol, currency)
                if symbol not in keep and (not last or _bucket(last[0]).close_at <= now - rollup.FORGET_AFTER):
                    pipe.delete(*keys)
                    pipe.srem(index, name)
                    continue
                pipe.zremrangebyscore(keys[0], "-inf", f"({now - rollup.RAW_KEEP!r}")
                for key, tier in zip(keys[1:], TIERS, strict=True):
                    cutoff = rollup.expired(tier, now)
                    if cutoff is not None:
                        pipe.zremrangebyscore(key, "-inf", f"({cutoff}")
            await pipe.execute()


def _name(series: tuple[str, str]) -> str:
    return f"{series[0]}:{series[1]}"


def _bucket(member: bytes) -> Bucket:
    start, o, h, low, c, first, last = member.split(b":")
    return Bucket(int(start), float(o), float(h), float(low), float(c), int(first), int(last))


def _bucket_values(b: Bucket) -> tuple[Any, ...]:
    return (b.start, repr(b.open), repr(b.high), repr(b.low), repr(b.close), b.first, b.last)


def _records(data: SeriesData) -> list[tuple[Any, ...]]:
    """A buffered series as MERGE_LUA records: key number and values."""
    records: list[tuple[Any, ...]] = [(1, repr(at), repr(price)) for at, price in data.raw.items()]
    for number, tier in enumerate(TIERS, start=2):
        records += [(number, *_bucket_values(b)) for b in data.tiers[tier.seconds].values()]
    return records


def _flat(records: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Records as 9 values each (series number 1 first, padded with empty strings)."""
    out: list[Any] = []
    for record in records:
        out += [1, *record, *([""] * (8 - len(record)))]
    return out
