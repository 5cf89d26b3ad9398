"""What every provider is: the interface the poller calls, and the settings config hands it.

Config imports `ProviderSettings` from here; provider modules never import config. A provider
builds requests and parses bodies; its session (session.py) sends them and keeps its manners.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from ticker.models import Candle, Coin, Quote
from ticker.providers.session import UpstreamSession


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str | None = None  # None: the provider's default for its plan
    api_key_env: str | None = None
    plan: str | None = None
    requests_per_minute: float | None = None  # None: the provider's published limit for its plan
    requests_per_month: float | None = None  # None: the provider's published monthly cap, if any
    stream_url: str | None = None  # live WebSocket feed (exchanges only); None: the exchange's public one

    def api_key(self) -> str | None:
        """Keys live only in the environment, read when a client is built."""
        return os.environ.get(self.api_key_env) or None if self.api_key_env else None


class Provider(Protocol):
    name: str
    batch_size: int  # ids per upstream request
    session: UpstreamSession | None  # every request goes through it (None: a source that asks nobody)

    def supports(self, coin: Coin) -> bool:
        """Whether this provider can price the coin (it has an id for it)."""
        ...

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        """Return current quotes for the coins it has ids for. Raise ProviderError on any upstream failure."""
        ...


@runtime_checkable
class CandleSource(Protocol):
    """A provider that can also fetch past prices, as OHLC candles, from a keyless endpoint.

    Its candle requests go through its `session` as side requests (`side=True`): they obey the
    provider's holds and deadline, and spend only the budget the price rounds leave over.
    """

    name: str
    session: UpstreamSession | None

    def has_candles(self, coin: Coin, currency: str) -> bool:
        """Whether it can fetch this coin's past in this currency (it has a pair or an id for it)."""
        ...

    async def candles(self, coin: Coin, currency: str, seconds: int, since: int, until: int) -> list[Candle]:
        """The complete buckets of `seconds` (every source serves 3600 and 86400) that start at or after
        `since` and end by `until` (Unix seconds), oldest first, one per start; fewer where the upstream
        keeps less.

        Raises ProviderError on any upstream failure (unknown pair, rate limit, bad body), ValueError
        for a bucket length it does not serve.
        """
        ...


class ProviderClass(Protocol):
    KEYLESS: bool  # usable with no API key: eligible as a default provider
    PLANS: tuple[str, ...]  # allowed `plan` values, the first is the default

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """The published (requests per minute, requests per month) for these settings' plan and key."""
        ...

    RATE_LIMIT_HOLD: float  # seconds to hold after a 429 that carries no Retry-After
    REQUEST_SPACING: float  # seconds between request starts, where the upstream asks for pacing
    # The currencies (ours, lower-case) it quotes in; None: many, see the provider's docs. Config warns about a
    # market currency none of poller.providers quotes in (and the footer says why those rows are unavailable).
    CURRENCIES: frozenset[str] | None

    def __call__(self, session: UpstreamSession, settings: ProviderSettings) -> Provider: ...


class UpstreamProvider:
    """The shared part of every provider: its session, its base URL and which coins it has ids for."""

    name: str
    batch_size: int  # ids per upstream request
    KEYLESS: ClassVar[bool] = True
    PLANS: ClassVar[tuple[str, ...]] = ("public",)
    BASE_URLS: ClassVar[dict[str, str]]  # plan -> default base URL
    CURRENCIES: ClassVar[frozenset[str] | None]  # the currencies it quotes in (None: many); every provider sets it
    RATE_LIMIT_HOLD: ClassVar[float] = 60.0
    REQUEST_SPACING: ClassVar[float] = 0.0

    def __init__(self, session: UpstreamSession, settings: ProviderSettings) -> None:
        self.session: UpstreamSession | None = session
        self._session = session
        self._plan = settings.plan or self.PLANS[0]
        self._base_url = (settings.base_url or self.BASE_URLS[self._plan]).rstrip("/")
        self._headers = {"accept": "application/json"}

    def supports(self, coin: Coin) -> bool:
        return self.name in coin.ids
