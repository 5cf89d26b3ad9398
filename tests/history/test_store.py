"""What every history backend does, run over memory, SQLite and Redis (conftest.py): the same answers."""

from __future__ import annotations

import math
import random

import pytest

from ticker.history.base import MAX_POINTS, RANGES, Tick
from ticker.history.rollup import DAY, FORGET_AFTER
from ticker.models import Candle

DAY0 = 20_416 * DAY  # 2025-11-24 00:00 UTC
HOUR = 3600


def ticks(times, prices, symbol="BTC", currency="usd"):
    return [Tick(symbol, currency, float(t), float(p)) for t, p in zip(times, prices, strict=True)]


def expected(points, start, seconds):
    """The candle of [start, start + seconds) computed straight from the quotes: first, max, min, last."""
    inside = sorted((t.at, t.price) for t in points if start <= t.at < start + seconds)
    if not inside:
        return None
    prices = [p for _, p in inside]
    return Candle(start, seconds, prices[0], max(prices), min(prices), prices[-1])


def walk(count, seed=1, start=100.0):
    rng = random.Random(seed)
    prices, price = [], start
    for _ in range(count):
        price *= math.exp(rng.gauss(0, 0.01))
        prices.append(price)
    return prices


async def test_nothing_recorded_is_empty_never_zero(store):
    for range_name in RANGES:
        assert await store.candles("BTC", "usd", range_name, DAY0) == []
    assert await store.price_at("BTC", "usd", DAY0, 3600) is None
    assert await store.earliest("BTC", "usd") is None


async def test_an_unknown_range_is_a_clear_error(store):
    with pytest.raises(ValueError, match="unknown range '2w'; expected one of 24h, 7d, 30d, 1y, max"):
        await store.candles("BTC", "usd", "2w", DAY0)


