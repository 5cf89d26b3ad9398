from __future__ import annotations

import logging
import math
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
from ticker.providers.budget import RequestBudget
from ticker.providers.coinpaprika import CoinPaprika

BASE = "https://api.coinpaprika.com/v1"
TICKERS_URL = f"{BASE}/tickers"
CAPTURED_AT = datetime(2021, 10, 22, 18, 11, 5, tzinfo=UTC)


def coin(symbol: str, cp_id: str) -> Coin:
    return Coin(symbol, symbol.title(), {"coinpaprika": cp_id})


BTC = coin("BTC", "btc-bitcoin")
ETH = coin("ETH", "eth-ethereum")
ADA = coin("ADA", "ada-cardano")
DOGE = coin("DOGE", "doge-dogecoin")


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client: httpx.AsyncClient, **settings: Any) -> CoinPaprika:
    return make_provider(CoinPaprika, client, ProviderSettings(**settings))


def tick(coin_id: str, **quotes: Any) -> dict[str, Any]:
    return {"id": coin_id, "name": "x", "symbol": "X", "last_updated": "2021-10-22T18:11:05Z", "quotes": quotes}


async def test_one_call_for_every_coin_replays_the_real_capture_unrounded(respx_mock, client):
    route = respx_mock.get(TICKERS_URL).respond(200, content=fixture_bytes("coinpaprika_tickers.json"))
    quotes = await provider(client).fetch([BTC, ETH, ADA, DOGE], ["usd"])
    assert route.call_count == 1
    assert dict(route.calls.last.request.url.params) == {"quotes": "USD"}
    assert [(q.symbol, q.price, q.change_24h_pct) for q in quotes] == [
        ("BTC", 60697.885839641, -3.78),
        ("ETH", 3949.2425813062, -3.45),
        ("ADA", 2.1477434703293, -0.66),
        ("DOGE", 0.23862371252039, -2.85),
    ]
    assert all(q.updated_at == CAPTURED_AT and q.source == "coinpaprika" and q.icon_url is None for q in quotes)
    # The tick's market fields, from the same call: rank, market cap, volume and CoinPaprika's own changes.
    assert [(q.rank, q.market_cap, q.volume_24h) for q in quotes] == [
        (1, 1144226103905, 49092990352.954),
        (2, 466143026900, 24136641726.138),
        (6, 68612517940, 2431508237.5173),
        (10, 31450760248, 1167679890.9021),
    ]
    assert [(q.change_1h_pct, q.change_7d_pct, q.change_30d_pct) for q in quotes] == [
        (-0.73, -1.51, 38.36),
        (-0.64, 2.23, 28.11),
        (-0.35, -3.54, -3.98),
        (-0.36, 2, 5.92),
    ]


async def test_a_single_coin_is_asked_for_by_id(respx_mock, client):
    route = respx_mock.get(f"{TICKERS_URL}/eth-ethereum").respond(
        200, content=fixture_bytes("coinpaprika_ticker_by_id.json")
    )
    [eth] = await provider(client).fetch([ETH], ["usd"])
    assert route.call_count == 1 and route.calls.last.request.url.params["quotes"] == "USD"
    assert eth.price == 3949.2425813062 and eth.change_24h_pct == -3.45 and eth.updated_at == CAPTURED_AT


async def test_currencies_go_three_to_a_call_and_sats_come_from_btc(respx_mock, client):
    body = fixture_json("coinpaprika_tickers_usd_eur_btc.constructed.json")
    route = respx_mock.get(TICKERS_URL).respond(200, json=body)
    # ron: a real ISO currency CoinPaprika does not quote; sats shares the BTC quote with btc.
    quotes = await provider(client).fetch([BTC, ETH], ["usd", "eur", "ron", "sats", "btc", "jpy", "chf"])
    assert [call.request.url.params["quotes"] for call in route.calls] == ["USD,EUR,BTC", "JPY,CHF"]
    got = {(q.symbol, q.currency): q for q in quotes}
    assert sorted(got) == [(s, c) for s in ("BTC", "ETH") for c in ("btc", "eur", "sats", "usd")]
    assert got["ETH", "eur"].price == 3392.399377342
    assert got["ETH", "eur"].change_24h_pct is None  # "" in the body: unknown, never 0
    assert got["ETH", "btc"].price == 0.0650639232 and got["ETH", "btc"].change_24h_pct == 0.34
    assert got["ETH", "sats"].price == 6506392.32 and got["ETH", "sats"].change_24h_pct == 0.34
    assert got["BTC", "sats"].price == 100_000_000
    # Market figures in the quote's currency: sats from the BTC quote, exactly; the rank is the coin's.
    assert got["ETH", "btc"].market_cap == 7679724 and got["ETH", "sats"].market_cap == 767972400000000
    assert got["ETH", "eur"].market_cap == 400416860107 and got["ETH", "eur"].volume_24h == 20733375242.75254
    assert {q.rank for (symbol, _), q in got.items() if symbol == "ETH"} == {2}
    assert got["BTC", "btc"].change_7d_pct == 0  # BTC in BTC: a real 0, not unknown


