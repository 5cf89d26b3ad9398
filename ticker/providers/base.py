"""What every provider is: the interface the poller calls, and the settings config hands it.

Config imports `ProviderSettings` from here; provider modules never import config.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from ticker.models import Coin, Quote
from ticker.providers.budget import RequestBudget


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str | None = None  # None: the provider's default for its plan
    api_key_env: str | None = None
    plan: str | None = None
    requests_per_minute: float | None = None  # None: the provider's published limit for its plan
    requests_per_month: float | None = None  # None: the provider's published monthly cap, if any

    def api_key(self) -> str | None:
        """Keys live only in the environment, read when a client is built."""
        return os.environ.get(self.api_key_env) or None if self.api_key_env else None


class Provider(Protocol):
    name: str
    batch_size: int  # ids per upstream request

    def supports(self, coin: Coin) -> bool:
        """Whether this provider can price the coin (it has an id for it)."""
        ...

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        """Return current quotes for the coins it has ids for. Raise ProviderError on any upstream failure."""
        ...


class ProviderClass(Protocol):
    KEYLESS: bool  # usable with no API key: eligible as a default provider
    PLANS: tuple[str, ...]  # allowed `plan` values, the first is the default

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """The published (requests per minute, requests per month) for these settings' plan and key."""
        ...

    def __call__(
        self, client: httpx.AsyncClient, settings: ProviderSettings, *, budget: RequestBudget | None = None
    ) -> Provider: ...
