"""The live quotes of one instance: ticks from the exchange streams, gated and merged, with a version.

On the instance that holds the streams (the lease holder, or a single
instance) every tick passes the same plausibility gate as polled quotes
(plausibility.py) against the last good price (the last live one, else the
snapshot's), then joins that pair's quote: price, rolling 24 h change,
time and source change; market cap, volume, rank and the longer changes stay
as the poller last had them. Followers take the holder's accepted quotes
from Redis (relay.py) through `accept`, without a second gate.

When several streams list a coin, the first of `live.providers` that is up
and has ticked that pair within `fresh_seconds` owns it; the others' ticks
for it are dropped (no flicker between exchanges' prices) until the owner
goes down or quiet. The poller asks `covered()` each round and leaves those
pairs to the streams; a pair stops being covered when its stream goes down
or quiet, so the poller serves it again within one interval.

Readers (the event streams of web/stream.py, the relay) remember `version`
and ask `changed_since(version)`; `wait_for_change` wakes them. A tick that
changes neither price nor change refreshes the time (coverage, staleness)
without waking anyone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import anyio

from ticker.models import Coin, Quote, Snapshot, iso, parse_iso, utcnow
from ticker.plausibility import Gate

Pair = tuple[str, str]  # (symbol, currency)
StreamStateName = Literal["up", "down"]


@dataclass(frozen=True)
class StreamState:
    """One exchange stream as /readyz shows it: `state` up or down since `since` (UTC), the coins it carries
    (our symbols), and why it is down (short, for people)."""

    state: StreamStateName
    since: datetime
    coins: tuple[str, ...] = ()
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "since": iso(self.since), "coins": list(self.coins), "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamState:
        """Raises ValueError, KeyError or TypeError on a damaged entry."""
        state = data["state"]
        if state not in ("up", "down"):
            raise ValueError(f"unknown stream state {state!r}")
        reason = data.get("reason")
        return cls(
            state,
            parse_iso(str(data["since"])),
            tuple(str(c) for c in data.get("coins", ())),
            reason if isinstance(reason, str) else None,
        )


class LiveQuotes:
    def __init__(
        self,
        coins: Iterable[Coin],
        *,
        preference: Sequence[str],
        snapshot: Callable[[], Snapshot | None],
        interval: float,
        fresh_seconds: float | None = None,
        max_jump_pct: float | None = 50.0,
        stale_after: float | None = 300.0,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`preference`: stream names, most preferred first (live.providers). `snapshot`: the current snapshot,
        whose quotes are the last good prices before a pair's first tick. `interval`: the poll interval; the
        gate's rounds last that long (a held jump is confirmed by the same stream a round later).
        `fresh_seconds` (default: the interval): how recent a pair's last tick must be for its stream to
        own and cover it."""
        self._preference = list(preference)
        self._snapshot = snapshot
        self._interval = interval
        self._fresh = interval if fresh_seconds is None else fresh_seconds
        self._clock = clock
        self._monotonic = monotonic
        # A jump one stream alone reports is never confirmed by that stream: while held, the pair is not
        # carried (the poller serves it), and another stream or the poller's price settles it.
        self._gate = Gate(coins, max_jump_pct=max_jump_pct, stale_after=stale_after, confirm_same_source=False)
        self._round_started: float | None = None
        self._quotes: dict[Pair, Quote] = {}
        self._changed: dict[Pair, int] = {}  # the version at which the pair's price or change last changed
        self._heard: dict[tuple[Pair, str], float] = {}  # (pair, stream) -> monotonic time of its last tick
        self._event = anyio.Event()
        self.version = 0
        self.streams: dict[str, StreamState] = {}
        self.ticks = 0  # ticks received (accepted or not), for /metrics

    # -- writers --------------------------------------------------------------------------------

    def apply(self, ticks: Sequence[Quote]) -> list[Quote]:
        """Gate and merge ticks from a stream of this instance; the quotes that changed, as merged."""
        now = self._clock()
        mono = self._monotonic()
        self._next_round(mono)
        self.ticks += len(ticks)
        changed: list[Quote] = []
        for tick in self._gate.screen(ticks, now):
            pair = (tick.symbol, tick.currency)
            owner = self._owner(pair, mono)
            self._heard[(pair, tick.source)] = mono
            if (
                owner is not None
                and self._rank(tick.source) > self._rank(owner)
                and pair not in self._gate.holding()  # while a jump is held, any stream may confirm it
            ):
                continue  # a more preferred stream carries this pair
            last = self._last_good(pair)
            admitted = self._gate.admit(tick, last, now)
            if admitted is None:
                continue  # an unconfirmed jump: the last good price stays
            merged = _merge(last, admitted)
            if self._store(pair, merged):
                changed.append(merged)
        if changed:
            self._wake()
        return changed

    def accept(self, quotes: Iterable[Quote]) -> None:
        """Quotes the lease holder accepted (relay.py), in the order it sent them: stored as they are. The
        holder's choice stands even when the exchange's own time says older (a preferred stream taking a pair
        back from another exchange whose clock runs ahead): its relay only ever sends its current quotes."""
        mono = self._monotonic()
        woke = False
        for quote in quotes:
            pair = (quote.symbol, quote.currency)
            self._heard[(pair, quote.source)] = mono
            woke = self._store(pair, quote) or woke
        if woke:
            self._wake()

    def set_stream(self, name: str, state: StreamState) -> None:
        """A stream's new state (its connection, or the holder's through the relay)."""
        self.streams[name] = state
        if state.state == "down":
            for key in [key for key in self._heard if key[1] == name]:
                del self._heard[key]

    def forget_streams(self) -> None:
        """No stream runs here any more (the lease moved on): nothing is covered until told again."""
        self.streams.clear()
        self._heard.clear()

    # -- readers --------------------------------------------------------------------------------

    def changed_since(self, version: int, currency: str | None = None) -> list[Quote]:
        """The quotes whose price or change changed after `version` (in `currency`, if given)."""
        return [
            self._quotes[pair]
            for pair, at in self._changed.items()
            if at > version and (currency is None or pair[1] == currency)
        ]

    async def wait_for_change(self, version: int) -> None:
        """Return once `version` is behind (at once if it already is)."""
        while self.version <= version:
            await self._event.wait()

    def latest(self) -> Mapping[Pair, Quote]:
        return self._quotes

    def covered(self) -> dict[Pair, Quote]:
        """The pairs a stream carries now (up, and ticked within `fresh_seconds`), with their live quotes:
        the poller leaves these out of its round."""
        mono = self._monotonic()
        return {pair: quote for pair, quote in self._quotes.items() if self._owner(pair, mono) is not None}

    def newer_than(self, snapshot: Snapshot | None) -> dict[Pair, Quote]:
        """What a page made from the snapshot lacks: the live quote of every pair a stream carries now (unless the
        snapshot has that very quote), and of other pairs where it is newer than the snapshot's.

        A carried pair's live quote wins whatever the times say: exchanges stamp their own clocks, a snapshot
        shared through Redis keeps whole seconds, and a preferred stream may take a pair back with a tick
        stamped a little before the other exchange's last one. Once a stream stops carrying a pair, the
        newer quote wins (the poller's, after the stream went down)."""
        quotes = snapshot.quotes if snapshot is not None else {}
        mono = self._monotonic()
        newer: dict[Pair, Quote] = {}
        for pair, quote in self._quotes.items():
            held = quotes.get(pair)
            if held is None or _older(held, quote) or (held != quote and self._owner(pair, mono) is not None):
                newer[pair] = quote
        return newer

    # -- inside ---------------------------------------------------------------------------------

    def _next_round(self, mono: float) -> None:
        if self._round_started is None or mono - self._round_started >= self._interval:
            self._round_started = mono
            self._gate.begin_round(self._quotes.values())

    def _owner(self, pair: Pair, mono: float) -> str | None:
        """The most preferred stream that is up and ticked this pair recently, or None (also while a jump of
        this pair is held: no stream carries it until another source has settled it)."""
        if pair in self._gate.holding():
            return None
        for name in self._preference:
            heard = self._heard.get((pair, name))
            state = self.streams.get(name)
            if heard is not None and mono - heard <= self._fresh and state is not None and state.state == "up":
                return name
        return None

    def _rank(self, name: str) -> int:
        return self._preference.index(name) if name in self._preference else len(self._preference)

    def _last_good(self, pair: Pair) -> Quote | None:
        live = self._quotes.get(pair)
        snapshot = self._snapshot()
        polled = snapshot.quotes.get(pair) if snapshot is not None else None
        if live is None:
            return polled
        if polled is not None and _older(live, polled):
            return polled
        return live

    def _store(self, pair: Pair, quote: Quote) -> bool:
        """Keep the quote; True (and a new version) when its price or change moved."""
        held = self._quotes.get(pair)
        self._quotes[pair] = quote
        if held is not None and held.price == quote.price and held.change_24h_pct == quote.change_24h_pct:
            return False
        self.version += 1
        self._changed[pair] = self.version
        return True

    def _wake(self) -> None:
        event, self._event = self._event, anyio.Event()
        event.set()


def _merge(base: Quote | None, tick: Quote) -> Quote:
    """The tick's price, 24 h change, time and source over what we knew of the pair (market figures stay)."""
    if base is None:
        return tick
    return replace(
        base,
        price=tick.price,
        # The stream's own rolling 24 h change, or none: never another source's figure beside this price.
        change_24h_pct=tick.change_24h_pct,
        updated_at=tick.updated_at,
        source=tick.source,
        icon_url=None,
        sparkline_7d=None,
        market=None,
    )


def _older(a: Quote, b: Quote) -> bool:
    """Whether `a` is older than `b` (a quote without a time counts as oldest)."""
    if a.updated_at is None:
        return b.updated_at is not None
    return b.updated_at is not None and a.updated_at < b.updated_at
