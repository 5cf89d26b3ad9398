"""How the history lies in Redis: key names, chunks, binary members, and the one Lua script that writes them.

Under `{ns}:history:` (ns = cache.namespace), for each coin and currency and each tier (raw, 5m, 1h, 1d):

    {SYMBOL}:{currency}:{tier}:{n}       sorted set: the tier's entries whose score (raw: at; a bucket:
                                         its start) lies in chunk n = floor(score / CHUNK_SECONDS[tier])
    {SYMBOL}:{currency}:{tier}:chunks    sorted set of the chunk numbers that exist (score = member = n)
    series                               set of "SYMBOL:currency"

A chunk holds about 120 entries at the tier's usual density, so Redis keeps it as a listpack (measured
on Redis 7.0: about 56 bytes an entry, against about 190 in one big sorted set of text members). Members
are binary, so prices round-trip exactly: a raw point is RAW (at, price), a bucket BUCKET (start, first,
last, open, high, low, close); the Lua script reads and writes the same layouts with `struct`.

`Batch` gathers one script call, one binary record per ARGV value: quotes (each skipped if its raw point
exists, else merged into its buckets), raw points to keep if absent, and buckets to merge (rollup.merge's
rule, written again in Lua). One call is atomic, so instances writing the same bucket at once lose nothing.
"""

from __future__ import annotations

import struct
from typing import Any

from ticker.history.rollup import TIERS, Bucket, Tier

RAW = struct.Struct(">dd")  # a raw member: at, price
BUCKET = struct.Struct(">IIIdddd")  # a bucket member: start, first, last, open, high, low, close
CHUNK_SECONDS = {"raw": 7_200, "5m": 36_000, "1h": 432_000, "1d": 10_368_000}  # ~120 entries each
# Script records, one ARGV value each (k: a chunk key's place in KEYS, x: its chunk index's, n: the chunk):
QUOTE = struct.Struct(">cdd" + "III" + "IIIII" * 3)  # q, at, price, k x n, then per tier k x n start offset
POINT = struct.Struct(">cddIII")  # p, at, price, k x n: a raw point, kept if absent (the outage buffer's)
MERGE = struct.Struct(">cIIIIIIdddd")  # b, k x n, start, first, last, open, high, low, close

SCRIPT = """
local indexed = {}
local function note(index, n)
  if not indexed[index .. n] then
    indexed[index .. n] = true
    redis.call('ZADD', index, n, n)
  end
end
local function add_raw(key, index, n, at, price)
  local score = string.format('%.17g', at)
  if redis.call('ZCOUNT', key, score, score) > 0 then return false end
  redis.call('ZADD', key, score, struct.pack('>dd', at, price))
  note(index, n)
  return true
end
local function merge(key, index, n, start, f, z, o, h, l, c)
  local old = redis.call('ZRANGEBYSCORE', key, start, start, 'LIMIT', 0, 1)[1]
  if old then
    local _, of, oz, oo, oh, ol, oc = struct.unpack('>I4I4I4dddd', old)
    if f >= of then o = oo; f = of end
    if z < oz then c = oc; z = oz end
    if oh > h then h = oh end
    if ol < l then l = ol end
    redis.call('ZREM', key, old)
  end
  redis.call('ZADD', key, start, struct.pack('>I4I4I4dddd', start, f, z, o, h, l, c))
  note(index, n)
end

local names = tonumber(ARGV[1])
for i = 1, names do redis.call('SADD', KEYS[1], ARGV[1 + i]) end
for i = 2 + names, #ARGV do
  local r = ARGV[i]
  local kind = string.sub(r, 1, 1)
  if kind == 'q' then
    local _, at, p, k, x, n, k1, x1, n1, s1, o1, k2, x2, n2, s2, o2, k3, x3, n3, s3, o3 =
      struct.unpack('>c1ddI4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4', r)
    if add_raw(KEYS[k], KEYS[x], n, at, p) then
      merge(KEYS[k1], KEYS[x1], n1, s1, o1, o1, p, p, p, p)
      merge(KEYS[k2], KEYS[x2], n2, s2, o2, o2, p, p, p, p)
      merge(KEYS[k3], KEYS[x3], n3, s3, o3, o3, p, p, p, p)
    end
  elseif kind == 'p' then
    local _, at, p, k, x, n = struct.unpack('>c1ddI4I4I4', r)
    add_raw(KEYS[k], KEYS[x], n, at, p)
  else
    local _, k, x, n, s, f, z, o, h, l, c = struct.unpack('>c1I4I4I4I4I4I4dddd', r)
    merge(KEYS[k], KEYS[x], n, s, f, z, o, h, l, c)
  end
end
"""


class SeriesKeys:
    """The key names of one coin in one currency."""

    def __init__(self, prefix: str, symbol: str, currency: str) -> None:
        self.symbol = symbol
        self.name = f"{symbol}:{currency}"
        self.base = f"{prefix}{self.name}:"

    def chunk(self, tier: str, number: int) -> str:
        return f"{self.base}{tier}:{number}"

    def index(self, tier: str) -> str:
        return f"{self.base}{tier}:chunks"

    def chunks(self, tier: str, after: float, until: float) -> list[str]:
        """The chunks that may hold scores in (after, until]."""
        span = CHUNK_SECONDS[tier]
        return [self.chunk(tier, n) for n in range(int(after // span), int(until // span) + 1)]


def chunk_of(tier: str, score: float) -> int:
    return int(score // CHUNK_SECONDS[tier])


class Batch:
    """The KEYS and ARGV of one script call: quotes, raw points and buckets, one binary record each."""

    def __init__(self, series_key: str) -> None:
        self.keys: list[str] = [series_key]
        self._positions: dict[str, int] = {}
        self.names: list[str] = []
        self.records: list[bytes] = []

    def __len__(self) -> int:
        return len(self.records)

    def quote(self, series: SeriesKeys, at: float, price: float, buckets: list[tuple[Tier, Bucket]]) -> None:
        """A quote, skipped if its raw point exists; else merged into its bucket of each of the three tiers."""
        values: list[Any] = [b"q", at, price, *self._where(series, "raw", at)]
        for tier, b in buckets:
            values += [*self._where(series, tier.name, b.start), b.start, b.first]
        self.records.append(QUOTE.pack(*values))

    def point(self, series: SeriesKeys, at: float, price: float) -> None:
        self.records.append(POINT.pack(b"p", at, price, *self._where(series, "raw", at)))

    def bucket(self, series: SeriesKeys, tier: Tier, b: Bucket) -> None:
        where = self._where(series, tier.name, b.start)
        self.records.append(MERGE.pack(b"b", *where, b.start, b.first, b.last, b.open, b.high, b.low, b.close))

    def args(self) -> list[Any]:
        return [len(self.names), *self.names, *self.records]

    def _where(self, series: SeriesKeys, tier: str, score: float) -> tuple[int, int, int]:
        if series.name not in self._positions:
            self._positions[series.name] = 0
            self.names.append(series.name)
        number = chunk_of(tier, score)
        return self._key(series.chunk(tier, number)), self._key(series.index(tier)), number

    def _key(self, name: str) -> int:
        if name not in self._positions:
            self.keys.append(name)
            self._positions[name] = len(self.keys)
        return self._positions[name]


def raw_point(member: bytes) -> tuple[float, float]:
    at, price = RAW.unpack(member)
    return float(at), float(price)


def bucket(member: bytes) -> Bucket:
    start, first, last, o, h, low, c = BUCKET.unpack(member)
    return Bucket(start, o, h, low, c, first, last)


TIER_NAMES = ("raw", *(tier.name for tier in TIERS))
