"""A year and a half on a fake clock: rollups, every range, retention, forgetting, size, and a restart."""

from __future__ import annotations

import os
import sqlite3

import pytest

from tests.history.conftest import BACKENDS, open_backend
from tests.history.simulation import Series, days
from ticker.history.base import MAX_POINTS, RANGES
from ticker.history.rollup import DAY, FORGET_AFTER
from ticker.history.sqlite import SqliteHistory

END = 20_961 * DAY + 18 * 3600 + 20 * 60  # 2027-05-23 18:20 UTC
START = END - 548 * DAY
SPANS = {"24h": (DAY, 300), "7d": (7 * DAY, 1800), "30d": (30 * DAY, 7200), "1y": (365 * DAY, DAY)}
# Documented in ticker/history/sqlite.py: a year and a half of one coin in one currency, every tier full
# (measured here: 1.17 MB; bench/history_store.py: 1.13 MB for a year, 27 KB more a year).
SQLITE_BYTES_PER_SERIES = 1_300_000


def coins() -> list[Series]:
    return [
        Series("BTC", 30_000.0, seed=1),
        Series("ETH", 2_000.0, seed=2),
        Series("GONE", 1.0, seed=3, until=END - (FORGET_AFTER + 10 * DAY)),  # removed 40 days ago
        Series("LEFT", 5.0, seed=4, until=END - 10 * DAY),  # removed 10 days ago: still in its grace period
    ]


async def simulate(store, series: list[Series]) -> None:
    """Append day by day (round by round for the last two days) and prune at the end of every day."""
    for day_end, batch in days(START, END, series):
        if END - day_end < 2 * DAY:
            for one_round in batch:
                await store.append(one_round)
        else:
            await store.append([tick for one_round in batch for tick in one_round])
        await store.prune({"BTC", "ETH"}, day_end)


async def check_charts(store, series: list[Series]) -> None:
    for coin in series[:2]:
        for range_name in RANGES:
            got = await store.candles(coin.symbol, "usd", range_name, END)
            assert 0 < len(got) <= MAX_POINTS, (coin.symbol, range_name, len(got))
            assert [c.start for c in got] == sorted({c.start for c in got})
            seconds = got[0].seconds
            span = SPANS.get(range_name, (END - START, 2 * DAY))[0]
            assert seconds == SPANS.get(range_name, (0, 2 * DAY))[1]
            assert got[0].start <= END - span < got[0].start + seconds  # covers the range, not more
            assert got[-1].start <= END < got[-1].start + seconds
            for candle in got:  # first, last, high and low of each bucket, exactly
                assert candle == coin.expected(candle.start, seconds), (coin.symbol, range_name, candle)
        assert await store.earliest(coin.symbol, "usd") == int(coin.times[0])  # to the second
        last = coin.times[-1]
        assert await store.price_at(coin.symbol, "usd", last - 5, 10) == coin.prices[-1]
        # A year ago only hourly buckets remain: the close of the hour nearest, within 10 % of the span.
        year_ago = END - 365 * DAY
        got = await store.price_at(coin.symbol, "usd", year_ago, 0.1 * 365 * DAY)
        hour = coin.expected(int(year_ago // 3600 * 3600), 3600)
        assert hour is not None and got == hour.close
    gone, left = series[2], series[3]
    assert await store.earliest(gone.symbol, "usd") is None
    assert await store.candles(gone.symbol, "usd", "max", END) == []
    assert await store.earliest(left.symbol, "usd") == int(left.times[0])


@pytest.mark.parametrize("kind", [b for b in BACKENDS if b != "sqlite"])  # SQLite: the test below
async def test_a_year_and_a_half(kind, tmp_path):
    store, server = await open_backend(kind, tmp_path)
    series = coins()
    try:
        await simulate(store, series)
        await check_charts(store, series)
    finally:
        await store.close()
        if server is not None:
            server.stop()


async def test_a_year_and_a_half_in_sqlite_stays_small_and_survives_a_restart(tmp_path):
    path = tmp_path / "history.sqlite3"
    store = await SqliteHistory.open(path)
    series = coins()
    await simulate(store, series)
    await store.close()
    size = os.path.getsize(path)
    assert not os.path.exists(f"{path}-wal") or os.path.getsize(f"{path}-wal") == 0
    assert size <= 3 * SQLITE_BYTES_PER_SERIES, size  # BTC, ETH and LEFT remain
    with sqlite3.connect(path) as db:  # every tier within its age; GONE forgotten
        counts = dict(
            db.execute(
                "SELECT tier, count(*) FROM buckets JOIN series ON series.id = buckets.series "
                "WHERE symbol = 'BTC' GROUP BY tier"
            ).fetchall()
        )
        raw = db.execute("SELECT count(*) FROM ticks JOIN series ON series.id = ticks.series WHERE symbol = 'BTC'")
        assert raw.fetchone()[0] <= 2 * DAY / 60 + 1
        assert counts[300] <= 14 * 288 + 1 and counts[3600] <= 366 * 24 + 1 and counts[DAY] == 549
        assert {s for (s,) in db.execute("SELECT symbol FROM series")} == {"BTC", "ETH", "LEFT"}
    reopened = await SqliteHistory.open(path)
    try:
        await check_charts(reopened, series)
    finally:
        await reopened.close()
