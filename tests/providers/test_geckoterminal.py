"""GeckoTerminal: token prices by contract address, one call per network and 30 addresses."""

from __future__ import annotations

import math

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings
from ticker.exceptions import ProviderError
from ticker.models import Coin
from ticker.providers.budget import RequestBudget
from ticker.providers.geckoterminal import GeckoTerminal, parse_token_prices

BASE = "https://api.geckoterminal.com/api/v2"
WETH_ADDRESS = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
PEPE_ADDRESS = "0x6982508145454ce325ddbe47a25d4ec3d2311933"
WETH = Coin("WETH", "Wrapped Ether", {"geckoterminal": f"eth:{WETH_ADDRESS}"}, chain="eth", address=WETH_ADDRESS)
PEPE = Coin("PEPE", "Pepe", {"geckoterminal": f"eth:{PEPE_ADDRESS}"}, chain="eth", address=PEPE_ADDRESS)
PRICE_URL = f"{BASE}/simple/networks/eth/token_price/{WETH_ADDRESS},{PEPE_ADDRESS}"


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def provider(client: httpx.AsyncClient, **settings_: object) -> GeckoTerminal:
    return make_provider(GeckoTerminal, client, ProviderSettings(**settings_))  # type: ignore[arg-type]


def evm(index: int, network: str = "eth") -> Coin:
    address = f"0x{index:040x}"
    return Coin(
        f"T{index}", f"Token {index}", {"geckoterminal": f"{network}:{address}"}, chain=network, address=address
    )


async def test_one_call_per_network_gives_usd_price_change_cap_and_volume_unrounded(respx_mock, client):
    route = respx_mock.get(PRICE_URL).respond(
        200, content=fixture_bytes("geckoterminal_simple_token_price.constructed.json")
    )
    quotes = await provider(client).fetch([WETH, PEPE], ["usd", "eur"])
    assert route.call_count == 1
    assert route.calls.last.request.url.params["include_24hr_price_change"] == "true"
    assert [(q.symbol, q.currency, q.price, q.change_24h_pct, q.source) for q in quotes] == [
        ("WETH", "usd", 2472.55, -1.7249945348675306, "geckoterminal"),
        ("PEPE", "usd", 0.00000712, -25.041400507465255, "geckoterminal"),
    ]
    assert quotes[0].market_cap == 5102178003.805862 and quotes[0].volume_24h == 375011671.541306
    assert quotes[1].market_cap is None  # null upstream: unknown, never 0
    assert all(q.updated_at is None for q in quotes)  # no price time in the answer: the poller stamps it


async def test_no_change_given_means_none_and_an_unknown_token_is_missing(respx_mock, client):
    unknown = evm(1)
    respx_mock.get(f"{BASE}/simple/networks/eth/token_price/{WETH_ADDRESS},{unknown.ids['geckoterminal'][4:]}").respond(
        200, content=fixture_bytes("geckoterminal_simple_token_price_no_change.constructed.json")
    )
    quotes = await provider(client).fetch([WETH, unknown], ["usd"])
    assert [(q.symbol, q.price, q.change_24h_pct, q.market_cap) for q in quotes] == [("WETH", 2472.55, None, None)]


async def test_batches_thirty_addresses_per_network_call(respx_mock, client):
    tokens = [evm(i) for i in range(1, 32)] + [evm(40, "bsc")]
    route = respx_mock.get(url__regex=rf"{BASE}/simple/networks/.*").respond(
        200, json={"data": {"attributes": {"token_prices": {}}}}
    )
    assert await provider(client).fetch(tokens, ["usd"]) == []
    paths = [call.request.url.path for call in route.calls]
    assert len(paths) == 3  # 30 + 1 on eth, 1 on bsc
    assert [p.rsplit("/", 1)[1].count(",") + 1 for p in paths] == [30, 1, 1]
    assert "/networks/bsc/" in paths[2]


