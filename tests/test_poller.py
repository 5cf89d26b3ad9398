from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import timedelta

import anyio
import httpx
import pytest

from tests.conftest import CG, DEFAULT_COIN_PRICES, NOW, FakeClock, fixture_json, serving, settings_from, wait_for_price
from tests.providers.helpers import make_provider
from ticker.exceptions import ConfigError, ProviderError
from ticker.models import Coin, Quote
from ticker.poller import Poller
from ticker.providers.coingecko import CoinGecko
from ticker.providers.kraken import Kraken
from ticker.runtime import create_app
from ticker.store import SnapshotStore

BTC = Coin("BTC", "Bitcoin", {"alpha": "bitcoin", "beta": "BTC"})
ETH = Coin("ETH", "Ethereum", {"alpha": "ethereum", "beta": "ETH"})
ARRR = Coin("ARRR", "Pirate Chain", {"alpha": "pirate-chain"})
SITE = Coin("SITE", "Site Token", prices={"usd": 0.5})


class FakeProvider:
    """Answers from a dict of USD prices, or raises what `failure` holds."""

    def __init__(self, name: str, prices: dict[str, float], failure: Exception | None = None) -> None:
        self.name, self.prices, self.failure = name, prices, failure
        self.batch_size = 100
        self.session = None  # no upstream session: the poller keeps this provider's manners itself
        self.asked: list[list[str]] = []

    def supports(self, coin: Coin) -> bool:
        return self.name in coin.ids

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        self.asked.append([c.symbol for c in coins])
        if self.failure is not None:
            raise self.failure
        return [
            Quote(c.symbol, cur, self.prices[c.symbol], 1.0, None, self.name)
            for c in coins
            if c.symbol in self.prices
            for cur in currencies
        ]


def make_poller(providers, clock: FakeClock, coins=(BTC, ETH, ARRR), store=None):
    store = store or SnapshotStore()
    poller = Poller(
        providers,
        store,
        coins,
        ["usd"],
        interval=60,
        clock=clock,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random_fraction=lambda: 1.0,
    )
    return poller, store


async def test_a_round_stores_every_quote_stamped_with_the_fetch_time(clock):
    alpha = FakeProvider("alpha", {"BTC": 90917.04, "ETH": 3021.5, "ARRR": 0.1412})
    poller, store = make_poller([alpha], clock)
    snapshot = await poller.run_once()
    assert store.current is snapshot
    assert snapshot.quote("BTC", "usd").price == 90917.04
    assert snapshot.quote("ARRR", "usd").updated_at == NOW
    assert snapshot.providers["alpha"].state == "ok"


async def test_failover_is_per_coin_in_provider_order(clock):
    alpha = FakeProvider("alpha", {"BTC": 90917.04})  # lacks ETH and ARRR this round
    beta = FakeProvider("beta", {"BTC": 1.0, "ETH": 3021.5})
    poller, _ = make_poller([alpha, beta], clock)
    snapshot = await poller.run_once()
    assert beta.asked == [["ETH"]]  # only what alpha could not give, and only coins beta has ids for
    assert snapshot.quote("BTC", "usd").source == "alpha"
    assert snapshot.quote("ETH", "usd").source == "beta"
    assert snapshot.quote("ARRR", "usd") is None


async def test_a_failed_round_keeps_the_last_good_data(clock):
    alpha = FakeProvider("alpha", {"BTC": 90917.04, "ETH": 3021.5, "ARRR": 0.1412})
    poller, store = make_poller([alpha], clock)
    await poller.run_once()
    alpha.failure = ProviderError("alpha", "HTTP 500", status=500)
    clock.advance(60)
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").price == 90917.04  # value from the previous fetch
    assert snapshot.quote("BTC", "usd").updated_at == NOW  # and its honest age
    assert snapshot.generated_at == NOW + timedelta(seconds=60)
    assert snapshot.providers["alpha"].state == "failing"
    assert snapshot.providers["alpha"].last_success == NOW


