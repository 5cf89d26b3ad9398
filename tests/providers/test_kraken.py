from __future__ import annotations

import json
import logging
import math

import httpx
import pytest

from tests.conftest import fixture_bytes, fixture_json
from tests.providers.failures import transport_failures
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings, default_settings
from ticker.exceptions import ProviderError
from ticker.models import Coin
from ticker.providers.budget import RequestBudget
from ticker.providers.kraken import PROBE_SPACING_SECONDS, UNKNOWN_PAIR_SKIP_SECONDS, Kraken

TICKER_URL = "https://api.kraken.com/0/public/Ticker"
MULTI = fixture_json("kraken_ticker_multi.json")["result"]
# Query pair -> (result key, entry), from the real 2019 capture.
CAPTURED = {
    "XBTUSD": ("XXBTZUSD", MULTI["XXBTZUSD"]),
    "LTCUSD": ("XLTCZUSD", MULTI["XLTCZUSD"]),
    "XMRUSD": ("XXMRZUSD", MULTI["XXMRZUSD"]),
    "EOSUSD": ("EOSUSD", MULTI["EOSUSD"]),
}


def coin(symbol: str, pair: str) -> Coin:
    return Coin(symbol, symbol.title(), {"kraken": pair})


BTC, LTC, XMR, EOS = coin("BTC", "XBTUSD"), coin("LTC", "LTCUSD"), coin("XMR", "XMRUSD"), coin("EOS", "EOSUSD")
WAVES = coin("WAVES", "WAVESUSD")


