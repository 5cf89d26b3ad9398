"""The demo (`ticker serve --demo`, `ticker fetch --demo`): realistic prices for the configured coins and currencies.

Issue 11, item 7: with `SOL, PEPE, SHIB, USDT` and `pkr`, PEPE showed 782.71 USD, USDT 934.94, and PKR
prices equalled the USD numbers.
"""

from __future__ import annotations

import logging
from datetime import date

import pytest
from babel.core import get_global
from babel.numbers import get_territory_currencies

from tests.conftest import NOW, FakeClock, serving, settings_from, wait_for_price
from ticker.cli import main
from ticker.models import Coin
from ticker.plausibility import Gate
from ticker.providers.coin_ids import KNOWN_COINS
from ticker.providers.demo import DEMO_COINS, DemoSource
from ticker.runtime import create_app


def coin(symbol: str, coingecko: str | None = None) -> Coin:
    return Coin(symbol, symbol, {"coingecko": coingecko or symbol.lower()})


SOL, PEPE, SHIB, USDT = coin("SOL", "solana"), coin("PEPE", "pepe"), coin("SHIB", "shiba-inu"), coin("USDT", "tether")


async def prices(source: DemoSource, coins, currencies, rounds: int = 1) -> dict[tuple[str, str], float]:
    got: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        got = {(q.symbol, q.currency): q.price for q in await source.fetch(coins, currencies)}
    return got


async def test_the_issues_coins_get_realistic_prices_in_usd_and_pkr():
    got = await prices(DemoSource(), [SOL, PEPE, SHIB, USDT], ["usd", "pkr"])
    assert 0.000001 < got[("PEPE", "usd")] < 0.0001 and 0.000001 < got[("SHIB", "usd")] < 0.0001
    assert 0.99 < got[("USDT", "usd")] < 1.01
    assert 20 < got[("SOL", "usd")] < 2_000
    for symbol in ("SOL", "PEPE", "SHIB", "USDT"):
        assert 200 < got[(symbol, "pkr")] / got[(symbol, "usd")] < 400  # rupees per dollar, not 1


async def test_every_currency_ticker_accepts_is_priced_and_passes_the_gate():
    in_use = {
        code.lower()
        for territory in get_global("territory_currencies")
        for code in get_territory_currencies(territory, start_date=date.today(), tender=True)
    }
    currencies = sorted(in_use) + ["btc", "eth", "sats"]
    coins = [coin("BTC", "bitcoin"), coin("ETH", "ethereum"), PEPE, USDT]
    quotes = await DemoSource().fetch(coins, currencies)
    assert {(q.symbol, q.currency) for q in quotes} == {(c.symbol, cur) for c in coins for cur in currencies}
    gate = Gate(coins, max_jump_pct=50.0, stale_after=300.0)
    gate.begin_round([])
    assert len(gate.screen(quotes, NOW)) == len(quotes)  # none implausible
    by_pair = {(q.symbol, q.currency): q.price for q in quotes}
    assert by_pair[("BTC", "btc")] == pytest.approx(1.0)
    assert by_pair[("BTC", "sats")] == pytest.approx(100_000_000)
    assert by_pair[("USDT", "jpy")] == pytest.approx(152, rel=0.01)


async def test_about_the_hundred_largest_coins_and_every_known_one_are_priced():
    assert len(DEMO_COINS) >= 100
    known = [Coin(k.symbol, k.name, k.ids) for k in KNOWN_COINS.values()]
    source = DemoSource()
    assert [c.symbol for c in known if not source.supports(c)] == []
    got = await prices(source, known, ["usd"])
    assert len(got) == len(known)
    for symbol in ("PEPE", "SHIB", "BONK"):
        assert symbol in {c.symbol for c in DEMO_COINS}


async def test_stablecoins_stay_near_one_dollar_and_the_walk_is_deterministic():
    first = await prices(DemoSource(), [SOL, USDT, coin("DAI", "dai")], ["usd"], rounds=200)
    again = await prices(DemoSource(), [SOL, USDT, coin("DAI", "dai")], ["usd"], rounds=200)
    assert first == again
    assert 0.995 < first[("USDT", "usd")] < 1.005 and 0.995 < first[("DAI", "usd")] < 1.005
    assert first[("SOL", "usd")] != 135.0  # SOL walked


async def test_a_coin_the_demo_cannot_price_gets_no_invented_number(caplog):
    """A token the table does not know (here by CoinGecko id) stays unavailable, and the start says so."""
    mine = Coin("OPENVC", "OpenVoiceCoin", {"coingecko": "openvoicecoin"})
    fake_eth = Coin("ETH", "Not Ether", {"coingecko": "some-bridged-eth"})  # a known symbol, another coin
    with caplog.at_level(logging.WARNING):
        source = DemoSource([SOL, mine, fake_eth])
    assert "demo: no realistic price known for ETH, OPENVC; shown as unavailable" in caplog.text
    assert not source.supports(mine) and not source.supports(fake_eth)
    assert await prices(source, [mine, fake_eth], ["usd"]) == {}


async def test_demo_mode_matches_the_config(tmp_path, respx_mock, caplog):
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = ["SOL", "PEPE", "SHIB", "USDT", '
        '{ symbol = "OPENVC", ids = { coingecko = "openvoicecoin" } }, { symbol = "SITE", price = 4200.0 }]\n'
        'currencies = ["pkr", "usd"]\n',
    )
    with caplog.at_level(logging.WARNING):
        async with serving(create_app(settings, demo=True, clock=FakeClock())) as client:
            await wait_for_price(client, "SOL")
            body = (await client.get("/api/v1/prices")).json()
            usd = (await client.get("/api/v1/prices?currency=usd")).json()
    coins = {c["symbol"]: c for c in body["coins"]}
    assert body["currency"] == "pkr" and coins["SOL"]["source"] == "demo"
    assert coins["PEPE"]["price"] < 0.1 and 250 < coins["USDT"]["price"] < 320  # rupees
    assert coins["OPENVC"]["price"] is None and coins["OPENVC"]["source"] is None  # unavailable, not invented
    assert coins["SITE"]["price"] == 4200.0 and coins["SITE"]["source"] == "static"  # static stays static
    assert {c["symbol"]: c["source"] for c in usd["coins"]}["SITE"] is None  # no static usd price: none invented
    assert "demo: no realistic price known for OPENVC" in caplog.text
    assert not respx_mock.calls


def test_fetch_demo_names_the_coins_it_cannot_price(tmp_path, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text(
        '[market]\ncoins = ["BTC", "PEPE", { symbol = "OPENVC", ids = { coingecko = "openvoicecoin" } }]\n'
        'currencies = ["pkr"]\n[cache]\nsnapshot_path = ""\n'
    )
    assert main(["fetch", "--demo", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "demo: 2 prices; none for OPENVC" in out
    assert "demo" in out and "PEPE  pkr" in out
