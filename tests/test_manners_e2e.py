"""Manners bind whoever polls next: real `ticker serve` processes, a real redis-server, a fake CoinGecko.

A Retry-After received by the lease holder binds the instance that takes the lease over, and a restart
in memory mode keeps the hold through the snapshot file.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.fake_upstream import FakeUpstream
from tests.redis_server import require_redis_server
from tests.service import Service, free_port, wait_until, write_config

require_redis_server()
pytestmark = pytest.mark.e2e

HOLD = 8  # seconds of Retry-After: long against the 1 s interval and a takeover, short for the suite
RATE_LIMITED = (429, b'{"status":{"error_code":429,"error_message":"rate limited"}}', {"retry-after": str(HOLD)})


def rate_limit_once(upstream: FakeUpstream) -> float:
    """CoinGecko answers 429 (Retry-After HOLD) until one arrives, then is fine again; when it answered."""
    upstream.coingecko.fail_with(*RATE_LIMITED)
    wait_until(lambda: any(status == 429 for _, _, status in upstream.coingecko.log), 5, "a 429")
    upstream.coingecko.recover()  # the upstream is fine again at once: only the hold keeps us away
    return next(at for at, _, status in upstream.coingecko.log if status == 429)


def assert_nothing_inside_the_hold(upstream: FakeUpstream, since: float) -> None:
    """Wait until CoinGecko is asked again after the hold; nothing may have gone to it inside it.

    The first 0.3 s are left out (a request sent before the 429 reached ticker was in flight, which the
    contract allows), and 0.2 s at the end for the two processes' clocks.
    """
    log = upstream.coingecko.log
    wait_until(lambda: any(at > since + HOLD for at, _, _ in log), HOLD + 5, "CoinGecko asked again after the hold")
    inside = [entry for entry in log if since + 0.3 < entry[0] < since + HOLD - 0.2]
    assert inside == [], [(round(at - since, 2), path, status) for at, path, status in log]


def test_a_hold_binds_the_instance_that_takes_the_lease_over(tmp_path, upstream, redis_server):
    def config(name: str):
        cache = f'url = "{redis_server.url}"\nnamespace = "manners"\nsnapshot_path = "{name}.snapshot.json"'
        return write_config(tmp_path, upstream, 1.0, cache=cache, name=name, providers=("coingecko", "coinpaprika"))

    services = [Service(config(f"m{i}.toml"), free_port()) for i in range(2)]
    try:
        for service in services:
            service.wait_ready()
        holder = wait_until(
            lambda: next((s for s in services if "holds the poller lease" in s.log.read_text()), None),
            5,
            "a lease holder",
        )
        [follower] = [s for s in services if s is not holder]
        limited = rate_limit_once(upstream)
        time.sleep(0.8)  # the holder writes its manners to Redis within half a second
        holder.proc.send_signal(signal.SIGKILL)  # dies without releasing the lease
        holder.proc.wait(timeout=5)
        wait_until(lambda: "holds the poller lease" in follower.log.read_text(), 5, "the takeover")
        taken_over = time.monotonic()
        assert taken_over < limited + HOLD - 2, "the takeover came too late to prove anything"
        assert_nothing_inside_the_hold(upstream, limited)
        # Meanwhile the coins came from CoinPaprika, and the new holder served them.
        assert follower.get("/api/v1/prices/BTC").json()["price"] is not None
        wait_until(  # once its first round as holder is in (a loaded machine may still serve the old snapshot)
            lambda: follower.get("/readyz").json()["providers"]["coingecko"]["state"] in {"ok", "backoff"},
            5,
            "the new holder's view of coingecko",
        )
        assert_nothing_inside_the_hold(upstream, limited)
    finally:
        for service in services:
            service.stop()


def test_a_hold_survives_a_restart_through_the_snapshot_file(tmp_path, upstream):
    config = write_config(tmp_path, upstream, 1.0, providers=("coingecko", "coinpaprika"))
    first = Service(config, free_port())
    try:
        first.wait_ready()
        limited = rate_limit_once(upstream)
        wait_until(lambda: first.get("/readyz").json()["providers"]["coingecko"]["retry_at"], 3, "retry_at")
        time.sleep(1.2)  # one more round writes the snapshot file with the hold in it
    finally:
        first.stop()
    second = Service(config, free_port())
    try:
        second.wait_ready()
        retry_at = second.get("/readyz").json()["providers"]["coingecko"]["retry_at"]
        assert retry_at is not None and retry_at.endswith("Z")
        assert_nothing_inside_the_hold(upstream, limited)
    finally:
        second.stop()
