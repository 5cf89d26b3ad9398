"""DefiLlama: token prices by chain:address, and the 24 h change from its percentage endpoint."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Coin
from ticker.providers.defillama import DefiLlama, parse_current_prices

BASE = "https://coins.llama.fi"
WETH_ID = "ethereum:0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
CAKE_ID = "bsc:0x0e09fabb73bd3ade0a17ecc321fd13a19e81ce82"
WETH = Coin("WETH", "Wrapped Ether", {"defillama": WETH_ID}, chain="eth", address=WETH_ID.split(":")[1])
CAKE = Coin("CAKE", "PancakeSwap", {"defillama": CAKE_ID}, chain="bsc", address=CAKE_ID.split(":")[1])
PRICES_URL = f"{BASE}/prices/current/{WETH_ID},{CAKE_ID}"
PERCENT_URL = f"{BASE}/percentage/{WETH_ID},{CAKE_ID}"


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client: httpx.AsyncClient, **settings_: object) -> DefiLlama:
    return make_provider(DefiLlama, client, ProviderSettings(**settings_))  # type: ignore[arg-type]


async def test_prices_and_24h_change_in_two_calls_with_defillamas_own_time(respx_mock, client):
    prices = respx_mock.get(PRICES_URL).respond(200, content=fixture_bytes("defillama_prices_current.constructed.json"))
    percent = respx_mock.get(PERCENT_URL).respond(200, content=fixture_bytes("defillama_percentage.constructed.json"))
    quotes = await provider(client).fetch([WETH, CAKE], ["usd"])
    assert prices.call_count == percent.call_count == 1
    assert percent.calls.last.request.url.params["period"] == "24h"
    assert [(q.symbol, q.currency, q.price, q.change_24h_pct, q.source) for q in quotes] == [
        ("WETH", "usd", 2472.61, -1.6992, "defillama"),
        ("CAKE", "usd", 2.317, 4.12, "defillama"),
    ]
    assert quotes[0].updated_at == datetime.fromtimestamp(1795803645, UTC)


async def test_a_failing_percentage_call_leaves_the_change_unknown_not_zero(respx_mock, client):
    respx_mock.get(PRICES_URL).respond(200, content=fixture_bytes("defillama_prices_current.constructed.json"))
    respx_mock.get(PERCENT_URL).respond(500, text="Internal Server Error")
    quotes = await provider(client).fetch([WETH, CAKE], ["usd"])
    assert [(q.symbol, q.price, q.change_24h_pct) for q in quotes] == [("WETH", 2472.61, None), ("CAKE", 2.317, None)]


async def test_an_unknown_token_is_missing_and_costs_no_percentage_call(respx_mock, client):
    respx_mock.get(f"{BASE}/prices/current/{WETH_ID}").respond(
        200, content=fixture_bytes("defillama_prices_current_unknown.constructed.json")
    )
    percent = respx_mock.get(url__regex=rf"{BASE}/percentage/.*").respond(200, json={"coins": {}})
    assert await provider(client).fetch([WETH], ["usd"]) == []
    assert percent.call_count == 0


async def test_keys_in_another_case_still_match_evm_tokens(respx_mock, client):
    respx_mock.get(f"{BASE}/prices/current/{WETH_ID}").respond(
        200, json={"coins": {WETH_ID.upper().replace("ETHEREUM", "ethereum"): {"price": 2000.5, "timestamp": 1}}}
    )
    respx_mock.get(f"{BASE}/percentage/{WETH_ID}").respond(200, json={"coins": {}})
    quotes = await provider(client).fetch([WETH], ["usd"])
    assert [(q.price, q.change_24h_pct) for q in quotes] == [(2000.5, None)]


async def test_429_holds_the_provider(respx_mock, client):
    route = respx_mock.get(PRICES_URL).respond(429, text="Too Many Requests", headers={"retry-after": "60"})
    llama = provider(client)
    with pytest.raises(ProviderError) as caught:
        await llama.fetch([WETH, CAKE], ["usd"])
    assert caught.value.status == 429 and caught.value.retry_after == 60.0
    with pytest.raises(ProviderError) as again:
        await llama.fetch([WETH, CAKE], ["usd"])
    assert again.value.held and route.call_count == 1


async def test_no_coins_object_is_an_error_and_other_currencies_cost_nothing(respx_mock, client):
    route = respx_mock.get(PRICES_URL).respond(200, json={"message": "bad"})
    llama = provider(client)
    assert await llama.fetch([WETH, CAKE], ["eur"]) == []
    assert route.call_count == 0
    with pytest.raises(ProviderError, match="no coins object"):
        await llama.fetch([WETH, CAKE], ["usd"])


async def test_token_info_reports_symbol_price_and_confidence(respx_mock, client):
    respx_mock.get(f"{BASE}/prices/current/{WETH_ID}").respond(
        200, content=fixture_bytes("defillama_prices_current.constructed.json")
    )
    info = await provider(client).token_info("ethereum", WETH_ID.split(":")[1])
    assert info is not None and (info.symbol, info.price_usd, info.confidence) == ("WETH", 2472.61, 0.99)


@settings(max_examples=200, deadline=None)
@given(
    entry=st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=5),
        st.fixed_dictionaries(
            {},
            optional={
                "price": st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=6), st.booleans()),
                "timestamp": st.one_of(st.none(), st.floats(), st.integers(), st.text(max_size=6)),
            },
        ),
    )
)
def test_parser_keeps_only_positive_finite_prices_and_never_raises_on_an_entry(entry):
    quotes = parse_current_prices("defillama", {"coins": {WETH_ID: entry}}, {WETH_ID: WETH})
    for quote in quotes:
        assert math.isfinite(quote.price) and quote.price > 0 and quote.change_24h_pct is None