async def test_every_range_keeps_first_last_high_low_of_each_bucket(store):
    # Three days of quotes every 97 s, appended out of order in several calls.
    times = [DAY0 + i * 97 for i in range(3 * DAY // 97)]
    points = ticks(times, walk(len(times)))
    shuffled = points[:]
    random.Random(7).shuffle(shuffled)
    for part in range(0, len(shuffled), 500):
        await store.append(shuffled[part : part + 500])
    now = times[-1] + 10.0
    for range_name, seconds in [("24h", 300), ("7d", 1800), ("30d", 7200), ("1y", DAY), ("max", 600)]:
        got = await store.candles("BTC", "usd", range_name, now)
        assert {c.seconds for c in got} == {seconds}, range_name
        assert [c.start for c in got] == sorted(c.start for c in got)
        assert 0 < len(got) <= MAX_POINTS
        for candle in got:
            assert candle == expected(points, candle.start, seconds), (range_name, candle)
    day = await store.candles("BTC", "usd", "24h", now)
    assert day[0].start <= now - DAY < day[0].start + 300 and day[-1].start <= now < day[-1].start + 300
    assert await store.earliest("BTC", "usd") == DAY0


async def test_duplicates_and_nonsense_are_never_stored(store):
    await store.append(ticks([DAY0 + 10, DAY0 + 20], [100.0, 101.0]))
    await store.append(ticks([DAY0 + 10, DAY0 + 20], [500.0, 1.0]))  # same times again: ignored
    bad = [math.nan, math.inf, -math.inf, 0.0, -5.0]
    await store.append(ticks([DAY0 + 30 + i for i in range(len(bad))], bad))
    await store.append([Tick("BTC", "usd", math.nan, 7.0), Tick("BTC", "usd", -1.0, 7.0), Tick("BTC", "usd", 5e9, 7.0)])
    (candle,) = await store.candles("BTC", "usd", "24h", DAY0 + 300)
    assert candle == Candle(DAY0, 300, 100.0, 101.0, 100.0, 101.0)


async def test_coins_and_currencies_are_separate_series(store):
    await store.append(
        [
            Tick("BTC", "usd", DAY0 + 5, 90917.04),
            Tick("BTC", "eur", DAY0 + 5, 84123.55),
            Tick("ETH", "usd", DAY0, 3021.5),
        ]
    )
    assert (await store.candles("BTC", "eur", "24h", DAY0 + 60))[0].close == 84123.55
    assert (await store.candles("BTC", "usd", "24h", DAY0 + 60))[0].close == 90917.04
    assert (await store.candles("ETH", "usd", "24h", DAY0 + 60))[0].close == 3021.5
    assert await store.candles("ETH", "eur", "24h", DAY0 + 60) == []


async def test_prices_round_trip_exactly(store):
    prices = [0.1 + 0.2, 1e-12, 123456789.12345679, 0.00001234, 2.0000000000000004]
    await store.append(ticks([DAY0 + i for i in range(len(prices))], prices))
    assert [await store.price_at("BTC", "usd", DAY0 + i, 0) for i in range(len(prices))] == prices


async def test_backfill_only_fills_the_past(store):
    own_start = DAY0 + 5 * DAY + 10 * HOUR + 35 * 60  # our first quote: 10:35 on day 5
    own = ticks([own_start + i * 60 for i in range(2 * DAY // 60)], walk(2 * DAY // 60, seed=2))
    await store.append(own)
    hourly = [Candle(DAY0 + h * HOUR, HOUR, 50.0 + h, 60.0 + h, 40.0 + h, 55.0 + h) for h in range(5 * 24 + 12)]
    kept = await store.add_candles("BTC", "usd", hourly)
    # Up to 10:00-11:00, which would end after our first quote: that one and everything later is left out.
    assert kept == 5 * 24 + 10
    assert await store.add_candles("BTC", "usd", hourly) == 0  # nothing older than what is recorded now
    assert await store.earliest("BTC", "usd") == DAY0
    now = own[-1].at
    week = await store.candles("BTC", "usd", "7d", now)
    past = [c for c in week if c.seconds == HOUR]
    ours = [c for c in week if c.seconds == 1800]
    assert past and ours and past[-1].start + HOUR <= ours[0].start and len(week) <= MAX_POINTS
    assert past[-1] == hourly[kept - 1]  # finest data there is: the backfilled hours as they came
    assert all(c == expected(own, c.start, 1800) for c in ours)
    # A day's bucket merges both exactly: backfilled hours first, then our quotes.
    day5 = next(c for c in await store.candles("BTC", "usd", "1y", now) if c.start == DAY0 + 5 * DAY)
    ours_that_day = [t.price for t in own if t.at < DAY0 + 6 * DAY]
    assert day5.open == hourly[5 * 24].open and day5.close == ours_that_day[-1]
    assert day5.high == max(hourly[kept - 1].high, *ours_that_day)


async def test_backfill_leaves_out_candles_that_do_not_fit(store):
    good = Candle(DAY0, 300, 10.0, 12.0, 9.0, 11.0)
    bad = [
        Candle(DAY0 + 60, 300, 10.0, 12.0, 9.0, 11.0),  # not on the 5-minute grid
        Candle(DAY0, 7 * DAY, 10.0, 12.0, 9.0, 11.0),  # a week does not nest in a day
        Candle(DAY0, 7000, 10.0, 12.0, 9.0, 11.0),  # does not divide a day
        Candle(DAY0 + 300, 300, 10.0, 9.0, 12.0, 11.0),  # high below low
        Candle(DAY0 + 600, 300, math.nan, 12.0, 9.0, 11.0),
        Candle(DAY0 + 900, 300, 10.0, math.inf, 9.0, 11.0),
        Candle(DAY0 + 1200, 300, 10.0, 12.0, 0.0, 11.0),
        Candle(DAY0 + 1500, 300, 13.0, 12.0, 9.0, 11.0),  # open above high
    ]
    assert await store.add_candles("ETH", "usd", [good, *bad]) == 1
    assert await store.candles("ETH", "usd", "24h", DAY0 + HOUR) == [good]
    assert await store.add_candles("XMR", "usd", bad) == 0
    assert await store.earliest("XMR", "usd") is None


async def test_one_minute_candles_merge_into_five_minute_buckets(store):
    minutes = [Candle(DAY0 + m * 60, 60, 10.0 + m, 20.0 + m, 5.0 + m, 11.0 + m) for m in range(10)]
    assert await store.add_candles("BTC", "usd", list(reversed(minutes))) == 10
    assert await store.candles("BTC", "usd", "24h", DAY0 + 600) == [
        Candle(DAY0, 300, 10.0, 24.0, 5.0, 15.0),
        Candle(DAY0 + 300, 300, 15.0, 29.0, 10.0, 20.0),
    ]


async def test_price_at_takes_the_nearest_point_within_the_tolerance(store):
    await store.append(ticks([DAY0 + 100, DAY0 + 160, DAY0 + 400], [1.0, 2.0, 3.0]))
    assert await store.price_at("BTC", "usd", DAY0 + 100, 0) == 1.0
    assert await store.price_at("BTC", "usd", DAY0 + 125, 60) == 1.0
    assert await store.price_at("BTC", "usd", DAY0 + 140, 60) == 2.0
    assert await store.price_at("BTC", "usd", DAY0 + 310, 99) == 3.0
    assert await store.price_at("BTC", "usd", DAY0 + 280, 100) is None  # 120 s from both neighbours
    assert await store.price_at("BTC", "usd", DAY0 - 3600, 600) is None
    assert await store.price_at("ETH", "usd", DAY0 + 100, 3600) is None
    assert await store.price_at("BTC", "usd", math.nan, 3600) is None


async def test_after_48_hours_a_price_comes_from_its_bucket(store):
    await store.append(ticks([DAY0 + 10, DAY0 + 130, DAY0 + 250], [1.0, 2.0, 3.0]))
    await store.prune({"BTC"}, DAY0 + 3 * DAY)
    assert await store.price_at("BTC", "usd", DAY0 + 130, 0) is None  # the quote itself is gone
    assert await store.price_at("BTC", "usd", DAY0 + 130, 120) == 3.0  # the 5-minute close, at +250 s
    assert await store.candles("BTC", "usd", "7d", DAY0 + 3 * DAY) == [Candle(DAY0, 1800, 1.0, 3.0, 1.0, 3.0)]
    await store.prune({"BTC"}, DAY0 + 15 * DAY)  # 5-minute buckets gone, the hour remains
    assert await store.price_at("BTC", "usd", DAY0 + 130, 120) == 3.0
    assert await store.candles("BTC", "usd", "30d", DAY0 + 15 * DAY) == [Candle(DAY0, 7200, 1.0, 3.0, 1.0, 3.0)]
    await store.prune({"BTC"}, DAY0 + 400 * DAY)  # only the day remains, forever
    assert await store.candles("BTC", "usd", "max", DAY0 + 400 * DAY) == [Candle(DAY0, DAY, 1.0, 3.0, 1.0, 3.0)]
    assert await store.earliest("BTC", "usd") == DAY0 + 10


async def test_removed_coins_are_forgotten_after_the_grace_period(store):
    await store.append(ticks([DAY0], [5.0], symbol="OLD") + ticks([DAY0], [7.0], currency="eur"))
    await store.prune({"BTC"}, DAY0 + FORGET_AFTER - 60)
    assert await store.earliest("OLD", "usd") == DAY0
    await store.prune({"BTC"}, DAY0 + FORGET_AFTER + 60)
    assert await store.earliest("OLD", "usd") is None
    assert await store.candles("OLD", "usd", "max", DAY0 + FORGET_AFTER + 60) == []
    assert await store.earliest("BTC", "eur") == DAY0  # configured: kept, however long it has been quiet
    await store.append(ticks([DAY0 + FORGET_AFTER + 100], [6.0], symbol="OLD"))  # back in the config
    assert await store.earliest("OLD", "usd") == DAY0 + FORGET_AFTER + 100
