"""Tokens by contract address: config, pricing by geckoterminal then defillama, other currencies via BTC."""

from __future__ import annotations

import math

import httpx
import pytest

from tests.conftest import NOW, FakeClock, fixture_bytes, settings_from
from tests.providers.helpers import make_provider
from tests.test_poller import FakeProvider
from ticker.config import ProviderSettings
from ticker.exceptions import ConfigError
from ticker.models import Coin, Quote
from ticker.poller import Poller
from ticker.providers.defillama import DefiLlama
from ticker.providers.geckoterminal import GeckoTerminal
from ticker.runtime import build_providers
from ticker.store import SnapshotStore
from ticker.tokens import converted

GT = "https://api.geckoterminal.com/api/v2"
LLAMA = "https://coins.llama.fi"
WETH_ADDRESS = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
CHECKSUMMED = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
TOKEN_CONFIG = f"""
[market]
coins = ["BTC", {{ symbol = "weth", name = "Wrapped Ether", chain = "eth", address = "{CHECKSUMMED}" }}]
currencies = ["usd", "eur"]
"""

BTC = Coin("BTC", "Bitcoin", {"alpha": "bitcoin"})


# -- config -------------------------------------------------------------------------------------------


def test_a_token_keeps_its_checksum_case_for_display_and_asks_in_lower_case(tmp_path):
    settings = settings_from(tmp_path, TOKEN_CONFIG)
    token = settings.coins_by_symbol["WETH"]
    assert token.is_token and (token.chain, token.address, token.name) == ("eth", CHECKSUMMED, "Wrapped Ether")
    assert dict(token.ids) == {"geckoterminal": f"eth:{WETH_ADDRESS}", "defillama": f"ethereum:{WETH_ADDRESS}"}
    assert settings.warnings == ()
    assert "geckoterminal" not in settings.poller.providers  # not a default provider: tokens use it anyway


def test_solana_addresses_are_kept_as_written_and_chain_names_map_to_defillamas(tmp_path):
    mint = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
    settings = settings_from(
        tmp_path,
        f'[market]\ncoins = [{{ symbol = "BONK", chain = "solana", address = "{mint}" }},'
        ' { symbol = "X", chain = "polygon_pos", address = "0x0000000000000000000000000000000000001010" }]',
    )
    assert settings.coins_by_symbol["BONK"].ids["defillama"] == f"solana:{mint}"
    assert settings.coins_by_symbol["X"].ids["defillama"].startswith("polygon:0x")


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ('{ symbol = "A", chain = "bnb", address = "0x1" }', "market.coins[0].chain: unknown chain 'bnb'"),
        (
            '{ symbol = "A", chain = "eth", address = "0x123" }',
            "market.coins[0].address: expected 0x followed by 40 hex digits on eth, got '0x123'",
        ),
        (
            f'{{ symbol = "A", chain = "eth", address = "{WETH_ADDRESS[:-1]}g" }}',
            "market.coins[0].address: expected 0x followed by 40 hex digits",
        ),
        (
            '{ symbol = "A", chain = "solana", address = "0OIl0OIl0OIl0OIl0OIl0OIl0OIl0OIl" }',
            "market.coins[0].address: expected a base58 address of 32 to 44 characters on solana",
        ),
        (f'{{ symbol = "A", address = "{WETH_ADDRESS}" }}', "market.coins[0].chain: missing"),
        ('{ symbol = "A", chain = "eth" }', "market.coins[0].address: missing"),
        ('{ symbol = "A", chain = "eth", address = "" }', "market.coins[0].address: expected the token's contract"),
        (
            f'{{ symbol = "A", chain = "eth", address = "{WETH_ADDRESS}", price = 1.0 }}',
            "market.coins[0].price: not allowed on a token",
        ),
        (
            '{ symbol = "USDT", ids = { geckoterminal = "eth:0x" } }',
            "market.coins[0].ids.geckoterminal: tokens are priced by contract",
        ),
    ],
)
def test_bad_tokens_are_config_errors_naming_the_key(tmp_path, entry, error):
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, f"[market]\ncoins = [{entry}]")
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_every_token_error_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings_from(
            tmp_path,
            '[market]\ncoins = [{ symbol = "A", chain = "bnb", address = "x" },'
            ' { symbol = "B", chain = "eth", address = "0x1" }, { symbol = "A", chain = "eth" }]',
        )
    assert [e.split(":")[0] for e in caught.value.errors] == [
        "market.coins[0].chain",
        "market.coins[1].address",
        "market.coins[2].address",
    ]


def test_a_token_in_eur_without_btc_is_a_warning(tmp_path):
    settings = settings_from(
        tmp_path,
        f'[market]\ncoins = ["ETH", {{ symbol = "WETH", chain = "eth", address = "{WETH_ADDRESS}" }}]\n'
        'currencies = ["usd", "eur"]',
    )
    assert settings.warnings == (
        "market.coins[1]: token WETH is quoted in USD only and converted through BTC's price, so without BTC "
        "among the coins and usd among the currencies it shows as unavailable in eur",
    )


async def test_tokens_bring_the_dex_sources_after_the_configured_providers(tmp_path):
    settings = settings_from(tmp_path, TOKEN_CONFIG + '\n[poller]\nproviders = ["coingecko"]\n')
    async with httpx.AsyncClient() as client:
        names = [p.name for p in build_providers(settings, client)]
        assert names == ["coingecko", "geckoterminal", "defillama"]
        plain = settings_from(tmp_path, '[poller]\nproviders = ["coingecko"]\n')
        assert [p.name for p in build_providers(plain, client)] == ["coingecko"]


