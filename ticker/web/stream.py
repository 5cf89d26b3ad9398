"""Server-Sent Events: /api/v1/stream (each new snapshot, and live quotes between them) and /widget/stream.

/api/v1/stream sends event `prices`, exactly the JSON of /api/v1/prices for
the same query, at connect and whenever the snapshot (or a coin's stale
state) changes. With live streams (a LiveQuotes hub) it also sends `quotes`,
`{"currency", "coins": [coin objects that changed]}`; /widget/stream sends
only `rows`, `{"html": the changed rows as the widget renders them}`. Each
live event goes out right after `prices` at connect (the hub's quotes newer
than that snapshot), then at most `rate` per second per client: changes
that come meanwhile merge into the next one. A live body is built once per
(variant, snapshot version, hub version range) and shared by every client
at the same point (LiveEvents), so one tick costs one render per variant,
not one per client.

Limits, so that one client cannot slow everyone's live prices (each open variant costs one render per tick):
at most MAX_STREAMS_PER_CLIENT open streams per client address (both routes together; the address is
scope["client"], which uvicorn takes from X-Forwarded-For when the proxy is trusted), more get 429 with
Retry-After; and at most MAX_LIVE_VARIANTS distinct live variants per route with open clients (see
LiveEvents.open). HEAD gets the stream's headers and an empty body at once.

A keep-alive comment goes out every 15 s. An idle connection is a task
sleeping on a future of its own and one waiting for the client to leave: no
CPU between changes. Streams end when the client goes away or the app shuts
down (`closing`). The hot path of a tick is explained at _Connection.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import anyio
from starlette.datastructures import QueryParams
from starlette.types import Receive, Scope, Send

from ticker.exceptions import QueryError
from ticker.live.hub import LiveQuotes, Pair
from ticker.models import Snapshot
from ticker.store import SnapshotStore
from ticker.web.response_cache import COMMON_RAW, NotFound, Prepared, PreparedEndpoint, VariantKey, header_value

KEEPALIVE_SECONDS = 15.0
# The lifespan state key under which the app hands its closing event to the server (ticker.web.server),
# which sets it as its shutdown begins: uvicorn runs the lifespan shutdown only after open connections end.
CLOSING_STATE = "ticker.closing"
MAX_STREAMS_PER_CLIENT = 32  # open event streams per client address, both routes together
MAX_LIVE_VARIANTS = 64  # distinct live variants (canonical queries) with open clients, per route
MAX_LIVE_BODIES = 4 * MAX_LIVE_VARIANTS  # a variant's clients may sit at a few hub versions at once
RETRY_AFTER_SECONDS = 30  # on a 429 (too many streams) or 503 (too many variants)
KEEPALIVE = b": keep-alive\n\n"

# (path params, query, the (symbol, currency) pairs to show) -> the event's data, or None when none is shown
LiveBody = Callable[[Mapping[str, Any], QueryParams, Collection[Pair]], bytes | None]


class StreamTally:
    """Open event-stream clients (in all, and by client address) and events sent by name, for /metrics."""

    def __init__(self) -> None:
        self.clients = 0
        self.events: Counter[str] = Counter()
        self.by_address: Counter[str] = Counter()


class TooManyStreams(Exception):
    """This client address has MAX_STREAMS_PER_CLIENT streams open already (429)."""


class TooManyVariants(Exception):
    """MAX_LIVE_VARIANTS other variants are being served live already (503 on /widget/stream)."""


class LiveEvents:
    """One route's live event (`quotes` or `rows`): whole SSE messages, built once per (variant, snapshot
    version, hub version range) in a small LRU and shared by every client at that point."""

    def __init__(
        self,
        name: str,
        hub: LiveQuotes,
        store: SnapshotStore,
        build: LiveBody,
        variant: VariantKey,
        *,
        rate: float,
        max_bodies: int = MAX_LIVE_BODIES,
    ) -> None:
        """`rate`: at most this many events per second per client (live.max_updates_per_second)."""
        self.name = name
        self.hub = hub
        self.gap = 1.0 / rate
        self._store = store
        self._build = build
        self._variant = variant
        self._max = max_bodies
        self._bodies: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()
        self._open: Counter[str] = Counter()  # variant -> its clients with live events
        self.builds = 0  # bodies built, for tests and the benchmark

    def open(self, variant: str, *, max_variants: int = MAX_LIVE_VARIANTS) -> bool:
        """Count a client of `variant`; False (nothing counted) when that would make more than `max_variants`
        variants live at once. Each live variant costs one render per tick whatever its number of clients, so
        this bounds the work of a tick: variants already served stay fast, a new one waits for a free place."""
        if variant not in self._open and len(self._open) >= max_variants:
            return False
        self._open[variant] += 1
        return True

    def close(self, variant: str) -> None:
        """Uncount a client of `variant` (from `open` or `move`)."""
        self._open[variant] -= 1
        if self._open[variant] <= 0:
            del self._open[variant]

    def move(self, old: str, new: str) -> None:
        """A client's variant changed ("top:N" moved with a snapshot): counted under `new`, even past the cap
        (that is bounded by the configured coins, not by clients)."""
        if old != new:
            self._open[new] += 1
            self.close(old)

    def variant(self, path_params: Mapping[str, Any], query: QueryParams) -> str:
        """The canonical variant of a query; raises QueryError or NotFound."""
        return self._variant(path_params, query)

    def catch_up(self, path_params: Mapping[str, Any], query: QueryParams, variant: str) -> bytes:
        """The message with the hub's quotes newer than the current snapshot, or b"" when there are none."""
        snapshot: Snapshot | None = self._store.current
        return self._message(variant, -1, lambda: set(self.hub.newer_than(snapshot)), path_params, query)

    def since(self, path_params: Mapping[str, Any], query: QueryParams, variant: str, version: int) -> bytes:
        """The message with the quotes changed after hub version `version`, or b"" when none is shown."""
        changed = self.hub.changed_since
        return self._message(
            variant, version, lambda: {(q.symbol, q.currency) for q in changed(version)}, path_params, query
        )

    def _message(
        self,
        variant: str,
        since: int,
        pairs: Callable[[], Collection[Pair]],
        path_params: Mapping[str, Any],
        query: QueryParams,
    ) -> bytes:
        key = (variant, since, self.hub.version, self._store.version)
        message = self._bodies.get(key)
        if message is not None:
            self._bodies.move_to_end(key)
            return message
        self.builds += 1
        data = self._build(path_params, query, pairs())
        message = b"" if data is None else b"event: " + self.name.encode() + b"\ndata: " + data + b"\n\n"
        self._bodies[key] = message
        if len(self._bodies) > self._max:
            self._bodies.popitem(last=False)
        return message


