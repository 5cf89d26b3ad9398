from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.conftest import fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Coin
from ticker.providers.binance import PROBES_PER_ROUND, Binance, quote_from_ticker
from ticker.providers.budget import RequestBudget

URL = "https://api.binance.com/api/v3/ticker/24hr"
DEFAULT_PAIRS = ("BTC", "ETH", "NEO", "XNO", "ARK", "DOGE", "LTC", "ADA")  # the default coins Binance lists
DAY = 86400.0


def coin(symbol: str, pair: str | None = None) -> Coin:
    return Coin(symbol, symbol.title(), {"binance": pair or f"{symbol}USDT"})


def coins(*symbols: str) -> list[Coin]:
    return [coin(symbol) for symbol in symbols]


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider(
    client: httpx.AsyncClient,
    *,
    budget: RequestBudget | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    **settings: Any,
) -> Binance:
    return make_provider(Binance, client, ProviderSettings(**settings), budget=budget, monotonic=monotonic)


def ticker(symbol: str, last_price: object = "1.50000000", **fields: object) -> dict[str, object]:
    """The documented ticker object (`binance_ticker_24hr.json`) for another symbol."""
    sample: dict[str, object] = fixture_json("binance_ticker_24hr.json")[0]
    return sample | {"symbol": symbol, "lastPrice": last_price} | fields


def pairs(symbols: str) -> list[str]:
    return [f"{symbol}USDT" for symbol in symbols]


def asked_symbols(request: httpx.Request) -> list[str]:
    symbols: list[str] = json.loads(request.url.params["symbols"])
    return symbols


class Upstream:
    """Answers like Binance: a batch holding an invalid symbol fails as a whole with -1121."""

    def __init__(self, invalid: Iterable[str] = ()) -> None:
        self.invalid = set(invalid)
        self.asked: list[list[str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        symbols = asked_symbols(request)
        self.asked.append(symbols)
        if self.invalid & set(symbols):
            return httpx.Response(400, content=fixture_bytes("binance_error_invalid_symbol.json"))
        return httpx.Response(200, json=[ticker(symbol) for symbol in symbols])


async def test_one_batch_parses_unrounded_usd_quotes(respx_mock, client):
    route = respx_mock.get(URL).respond(200, content=fixture_bytes("binance_ticker_24hr_symbols.constructed.json"))
    btc, eth = await provider(client).fetch(coins("BTC", "ETH"), ["usd"])
    assert route.call_count == 1
    assert (btc.symbol, btc.currency, btc.price, btc.change_24h_pct) == ("BTC", "usd", 90917.04, 1.64)
    assert btc.updated_at == datetime(2026, 11, 27, 18, 19, 31, 40000, tzinfo=UTC)
    assert btc.source == "binance" and btc.icon_url is None
    assert (eth.symbol, eth.price, eth.change_24h_pct) == ("ETH", 3021.55, 1.153)


def test_the_documented_sample_parses_exactly():
    [item] = fixture_json("binance_ticker_24hr.json")
    q = quote_from_ticker(coin("BNB", "BNBUSDT"), item)
    assert q is not None
    assert q.price == 4.000002 and q.change_24h_pct == -95.96
    assert q.updated_at == datetime(2017, 7, 12, 14, 31, 39, 40000, tzinfo=UTC)  # closeTime 1499869899040 ms


async def test_symbols_param_is_compact_json(respx_mock, client):
    route = respx_mock.get(URL).respond(200, json=[])
    await provider(client).fetch(coins("BTC", "ETH"), ["usd"])
    request = route.calls.last.request
    assert request.url.params["symbols"] == '["BTCUSDT","ETHUSDT"]'
    assert b"%20" not in request.url.raw_path and b"+" not in request.url.raw_path
    assert set(request.url.params) == {"symbols"}  # never `symbol` too (-1128)


async def test_entries_that_were_not_asked_for_are_ignored(respx_mock, client):
    respx_mock.get(URL).respond(200, content=fixture_bytes("binance_ticker_24hr.json"))  # BNBBTC only
    assert await provider(client).fetch(coins("BTC"), ["usd"]) == []


async def test_usdt_stands_in_for_usd_and_other_currencies_are_left_to_others(respx_mock, client):
    route = respx_mock.get(URL).mock(side_effect=Upstream())
    assert await provider(client).fetch(coins("BTC"), ["eur", "btc"]) == []
    assert not route.called  # nothing to ask for: no request spent
    quotes = await provider(client).fetch(coins("BTC"), ["eur", "usd"])
    assert [(q.symbol, q.currency) for q in quotes] == [("BTC", "usd")]


async def test_twenty_pairs_per_request_the_cheapest_weight(respx_mock, client):
    upstream = Upstream()
    respx_mock.get(URL).mock(side_effect=upstream)
    quotes = await provider(client).fetch([coin(f"C{i}") for i in range(45)], ["usd"])
    assert [len(batch) for batch in upstream.asked] == [20, 20, 5]
    assert len(quotes) == 45


def test_only_well_formed_usdt_pairs_are_supported(client, caplog):
    binance = provider(client)
    assert binance.supports(coin("BTC"))
    assert not binance.supports(Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}))
    with caplog.at_level(logging.WARNING):
        for pair in ("BNBBTC", "btcusdt", "BTC USDT", "USDT", "X" * 17 + "USDT"):
            assert not binance.supports(coin("X", pair)), pair
        assert not binance.supports(coin("X", "BNBBTC"))
    assert caplog.text.count("'BNBBTC' is not a USDT pair") == 1  # logged once, not every round


