"""One poller for many instances: a lease in Redis, and what every instance does with or without it.

- PollerLease: a Redis lock with a TTL (redis-py's Lock), renewed while held;
  if the holder dies or hangs, the lease expires and another instance takes
  over within two intervals.
- SharedPolling: runs in every instance's lifespan; polls while it holds the
  lease, follows otherwise. With Redis gone every instance keeps serving its
  last copy; after `stale_after_seconds` without Redis each may poll on its
  own (`cache.redis_fallback`), and sharing resumes when Redis is back.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio
from redis.asyncio import Redis
from redis.exceptions import LockError

from ticker.models import Snapshot
from ticker.redis_store import REDIS_FAILURES, RedisSnapshotStore

logger = logging.getLogger(__name__)

LEASE_KEY = "poller-lease"

# Who polls, as /readyz and /metrics say: the lease holder, a follower of the shared snapshot, or an
# instance polling alone (memory mode, or Redis mode while Redis is away and `cache.redis_fallback` is on).
LeaseRole = Literal["holder", "follower", "single"]


class PollerLease:
    """Who polls: a Redis lock with a TTL, kept alive by renewing it well before it expires."""

    def __init__(self, redis: Redis, key: str, ttl: float) -> None:
        self._lock = redis.lock(key, timeout=ttl, blocking=False)
        self.ttl = ttl
        self.held = False

    async def keep(self) -> bool:
        """Renew the lease if held, else try to take it; True while this instance holds it."""
        if self.held:
            try:
                await self._lock.reacquire()
                return True
            except LockError:
                self.held = False
                logger.warning("lost the poller lease; another instance polls now")
                return False
        self.held = bool(await self._lock.acquire(blocking=False))
        if self.held:
            logger.info("this instance holds the poller lease and polls for all instances")
        return self.held

    async def release(self) -> None:
        if self.held:
            self.held = False
            try:
                await self._lock.release()
            except (LockError, *REDIS_FAILURES):
                pass


class SharedPolling:
    """Every instance runs this: poll while holding the lease, follow the shared snapshot otherwise."""

    def __init__(
        self,
        poll_once: Callable[[], Awaitable[object]],
        store: RedisSnapshotStore,
        lease: PollerLease,
        *,
        interval: float,
        fallback_after: float | None,
        on_follow: Callable[[Snapshot], Awaitable[object]] | None = None,
        on_lead: Callable[[int], Awaitable[object]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._poll_once = poll_once
        self._store = store
        self._lease = lease
        self._interval = interval
        self._fallback_after = fallback_after
        self._on_follow = on_follow
        self._on_lead = on_lead
        self._leading = False  # on_lead has run for the current lease (or local polling)
        self._instance = uuid.uuid4().hex
        self.instances = 1  # instances seen alive recently, for sharing one budget when Redis is away
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_round = 0.0
        self._local = False  # polling on our own while Redis is away
        self.tick = min(1.0, interval / 4)

    @property
    def role(self) -> LeaseRole:
        """In-process flags only, never a Redis call: /readyz and /metrics read this on every request."""
        if self._lease.held:
            return "holder"
        return "single" if self._local else "follower"

    async def run_forever(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._keep_lease)
            await self._work()

    async def _keep_lease(self) -> None:
        while True:
            try:
                was_held = self._lease.held
                if await self._lease.keep() and not was_held:
                    self._next_round = self._first_round_as_leader()
                self.instances = await self._store.seen_instances(self._instance, 3 * self._lease.ttl)
                self._store.health.back()
            except REDIS_FAILURES as err:
                self._store.health.lost(err)
                self._lease.held = False
            await self._sleep(self._lease.ttl / 3)

    def _first_round_as_leader(self) -> float:
        """Poll at once, unless the previous holder polled less than an interval ago."""
        current = self._store.current
        if current is None:
            return 0.0
        age = time.time() - current.generated_at.timestamp()
        return self._monotonic() + max(self._interval - age, 0.0)

    async def _work(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                logger.exception("shared polling step failed; trying again")
            await self._sleep(self.tick)

    async def _step(self) -> None:
        health = self._store.health
        local = not health.ok and self._fallback_after is not None and health.down_for() >= self._fallback_after
        if local != self._local:
            self._local = local
            self._leading = False  # local polling starts or ends: shares of the budget change
            if local:
                logger.warning(
                    "Redis away for %.0f s: this instance polls on its own until it is back", health.down_for()
                )
            else:
                logger.info("Redis is back: only the lease holder polls again")
        polling = self._lease.held or self._local
        if polling and not self._leading and self._on_lead is not None:
            # Whoever polls now takes over the holds and budget use of whoever polled before.
            await self._on_lead(self.instances if self._local else 1)
        self._leading = polling
        if polling:
            if self._monotonic() >= self._next_round:
                self._next_round = self._monotonic() + self._interval
                await self._poll_once()
            return
        try:
            if await self._store.sync() and self._on_follow is not None and self._store.current is not None:
                await self._on_follow(self._store.current)
        except REDIS_FAILURES as err:
            health.lost(err)