async def test_failure_and_recovery_are_logged_once_each(clock, caplog):
    alpha = FakeProvider("alpha", {"BTC": 1.0, "ETH": 2.0, "ARRR": 3.0})
    poller, _ = make_poller([alpha], clock)
    await poller.run_once()
    alpha.failure = ProviderError("alpha", "HTTP 429", status=429)
    with caplog.at_level(logging.INFO, logger="ticker"):
        for _ in range(60):
            clock.advance(60)
            await poller.run_once()
        alpha.failure = None
        for _ in range(5):
            clock.advance(60)
            await poller.run_once()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert messages == [
        "provider alpha failing: HTTP 429; no request for 60 s, its coins fail over",
        "no fresh price this round for ARRR, BTC, ETH",
        "provider alpha keeps failing (HTTP 429); probing it at most every 120 s",
        "provider alpha recovered after 31 failed attempts",
        "fresh prices for every coin again",
    ]
    assert len(alpha.asked) == 1 + 31 + 4  # while failing: about one probe every two intervals, not every round


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 0.0])
async def test_impossible_prices_are_rejected_for_that_coin_only(clock, caplog, bad):
    alpha = FakeProvider("alpha", {"BTC": bad, "ETH": 3021.5})
    poller, _ = make_poller([alpha], clock, coins=(BTC, ETH))
    with caplog.at_level(logging.WARNING):
        snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd") is None
    assert snapshot.quote("ETH", "usd").price == 3021.5
    assert "rejecting BTC/usd price" in caplog.text


async def test_a_rejected_price_falls_over_to_the_next_provider(clock):
    alpha = FakeProvider("alpha", {"BTC": -5.0})
    beta = FakeProvider("beta", {"BTC": 90917.04})
    poller, _ = make_poller([alpha, beta], clock, coins=(BTC,))
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").source == "beta"


async def test_future_timestamps_are_clamped_and_nan_change_is_unknown(clock):
    class Odd(FakeProvider):
        async def fetch(self, coins, currencies):
            return [Quote("BTC", "usd", 5.0, math.nan, NOW + timedelta(hours=3), "alpha")]

    poller, _ = make_poller([Odd("alpha", {})], clock, coins=(BTC,))
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").updated_at == NOW
    assert snapshot.quote("BTC", "usd").change_24h_pct is None


async def test_static_coins_are_never_asked_for(clock):
    alpha = FakeProvider("alpha", {"BTC": 1.0})
    poller, _ = make_poller([alpha], clock, coins=(SITE, BTC))
    await poller.run_once()
    assert alpha.asked == [["BTC"]]


async def test_run_forever_survives_unexpected_errors_and_keeps_the_interval(clock, caplog):
    class Broken(FakeProvider):
        async def fetch(self, coins, currencies):
            raise RuntimeError("bug in a provider")

    poller, store = make_poller([Broken("alpha", {})], clock, coins=(BTC,))

    async def stop_after_three(seconds: float) -> None:
        await clock.sleep(seconds)
        if len(clock.slept) == 3:
            raise anyio.get_cancelled_exc_class()

    poller._sleep = stop_after_three
    with caplog.at_level(logging.ERROR), pytest.raises(anyio.get_cancelled_exc_class()):
        await poller.run_forever()
    assert poller.rounds == 3 and clock.slept == [60, 60, 60]
    assert caplog.text.count("provider alpha failed unexpectedly") == 1
    assert store.current.providers["alpha"].state == "failing"


async def test_cancellation_is_not_swallowed(clock):
    class Slow(FakeProvider):
        async def fetch(self, coins, currencies):
            await anyio.sleep(10)
            return []

    poller, _ = make_poller([Slow("alpha", {})], clock, coins=(BTC,))
    with anyio.move_on_after(0.05) as scope:
        await poller.run_forever()
    assert scope.cancelled_caught


async def test_quotes_for_coins_no_longer_configured_are_dropped(clock):
    alpha = FakeProvider("alpha", {"BTC": 1.0, "ETH": 2.0})
    poller, store = make_poller([alpha], clock, coins=(BTC, ETH))
    await poller.run_once()
    poller2, _ = make_poller(
        [FakeProvider("alpha", {}, ProviderError("alpha", "down"))], clock, coins=(BTC,), store=store
    )
    snapshot = await poller2.run_once()
    assert set(snapshot.quotes) == {("BTC", "usd")}


