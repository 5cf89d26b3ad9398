"""Backfill: a new coin's past, from the providers' keyless candle endpoints, off the price path.

For each configured coin and currency whose recorded history does not reach back yet (the store's
`earliest`), it fetches hourly candles for the last 30 days, then daily candles for the year, and
hands them to the history store (`add_candles` keeps only buckets older than what it already has,
so the hourly ones go first and the daily ones only fill the months before them).

Sources are asked in order: the providers that serve candles in failover order (the exchanges,
keyless with room in their limits), CoinGecko last and only where its budget allows (keyless: 5
requests a minute, one of which the price rounds keep; a demo key's even daily share of 10,000 a
month is used up by price rounds at one a minute, so then it backfills nothing). Requests per
span: Kraken 1 (at most its 720 most recent buckets), Binance 1 (up to 1,000 klines), Coinbase 1
per 300 buckets (3 hourly, 2 daily), CoinGecko 1.

Like side_work.py it runs as its own task beside the poller, never inside a round, one pass per
interval with a time budget. Every request is a side request through the provider's session: it
obeys the provider's holds (Retry-After, blocks, backoff), spends only the budget the price rounds
leave over, and a 429 it meets holds that provider for its price requests too (the session's
existing behaviour). A provider told to wait is skipped for the rest of the pass and the next
source asked; other coins go on. A span that got candles, or that every source answered without
any, is not asked again; after a restart a history that already reaches back counts as done (a
coin younger than a year is asked once more per start). Only the instance that polls does it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin
from ticker.plausibility import USD_MAX, USD_MIN
from ticker.providers.base import CandleSource
from ticker.providers.manners import RATE_LIMIT_STATUSES
from ticker.rates import FALLBACK_USD_PRICES, usd_value

logger = logging.getLogger(__name__)

DAY = 86_400


@dataclass(frozen=True)
class Span:
    """What one backfill step fetches: buckets of `seconds`, reaching `back` seconds into the past."""

    name: str
    seconds: int
    back: int


HOURLY = Span("hourly", 3_600, 30 * DAY)  # 720 buckets: Kraken's whole window, one Binance request
DAILY = Span("daily", DAY, 365 * DAY)  # CoinGecko's keyless reach
SPANS = (HOURLY, DAILY)
REACH_SLACK = 2 * DAY  # a history starting this close to a span's start already reaches back
RETRY_SECONDS = 3600.0  # a source that failed otherwise (unknown pair, HTTP 500, bad body) is asked again after


class CandleStore(Protocol):
    """The part of the history store (ticker/history/base.py HistoryStore) the backfill uses."""

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int: ...

    async def earliest(self, symbol: str, currency: str) -> float | None: ...


@dataclass
class _Job:
    """One span of one coin in one currency, and what each source said about it."""

    coin: Coin
    currency: str
    span: Span
    sources: list[CandleSource]
    retry_at: dict[str, float] = field(default_factory=dict)  # source -> monotonic; inf: it has nothing
    checked: bool = False  # the store's earliest point was looked at
    done: bool = False

    @property
    def label(self) -> str:
        return f"{self.coin.symbol}/{self.currency} {self.span.name}"


def candle_sources(providers: Iterable[object]) -> list[CandleSource]:
    """The providers that serve candles, in their failover order, CoinGecko last."""
    sources = [provider for provider in providers if isinstance(provider, CandleSource)]
    return sorted(sources, key=lambda source: source.name == "coingecko")  # stable: the rest keep their order


class Backfill:
    def __init__(
        self,
        sources: Sequence[CandleSource],
        coins: Sequence[Coin],
        currencies: Sequence[str],
        store: CandleStore,
        *,
        interval: float,
        time_budget: float,
        enabled: bool = True,
        active: Callable[[], bool] = lambda: True,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        """`sources` in the order to ask them (see `candle_sources`); `enabled`: `history.backfill`."""
        self.enabled = enabled
        self.active = active  # whether this instance polls (and so backfills) now
        self._store = store
        self._interval = interval
        self._time_budget = time_budget
        self._wall = wall
        self._monotonic = monotonic
        self._sleep = sleep
        self._jobs = [
            _Job(coin, currency, span, [s for s in sources if s.has_candles(coin, currency)])
            for span in SPANS
            for coin in coins
            if not coin.is_static
            for currency in currencies
        ]
        for job in self._jobs:
            if not job.sources:
                job.done = True  # nobody has this coin's past in this currency: its history starts with ticker's
                logger.debug("backfill: no candle source for %s", job.label)
        self.passes = 0

    @property
    def pending(self) -> int:
        """Spans still to fetch."""
        return sum(not job.done for job in self._jobs)

    async def run_forever(self) -> None:
        """A pass every interval, half an interval after a round would start, until every span is done."""
        if not self.enabled:
            return
        await self._sleep(self._interval / 2)
        while self.pending:
            if self.active():
                try:
                    await self.run_once()
                except Exception:
                    logger.exception("backfill pass failed unexpectedly (prices are unaffected)")
            await self._sleep(self._interval)
        logger.info("backfill: done")

    async def run_once(self) -> None:
        """One pass over the spans still to do, hourly ones first; cut off after the time budget."""
        if not self.enabled:
            return
        waiting: set[str] = set()  # sources told to wait (held, budget spent): skipped for the rest of the pass
        stored: list[str] = []
        with anyio.move_on_after(self._time_budget) as scope:
            for job in self._jobs:
                if not job.done and not self._waits_for_hourly(job):
                    await self._work(job, waiting, stored)
        if scope.cancelled_caught:
            logger.debug("backfill pass cut off after %.0f s; it goes on next pass", self._time_budget)
        if stored:
            logger.info("backfill: stored past prices: %s", "; ".join(stored))
        self.passes += 1

    def _waits_for_hourly(self, job: _Job) -> bool:
        """Daily buckets wait for the hourly ones: the store keeps only what is older than what it has."""
        return job.span is not HOURLY and any(
            not other.done and other.span is HOURLY and other.coin is job.coin and other.currency == job.currency
            for other in self._jobs
        )

    async def _work(self, job: _Job, waiting: set[str], stored: list[str]) -> None:
        now = self._wall()
        if not job.checked:
            earliest = await self._store.earliest(job.coin.symbol, job.currency)
            job.checked = True
            if earliest is not None and earliest <= now - job.span.back + REACH_SLACK:
                job.done = True  # the recorded history reaches back already (a restart, or a month of ticks)
                return
        seconds = job.span.seconds
        since = int(now - job.span.back) // seconds * seconds
        for source in job.sources:
            if source.name in waiting or job.retry_at.get(source.name, 0.0) > self._monotonic():
                continue
            try:
                candles = await source.candles(job.coin, job.currency, seconds, since, int(now))
            except ProviderError as err:
                if _told_to_wait(err):
                    waiting.add(source.name)
                    logger.debug("backfill: %s: %s; next source", source.name, err.message)
                else:
                    job.retry_at[source.name] = self._monotonic() + RETRY_SECONDS
                    logger.info(
                        "backfill: %s: no %s candles (%s); trying the next source",
                        source.name,
                        job.label,
                        err.message,
                        extra={"once": ("backfill", source.name, job.coin.symbol, job.currency)},
                    )
                continue
            candles = _plausible(candles, job.currency)
            if not candles:
                job.retry_at[source.name] = math.inf
                continue
            kept = await self._store.add_candles(job.coin.symbol, job.currency, candles)
            job.done = True
            stored.append(f"{job.label} from {source.name} ({kept} of {len(candles)} kept)")
            return
        if all(job.retry_at.get(source.name) == math.inf for source in job.sources):
            job.done = True  # every source answered, and none has this past
            logger.info("backfill: no source has %s candles; history starts with ticker's own", job.label)


def _told_to_wait(err: ProviderError) -> bool:
    """Held, backing off, over budget or rate-limited: the provider is fine, just not now."""
    return err.held or err.over_budget or err.retry_after is not None or err.status in RATE_LIMIT_STATUSES


def _plausible(candles: list[Candle], currency: str) -> list[Candle]:
    """The candles whose high and low are plausible prices (the gate's USD range); the others dropped, logged."""
    kept = []
    for candle in candles:
        values = [
            usd_value(price, currency, btc_usd=FALLBACK_USD_PRICES["btc"], eth_usd=FALLBACK_USD_PRICES["eth"])
            for price in (candle.low, candle.high)
        ]
        if all(value is not None and USD_MIN <= value <= USD_MAX for value in values):
            kept.append(candle)
    if len(kept) < len(candles):
        logger.warning(
            "backfill: dropped %d implausible candles in %s",
            len(candles) - len(kept),
            currency,
            extra={"once": ("backfill", "implausible", currency)},
        )
    return kept
