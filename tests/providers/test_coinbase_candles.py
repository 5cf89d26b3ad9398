"""Coinbase Exchange `/products/{id}/candles` for the backfill: newest first, 300 buckets a request at most."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import FakeClock, fixture_bytes
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin
from ticker.providers.base import CandleSource
from ticker.providers.budget import RequestBudget
from ticker.providers.coinbase import Coinbase

CANDLES_URL = "https://api.exchange.coinbase.com/products/BTC-USD/candles"
BTC = Coin("BTC", "Bitcoin", {"coinbase": "BTC-USD"})
ETH = Coin("ETH", "Ethereum", {"coinbase": "ETH-USD"})
HOUR = 1710327600  # the bucket of coinbase_candles_1h.json, 2024-03-13 11:00 UTC
LATER = HOUR + 2 * 3600


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client, budget: RequestBudget | None = None) -> Coinbase:
    clock = FakeClock()
    return make_provider(
        Coinbase, client, ProviderSettings(), budget=budget, monotonic=clock.monotonic, sleep=clock.sleep
    )


def iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_coinbase_is_a_candle_source_in_each_products_quote_currency(client):
    coinbase = provider(client)
    assert isinstance(coinbase, CandleSource)
    assert coinbase.has_candles(BTC, "usd") and not coinbase.has_candles(BTC, "eur")
    assert coinbase.has_candles(Coin("BTC", "Bitcoin", {"coinbase": "BTC-EUR"}), "eur")


async def test_captured_one_minute_candles_come_newest_first_and_are_sorted(respx_mock, client):
    url = "https://api.exchange.coinbase.com/products/ETH-USD/candles"
    route = respx_mock.get(url).respond(200, content=fixture_bytes("coinbase_candles.json"))
    candles = await provider(client).candles(ETH, "usd", 60, 1515264720, 1515264840)
    assert candles == [  # [time, low, high, open, close, volume] -> open, high, low, close
        Candle(1515264720, 60, 994.5, 994.5, 994.49, 994.5),
        Candle(1515264780, 60, 994.5, 994.5, 994.5, 994.5),
    ]
    params = route.calls.last.request.url.params
    assert dict(params) == {"granularity": "60", "start": iso(1515264720), "end": iso(1515264840)}


async def test_captured_hourly_candle_in_its_column_order(respx_mock, client):
    respx_mock.get(CANDLES_URL).respond(200, content=fixture_bytes("coinbase_candles_1h.json"))
    [candle] = await provider(client).candles(BTC, "usd", 3600, HOUR, LATER)
    assert candle == Candle(HOUR, 3600, open=73243.33, high=73402.47, low=73241.5, close=73370.65)


async def test_the_bucket_still_open_and_those_before_start_are_dropped(respx_mock, client):
    respx_mock.get(CANDLES_URL).respond(200, content=fixture_bytes("coinbase_candles_1h.json"))
    assert await provider(client).candles(BTC, "usd", 3600, HOUR, HOUR + 1800) == []  # still open at 11:30
    assert await provider(client).candles(BTC, "usd", 3600, HOUR + 3600, LATER) == []  # precedes start


async def test_thirty_days_hourly_take_three_requests_of_at_most_300_buckets(respx_mock, client):
    route = respx_mock.get(CANDLES_URL).respond(200, json=[])
    since = LATER - 720 * 3600
    assert await provider(client).candles(BTC, "usd", 3600, since, LATER) == []
    windows = [(c.request.url.params["start"], c.request.url.params["end"]) for c in route.calls]
    assert windows == [
        (iso(since), iso(since + 299 * 3600)),
        (iso(since + 300 * 3600), iso(since + 599 * 3600)),
        (iso(since + 600 * 3600), iso(LATER)),
    ]


async def test_a_year_daily_takes_two_requests(respx_mock, client):
    route = respx_mock.get(CANDLES_URL).respond(200, json=[])
    await provider(client).candles(BTC, "usd", 86400, LATER - 365 * 86400, LATER)
    assert route.call_count == 2 and route.calls.last.request.url.params["granularity"] == "86400"


@pytest.mark.parametrize(
    ("status", "fixture", "message"),
    [
        (404, "coinbase_error_404.constructed.json", "HTTP 404: NotFound"),
        (400, "coinbase_error_candles_range.json", "HTTP 400: granularity too small"),
    ],
)
async def test_errors_that_do_not_hold_coinbase(respx_mock, client, status, fixture, message):
    respx_mock.get(CANDLES_URL).respond(status, content=fixture_bytes(fixture))
    coinbase = provider(client)
    with pytest.raises(ProviderError, match=message):
        await coinbase.candles(BTC, "usd", 3600, HOUR, LATER)
    assert coinbase.session.manners.held_seconds() == 0


async def test_429_holds_coinbase_and_stops_the_remaining_windows(respx_mock, client):
    route = respx_mock.get(CANDLES_URL).respond(429, content=fixture_bytes("coinbase_error_429.constructed.json"))
    coinbase = provider(client)
    with pytest.raises(ProviderError, match="Public rate limit exceeded"):
        await coinbase.candles(BTC, "usd", 3600, LATER - 720 * 3600, LATER)
    assert route.call_count == 1
    assert coinbase.session.manners.held_seconds() == Coinbase.RATE_LIMIT_HOLD  # it sends no Retry-After


async def test_off_schema_rows_are_skipped_and_logged(respx_mock, client, caplog):
    body = [
        [HOUR + 3600, 1.0, 2.0],  # too short
        [HOUR, 73241.5, 73402.47, 73243.33, 73370.65, 1.5],
        [HOUR - 3600, 5.0, 4.0, 4.5, 4.5, 1.0],  # low above high
        [HOUR - 7200, "x", 4.0, 4.5, 4.5, 1.0],
        None,
    ]
    respx_mock.get(CANDLES_URL).respond(200, json=body)
    with caplog.at_level(logging.WARNING):
        candles = await provider(client).candles(BTC, "usd", 3600, HOUR - 86400, LATER)
    assert [c.start for c in candles] == [HOUR]
    assert "coinbase: BTC/usd: ignoring off-schema candle" in caplog.text


async def test_an_object_instead_of_rows_is_a_provider_error(respx_mock, client):
    respx_mock.get(CANDLES_URL).respond(200, json={"message": "whatever"})
    with pytest.raises(ProviderError, match="unexpected /candles response"):
        await provider(client).candles(BTC, "usd", 3600, HOUR, LATER)


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), transport_failures(b"[[1710327600, 7"))
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    respx_mock.get(CANDLES_URL).mock(side_effect=[outcome])
    with pytest.raises(ProviderError) as caught:
        await provider(client).candles(BTC, "usd", 3600, HOUR, LATER)
    assert message in caught.value.message
    assert (caught.value.status, caught.value.retry_after) == (status, retry_after)


async def test_a_side_request_leaves_the_price_rounds_their_budget(respx_mock, client):
    route = respx_mock.get(CANDLES_URL).respond(200, json=[])
    coinbase = provider(client, budget=RequestBudget(60))
    coinbase.session.reserve = (60,)
    with pytest.raises(ProviderError) as caught:
        await coinbase.candles(BTC, "usd", 3600, HOUR, LATER)
    assert caught.value.over_budget and not route.called


async def test_granularities_coinbase_refuses_are_not_asked(client):
    with pytest.raises(ValueError, match="no 7200 s candles"):
        await provider(client).candles(BTC, "usd", 7200, HOUR, LATER)
