"""Side work: coin metadata, sparkline seeds and icons, off the price path.

It runs as its own background task beside the poller, never inside a round,
so a slow icon host or a metadata endpoint that hangs cannot delay prices.
A "top:N" ranking (ticker/top.py) is refreshed here too, first in a pass, and the first pass comes
at once while no ranking is known yet. Each pass has a time budget; its upstream requests go through the providers'
sessions (holds, budget, whole-request deadline) as side requests, which may
only spend the budget the price rounds leave over. Only the instance that
polls does it (the lease holder, or each instance polling on its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import anyio

from ticker.exceptions import ProviderError
from ticker.models import Coin, Snapshot
from ticker.providers import Provider
from ticker.top import TopRanking

logger = logging.getLogger(__name__)

METADATA_RETRY_SECONDS = 3600.0  # after a failed metadata refresh (or one the budget could not afford)


@runtime_checkable
class MetadataSource(Protocol):
    """A provider that also serves slow-changing metadata (icons, sparkline seeds)."""

    name: str
    metadata_every: float  # seconds between refreshes

    async def refresh_metadata(self, coins: Sequence[Coin], currency: str) -> None: ...


class SideWork:
    def __init__(
        self,
        providers: Sequence[Provider],
        coins: Sequence[Coin] | Callable[[], Sequence[Coin]],
        currency: str,
        *,
        ranking: TopRanking | None = None,
        icons: Callable[[Snapshot], Awaitable[object]] | None,
        current: Callable[[], Snapshot | None],
        interval: float,
        time_budget: float,
        active: Callable[[], bool] = lambda: True,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._sources = [p for p in providers if isinstance(p, MetadataSource)]
        self._coins = coins if callable(coins) else (lambda fixed=tuple(coins): fixed)
        self.ranking = ranking
        self._currency = currency
        self._icons = icons
        self._current = current
        self._interval = interval
        self._time_budget = time_budget
        self.active = active  # whether this instance polls (and so does side work) now
        self._monotonic = monotonic
        self._sleep = sleep
        self._due: dict[str, float] = {}
        self.passes = 0

    async def run_forever(self) -> None:
        """Pass after pass, each half an interval after a price round would start: prices go first."""
        if self.ranking is None or self.ranking.latest is not None:
            await self._sleep(self._interval / 2)
        while True:
            if self.active():
                try:
                    await self.run_once()
                except Exception:
                    logger.exception("side work failed unexpectedly (prices are unaffected)")
            await self._sleep(self._interval)

    async def run_once(self) -> None:
        """One pass: metadata that is due, then icons not held yet; cut off after the time budget."""
        with anyio.move_on_after(self._time_budget) as scope:
            if self.ranking is not None and self.active():
                await self.ranking.refresh()
            for source in self._sources:
                await self._refresh(source)
            snapshot = self._current()
            if self._icons is not None and snapshot is not None:
                await self._icons(snapshot)
        if scope.cancelled_caught:
            logger.debug("side work pass cut off after %.0f s; it goes on next pass", self._time_budget)
        self.passes += 1

    async def _refresh(self, source: MetadataSource) -> None:
        now = self._monotonic()
        if now < self._due.get(source.name, 0.0):
            return
        try:
            live = [coin for coin in self._coins() if not coin.is_static]
            if not any(source.name in coin.ids for coin in live):
                return  # none of its coins yet ("top:N" before its first ranked round): asked once they come
            await source.refresh_metadata(live, self._currency)
        except ProviderError as err:
            told = err.held or err.over_budget or err.retry_after is not None  # try again when the wait is over
            wait = max(err.retry_after or 0.0, self._interval) if told else METADATA_RETRY_SECONDS
            self._due[source.name] = now + wait
            logger.info("%s: metadata refresh not done (%s); trying again in %.0f s", source.name, err.message, wait)
            return
        self._due[source.name] = now + source.metadata_every
