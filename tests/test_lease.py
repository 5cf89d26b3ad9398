"""Who polls, as /readyz `lease` and /metrics `ticker_lease_holder` say: holder, follower or single.

SharedPolling runs here against a lease and a store that stand in for Redis, so every role is reached
in process; test_redis_e2e.py reads the same fields from real instances sharing a real redis-server.
"""

from __future__ import annotations

import json

import anyio
import pytest
from prometheus_client import generate_latest
from starlette.requests import Request

from tests.conftest import FULL_CONFIG, FakeClock, app_client, full_snapshot, settings_from, until
from ticker.icons import IconCache
from ticker.lease import LeaseRole, SharedPolling
from ticker.redis_store import RedisHealth
from ticker.render.widget import WidgetRenderer
from ticker.runtime import create_app
from ticker.store import SnapshotStore
from ticker.web.metrics import HttpTally, ServiceCollector, build_registry
from ticker.web.views import Views


class FakeLease:
    """PollerLease's surface without Redis: `wins` says whether taking the lease succeeds, `redis_up` whether
    Redis answers at all."""

    ttl = 0.03

    def __init__(self) -> None:
        self.held = False
        self.wins = False
        self.redis_up = True

    async def keep(self) -> bool:
        if not self.redis_up:
            raise ConnectionError("Connection refused")
        self.held = self.wins
        return self.held

    async def release(self) -> None:
        self.held = False


class FakeSharedStore:
    """RedisSnapshotStore's surface for SharedPolling: nothing new to follow, or a failure while Redis is down."""

    def __init__(self, lease: FakeLease) -> None:
        self.health = RedisHealth()
        self.current = None
        self._lease = lease

    async def sync(self) -> bool:
        if not self._lease.redis_up:
            raise ConnectionError("Connection refused")
        return False

    async def seen_instances(self, instance: str, window: float) -> int:
        if not self._lease.redis_up:
            raise ConnectionError("Connection refused")
        return 2


async def test_shared_polling_says_holder_follower_or_single():
    lease = FakeLease()
    store = FakeSharedStore(lease)
    polls = 0

    async def poll_once() -> None:
        nonlocal polls
        polls += 1

    polling = SharedPolling(poll_once, store, lease, interval=0.04, fallback_after=0.2)  # type: ignore[arg-type]
    assert polling.role == "follower"  # before it has the lease, an instance only follows
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(polling.run_forever)
        await anyio.sleep(0.1)
        assert polling.role == "follower" and polls == 0

        lease.wins = True
        await until(lambda: polling.role == "holder" and polls > 0, "taking the lease and polling")

        lease.redis_up = False  # Redis away: the lease is lost at once, polling alone only after fallback_after
        await until(lambda: polling.role == "follower", "losing the lease with Redis")
        before = polls
        await until(lambda: polling.role == "single", "polling alone after fallback_after")
        await until(lambda: polls > before, "a round of its own")

        lease.redis_up = True  # Redis back: the lease decides again
        await until(lambda: polling.role == "holder", "the lease again")
        lease.wins, lease.held = False, False  # another instance took it
        await until(lambda: polling.role == "follower", "following again")
        tasks.cancel_scope.cancel()


async def test_whoever_starts_polling_takes_over_the_manners_and_its_share_of_the_budget():
    """on_lead runs before the first round of a new holder (share 1) and of an instance polling alone while
    Redis is away (share: the instances last seen, so together they spend one budget)."""
    lease = FakeLease()
    store = FakeSharedStore(lease)
    leads: list[tuple[str, int]] = []
    polls: list[str] = []

    async def on_lead(share: int) -> None:
        leads.append((polling.role, share))

    async def poll_once() -> None:
        polls.append(polling.role)

    polling = SharedPolling(poll_once, store, lease, interval=0.04, fallback_after=0.2, on_lead=on_lead)  # type: ignore[arg-type]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(polling.run_forever)
        await until(lambda: polling.instances == 2, "counting the instances alive")
        lease.wins = True
        await until(lambda: polls, "the first round as holder")
        lease.redis_up = False
        await until(lambda: "single" in polls, "a round of its own")
        lease.redis_up = True
        await until(lambda: polls[-1] == "holder", "holding the lease again")
        tasks.cancel_scope.cancel()
    assert leads == [("holder", 1), ("single", 2), ("holder", 1)]
    assert polls.index("single") > 0 and all(role in {"holder", "single"} for role in polls)


@pytest.mark.parametrize(("role", "holder"), [("holder", 1.0), ("follower", 0.0), ("single", 0.0)])
async def test_readyz_and_metrics_say_who_polls(tmp_path, role: LeaseRole, holder: float):
    settings = settings_from(tmp_path, FULL_CONFIG)
    store = SnapshotStore()
    await store.put(full_snapshot())
    clock = FakeClock()
    views = Views(settings, store, WidgetRenderer(settings), IconCache(None), clock=clock, lease_role=lambda: role)
    response = await views.readyz(Request({"type": "http", "method": "GET", "path": "/readyz", "headers": []}))
    assert json.loads(response.body)["lease"] == role
    collector = ServiceCollector(settings, store, HttpTally(), clock, lease_role=lambda: role)
    text = generate_latest(build_registry([collector])).decode()
    assert f"\nticker_lease_holder {holder}\n" in text


async def test_the_app_reads_the_role_in_process(tmp_path, make_client):
    """Memory mode is single; in Redis mode every instance is a follower until its lease says otherwise, and
    /readyz says so without a Redis call (this Redis does not exist)."""
    memory = await make_client(settings_from(tmp_path, FULL_CONFIG), full_snapshot())
    assert (await memory.get("/readyz")).json()["lease"] == "single"
    assert "\nticker_lease_holder 0.0\n" in (await memory.get("/metrics")).text

    redis = settings_from(tmp_path, FULL_CONFIG + '[cache]\nurl = "redis://127.0.0.1:9/0"\n')
    async with app_client(create_app(redis)) as client:  # no lifespan: nothing ever connects
        with anyio.fail_after(1):
            assert (await client.get("/readyz")).json()["lease"] == "follower"
