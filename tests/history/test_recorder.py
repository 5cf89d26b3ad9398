"""The poller's rounds feed the history store; changes a provider leaves out and sparklines come from it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import FakeClock
from tests.test_poller import poller_for
from ticker.exceptions import HistoryError
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory
from ticker.history.recorder import HistoryRecorder, percent_change
from ticker.models import Candle, Coin, Quote

BTC = Coin("BTC", "Bitcoin", {"kraken": "XBTUSD"})
ETH = Coin("ETH", "Ethereum", {"kraken": "ETHUSD", "gecko": "ethereum"})
HOUR, DAY = 3600, 86400


class PriceList:
    """A provider answering the prices set on it; like Kraken it gives no rolling 24 h change, unless
    `change` is set (like CoinGecko)."""

    def __init__(self, name: str, prices: dict[str, float], change: float | None = None) -> None:
        self.name, self.prices, self.change = name, prices, change
        self.batch_size = 100
        self.session = None

    def supports(self, coin: Coin) -> bool:
        return self.name in coin.ids

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        return [
            Quote(c.symbol, cur, self.prices[c.symbol], self.change, None, self.name)
            for c in coins
            for cur in currencies
            if c.symbol in self.prices
        ]


def poller_with(store, provider, clock: FakeClock, coins=(BTC,), currencies=("usd",)):
    recorder = HistoryRecorder(store, [c.symbol for c in coins], currencies[0])
    poller, _ = poller_for([provider], clock, coins, currencies, max_jump_pct=None, history=recorder)
    return poller


async def run_hourly(poller, provider, clock: FakeClock, prices: list[float], symbol: str = "BTC"):
    """One round an hour at the given prices; returns the last snapshot."""
    snapshot = None
    for price in prices:
        provider.prices[symbol] = price
        snapshot = await poller.run_once()
        clock.advance(HOUR)
    clock.advance(-HOUR)
    return snapshot


async def test_a_provider_without_a_24h_change_gets_ours_once_history_spans_a_day():
    clock, store = FakeClock(), MemoryHistory()
    kraken = PriceList("kraken", {"BTC": 100.0})
    poller = poller_with(store, kraken, clock)
    early = await run_hourly(poller, kraken, clock, [100.0] * 12)
    assert early.quote("BTC", "usd").change_24h_pct is None  # 11 hours of history: honest null, never 0
    assert early.quote("BTC", "usd").change_1h_pct == 0.0  # an hour back exists: unchanged is 0
    clock.advance(HOUR)
    later = await run_hourly(poller, kraken, clock, [100.0] * 12 + [110.0])
    quote = later.quote("BTC", "usd")
    assert quote.change_24h_pct == pytest.approx(10.0) and quote.source == "kraken"
    assert quote.change_1h_pct == pytest.approx(10.0)
    assert quote.change_7d_pct is None and quote.change_30d_pct is None


async def test_the_providers_own_figure_wins_over_ours():
    clock, store = FakeClock(), MemoryHistory()
    gecko = PriceList("gecko", {"ETH": 100.0}, change=-3.5)
    poller = poller_with(store, gecko, clock, coins=(ETH,))
    snapshot = await run_hourly(poller, gecko, clock, [100.0] * 25 + [120.0], symbol="ETH")
    assert snapshot.quote("ETH", "usd").change_24h_pct == -3.5
    assert snapshot.quote("ETH", "usd").change_1h_pct == pytest.approx(20.0)


async def test_backfilled_candles_give_7d_and_30d_changes_and_the_sparkline():
    clock, store = FakeClock(), MemoryHistory()
    now = int(clock().timestamp())
    start = (now - 40 * DAY) // HOUR * HOUR
    past = [Candle(t, HOUR, 50.0, 50.0, 50.0, 50.0) for t in range(start, now - 2 * HOUR, HOUR)]
    assert await store.add_candles("BTC", "usd", past) > 0
    kraken = PriceList("kraken", {"BTC": 75.0})
    snapshot = await poller_with(store, kraken, clock).run_once()
    quote = snapshot.quote("BTC", "usd")
    assert quote.change_7d_pct == pytest.approx(50.0) and quote.change_30d_pct == pytest.approx(50.0)
    assert quote.change_24h_pct == pytest.approx(50.0)
    line = snapshot.history["BTC"]
    assert len(line) == 84 and line[0][1] == 50.0 and line[-1][1] == 75.0  # 7 days, thinned for the snapshot
    assert line[-1][0] - line[0][0] >= 6.9 * DAY
    assert [start for start, _ in line] == sorted(start for start, _ in line)


async def test_every_currency_is_recorded_and_the_sparkline_follows_the_default_one():
    clock, store = FakeClock(), MemoryHistory()
    kraken = PriceList("kraken", {"BTC": 100.0})
    poller = poller_with(store, kraken, clock, currencies=("eur", "usd"))
    await run_hourly(poller, kraken, clock, [100.0, 101.0])
    moment = clock().timestamp()
    assert [c.close for c in await store.candles("BTC", "usd", "24h", moment)][-1] == 101.0
    assert [c.close for c in await store.candles("BTC", "eur", "24h", moment)][-1] == 101.0


class Broken(MemoryHistory):
    async def append(self, ticks: Sequence[Tick]) -> None:
        raise HistoryError("history.sqlite3: disk I/O error")

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        raise HistoryError("history.sqlite3: disk I/O error")


async def test_a_failing_store_never_fails_a_round_and_is_logged_once(caplog):
    clock = FakeClock()
    kraken = PriceList("kraken", {"BTC": 100.0})
    poller = poller_with(Broken(), kraken, clock)
    with caplog.at_level(logging.WARNING, logger="ticker.history.recorder"):
        for _ in range(3):
            snapshot = await poller.run_once()
            clock.advance(60)
    assert snapshot.quote("BTC", "usd").price == 100.0 and snapshot.quote("BTC", "usd").change_24h_pct is None
    assert [r.getMessage() for r in caplog.records].count(
        "price history unavailable, rounds go on without it: history.sqlite3: disk I/O error"
    ) == 1


async def test_removed_coins_are_pruned_after_the_grace_period():
    clock, store = FakeClock(), MemoryHistory()
    await store.append([Tick("OLD", "usd", clock().timestamp() - 40 * DAY, 1.0)])
    kraken = PriceList("kraken", {"BTC": 100.0})
    await poller_with(store, kraken, clock).run_once()
    assert await store.earliest("OLD", "usd") is None and await store.earliest("BTC", "usd") is not None


@hypothesis_settings(max_examples=80, deadline=None)
@given(
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_percent_change_is_plausible_or_none(then, now):
    change = percent_change(then, now)
    assert change is None or -100.0 <= change <= 1_000_000.0
    if then is not None and 0 < then < float("inf") and 0 < now < float("inf") and now / then < 10_000:
        assert change == pytest.approx((now / then - 1) * 100)