async def test_a_fallbacks_older_price_never_replaces_a_newer_one(clock):
    class Lagging(FakeProvider):
        async def fetch(self, coins, currencies):
            return [Quote("BTC", "usd", 1.0, None, NOW - timedelta(minutes=10), self.name)]

    alpha = FakeProvider("alpha", {"BTC": 90917.04})
    poller, _ = make_poller([alpha, Lagging("beta", {})], clock, coins=(BTC,))
    await poller.run_once()
    alpha.failure = ProviderError("alpha", "down")
    clock.advance(60)
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").source == "alpha" and snapshot.quote("BTC", "usd").price == 90917.04


async def test_a_wall_clock_step_during_a_round_does_not_change_the_schedule():
    """Issue 10, item 5: rounds follow the monotonic clock (a step back of an hour once meant a 3,660 s sleep)."""
    mono, wall = [1000.0], [NOW]
    slept: list[float] = []

    class Stepping(FakeProvider):
        async def fetch(self, coins, currencies):
            mono[0] += 2  # the round takes 2 s ...
            wall[0] -= timedelta(hours=1)  # ... during which NTP steps the wall clock back an hour
            return await super().fetch(coins, currencies)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        mono[0] += seconds
        wall[0] += timedelta(seconds=seconds)
        if len(slept) == 3:
            raise anyio.get_cancelled_exc_class()

    poller = Poller(
        [Stepping("alpha", {"BTC": 1.0})],
        SnapshotStore(),
        [BTC],
        ["usd"],
        interval=60,
        clock=lambda: wall[0],
        monotonic=lambda: mono[0],
        sleep=sleep,
    )
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await poller.run_forever()
    assert slept == [58, 58, 58]


async def test_a_round_that_overruns_skips_the_starts_it_missed():
    mono = [0.0]
    slept: list[float] = []

    class Slow(FakeProvider):
        async def fetch(self, coins, currencies):
            mono[0] += 150  # two and a half intervals
            return await super().fetch(coins, currencies)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        mono[0] += seconds
        if len(slept) == 2:
            raise anyio.get_cancelled_exc_class()

    poller = Poller(
        [Slow("alpha", {"BTC": 1.0})],
        SnapshotStore(),
        [BTC],
        ["usd"],
        interval=60,
        monotonic=lambda: mono[0],
        sleep=sleep,
    )
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await poller.run_forever()
    assert slept == [30, 30]  # next start on the 60 s grid (180 s), no burst of missed rounds


# -- plausibility (issue 11, item 1) and quotes stale on arrival (issue 11, item 3) -----------------------

NEO = Coin("NEO", "NEO", {"alpha": "neo", "beta": "NEO"})


class ScriptedProvider(FakeProvider):
    """Answers whole quotes the test sets per (symbol, currency): any price, change and time."""

    def __init__(self, name: str, quotes: dict[tuple[str, str], tuple[float, float | None, object]]) -> None:
        super().__init__(name, {})
        self.quotes = quotes  # (symbol, currency) -> (price, change, updated_at)

    async def fetch(self, coins, currencies):
        self.asked.append([c.symbol for c in coins])
        if self.failure is not None:
            raise self.failure
        return [
            Quote(c.symbol, cur, *self.quotes[(c.symbol, cur)], self.name)
            for c in coins
            for cur in currencies
            if (c.symbol, cur) in self.quotes
        ]


def poller_for(providers, clock, coins, currencies=("usd",), **options):
    store = SnapshotStore()
    poller = Poller(
        providers,
        store,
        coins,
        list(currencies),
        interval=60,
        clock=clock,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random_fraction=lambda: 1.0,
        **options,
    )
    return poller, store