# -- the poller -----------------------------------------------------------------------------------------


def weth(settings_path) -> Coin:
    return settings_from(settings_path, TOKEN_CONFIG).coins_by_symbol["WETH"]


def make_poller(tmp_path, client, clock: FakeClock, alpha: FakeProvider) -> Poller:
    dex = [
        make_provider(GeckoTerminal, client, ProviderSettings(), monotonic=clock.monotonic),
        make_provider(DefiLlama, client, ProviderSettings(), monotonic=clock.monotonic),
    ]
    return Poller(
        [alpha, *dex],
        SnapshotStore(),
        [BTC, weth(tmp_path)],
        ["usd", "eur"],
        interval=60,
        clock=clock,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random_fraction=lambda: 1.0,
    )


class TwoCurrencies(FakeProvider):
    """BTC in usd and eur: eur = usd × 0.9 (an aggregator that quotes both in one call)."""

    async def fetch(self, coins, currencies):
        quotes = await super().fetch(coins, currencies)
        return [
            q if q.currency == "usd" else Quote(q.symbol, q.currency, q.price * 0.9, 1.0, None, self.name)
            for q in quotes
        ]


async def test_token_from_geckoterminal_then_defillama_and_in_eur_through_btc(tmp_path, respx_mock, clock):
    gt_price = respx_mock.get(url__regex=rf"{GT}/simple/networks/eth/token_price/{WETH_ADDRESS}").respond(
        200, content=fixture_bytes("geckoterminal_simple_token_price.constructed.json")
    )
    llama_price = respx_mock.get(f"{LLAMA}/prices/current/ethereum:{WETH_ADDRESS}").respond(
        200, content=fixture_bytes("defillama_prices_current.constructed.json")
    )
    respx_mock.get(f"{LLAMA}/percentage/ethereum:{WETH_ADDRESS}").respond(
        200, content=fixture_bytes("defillama_percentage.constructed.json")
    )
    alpha = TwoCurrencies("alpha", {"BTC": 90_000.0})
    async with httpx.AsyncClient() as client:
        poller = make_poller(tmp_path, client, clock, alpha)
        first = await poller.run_once()
        usd, eur = first.quote("WETH", "usd"), first.quote("WETH", "eur")
        assert (usd.price, usd.change_24h_pct, usd.source, usd.updated_at) == (
            2472.55,
            -1.7249945348675306,
            "geckoterminal",
            NOW,
        )
        assert math.isclose(eur.price, 2472.55 * 0.9) and eur.source == "geckoterminal"
        assert eur.change_24h_pct is None  # a USD change is not the change in euros: unknown, never made up
        assert llama_price.call_count == 0  # the fallback is not asked while the first source answers
        assert alpha.asked == [["BTC"]]  # other providers are never asked for a token

        gt_price.respond(
            429, headers={"retry-after": "120"}, content=fixture_bytes("geckoterminal_error_429.constructed.json")
        )
        clock.advance(60)
        second = await poller.run_once()
        usd, eur = second.quote("WETH", "usd"), second.quote("WETH", "eur")
        assert (usd.price, usd.change_24h_pct, usd.source) == (2472.61, -1.6992, "defillama")
        assert math.isclose(eur.price, 2472.61 * 0.9) and eur.source == "defillama"
        assert second.providers["geckoterminal"].state == "backoff"

        clock.advance(60)
        await poller.run_once()
        assert gt_price.call_count == 2  # held for its Retry-After: not asked in the third round


async def test_without_btc_this_round_the_eur_price_is_not_refreshed(tmp_path, respx_mock, clock):
    respx_mock.get(url__regex=rf"{GT}/simple/networks/eth/token_price/.*").respond(
        200, content=fixture_bytes("geckoterminal_simple_token_price.constructed.json")
    )
    alpha = TwoCurrencies("alpha", {"BTC": 90_000.0})
    async with httpx.AsyncClient() as client:
        poller = make_poller(tmp_path, client, clock, alpha)
        await poller.run_once()
        alpha.prices = {}  # BTC missing this round: the last eur price stays and ages, none is made from old rates
        clock.advance(60)
        snapshot = await poller.run_once()
    assert snapshot.quote("WETH", "usd").updated_at == NOW.replace(minute=21)
    assert snapshot.quote("WETH", "eur").updated_at == NOW


def test_conversion_needs_all_three_quotes_of_the_round():
    token = Coin("T", "T", {"geckoterminal": "eth:0x"}, chain="eth", address="0x")
    fresh = {
        ("T", "usd"): Quote("T", "usd", 2.0, 5.0, NOW, "geckoterminal", market_cap=1e6),
        ("BTC", "usd"): Quote("BTC", "usd", 100_000.0, 1.0, NOW, "alpha"),
        ("BTC", "jpy"): Quote("BTC", "jpy", 15_000_000.0, 1.0, NOW, "alpha"),
    }
    [jpy] = converted([token], fresh, {("T", "jpy"), ("T", "eur"), ("T", "usd")})
    assert (jpy.currency, jpy.price, jpy.change_24h_pct, jpy.market_cap) == ("jpy", 300.0, None, None)
    assert converted([Coin("T", "T", {"alpha": "t"})], fresh, {("T", "jpy")}) == []  # not a token
