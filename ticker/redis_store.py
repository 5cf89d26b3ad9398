"""Snapshots and icons shared through Redis: many instances, every visitor served from process memory.

- RedisSnapshotStore: the poller's instance writes each snapshot to Redis
  (aiocache's Redis backend, JSON serializer, keys under `cache.namespace`,
  never `clear()`) and bumps a version key; the others check that key on a
  short timer and copy a new snapshot into memory. Views only ever read the
  in-process copy, so no visitor waits on Redis.
- RedisHealth: whether Redis answers, logged once when lost and once when back.

Who polls is lease.py's job.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
from aiocache import RedisCache
from aiocache.serializers import JsonSerializer
from redis.asyncio import Redis
from redis.asyncio.connection import parse_url
from redis.exceptions import RedisError

from ticker.icons import Icon
from ticker.models import SavedManners, Snapshot
from ticker.store import SnapshotStore

logger = logging.getLogger(__name__)

SNAPSHOT_KEY = "snapshot"
VERSION_KEY = "version"
INSTANCES_KEY = "instances"  # sorted set: instance id -> last seen (Unix seconds)
MANNERS_KEY = "manners"  # the poller's holds and budget use, by provider: bind whoever holds the lease next
ICON_KEY = "icon:{}"
REDIS_TIMEOUT = 2.0  # per operation: a blackholed Redis must not stall the poller
# What a lost Redis looks like: refused (ConnectionError), blackholed (aiocache's wait_for), reset sockets.
REDIS_FAILURES = (RedisError, OSError, TimeoutError)


def redis_cache(url: str, namespace: str) -> Any:
    """aiocache's Redis backend for a redis:// or rediss:// URL, with the JSON serializer (never pickle).

    The URL is read by redis-py's own parser, so an ACL user name, TLS and query options
    (`?health_check_interval=...`) all reach the connection pool; aiocache's `from_url` would drop them.
    """
    options: dict[str, Any] = dict(parse_url(url))
    host, port = options.pop("host", "127.0.0.1"), options.pop("port", 6379)
    db, password = options.pop("db", 0), options.pop("password", None)
    # Calls made on the client itself (version key, lease) need their own bound on a silent Redis.
    options.setdefault("socket_timeout", REDIS_TIMEOUT)
    return RedisCache(
        serializer=JsonSerializer(),
        namespace=namespace,
        endpoint=host,
        port=port,
        db=db,
        password=password,
        create_connection_timeout=REDIS_TIMEOUT,
        timeout=REDIS_TIMEOUT,
        connection_pool_kwargs=options,
    )


class RedisHealth:
    """Remembers whether Redis answers, so an outage is logged once when it starts and once when it ends."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.lost_since: float | None = None

    @property
    def ok(self) -> bool:
        return self.lost_since is None

    def lost(self, err: BaseException) -> None:
        if self.lost_since is None:
            self.lost_since = self._monotonic()
            logger.warning("Redis lost (%s); serving the last shared snapshot from memory", describe(err))

    def back(self) -> None:
        if self.lost_since is not None:
            logger.info("Redis back after %.0f s; sharing again", self._monotonic() - self.lost_since)
            self.lost_since = None

    def down_for(self) -> float:
        return 0.0 if self.lost_since is None else self._monotonic() - self.lost_since


class RedisSnapshotStore(SnapshotStore):
    """A SnapshotStore whose snapshot is also shared through Redis (and still saved to the file)."""

    def __init__(self, cache: Any, *, snapshot_path: Path | None, health: RedisHealth) -> None:
        super().__init__(snapshot_path=snapshot_path)
        self._cache = cache
        self.redis: Redis = cache.client
        self.health = health
        self._version_key = self.key(VERSION_KEY)
        self._seen_shared: int | None = None

    async def load(self) -> Snapshot | None:
        try:
            if await self.sync():
                return self.current
        except REDIS_FAILURES as err:
            self.health.lost(err)
        return await self._load_file()

    async def put(self, snapshot: Snapshot) -> None:
        self._set_current(snapshot)
        raw = await anyio.to_thread.run_sync(snapshot.to_json)  # once, off the event loop
        await self._persist_file(raw)
        try:
            # JSON text under the namespaced key, through aiocache's raw call: serialised once, never pickle.
            await self._cache.raw("set", self.key(SNAPSHOT_KEY), raw)
            self._seen_shared = int(await self.redis.incr(self._version_key))
        except REDIS_FAILURES as err:
            self.health.lost(err)
            return
        self.health.back()

    async def sync(self) -> bool:
        """Copy the shared snapshot into memory if it changed; True if it did. Raises on Redis failure."""
        raw_version = await self.redis.get(self._version_key)
        self.health.back()
        version = int(raw_version) if raw_version is not None else None
        if version is None or version == self._seen_shared:
            return False
        raw = await self._cache.raw("get", self.key(SNAPSHOT_KEY))
        self._seen_shared = version
        if raw is None:
            return False
        try:
            shared = await anyio.to_thread.run_sync(Snapshot.from_json, raw)
        except (ValueError, KeyError, TypeError) as err:
            logger.warning("ignoring a damaged shared snapshot: %s", err)
            return False
        if self.current is not None and self.current.generated_at > shared.generated_at:
            return False  # ours (polled locally while Redis was away) is newer
        self._set_current(shared)
        return True

    async def get_icon(self, symbol: str) -> Icon | None:
        try:
            data = await self._cache.get(ICON_KEY.format(symbol))
        except REDIS_FAILURES as err:
            self.health.lost(err)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("body"), str):
            return None
        return Icon(base64.b64decode(data["body"]), str(data.get("type", "")))

    async def put_icon(self, symbol: str, icon: Icon) -> None:
        body = {"type": icon.content_type, "body": base64.b64encode(icon.body).decode()}
        try:
            await self._cache.set(ICON_KEY.format(symbol), body)
        except REDIS_FAILURES as err:
            self.health.lost(err)

    async def put_manners(self, saved: Mapping[str, SavedManners]) -> None:
        """Holds and budget use, written the moment they change (not just with the next snapshot)."""
        raw = json.dumps({name: item.to_dict() for name, item in saved.items()}, separators=(",", ":"))
        try:
            await self._cache.raw("set", self.key(MANNERS_KEY), raw)
        except REDIS_FAILURES as err:
            self.health.lost(err)

    async def get_manners(self) -> dict[str, SavedManners] | None:
        """What the last lease holder saved; None when Redis has none (or is away)."""
        try:
            raw = await self._cache.raw("get", self.key(MANNERS_KEY))
        except REDIS_FAILURES as err:
            self.health.lost(err)
            return None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return {str(name): SavedManners.from_dict(item) for name, item in data.items()}
        except (ValueError, TypeError, AttributeError) as err:
            logger.warning("ignoring damaged shared manners: %s", err)
            return None

    async def seen_instances(self, instance: str, window: float) -> int:
        """Mark this instance alive and count those seen within `window` seconds (raises on Redis failure)."""
        key = self.key(INSTANCES_KEY)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {instance: now})
            pipe.zremrangebyscore(key, 0, now - window)
            pipe.zcard(key)
            pipe.expire(key, max(int(window * 4), 60))
            results = await pipe.execute()
        return max(int(results[2]), 1)

    def key(self, name: str) -> str:
        """A key under the configured namespace, spelled as aiocache spells its own."""
        return str(self._cache.build_key(name))

    async def close(self) -> None:
        try:
            await self.redis.aclose()
        except REDIS_FAILURES:
            pass


def describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) <= 120 else text[:119] + "…"