class Clock:
    """Monotonic time the test moves; `sleep` records and advances instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client, *, clock: Clock | None = None, budget: RequestBudget | None = None, **settings) -> Kraken:
    clock = clock or Clock()
    return make_provider(
        Kraken, client, ProviderSettings(**settings), budget=budget, monotonic=clock, sleep=clock.sleep
    )


def fake_kraken(unknown: set[str], answers: dict[str, tuple[str, object]] = CAPTURED):
    """Kraken as documented: the whole call fails when any pair in it is unknown."""

    def answer(request: httpx.Request) -> httpx.Response:
        pairs = request.url.params["pair"].split(",")
        if unknown & set(pairs):
            return httpx.Response(200, content=fixture_bytes("kraken_error_unknown_pair.json"))
        return httpx.Response(200, json={"error": [], "result": dict(answers[pair] for pair in pairs)})

    return answer


def asked(route) -> list[str]:
    return [call.request.url.params["pair"] for call in route.calls]


def test_class_attributes_and_limits():
    assert Kraken.KEYLESS is True and Kraken.PLANS == ("public",) and Kraken.name == "kraken"
    assert Kraken.default_limits(ProviderSettings()) == (30.0, None)
    assert Kraken.batch_size + 1 <= Kraken.default_limits(ProviderSettings())[0]  # a whole isolation fits a minute


async def test_official_doc_example(respx_mock, client):
    route = respx_mock.get(TICKER_URL).respond(200, content=fixture_bytes("kraken_ticker.json"))
    [q] = await provider(client).fetch([BTC], ["usd"])
    assert asked(route) == ["XBTUSD"]
    assert (q.symbol, q.currency, q.price, q.source) == ("BTC", "usd", 30303.2, "kraken")
    assert q.change_24h_pct is None  # "o" is today's open since 00:00 UTC, not 24 h ago
    assert q.updated_at is None and q.icon_url is None  # the poller stamps the fetch time


async def test_captured_multi_pair_answer_maps_canonical_keys_back(respx_mock, client):
    route = respx_mock.get(TICKER_URL).respond(200, content=fixture_bytes("kraken_ticker_multi.json"))
    quotes = await provider(client).fetch([BTC, LTC, XMR, EOS], ["usd"])
    assert asked(route) == ["XBTUSD,LTCUSD,XMRUSD,EOSUSD"]  # one request, in the coins' order
    assert [(q.symbol, q.price) for q in quotes] == [
        ("BTC", 10724.8),  # XXBTZUSD
        ("LTC", 139.92),  # XLTCZUSD
        ("XMR", 116.41),  # XXMRZUSD, 8 decimals
        ("EOS", 7.3096),  # EOSUSD, no prefixes
    ]
    assert all(q.change_24h_pct is None for q in quotes)


async def test_default_coins_in_one_request(respx_mock, client):
    route = respx_mock.get(TICKER_URL).respond(
        200, content=fixture_bytes("kraken_ticker_default_coins.constructed.json")
    )
    kraken = provider(client)
    coins = [c for c in default_settings().market.coins if kraken.supports(c)]
    quotes = {q.symbol: q for q in await kraken.fetch(coins, ["usd", "eur"])}
    assert asked(route) == ["XBTUSD,ETHUSD,XMRUSD,XDGUSD,LTCUSD,ADAUSD"]
    assert {symbol: q.price for symbol, q in quotes.items()} == {
        "BTC": 90917.0,  # XXBTZUSD
        "ETH": 3021.55,  # XETHZUSD
        "XMR": 402.17,  # XXMRZUSD
        "DOGE": 0.1583,  # XDGUSD
        "LTC": 84.36,  # XLTCZUSD
        "ADA": 0.4127,  # ADAUSD
    }
    assert {q.currency for q in quotes.values()} == {"usd"}  # eur is left to the next provider


@pytest.mark.parametrize(
    ("pair", "key"),
    [("XDGUSD", "XDGUSD"), ("DOGEUSD", "XDGUSD"), ("ETCUSD", "XETCZUSD"), ("XRPUSD", "XXRPZUSD"), ("SOLUSD", "SOLUSD")],
)
async def test_result_key_rules(respx_mock, client, pair, key):
    entry = MULTI["EOSUSD"]
    others = {"XXBTZUSD": MULTI["XXBTZUSD"], key: entry}  # two entries: no matching by elimination
    respx_mock.get(TICKER_URL).respond(200, json={"error": [], "result": others})
    quotes = await provider(client).fetch([BTC, coin("X", pair)], ["usd"])
    assert [(q.symbol, q.price) for q in quotes] == [("BTC", 10724.8), ("X", 7.3096)]


async def test_a_key_no_rule_matches_is_learnt_from_a_single_pair_answer(respx_mock, client):
    odd = coin("ODD", "ODDUSD")
    answers = CAPTURED | {"ODDUSD": ("ODDCOINUSD", MULTI["EOSUSD"])}
    route = respx_mock.get(TICKER_URL).mock(side_effect=fake_kraken(set(), answers))
    kraken = provider(client)
    first = await kraken.fetch([BTC, odd], ["usd"])
    assert asked(route) == ["XBTUSD,ODDUSD", "ODDUSD"]  # unmatched in the batch: asked alone once
    assert [(q.symbol, q.price) for q in first] == [("BTC", 10724.8), ("ODD", 7.3096)]
    second = await kraken.fetch([BTC, odd], ["usd"])
    assert asked(route)[2:] == ["XBTUSD,ODDUSD"] and len(second) == 2


async def test_an_answer_for_another_quote_is_not_taken(respx_mock, client, caplog):
    respx_mock.get(TICKER_URL).respond(200, content=fixture_bytes("kraken_ticker_xbtusdt.json"))
    with caplog.at_level(logging.WARNING):
        assert await provider(client).fetch([BTC], ["usd"]) == []
    assert "no entry for pair XBTUSD in the answer (keys: XBTUSDT)" in caplog.text


async def test_only_usd_pairs_are_supported_and_only_usd_is_asked(respx_mock, client):
    route = respx_mock.get(TICKER_URL).respond(200, content=fixture_bytes("kraken_ticker.json"))
    kraken = provider(client)
    assert kraken.supports(BTC) and not kraken.supports(coin("BTC", "XBTUSDT"))
    assert not kraken.supports(coin("BTC", "XBTEUR")) and not kraken.supports(Coin("BTC", "Bitcoin"))
    assert await kraken.fetch([BTC], ["eur"]) == []
    assert await kraken.fetch([coin("BTC", "XBTEUR")], ["usd"]) == []
    assert not route.called


async def test_one_unknown_pair_does_not_take_the_others_down(respx_mock, client, caplog):
    clock = Clock()
    route = respx_mock.get(TICKER_URL).mock(side_effect=fake_kraken({"WAVESUSD"}))
    kraken = provider(client, clock=clock)
    with caplog.at_level(logging.WARNING):
        first = await kraken.fetch([BTC, WAVES, XMR], ["usd"])
    assert [(q.symbol, q.price) for q in first] == [("BTC", 10724.8), ("XMR", 116.41)]
    assert asked(route) == ["XBTUSD,WAVESUSD,XMRUSD", "XBTUSD", "WAVESUSD", "XMRUSD"]
    assert clock.slept == [PROBE_SPACING_SECONDS] * 3
    assert caplog.text.count("Kraken does not know pair WAVESUSD") == 1

    clock.now += 60
    second = await kraken.fetch([BTC, WAVES, XMR], ["usd"])
    assert [q.symbol for q in second] == ["BTC", "XMR"]
    assert asked(route)[4:] == ["XBTUSD,XMRUSD"]  # skipped: one request, no probes

    clock.now += UNKNOWN_PAIR_SKIP_SECONDS
    with caplog.at_level(logging.WARNING):
        third = await kraken.fetch([BTC, WAVES, XMR], ["usd"])
    assert [q.symbol for q in third] == ["BTC", "XMR"]
    assert asked(route)[5:] == ["XBTUSD,XMRUSD", "WAVESUSD"]  # a day later it is asked alone, not in the batch
    assert caplog.text.count("Kraken does not know pair WAVESUSD") == 1  # logged once


async def test_a_relisted_pair_comes_back(respx_mock, client, caplog):
    clock = Clock()
    unknown = {"XMRUSD"}
    route = respx_mock.get(TICKER_URL).mock(side_effect=fake_kraken(unknown))
    kraken = provider(client, clock=clock)
    assert [q.symbol for q in await kraken.fetch([BTC, XMR], ["usd"])] == ["BTC"]
    unknown.clear()
    clock.now += UNKNOWN_PAIR_SKIP_SECONDS
    with caplog.at_level(logging.INFO):
        assert [q.symbol for q in await kraken.fetch([BTC, XMR], ["usd"])] == ["BTC", "XMR"]
    assert "pair XMRUSD is known again" in caplog.text
    await kraken.fetch([BTC, XMR], ["usd"])
    assert asked(route)[-1] == "XBTUSD,XMRUSD"  # back in the batch


async def test_a_single_unknown_pair_costs_one_request_a_day(respx_mock, client):
    route = respx_mock.get(TICKER_URL).respond(200, content=fixture_bytes("kraken_error_unknown_pair.json"))
    kraken = provider(client)
    assert await kraken.fetch([WAVES], ["usd"]) == []
    assert await kraken.fetch([WAVES], ["usd"]) == []
    assert route.call_count == 1


async def test_a_partial_result_with_an_unknown_pair_error_is_used(respx_mock, client):
    # ExchangeSharp#783 saw errors and a result together; the missing pair is then asked alone.
    partial = {"error": ["EQuery:Unknown asset pair"], "result": {"XXBTZUSD": MULTI["XXBTZUSD"]}}
    route = respx_mock.get(TICKER_URL).mock(
        side_effect=[
            httpx.Response(200, json=partial),
            httpx.Response(200, content=fixture_bytes("kraken_error_unknown_pair.json")),
        ]
    )
    quotes = await provider(client).fetch([BTC, WAVES], ["usd"])
    assert [(q.symbol, q.price) for q in quotes] == [("BTC", 10724.8)]
    assert asked(route) == ["XBTUSD,WAVESUSD", "WAVESUSD"]


async def test_isolation_cut_short_by_the_budget_resumes_with_unprobed_pairs(respx_mock, client):
    clock = Clock()
    budget = RequestBudget(3, None, monotonic=clock)
    route = respx_mock.get(TICKER_URL).mock(side_effect=fake_kraken({"WAVESUSD"}))
    kraken = provider(client, clock=clock, budget=budget)
    coins = [BTC, LTC, XMR, WAVES]
    first = await kraken.fetch(coins, ["usd"])
    assert [q.symbol for q in first] == ["BTC", "LTC"]  # kept, though the budget stopped the probes
    assert asked(route) == ["XBTUSD,LTCUSD,XMRUSD,WAVESUSD", "XBTUSD", "LTCUSD"]
    clock.now += 60
    second = await kraken.fetch(coins, ["usd"])
    assert asked(route)[3:] == ["XBTUSD,LTCUSD,XMRUSD,WAVESUSD", "XMRUSD", "WAVESUSD"]  # never-priced pairs first
    assert [q.symbol for q in second] == ["XMR"]
    clock.now += 60
    third = await kraken.fetch(coins, ["usd"])
    assert asked(route)[6:] == ["XBTUSD,LTCUSD,XMRUSD"]
    assert [q.symbol for q in third] == ["BTC", "LTC", "XMR"]


async def test_budget_spent_raises_without_sending(respx_mock, client):
    route = respx_mock.get(TICKER_URL).respond(200, content=fixture_bytes("kraken_ticker.json"))
    kraken = provider(client, budget=RequestBudget(1, None))
    assert len(await kraken.fetch([BTC], ["usd"])) == 1
    with pytest.raises(ProviderError) as caught:
        await kraken.fetch([BTC], ["usd"])
    assert caught.value.over_budget and caught.value.provider == "kraken"
    assert route.call_count == 1


async def test_odd_prices_drop_only_that_coin_and_numbers_pass_to_the_poller(respx_mock, client, caplog):
    def entry(last: list[object]) -> dict[str, object]:
        return dict(MULTI["XXBTZUSD"], c=last)

    body = {
        "error": [],
        "result": {
            "XXBTZUSD": entry(["NaN", "1.0"]),
            "XETHZUSD": entry(["-1.5", "1.0"]),
            "XXMRZUSD": entry([None, "1.0"]),
            "XLTCZUSD": entry(["abc", "1.0"]),
            "XDGUSD": {"o": "0.15"},
            "ADAUSD": ["not", "an", "object"],
            "EOSUSD": entry([]),
            "SOLUSD": entry([141.25, "1.0"]),
        },
    }
    respx_mock.get(TICKER_URL).respond(200, json=body)
    coins = [BTC, coin("ETH", "ETHUSD"), XMR, LTC, coin("DOGE", "XDGUSD"), coin("ADA", "ADAUSD"), EOS]
    coins.append(coin("SOL", "SOLUSD"))
    with caplog.at_level(logging.WARNING):
        quotes = await provider(client).fetch(coins, ["usd"])
    assert [q.symbol for q in quotes] == ["BTC", "ETH", "SOL"]
    assert math.isnan(quotes[0].price) and quotes[1].price == -1.5 and quotes[2].price == 141.25
    for symbol in ("XMR", "LTC", "DOGE", "ADA", "EOS"):
        assert f"{symbol}/usd: ignoring entry without a numeric last price" in caplog.text


async def test_warnings_in_the_error_list_do_not_fail_the_call(respx_mock, client):
    body = json.loads(fixture_bytes("kraken_ticker.json")) | {"error": ["WGeneral:Something to note"]}
    respx_mock.get(TICKER_URL).respond(200, json=body)
    [q] = await provider(client).fetch([BTC], ["usd"])
    assert q.price == 30303.2


async def test_base_url_override(respx_mock, client):
    route = respx_mock.get("http://127.0.0.1:9/kr/Ticker").respond(200, content=fixture_bytes("kraken_ticker.json"))
    await provider(client, base_url="http://127.0.0.1:9/kr/").fetch([BTC], ["usd"])
    assert route.called


async def test_more_pairs_than_one_request_takes_are_split_into_batches(respx_mock, client):
    answers = {f"C{i}USD": (f"C{i}USD", MULTI["EOSUSD"]) for i in range(41)}
    route = respx_mock.get(TICKER_URL).mock(side_effect=fake_kraken(set(), answers))
    quotes = await provider(client).fetch([coin(f"C{i}", f"C{i}USD") for i in range(41)], ["usd"])
    assert route.call_count == 3 and len(quotes) == 41  # ceil(41 / 20)


def envelope(*errors: str) -> httpx.Response:
    """Kraken's documented error shape: HTTP 200, `error` list, no `result`."""
    return httpx.Response(200, json={"error": list(errors)})


