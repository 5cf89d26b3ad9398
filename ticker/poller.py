"""The poller: the only code that asks upstream for prices, and the only writer of snapshots.

One round asks the providers in failover order for every coin and currency
still missing, merges what came back over the last snapshot (so a failed
coin keeps its last good quote and ages honestly), and puts the result in
the store. A provider's failure is logged when it starts and when it ends,
never once per round.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from types import MappingProxyType

import anyio

from ticker.exceptions import ProviderError
from ticker.models import Coin, ProviderStatus, Quote, Snapshot, utcnow
from ticker.providers import Provider
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
    ) -> None:
        self._providers = list(providers)
        self._store = store
        self._coins = [coin for coin in coins if not coin.is_static]
        self._currencies = list(currencies)
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
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
        statuses = dict(previous.providers) if previous else {}
        missing = set(wanted)
        for provider in self._providers:
            coins = [
                c
                for c in self._coins
                if provider.supports(c) and any((c.symbol, cur) in missing for cur in self._currencies)
            ]
            if not coins:
                continue
            currencies = [cur for cur in self._currencies if any((c.symbol, cur) in missing for c in coins)]
            got = await self._ask(provider, coins, currencies, statuses, now)
            for quote in _valid(got, missing, now):
                quotes[(quote.symbol, quote.currency)] = quote
                missing.discard((quote.symbol, quote.currency))
        self._log_missing(missing)
        snapshot = Snapshot(now, MappingProxyType(quotes), MappingProxyType(statuses))
        await self._store.put(snapshot)
        self.rounds += 1
        logger.debug(
            "round %d: %d of %d prices fresh, %.3f s",
            self.rounds,
            len(wanted) - len(missing),
            len(wanted),
            (self._clock() - now).total_seconds(),
        )
        return snapshot

    async def _ask(
        self,
        provider: Provider,
        coins: list[Coin],
        currencies: list[str],
        statuses: dict[str, ProviderStatus],
        now: datetime,
    ) -> list[Quote]:
        before = statuses.get(provider.name)
        try:
            got = await provider.fetch(coins, currencies)
        except Exception as err:
            message = str(err) if isinstance(err, ProviderError) else f"{provider.name}: unexpected {err!r}"
            if before is None or before.state == "ok":
                if isinstance(err, ProviderError):
                    logger.warning("provider %s failing: %s", provider.name, err.message)
                else:
                    logger.exception("provider %s failed unexpectedly", provider.name)
            statuses[provider.name] = ProviderStatus("failing", before.last_success if before else None, message)
            return []
        if before is not None and before.state != "ok":
            logger.info("provider %s recovered", provider.name)
        statuses[provider.name] = ProviderStatus("ok", now, None)
        return got

    def _log_missing(self, missing: set[Pair]) -> None:
        symbols = frozenset(symbol for symbol, _ in missing)
        if symbols == self._missing_logged:
            return
        if symbols:
            logger.warning("no fresh price this round for %s", ", ".join(sorted(symbols)))
        else:
            logger.info("fresh prices for every coin again")
        self._missing_logged = symbols


def _valid(quotes: Iterable[Quote], wanted: set[Pair], now: datetime) -> Iterable[Quote]:
    """Quotes worth keeping: asked for, a finite positive price, a time not in the future."""
    for quote in quotes:
        if (quote.symbol, quote.currency) not in wanted:
            continue
        if not (isinstance(quote.price, float) and math.isfinite(quote.price) and quote.price > 0):
            logger.warning("%s: rejecting %s/%s price %r", quote.source, quote.symbol, quote.currency, quote.price)
            continue
        change = quote.change_24h_pct
        if change is not None and not math.isfinite(change):
            change = None
        updated = quote.updated_at if quote.updated_at is not None and quote.updated_at <= now else now
        yield Quote(quote.symbol, quote.currency, quote.price, change, updated, quote.source, quote.icon_url)