async def test_an_absurd_price_never_enters_the_snapshot_and_the_next_provider_is_asked(clock, caplog):
    """Issue 11, item 1: NEO at 1e26 (finite and positive) was accepted and took every widget down with a 500."""
    alpha = FakeProvider("alpha", {"BTC": 90917.04, "NEO": 1e26})
    beta = FakeProvider("beta", {"NEO": 4.12})
    poller, _ = poller_for([alpha, beta], clock, (BTC, NEO))
    with caplog.at_level(logging.WARNING):
        snapshot = await poller.run_once()
    assert beta.asked == [["NEO"]]  # rejected for that coin only, in the same round
    assert snapshot.quote("NEO", "usd").price == 4.12 and snapshot.quote("NEO", "usd").source == "beta"
    assert snapshot.quote("BTC", "usd").source == "alpha"
    assert "alpha: rejecting NEO/usd price 1e+26" in caplog.text


async def test_an_absurd_price_leaves_the_last_good_one_in_place(clock):
    alpha = FakeProvider("alpha", {"NEO": 4.12})
    poller, _ = poller_for([alpha], clock, (NEO,))
    await poller.run_once()
    for absurd in (1e26, 1e-13, 1e308, 5e-324):
        alpha.prices["NEO"] = absurd
        clock.advance(60)
        snapshot = await poller.run_once()
        assert snapshot.quote("NEO", "usd").price == 4.12  # the last good price, ageing honestly
        assert snapshot.quote("NEO", "usd").updated_at == NOW


@pytest.mark.parametrize(
    ("currency", "price", "kept"),
    [
        ("pkr", 25_465_862.90, True),  # BTC in rupees: about 90,000 USD
        ("jpy", 13_709_330.22, True),
        ("jpy", 2e12, False),  # about 1.3e10 USD
        ("kwd", 3.5e6, False),  # about 1.1e7 USD: a dinar is worth more than a dollar
        ("usd", 1e7, True),
        ("usd", 1.01e7, False),
        ("sats", 100_000_000.0, True),  # one BTC in sats, at this round's BTC price
        ("sats", 1e16, False),  # 1e8 BTC
        ("btc", 1.0, True),
        ("btc", 2e3, False),  # 2,000 BTC is about 1.8e8 USD
        ("eth", 1e-16, False),  # about 3e-13 USD
    ],
)
async def test_price_bounds_hold_in_every_currency(clock, currency, price, kept):
    currencies = ["usd", currency] if currency != "usd" else ["usd"]
    quotes = {("BTC", "usd"): (90917.04, 1.0, None), ("ETH", "usd"): (3021.55, 1.0, None)}
    quotes[("BTC", currency)] = (price, 1.0, None)
    poller, _ = poller_for([ScriptedProvider("alpha", quotes)], clock, (BTC, ETH), currencies)
    snapshot = await poller.run_once()
    assert (snapshot.quote("BTC", currency) is not None) is kept


async def test_sub_cent_tokens_in_sats_and_btc_pass(clock):
    pepe = Coin("PEPE", "Pepe", {"alpha": "pepe"})
    quotes = {
        ("BTC", "usd"): (90917.04, 1.0, None),
        ("PEPE", "usd"): (0.0000045, 3.0, None),
        ("PEPE", "sats"): (0.00495, 3.0, None),
        ("PEPE", "btc"): (4.95e-11, 3.0, None),
    }
    poller, _ = poller_for([ScriptedProvider("alpha", quotes)], clock, (BTC, pepe), ("usd", "sats", "btc"))
    snapshot = await poller.run_once()
    assert [snapshot.quote("PEPE", cur).price for cur in ("usd", "sats", "btc")] == [0.0000045, 0.00495, 4.95e-11]


@pytest.mark.parametrize(
    ("change", "shown"), [(-100.5, None), (-100.0, -100.0), (1_000_001.0, None), (999_999.0, 999_999.0), (-0.0, -0.0)]
)
async def test_an_impossible_change_is_nulled_and_the_price_kept(clock, change, shown):
    alpha = ScriptedProvider("alpha", {("BTC", "usd"): (90917.04, change, None)})
    poller, _ = poller_for([alpha], clock, (BTC,))
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").price == 90917.04
    assert snapshot.quote("BTC", "usd").change_24h_pct == shown


