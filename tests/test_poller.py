from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import timedelta

import anyio
import pytest

from tests.conftest import NOW, FakeClock
from ticker.exceptions import ProviderError
from ticker.models import Coin, Quote
from ticker.poller import Poller
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


async def test_an_implausible_jump_is_logged_and_kept(clock, caplog):
    alpha = FakeProvider("alpha", {"BTC": 100.0})
    poller, _ = make_poller([alpha], clock, coins=(BTC,))
    await poller.run_once()
    alpha.prices["BTC"] = 160.0
    clock.advance(60)
    with caplog.at_level(logging.WARNING):
        snapshot = await poller.run_once()
    assert snapshot.quote("BTC", "usd").price == 160.0
    assert "BTC/usd jumped 60% in one round (alpha 100 -> alpha 160); check the source" in caplog.text


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
