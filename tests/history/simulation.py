"""A year and a half of quotes on a fake clock, for the simulation test and the benchmark.

Realistic where it shows (a quote a minute for the last 48 hours), coarser where only buckets remain
(every 100 s up to 14 days back, every 20 minutes up to a year, every 4 hours before), so every bucket
of every tier still holds several quotes while the whole run appends about 40,000 quotes a coin.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ticker.history.base import Tick
from ticker.history.rollup import DAY
from ticker.models import Candle

CADENCE = ((2 * DAY, 60.0), (14 * DAY, 100.0), (366 * DAY, 1200.0), (math.inf, 4 * 3600.0))  # (age up to, step)


def step_at(age: float) -> float:
    return next(step for limit, step in CADENCE if age <= limit)


@dataclass
class Series:
    """One coin's generated quotes, kept for computing what each chart bucket must show."""

    symbol: str
    price: float
    seed: int
    until: float = math.inf  # removed from the config at this time: no quotes after it
    times: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def quote(self, at: float) -> Tick | None:
        if at >= self.until:
            return None
        self.price *= math.exp(self._rng.gauss(0, 0.004))
        self.times.append(at)
        self.prices.append(self.price)
        return Tick(self.symbol, "usd", at, self.price)

    def expected(self, start: int, seconds: int) -> Candle | None:
        """The candle of [start, start + seconds), straight from the quotes."""
        lo, hi = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times, start + seconds)
        inside = self.prices[lo:hi]
        if not inside:
            return None
        return Candle(start, seconds, inside[0], max(inside), min(inside), inside[-1])


def rounds(start: float, end: float) -> Iterator[float]:
    """The times of the rounds from `start` to `end`, at the cadence of their age at `end`."""
    at = start
    while at <= end:
        yield at
        at += step_at(end - at)


def days(start: float, end: float, coins: Sequence[Series]) -> Iterator[tuple[float, list[list[Tick]]]]:
    """Each simulated day: its end and its rounds (each round: a quote of every coin still configured)."""
    day_end = start + DAY
    batch: list[list[Tick]] = []
    for at in rounds(start, end):
        while at >= day_end:
            yield day_end, batch
            batch, day_end = [], day_end + DAY
        batch.append([t for coin in coins if (t := coin.quote(at + 0.5)) is not None])
    yield end, batch
