"""Manners: when a provider may be asked again, and what to tell /readyz and the logs.

In order of precedence:
- Retry-After wins: a provider that asked for N seconds (429/418, on any endpoint) gets no request
  for N seconds. The session records it the moment the answer arrives (`hold`), and a later success
  of a request already in flight does not clear it.
- Blocked (401/402/403/451, or a key error code such as CoinGecko 10010 in a 400: bad key, plan, firewall,
  geo-block): held for an hour; sooner cannot help.
- Our own budget spent: skip until it refills (upstream is not at fault, nothing counts as a failure).
- Anything else: exponential backoff with jitter, capped at two intervals so a provider that comes
  back is used again within two intervals. After BREAKER_FAILURES failures in a row the circuit is
  open ("backoff"): the provider only gets a single probe per backoff period until one succeeds.

Every deadline here is on the monotonic clock, so a step of the wall clock neither stretches nor
shortens a hold; wall time is used only for what is shown or saved (`retry_at`, `last_success`).
Saved holds are UTC deadlines, turned back into monotonic ones when loaded (`restore`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ticker.exceptions import ProviderError
from ticker.models import ProviderStatus, SavedManners

logger = logging.getLogger(__name__)

BLOCKED_STATUSES = frozenset({401, 402, 403, 451})
RATE_LIMIT_STATUSES = frozenset({429, 418})  # 418: Binance's "banned for ignoring 429s"
BLOCKED_SECONDS = 3600.0
# A key missing, refused or of the wrong kind: CoinGecko's 10002 (missing), 10010 and 10011 (a pro key on the
# demo host, or the reverse), docs.coingecko.com/docs/errors-and-rate-limits. They may come with HTTP 400, and
# block like a 401: asking again sooner than the hour cannot help.
KEY_ERROR_CODES = frozenset({10002, 10010, 10011})
BREAKER_FAILURES = 5
MAX_HOLD_SECONDS = 7 * 86400.0


class Manners:
    def __init__(
        self,
        name: str,
        *,
        interval: float,
        rate_limit_hold: float = 60.0,
        random_fraction: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        status: ProviderStatus | None = None,
    ) -> None:
        self.name = name
        self._interval = interval
        self._rate_limit_hold = rate_limit_hold  # for a 429 that carries no Retry-After
        self._random = random_fraction
        self._monotonic = monotonic
        self.wall = wall
        self.failures = 0
        self.hold_until = 0.0  # monotonic: told to wait (Retry-After, block)
        self.hold_reason: str | None = None
        self.backoff_until = 0.0  # monotonic: our own backoff after failures
        self.asked = False  # whether anything was ever asked of it (else it is "idle")
        self.last_success = status.last_success if status else None
        self.last_error: str | None = status.last_error if status else None
        self._over_budget = False

    # -- when may it be asked -------------------------------------------------------------------

    def wait_seconds(self) -> float:
        """0 when a request may be sent now, else the seconds until one may."""
        now = self._monotonic()
        return max(self.hold_until - now, self.backoff_until - now, 0.0)

    def may_ask(self) -> bool:
        return self.wait_seconds() <= 0

    def held_seconds(self) -> float:
        """Seconds left of a hold we were told to keep (Retry-After or block); 0 if none."""
        return max(self.hold_until - self._monotonic(), 0.0)

    def hold(self, seconds: float, reason: str) -> None:
        """No request for `seconds`: the moment a Retry-After or block arrives, on any endpoint."""
        seconds = min(max(seconds, 0.0), MAX_HOLD_SECONDS)
        until = self._monotonic() + seconds
        if until <= self.hold_until:
            return
        if self.failures == 0 and self.held_seconds() <= 0:  # once per outage, like other failures
            logger.warning(
                "provider %s failing: %s; no request for %.0f s, its coins fail over", self.name, reason, seconds
            )
        else:
            logger.debug("provider %s still held: %s; no request for %.0f s", self.name, reason, seconds)
        self.hold_until = until
        self.hold_reason = reason
        self.last_error = reason

    def hold_for(self, err: ProviderError) -> bool:
        """Record the hold an error asks for (Retry-After, a rate-limit status, a block); True if it did."""
        if err.over_budget or err.held:
            return False
        if err.retry_after is not None:
            self.hold(float(err.retry_after), err.message)
        elif err.status in RATE_LIMIT_STATUSES:
            self.hold(self._rate_limit_hold, err.message)
        elif err.status in BLOCKED_STATUSES or err.code in KEY_ERROR_CODES:
            self.hold(BLOCKED_SECONDS, err.message)
        else:
            return False
        return True

    # -- what a round's outcome does ------------------------------------------------------------

    def succeeded(self) -> None:
        """Something was priced. Failures and backoff end; a hold from a sibling request stays."""
        if self.failures:
            logger.info("provider %s recovered after %d failed attempts", self.name, self.failures)
        elif self._over_budget:
            logger.info("provider %s within its request budget again", self.name)
        self.asked = True
        self.failures = 0
        self._over_budget = False
        self.backoff_until = 0.0
        self.last_success = datetime.fromtimestamp(self.wall(), UTC)
        if self.held_seconds() <= 0:
            self.last_error = None

    def failed(self, err: ProviderError) -> float:
        """Record a failed round (or request); returns the seconds the provider now waits."""
        if err.held:
            return self.wait_seconds()  # refused before sending: nothing new happened upstream
        self.asked = True
        if err.over_budget:
            if not self._over_budget:
                logger.warning("provider %s: %s; its coins fail over meanwhile", self.name, err.message)
            self._over_budget = True
            self.backoff_until = self._monotonic() + float(err.retry_after or self._interval)
            return self.wait_seconds()
        held = self.hold_for(err)  # logs the start of an outage itself
        self.failures += 1
        first = self.failures == 1
        self.last_error = err.message
        delay = self._backoff()
        if not held or (err.retry_after is None and err.status in RATE_LIMIT_STATUSES):
            # Our own backoff; a 429 that names no wait gets at least this too, so repeats slow us down.
            self.backoff_until = self._monotonic() + delay
        if first and not held:
            logger.warning("provider %s failing: %s", self.name, err.message)
        elif self.failures == BREAKER_FAILURES:
            logger.warning(
                "provider %s keeps failing (%s); probing it at most every %.0f s",
                self.name,
                err.message,
                max(delay, self.held_seconds()),
            )
        elif not first:
            logger.debug("provider %s still failing: %s; next try in %.1f s", self.name, err.message, delay)
        return self.wait_seconds()

    def _backoff(self) -> float:
        base: float = min(self._interval * 2.0 ** (self.failures - 1), 2.0 * self._interval)
        return base * (0.5 + 0.5 * self._random())

    # -- what others see ------------------------------------------------------------------------

    def state(self) -> str:
        """idle (never asked); ok; failing (retried with backoff); backoff (held, or circuit open)."""
        if self.held_seconds() > 0 or self.failures >= BREAKER_FAILURES:
            return "backoff"
        if self.failures:
            return "failing"
        return "ok" if self.asked else "idle"

    def status(self) -> ProviderStatus:
        wait = self.wait_seconds()
        # Rounded up to the second: what is shown and saved (whole seconds) is never earlier than the hold.
        retry_at = datetime.fromtimestamp(math.ceil(self.wall() + wait), UTC) if wait > 0 else None
        return ProviderStatus(self.state(), self.last_success, self.last_error, retry_at)

    def saved(self) -> SavedManners:
        """The hold as a UTC deadline, to survive a restart or a lease handover."""
        held = self.held_seconds()
        if held <= 0:
            return SavedManners()
        until = datetime.fromtimestamp(math.ceil(self.wall() + held), UTC)  # whole seconds when saved: round up
        return SavedManners(until, self.hold_reason or "held")

    def restore(self, saved: SavedManners) -> None:
        """Take over a hold saved by this or another instance."""
        if saved.hold_until is None:
            return
        seconds = min(saved.hold_until.timestamp() - self.wall(), MAX_HOLD_SECONDS)
        until = self._monotonic() + seconds
        if seconds > 0 and until > self.hold_until:
            logger.info("provider %s: keeping a saved hold (%s) for %.0f s more", self.name, saved.reason, seconds)
            self.hold_until, self.hold_reason = until, saved.reason or "held"
            self.last_error = self.hold_reason
