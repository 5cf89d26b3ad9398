"""Upstream price APIs behind one small interface.

Adding a provider is one module with a class that satisfies `Provider` (and
the class attributes of `ProviderClass`) plus one entry in `PROVIDERS`.
Providers translate every upstream failure into ProviderError; they never
touch the store, and only the poller (and the CLI's one-shot commands) call
them.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import httpx

from ticker.providers.base import Provider, ProviderClass, ProviderSettings
from ticker.providers.binance import Binance
from ticker.providers.budget import RequestBudget
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.coinpaprika import CoinPaprika
from ticker.providers.kraken import Kraken

if TYPE_CHECKING:
    from ticker.config import Settings

logger = logging.getLogger(__name__)

__all__ = ["PROVIDERS", "Provider", "ProviderClass", "ProviderSettings", "budget_for", "build_providers"]


PROVIDERS: dict[str, ProviderClass] = {
    "coingecko": CoinGecko,  # an aggregator: every coin, several currencies, one request
    "coinpaprika": CoinPaprika,  # an aggregator too, the natural fallback (20,000 requests a month)
    "kraken": Kraken,  # exchanges: a few large coins each, USD (USDT on Binance) only
    "coinbase": Coinbase,
    "binance": Binance,
}


def build_providers(settings: Settings, client: httpx.AsyncClient) -> list[Provider]:
    """The configured providers in failover order, sharing one HTTP client, each with its own budget."""
    providers: list[Provider] = []
    for name in settings.poller.providers:
        budget = budget_for(name, settings.provider(name))
        provider = PROVIDERS[name](client, settings.provider(name), budget=budget)
        _warn_if_over_budget(provider, budget, settings, primary=not providers)
        providers.append(provider)
    return providers


def _warn_if_over_budget(provider: Provider, budget: RequestBudget, settings: Settings, *, primary: bool) -> None:
    """Say at start when polling every round would ask more of a provider than its budget allows.

    A warning for the primary (it is asked every round); a note for fallbacks, asked only when needed.
    """
    coins = [coin for coin in settings.market.live_coins if provider.supports(coin)]
    per_round = math.ceil(len(coins) / provider.batch_size) if coins else 0
    rounds_per_minute = 60.0 / settings.poller.interval_seconds
    over = []
    if budget.per_minute is not None and per_round * rounds_per_minute > budget.per_minute:
        over.append(f"{per_round * rounds_per_minute:.1f}/min against {budget.per_minute:g}/min")
    if budget.per_day is not None and per_round * rounds_per_minute * 1440 > budget.per_day:
        over.append(f"{per_round * rounds_per_minute * 1440:.0f}/day against {budget.per_day:.0f}/day")
    if over:
        logger.log(
            logging.WARNING if primary else logging.INFO,
            "%s: asked every %g s round it would need %s; when it has to serve every round it will be "
            "asked less often (raise poller.interval_seconds or providers.%s.requests_per_minute/_per_month)",
            provider.name,
            settings.poller.interval_seconds,
            " and ".join(over),
            provider.name,
        )


def budget_for(name: str, settings: ProviderSettings) -> RequestBudget:
    """The configured limits, else the provider's published ones."""
    per_minute, per_month = PROVIDERS[name].default_limits(settings)
    return RequestBudget(settings.requests_per_minute or per_minute, settings.requests_per_month or per_month)
