"""`"top:N"` in market.coins: the N largest coins by market cap, a list that changes at run time.

The ranking comes from one provider (CoinGecko's `/coins/markets?order=market_cap_desc`, else
CoinPaprika's `/tickers` sorted by `rank`), asked hourly as side work through that provider's
session (`side=True`: only the budget the price rounds leave over). It gives provider ids, never
symbols to look up: a ranked coin carries the ranking provider's id, plus the other providers' ids
from the id table (providers/coin_ids.py) only where the table's id for the ranking provider is the
same coin. So a top coin the table does not know is priced by the ranking provider alone and does
not fail over.

Stablecoins (`market.top_skip_stablecoins`) are recognised by the ranking provider's id in
`STABLECOINS`, a maintained list of the large fiat-pegged coins (no extra request per refresh; a
new stablecoin needs a line here).

`CoinList` is the one "current coin list" that the poller, side work, views, query validation and
OpenAPI read: the configured coins with the last ranking's coins at the `top:N` entry's place. The
ranking in use travels in each snapshot (`Snapshot.top`), so the views of every instance and a
restart during an outage show the same list as the poller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from ticker.exceptions import ProviderError
from ticker.models import Candidate, Coin, Snapshot, canonical_symbol
from ticker.providers.coin_ids import lookup

logger = logging.getLogger(__name__)

TOP_MAX = 100
RANKING_PROVIDERS = ("coingecko", "coinpaprika")  # in order of preference
REFRESH_SECONDS = 3600.0  # the ranking is asked hourly
RETRY_SECONDS = 600.0  # after a failed ranking request (or one the budget could not afford)
MARGIN = 20  # rows asked beyond N: room for skipped stablecoins, clashes and malformed rows

# Large fiat-pegged stablecoins by the ranking providers' ids, maintained by hand (the largest of
# CoinGecko's "Stablecoins" category, 2025). Tether's, USD Coin's and Dai's ids are the id table's;
# an id here that a provider spells otherwise only fails to match (that coin is then shown).
STABLECOINS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "coingecko": frozenset(
            "tether usd-coin dai ethena-usde usds first-digital-usd paypal-usd true-usd usdd binance-usd "
            "frax gemini-dollar paxos-standard euro-coin stasis-eurs ripple-usd liquity-usd crvusd gho".split()
        ),
        "coinpaprika": frozenset(
            "usdt-tether usdc-usd-coin dai-dai usde-ethena-usde usds-usds fdusd-first-digital-usd "
            "pyusd-paypal-usd tusd-trueusd usdd-usdd busd-binance-usd frax-frax gusd-gemini-dollar "
            "usdp-paxos-standard-token eurc-euro-coin eurs-stasis-eurs rlusd-ripple-usd lusd-liquity-usd "
            "crvusd-crvusd gho-gho".split()
        ),
    }
)


@dataclass(frozen=True)
class TopSettings:
    """`"top:N"` as configured: `count` (1..100) coins placed before the configured coin at `position`
    (an index into MarketSettings.coins; len(coins) = at the end), ranked by `source`."""

    count: int
    position: int
    source: str
    skip_stablecoins: bool = False


@runtime_checkable
class RankingSource(Protocol):
    """A provider that ranks coins by market cap: `count` rows, largest first (raises ProviderError)."""

    name: str

    async def ranking(self, count: int, currency: str, *, side: bool = True) -> list[Candidate]: ...


def ranked_coins(rows: Sequence[Candidate], top: TopSettings) -> tuple[Coin, ...]:
    """The first `top.count` usable coins of a ranking, largest first: rows without a rank, with a symbol
    ticker cannot show, or repeating a symbol already taken are dropped, and stablecoins when asked."""
    coins: list[Coin] = []
    seen: set[str] = set()
    for row in sorted((r for r in rows if r.rank is not None), key=lambda r: r.rank or 0):
        symbol = canonical_symbol(row.symbol)
        if not _usable_symbol(symbol) or symbol in seen:
            continue
        if top.skip_stablecoins and row.id in STABLECOINS.get(row.provider, frozenset()):
            continue
        seen.add(symbol)
        coins.append(ranked_coin(row))
        if len(coins) == top.count:
            break
    return tuple(coins)


def ranked_coin(row: Candidate) -> Coin:
    """A coin from a ranking row: the ranking provider's id, and the id table's others where it knows that id."""
    symbol = canonical_symbol(row.symbol)
    ids = {row.provider: row.id}
    known = lookup(symbol)
    if known is not None and known.ids.get(row.provider) == row.id:
        ids = dict(known.ids) | ids
    name = row.name.strip()[:60] or symbol
    return Coin(symbol, name, MappingProxyType(ids))


def _usable_symbol(symbol: str) -> bool:
    return 0 < len(symbol) <= 20 and symbol.replace("-", "").isalnum() and symbol.isascii()


class CoinList:
    """The current coins: the configured ones, and the ranking's at the `top:N` place (none yet: none).

    A ranked coin is left out when a configured coin has its symbol or the same id at the ranking provider
    (a listed coin is never repeated)."""

    def __init__(self, configured: Sequence[Coin], top: TopSettings | None = None) -> None:
        self.configured = tuple(configured)
        self.top = top
        self._cache: tuple[tuple[Coin, ...], tuple[Coin, ...]] = ((), self.configured)

    @property
    def dynamic(self) -> bool:
        return self.top is not None

    def resolve(self, ranked: Sequence[Coin]) -> tuple[Coin, ...]:
        ranked = tuple(ranked)
        if self.top is None or not ranked:
            return self.configured
        if self._cache[0] == ranked:
            return self._cache[1]
        symbols = {coin.symbol for coin in self.configured}
        ids = {coin.ids[self.top.source] for coin in self.configured if self.top.source in coin.ids}
        fresh = [c for c in ranked if c.symbol not in symbols and c.ids.get(self.top.source) not in ids]
        at = self.top.position
        resolved = (*self.configured[:at], *fresh, *self.configured[at:])
        self._cache = (ranked, resolved)
        return resolved

    def current(self, snapshot: Snapshot | None) -> tuple[Coin, ...]:
        """The coins as of this snapshot (its `top` is the ranking the poller used)."""
        return self.resolve(snapshot.top if snapshot is not None else ())

    def by_symbol(self, snapshot: Snapshot | None) -> Mapping[str, Coin]:
        return {coin.symbol: coin for coin in self.current(snapshot)}


class TopRanking:
    """Keeps the ranking fresh: one side request to `source` when due (hourly; after a failure, when the
    provider's wait is over or in RETRY_SECONDS). `latest` is None until a ranking arrived."""

    def __init__(
        self,
        source: RankingSource,
        top: TopSettings,
        currency: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.top = top
        self._currency = currency
        self._monotonic = monotonic
        self._due = 0.0
        self.latest: tuple[Coin, ...] | None = None
        self.requests = 0

    async def refresh(self) -> bool:
        """Ask for the ranking if it is due; True when `latest` changed."""
        now = self._monotonic()
        if now < self._due:
            return False
        self.requests += 1
        try:
            rows = await self.source.ranking(self.top.count + MARGIN, self._currency, side=True)
        except ProviderError as err:
            wait = max(err.retry_after or 0.0, RETRY_SECONDS)
            self._due = now + wait
            logger.info("top:%d: ranking not refreshed (%s); trying again in %.0f s", self.top.count, err.message, wait)
            return False
        self._due = now + REFRESH_SECONDS
        coins = ranked_coins(rows, self.top)
        if not coins:
            logger.warning(
                "top:%d: %s answered a ranking without usable coins; keeping the last", self.top.count, self.source.name
            )
            return False
        changed = coins != self.latest
        if changed and self.latest is not None:
            logger.info("top:%d now %s", self.top.count, ", ".join(c.symbol for c in coins))
        self.latest = coins
        return changed