async def test_no_request_without_a_supported_currency_or_a_coin_id(client):
    # respx_mock is not active here: any request would go out and fail the test offline
    cp = provider(client, base_url="http://127.0.0.1:9")
    assert await cp.fetch([BTC], ["ron", "xof"]) == []
    assert await cp.fetch([Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"})], ["usd"]) == []


async def test_a_coin_missing_from_the_list_is_left_out_not_zero(respx_mock, client):
    respx_mock.get(TICKERS_URL).respond(200, content=fixture_bytes("coinpaprika_tickers.json"))
    quotes = await provider(client).fetch([BTC, coin("ARRR", "arrr-pirate")], ["usd"])
    assert [q.symbol for q in quotes] == ["BTC"]


async def test_an_unknown_single_id_is_a_missing_coin_warned_about_once(respx_mock, client, caplog):
    route = respx_mock.get(f"{TICKERS_URL}/xyz-nothing").respond(
        404, content=fixture_bytes("coinpaprika_error_404.json")
    )
    cp = provider(client)
    with caplog.at_level(logging.WARNING):
        assert await cp.fetch([coin("XYZ", "xyz-nothing")], ["usd"]) == []
        assert await cp.fetch([coin("XYZ", "xyz-nothing")], ["usd"]) == []
    assert route.call_count == 2
    assert caplog.text.count("unknown id 'xyz-nothing' (HTTP 404)") == 1


async def test_an_id_is_escaped_into_one_path_segment(respx_mock, client):
    route = respx_mock.get(f"{TICKERS_URL}/..%2Fglobal%3Fx").respond(200, json=tick("../global?x"))
    await provider(client).fetch([coin("BAD", "../global?x")], ["usd"])
    assert route.called


async def test_empty_strings_are_unknown_never_zero(respx_mock, client, caplog):
    body = [
        tick("btc-bitcoin", USD={"price": 60697.885839641, "percent_change_24h": ""}) | {"last_updated": ""},
        tick("eth-ethereum", USD={"price": "", "percent_change_24h": 1.0}),
    ]
    respx_mock.get(TICKERS_URL).respond(200, json=body)
    with caplog.at_level(logging.WARNING):
        quotes = await provider(client).fetch([BTC, ETH], ["usd"])
    assert [(q.symbol, q.price, q.change_24h_pct, q.updated_at) for q in quotes] == [
        ("BTC", 60697.885839641, None, None)
    ]
    assert "ETH/usd: ignoring non-numeric price ''" in caplog.text


async def test_wrong_types_are_dropped_for_that_coin_only(respx_mock, client, caplog):
    body = [
        "not a tick",
        {"id": 42, "quotes": {}},
        tick("btc-bitcoin", USD={"price": "60697.88", "percent_change_24h": 1.0}),
        tick("eth-ethereum", USD={"price": 3000.5, "percent_change_24h": "bad"}) | {"last_updated": 1634926265},
        {"id": "xmr-monero", "quotes": ["not", "an", "object"]},
        tick("ltc-litecoin", USD={"price": None}),
        tick("doge-dogecoin", USD={"price": True}),
        tick("ada-cardano", USD=["nope"]),
        tick("neo-neo", USD={"price": 4, "percent_change_24h": -1}) | {"last_updated": "yesterday"},
        tick("neo-neo", USD={"price": 5}),  # a duplicate row: the first one wins
    ]
    respx_mock.get(TICKERS_URL).respond(200, json=body)
    coins = [
        BTC,
        ETH,
        coin("XMR", "xmr-monero"),
        coin("LTC", "ltc-litecoin"),
        DOGE,
        ADA,
        coin("NEO", "neo-neo"),
    ]
    with caplog.at_level(logging.WARNING):
        quotes = await provider(client).fetch(coins, ["usd"])
    assert [(q.symbol, q.price, q.change_24h_pct, q.updated_at) for q in quotes] == [
        ("ETH", 3000.5, None, None),
        ("NEO", 4.0, -1.0, None),
    ]
    assert all(isinstance(q.price, float) for q in quotes)
    assert "BTC/usd: ignoring non-numeric price '60697.88'" in caplog.text
    assert "XMR: ignoring malformed quotes (list)" in caplog.text
    assert "LTC/usd: ignoring non-numeric price None" in caplog.text
    assert "DOGE/usd: ignoring non-numeric price True" in caplog.text
    assert "ADA/usd: ignoring malformed quote (list)" in caplog.text


@pytest.mark.parametrize(
    ("last_updated", "expected"),
    [
        ("2021-10-22T18:11:05Z", CAPTURED_AT),
        ("2021-10-22T20:11:05+02:00", CAPTURED_AT),
        ("2021-10-22T18:11:05", CAPTURED_AT),  # no offset: CoinPaprika times are UTC
        ("2021-13-45T99:00:00Z", None),
        ("", None),
        (None, None),
        ("9" * 10_000, None),
    ],
)
async def test_last_updated_becomes_an_aware_utc_time_or_none(respx_mock, client, last_updated, expected):
    body = tick("btc-bitcoin", USD={"price": 1.5}) | {"last_updated": last_updated}
    respx_mock.get(f"{TICKERS_URL}/btc-bitcoin").respond(200, json=body)
    [q] = await provider(client).fetch([BTC], ["usd"])
    assert q.updated_at == expected


async def test_odd_numbers_pass_through_for_the_poller_to_judge(respx_mock, client):
    """NaN, negative, infinite and huge prices are numbers: the poller rejects them centrally."""
    raw = (
        b'[{"id":"btc-bitcoin","quotes":{"USD":{"price":NaN,"percent_change_24h":Infinity}}},'
        b'{"id":"eth-ethereum","quotes":{"USD":{"price":-1.5}}},'
        b'{"id":"ada-cardano","quotes":{"USD":{"price":1e400}}},'
        b'{"id":"doge-dogecoin","quotes":{"USD":{"price":1.7976931348623157e308}}},'
        b'{"id":"ltc-litecoin","quotes":{"USD":{"price":1' + b"0" * 400 + b"}}}]"
    )
    respx_mock.get(TICKERS_URL).respond(200, content=raw)
    quotes = await provider(client).fetch([BTC, ETH, ADA, DOGE, coin("LTC", "ltc-litecoin")], ["usd"])
    prices = {q.symbol: q.price for q in quotes}
    assert math.isnan(prices.pop("BTC")) and quotes[0].change_24h_pct == math.inf
    assert prices == {"ETH": -1.5, "ADA": math.inf, "DOGE": 1.7976931348623157e308}  # LTC: too big for a float


async def test_hostile_names_are_never_used(respx_mock, client):
    body = [tick("btc-bitcoin", USD={"price": 1.5}) | {"name": "<script>alert(1)</script>", "symbol": "<b>"}]
    respx_mock.get(TICKERS_URL).respond(200, json=body)
    quotes = await provider(client).fetch([BTC, ETH], ["usd"])
    assert [(q.symbol, q.price) for q in quotes] == [("BTC", 1.5)]


async def test_an_empty_list_means_no_quotes(respx_mock, client):
    respx_mock.get(TICKERS_URL).respond(200, json=[])
    assert await provider(client).fetch([BTC, ETH], ["usd"]) == []


PROVIDER_FAILURES = [
    pytest.param(
        httpx.Response(429, content=fixture_bytes("coinpaprika_error_429.json")),
        "HTTP 429: you have reached maximum request limit",
        429,
        None,
        id="429-documented",
    ),
    pytest.param(
        httpx.Response(429, headers={"retry-after": "30"}, content=fixture_bytes("coinpaprika_error_429.json")),
        "HTTP 429: you have reached maximum request limit",
        429,
        30.0,
        id="429-retry-after",
    ),
    pytest.param(
        httpx.Response(
            429, headers={"content-type": "text/html"}, content=fixture_bytes("cloudflare_error_page.constructed.html")
        ),
        "HTTP 429 (HTML page)",
        429,
        None,
        id="429-html",
    ),
    pytest.param(httpx.Response(402, json={"error": "upgrade your plan"}), "HTTP 402: upgrade your plan", 402, None),
    pytest.param(httpx.Response(403, json={"error": "invalid api key"}), "HTTP 403: invalid api key", 403, None),
    pytest.param(
        httpx.Response(404, content=fixture_bytes("coinpaprika_error_404.json")),
        "HTTP 404: id not found",
        404,
        None,
        id="404-on-the-list",
    ),
    pytest.param(
        httpx.Response(200, content=fixture_bytes("coinpaprika_ticker_by_id.json")),
        "unexpected /tickers response (dict)",
        None,
        None,
        id="wrong-shape",
    ),
    pytest.param(
        httpx.Response(200, content=fixture_bytes("coinpaprika_error_429.json")),
        "unexpected /tickers response (dict)",
        None,
        None,
        id="error-body-with-200",
    ),
    pytest.param(httpx.ReadTimeout("timed out"), "timed out (ReadTimeout)", None, None, id="read-timeout"),
    *transport_failures(fixture_bytes("coinpaprika_tickers.json")[:300]),
]


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), PROVIDER_FAILURES)
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    route = respx_mock.get(TICKERS_URL)
    if isinstance(outcome, Exception):
        route.mock(side_effect=outcome)
    else:
        route.mock(return_value=outcome)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch([BTC, ETH], ["usd"])
    err = caught.value
    assert err.provider == "coinpaprika" and message in err.message
    assert err.status == status and not err.over_budget
    if retry_after is None:
        assert err.retry_after is None
    else:
        assert err.retry_after is not None and math.isclose(err.retry_after, retry_after)


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (httpx.Response(200, json=[tick("btc-bitcoin")]), "unexpected /tickers/{id} response (list)"),
        (httpx.Response(404, text="<html>Not Found</html>"), "HTTP 404 (HTML page)"),  # a wrong base_url
        (httpx.Response(429, content=fixture_bytes("coinpaprika_error_429.json")), "HTTP 429: you have reached"),
    ],
)
async def test_single_coin_failures_are_provider_errors_too(respx_mock, client, outcome, message):
    respx_mock.get(f"{TICKERS_URL}/btc-bitcoin").mock(return_value=outcome)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch([BTC], ["usd"])
    assert message in caught.value.message


