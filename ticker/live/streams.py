"""The exchange streams of this instance: one connection per exchange, only where this instance polls.

`LiveStreams` keeps one `StreamConnection` (connection.py) per exchange of
`live.providers` that lists at least one of the coins polled now, while this
instance is the lease holder or polls on its own (a single instance, or Redis
away with `cache.redis_fallback`). A follower runs none: it gets the holder's
ticks through Redis (relay.py). Visitors never cause a connection: nothing
here reads a request.

Every half second it compares what should run with what runs: the role (a
lease handover starts or stops the streams within a second) and the coins
("top:N" changes restart the exchanges whose pairs changed, nothing else).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from ticker.lease import LeaseRole
from ticker.live.connection import StreamConnection
from ticker.live.feed import ExchangeFeed
from ticker.live.feeds import build_feed
from ticker.live.hub import LiveQuotes
from ticker.models import Coin

logger = logging.getLogger(__name__)

CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Plan:
    """What one exchange's connection subscribes to: its URL and its pairs (stream name -> our symbol)."""

    url: str
    pairs: Mapping[str, str]


ConnectionFactory = Callable[[Callable[[], ExchangeFeed], str, Mapping[str, str], LiveQuotes], StreamConnection]


def plan(providers: Sequence[str], urls: Mapping[str, str | None], coins: Sequence[Coin]) -> dict[str, Plan]:
    """The connection each exchange needs for these coins: those it lists (static coins and tokens by
    contract never stream); exchanges that list none get no connection."""
    plans: dict[str, Plan] = {}
    for name in providers:
        feed = build_feed(name)
        pairs: dict[str, str] = {}
        for coin in coins:
            if coin.is_static or coin.is_token:
                continue
            pair = feed.pair(coin)
            if pair is not None and pair not in pairs:
                pairs[pair] = coin.symbol
        if pairs:
            plans[name] = Plan(urls.get(name) or feed.default_url, pairs)
    return plans


class LiveStreams:
    def __init__(
        self,
        providers: Sequence[str],
        urls: Mapping[str, str | None],
        hub: LiveQuotes,
        coins: Callable[[], Sequence[Coin]],
        *,
        role: Callable[[], LeaseRole],
        connect: ConnectionFactory,
    ) -> None:
        """`urls`: providers.NAME.stream_url by exchange (None: the exchange's own). `coins`: the coins polled
        now. `role`: this instance's polling role. `connect` builds a connection (runtime passes its clocks)."""
        self._providers = list(providers)
        self._urls = dict(urls)
        self._hub = hub
        self._coins = coins
        self._role = role
        self._connect = connect
        self._running: dict[str, tuple[Plan, StreamConnection, anyio.CancelScope]] = {}

    @property
    def connections(self) -> int:
        """Exchange connections this instance keeps now (one per exchange at most)."""
        return len(self._running)

    async def run_forever(self) -> None:
        async with anyio.create_task_group() as tasks:
            try:
                while True:
                    self._check(tasks)
                    await anyio.sleep(CHECK_SECONDS)
            finally:
                for name in list(self._running):
                    self._stop(name)

    def _check(self, tasks: TaskGroup) -> None:
        wanted = plan(self._providers, self._urls, self._coins()) if self._role() != "follower" else {}
        for name in list(self._running):
            if wanted.get(name) != self._running[name][0]:
                self._stop(name)
        for name, target in wanted.items():
            if name not in self._running:
                self._start(name, target, tasks)

    def _start(self, name: str, target: Plan, tasks: TaskGroup) -> None:
        connection = self._connect(lambda: build_feed(name), target.url, target.pairs, self._hub)
        scope = anyio.CancelScope()
        self._running[name] = (target, connection, scope)

        async def run() -> None:
            with scope:
                await connection.run_forever()

        logger.debug("%s stream: %d pairs at %s", name, len(target.pairs), target.url)
        tasks.start_soon(run)

    def _stop(self, name: str) -> None:
        _, connection, scope = self._running.pop(name)
        connection.stop()
        scope.cancel()