async def test_other_currencies_and_coins_without_an_id_cost_no_request(respx_mock, client):
    route = respx_mock.get(url__regex=rf"{BASE}/.*").respond(200, json={})
    gt = provider(client)
    assert await gt.fetch([WETH], ["eur"]) == []
    assert await gt.fetch([Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"})], ["usd"]) == []
    assert route.call_count == 0
    assert not gt.supports(Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"})) and gt.supports(WETH)


@pytest.mark.parametrize(
    ("status", "fixture", "retry_after", "message"),
    [
        (429, "geckoterminal_error_429.constructed.json", 30.0, "exceeded the Rate Limit"),
        (404, "geckoterminal_error_404.constructed.json", None, "HTTP 404"),
    ],
)
async def test_errors_are_provider_errors_and_429_holds_it(respx_mock, client, status, fixture, retry_after, message):
    headers = {"retry-after": "30"} if retry_after else {}
    respx_mock.get(PRICE_URL).respond(status, content=fixture_bytes(fixture), headers=headers)
    gt = provider(client)
    with pytest.raises(ProviderError) as caught:
        await gt.fetch([WETH, PEPE], ["usd"])
    assert caught.value.status == status and message in caught.value.message
    assert caught.value.retry_after == retry_after
    if status == 429:
        with pytest.raises(ProviderError) as again:
            await gt.fetch([WETH, PEPE], ["usd"])
        assert again.value.held


async def test_a_body_that_is_not_the_envelope_is_an_error(respx_mock, client):
    respx_mock.get(PRICE_URL).respond(200, json={"data": []})
    with pytest.raises(ProviderError, match="token_prices"):
        await provider(client).fetch([WETH, PEPE], ["usd"])


async def test_base_url_is_overridable_and_budget_is_the_published_30_a_minute(respx_mock, client):
    route = respx_mock.get(url__regex=r"http://mirror\.test/gt/simple/networks/eth/token_price/.*").respond(
        200, content=fixture_bytes("geckoterminal_simple_token_price.constructed.json")
    )
    await provider(client, base_url="http://mirror.test/gt/").fetch([WETH], ["usd"])
    assert route.call_count == 1
    assert GeckoTerminal.default_limits(ProviderSettings()) == (30.0, None)


async def test_spent_budget_sends_nothing(respx_mock, client):
    route = respx_mock.get(url__regex=rf"{BASE}/.*").respond(200, json={})
    budget = RequestBudget(1, None)
    gt = make_provider(GeckoTerminal, client, ProviderSettings(), budget=budget)
    with pytest.raises(ProviderError):
        await gt.fetch([WETH], ["usd"])  # {} is no envelope: the one allowed request was spent
    with pytest.raises(ProviderError) as caught:
        await gt.fetch([WETH], ["usd"])
    assert caught.value.over_budget and route.call_count == 1


async def test_token_info_says_name_symbol_price_and_liquidity(respx_mock, client):
    respx_mock.get(f"{BASE}/networks/eth/tokens/{WETH_ADDRESS}").respond(
        200, content=fixture_bytes("geckoterminal_token.constructed.json")
    )
    info = await provider(client).token_info("eth", WETH_ADDRESS)
    assert info is not None
    assert (info.name, info.symbol, info.price_usd) == ("Wrapped Ether", "WETH", 2472.55)
    assert info.liquidity_usd is not None and math.isclose(info.liquidity_usd, 897342937.857452743743894395950846)


async def test_token_info_of_an_unknown_token_is_none(respx_mock, client):
    respx_mock.get(f"{BASE}/networks/eth/tokens/{WETH_ADDRESS}").respond(
        404, content=fixture_bytes("geckoterminal_error_404.constructed.json")
    )
    assert await provider(client).token_info("eth", WETH_ADDRESS) is None


FIGURE = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(),
    st.integers(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(price=FIGURE, change=FIGURE, cap=FIGURE)
def test_parser_never_raises_on_odd_figures_and_keeps_only_positive_finite_prices(price, change, cap):
    body = {
        "data": {
            "attributes": {
                "token_prices": {WETH_ADDRESS: price},
                "h24_price_change_percentage": {WETH_ADDRESS: change},
                "market_cap_usd": {WETH_ADDRESS: cap},
            }
        }
    }
    quotes = parse_token_prices("geckoterminal", body, {WETH_ADDRESS: WETH})
    for quote in quotes:
        assert math.isfinite(quote.price) and quote.price > 0
        assert quote.change_24h_pct is None or math.isfinite(quote.change_24h_pct)
        assert quote.market_cap is None or (math.isfinite(quote.market_cap) and quote.market_cap > 0)


@settings(max_examples=50, deadline=None)
@given(
    body=st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.dictionaries(st.sampled_from(["data", "attributes", "token_prices"]), inner, max_size=3)
            | st.lists(inner, max_size=2)
        ),
        max_leaves=8,
    )
)
def test_parser_answers_any_json_with_quotes_or_a_provider_error(body):
    try:
        parse_token_prices("geckoterminal", body, {WETH_ADDRESS: WETH})
    except ProviderError:
        pass
