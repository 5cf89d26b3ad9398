"""Kraken `/0/public/OHLC` candles for the backfill: the documented body, its error envelope inside a 200, limits."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.conftest import FakeClock, fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin
from ticker.providers.base import CandleSource
from ticker.providers.budget import RequestBudget
from ticker.providers.kraken import RATE_LIMIT_RETRY_SECONDS, Kraken

OHLC_URL = "https://api.kraken.com/0/public/OHLC"
BTC = Coin("BTC", "Bitcoin", {"kraken": "XBTUSD"})
HOURLY = "kraken_ohlc_xbtusd_1h.constructed.json"
OPEN_BUCKET = 1706799600  # the last row of the hourly fixture: Kraken's bucket still in progress
LATER = OPEN_BUCKET + 1800  # "now" in the hourly tests: half-way through that bucket


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client, clock: FakeClock | None = None, budget: RequestBudget | None = None) -> Kraken:
    clock = clock or FakeClock()
    return make_provider(
        Kraken, client, ProviderSettings(), budget=budget, monotonic=clock.monotonic, sleep=clock.sleep
    )


def test_kraken_is_a_candle_source_for_its_usd_pairs(client):
    kraken = provider(client)
    assert isinstance(kraken, CandleSource)
    assert kraken.has_candles(BTC, "usd")
    assert not kraken.has_candles(BTC, "eur")  # its table holds USD pairs only
    assert not kraken.has_candles(Coin("BTC", "Bitcoin", {"kraken": "XBTUSDT"}), "usd")
    assert not kraken.has_candles(Coin("WAVES", "Waves", {"coingecko": "waves"}), "usd")


async def test_official_doc_example_one_minute_buckets(respx_mock, client):
    route = respx_mock.get(OHLC_URL).respond(200, content=fixture_bytes("kraken_ohlc.json"))
    candles = await provider(client).candles(BTC, "usd", 60, 1688671200, 1688671440)
    assert dict(route.calls.last.request.url.params) == {"pair": "XBTUSD", "interval": "1", "since": "1688671200"}
    assert candles[0] == Candle(1688671200, 60, 30306.1, 30306.2, 30305.7, 30305.7)
    assert [c.start for c in candles] == [1688671200, 1688671260, 1688671320, 1688671380]
    assert candles[-1] == Candle(1688671380, 60, 30291.8, 30295.1, 30291.8, 30295.0)


async def test_hourly_buckets_drop_the_one_still_open(respx_mock, client):
    route = respx_mock.get(OHLC_URL).respond(200, content=fixture_bytes(HOURLY))
    since = LATER - 30 * 86400
    candles = await provider(client).candles(BTC, "usd", 3600, since, LATER)
    assert route.calls.last.request.url.params["interval"] == "60"
    rows = fixture_json(HOURLY)["result"]["XXBTZUSD"]
    assert candles == [Candle(r[0], 3600, *(float(v) for v in r[1:5])) for r in rows[:-1]]  # strings -> floats
    assert all(c.start + c.seconds <= LATER for c in candles) and OPEN_BUCKET not in [c.start for c in candles]


async def test_daily_buckets_ask_interval_1440(respx_mock, client):
    route = respx_mock.get(OHLC_URL).respond(200, json={"error": [], "result": {"XXBTZUSD": [], "last": 0}})
    assert await provider(client).candles(BTC, "usd", 86400, 1_700_000_000, 1_731_536_000) == []
    assert route.calls.last.request.url.params["interval"] == "1440"


async def test_an_answer_for_another_quote_is_not_taken_as_usd(respx_mock, client):
    respx_mock.get(OHLC_URL).respond(200, content=fixture_bytes("kraken_ohlc_xbtusdt.json"))
    with pytest.raises(ProviderError, match="no entry for pair XBTUSD"):
        await provider(client).candles(BTC, "usd", 3600, LATER - 86400 * 30, LATER)


async def test_unknown_pair_fails_without_holding_kraken(respx_mock, client):
    respx_mock.get(OHLC_URL).respond(200, content=fixture_bytes("kraken_error_unknown_pair.json"))
    kraken = provider(client)
    with pytest.raises(ProviderError, match="Unknown asset pair") as caught:
        await kraken.candles(BTC, "usd", 3600, LATER - 86400, LATER)
    assert caught.value.retry_after is None
    assert kraken.session.manners.held_seconds() == 0  # the pair is unknown; Kraken itself may be asked


async def test_too_many_requests_inside_a_200_holds_kraken(respx_mock, client):
    route = respx_mock.get(OHLC_URL).respond(
        200, content=fixture_bytes("kraken_error_too_many_requests.constructed.json")
    )
    kraken = provider(client)
    with pytest.raises(ProviderError, match="EGeneral:Too many requests") as caught:
        await kraken.candles(BTC, "usd", 3600, LATER - 86400, LATER)
    assert caught.value.retry_after == RATE_LIMIT_RETRY_SECONDS
    assert kraken.session.manners.held_seconds() == RATE_LIMIT_RETRY_SECONDS  # price requests wait too
    with pytest.raises(ProviderError) as again:
        await kraken.candles(BTC, "usd", 3600, LATER - 86400, LATER)
    assert again.value.held and route.call_count == 1  # nothing sent while held


async def test_429_with_retry_after_holds_kraken_that_long(respx_mock, client):
    respx_mock.get(OHLC_URL).respond(429, headers={"Retry-After": "90"})
    kraken = provider(client)
    with pytest.raises(ProviderError, match="HTTP 429"):
        await kraken.candles(BTC, "usd", 3600, LATER - 86400, LATER)
    assert kraken.session.manners.held_seconds() == 90


async def test_off_schema_rows_are_skipped_and_logged(respx_mock, client, caplog):
    rows = fixture_json(HOURLY)["result"]["XXBTZUSD"][:3]
    bad = [
        [rows[0][0]],  # too short
        [rows[0][0] + 60, "1", "x", "1", "1", "1", "1", 1],  # non-numeric high
        [rows[0][0] + 120, "10", "9", "11", "10", "1", "1", 1],  # high below low
        [rows[0][0] + 180, "-1", "1", "-2", "1", "1", "1", 1],  # negative prices
        "junk",
    ]
    respx_mock.get(OHLC_URL).respond(200, json={"error": [], "result": {"XXBTZUSD": bad + rows, "last": 1}})
    with caplog.at_level(logging.WARNING):
        candles = await provider(client).candles(BTC, "usd", 3600, rows[0][0], LATER)
    assert [c.start for c in candles] == [r[0] for r in rows]
    assert "kraken: BTC/usd: ignoring off-schema candle" in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        {"error": "oops"},  # not a list
        {"error": []},  # no result
        {"error": [], "result": {"XXBTZUSD": {"not": "rows"}, "last": 1}},
        ["a", "list"],
    ],
    ids=["error-not-a-list", "no-result", "rows-not-a-list", "array"],
)
async def test_an_unexpected_body_is_a_provider_error(respx_mock, client, body):
    respx_mock.get(OHLC_URL).respond(200, content=json.dumps(body).encode())
    with pytest.raises(ProviderError, match="unexpected /OHLC"):
        await provider(client).candles(BTC, "usd", 3600, LATER - 86400, LATER)


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), transport_failures(b'{"error": [], "res'))
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    respx_mock.get(OHLC_URL).mock(side_effect=[outcome])
    with pytest.raises(ProviderError) as caught:
        await provider(client).candles(BTC, "usd", 3600, LATER - 86400, LATER)
    assert message in caught.value.message
    assert (caught.value.status, caught.value.retry_after) == (status, retry_after)


async def test_a_side_request_leaves_the_price_rounds_their_budget(respx_mock, client):
    route = respx_mock.get(OHLC_URL).respond(200, content=fixture_bytes(HOURLY))
    clock = FakeClock()
    kraken = provider(client, clock, budget=RequestBudget(30, monotonic=clock.monotonic))
    kraken.session.reserve = (30,)  # the price rounds need the whole minute
    with pytest.raises(ProviderError, match="left over by price rounds") as caught:
        await kraken.candles(BTC, "usd", 3600, LATER - 86400, LATER)
    assert caught.value.over_budget and not route.called


async def test_bucket_lengths_kraken_does_not_serve_are_refused(client):
    with pytest.raises(ValueError, match="no 7200 s candles"):
        await provider(client).candles(BTC, "usd", 7200, LATER - 86400, LATER)
