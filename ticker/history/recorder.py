"""The poller's side of the history store: every accepted quote goes in, changes and sparklines come out.

Each round the poller hands over the quotes it accepted. The recorder
- appends them (every currency) to the store;
- fills the changes a provider left out, from the store: 1 h, 7 d and 30 d for every coin, and the rolling
  24 h for providers that give none (Kraken). A change is ours from the point nearest to that time ago,
  within 10 % of the span (CONTRACT.md "History, charts and market data"); until the history reaches back
  that far it stays None, never 0;
- keeps the sparklines of the default currency (7 days, from the store's 30-minute chart buckets, so
  backfilled and every provider's coins get one), re-read at most once per bucket;
- prunes the store once an hour (retention, and coins removed from the config).

A failing store never fails a round: the error is logged once per outage and the round goes on
without history.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

from ticker.exceptions import HistoryError
from ticker.history.base import HistoryStore, Tick
from ticker.models import Quote
from ticker.plausibility import CHANGE_MAX, CHANGE_MIN

logger = logging.getLogger(__name__)

HOUR, DAY = 3_600, 86_400  # seconds
TOLERANCE = 0.10  # of the span: how far from "that time ago" our reference point may lie
SPARKLINE_RANGE = "7d"
SPARKLINE_REFRESH = 1_800  # seconds: the chart bucket of a 7-day range; re-read no more often than that
PRUNE_EVERY = 3_600  # seconds
# Points per sparkline kept in the snapshot (which every round saves and shares): twice what the 64 px
# sparkline draws (render/sparkline.py), so a snapshot of 250 coins stays small.
SPARKLINE_POINTS = 84

Pair = tuple[str, str]
Points = tuple[tuple[int, float], ...]


class HistoryRecorder:
    """Feeds `store` from the poller's rounds and derives what needs history (see module docstring).

    `symbols`: the configured (non-static) coins, kept by prune; `currency`: the default currency, whose
    sparklines the snapshot carries. Times are Unix seconds taken from each round's `now`."""

    def __init__(self, store: HistoryStore, symbols: Sequence[str], currency: str) -> None:
        self.store = store
        self._symbols = tuple(symbols)
        self._currency = currency
        self._sparklines: dict[str, Points] = {}
        self._read_at: dict[str, float] = {}
        self._pruned_at: float | None = None
        self._failing = False

    async def record(self, accepted: Sequence[Quote], now: datetime) -> Sequence[Quote]:
        """Append this round's accepted quotes and return them with the changes filled in that their
        provider did not give. On a store failure: the quotes as they came."""
        moment = now.timestamp()
        ticks = [
            Tick(q.symbol, q.currency, (q.updated_at or now).timestamp(), q.price)
            for q in accepted
            if math.isfinite(q.price) and q.price > 0
        ]
        try:
            if ticks:
                await self.store.append(ticks)
            filled = [await self._with_changes(quote, moment) for quote in accepted]
            if self._pruned_at is None or moment - self._pruned_at >= PRUNE_EVERY:
                self._pruned_at = moment
                await self.store.prune(self._symbols, moment)
        except HistoryError as err:
            self._failed(err)
            return accepted
        self._recovered()
        return filled

    async def sparklines(self, previous: Mapping[str, Points], now: datetime) -> Mapping[str, Points]:
        """The 7-day sparkline points of every configured coin in the default currency, (bucket start in
        Unix seconds, close), oldest first; each re-read from the store once per 30-minute bucket. On a
        store failure the previous ones stay."""
        moment = now.timestamp()
        try:
            for symbol in self._symbols:
                read = self._read_at.get(symbol)
                if read is not None and moment - read < SPARKLINE_REFRESH and symbol in self._sparklines:
                    continue
                candles = await self.store.candles(symbol, self._currency, SPARKLINE_RANGE, moment)
                self._sparklines[symbol] = thin(tuple((c.start, c.close) for c in candles), SPARKLINE_POINTS)
                self._read_at[symbol] = moment
        except HistoryError as err:
            self._failed(err)
            return previous
        return MappingProxyType({symbol: points for symbol, points in self._sparklines.items() if points})

    async def _with_changes(self, quote: Quote, now: float) -> Quote:
        async def change(given: float | None, span: int) -> float | None:
            if given is not None:
                return given  # the provider's own figure wins
            then = await self.store.price_at(quote.symbol, quote.currency, now - span, span * TOLERANCE)
            return percent_change(then, quote.price)

        return replace(
            quote,
            change_1h_pct=await change(quote.change_1h_pct, HOUR),
            change_24h_pct=await change(quote.change_24h_pct, DAY),
            change_7d_pct=await change(quote.change_7d_pct, 7 * DAY),
            change_30d_pct=await change(quote.change_30d_pct, 30 * DAY),
        )

    def _failed(self, err: HistoryError) -> None:
        if not self._failing:
            logger.warning("price history unavailable, rounds go on without it: %s", err)
        self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            logger.warning("price history available again")
        self._failing = False


def percent_change(then: float | None, now: float) -> float | None:
    """(now / then - 1) in percent; None without a usable reference or outside the plausible range."""
    if then is None or not (math.isfinite(then) and then > 0 and math.isfinite(now) and now > 0):
        return None
    change = (now / then - 1.0) * 100.0
    return change if math.isfinite(change) and CHANGE_MIN <= change <= CHANGE_MAX else None


def thin(points: Points, limit: int) -> Points:
    """At most `limit` points, evenly spaced, the first and last kept."""
    if len(points) <= limit:
        return points
    stride = (len(points) - 1) / (limit - 1)
    return tuple(points[round(i * stride)] for i in range(limit))