class EventStream:
    """An SSE endpoint: `prices` from `endpoint` (when `prices`), live events from `live` (when given).
    `endpoint` also validates the query: a bad one gets its error page (400) before the stream starts.

    Served before Starlette's middleware and router (app.py), so it counts its own responses (`statuses`)."""

    def __init__(
        self,
        endpoint: PreparedEndpoint,
        store: SnapshotStore,
        closing: anyio.Event,
        *,
        live: LiveEvents | None = None,
        prices: bool = True,
        tally: StreamTally | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        keepalive: float = KEEPALIVE_SECONDS,
        max_per_client: int = MAX_STREAMS_PER_CLIENT,
        max_variants: int = MAX_LIVE_VARIANTS,
    ) -> None:
        """`max_per_client`, `max_variants`: the limits (module docstring); the constants unless given."""
        self._endpoint = endpoint
        self._store = store
        self._closing = closing
        self._live = live
        self.live = live  # its hub, for tests and the benchmark
        self._prices = prices
        self._tally = tally or StreamTally()
        self._clock = clock
        self._monotonic = monotonic
        self._keepalive = keepalive
        self._max_per_client = max_per_client
        self._max_variants = max_variants
        self._wakeups = _Wakeups(live.hub if live else None, store if prices else None, closing)
        self.statuses: Counter[int] = Counter()  # responses by status, for /metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A HEAD gets the headers and no body at once; over a limit, the error page with Retry-After.

        Over MAX_LIVE_VARIANTS, /api/v1/stream still serves `prices` (its snapshot events cost one render per
        snapshot, not per tick) without live events; /widget/stream, which would have nothing else to send,
        answers 503: EventStream does not retry after a non-200, so the widget keeps its periodic refresh."""
        address = _address(scope)
        try:
            prepared = self._endpoint.get(scope)
            if self._live is None and not self._prices:
                raise NotFound("live updates are not enabled on this server")
            if self._tally.by_address[address] >= self._max_per_client and scope["method"] != "HEAD":
                raise TooManyStreams(f"too many open event streams from one address (at most {self._max_per_client})")
        except (QueryError, NotFound, TooManyStreams) as err:
            await self._refuse(err, scope, receive, send)
            return
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # nginx: pass events through at once
            *COMMON_RAW,
        ]
        cors = self._endpoint.cors
        if cors is not None:
            headers += [(k.encode(), v.encode()) for k, v in cors.static_headers.items()]
            headers += cors.headers_for(header_value(scope, b"origin"))
        if scope["method"] == "HEAD":
            self.statuses[200] += 1
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        live, variant = self._live, ""
        if live is not None:
            variant = live.variant(scope.get("path_params", {}), _query(scope))
            if not live.open(variant, max_variants=self._max_variants):
                live = None
                if not self._prices:
                    busy = TooManyVariants("too many different live widgets just now; this one refreshes by itself")
                    await self._refuse(busy, scope, receive, send)
                    return
        connection = _Connection(self, scope, send, live, variant)
        self._tally.clients += 1
        self._tally.by_address[address] += 1
        try:
            self.statuses[200] += 1
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            disconnect = asyncio.ensure_future(connection.until_disconnect(receive))
            self._wakeups.join(connection)
            try:
                await connection.run(prepared)
            finally:
                self._wakeups.leave(connection)
                connection.close()
                disconnect.cancel()
        finally:
            if live is not None:
                live.close(connection.variant)
            self._tally.clients -= 1
            self._tally.by_address[address] -= 1
            if self._tally.by_address[address] <= 0:
                del self._tally.by_address[address]
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _refuse(self, err: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint's own error page (JSON on /api, the widget's HTML), with Retry-After on 429 and 503."""
        status = _STATUS.get(type(err)) or (404 if isinstance(err, NotFound) and not self._prices else 400)
        self.statuses[status] += 1
        response = self._endpoint.error_page(err, status, scope)
        if status in (429, 503):
            response.raw_headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
        await response(scope, receive, send)


