"""The Redis store and lease against a real redis-server (started by the test on a free loopback port)."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis

from tests.conftest import NOW, quote, snapshot_of
from tests.redis_server import require_redis_server
from ticker.icons import Icon
from ticker.lease import LEASE_KEY, PollerLease
from ticker.redis_store import REDIS_FAILURES, RedisHealth, RedisSnapshotStore, redis_cache

pytestmark = pytest.mark.e2e

require_redis_server()


def make_store(url: str, namespace: str = "ticker") -> RedisSnapshotStore:
    return RedisSnapshotStore(redis_cache(url, namespace), snapshot_path=None, health=RedisHealth())


async def test_one_instance_writes_the_others_follow(redis_server):
    writer, reader = make_store(redis_server.url), make_store(redis_server.url)
    assert await reader.sync() is False and reader.current is None
    await writer.put(snapshot_of(quote("BTC", 90917.04)))
    assert await reader.sync() is True
    assert reader.current.quote("BTC", "usd").price == 90917.04
    assert await reader.sync() is False  # nothing new: one GET of the version key, no snapshot transfer
    await writer.put(snapshot_of(quote("BTC", 91000.0)))
    assert await reader.sync() is True and reader.current.quote("BTC", "usd").price == 91000.0
    await writer.close()
    await reader.close()


async def test_keys_stay_under_the_namespace_as_json(redis_server):
    other = Redis.from_url(redis_server.url)
    await other.set("someone-elses-key", "keep me")
    store = make_store(redis_server.url, namespace="blog1")
    await store.put(snapshot_of(quote("BTC", 1.5)))
    await store.put_icon("BTC", Icon(b"\x89PNG\r\n\x1a\nxx", "image/png"))
    keys = sorted(k.decode() for k in await other.keys("*"))
    assert keys == ["blog1:icon:BTC", "blog1:snapshot", "blog1:version", "someone-elses-key"]
    raw = await other.get("blog1:snapshot")
    assert raw.startswith(b'{"version": 1') or raw.startswith(b'{"version":1')  # JSON, never pickle
    assert (await store.get_icon("BTC")).body == b"\x89PNG\r\n\x1a\nxx"
    await store.close()
    await other.aclose()


async def test_only_one_lease_holder_and_takeover_after_the_ttl(redis_server):
    a, b = make_store(redis_server.url), make_store(redis_server.url)
    first = PollerLease(a.redis, a.key(LEASE_KEY), ttl=1.0)
    second = PollerLease(b.redis, b.key(LEASE_KEY), ttl=1.0)
    assert await first.keep() is True
    assert await second.keep() is False
    for _ in range(4):  # the holder renews well within the TTL: it keeps the lease
        await anyio.sleep(0.35)
        assert await first.keep() is True and await second.keep() is False
    await anyio.sleep(1.1)  # the holder stops renewing (dead or hung): the lease expires
    assert await second.keep() is True
    assert await first.keep() is False  # and the old holder notices it lost it
    await a.close()
    await b.close()


async def test_redis_down_keeps_the_memory_copy_and_logs_once(redis_server, caplog):
    store = make_store(redis_server.url)
    await store.put(snapshot_of(quote("BTC", 1.0)))
    redis_server.stop()
    with caplog.at_level("INFO", logger="ticker"):
        for price in (2.0, 3.0):
            await store.put(snapshot_of(quote("BTC", price), generated_at=NOW))
        with pytest.raises(REDIS_FAILURES):
            await store.sync()
        assert store.current.quote("BTC", "usd").price == 3.0 and not store.health.ok
        redis_server.start()
        await store.put(snapshot_of(quote("BTC", 4.0)))
    assert store.health.ok
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis lost" in m for m in messages) == 1 and sum("Redis back" in m for m in messages) == 1
    await store.close()


async def test_an_acl_user_in_the_url_reaches_redis(redis_server):
    """cache.url is read by redis-py's parser: the ACL user name (which aiocache's from_url drops) is used."""
    admin = Redis.from_url(redis_server.url)
    await admin.execute_command("ACL", "SETUSER", "ticker", "on", ">s3cret", "~blog:*", "+@all")
    await admin.execute_command("ACL", "SETUSER", "default", "off")  # no anonymous access any more
    store = make_store(redis_server.url.replace("redis://", "redis://ticker:s3cret@"), namespace="blog")
    await store.put(snapshot_of(quote("BTC", 2.5)))
    assert store.health.ok
    assert (await store.redis.execute_command("ACL", "WHOAMI")).decode() == "ticker"
    await store.close()
    await admin.aclose()


def test_url_options_reach_the_connection_pool():
    cache = redis_cache("rediss://alice:p%40ss@redis.example:6380/2?health_check_interval=5", "ns")
    kwargs = cache.client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("redis.example", 6380, 2)
    assert (kwargs["username"], kwargs["password"]) == ("alice", "p@ss")
    assert kwargs["health_check_interval"] == 5 and "SSL" in cache.client.connection_pool.connection_class.__name__


async def test_manners_written_by_the_holder_are_read_by_the_next(redis_server):
    from datetime import timedelta

    from ticker.models import SavedManners

    holder, successor = make_store(redis_server.url), make_store(redis_server.url)
    assert await successor.get_manners() is None
    saved = {"coingecko": SavedManners(NOW + timedelta(seconds=119), "HTTP 429: rate limited", (1.5, 2.5))}
    await holder.put_manners(saved)
    assert await successor.get_manners() == saved
    await holder.close()
    await successor.close()


async def test_instances_seen_recently_are_counted(redis_server):
    a, b = make_store(redis_server.url), make_store(redis_server.url)
    assert await a.seen_instances("a", window=5) == 1
    assert await b.seen_instances("b", window=5) == 2
    assert await a.seen_instances("a", window=5) == 2  # the same instance again is not counted twice
    await anyio.sleep(1.1)
    assert await a.seen_instances("a", window=1) == 1  # b was last seen more than a window ago
    await a.close()
    await b.close()
