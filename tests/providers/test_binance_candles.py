"""Binance `/api/v3/klines` candles for the backfill: millisecond times, string prices, {code,msg} errors."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.conftest import NOW, FakeClock, fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin
from ticker.providers.base import CandleSource
from ticker.providers.binance import Binance
from ticker.providers.budget import RequestBudget

KLINES_URL = "https://api.binance.com/api/v3/klines"
BTC = Coin("BTC", "Bitcoin", {"binance": "BTCUSDT"})
HOURLY = "binance_klines_btcusdt_1h.constructed.json"
NOW_S = int(NOW.timestamp())  # 18:20 UTC: the fixture's 18:00 kline is still open


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client, budget: RequestBudget | None = None) -> Binance:
    clock = FakeClock()
    return make_provider(
        Binance, client, ProviderSettings(), budget=budget, monotonic=clock.monotonic, sleep=clock.sleep
    )


def test_binance_is_a_candle_source_for_its_usdt_pairs_as_usd(client):
    binance = provider(client)
    assert isinstance(binance, CandleSource)
    assert binance.has_candles(BTC, "usd") and not binance.has_candles(BTC, "eur")
    assert not binance.has_candles(Coin("BNB", "BNB", {"binance": "BNBBTC"}), "usd")


async def test_official_doc_example_weekly_kline_in_milliseconds(respx_mock, client):
    route = respx_mock.get(KLINES_URL).respond(200, content=fixture_bytes("binance_klines.json"))
    candles = await provider(client).candles(BTC, "usd", 604800, 1499040000, 1499644800)
    assert candles == [Candle(1499040000, 604800, 0.0163479, 0.8, 0.015758, 0.015771)]  # ms -> s, strings -> floats
    assert dict(route.calls.last.request.url.params) == {
        "symbol": "BTCUSDT",
        "interval": "1w",
        "startTime": "1499040000000",
        "endTime": "1499644799999",
        "limit": "1",
    }


async def test_hourly_klines_drop_the_one_still_open(respx_mock, client):
    route = respx_mock.get(KLINES_URL).respond(200, content=fixture_bytes(HOURLY))
    since = NOW_S - 30 * 86400
    candles = await provider(client).candles(BTC, "usd", 3600, since, NOW_S)
    params = route.calls.last.request.url.params
    assert (params["interval"], params["startTime"], params["limit"]) == ("1h", str(since * 1000), "720")
    rows = fixture_json(HOURLY)
    assert candles == [Candle(r[0] // 1000, 3600, *(float(v) for v in r[1:5])) for r in rows[:-1]]
    assert route.call_count == 1  # 720 hours fit one request (1000 at most)


async def test_daily_klines_for_a_year_are_one_request(respx_mock, client):
    route = respx_mock.get(KLINES_URL).respond(200, json=[])
    since = NOW_S - 365 * 86400
    assert await provider(client).candles(BTC, "usd", 86400, since, NOW_S) == []
    assert route.call_count == 1
    assert (route.calls.last.request.url.params["interval"], route.calls.last.request.url.params["limit"]) == (
        "1d",
        "365",
    )


async def test_more_than_a_thousand_klines_take_further_pages(respx_mock, client):
    since = NOW_S - NOW_S % 3600 - 1500 * 3600

    def answer(request: httpx.Request) -> httpx.Response:
        start, limit = int(request.url.params["startTime"]) // 1000, int(request.url.params["limit"])
        rows = [[(start + i * 3600) * 1000, "2", "3", "1", "2"] for i in range(limit) if start + i * 3600 < NOW_S]
        return httpx.Response(200, json=rows)

    route = respx_mock.get(KLINES_URL).mock(side_effect=answer)
    candles = await provider(client).candles(BTC, "usd", 3600, since, NOW_S)
    assert [call.request.url.params["limit"] for call in route.calls] == ["1000", "501"]
    assert len(candles) == 1500 and candles[0].start == since and candles[-1].start + 3600 <= NOW_S


async def test_invalid_symbol_fails_without_holding_binance(respx_mock, client):
    respx_mock.get(KLINES_URL).respond(400, content=fixture_bytes("binance_error_invalid_symbol.json"))
    binance = provider(client)
    with pytest.raises(ProviderError, match="Invalid symbol") as caught:
        await binance.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert caught.value.code == -1121 and binance.session.manners.held_seconds() == 0


@pytest.mark.parametrize(
    ("status", "fixture", "message"),
    [
        (429, "binance_error_429.constructed.json", "HTTP 429"),
        (418, "binance_error_418.constructed.json", "banned by Binance"),
    ],
)
async def test_429_and_418_hold_binance_for_retry_after(respx_mock, client, status, fixture, message):
    route = respx_mock.get(KLINES_URL).respond(status, headers={"Retry-After": "120"}, content=fixture_bytes(fixture))
    binance = provider(client)
    with pytest.raises(ProviderError, match=message) as caught:
        await binance.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert caught.value.retry_after == 120
    assert binance.session.manners.held_seconds() == 120
    with pytest.raises(ProviderError) as again:
        await binance.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert again.value.held and route.call_count == 1


async def test_off_schema_klines_are_skipped_and_logged(respx_mock, client, caplog):
    good = fixture_json(HOURLY)[:2]
    bad = [
        [good[0][0] + 1, "1"],  # too short
        [None, "1", "2", "1", "1"],  # no time
        [good[0][0] + 2, "1", "NaN", "1", "1"],  # not finite
        {"openTime": 1},
    ]
    respx_mock.get(KLINES_URL).respond(200, json=bad + good)
    with caplog.at_level(logging.WARNING):
        candles = await provider(client).candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert [c.start * 1000 for c in candles] == [row[0] for row in good]
    assert "binance: BTC/usd: ignoring off-schema" in caplog.text


async def test_an_error_object_in_a_200_is_a_provider_error(respx_mock, client):
    respx_mock.get(KLINES_URL).respond(200, json={"code": -1003, "msg": "Too many requests."})
    with pytest.raises(ProviderError, match="unexpected /api/v3/klines response"):
        await provider(client).candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), transport_failures(b"[[1795788000000, "))
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    respx_mock.get(KLINES_URL).mock(side_effect=[outcome])
    with pytest.raises(ProviderError) as caught:
        await provider(client).candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert message in caught.value.message
    assert (caught.value.status, caught.value.retry_after) == (status, retry_after)


async def test_a_side_request_leaves_the_price_rounds_their_budget(respx_mock, client):
    route = respx_mock.get(KLINES_URL).respond(200, json=[])
    binance = provider(client, budget=RequestBudget(60))
    binance.session.reserve = (60,)
    with pytest.raises(ProviderError) as caught:
        await binance.candles(BTC, "usd", 3600, NOW_S - 86400, NOW_S)
    assert caught.value.over_budget and not route.called