async def test_a_jump_is_held_until_the_same_provider_confirms_it_next_round(clock, caplog):
    alpha = FakeProvider("alpha", {"BTC": 100.0})
    poller, _ = poller_for([alpha], clock, (BTC,))
    await poller.run_once()
    alpha.prices["BTC"] = 160.0
    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="ticker"):
        held = await poller.run_once()
        assert held.quote("BTC", "usd").price == 100.0  # the last good price stays ...
        assert held.quote("BTC", "usd").updated_at == NOW  # ... and ages
        alpha.prices["BTC"] = 157.0  # within 5 % of 160
        clock.advance(60)
        confirmed = await poller.run_once()
    assert confirmed.quote("BTC", "usd").price == 157.0
    assert confirmed.quote("BTC", "usd").updated_at == NOW + timedelta(seconds=120)
    assert (
        "BTC/usd jumped 60% (alpha says 160; max_jump_pct 50): holding the last good price 100 (alpha)" in caplog.text
    )
    assert "BTC/usd: new price 157 (alpha) confirmed by alpha a round later; accepted" in caplog.text


async def test_a_jump_is_confirmed_by_a_second_provider_in_the_same_round(clock):
    alpha = FakeProvider("alpha", {"BTC": 100.0})
    beta = FakeProvider("beta", {"BTC": 158.0})
    poller, _ = poller_for([alpha, beta], clock, (BTC,))
    await poller.run_once()
    assert beta.asked == []
    alpha.prices["BTC"] = 160.0
    clock.advance(60)
    snapshot = await poller.run_once()
    assert beta.asked == [["BTC"]]  # asked because alpha's price was held
    assert snapshot.quote("BTC", "usd").price == 160.0 and snapshot.quote("BTC", "usd").source == "alpha"


async def test_a_one_round_glitch_never_reaches_the_snapshot(clock):
    alpha = FakeProvider("alpha", {"BTC": 100.0})
    beta = FakeProvider("beta", {"BTC": 101.0})
    poller, store = poller_for([alpha, beta], clock, (BTC,))
    await poller.run_once()
    shown = []
    for price in (100.5, 0.0016, 101.0, 99.0, 99.5):  # one round of a wrong unit (a price in BTC, say)
        alpha.prices["BTC"] = price
        clock.advance(60)
        shown.append((await poller.run_once()).quote("BTC", "usd").price)
    assert shown == [100.5, 101.0, 101.0, 99.0, 99.5]  # the glitch round shows beta's price instead


async def test_a_held_jump_is_logged_once_not_every_round(clock, caplog):
    alpha = FakeProvider("alpha", {"BTC": 100.0})
    poller, _ = poller_for([alpha], clock, (BTC,))
    await poller.run_once()
    with caplog.at_level(logging.INFO, logger="ticker"):
        for price in (200.0, 400.0, 800.0, 1600.0):  # never confirmed: each round a new jump
            alpha.prices["BTC"] = price
            clock.advance(60)
            assert (await poller.run_once()).quote("BTC", "usd").price == 100.0
    assert caplog.text.count("jumped") == 1
    assert "no fresh price" not in caplog.text


@pytest.mark.parametrize(("own", "kept"), [(0.0, 160.0), (100.0, 160.0), (None, 100.0), (10.0, 100.0)])
async def test_a_coin_may_set_its_own_max_jump_pct(clock, own, kept):
    dex = Coin("DEX", "Thin Token", {"alpha": "dex"}, max_jump_pct=own)
    alpha = FakeProvider("alpha", {"DEX": 100.0})
    poller, _ = poller_for([alpha], clock, (dex,))
    await poller.run_once()
    alpha.prices["DEX"] = 160.0 if own != 10.0 else 115.0
    clock.advance(60)
    price = (await poller.run_once()).quote("DEX", "usd").price
    assert price == (kept if own != 10.0 else 100.0)


