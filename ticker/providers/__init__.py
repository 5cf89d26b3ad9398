"""Upstream price APIs behind one small interface.

Adding a provider is one module with a class that satisfies `Provider` (and
the class attributes of `ProviderClass`; `UpstreamProvider` has the shared
part) plus one entry in `PROVIDERS`. Providers build requests and parse
bodies; their `UpstreamSession` sends every request and keeps the manners.
They translate every upstream failure into ProviderError, never touch the
store, and only the poller, its side work and the CLI's one-shot commands
call them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable

import anyio
import httpx

from ticker.providers.base import Provider, ProviderClass, ProviderSettings, UpstreamProvider
from ticker.providers.binance import Binance
from ticker.providers.budget import RequestBudget
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.coinpaprika import CoinPaprika
from ticker.providers.defillama import DefiLlama
from ticker.providers.geckoterminal import GeckoTerminal
from ticker.providers.kraken import Kraken
from ticker.providers.manners import Manners
from ticker.providers.session import UpstreamSession

__all__ = [
    "PROVIDERS",
    "TOKEN_PROVIDERS",
    "Provider",
    "ProviderClass",
    "ProviderSettings",
    "UpstreamProvider",
    "UpstreamSession",
    "budget_for",
    "build_provider",
]

PROVIDERS: dict[str, ProviderClass] = {
    "coingecko": CoinGecko,  # an aggregator: every coin, several currencies, one request
    "coinpaprika": CoinPaprika,  # an aggregator too, the natural fallback (20,000 requests a month)
    "kraken": Kraken,  # exchanges: a few large coins each, USD (USDT on Binance) only
    "coinbase": Coinbase,
    "binance": Binance,
    # DEX sources for tokens by contract address (chain + address) only, in this failover order: never
    # default providers, and a token uses them without their being listed in poller.providers.
    "geckoterminal": GeckoTerminal,
    "defillama": DefiLlama,
}
TOKEN_PROVIDERS: tuple[str, ...] = ("geckoterminal", "defillama")


def budget_for(
    name: str, settings: ProviderSettings, *, monotonic: Callable[[], float] = time.monotonic
) -> RequestBudget:
    """The configured limits, else the provider's published ones."""
    per_minute, per_month = PROVIDERS[name].default_limits(settings)
    return RequestBudget(
        settings.requests_per_minute or per_minute, settings.requests_per_month or per_month, monotonic=monotonic
    )


def build_provider(
    name: str,
    settings: ProviderSettings,
    client: httpx.AsyncClient,
    *,
    interval: float,
    timeout: float,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    random_fraction: Callable[[], float] = random.random,
) -> Provider:
    """One provider with its own session: its manners, its budget, the whole-request deadline."""
    cls = PROVIDERS[name]
    manners = Manners(
        name,
        interval=interval,
        rate_limit_hold=cls.RATE_LIMIT_HOLD,
        random_fraction=random_fraction,
        monotonic=monotonic,
        wall=wall,
    )
    session = UpstreamSession(
        name,
        client,
        manners,
        budget=budget_for(name, settings, monotonic=monotonic),
        timeout=timeout,
        spacing=cls.REQUEST_SPACING,
        monotonic=monotonic,
        sleep=sleep,
    )
    return cls(session, settings)
