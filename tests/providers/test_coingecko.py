from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings, default_settings
from ticker.exceptions import ProviderError
from ticker.models import Coin, MarketData
from ticker.providers.budget import RequestBudget
from ticker.providers.coingecko import CoinGecko

BASE = "https://api.coingecko.com/api/v3"
PRICE_URL = f"{BASE}/simple/price"
MARKETS_URL = f"{BASE}/coins/markets"
COINS = default_settings().market.coins


def coin(symbol: str, cg_id: str) -> Coin:
    return Coin(symbol, symbol.title(), {"coingecko": cg_id})


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client: httpx.AsyncClient, **settings) -> CoinGecko:
    return make_provider(CoinGecko, client, ProviderSettings(**({"plan": "demo"} | settings)))


def mock_markets(respx_mock, body=None):
    return respx_mock.get(MARKETS_URL).respond(200, json=body if body is not None else [])


async def test_one_batched_request_for_every_coin_and_currency(respx_mock, client):
    markets = mock_markets(respx_mock, fixture_json("coingecko_coins_markets_fixture.json"))
    route = respx_mock.get(PRICE_URL).respond(
        200, json=fixture_json("coingecko_simple_price_default_coins.constructed.json")
    )
    cg = provider(client)
    await cg.refresh_metadata(COINS, "usd")  # side work, off the price path: icons and sparkline seeds
    quotes = await cg.fetch(COINS, ["usd", "eur"])
    assert route.call_count == 1 and markets.call_count == 1
    params = route.calls.last.request.url.params
    assert params["ids"] == "bitcoin,ethereum,neo,waves,monero,nano,ark,pirate-chain,dogecoin,litecoin,cardano"
    assert params["vs_currencies"] == "usd,eur"
    assert params["include_24hr_change"] == "true" and params["include_last_updated_at"] == "true"
    assert params["include_market_cap"] == "true" and params["include_24hr_vol"] == "true"  # in the same call
    assert params["precision"] == "full"
    assert len(quotes) == 22
    btc = next(q for q in quotes if q.symbol == "BTC" and q.currency == "usd")
    assert btc.price == 90917.04 and btc.change_24h_pct == 1.64 and btc.source == "coingecko"
    assert btc.market_cap == 1815092365248.12 and btc.volume_24h == 31260929299.52
    assert btc.updated_at == datetime(2026, 11, 27, 18, 19, 31, tzinfo=UTC)
    assert btc.icon_url == "https://assets.coingecko.com/coins/images/1/large/bitcoin.png?1547033579"
    arrr = next(q for q in quotes if q.symbol == "ARRR" and q.currency == "eur")
    assert arrr.price == 0.13068 and arrr.icon_url is None
    assert arrr.market_cap is None and arrr.volume_24h == 196476.93  # CoinGecko's 0: unknown, never 0


async def test_official_doc_example_parses_unrounded(respx_mock, client):
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    [btc] = await provider(client).fetch([coin("BTC", "bitcoin")], ["usd"])
    assert btc.price == 67187.3358936566
    assert btc.change_24h_pct == 3.63727894677354
    assert btc.updated_at == datetime.fromtimestamp(1711356300, UTC)
    assert btc.market_cap == 1317802988326.25 and btc.volume_24h == 31260929299.5248


async def test_sub_cent_price_keeps_its_digits_and_missing_time_is_left_to_the_poller(respx_mock, client):
    respx_mock.get(PRICE_URL).respond(200, content=fixture_bytes("coingecko_simple_price_24h_change.json"))
    [q] = await provider(client).fetch([coin("UNQ", "unique-network")], ["usd"])
    assert q.price == 0.00480102 and q.change_24h_pct == 1.9281110755066968
    assert q.updated_at is None


async def test_captured_multi_coin_response_without_change(respx_mock, client):
    respx_mock.get(PRICE_URL).respond(200, content=fixture_bytes("coingecko_simple_price_multi.json"))
    coins = [coin("BTC", "bitcoin"), coin("XMR", "monero"), coin("PEG", "pegnet")]
    quotes = {q.symbol: q for q in await provider(client).fetch(coins, ["usd"])}
    assert quotes["PEG"].price == 0.0016529 and quotes["XMR"].price == 57.61
    assert quotes["BTC"].change_24h_pct is None  # not requested in that capture: unknown, never 0
    assert quotes["BTC"].market_cap is None and quotes["BTC"].volume_24h is None


