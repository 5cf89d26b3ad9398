"""The in-memory store's bound: the oldest fine points go first, the coarser buckets keep their aggregate."""

from __future__ import annotations

from tests.history.simulation import Series
from ticker.history.memory import MemoryHistory
from ticker.history.rollup import DAY

DAY0 = 20_416 * DAY


async def test_a_limited_store_drops_the_oldest_fine_points_and_keeps_the_aggregates():
    store = MemoryHistory(limit=500)
    coins = [Series("BTC", 90_000.0, seed=1), Series("ETH", 3_000.0, seed=2)]
    for minute in range(3 * 24 * 60):  # three days, a quote a minute for each coin
        await store.append([coin.quote(DAY0 + minute * 60 + 0.5) for coin in coins])
    assert len(store) <= 3 * 500 + 2 * 3  # raw, 5-minute and hourly at most 500 each; 3 days
    now = DAY0 + 3 * DAY
    for coin in coins:
        assert await store.price_at(coin.symbol, "usd", coin.times[-1], 0) == coin.prices[-1]
        assert await store.price_at(coin.symbol, "usd", coin.times[0], 0) is None  # an old raw quote: gone
        week = await store.candles(coin.symbol, "usd", "7d", now)  # 30-minute buckets from the 5-minute tier
        assert len(week) < 3 * 48 and week[-1] == coin.expected(week[-1].start, 1800)  # the newest only
        month = await store.candles(coin.symbol, "usd", "30d", now)  # 2-hour buckets from the hourly tier
        assert month == [coin.expected(DAY0 + h * 7200, 7200) for h in range(36)]
        assert await store.candles(coin.symbol, "usd", "1y", now) == [
            coin.expected(DAY0 + d * DAY, DAY) for d in range(3)
        ]
