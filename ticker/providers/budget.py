"""RequestBudget: how many upstream requests a provider may still get, counted per request sent.

Every call counts against a provider's limits, errors included (CoinGecko
says so), so the budget is charged when a request is sent, not when it
succeeds. A per-minute limit is a sliding 60-second window; a monthly cap
(CoinPaprika's 20,000, CoinGecko demo's 10,000) is enforced as an even
daily share over a sliding 24 hours, so a long outage of the primary
cannot spend a fallback's whole month in a day.

Price rounds come first: side work (metadata, backfills) asks with a
`reserve`, the requests the next rounds will need within each window, and
is refused while granting it would eat into them: the side requests already
in a window plus this one may not exceed the limit less the reserve (and all
requests together never the limit). The rounds' own past requests are not
counted against the reserve a second time: at a steady rate the rounds in any
window are the reserve, so a monthly cap the rounds nearly fill still leaves
side work its small remainder. Restored (saved) requests count as round
requests: the overall limit still holds them.

Several instances polling on their own (Redis away, `cache.redis_fallback`)
share one upstream budget: `share(n)` divides each window by the instances
last seen and spaces requests evenly (5/min over 6 instances: one request
every 72 s each), so together they stay within it.

We keep our own sliding windows rather than a rate-limit library because
the windows must be saved into the snapshot file (memory mode) and a Redis
key (scale-out) as UTC times, restored across a restart or a lease handover,
and answer "how much is left after the next rounds' share", which neither
`limits`' moving window nor a token bucket exposes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

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
        self._sent: deque[float] = deque()  # every request in the longest window, monotonic seconds
        # Side requests (sent with a reserve) in each window, parallel to self._windows.
        self._side: list[deque[float]] = [deque() for _ in self._windows]
        self._instances = 1
        self._last: float | None = None  # the latest request, for spacing shared requests evenly
        self.spent = 0  # requests sent over the budget's life, for tests and metrics

    def share(self, instances: int) -> None:
        """Spend only 1/`instances` of each window, evenly spaced (1 = the whole budget)."""
        self._instances = max(int(instances), 1)

    @property
    def instances(self) -> int:
        return self._instances

    def _expire(self, now: float) -> None:
        longest = max((length for length, _, _ in self._windows), default=0.0)
        while self._sent and self._sent[0] <= now - longest:
            self._sent.popleft()
        for (length, _, sent), side in zip(self._windows, self._side, strict=True):
            while sent and sent[0] <= now - length:
                sent.popleft()
            while side and side[0] <= now - length:
                side.popleft()

    def wait_seconds(self, reserve: Iterable[int] | None = None) -> float:
        """0 if a request may go now, else how long until one may.

        `reserve` gives, per window (minute, then day), requests to leave unspent for price rounds.
        """
        now = self._monotonic()
        self._expire(now)
        reserved = None if reserve is None else list(reserve)
        wait = 0.0
        for index, (length, limit, sent) in enumerate(self._windows):
            allowed = max(limit // self._instances, 1)  # the spacing below keeps the fractional rate
            if len(sent) >= allowed:
                wait = max(wait, sent[len(sent) - allowed] + length - now)
            if reserved is not None:  # side work: what the next rounds need stays unspent
                side_allowed = allowed - (reserved[index] if index < len(reserved) else 0)
                if side_allowed <= 0:
                    return length  # nothing is left for this kind of request in a whole window
                side = self._side[index]
                if len(side) >= side_allowed:
                    wait = max(wait, side[len(side) - side_allowed] + length - now)
            if self._instances > 1 and self._last is not None:
                wait = max(wait, self._last + length * self._instances / limit - now)
        return max(wait, 0.0)

    def try_spend(self, reserve: Iterable[int] | None = None) -> bool:
        """Charge one request if the budget allows it now (leaving `reserve` unspent)."""
        if self.wait_seconds(reserve) > 0:
            return False
        now = self._monotonic()
        for (_, _, sent), side in zip(self._windows, self._side, strict=True):
            sent.append(now)
            if reserve is not None:
                side.append(now)
        self._sent.append(now)
        self._last = now
        self.spent += 1
        return True

    def reserve_for(self, per_round: int, interval: float) -> tuple[int, ...]:
        """Requests the price rounds need within each window: `per_round` every `interval` seconds."""
        return tuple(per_round * max(int(length // interval), 1) for length, _, _ in self._windows)

    def sent_at(self, wall: float) -> list[float]:
        """The requests still inside a window, as Unix times (for saving; `wall` is now in Unix seconds)."""
        now = self._monotonic()
        self._expire(now)
        return [round(wall - (now - moment), 3) for moment in self._sent]

    def restore(self, sent: Iterable[float], wall: float) -> None:
        """Take back requests saved by `sent_at` (by this or another instance), keeping what we already hold."""
        now = self._monotonic()
        saved = sorted(now - (wall - at) for at in sent if 0 <= wall - at)
        newest = saved[-1] if saved else float("-inf")
        moments = saved + [moment for moment in self._sent if moment > newest + 0.01]  # ours since the save
        self._sent = deque(moments)
        self._last = max(moments, default=self._last)
        for length, _, window in self._windows:
            window.clear()
            window.extend(moment for moment in moments if moment > now - length)
        self._expire(now)

    @property
    def limits(self) -> str:
        parts = [f"{limit}/{'min' if length == MINUTE else 'day'}" for length, limit, _ in self._windows]
        text = ", ".join(parts) or "unlimited"
        return f"{text}, shared by {self._instances} instances" if self._instances > 1 else text
