"""Three real `ticker serve` processes sharing one real redis-server, against a fake CoinGecko that counts."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.redis_server import require_redis_server
from tests.service import Service, free_port, running, wait_until, write_config

pytestmark = pytest.mark.e2e

require_redis_server()

INTERVAL = 1.0
PRICES = "/api/v3/simple/price"


def shared_config(tmp_path, upstream, redis_url, name, *, poller="stale_after_seconds = 30"):
    return write_config(
        tmp_path,
        upstream,
        INTERVAL,
        poller=poller,
        name=name,
        cache=f'url = "{redis_url}"\nnamespace = "e2e"\nsnapshot_path = "{name}.snapshot.json"',
    )


def upstream_rate(upstream: FakeUpstream, seconds: float) -> int:
    """Price requests (one per round) in `seconds`; side work (metadata, backfills) has its own budget share."""
    before = len(upstream.coingecko.asked(PRICES))
    time.sleep(seconds)
    return len(upstream.coingecko.asked(PRICES)) - before


def lease(service: Service) -> str:
    """Who polls, as this instance's /readyz says: holder, follower or single."""
    return str(service.get("/readyz").json()["lease"])


def leader_of(services: list[Service]) -> Service:
    """The one instance that says "holder", once exactly one does and all the others say "follower"."""

    def sole_holder() -> Service | None:
        roles = [lease(s) for s in services]
        if roles.count("holder") == 1 and roles.count("follower") == len(services) - 1:
            return services[roles.index("holder")]
        return None

    return wait_until(sole_holder, 2 * INTERVAL, "one holder, the others following")


def all_serve_btc_at(services: list[Service], price: float, timeout: float, what: str) -> None:
    wait_until(lambda: all(s.get("/api/v1/prices/BTC").json()["price"] == price for s in services), timeout, what)


def test_three_instances_act_as_one(tmp_path, upstream, redis_server, capsys):
    figures = {}
    # One instance alone, for the reference count.
    single = Service(shared_config(tmp_path, upstream, redis_server.url, "single.toml"), free_port())
    try:
        single.wait_ready()
        time.sleep(INTERVAL)
        figures["1 instance, 5 intervals"] = upstream_rate(upstream, 5 * INTERVAL)
    finally:
        single.stop()

    services = [
        Service(shared_config(tmp_path, upstream, redis_server.url, f"i{i}.toml"), free_port()) for i in range(3)
    ]
    try:
        for service in services:
            service.wait_ready()
        time.sleep(INTERVAL)
        figures["3 instances, 5 intervals"] = upstream_rate(upstream, 5 * INTERVAL)
        assert figures["3 instances, 5 intervals"] <= figures["1 instance, 5 intervals"] + 1

        # All three serve identical data, from memory.
        bodies = {s.get("/api/v1/prices").content for s in services}
        assert len(bodies) <= 2  # a snapshot may land between two reads
        wait_until(lambda: len({s.get("/api/v1/prices").content for s in services}) == 1, 3, "identical data")

        # Kill the lease holder: another takes over within two intervals.
        leader = leader_of(services)
        survivors = [s for s in services if s is not leader]
        leader.proc.send_signal(signal.SIGKILL)
        leader.proc.wait(timeout=5)
        killed_at = time.monotonic()
        before = upstream.coingecko.requests
        wait_until(lambda: upstream.coingecko.requests > before, 4 * INTERVAL, "a new poller")
        figures["takeover after kill (s)"] = round(time.monotonic() - killed_at, 2)
        assert figures["takeover after kill (s)"] <= 2 * INTERVAL + 0.5
        new_leader = leader_of(survivors)

        # Redis stops: every instance keeps serving its last copy, and none polls (stale_after_seconds is 30).
        redis_server.stop()
        time.sleep(2 * INTERVAL)
        assert [lease(s) for s in survivors] == ["follower", "follower"]
        served = [s.get("/api/v1/prices") for s in survivors]
        assert all(r.status_code == 200 for r in served)
        assert all(r.json()["coins"][0]["price"] == 90917.04 for r in served)
        assert all(s.get("/readyz").status_code == 200 for s in survivors)
        figures["served while Redis down"] = [r.json()["coins"][0]["price"] for r in served]

        # Redis is back (empty: no persistence): sharing and single polling resume.
        redis_server.start()
        upstream.coingecko.prices["bitcoin"]["usd"] = (99999.5, 3.0)
        all_serve_btc_at(survivors, 99999.5, 4 * INTERVAL + 2, "sharing resumed")
        leader_of(survivors)
        time.sleep(INTERVAL)
        figures["2 instances after Redis returned, 5 intervals"] = upstream_rate(upstream, 5 * INTERVAL)
        assert figures["2 instances after Redis returned, 5 intervals"] <= figures["1 instance, 5 intervals"] + 1
    finally:
        for service in services:
            service.stop()
    for service in services:
        log = service.log.read_text()
        assert "Traceback" not in log
    for service in survivors:
        log = service.log.read_text()
        # Once each for the snapshots; the history store says its own (at most once each, if it wrote meanwhile).
        assert log.count("ticker.redis_store: Redis lost") == 1, log
        assert log.count("ticker.redis_store: Redis back") == 1, log
        assert log.count("ticker.history.redis: history: Redis lost") <= 1, log
    with capsys.disabled():
        print(f"\nRedis scale-out: {figures}; new leader log: {new_leader.log.name}")


def test_workers_share_one_poller(tmp_path, upstream, redis_server):
    config = shared_config(tmp_path, upstream, redis_server.url, "workers.toml")
    seen: set[str] = set()

    def both_roles_seen() -> bool:
        seen.add(httpx.get(f"{service.url}/readyz", timeout=5).json()["lease"])  # a new connection: either worker
        return seen == {"holder", "follower"}

    with running(config, "--workers", "2") as service:
        time.sleep(2 * INTERVAL)
        assert upstream_rate(upstream, 5 * INTERVAL) <= 5 + 1
        assert service.get("/api/v1/prices/BTC").json()["price"] == 90917.04
        wait_until(both_roles_seen, 5, "one worker holding the lease and the other following")


def test_redis_fallback_polls_locally_after_stale_after(tmp_path, upstream, redis_server):
    poller = "stale_after_seconds = 2\nmax_stale_seconds = 3600"
    services = [
        Service(shared_config(tmp_path, upstream, redis_server.url, f"f{i}.toml", poller=poller), free_port())
        for i in range(2)
    ]
    try:
        for service in services:
            service.wait_ready()
        leader_of(services)
        redis_server.stop()
        upstream.coingecko.prices["bitcoin"]["usd"] = (88888.0, 1.0)
        all_serve_btc_at(services, 88888.0, 8, "each instance polling on its own")
        assert [lease(s) for s in services] == ["single", "single"]
    finally:
        for service in services:
            service.stop()