_STATUS: dict[type[Exception], int] = {TooManyStreams: 429, TooManyVariants: 503}


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _query(scope: Scope) -> QueryParams:
    return QueryParams(scope["query_string"].decode("latin-1"))


class _Connection:
    """One client. Its task alternates between sending what is due and sleeping on a future of its own.

    The hot path, one hub change reaching N clients: the hub's event wakes one watcher task (_Wakeups), which
    resolves each sleeping client's future (a C call); each client's task wakes, finds the hub version moved,
    takes the shared bytes for its variant from LiveEvents (built by the first client of that variant, a dict
    lookup for the others), and hands them to the server's `send` directly (no Starlette wrapper, no cancel
    scope, no timer created). Timers: one per client at most, armed for its next deadline (keep-alive, the
    rate limit's gap, a coin's stale flip) and kept while later deadlines come and go; when it rings early the
    client looks, finds nothing due and arms it again (about once per keep-alive period under steady ticks).
    A slow client blocks only in its own `send` (the server's write buffer full): the others go on.
    """

    def __init__(self, stream: EventStream, scope: Scope, send: Send, live: LiveEvents | None, variant: str) -> None:
        """`live`: its live events (None: `prices` only), counted under `variant` (LiveEvents.open)."""
        self._stream = stream
        self._live = live
        self.variant = variant
        self._scope = scope
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] | None = None  # set while sleeping
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf  # when the armed timer rings (stream's monotonic time)
        self.over = False  # the client left or the app is closing

    def wake(self) -> None:
        """Look again now (a no-op while not sleeping: the loop looks before it sleeps)."""
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)

    def end(self) -> None:
        self.over = True
        self.wake()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.end()

    async def run(self, prepared: Prepared) -> None:
        """The events until the client leaves or the app closes. A tick touches no rendering of `prices`: that is
        looked at only when the snapshot changed or a coin's stale state flips (`valid_until`)."""
        stream, live, store = self._stream, self._live, self._stream._store
        monotonic, clock, keepalive, with_prices = stream._monotonic, stream._clock, stream._keepalive, stream._prices
        query = _query(self._scope)
        path_params: Mapping[str, Any] = self._scope.get("path_params", {})
        sent_prices = prepared.body
        prices_due = prepared.valid_until  # epoch seconds, or None
        seen = store.version
        if with_prices:
            await self._event("prices", _prices(sent_prices))
        last_sent = monotonic()
        version, last_live, variant = 0, -math.inf, self.variant
        if live is not None:
            version = live.hub.version
            message = live.catch_up(path_params, query, variant)
            if message:
                await self._event(live.name, message)
                last_live = last_sent = monotonic()
        while not self.over:
            if with_prices and (store.version != seen or (prices_due is not None and clock() >= prices_due)):
                if store.version != seen:
                    seen = store.version
                    if live is not None:
                        variant = live.variant(path_params, query)  # "top:N" may have moved
                        live.move(self.variant, variant)
                        self.variant = variant
                prepared = stream._endpoint.get(self._scope)
                prices_due = prepared.valid_until
                if prepared.body != sent_prices:
                    await self._event("prices", _prices(prepared.body))
                    sent_prices = prepared.body
                    last_sent = monotonic()
            if live is not None and live.hub.version > version and monotonic() >= last_live + live.gap:
                message = live.since(path_params, query, variant, version)
                version = live.hub.version
                if message:
                    await self._event(live.name, message)
                    last_live = last_sent = monotonic()
            now = monotonic()
            if now - last_sent >= keepalive:
                await self._send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                last_sent = now = monotonic()
            if with_prices and store.version != seen:
                continue  # a snapshot came while sending
            until = last_sent + keepalive
            if live is not None and live.hub.version > version:
                until = min(until, last_live + live.gap)  # only the rate limit holds it back
            if with_prices and prices_due is not None:
                until = min(until, now + max(prices_due - clock(), 0.0) + 0.01)
            if until > now and not self.over:
                await self._sleep(until, now)

    async def _event(self, name: str, message: bytes) -> None:
        self._stream._tally.events[name] += 1
        await self._send({"type": "http.response.body", "body": message, "more_body": True})

    async def _sleep(self, until: float, now: float) -> None:
        """Until `until` (monotonic) or a wake, whichever comes first."""
        if until < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_later(until - now, self._ring)
            self._timer_at = until
        self._future = self._loop.create_future()
        try:
            await self._future
        finally:
            self._future = None

    def _ring(self) -> None:
        self._timer, self._timer_at = None, math.inf
        self.wake()


