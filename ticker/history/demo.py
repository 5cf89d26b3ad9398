"""DemoHistory: a plausible made-up past for `ticker serve --demo`, computed on demand and never stored.

It follows the HistoryStore protocol read-only: `append`, `add_candles` and `prune` keep nothing, so
simulated prices never reach a real history file or Redis. The past is a deterministic function of
time: the log-price is a sum of value-noise octaves (periods of 5 minutes doubling up to about three
months, amplitudes growing with the square root of the period, as a random walk's do), seeded by the
coin's symbol. So every range agrees with every other (the 24 h chart is the last day of the 7 d
one), two runs draw the same charts, and the shape is the same in every currency. Each series ends
at the coin's current demo price (`current`, from the snapshot; else the demo table's starting
price), which anchors the level: price(t) = current * exp(v(t) - v(now)).

Coins the demo cannot price, and static coins, have no history. Stablecoins hover within a few
hundredths of a percent of their peg.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence

from ticker.history import rollup
from ticker.history.base import MAX_POINTS, Tick
from ticker.models import Candle, Coin
from ticker.providers.demo import BY_SYMBOL, DemoCoin, demo_coin
from ticker.rates import from_usd

DAY = 86_400
SPAN_DAYS = 730  # how far back the demo's past goes ("max")
DAILY_SIGMA = 0.035  # a crypto coin's typical daily move (log-price), a random walk's scale
STABLE_SIGMA = 0.0003  # a stablecoin's wobble around its peg, at every scale
FINEST = 300  # the shortest octave's period (seconds): finer than any chart bucket
OCTAVES = 15  # periods 300 s * 2**k: 5 minutes to about 3.3 months
_MASK = (1 << 64) - 1

Current = Callable[[str, str], float | None]  # (symbol, currency) -> the current price, if known


class DemoHistory:
    """Read-only simulated history for the configured coins (see the module docstring)."""

    def __init__(
        self, coins: Iterable[Coin], current: Current, *, seed: int = 2026, clock: Callable[[], float] = time.time
    ) -> None:
        self._coins: dict[str, DemoCoin] = {}
        for coin in coins:
            known = demo_coin(coin)
            if known is not None and not coin.is_static:
                self._coins[coin.symbol] = known
        self._current = current
        self._seed = seed
        self._clock = clock  # Unix seconds: "now" for price_at, which is not told it

    # ----------------------------------------------------------------- the interface (read-only)

    async def append(self, ticks: Sequence[Tick]) -> None:
        return None  # simulated: nothing is kept

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        return 0

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        """Buckets as rollup.plan would cut them for a store holding SPAN_DAYS of history."""
        anchor = self._anchor(symbol, currency)
        chart = rollup.plan(range, now, now - SPAN_DAYS * DAY)
        if anchor is None or chart is None:
            return []
        walk = self._walk(symbol, anchor, now)
        first = rollup.start_of(chart.since, chart.seconds)
        starts = _starts(first, int(now), chart.seconds)[-MAX_POINTS:]
        edges = [walk(start) for start in starts] + [walk(now)]  # each bucket's close is the next one's open
        return [self._candle(symbol, start, chart.seconds, edges[i], edges[i + 1]) for i, start in enumerate(starts)]

    async def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        anchor = self._anchor(symbol, currency)
        now = self._clock()
        if anchor is None or not math.isfinite(at) or not now - SPAN_DAYS * DAY <= at <= now:
            return None
        return self._walk(symbol, anchor, now)(at)

    async def earliest(self, symbol: str, currency: str) -> float | None:
        return None  # no fixed origin: the past always reaches SPAN_DAYS back from the time asked

    async def prune(self, keep: Collection[str], now: float) -> None:
        return None

    async def close(self) -> None:
        return None

    # ----------------------------------------------------------------- the walk

    def _anchor(self, symbol: str, currency: str) -> float | None:
        known = self._coins.get(symbol)
        if known is None:
            return None
        price = self._current(symbol, currency)
        if price is not None and math.isfinite(price) and price > 0:
            return price
        return from_usd(known.usd, currency, btc_usd=BY_SYMBOL["BTC"].usd, eth_usd=BY_SYMBOL["ETH"].usd)

    def _walk(self, symbol: str, anchor: float, now: float) -> Callable[[float], float]:
        """price(t) for this coin, equal to `anchor` at `now`."""
        known = self._coins[symbol]
        base = _seed_key(self._seed, symbol)
        octaves = 9 if known.stable else OCTAVES  # a peg does not wander: no long periods
        amplitudes = [_amplitude(known.stable, FINEST << k) for k in range(octaves)]
        level = _noise(base, now, amplitudes)
        return lambda t: anchor * math.exp(_noise(base, t, amplitudes) - level)

    def _candle(self, symbol: str, start: int, seconds: int, open_: float, close: float) -> Candle:
        """One bucket: open and close from the walk, high and low a seeded wick beyond them."""
        known = self._coins[symbol]
        spread = _amplitude(known.stable, seconds) * 0.6
        key = _seed_key(self._seed, f"{symbol}/{seconds}")
        high = max(open_, close) * math.exp(spread * abs(_unit(key ^ start)))
        low = min(open_, close) * math.exp(-spread * abs(_unit(key ^ (start * 0xC2B2AE3D27D4EB4F))))
        return Candle(start, seconds, open_, high, low, close)


def _starts(first: int, last: int, step: int) -> list[int]:
    """Bucket starts from `first` up to the bucket holding `last` (`range` is a parameter name above)."""
    return list(range(first, last + 1, step))


def _amplitude(stable: bool, period: float) -> float:
    """An octave's amplitude (log-price): a random walk's spread over the period, tamed for a peg."""
    if stable:
        return STABLE_SIGMA
    return DAILY_SIGMA * math.sqrt(period / DAY) * 0.6


def _noise(base: int, t: float, amplitudes: Sequence[float]) -> float:
    """The sum of value-noise octaves at time t: octave k interpolates seeded knots FINEST * 2**k apart."""
    total = 0.0
    for k, amplitude in enumerate(amplitudes):
        x = t / (FINEST << k)
        n = math.floor(x)
        key = base ^ (k * 0x9E3779B97F4A7C15)
        left, right = _unit(key ^ (n * 0xC2B2AE3D27D4EB4F)), _unit(key ^ ((n + 1) * 0xC2B2AE3D27D4EB4F))
        total += amplitude * (left + (right - left) * (x - n))
    return total


def _seed_key(seed: int, name: str) -> int:
    """64 bits from a seed and a name (two CRC-32s): where a series' knots start."""
    return (zlib.crc32(f"{seed}:{name}".encode()) << 32) | zlib.crc32(f"{name}:{seed}".encode())


def _unit(key: int) -> float:
    """A deterministic number in [-1, 1) for an integer, its low 64 bits mixed by splitmix64's finaliser."""
    z = (key + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return z / 2**63 - 1.0
