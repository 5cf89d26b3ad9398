"""The poller: the only code that asks upstream for prices, and the only writer of snapshots.

One round asks the providers in failover order for every coin and currency
still missing, merges what came back over the last snapshot (so a failed
coin keeps its last good quote and ages honestly), and puts the result in
the store. Providers that asked us to wait, or keep failing, are skipped
(health.py); their coins come from the next provider meanwhile. State
changes (failure, recovery, failover) are logged once, never once per round.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

import anyio

from ticker.exceptions import ProviderError
from ticker.history import record
from ticker.models import Coin, Quote, Snapshot, utcnow
from ticker.providers import Provider
from ticker.providers.manners import ProviderHealth
from ticker.store import SnapshotStore

logger = logging.getLogger(__name__)

Pair = tuple[str, str]  # (symbol, currency)


class Poller:
    def __init__(
        self,
        providers: Sequence[Provider],
        store: SnapshotStore,
        coins: Sequence[Coin],
        currencies: Sequence[str],
        *,
        interval: float,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        max_jump_pct: float | None = 50.0,
        random_fraction: Callable[[], float] = random.random,
        after_round: Callable[[Snapshot], Awaitable[object]] | None = None,
    ) -> None:
        self._providers = list(providers)
        self._store = store
        self._coins = [coin for coin in coins if not coin.is_static]
        self._currencies = list(currencies)
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._max_jump_pct = max_jump_pct
        self._random = random_fraction
        self._after_round = after_round
        self._health: dict[str, ProviderHealth] = {}
        self._sources: dict[str, str] = {}
        self._missing_logged: frozenset[str] = frozenset()
        self.rounds = 0

    async def run_forever(self) -> None:
        """Poll now, then every interval; only cancellation ends it."""
        while True:
            started = self._clock()
            try:
                await self.run_once()
            except Exception:
                logger.exception("poll round failed unexpectedly; keeping the last snapshot")
            elapsed = (self._clock() - started).total_seconds()
            await self._sleep(max(self._interval - elapsed, 0.0))

    async def run_once(self) -> Snapshot:
        now = self._clock()
        previous = self._store.current
        wanted: set[Pair] = {(coin.symbol, cur) for coin in self._coins for cur in self._currencies}
        quotes = {pair: quote for pair, quote in (previous.quotes.items() if previous else ()) if pair in wanted}
        missing = set(wanted)
        accepted: list[Quote] = []
        for provider in self._providers:
            health = self._health_of(provider.name, previous)
            coins = [
                c
                for c in self._coins
                if provider.supports(c) and any((c.symbol, cur) in missing for cur in self._currencies)
            ]
            if not coins or not health.may_ask(now):
                continue
            currencies = [cur for cur in self._currencies if any((c.symbol, cur) in missing for c in coins)]
            try:
                got = await provider.fetch(coins, currencies)
            except ProviderError as err:
                health.failed(err, now)
                continue
            except Exception as err:
                if health.failures == 0:
                    logger.exception("provider %s failed unexpectedly", provider.name)
                health.failed(ProviderError(provider.name, f"unexpected {type(err).__name__}: {err}"), now)
                continue
            health.succeeded(now)
            for quote in _valid(got, missing, now):
                pair = (quote.symbol, quote.currency)
                held = quotes.get(pair)
                missing.discard(pair)
                if held is not None and _newer(held, quote):
                    continue  # a fallback's older price never replaces a newer one we hold
                self._check_jump(held, quote)
                quotes[pair] = quote
                accepted.append(quote)
        self._log_sources(quotes, wanted - missing)
        self._log_missing(missing)
        statuses = {name: health.status(now) for name, health in self._health.items()}
        snapshot = Snapshot(
            now,
            MappingProxyType(quotes),
            MappingProxyType(statuses),
            history=record(previous.history if previous else {}, accepted, self._currencies[0]),
            icons=_icons(previous.icons if previous else {}, accepted),
        )
        await self._store.put(snapshot)
        self.rounds += 1
        if self._after_round is not None:
            try:
                await self._after_round(snapshot)
            except Exception:
                logger.exception("after-round task failed (prices are unaffected)")
        logger.debug(
            "round %d: %d of %d prices fresh (%s), %.3f s",
            self.rounds,
            len(wanted) - len(missing),
            len(wanted),
            ", ".join(f"{name} {status.state}" for name, status in statuses.items()),
            (self._clock() - now).total_seconds(),
        )
        return snapshot

    def _health_of(self, name: str, previous: Snapshot | None) -> ProviderHealth:
        if name not in self._health:
            saved = previous.providers.get(name) if previous else None
            self._health[name] = ProviderHealth(
                name, interval=self._interval, random_fraction=self._random, status=saved
            )
        return self._health[name]

    def _check_jump(self, before: Quote | None, after: Quote) -> None:
        """Log (but keep) a price that moved more than max_jump_pct since the last good one."""
        if before is None or self._max_jump_pct is None:
            return
        jump = abs(after.price - before.price) / before.price * 100
        if jump > self._max_jump_pct:
            logger.warning(
                "%s/%s jumped %.0f%% in one round (%s %.8g -> %s %.8g); check the source",
                after.symbol,
                after.currency,
                jump,
                before.source,
                before.price,
                after.source,
                after.price,
            )

    def _log_sources(self, quotes: dict[Pair, Quote], fresh: set[Pair]) -> None:
        """One line when coins move to another provider (failover) or back."""
        sources = {symbol: quotes[(symbol, cur)].source for symbol, cur in sorted(fresh)}
        moved: dict[str, list[str]] = {}
        for symbol, source in sources.items():
            before = self._sources.get(symbol)
            if before is not None and before != source:
                moved.setdefault(f"{before} -> {source}", []).append(symbol)
        self._sources.update(sources)
        for change, symbols in moved.items():
            logger.info("failover: %s now from %s", ", ".join(symbols), change)

    def _log_missing(self, missing: set[Pair]) -> None:
        symbols = frozenset(symbol for symbol, _ in missing)
        if symbols == self._missing_logged:
            return
        if symbols:
            logger.warning("no fresh price this round for %s", ", ".join(sorted(symbols)))
        else:
            logger.info("fresh prices for every coin again")
        self._missing_logged = symbols


def _icons(known: Mapping[str, str], quotes: Iterable[Quote]) -> Mapping[str, str]:
    """Upstream icon URLs by symbol, for the icon cache to download once."""
    icons = dict(known)
    for quote in quotes:
        if quote.icon_url and quote.icon_url.startswith(("https://", "http://")) and len(quote.icon_url) <= 500:
            icons.setdefault(quote.symbol, quote.icon_url)
    return MappingProxyType(icons)


def _newer(held: Quote, fresh: Quote) -> bool:
    return held.updated_at is not None and fresh.updated_at is not None and held.updated_at > fresh.updated_at


def _valid(quotes: Iterable[Quote], wanted: set[Pair], now: datetime) -> Iterable[Quote]:
    """Quotes worth keeping: asked for, a finite positive price, a time not in the future."""
    for quote in quotes:
        if (quote.symbol, quote.currency) not in wanted:
            continue
        if not (isinstance(quote.price, float) and math.isfinite(quote.price) and quote.price > 0):
            logger.warning(
                "%s: rejecting %s/%s price %r",
                quote.source,
                quote.symbol,
                quote.currency,
                quote.price,
                extra={"once": (quote.source, quote.symbol, quote.currency, "rejected")},
            )
            continue
        change = quote.change_24h_pct
        if change is not None and not math.isfinite(change):
            change = None
        updated = quote.updated_at if quote.updated_at is not None and quote.updated_at <= now else now
        yield replace(quote, change_24h_pct=change, updated_at=updated)