class _Wakeups:
    """Wakes the clients of one endpoint when the hub or the store moves, or the app closes: one watcher task per
    source for all of them, started with the first client and stopped with the last (no task while nobody
    listens)."""

    def __init__(self, hub: LiveQuotes | None, store: SnapshotStore | None, closing: anyio.Event) -> None:
        self._hub = hub
        self._store = store
        self._closing = closing
        self._clients: set[_Connection] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def join(self, client: _Connection) -> None:
        self._clients.add(client)
        if self._closing.is_set():
            client.end()
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        hub, store = self._hub, self._store
        if hub is not None:
            self._tasks.append(loop.create_task(self._follow(hub.wait_for_change, lambda: hub.version)))
        if store is not None:
            self._tasks.append(loop.create_task(self._follow(store.wait_for_change, lambda: store.version)))
        self._tasks.append(loop.create_task(self._end_all()))

    def leave(self, client: _Connection) -> None:
        self._clients.discard(client)
        if not self._clients:
            for task in self._tasks:
                task.cancel()
            self._tasks.clear()

    async def _follow(self, wait_for_change: Callable[[int], Awaitable[None]], version: Callable[[], int]) -> None:
        while True:
            await wait_for_change(version())
            for client in self._clients:
                client.wake()

    async def _end_all(self) -> None:
        await self._closing.wait()
        for client in self._clients:
            client.end()


def _prices(body: bytes) -> bytes:
    return b"event: prices\ndata: " + body + b"\n\n"