async def test_a_missing_coin_is_left_out_not_zero(respx_mock, client):
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    quotes = await provider(client).fetch([coin("BTC", "bitcoin"), coin("XYZ", "no-such-coin")], ["usd"])
    assert [q.symbol for q in quotes] == ["BTC"]


async def test_empty_object_means_no_quotes(respx_mock, client):
    respx_mock.get(PRICE_URL).respond(200, json={})
    assert await provider(client).fetch([coin("XYZ", "no-such-coin")], ["usd"]) == []


async def test_wrong_types_are_dropped_for_that_coin_only(respx_mock, client, caplog):
    body = {
        "bitcoin": {"usd": "90917.04", "usd_24h_change": 1.0},
        "ethereum": {"usd": 3000.5, "usd_24h_change": "bad"},
        "monero": ["not", "an", "object"],
        "litecoin": {"usd": None},
    }
    respx_mock.get(PRICE_URL).respond(200, json=body)
    coins = [coin("BTC", "bitcoin"), coin("ETH", "ethereum"), coin("XMR", "monero"), coin("LTC", "litecoin")]
    with caplog.at_level(logging.WARNING):
        quotes = await provider(client).fetch(coins, ["usd"])
    assert [(q.symbol, q.price, q.change_24h_pct) for q in quotes] == [("ETH", 3000.5, None)]
    assert "BTC/usd: ignoring non-numeric price" in caplog.text
    assert "XMR: ignoring malformed entry" in caplog.text


PROVIDER_FAILURES = [
    pytest.param(
        httpx.Response(
            429,
            headers={"retry-after": "119", "server": "cloudflare"},
            content=fixture_bytes("coingecko_error_429.json"),
        ),
        "HTTP 429: You've exceeded the Rate Limit",
        429,
        119.0,
        id="429-retry-after",
    ),
    pytest.param(
        httpx.Response(
            429, headers={"content-type": "text/html"}, content=fixture_bytes("cloudflare_error_page.constructed.html")
        ),
        "HTTP 429 (HTML page)",
        429,
        None,
        id="429-cloudflare-html",
    ),
    pytest.param(
        httpx.Response(200, json=[1, 2]), "unexpected /simple/price response (list)", None, None, id="wrong-shape"
    ),
    *transport_failures(fixture_bytes("coingecko_simple_price.json")[:60]),
]


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), PROVIDER_FAILURES)
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    route = respx_mock.get(PRICE_URL)
    if isinstance(outcome, Exception):
        route.mock(side_effect=outcome)
    else:
        route.mock(return_value=outcome)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch([coin("BTC", "bitcoin")], ["usd"])
    err = caught.value
    assert err.provider == "coingecko" and message in err.message
    assert err.status == status
    assert err.retry_after == retry_after if retry_after is None else math.isclose(err.retry_after, retry_after)


async def test_api_key_goes_in_the_plan_header_never_the_url(respx_mock, client, monkeypatch):
    monkeypatch.setenv("CG_KEY", "cg-secret")
    route = respx_mock.get(PRICE_URL).respond(200, json={})
    await provider(client, api_key_env="CG_KEY").fetch([coin("BTC", "bitcoin")], ["usd"])
    request = route.calls.last.request
    assert request.headers["x-cg-demo-api-key"] == "cg-secret"
    assert "cg-secret" not in str(request.url)


async def test_pro_plan_uses_the_pro_host_and_header(respx_mock, client, monkeypatch):
    monkeypatch.setenv("CG_KEY", "pro-secret")
    route = respx_mock.get("https://pro-api.coingecko.com/api/v3/simple/price").respond(200, json={})
    await provider(client, plan="pro", api_key_env="CG_KEY").fetch([coin("BTC", "bitcoin")], ["usd"])
    assert route.calls.last.request.headers["x-cg-pro-api-key"] == "pro-secret"


async def test_base_url_override_for_mirrors_and_tests(respx_mock, client):
    route = respx_mock.get("http://127.0.0.1:9/cg/simple/price").respond(200, json={})
    await provider(client, base_url="http://127.0.0.1:9/cg/").fetch([coin("BTC", "bitcoin")], ["usd"])
    assert route.called


