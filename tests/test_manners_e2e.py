"""Manners bind whoever polls next: real `ticker serve` processes, a real redis-server, a fake CoinGecko.

A Retry-After received by the lease holder binds the instance that takes the lease over, and a restart
in memory mode keeps the hold through the snapshot file.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.redis_server import require_redis_server
from tests.service import Service, free_port, wait_until, write_config

require_redis_server()
pytestmark = pytest.mark.e2e

HOLD = 8  # seconds of Retry-After: long against the 1 s interval and a takeover, short for the suite
RATE_LIMITED = (429, b'{"status":{"error_code":429,"error_message":"rate limited"}}', {"retry-after": str(HOLD)})


def first_429(log: list[tuple[float, str, int]]) -> float:
    return next(at for at, _, status in log if status == 429)


def inside_hold(log: list[tuple[float, str, int]], since: float) -> list[tuple[float, str, int]]:
    """Requests the fake saw inside the hold; the first 0.3 s are left out: a request sent before the 429
    reached ticker was already in flight (the contract lets those finish), and 0.2 s at the end for clocks."""
    return [entry for entry in log if since + 0.3 < entry[0] < since + HOLD - 0.2]


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
        upstream.coingecko.fail_with(*RATE_LIMITED)
        wait_until(lambda: any(status == 429 for _, _, status in upstream.coingecko.log), 5, "a 429")
        upstream.coingecko.recover()  # the upstream is fine again at once: only the hold keeps us away
        limited = first_429(upstream.coingecko.log)
        time.sleep(0.8)  # the holder writes its manners to Redis within half a second
        holder.proc.send_signal(signal.SIGKILL)  # dies without releasing the lease
        holder.proc.wait(timeout=5)
        wait_until(lambda: "holds the poller lease" in follower.log.read_text(), 5, "the takeover")
        taken_over = time.monotonic()
        assert taken_over < limited + HOLD - 2, "the takeover came too late to prove anything"
        wait_until(
            lambda: any(at > limited + HOLD for at, _, _ in upstream.coingecko.log),
            HOLD + 5,
            "CoinGecko asked again after the hold",
        )
        assert inside_hold(upstream.coingecko.log, limited) == [], [
            (round(a - limited, 2), p, c) for a, p, c in upstream.coingecko.log
        ]
        # Meanwhile the coins came from CoinPaprika, and the new holder served them.
        assert follower.get("/api/v1/prices/BTC").json()["price"] is not None
        readyz = follower.get("/readyz").json()
        assert readyz["providers"]["coingecko"]["state"] in {"ok", "backoff"}
    finally:
        for service in services:
            service.stop()


def test_a_hold_survives_a_restart_through_the_snapshot_file(tmp_path, upstream):
    config = write_config(tmp_path, upstream, 1.0, providers=("coingecko", "coinpaprika"))
    first = Service(config, free_port())
    try:
        first.wait_ready()
        upstream.coingecko.fail_with(*RATE_LIMITED)
        wait_until(lambda: any(status == 429 for _, _, status in upstream.coingecko.log), 5, "a 429")
        upstream.coingecko.recover()
        limited = first_429(upstream.coingecko.log)
        wait_until(lambda: first.get("/readyz").json()["providers"]["coingecko"]["retry_at"], 3, "retry_at")
        time.sleep(1.2)  # one more round writes the snapshot file with the hold in it
    finally:
        first.stop()
    second = Service(config, free_port())
    try:
        second.wait_ready()
        retry_at = second.get("/readyz").json()["providers"]["coingecko"]["retry_at"]
        assert retry_at is not None and retry_at.endswith("Z")
        wait_until(
            lambda: any(at > limited + HOLD for at, _, _ in upstream.coingecko.log),
            HOLD + 5,
            "CoinGecko asked again after the hold",
        )
        assert inside_hold(upstream.coingecko.log, limited) == [], [
            (round(a - limited, 2), p, c) for a, p, c in upstream.coingecko.log
        ]
    finally:
        second.stop()
