"""The Redis history against a real redis-server: shared by instances, atomic, and buffered while Redis is away."""

from __future__ import annotations

import struct

import anyio
import pytest
from redis.asyncio import Redis

from tests.history.simulation import Series
from tests.redis_server import require_redis_server
from ticker.history.base import Tick
from ticker.history.redis import RETRY_SECONDS, RedisHistory
from ticker.history.rollup import DAY
from ticker.models import Candle

pytestmark = pytest.mark.e2e

require_redis_server()

DAY0 = 20_416 * DAY
RANGES = ("24h", "7d", "30d", "1y", "max")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def history(server, namespace="ticker", **options) -> RedisHistory:
    client = Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
    return RedisHistory(client, namespace, owns_client=True, **options)


def minute_rounds(coin: Series, first: int, count: int) -> list[list[Tick]]:
    return [[tick] for i in range(first, first + count) if (tick := coin.quote(DAY0 + i * 60 + 0.5))]


async def assert_exact(store: RedisHistory, coin: Series, now: float, since: float = 0) -> None:
    """Every chart of the coin shows exactly what its quotes make (from `since`: before it, what was
    backfilled): no point lost, none counted twice."""
    for range_name in RANGES:
        got = await store.candles(coin.symbol, "usd", range_name, now)
        assert got, range_name
        wrong = [c for c in got if c != coin.expected(c.start, c.seconds) and c.start >= since]
        assert wrong == [], range_name


