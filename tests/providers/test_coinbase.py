from __future__ import annotations

import logging
import math
from typing import Any

import httpx
import pytest
import respx

from tests.conftest import fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Coin
from ticker.providers.budget import RequestBudget
from ticker.providers.coinbase import CONCURRENCY, Coinbase

BASE = "https://api.exchange.coinbase.com"
SAMPLE_CHANGE = (6813.19 - 6745.61) / 6745.61 * 100  # from the sample's open and last: about +1.0018 %


def stats_url(product: str, base: str = BASE) -> str:
    return f"{base}/products/{product}/stats"


def coin(symbol: str, product: str | None = None) -> Coin:
    return Coin(symbol, symbol.title(), {"coinbase": product or f"{symbol}-USD"})


class Clock:
    """Monotonic time moved by hand; `sleep` records and returns at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(
    client: httpx.AsyncClient, *, clock: Clock | None = None, budget: RequestBudget | None = None, **settings: Any
) -> Coinbase:
    clock = clock or Clock()
    return make_provider(
        Coinbase, client, ProviderSettings(**settings), budget=budget, monotonic=clock, sleep=clock.sleep
    )


def mock_stats(respx_mock: respx.MockRouter, product: str, **response: Any) -> respx.Route:
    return respx_mock.get(stats_url(product)).respond(**({"status_code": 200} | response))


def test_keyless_public_plan_and_limits():
    assert Coinbase.KEYLESS is True and Coinbase.PLANS == ("public",)
    assert Coinbase.name == "coinbase" and Coinbase.batch_size == 1
    assert Coinbase.default_limits(ProviderSettings()) == (60.0, None)


async def test_real_stats_sample_gives_last_price_and_change_from_open(respx_mock, client):
    route = mock_stats(respx_mock, "BTC-USD", content=fixture_bytes("coinbase_stats.json"))
    [q] = await provider(client).fetch([coin("BTC")], ["usd"])
    assert route.call_count == 1
    assert route.calls.last.request.headers["accept"] == "application/json"
    assert (q.symbol, q.currency, q.price, q.source, q.icon_url) == ("BTC", "usd", 6813.19, "coinbase", None)
    assert q.change_24h_pct == SAMPLE_CHANGE and math.isclose(q.change_24h_pct, 1.00183, abs_tol=1e-5)
    assert q.updated_at is None  # /stats has no time: the poller stamps the fetch time


async def test_one_request_per_product_in_coin_order(respx_mock, client):
    routes = [mock_stats(respx_mock, f"{s}-USD", json=fixture_json("coinbase_stats.json")) for s in ("BTC", "ETH")]
    doge = mock_stats(respx_mock, "DOGE-USD", json={"open": "0.1", "last": "0.12345678"})
    quotes = await provider(client).fetch([coin("BTC"), coin("ETH"), coin("DOGE")], ["usd", "eur"])
    assert [(q.symbol, q.currency) for q in quotes] == [("BTC", "usd"), ("ETH", "usd"), ("DOGE", "usd")]
    assert [r.call_count for r in routes] == [1, 1] and doge.call_count == 1
    assert quotes[2].price == 0.12345678 and quotes[2].change_24h_pct == pytest.approx(23.45678)


async def test_usd_products_are_not_asked_for_other_currencies(respx_mock, client):
    # no route mocked: any request would fail the test
    assert await provider(client).fetch([coin("BTC"), Coin("XMR", "Monero", {"kraken": "XMRUSD"})], ["eur"]) == []


async def test_a_product_is_labelled_with_its_own_quote_currency(respx_mock, client):
    mock_stats(respx_mock, "BTC-EUR", json=fixture_json("coinbase_stats.json"))
    [q] = await provider(client).fetch([coin("BTC", "BTC-EUR")], ["usd", "eur"])
    assert q.currency == "eur"


async def test_requests_are_spaced_to_stay_well_under_ten_per_second(respx_mock, client):
    clock = Clock()
    for symbol in ("BTC", "ETH", "LTC"):
        mock_stats(respx_mock, f"{symbol}-USD", json=fixture_json("coinbase_stats.json"))
    quotes = await provider(client, clock=clock).fetch([coin("BTC"), coin("ETH"), coin("LTC")], ["usd"])
    assert len(quotes) == 3
    assert sorted(clock.slept) == pytest.approx([0.2, 0.4])


async def test_a_delisted_product_costs_only_its_coin_and_is_skipped_for_a_day(respx_mock, client, caplog):
    clock = Clock()
    cb = provider(client, clock=clock)
    btc = mock_stats(respx_mock, "BTC-USD", json=fixture_json("coinbase_stats.json"))
    gone = mock_stats(
        respx_mock, "XYZ-USD", status_code=404, content=fixture_bytes("coinbase_error_404.constructed.json")
    )
    coins = [coin("XYZ"), coin("BTC")]
    with caplog.at_level(logging.INFO):
        assert [q.symbol for q in await cb.fetch(coins, ["usd"])] == ["BTC"]
        clock.now += 3600
        assert [q.symbol for q in await cb.fetch(coins, ["usd"])] == ["BTC"]
        assert gone.call_count == 1 and btc.call_count == 2
        clock.now += 24 * 3600
        await cb.fetch(coins, ["usd"])
        assert gone.call_count == 2
    assert caplog.text.count("XYZ-USD not found") == 1
    assert "no price this round" not in caplog.text  # a delisting is not a failure


async def test_a_lone_404_is_a_failure_not_a_delisting(respx_mock, client):
    """With no other product answering, a 404 may as well be a wrong base URL: raise, remember nothing."""
    cb = provider(client)
    route = mock_stats(
        respx_mock, "XYZ-USD", status_code=404, content=fixture_bytes("coinbase_error_404.constructed.json")
    )
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await cb.fetch([coin("XYZ")], ["usd"])
        assert caught.value.status == 404 and caught.value.message == "XYZ-USD: HTTP 404: NotFound"
    assert route.call_count == 2


async def test_one_failing_product_does_not_fail_the_others(respx_mock, client, caplog):
    cb = provider(client)
    mock_stats(respx_mock, "BTC-USD", json=fixture_json("coinbase_stats.json"))
    eth = respx_mock.get(stats_url("ETH-USD")).mock(
        side_effect=[httpx.Response(500), httpx.Response(500), httpx.Response(200, json={"open": "10", "last": "11"})]
    )
    coins = [coin("BTC"), coin("ETH")]
    with caplog.at_level(logging.INFO):
        assert [q.symbol for q in await cb.fetch(coins, ["usd"])] == ["BTC"]
        assert [q.symbol for q in await cb.fetch(coins, ["usd"])] == ["BTC"]
        assert [q.symbol for q in await cb.fetch(coins, ["usd"])] == ["BTC", "ETH"]
    assert eth.call_count == 3
    assert caplog.text.count("no price this round for ETH-USD: HTTP 500") == 1
    assert "priced again: ETH-USD" in caplog.text


async def test_every_request_failing_raises_the_most_telling_error(respx_mock, client):
    respx_mock.get(stats_url("BTC-USD")).mock(side_effect=httpx.ConnectTimeout("timed out"))
    mock_stats(respx_mock, "ETH-USD", status_code=503, headers={"retry-after": "30"})
    mock_stats(respx_mock, "LTC-USD", status_code=500)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch([coin("BTC"), coin("ETH"), coin("LTC")], ["usd"])
    err = caught.value
    # The 503's Retry-After holds Coinbase at once: a product not yet asked is not sent at all.
    assert err.provider == "coinbase" and err.message.startswith("ETH-USD: HTTP 503 (and ")
    assert err.status == 503 and err.retry_after == 30.0 and not err.over_budget


async def test_a_429_stops_the_round(respx_mock, client):
    route = respx_mock.get(url__regex=rf"{BASE}/products/.+/stats").respond(
        429, content=fixture_bytes("coinbase_error_429.constructed.json")
    )
    coins = [coin(s) for s in ("BTC", "ETH", "LTC", "DOGE", "ADA", "SOL", "XRP")]
    clock = Clock()
    cb = provider(client, clock=clock)
    with pytest.raises(ProviderError) as caught:
        await cb.fetch(coins, ["usd"])
    assert route.call_count <= CONCURRENCY  # only those already under way
    assert caught.value.status == 429 and "HTTP 429: Public rate limit exceeded" in caught.value.message
    # No Retry-After: the whole provider is held for Coinbase's own pause, whatever product is asked next.
    assert cb.session.manners.held_seconds() == Coinbase.RATE_LIMIT_HOLD
    with pytest.raises(ProviderError) as again:
        await cb.fetch([coin("BTC")], ["usd"])
    assert again.value.held and route.call_count <= CONCURRENCY


async def test_a_429_after_some_prices_keeps_them(respx_mock, client):
    mock_stats(respx_mock, "BTC-USD", json=fixture_json("coinbase_stats.json"))
    mock_stats(respx_mock, "ETH-USD", status_code=429, content=fixture_bytes("coinbase_error_429.constructed.json"))
    quotes = await provider(client).fetch([coin("BTC"), coin("ETH")], ["usd"])
    assert [q.symbol for q in quotes] == ["BTC"]


async def test_a_spent_budget_stops_the_round_and_keeps_what_came(respx_mock, client):
    route = respx_mock.get(url__regex=rf"{BASE}/products/.+/stats").respond(
        200, json=fixture_json("coinbase_stats.json")
    )
    budget = RequestBudget(2, None)
    cb = provider(client, budget=budget)
    quotes = await cb.fetch([coin("BTC"), coin("ETH"), coin("LTC")], ["usd"])
    assert len(quotes) == 2 and route.call_count == 2 and budget.spent == 2
    with pytest.raises(ProviderError) as caught:
        await cb.fetch([coin("BTC")], ["usd"])
    assert caught.value.over_budget and caught.value.retry_after is not None and caught.value.retry_after > 0
    assert route.call_count == 2  # nothing sent


async def test_values_are_taken_as_numbers_and_judged_by_the_poller(respx_mock, client, caplog):
    bodies = {
        "NAN": {"open": "1", "last": "NaN"},
        "NEG": {"open": "10", "last": "-5"},
        "NUM": {"open": 100, "last": 101.5},
        "ZERO": {"open": "0", "last": "0.5"},
        "BADOPEN": {"open": "n/a", "last": "7"},
        "NULL": {"open": "1", "last": None},
        "TEXT": {"open": "1", "last": "abc"},
    }
    for symbol, body in bodies.items():
        mock_stats(respx_mock, f"{symbol}-USD", json=body)
    with caplog.at_level(logging.WARNING):
        quotes = {q.symbol: q for q in await provider(client).fetch([coin(s) for s in bodies], ["usd"])}
    assert set(quotes) == {"NAN", "NEG", "NUM", "ZERO", "BADOPEN"}
    assert math.isnan(quotes["NAN"].price) and quotes["NAN"].change_24h_pct is None
    assert quotes["NEG"].price == -5.0 and quotes["NEG"].change_24h_pct == -150.0
    assert quotes["NUM"].price == 101.5 and quotes["NUM"].change_24h_pct == 1.5
    assert quotes["ZERO"].price == 0.5 and quotes["ZERO"].change_24h_pct is None
    assert quotes["BADOPEN"].price == 7.0 and quotes["BADOPEN"].change_24h_pct is None
    assert "NULL-USD: /stats without a numeric last price (None)" in caplog.text
    assert "TEXT-USD: /stats without a numeric last price ('abc')" in caplog.text


PROVIDER_FAILURES = [
    pytest.param(
        httpx.Response(429, content=fixture_bytes("coinbase_error_429.constructed.json")),
        "HTTP 429: Public rate limit exceeded",
        429,
        None,  # the session holds Coinbase for its RATE_LIMIT_HOLD instead (test_a_429_holds_every_product)
        id="429-no-retry-after",
    ),
    pytest.param(
        httpx.Response(429, headers={"retry-after": "5"}, content=fixture_bytes("coinbase_error_429.constructed.json")),
        "HTTP 429: Public rate limit exceeded",
        429,
        5.0,
        id="429-retry-after",
    ),
    pytest.param(httpx.Response(200, json={}), "/stats without a numeric last price", None, None, id="empty-object"),
    pytest.param(httpx.Response(200, json=[1, 2]), "unexpected /stats response (list)", None, None, id="wrong-shape"),
    *transport_failures(fixture_bytes("coinbase_stats.json")[:60]),
]


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), PROVIDER_FAILURES)
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    route = respx_mock.get(stats_url("BTC-USD"))
    if isinstance(outcome, Exception):
        route.mock(side_effect=outcome)
    else:
        route.mock(return_value=outcome)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch([coin("BTC")], ["usd"])
    err = caught.value
    assert err.provider == "coinbase" and err.message.startswith("BTC-USD: ") and message in err.message
    assert err.status == status
    assert err.retry_after == pytest.approx(retry_after)


async def test_base_url_override_for_mirrors_and_tests(respx_mock, client):
    route = respx_mock.get(stats_url("BTC-USD", "http://127.0.0.1:9/cb")).respond(
        200, json=fixture_json("coinbase_stats.json")
    )
    await provider(client, base_url="http://127.0.0.1:9/cb/").fetch([coin("BTC")], ["usd"])
    assert route.called


async def test_supports_only_coins_with_a_coinbase_product(client):
    cb = provider(client)
    assert cb.supports(coin("BTC")) and not cb.supports(Coin("ARRR", "Pirate Chain", {"coingecko": "pirate-chain"}))