async def test_a_429_on_the_metadata_endpoint_holds_the_price_endpoint_too(respx_mock, client):
    """Issue 10, item 1: Retry-After on /coins/markets binds /simple/price, in the same round and after."""
    now = [1000.0]
    respx_mock.get(MARKETS_URL).respond(
        429, headers={"retry-after": "20"}, json=fixture_json("coingecko_error_429.json")
    )
    prices = respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    cg = make_provider(CoinGecko, client, ProviderSettings(plan="demo"), monotonic=lambda: now[0])
    with pytest.raises(ProviderError) as side:
        await cg.refresh_metadata([coin("BTC", "bitcoin")], "usd")
    assert side.value.status == 429 and side.value.retry_after == 20
    for elapsed in (0, 10, 19.9):
        now[0] = 1000.0 + elapsed
        with pytest.raises(ProviderError) as held:
            await cg.fetch([coin("BTC", "bitcoin")], ["usd"])
        assert held.value.held and held.value.retry_after == pytest.approx(20 - elapsed)
    assert prices.call_count == 0  # nothing sent inside the hold
    now[0] = 1020.0
    [btc] = await cg.fetch([coin("BTC", "bitcoin")], ["usd"])
    assert btc.price == 67187.3358936566 and prices.call_count == 1


async def test_metadata_requests_leave_the_price_rounds_their_budget(respx_mock, client):
    markets = respx_mock.get(MARKETS_URL).respond(200, json=[])
    prices = respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    budget = RequestBudget(5, None)  # keyless CoinGecko: 5 a minute
    cg = make_provider(CoinGecko, client, ProviderSettings(plan="demo"), budget=budget)
    cg.session.reserve = budget.reserve_for(per_round=1, interval=15)  # 4 rounds a minute need 4 requests
    await cg.refresh_metadata([coin("BTC", "bitcoin")], "usd")  # the fifth: allowed
    with pytest.raises(ProviderError) as refused:
        await cg.refresh_metadata([coin("BTC", "bitcoin")], "usd")
    assert refused.value.over_budget and markets.call_count == 1
    for _ in range(4):  # every price round of the minute still goes out
        await cg.fetch([coin("BTC", "bitcoin")], ["usd"])
    assert prices.call_count == 4


async def test_more_ids_than_one_request_takes_are_split_into_batches(respx_mock, client):
    route = respx_mock.get(PRICE_URL).respond(200, json={})
    coins = [coin(f"C{i}", f"coin-{i}") for i in range(1001)]
    await provider(client).fetch(coins, ["usd"])
    assert route.call_count == 3  # ceil(1001 / 500)


async def test_candidates_for_resolve(respx_mock, client):
    route = respx_mock.get(MARKETS_URL).respond(200, json=fixture_json("coingecko_coins_markets_fixture.json")[:2])
    found = await provider(client).candidates("ETH")
    assert route.calls.last.request.url.params["symbols"] == "eth"
    assert route.calls.last.request.url.params["include_tokens"] == "all"
    assert [c.id for c in found] == ["bitcoin", "ethereum"]
    assert found[0].market_cap == 569778313238 and found[0].rank == 1


async def test_hostile_icon_urls_are_not_used(respx_mock, client):
    rows = [{"id": "bitcoin", "image": "javascript:alert(1)"}]
    respx_mock.get(MARKETS_URL).respond(200, json=rows)
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    cg = provider(client)
    await cg.refresh_metadata([coin("BTC", "bitcoin")], "usd")
    [q] = await cg.fetch([coin("BTC", "bitcoin")], ["usd"])
    assert q.icon_url is None


async def test_sparklines_come_with_the_daily_markets_call_once(respx_mock, client):
    markets = respx_mock.get(MARKETS_URL).respond(200, json=fixture_json("coingecko_coins_markets_sparkline.json"))
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price_default_coins.constructed.json"))
    cg = provider(client)
    await cg.refresh_metadata(COINS[:2], "usd")
    first = {(q.symbol, q.currency): q for q in await cg.fetch(COINS[:2], ["usd", "eur"])}
    assert markets.calls.last.request.url.params["sparkline"] == "true"
    assert first[("BTC", "usd")].sparkline_7d == (
        61482.2560967549,
        61580.79313827018,
        61173.140226698466,
        60866.87784481049,
        60722.187866776876,
    )
    assert first[("BTC", "eur")].sparkline_7d is None  # the series is in the markets currency only
    second = await cg.fetch(COINS[:2], ["usd"])
    assert all(q.sparkline_7d is None for q in second)  # handed out once, not carried every round


