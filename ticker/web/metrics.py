"""/metrics: Prometheus text format, from prometheus-client.

Upstream requests are counted where every provider request is made
(`providers._http.get_json`); freshness (snapshot age, stale coins, each
provider's last success) is computed from the store at scrape time, so a
Redis follower reports the shared data it serves; HTTP requests are counted
per route with plain integers on the hot path and exposed by a collector.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticker.config import Settings
from ticker.lease import LeaseRole
from ticker.live.hub import LiveQuotes
from ticker.render.board import build_board
from ticker.store import SnapshotStore
from ticker.telemetry import UPSTREAM_REQUESTS, UPSTREAM_SECONDS, UPSTREAM_SKIPPED
from ticker.top import CoinList
from ticker.web.stream import StreamTally


class HttpTally:
    """Requests by route and status: a dict increment per request, turned into a counter at scrape time."""

    def __init__(self) -> None:
        self.counts: Tally[tuple[str, int]] = Tally()

    def add(self, route: str, status: int) -> None:
        self.counts[(route, status)] += 1


class Counted:
    """Wraps one route's ASGI app to tally its response statuses."""

    def __init__(self, app: ASGIApp, route: str, tally: HttpTally) -> None:
        self._app = app
        self._route = route
        self._tally = tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._tally.add(self._route, message["status"])
            await send(message)

        await self._app(scope, receive, counting_send)


class ServiceCollector(Collector):
    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore,
        tally: HttpTally,
        clock: Callable[[], datetime],
        extra: Callable[[], Iterable[tuple[str, int, int]]] = lambda: (),
        lease_role: Callable[[], LeaseRole] = lambda: "single",
    ) -> None:
        self._settings = settings
        self._store = store
        self._tally = tally
        self._clock = clock
        self._extra = extra  # (route, status, count) from endpoints that keep their own counts
        self._lease_role = lease_role

    def collect(self) -> Iterable[Metric]:
        now = self._clock()
        snapshot = self._store.current
        http = CounterMetricFamily(
            "ticker_http_requests", "HTTP requests by route and status.", labels=["route", "status"]
        )
        totals = Tally(self._tally.counts)
        for route, status, count in self._extra():
            totals[(route, status)] += count
        for (route, status), count in sorted(totals.items()):
            http.add_metric([route, str(status)], count)
        yield http

        age = GaugeMetricFamily("ticker_snapshot_age_seconds", "Seconds since the current snapshot was built.")
        if snapshot is not None:
            age.add_metric([], (now - snapshot.generated_at).total_seconds())
        yield age

        stale = GaugeMetricFamily(
            "ticker_coins_stale", "Configured coins whose price is stale, in the default currency."
        )
        unavailable = GaugeMetricFamily("ticker_coins_unavailable", "Configured coins with no price to show.")
        counts = self._freshness(now)
        stale.add_metric([], counts[0])
        unavailable.add_metric([], counts[1])
        yield stale
        yield unavailable

        last = GaugeMetricFamily(
            "ticker_provider_last_success_timestamp_seconds",
            "When each provider last answered (Unix time).",
            labels=["provider"],
        )
        state = GaugeMetricFamily(
            "ticker_provider_up", "1 while a provider answers, 0 while it fails or backs off.", labels=["provider"]
        )
        for name, provider in snapshot.providers.items() if snapshot else ():
            if provider.last_success is not None:
                last.add_metric([name], provider.last_success.timestamp())
            state.add_metric([name], 1.0 if provider.state == "ok" else 0.0)
        yield last
        yield state

        holder = GaugeMetricFamily(
            "ticker_lease_holder", "1 while this instance holds the poller lease (Redis mode), else 0."
        )
        holder.add_metric([], 1.0 if self._lease_role() == "holder" else 0.0)
        yield holder

    def _freshness(self, now: datetime) -> tuple[int, int]:
        market, poller = self._settings.market, self._settings.poller
        snapshot = self._store.current
        board = build_board(
            snapshot,
            CoinList(market.coins, market.top).current(snapshot),
            market.default_currency,
            now=now,
            stale_after=poller.stale_after_seconds,
            max_stale=poller.max_stale_seconds,
        )
        return sum(row.stale for row in board.rows), sum(not row.available for row in board.rows)


class StreamCollector(Collector):
    """Open event-stream clients (/api/v1/stream, /widget/stream) and the events sent to them."""

    def __init__(self, tally: StreamTally) -> None:
        self._tally = tally

    def collect(self) -> Iterable[Metric]:
        clients = GaugeMetricFamily("ticker_stream_clients", "Open event-stream connections.")
        clients.add_metric([], self._tally.clients)
        yield clients
        events = CounterMetricFamily(
            "ticker_stream_events", "Server-sent events sent (prices, quotes, rows).", labels=["event"]
        )
        for name, count in sorted(self._tally.events.items()):
            events.add_metric([name], count)
        yield events


class ExchangeStreamCollector(Collector):
    """The exchange WebSocket streams ([live]) as this instance knows them: its own, or the holder's via Redis."""

    def __init__(self, live: LiveQuotes) -> None:
        self._live = live

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "ticker_exchange_stream_up",
            "1 while an exchange's live stream is up, 0 while it is down.",
            labels=["exchange"],
        )
        coins = GaugeMetricFamily(
            "ticker_exchange_stream_coins", "Coins an exchange's live stream carries.", labels=["exchange"]
        )
        for name, state in sorted(self._live.streams.items()):
            up.add_metric([name], 1.0 if state.state == "up" else 0.0)
            coins.add_metric([name], len(state.coins))
        yield up
        yield coins
        ticks = CounterMetricFamily(
            "ticker_exchange_stream_ticks", "Ticks received from this instance's own exchange streams."
        )
        ticks.add_metric([], self._live.ticks)
        yield ticks


def build_registry(collectors: Sequence[Collector]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    for collector in (UPSTREAM_REQUESTS, UPSTREAM_SECONDS, UPSTREAM_SKIPPED, *collectors):
        registry.register(collector)
    return registry