async def test_a_failed_second_call_fails_the_whole_fetch(respx_mock, client):
    route = respx_mock.get(TICKERS_URL).mock(
        side_effect=[
            httpx.Response(200, content=fixture_bytes("coinpaprika_tickers.json")),
            httpx.Response(429, content=fixture_bytes("coinpaprika_error_429.json")),
        ]
    )
    with pytest.raises(ProviderError, match="HTTP 429"):
        await provider(client).fetch([BTC, ETH], ["usd", "eur", "gbp", "jpy"])
    assert route.call_count == 2


async def test_a_spent_budget_sends_no_request(respx_mock, client):
    route = respx_mock.get(TICKERS_URL).respond(200, content=fixture_bytes("coinpaprika_tickers.json"))
    budget = RequestBudget(1, None)
    cp = make_provider(CoinPaprika, client, ProviderSettings(), budget=budget)
    assert len(await cp.fetch([BTC, ETH], ["usd"])) == 2
    with pytest.raises(ProviderError) as caught:
        await cp.fetch([BTC, ETH], ["usd"])
    assert caught.value.over_budget and caught.value.status is None
    assert "request budget spent" in caught.value.message
    assert route.call_count == 1 and budget.spent == 1


async def test_errors_are_charged_to_the_budget(respx_mock, client):
    respx_mock.get(TICKERS_URL).respond(500)
    budget = RequestBudget(10, None)
    with pytest.raises(ProviderError):
        await make_provider(CoinPaprika, client, ProviderSettings(), budget=budget).fetch([BTC, ETH], ["usd"])
    assert budget.spent == 1


