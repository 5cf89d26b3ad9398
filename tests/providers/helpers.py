"""Build a provider the way runtime does: its own session (manners, budget, deadline) around a test client."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from ticker.providers.base import ProviderSettings
from ticker.providers.budget import RequestBudget
from ticker.providers.manners import Manners
from ticker.providers.session import UpstreamSession


def make_provider(
    cls: Any,
    client: httpx.AsyncClient,
    settings: ProviderSettings | None = None,
    *,
    budget: RequestBudget | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    interval: float = 60.0,
    timeout: float = 10.0,
) -> Any:
    manners = Manners(cls.name, interval=interval, rate_limit_hold=cls.RATE_LIMIT_HOLD, monotonic=monotonic)
    session = UpstreamSession(
        cls.name,
        client,
        manners,
        budget=budget,
        timeout=timeout,
        spacing=cls.REQUEST_SPACING,
        monotonic=monotonic,
        sleep=sleep,
    )
    return cls(session, settings or ProviderSettings())