PROVIDER_FAILURES = [
    pytest.param(envelope("EAPI:Rate limit exceeded"), "API error: EAPI:Rate limit exceeded", 200, 60.0, id="rate"),
    pytest.param(envelope("EGeneral:Too many requests"), "EGeneral:Too many requests", 200, 60.0, id="too-many"),
    pytest.param(
        envelope("EService: Throttled: 1700000000"), "EService: Throttled: 1700000000", 200, 60.0, id="throttled"
    ),
    pytest.param(envelope("EService:Unavailable"), "API error: EService:Unavailable", 200, None, id="unavailable"),
    pytest.param(envelope("EService:Busy"), "API error: EService:Busy", 200, None, id="busy"),
    pytest.param(
        envelope("EQuery:Unknown asset pair", "EGeneral:Invalid arguments"),
        "API error: EGeneral:Invalid arguments",
        200,
        None,
        id="other-error-beside-unknown-pair",
    ),
    pytest.param(
        httpx.Response(200, json={"error": [], "result": {}}),
        "empty /Ticker result for 2 pair(s) and no error",
        None,
        None,
        id="empty-result",
    ),
    pytest.param(
        httpx.Response(200, json={"error": []}), "empty /Ticker result for 2 pair(s)", None, None, id="no-result"
    ),
    pytest.param(
        httpx.Response(200, json={"error": "EGeneral:Internal error", "result": {}}),
        "unexpected /Ticker response (no error list and result object)",
        None,
        None,
        id="error-not-a-list",
    ),
    pytest.param(
        httpx.Response(200, json={"error": [], "result": ["XXBTZUSD"]}),
        "unexpected /Ticker response (no error list and result object)",
        None,
        None,
        id="result-not-an-object",
    ),
    pytest.param(httpx.Response(200, json=[1, 2]), "unexpected /Ticker response (list)", None, None, id="wrong-shape"),
    pytest.param(httpx.Response(429, headers={"retry-after": "30"}), "HTTP 429", 429, 30.0, id="429-retry-after"),
    pytest.param(httpx.Response(429), "HTTP 429", 429, None, id="429-bare"),
    pytest.param(httpx.ReadTimeout("timed out"), "timed out (ReadTimeout)", None, None, id="read-timeout"),
    *transport_failures(fixture_bytes("kraken_ticker_multi.json")[:300]),
]


@pytest.mark.parametrize(("outcome", "message", "status", "retry_after"), PROVIDER_FAILURES)
async def test_every_failure_is_one_provider_error(respx_mock, client, outcome, message, status, retry_after):
    route = respx_mock.get(TICKER_URL)
    if isinstance(outcome, Exception):
        route.mock(side_effect=outcome)
    else:
        route.mock(return_value=outcome)
    with pytest.raises(ProviderError) as caught:
        await provider(client).fetch([BTC, XMR], ["usd"])
    err = caught.value
    assert err.provider == "kraken" and message in err.message
    assert err.status == status and not err.over_budget
    if retry_after is None:
        assert err.retry_after is None
    else:
        assert err.retry_after is not None and math.isclose(err.retry_after, retry_after)
    assert route.call_count == 1  # a failed batch is never re-asked pair by pair unless it names an unknown pair