async def test_keys_stay_under_the_namespace_in_small_chunks(redis_server):
    other = Redis.from_url(redis_server.url)
    await other.set("someone-elses-key", "keep me")
    store = history(redis_server, "blog1")
    await store.append([Tick("BTC", "usd", DAY0 + 0.5, 90917.04)])
    tiers = {"raw": DAY0 // 7200, "5m": DAY0 // 36_000, "1h": DAY0 // 432_000, "1d": DAY0 // 10_368_000}
    expected = [f"blog1:history:BTC:usd:{tier}:{n}" for tier, n in tiers.items()]
    expected += [f"blog1:history:BTC:usd:{tier}:chunks" for tier in tiers]
    keys = sorted(k.decode() for k in await other.keys("*"))
    assert keys == sorted([*expected, "blog1:history:series", "someone-elses-key"])
    assert await other.zrange(f"blog1:history:BTC:usd:raw:{tiers['raw']}", 0, -1) == [
        struct.pack(">dd", DAY0 + 0.5, 90917.04)
    ]
    assert await other.zrange(f"blog1:history:BTC:usd:1h:{tiers['1h']}", 0, -1) == [
        struct.pack(">IIIdddd", DAY0, 0, 0, 90917.04, 90917.04, 90917.04, 90917.04)
    ]
    # A day of quotes a minute: every chunk stays small enough for Redis's compact encoding.
    await store.append([Tick("BTC", "usd", DAY0 + 60.0 * i, 90000.0 + i) for i in range(1, 1440)])
    for key in await other.keys("blog1:history:BTC:*"):
        assert await other.object("encoding", key) == b"listpack", key
    await store.close()
    await other.aclose()


async def test_every_instance_serves_what_the_lease_holder_wrote(redis_server):
    writer, reader = history(redis_server), history(redis_server)
    coin = Series("BTC", 90_000.0, seed=5)
    for one_round in minute_rounds(coin, 0, 180):
        await writer.append(one_round)
    assert await reader.candles("BTC", "usd", "24h", DAY0 + 3 * 3600) == await writer.candles(
        "BTC", "usd", "24h", DAY0 + 3 * 3600
    )
    await assert_exact(reader, coin, DAY0 + 3 * 3600)
    assert await reader.price_at("BTC", "usd", coin.times[-1], 0) == coin.prices[-1]
    await writer.close()
    await reader.close()


async def test_a_lease_handover_loses_no_point(redis_server):
    old, new, reader = history(redis_server), history(redis_server), history(redis_server)
    coin = Series("BTC", 90_000.0, seed=6)
    rounds = minute_rounds(coin, 0, 240)
    for one_round in rounds[:130]:
        await old.append(one_round)
    for one_round in rounds[120:]:  # the new holder starts before the old one noticed: 10 rounds written twice
        await new.append(one_round)
    await assert_exact(reader, coin, DAY0 + 4 * 3600)
    for store in (old, new, reader):
        await store.close()


async def test_writers_at_once_merge_the_same_buckets_atomically(redis_server):
    a, b = history(redis_server), history(redis_server)
    coin = Series("BTC", 90_000.0, seed=7)
    rounds = minute_rounds(coin, 0, 600)
    async with anyio.create_task_group() as tg:  # two instances' buffers written out at the same moment

        async def write(store: RedisHistory, part: list[list[Tick]]) -> None:
            for one_round in part:
                await store.append(one_round)

        tg.start_soon(write, a, rounds[0::2])
        tg.start_soon(write, b, rounds[1::2])
    await assert_exact(a, coin, DAY0 + 10 * 3600)
    await a.close()
    await b.close()


async def test_an_outage_is_buffered_and_written_when_redis_is_back(redis_server, caplog):
    clock = Clock()
    store = history(redis_server, monotonic=clock)
    coin = Series("BTC", 90_000.0, seed=8)
    rounds = minute_rounds(coin, 0, 240)
    for one_round in rounds[:60]:
        await store.append(one_round)
    admin = Redis.from_url(redis_server.url)
    await admin.save()  # so the restarted server has what was written before the outage
    await admin.aclose()
    redis_server.stop()
    earlier_hourly = (Candle(DAY0 - 3 * 3600, 3600, 80_000.0, 81_000.0, 79_000.0, 80_500.0),)
    with caplog.at_level("INFO", logger="ticker.history"):
        for one_round in rounds[60:180]:
            await store.append(one_round)  # no error: buffered
            clock.now += 60
        assert store.away
        assert await store.add_candles("BTC", "usd", earlier_hourly) == 0  # queued
        assert await store.price_at("BTC", "usd", coin.times[179], 0) == coin.prices[179]  # from the buffer
        assert (await store.candles("BTC", "usd", "24h", DAY0 + 3 * 3600))[-1].close == coin.prices[179]
        redis_server.start()
        for one_round in rounds[180:]:
            await store.append(one_round)
            clock.now += 60
    assert not store.away and store.buffer.empty
    reader = history(redis_server)
    await assert_exact(reader, coin, DAY0 + 4 * 3600, since=DAY0)
    assert (await reader.candles("BTC", "usd", "24h", DAY0 + 4 * 3600))[0] == earlier_hourly[0]  # applied
    lost = [r for r in caplog.records if "Redis lost" in r.getMessage()]
    back = [r for r in caplog.records if "Redis back" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelname == "WARNING" and len(back) == 1
    await store.close()
    await reader.close()


async def test_the_outage_buffer_is_bounded_and_keeps_the_aggregates(redis_server):
    clock = Clock()
    store = history(redis_server, monotonic=clock, buffer_limit=100)
    coin = Series("BTC", 90_000.0, seed=9)
    redis_server.stop()
    for one_round in minute_rounds(coin, 0, 400):
        await store.append(one_round)
    ((_, held),) = store.buffer.series()
    assert 90 <= len(held.raw) <= 100 and len(held.tiers[300]) == 80  # 400 minutes of 5-minute buckets
    assert len(store.buffer) <= 100 + 80 + 7 + 1
    redis_server.start()
    clock.now += RETRY_SECONDS
    await store.prune({"BTC"}, DAY0 + 7 * 3600)  # any write call writes the buffer out first
    reader = history(redis_server)
    await assert_exact(reader, coin, DAY0 + 7 * 3600)  # 5-minute, hourly, daily: exact
    assert await reader.price_at("BTC", "usd", coin.times[0], 0) is None  # the oldest raw quotes were dropped
    assert await reader.price_at("BTC", "usd", coin.times[-1], 0) == coin.prices[-1]
    await store.close()
    await reader.close()


async def test_retention_and_forgetting_delete_whole_keys(redis_server):
    store, other = history(redis_server, "ns"), Redis.from_url(redis_server.url)
    btc, old = Series("BTC", 90_000.0, seed=10), Series("OLD", 1.0, seed=11)
    for minute in range(0, 4 * 24 * 60, 2):  # four days, a quote every 2 minutes
        await store.append([btc.quote(DAY0 + minute * 60.0), old.quote(DAY0 + minute * 60.0)])
    now = DAY0 + 4 * DAY
    await store.prune({"BTC"}, now)
    raw = [k for k in await other.keys("ns:history:BTC:usd:raw:*") if not k.endswith(b":chunks")]
    assert len(raw) <= 2 * DAY // 7200 + 1  # 48 hours of 2-hour chunks
    assert await store.price_at("BTC", "usd", btc.times[0], 0) is None
    assert await store.price_at("BTC", "usd", btc.times[-1], 0) == btc.prices[-1]
    assert await other.keys("ns:history:OLD:*") != []  # removed from the config, still in its grace period
    await store.prune({"BTC"}, now + 31 * DAY)
    assert await other.keys("ns:history:OLD:*") == []
    assert await other.smembers("ns:history:series") == {b"BTC:usd"}
    await assert_exact(store, btc, now)
    await store.close()
    await other.aclose()