async def test_an_invalid_symbol_does_not_take_the_others_down(respx_mock, client, caplog):
    clock = Clock()
    upstream = Upstream(invalid={"XNOUSDT"})
    respx_mock.get(URL).mock(side_effect=upstream)
    binance = provider(client, monotonic=clock)
    with caplog.at_level(logging.WARNING):
        quotes = await binance.fetch(coins(*DEFAULT_PAIRS), ["usd"])
    assert [q.symbol for q in quotes] == [s for s in DEFAULT_PAIRS if s != "XNO"]
    assert len(upstream.asked) <= 1 + 2 * 3  # the batch, then bisection: about 2·log2(8) probes
    assert caplog.text.count("XNOUSDT is an invalid symbol") == 1

    upstream.asked.clear()
    clock.now += 600
    assert len(await binance.fetch(coins(*DEFAULT_PAIRS), ["usd"])) == 7
    assert len(upstream.asked) == 1 and "XNOUSDT" not in upstream.asked[0]  # skipped: one request

    upstream.asked.clear()
    caplog.clear()
    clock.now += DAY
    with caplog.at_level(logging.WARNING):
        assert len(await binance.fetch(coins(*DEFAULT_PAIRS), ["usd"])) == 7
    assert "XNOUSDT" in upstream.asked[0]  # asked again after a day (it may have been relisted)
    assert "invalid symbol" not in caplog.text  # still invalid: not logged a second time


@pytest.mark.parametrize("bad", [{3, 4, 17}, set(range(20))], ids=["three-of-20", "all-20"])
async def test_many_invalid_symbols_are_found_over_rounds_never_in_a_burst(respx_mock, client, bad):
    upstream = Upstream(invalid={f"C{i}USDT" for i in bad})
    respx_mock.get(URL).mock(side_effect=upstream)
    binance = provider(client, monotonic=Clock())
    batch = [coin(f"C{i}") for i in range(20)]
    good = {f"C{i}" for i in range(20)} - {f"C{i}" for i in bad}
    for _ in range(5):
        upstream.asked.clear()
        quotes = await binance.fetch(batch, ["usd"])
        assert {q.symbol for q in quotes} <= good
        assert len(upstream.asked) <= 1 + PROBES_PER_ROUND
    assert {q.symbol for q in quotes} == good
    assert len(upstream.asked) == (1 if good else 0)  # every invalid symbol is skipped now
    assert not upstream.invalid & {s for asked in upstream.asked for s in asked}


async def test_a_lone_invalid_symbol_costs_one_request(respx_mock, client):
    upstream = Upstream(invalid={"WAVESUSDT"})
    respx_mock.get(URL).mock(side_effect=upstream)
    binance = provider(client, monotonic=Clock())
    assert await binance.fetch(coins("WAVES"), ["usd"]) == []
    assert await binance.fetch(coins("WAVES"), ["usd"]) == []
    assert len(upstream.asked) == 1


async def test_budget_spent_while_isolating_keeps_the_prices_already_paid_for(respx_mock, client):
    upstream = Upstream(invalid={"HUSDT"})
    respx_mock.get(URL).mock(side_effect=upstream)
    binance = provider(client, budget=RequestBudget(3, None), monotonic=Clock())
    quotes = await binance.fetch(coins(*"ABCDEFGH"), ["usd"])
    assert upstream.asked == [pairs("ABCDEFGH"), pairs("ABCD"), pairs("EF")]  # the 4th probe, [G], was not sent
    assert [q.symbol for q in quotes] == list("ABCDEF")  # G and H fail over to the next provider this round


async def test_budget_spent_sends_nothing(respx_mock, client):
    route = respx_mock.get(URL).mock(side_effect=Upstream())
    binance = provider(client, budget=RequestBudget(1, None))
    assert len(await binance.fetch(coins("BTC"), ["usd"])) == 1
    with pytest.raises(ProviderError) as caught:
        await binance.fetch(coins("BTC"), ["usd"])
    assert caught.value.over_budget and caught.value.retry_after is not None
    assert route.call_count == 1


async def test_empty_list_means_no_quotes(respx_mock, client):
    respx_mock.get(URL).respond(200, json=[])
    assert await provider(client).fetch(coins("BTC", "ETH"), ["usd"]) == []


