"""ProviderHealth: when a provider may be asked again, and what to tell /readyz and the logs.

The manners, in order of precedence:
- Retry-After wins: a provider that asked for N seconds gets no request for N seconds.
- Our own budget spent: skip until it refills (upstream is not at fault, nothing counts as a failure).
- Blocked (401/402/403/451: bad key, plan, firewall, geo-block): wait an hour; retrying sooner cannot help.
- Anything else: exponential backoff with jitter, capped at two intervals so a provider that comes
  back is used again within two intervals. After BREAKER_FAILURES failures in a row the circuit is
  open ("backoff"): the provider only gets a single probe per backoff period until one succeeds.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from ticker.exceptions import ProviderError
from ticker.models import ProviderStatus

logger = logging.getLogger(__name__)

BLOCKED_STATUSES = frozenset({401, 402, 403, 451})
BLOCKED_SECONDS = 3600.0
BREAKER_FAILURES = 5


class ProviderHealth:
    def __init__(
        self,
        name: str,
        *,
        interval: float,
        random_fraction: Callable[[], float] = random.random,
        status: ProviderStatus | None = None,
    ) -> None:
        self.name = name
        self._interval = interval
        self._random = random_fraction
        self.failures = 0
        self.next_try: datetime | None = None
        self.last_success = status.last_success if status else None
        self.last_error: str | None = None
        self._over_budget = False
        self._held = False  # waiting because we were told to (Retry-After, block, budget), not just backing off

    def state(self, now: datetime) -> str:
        """ok; failing (retried with backoff); backoff (told to wait, or circuit open after repeated failures)."""
        waiting = self.next_try is not None and self.next_try > now
        if (waiting and self._held) or self.failures >= BREAKER_FAILURES:
            return "backoff"
        return "failing" if self.failures else "ok"

    def status(self, now: datetime) -> ProviderStatus:
        return ProviderStatus(self.state(now), self.last_success, self.last_error)

    def may_ask(self, now: datetime) -> bool:
        return self.next_try is None or now >= self.next_try

    def succeeded(self, now: datetime) -> None:
        if self.failures:
            logger.info("provider %s recovered after %d failed attempts", self.name, self.failures)
        elif self._over_budget:
            logger.info("provider %s within its request budget again", self.name)
        self.failures = 0
        self._over_budget = False
        self._held = False
        self.next_try = None
        self.last_success = now
        self.last_error = None

    def failed(self, err: ProviderError, now: datetime) -> float:
        """Record a failure; returns the seconds the provider now waits."""
        if err.over_budget:
            if not self._over_budget:
                logger.warning("provider %s: %s; its coins fail over meanwhile", self.name, err.message)
            self._over_budget = True
            delay = float(err.retry_after or self._interval)
        else:
            self.failures += 1
            delay = self._delay(err)
            if self.failures == 1:
                logger.warning("provider %s failing: %s", self.name, err.message)
            elif self.failures == BREAKER_FAILURES:
                logger.warning(
                    "provider %s keeps failing (%s); probing it at most every %.0f s", self.name, err.message, delay
                )
            else:
                logger.debug("provider %s still failing: %s; next try in %.1f s", self.name, err.message, delay)
        self._held = err.over_budget or err.retry_after is not None or err.status in BLOCKED_STATUSES
        self.last_error = err.message
        self.next_try = now + timedelta(seconds=delay)
        return delay

    def _delay(self, err: ProviderError) -> float:
        if err.retry_after is not None:
            return float(err.retry_after)
        if err.status in BLOCKED_STATUSES:
            return BLOCKED_SECONDS
        base: float = min(self._interval * 2.0 ** (self.failures - 1), 2.0 * self._interval)
        return base * (0.5 + 0.5 * self._random())