async def test_a_jump_from_a_stale_price_is_accepted_at_once(clock):
    alpha = FakeProvider("alpha", {"BTC": 100.0})
    poller, _ = poller_for([alpha], clock, (BTC,))  # stale_after: 300 s by default
    await poller.run_once()
    alpha.failure = ProviderError("alpha", "down")
    clock.advance(400)
    await poller.run_once()
    alpha.failure, alpha.prices["BTC"] = None, 160.0
    clock.advance(400)  # the last good price is now 800 s old: nothing fresh to hold it against
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").price == 160.0


async def test_a_quote_stale_on_arrival_counts_as_missing_and_the_newer_is_kept(clock):
    """Issue 11, item 3, with fake providers: a primary's hour-old quote sends the coin to the next provider."""
    an_hour_ago, now = NOW - timedelta(hours=1), NOW
    alpha = ScriptedProvider("alpha", {("BTC", "usd"): (90000.0, 1.0, an_hour_ago), ("ETH", "usd"): (3021.5, 1.0, now)})
    beta = ScriptedProvider("beta", {("BTC", "usd"): (90917.04, 1.6, None)})
    poller, _ = poller_for([alpha, beta], clock, (BTC, ETH))  # stale_after: 300 s by default
    snapshot = await poller.run_once()
    assert beta.asked == [["BTC"]]
    btc = snapshot.quote("BTC", "usd")
    assert (btc.price, btc.source, btc.updated_at) == (90917.04, "beta", NOW)
    assert snapshot.quote("ETH", "usd").source == "alpha"


@pytest.mark.parametrize(("beta_age", "kept"), [(1800, "beta"), (7200, "alpha")])
async def test_when_every_provider_is_stale_the_newer_quote_is_kept(clock, beta_age, kept):
    alpha = ScriptedProvider("alpha", {("BTC", "usd"): (90000.0, 1.0, NOW - timedelta(hours=1))})
    beta = ScriptedProvider("beta", {("BTC", "usd"): (90100.0, 1.0, NOW - timedelta(seconds=beta_age))})
    poller, _ = poller_for([alpha, beta], clock, (BTC,))  # stale_after: 300 s by default
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").source == kept


async def test_a_stale_arrival_never_replaces_a_newer_quote_we_hold(clock):
    alpha = ScriptedProvider("alpha", {("BTC", "usd"): (90917.04, 1.0, None)})
    poller, _ = poller_for([alpha], clock, (BTC,))  # stale_after: 300 s by default
    await poller.run_once()
    alpha.quotes[("BTC", "usd")] = (90000.0, 1.0, NOW - timedelta(minutes=30))
    clock.advance(60)
    snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").price == 90917.04 and snapshot.quote("BTC", "usd").updated_at == NOW


async def test_a_stale_primary_fails_over_to_kraken(respx_mock):
    """Issue 11, item 3, with the real providers: CoinGecko answers BTC an hour old, Kraken has a live price."""
    clock = FakeClock()
    btc = Coin("BTC", "Bitcoin", {"coingecko": "bitcoin", "kraken": "XBTUSD"})
    stale = int((NOW - timedelta(hours=1)).timestamp())
    respx_mock.get(f"{CG}/simple/price").respond(
        200, json={"bitcoin": {"usd": 90000.0, "usd_24h_change": 1.5, "last_updated_at": stale}}
    )
    ticker = fixture_json("kraken_ticker.json")
    ticker["result"]["XXBTZUSD"]["c"] = ["90917.04000", "0.001"]
    kraken_route = respx_mock.get("https://api.kraken.com/0/public/Ticker").respond(200, json=ticker)
    async with httpx.AsyncClient() as client:
        providers = [make_provider(CoinGecko, client), make_provider(Kraken, client)]
        poller, _ = poller_for(providers, clock, (btc,))  # stale_after: 300 s by default
        snapshot = await poller.run_once()
        assert kraken_route.call_count == 1
        quote = snapshot.quote("BTC", "usd")
        assert (quote.price, quote.source, quote.updated_at) == (90917.04, "kraken", NOW)

        kraken_route.respond(503)  # Kraken down too: the hour-old price is the newest there is
        clock.advance(3600)
        poller2, store = poller_for(providers, clock, (btc,))  # stale_after: 300 s by default
        snapshot = await poller2.run_once()
        quote = snapshot.quote("BTC", "usd")
        assert (quote.price, quote.source) == (90000.0, "coingecko")