async def test_an_oversized_body_is_refused_without_being_held(respx_mock, client, monkeypatch):
    import ticker.providers.session as http

    monkeypatch.setattr(http, "MAX_BODY_BYTES", 1024)
    respx_mock.get(PRICE_URL).respond(200, content=b'{"bitcoin": {"usd": 1.0, "pad": "' + b"x" * 5000 + b'"}}')
    with pytest.raises(ProviderError, match="response too large"):
        await provider(client).fetch([coin("BTC", "bitcoin")], ["usd"])


# -- market fields: market cap and 24h volume every round, rank and 1h/7d/30d changes hourly ------------------

MARKETS_CHANGES = "coingecko_coins_markets_changes.constructed.json"
FETCHED = datetime(2026, 11, 27, 18, 20, tzinfo=UTC)  # when the tests' /coins/markets answer arrives


def with_wall(cg: CoinGecko, moment: datetime = FETCHED) -> list[float]:
    """Set the provider's wall clock (Unix seconds); the test moves it through the returned list."""
    wall = [moment.timestamp()]
    cg.session.manners.wall = lambda: wall[0]
    return wall


MARKET_FIGURES = [  # the raw JSON of `usd_market_cap` and `usd_24h_vol`, and what a quote makes of it
    pytest.param(b"1317802988326.25", 1317802988326.25, id="number"),
    pytest.param(b"42", 42.0, id="integer"),
    pytest.param(b"0", None, id="zero-is-unknown"),
    pytest.param(b"0.0", None, id="zero-float"),
    pytest.param(b"null", None, id="null"),
    pytest.param(b"-5", None, id="negative"),
    pytest.param(b'"1317802988326.25"', None, id="numeric-string"),
    pytest.param(b'""', None, id="empty-string"),
    pytest.param(b"true", None, id="bool"),
    pytest.param(b"NaN", None, id="nan"),
    pytest.param(b"1e999", None, id="infinite"),
    pytest.param(b"[1]", None, id="list"),
]


@pytest.mark.parametrize(("raw", "expected"), MARKET_FIGURES)
async def test_market_cap_and_volume_are_positive_numbers_or_unknown(respx_mock, client, raw, expected):
    body = b'{"bitcoin": {"usd": 67187.33, "usd_market_cap": %s, "usd_24h_vol": %s, "usd_24h_change": 3.6}}' % (
        raw,
        raw,
    )
    respx_mock.get(PRICE_URL).respond(200, content=body, headers={"content-type": "application/json"})
    [btc] = await provider(client).fetch([coin("BTC", "bitcoin")], ["usd"])
    assert btc.price == 67187.33 and btc.change_24h_pct == 3.6  # the price never suffers for a bad figure
    assert btc.market_cap == expected and btc.volume_24h == expected


async def test_rank_and_changes_come_from_the_hourly_markets_call_with_the_next_quotes(respx_mock, client):
    markets = respx_mock.get(MARKETS_URL).respond(200, json=fixture_json(MARKETS_CHANGES))
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price_default_coins.constructed.json"))
    cg = provider(client)
    with_wall(cg)
    assert cg.metadata_every == 3600  # side work asks once an hour
    await cg.refresh_metadata(COINS, "usd")
    params = markets.calls.last.request.url.params
    assert params["vs_currency"] == "usd" and params["price_change_percentage"] == "1h,7d,30d"
    assert params["ids"] == "bitcoin,ethereum,neo,waves,monero,nano,ark,pirate-chain,dogecoin,litecoin,cardano"
    quotes = {(q.symbol, q.currency): q for q in await cg.fetch(COINS, ["usd", "eur"])}
    btc = quotes["BTC", "usd"].market
    assert btc == MarketData("usd", datetime(2026, 11, 27, 18, 19, 31, 118000, tzinfo=UTC), 1, 0.2146, -1.8421, 6.7312)
    assert quotes["BTC", "eur"].market == btc  # in usd: the poller takes only the rank into eur quotes
    assert quotes["ARRR", "usd"].market == MarketData("usd", btc.at.replace(second=24, microsecond=860000), None, 1.9)
    assert quotes["XMR", "usd"].market.change_1h_pct == 0.0  # a change of 0 is a change, not unknown
    assert quotes["WAVES", "usd"].market.change_1h_pct is None and quotes["WAVES", "usd"].market.rank == 312
    again = await cg.fetch(COINS[:1], ["usd"])
    assert again[0].market == btc  # every round, until the next hourly answer replaces it