async def test_free_plan_sends_no_key(respx_mock, client):
    route = respx_mock.get(TICKERS_URL).respond(200, json=[])
    await provider(client).fetch([BTC, ETH], ["usd"])
    assert "authorization" not in route.calls.last.request.headers


async def test_pro_plan_uses_the_pro_host_and_the_key_as_a_header_never_the_url(respx_mock, client, monkeypatch):
    monkeypatch.setenv("CP_KEY", "cp-secret")
    route = respx_mock.get("https://api-pro.coinpaprika.com/v1/tickers").respond(200, json=[])
    await provider(client, plan="pro", api_key_env="CP_KEY").fetch([BTC, ETH], ["usd"])
    request = route.calls.last.request
    assert request.headers["authorization"] == "cp-secret"
    assert "cp-secret" not in str(request.url)


async def test_the_key_is_not_in_error_messages(respx_mock, client, monkeypatch):
    monkeypatch.setenv("CP_KEY", "cp-secret")
    respx_mock.get("https://api-pro.coinpaprika.com/v1/tickers").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderError) as caught:
        await provider(client, plan="pro", api_key_env="CP_KEY").fetch([BTC, ETH], ["usd"])
    assert "cp-secret" not in str(caught.value)


async def test_base_url_override_for_mirrors_and_tests(respx_mock, client):
    route = respx_mock.get("http://127.0.0.1:9/cp/tickers/btc-bitcoin").respond(
        200, json=tick("btc-bitcoin", USD={"price": 1.5})
    )
    [q] = await provider(client, base_url="http://127.0.0.1:9/cp/").fetch([BTC], ["usd"])
    assert route.called and q.price == 1.5


