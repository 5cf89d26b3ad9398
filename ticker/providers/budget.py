"""RequestBudget: how many upstream requests a provider may still get, counted per request sent.

Every call counts against a provider's limits, errors included (CoinGecko
says so), so the budget is charged when a request is sent, not when it
succeeds. A per-minute limit is a sliding 60-second window; a monthly cap
(CoinPaprika's 20,000, CoinGecko demo's 10,000) is enforced as an even
daily share over a sliding 24 hours, so a long outage of the primary
cannot spend a fallback's whole month in a day.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

MINUTE = 60.0
DAY = 86400.0
DAYS_PER_MONTH = 30.0


class RequestBudget:
    def __init__(
        self,
        per_minute: float | None,
        per_month: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.per_day = per_month / DAYS_PER_MONTH if per_month is not None else None
        self._windows: list[tuple[float, int, deque[float]]] = []
        if per_minute is not None:
            self._windows.append((MINUTE, max(int(per_minute), 1), deque()))
        if per_month is not None:
            self._windows.append((DAY, max(int(per_month / DAYS_PER_MONTH), 1), deque()))
        self._monotonic = monotonic
        self.spent = 0  # requests sent over the budget's life, for tests and metrics

    def _expire(self, now: float) -> None:
        for length, _, sent in self._windows:
            while sent and sent[0] <= now - length:
                sent.popleft()

    def wait_seconds(self) -> float:
        """0 if a request may go now, else how long until one may."""
        now = self._monotonic()
        self._expire(now)
        wait = 0.0
        for length, limit, sent in self._windows:
            if len(sent) >= limit:
                wait = max(wait, sent[len(sent) - limit] + length - now)
        return wait

    def try_spend(self) -> bool:
        """Charge one request if the budget allows it now."""
        if self.wait_seconds() > 0:
            return False
        now = self._monotonic()
        for _, _, sent in self._windows:
            sent.append(now)
        self.spent += 1
        return True

    @property
    def limits(self) -> str:
        parts = [f"{limit}/{'min' if length == MINUTE else 'day'}" for length, limit, _ in self._windows]
        return ", ".join(parts) or "unlimited"
