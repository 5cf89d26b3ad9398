"""CoinGecko `/coins/{id}/market_chart` for the backfill: price points in milliseconds become buckets."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.conftest import CG, NOW, FakeClock, fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin
from ticker.providers.base import CandleSource
from ticker.providers.budget import RequestBudget
from ticker.providers.coingecko import CoinGecko

CHART_URL = f"{CG}/coins/bitcoin/market_chart"
BTC = Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"})
DOC_NOW = 1711983682  # the doc example's last point ("now" when it was taken): 2024-04-01 15:01:22 UTC
NOW_S = int(NOW.timestamp())
HOURLY = "coingecko_market_chart_1h.constructed.json"


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client, budget: RequestBudget | None = None, **settings) -> CoinGecko:
    clock = FakeClock()
    return make_provider(
        CoinGecko, client, ProviderSettings(**settings), budget=budget, monotonic=clock.monotonic, sleep=clock.sleep
    )


def test_coingecko_is_a_candle_source_in_every_vs_currency(client):
    coingecko = provider(client)
    assert isinstance(coingecko, CandleSource)
    assert all(coingecko.has_candles(BTC, currency) for currency in ("usd", "eur", "jpy", "btc", "sats"))
    assert not coingecko.has_candles(BTC, "xyz") and not coingecko.has_candles(Coin("X", "X", {"kraken": "X"}), "usd")


async def test_official_doc_example_daily_points_close_the_day_before(respx_mock, client):
    route = respx_mock.get(CHART_URL).respond(200, content=fixture_bytes("coingecko_market_chart.json"))
    candles = await provider(client).candles(BTC, "usd", 86400, DOC_NOW - 365 * 86400, DOC_NOW)
    assert dict(route.calls.last.request.url.params) == {"vs_currency": "usd", "days": "365", "precision": "full"}
    # 03-31 00:00 UTC closes 03-30, 04-01 00:00 closes 03-31; the 15:01 point lies in 04-01, still open.
    assert candles == [
        Candle(1711756800, 86400, 69702.3087473573, 69702.3087473573, 69702.3087473573, 69702.3087473573),
        Candle(1711843200, 86400, 71246.9514406015, 71246.9514406015, 71246.9514406015, 71246.9514406015),
    ]


async def test_hourly_points_become_hourly_buckets(respx_mock, client):
    route = respx_mock.get(CHART_URL).respond(200, content=fixture_bytes(HOURLY))
    candles = await provider(client).candles(BTC, "eur", 3600, NOW_S - 30 * 86400, NOW_S)
    assert route.calls.last.request.url.params["days"] == "30"  # 2-90 days: hourly points
    assert route.calls.last.request.url.params["vs_currency"] == "eur"
    points = fixture_json(HOURLY)["prices"]
    # Each point closes the hour that ends nearest to it (the points fall a few minutes past the hour).
    assert [c.close for c in candles] == [p[1] for p in points]
    assert [c.start for c in candles] == [round(p[0] / 1000 / 3600) * 3600 - 3600 for p in points]
    assert all(abs(c.start + 3600 - p[0] / 1000) <= 1800 for c, p in zip(candles, points, strict=True))
    assert all(c.open == c.high == c.low == c.close for c in candles)


async def test_several_points_in_one_bucket_make_its_open_high_low_close(respx_mock, client):
    hour = NOW_S - NOW_S % 3600 - 3600  # the bucket [hour, end): every point within half an hour of `end`
    end = hour + 3600
    points = [[(end - 1700) * 1000, 10.0], [(end - 1000) * 1000, 12.0], [(end + 600) * 1000, 9.0]]
    assert end + 1100 < NOW_S
    respx_mock.get(CHART_URL).respond(200, json={"prices": [*points, [(end + 1100) * 1000, 11.0]]})
    assert await provider(client).candles(BTC, "usd", 3600, hour, NOW_S) == [Candle(hour, 3600, 10.0, 12.0, 9.0, 11.0)]


async def test_a_short_span_still_asks_two_days_for_hourly_points(respx_mock, client):
    route = respx_mock.get(CHART_URL).respond(200, json={"prices": []})
    assert await provider(client).candles(BTC, "usd", 3600, NOW_S - 3600, NOW_S) == []
    assert route.calls.last.request.url.params["days"] == "2"  # 1 day would be 5-minutely


async def test_unknown_coin_is_a_provider_error_without_a_hold(respx_mock, client):
    respx_mock.get(CHART_URL).respond(404, content=fixture_bytes("coingecko_error_coin_not_found.json"))
    coingecko = provider(client)
    with pytest.raises(ProviderError, match="HTTP 404: Could not find coin with the given id"):
        await coingecko.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert coingecko.session.manners.held_seconds() == 0


async def test_429_holds_coingecko_for_retry_after(respx_mock, client):
    route = respx_mock.get(CHART_URL).respond(
        429, headers={"retry-after": "60"}, content=fixture_bytes("coingecko_error_429.json")
    )
    coingecko = provider(client)
    with pytest.raises(ProviderError, match="HTTP 429"):
        await coingecko.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert coingecko.session.manners.held_seconds() == 60
    with pytest.raises(ProviderError) as again:
        await coingecko.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert again.value.held and route.call_count == 1


async def test_off_schema_points_are_skipped_and_logged(respx_mock, client, caplog):
    hour = NOW_S - NOW_S % 3600 - 3600
    end = hour + 3600  # the points lie just past the hour, as CoinGecko's do: they close [hour, end)
    good = [(end + 60) * 1000, 10.0]
    bad = [[(end + 120) * 1000, "11.0"], [(end + 180) * 1000], [None, 10.0], [(end + 240) * 1000, -1.0], "x"]
    respx_mock.get(CHART_URL).respond(200, json={"prices": [*bad, good]})
    with caplog.at_level(logging.WARNING):
        candles = await provider(client).candles(BTC, "usd", 3600, hour, NOW_S)
    assert candles == [Candle(hour, 3600, 10.0, 10.0, 10.0, 10.0)]  # a string price is off-schema for an aggregator
    assert "coingecko: BTC/usd: ignoring off-schema chart point" in caplog.text


@pytest.mark.parametrize("body", [[1, 2], {"prices": {"a": 1}}, {"market_caps": []}], ids=["array", "dict", "none"])
async def test_a_body_without_a_prices_list_is_a_provider_error(respx_mock, client, body):
    respx_mock.get(CHART_URL).respond(200, json=body)
    with pytest.raises(ProviderError, match="unexpected market_chart response"):
        await provider(client).candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), transport_failures(b'{"prices": [[17'))
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    respx_mock.get(CHART_URL).mock(side_effect=[outcome])
    with pytest.raises(ProviderError) as caught:
        await provider(client).candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert message in caught.value.message
    assert (caught.value.status, caught.value.retry_after) == (status, retry_after)


async def test_only_where_the_budget_allows(respx_mock, client, monkeypatch):
    """A demo key's 10,000 a month is an even 333 a day, and one price round a minute needs 1,440: nothing is left."""
    monkeypatch.setenv("CG_KEY", "demo-key-123")
    route = respx_mock.get(CHART_URL).respond(200, json={"prices": []})
    settings = ProviderSettings(api_key_env="CG_KEY")
    coingecko = provider(client, budget=RequestBudget(30, 10_000), api_key_env="CG_KEY")
    coingecko.session.reserve = coingecko.session.budget.reserve_for(1, 60.0)
    assert CoinGecko.default_limits(settings) == (30.0, 10_000.0)
    with pytest.raises(ProviderError, match="left over by price rounds") as caught:
        await coingecko.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert caught.value.over_budget and not route.called


async def test_the_key_goes_in_a_header_never_the_url(respx_mock, client, monkeypatch):
    monkeypatch.setenv("CG_KEY", "demo-key-123")
    route = respx_mock.get(CHART_URL).respond(200, json={"prices": []})
    await provider(client, api_key_env="CG_KEY").candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    request = route.calls.last.request
    assert request.headers["x-cg-demo-api-key"] == "demo-key-123" and "demo-key-123" not in str(request.url)