def test_published_limits():
    assert CoinPaprika.default_limits(ProviderSettings()) == (10.0, 20_000.0)
    assert CoinPaprika.default_limits(ProviderSettings(plan="free")) == (10.0, 20_000.0)
    assert CoinPaprika.default_limits(ProviderSettings(plan="pro")) == (600.0, None)
    assert CoinPaprika.KEYLESS and CoinPaprika.PLANS == ("free", "pro")


async def test_supports_only_coins_with_a_coinpaprika_id(client):
    cp = provider(client)
    assert cp.supports(BTC)
    assert not cp.supports(Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}))


TICK_FIELDS = [  # one field of a tick (row level for `rank`, else in the USD quote), and what the quote holds
    pytest.param("market_cap", 1144226103905, "market_cap", 1144226103905, id="market-cap"),
    pytest.param("market_cap", 0, "market_cap", None, id="market-cap-zero-is-unknown"),
    pytest.param("market_cap", "", "market_cap", None, id="market-cap-empty-string"),
    pytest.param("market_cap", "1144226103905", "market_cap", None, id="market-cap-numeric-string"),
    pytest.param("market_cap", -1, "market_cap", None, id="market-cap-negative"),
    pytest.param("market_cap", None, "market_cap", None, id="market-cap-null"),
    pytest.param("volume_24h", 49092990352.954, "volume_24h", 49092990352.954, id="volume"),
    pytest.param("volume_24h", 0, "volume_24h", None, id="volume-zero-is-unknown"),
    pytest.param("volume_24h", True, "volume_24h", None, id="volume-bool"),
    pytest.param("percent_change_7d", -1.51, "change_7d_pct", -1.51, id="7d"),
    pytest.param("percent_change_7d", "", "change_7d_pct", None, id="7d-empty-string"),
    pytest.param("percent_change_30d", "38.36", "change_30d_pct", None, id="30d-string"),
    pytest.param("percent_change_1h", [], "change_1h_pct", None, id="1h-list"),
    pytest.param("rank", 1, "rank", 1, id="rank"),
    pytest.param("rank", 0, "rank", None, id="rank-zero-is-unranked"),
    pytest.param("rank", "1", "rank", None, id="rank-string"),
    pytest.param("rank", 2.5, "rank", None, id="rank-fraction"),
    pytest.param("rank", None, "rank", None, id="rank-null"),
]


@pytest.mark.parametrize(("field", "value", "attribute", "expected"), TICK_FIELDS)
async def test_each_market_field_is_read_or_unknown(respx_mock, client, field, value, attribute, expected):
    row = tick("btc-bitcoin", USD={"price": 60697.885839641, "percent_change_24h": -3.78})
    if field == "rank":
        row["rank"] = value
    else:
        row["quotes"]["USD"][field] = value
    respx_mock.get(f"{TICKERS_URL}/btc-bitcoin").respond(200, json=row)
    [btc] = await provider(client).fetch([BTC], ["usd"])
    assert btc.price == 60697.885839641 and btc.change_24h_pct == -3.78  # a bad figure never costs the price
    assert getattr(btc, attribute) == expected


async def test_missing_market_fields_are_unknown(respx_mock, client):
    respx_mock.get(f"{TICKERS_URL}/btc-bitcoin").respond(200, json=tick("btc-bitcoin", USD={"price": 60697.8}))
    [btc] = await provider(client).fetch([BTC], ["usd"])
    assert (btc.rank, btc.market_cap, btc.volume_24h) == (None, None, None)
    assert (btc.change_1h_pct, btc.change_7d_pct, btc.change_30d_pct) == (None, None, None)
