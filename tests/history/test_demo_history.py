"""DemoHistory: a simulated past for `ticker serve --demo` that looks like a market, agrees with itself across
ranges and runs, ends at the coin's current demo price, and is never stored."""

from __future__ import annotations

import math

import pytest

from tests.conftest import NOW
from ticker.history.base import MAX_POINTS, RANGES, Tick
from ticker.history.demo import DemoHistory
from ticker.models import Coin

T0 = NOW.timestamp()
DAY = 86_400
COINS = (
    Coin("BTC", "Bitcoin", {"coingecko": "bitcoin"}),
    Coin("USDT", "Tether", {"coingecko": "tether"}),
    Coin("OPENVC", "OpenVoiceCoin", prices={"usd": 0.0042}),  # static: no history
    Coin("ZZZ", "Unknown", {"coingecko": "no-such-coin"}),  # the demo has no price for it
)
CURRENT = {("BTC", "usd"): 90_917.04, ("BTC", "eur"): 84_123.55}


def demo(seed: int = 2026) -> DemoHistory:
    return DemoHistory(COINS, lambda symbol, currency: CURRENT.get((symbol, currency)), seed=seed, clock=lambda: T0)


@pytest.mark.parametrize("range_name", list(RANGES))
async def test_every_range_is_a_full_chart_ending_at_the_current_price(range_name):
    candles = await demo().candles("BTC", "usd", range_name, T0)
    assert 200 < len(candles) <= MAX_POINTS
    assert candles[-1].close == pytest.approx(90_917.04)
    starts = [c.start for c in candles]
    assert starts == sorted(starts) and starts[-1] <= T0 < starts[-1] + candles[-1].seconds
    for c in candles:
        assert 0 < c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
        assert all(math.isfinite(v) for v in (c.open, c.high, c.low, c.close))
    for before, after in zip(candles, candles[1:], strict=False):
        assert after.open == pytest.approx(before.close)  # one continuous walk


async def test_it_looks_like_a_market_and_a_peg_holds():
    year = await demo().candles("BTC", "usd", "1y", T0)
    daily = [math.log(b.close / a.close) for a, b in zip(year, year[1:], strict=False)]
    spread = math.sqrt(sum(d * d for d in daily) / len(daily))
    assert 0.005 < spread < 0.08  # about a few percent a day, like BTC
    assert 0.3 < min(c.low for c in year) / max(c.high for c in year) < 0.95  # a year moves, but stays a BTC price
    peg = await demo().candles("USDT", "usd", "max", T0)
    assert all(0.995 < c.low <= c.high < 1.005 for c in peg)


async def test_ranges_agree_and_runs_repeat():
    day = await demo().candles("BTC", "usd", "24h", T0)
    week = await demo().candles("BTC", "usd", "7d", T0)
    at_day = {c.start + c.seconds: c.close for c in day}
    shared = [(c.start + c.seconds, c.close) for c in week[:-1] if c.start + c.seconds in at_day]
    assert len(shared) >= 40 and all(close == pytest.approx(at_day[t]) for t, close in shared)
    assert await demo().candles("BTC", "usd", "30d", T0) == await demo().candles("BTC", "usd", "30d", T0)
    assert await demo(seed=1).candles("BTC", "usd", "30d", T0) != await demo().candles("BTC", "usd", "30d", T0)


async def test_every_currency_has_the_same_shape_at_its_own_level():
    usd = await demo().candles("BTC", "usd", "7d", T0)
    eur = await demo().candles("BTC", "eur", "7d", T0)
    ratio = 84_123.55 / 90_917.04
    assert all(e.close == pytest.approx(u.close * ratio) for u, e in zip(usd, eur, strict=True))
    jpy = await demo().candles("BTC", "jpy", "7d", T0)  # no current price: the demo table's level
    assert 10_000_000 < jpy[-1].close < 16_000_000


async def test_no_history_for_static_or_unknown_coins():
    for symbol in ("OPENVC", "ZZZ", "DOGE"):
        assert await demo().candles(symbol, "usd", "7d", T0) == []
        assert await demo().price_at(symbol, "usd", T0 - DAY, 3600) is None


async def test_it_stores_nothing():
    history = demo()
    before = await history.candles("BTC", "usd", "24h", T0)
    await history.append([Tick("BTC", "usd", T0 - 60, 1.0)])
    assert await history.add_candles("BTC", "usd", []) == 0
    await history.prune({"BTC"}, T0)
    assert await history.candles("BTC", "usd", "24h", T0) == before


async def test_price_at_follows_the_walk():
    history = demo()
    week = await history.candles("BTC", "usd", "7d", T0)
    end = week[10].start + week[10].seconds
    assert await history.price_at("BTC", "usd", end, 60) == pytest.approx(week[10].close)
    assert await history.price_at("BTC", "usd", T0, 60) == pytest.approx(90_917.04)
    assert await history.price_at("BTC", "usd", T0 + DAY, 60) is None  # the future