async def test_bad_values_are_dropped_for_that_coin_only_and_numbers_pass_through(respx_mock, client, caplog):
    body = [
        ticker("BTCUSDT", "NaN"),
        ticker("ETHUSDT", "-1.50000000"),
        ticker("NEOUSDT", None),
        ticker("XNOUSDT", "n/a"),
        {k: v for k, v in ticker("ARKUSDT").items() if k != "lastPrice"},
        ticker("DOGEUSDT", "0.15830000", priceChangePercent="bad", closeTime="soon"),
        ticker("LTCUSDT", 84.36, priceChangePercent=None),
        ["not", "an", "object"],
        {"symbol": ["ADAUSDT"]},
    ]
    respx_mock.get(URL).respond(200, json=body)
    with caplog.at_level(logging.WARNING):
        quotes = {q.symbol: q for q in await provider(client).fetch(coins(*DEFAULT_PAIRS), ["usd"])}
    assert sorted(quotes) == ["BTC", "DOGE", "ETH", "LTC"]
    assert math.isnan(quotes["BTC"].price)  # passed on: the poller rejects non-finite prices centrally
    assert quotes["ETH"].price == -1.5  # likewise non-positive ones
    assert quotes["DOGE"].price == 0.1583 and quotes["DOGE"].change_24h_pct is None
    assert quotes["DOGE"].updated_at is None  # left to the poller (fetch time)
    assert quotes["LTC"].price == 84.36 and quotes["LTC"].change_24h_pct is None
    for symbol in ("NEO", "XNO", "ARK"):
        assert f"{symbol}: ignoring non-numeric price" in caplog.text


PROVIDER_FAILURES = [
    pytest.param(
        httpx.Response(429, headers={"Retry-After": "37"}, content=fixture_bytes("binance_error_429.constructed.json")),
        "HTTP 429: Too much request weight used",
        429,
        37.0,
        id="429-retry-after",
    ),
    pytest.param(
        httpx.Response(
            418, headers={"Retry-After": "7200"}, json={"code": -1003, "msg": "Way too much request weight"}
        ),
        "HTTP 418: this IP is banned by Binance after requests went on despite 429 (rate limit); retry after 7200 s",
        418,
        7200.0,
        id="418-ip-ban",
    ),
    pytest.param(
        httpx.Response(451, content=fixture_bytes("binance_error_451.json")),
        "HTTP 451: geo-blocked: Binance serves no API requests from this server's location",
        451,
        None,
        id="451-restricted-location",
    ),
    pytest.param(
        httpx.Response(403, headers={"content-type": "text/html"}, text="<html><h1>403 Forbidden</h1></html>"),
        "HTTP 403: refused by Binance's web application firewall (WAF)",
        403,
        None,
        id="403-waf",
    ),
    pytest.param(
        httpx.Response(200, content=fixture_bytes("binance_ticker_24hr.json").strip()[1:-1]),
        "unexpected /api/v3/ticker/24hr response (dict)",
        None,
        None,
        id="object-not-array",
    ),
    pytest.param(
        httpx.Response(400, content=fixture_bytes("binance_error_1100_symbols.constructed.json")),
        "HTTP 400: Illegal characters found in parameter 'symbols'",
        400,
        None,
        id="1100-bad-symbols-format",
    ),
    pytest.param(
        httpx.Response(400, content=fixture_bytes("binance_error_1128.constructed.json")),
        "HTTP 400: Combination of optional parameters invalid",
        400,
        None,
        id="1128-symbol-and-symbols",
    ),
    *transport_failures(fixture_bytes("binance_ticker_24hr_symbols.constructed.json")[:300]),
]


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), PROVIDER_FAILURES)
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    route = respx_mock.get(URL)
    if isinstance(outcome, Exception):
        route.mock(side_effect=outcome)
    else:
        route.mock(return_value=outcome)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch(coins("BTC", "ETH"), ["usd"])
    err = caught.value
    assert err.provider == "binance" and message in err.message
    assert err.status == status and not err.over_budget
    assert err.retry_after == retry_after if retry_after is None else math.isclose(err.retry_after or 0, retry_after)
    assert route.call_count == 1  # only -1121 starts a search; every other failure ends the fetch


async def test_base_url_override_for_the_market_data_host(respx_mock, client):
    route = respx_mock.get("https://data-api.binance.vision/api/v3/ticker/24hr").respond(200, json=[])
    await provider(client, base_url="https://data-api.binance.vision/").fetch(coins("BTC"), ["usd"])
    assert route.called


def test_keyless_public_limits():
    assert Binance.KEYLESS and Binance.PLANS == ("public",) and Binance.name == "binance"
    assert Binance.batch_size == 20  # weight 2 up to 20 symbols, 40 from 21
    assert Binance.default_limits(ProviderSettings()) == (60.0, None)