async def test_an_absurd_price_from_coingecko_never_reaches_a_visitor(respx_mock, tmp_path):
    """Issue 11, item 1, as a visitor saw it: NEO at 1e26 made /widget answer 500 for everyone."""
    body = fixture_json(DEFAULT_COIN_PRICES)
    body["neo"]["usd"] = 1e26
    respx_mock.get(f"{CG}/simple/price").respond(200, json=body)
    settings = settings_from(tmp_path, '[poller]\nproviders = ["coingecko"]')
    async with serving(create_app(settings, clock=FakeClock())) as client:
        await wait_for_price(client, "BTC")
        neo = (await client.get("/api/v1/prices/NEO")).json()
        assert neo["price"] is None and neo["updated_at"] is None  # never priced: unknown, not 1e26
        for path in ("/widget", "/widget/fragment", "/widget?layout=ticker", "/widget?layout=compact"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert "$90,917.04" in page.text and "100,000,000,000" not in page.text


def test_a_coin_sets_its_own_max_jump_pct_in_the_config(tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = ["BTC", { symbol = "PEPE", max_jump_pct = 0 }, { symbol = "ETH", max_jump_pct = 80 }]',
    )
    assert [c.max_jump_pct for c in settings.market.coins] == [None, 0.0, 80.0]
    with pytest.raises(ConfigError, match=r"market\.coins\[0\]\.max_jump_pct"):
        settings_from(tmp_path, '[market]\ncoins = [{ symbol = "BTC", max_jump_pct = -5 }]')


@pytest.mark.parametrize(("stale_after", "source"), [(300, "kraken"), (7200, "coingecko")])
async def test_the_service_uses_the_configured_stale_after_for_arrivals(respx_mock, tmp_path, stale_after, source):
    stale = int((NOW - timedelta(hours=1)).timestamp())
    respx_mock.get(f"{CG}/simple/price").respond(
        200, json={"bitcoin": {"usd": 90000.0, "usd_24h_change": 1.5, "last_updated_at": stale}}
    )
    kraken = respx_mock.get("https://api.kraken.com/0/public/Ticker").respond(
        200, json=fixture_json("kraken_ticker.json")
    )
    settings = settings_from(
        tmp_path,
        f'[market]\ncoins = ["BTC"]\n[poller]\nproviders = ["coingecko", "kraken"]\n'
        f"stale_after_seconds = {stale_after}\nmax_stale_seconds = 86400\n",
    )
    async with serving(create_app(settings, clock=FakeClock())) as client:
        btc = await wait_for_price(client, "BTC")
    assert btc["source"] == source
    assert kraken.call_count == (source == "kraken")  # asked only when CoinGecko's quote counts as missing


async def test_pairs_a_stream_carries_are_taken_from_it_and_the_rest_polled(clock):
    alpha = FakeProvider("alpha", {"BTC": 90917.04, "ETH": 3021.5, "ARRR": 0.1412})
    live_btc = Quote("BTC", "usd", 91000.5, 1.5, NOW, "kraken")
    covered: dict = {("BTC", "usd"): live_btc}
    store = SnapshotStore()
    poller = Poller(
        [alpha],
        store,
        (BTC, ETH, ARRR),
        ["usd"],
        interval=60,
        clock=clock,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        live=lambda: covered,
    )
    snapshot = await poller.run_once()
    assert alpha.asked == [["ETH", "ARRR"]]  # BTC is left to the stream
    assert snapshot.quote("BTC", "usd") == live_btc
    assert snapshot.quote("ETH", "usd").source == "alpha"
    # The stream went down: its coin is polled again in the very next round.
    covered.clear()
    clock.advance(60)
    snapshot = await poller.run_once()
    assert alpha.asked[-1] == ["BTC", "ETH", "ARRR"]
    assert snapshot.quote("BTC", "usd").source == "alpha"
