"""The app with its lifespan running: poller, store and views wired together, upstream mocked by respx.

The clock is fixed at the fixtures' time (their `last_updated_at` is a constant), so ages never depend on
the day the suite runs; the poller still sleeps for real.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW, FakeClock, serving, settings_from, wait_for_price
from ticker.runtime import create_app


@pytest.fixture
def settings(tmp_path):
    return settings_from(
        tmp_path, '[market]\ncurrencies = ["usd", "eur"]\n[poller]\ninterval_seconds = 60\nproviders = ["coingecko"]'
    )


async def test_first_poll_at_start_fills_json_and_widget(coingecko, settings):
    async with serving(create_app(settings, clock=FakeClock())) as client:
        btc = await wait_for_price(client)
        assert btc["price"] == 90917.04 and btc["source"] == "coingecko"
        assert (await client.get("/api/v1/prices/ARRR?currency=eur")).json()["price"] == 0.13068
        assert "$90,917.04" in (await client.get("/widget")).text
        assert (await client.get("/readyz")).status_code == 200
        upstream_before = coingecko.prices.call_count
        queries = ["", "?coins=ETH,BTC", "?currency=eur", "?coins=XMR&currency=eur"]
        for i in range(1000):
            path = ("/api/v1/prices", "/widget", "/widget/fragment")[i % 3] + queries[i % 4]
            assert (await client.get(path)).status_code == 200
        assert coingecko.prices.call_count == upstream_before == 1  # visitors cost upstream nothing


async def test_restart_during_an_outage_serves_the_saved_prices_at_once(coingecko, settings):
    async with serving(create_app(settings, clock=FakeClock())) as client:
        first = await wait_for_price(client)
    assert settings.cache.snapshot_path.exists()

    coingecko.prices.respond(503, text="<html>down</html>")
    an_hour_later = FakeClock(NOW + timedelta(hours=1))
    async with serving(create_app(settings, clock=an_hour_later)) as client:
        again = (await client.get("/api/v1/prices/BTC")).json()  # before any poll could succeed
        assert again["price"] == first["price"] and again["updated_at"] == first["updated_at"]
        assert again["stale"] is True  # an hour old, and says so
        readyz = (await client.get("/readyz")).json()
        assert readyz["age_seconds"] == 3629.0 and readyz["ready"] is True
        assert (await client.get("/readyz")).status_code == 200


async def test_demo_mode_never_calls_upstream_and_never_persists(respx_mock, settings):
    async with serving(create_app(settings, demo=True, clock=FakeClock())) as client:
        btc = await wait_for_price(client)
        assert btc["source"] == "demo"
        assert "Demo: simulated prices" in (await client.get("/widget")).text
    assert not respx_mock.calls
    assert not settings.cache.snapshot_path.exists()