async def test_a_real_answer_with_every_span_gives_the_three_ticker_uses(respx_mock, client):
    respx_mock.get(MARKETS_URL).respond(200, json=fixture_json("coingecko_coins_markets_btc_2021.constructed.json"))
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    cg = provider(client)
    with_wall(cg, datetime(2021, 6, 15, 7, 0, tzinfo=UTC))
    await cg.refresh_metadata([coin("BTC", "bitcoin")], "usd")
    [btc] = await cg.fetch([coin("BTC", "bitcoin")], ["usd"])
    assert btc.market == MarketData(
        "usd",
        datetime(2021, 6, 15, 6, 40, 5, 123000, tzinfo=UTC),
        rank=1,
        change_1h_pct=0.42538793328146973,
        change_7d_pct=21.247216326334467,
        change_30d_pct=-13.300365735467231,
    )


ROW_FIELDS = [  # one field of a /coins/markets row, its raw value, and what the market data holds
    pytest.param("market_cap_rank", 7, "rank", 7, id="rank"),
    pytest.param("market_cap_rank", 3.0, "rank", 3, id="rank-whole-float"),
    pytest.param("market_cap_rank", 0, "rank", None, id="rank-zero"),
    pytest.param("market_cap_rank", -1, "rank", None, id="rank-negative"),
    pytest.param("market_cap_rank", 1.5, "rank", None, id="rank-fraction"),
    pytest.param("market_cap_rank", "1", "rank", None, id="rank-string"),
    pytest.param("market_cap_rank", True, "rank", None, id="rank-bool"),
    pytest.param("market_cap_rank", None, "rank", None, id="rank-null"),
    pytest.param("price_change_percentage_7d_in_currency", -4.2215, "change_7d_pct", -4.2215, id="7d"),
    pytest.param("price_change_percentage_7d_in_currency", 0, "change_7d_pct", 0.0, id="7d-zero"),
    pytest.param("price_change_percentage_7d_in_currency", "2.5", "change_7d_pct", None, id="7d-string"),
    pytest.param("price_change_percentage_7d_in_currency", None, "change_7d_pct", None, id="7d-null"),
    pytest.param("price_change_percentage_1h_in_currency", math.nan, "change_1h_pct", None, id="1h-nan"),
    pytest.param("price_change_percentage_30d_in_currency", {}, "change_30d_pct", None, id="30d-object"),
    pytest.param("price_change_percentage_7d", 3.0, "change_7d_pct", None, id="key-without-in-currency"),
    pytest.param("last_updated", "2026-11-27T18:19:31.118Z", "at", datetime(2026, 11, 27, 18, 19, 31, 118000, UTC)),
    pytest.param("last_updated", "2030-01-01T00:00:00Z", "at", FETCHED, id="at-future-is-fetch-time"),
    pytest.param("last_updated", "yesterday", "at", FETCHED, id="at-garbage-is-fetch-time"),
    pytest.param("last_updated", 1795803571, "at", FETCHED, id="at-number-is-fetch-time"),
    pytest.param("unrelated", 1, "at", FETCHED, id="at-missing-is-fetch-time"),
]


@pytest.mark.parametrize(("field", "value", "attribute", "expected"), ROW_FIELDS)
async def test_each_market_row_field_is_read_or_unknown(respx_mock, client, field, value, attribute, expected):
    respx_mock.get(MARKETS_URL).respond(
        200,
        content=json.dumps([{"id": "bitcoin", field: value}]).encode(),
        headers={"content-type": "application/json"},
    )
    respx_mock.get(PRICE_URL).respond(200, json=fixture_json("coingecko_simple_price.json"))
    cg = provider(client)
    with_wall(cg)
    await cg.refresh_metadata([coin("BTC", "bitcoin")], "usd")
    [btc] = await cg.fetch([coin("BTC", "bitcoin")], ["usd"])
    assert getattr(btc.market, attribute) == expected
    assert btc.price == 67187.3358936566  # a bad market row never costs the price


async def test_sparkline_seeds_ride_along_once_a_day_not_every_hour(respx_mock, client):
    markets = respx_mock.get(MARKETS_URL).respond(200, json=fixture_json("coingecko_coins_markets_sparkline.json"))
    cg = provider(client)
    wall = with_wall(cg)
    for _ in range(25):
        await cg.refresh_metadata(COINS[:2], "usd")
        wall[0] += 3600
    asked = [call.request.url.params.get("sparkline") for call in markets.calls]
    assert asked == ["true"] + [None] * 23 + ["true"]
    assert all(call.request.url.params["price_change_percentage"] == "1h,7d,30d" for call in markets.calls)
