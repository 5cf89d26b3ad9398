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
MAX_LIVE_BODIES = 256
KEEPALIVE = b": keep-alive\n\n"

# (path params, query, the (symbol, currency) pairs to show) -> the event's data, or None when none is shown
LiveBody = Callable[[Mapping[str, Any], QueryParams, Collection[Pair]], bytes | None]


class StreamTally:
    """Open event-stream clients and events sent by name, for /metrics."""

    def __init__(self) -> None:
        self.clients = 0
        self.events: Counter[str] = Counter()


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
        self.builds = 0  # bodies built, for tests and the benchmark

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
    ) -> None:
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
        self._wakeups = _Wakeups(live.hub if live else None, store if prices else None, closing)
        self.statuses: Counter[int] = Counter()  # responses by status, for /metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            prepared = self._endpoint.get(scope)
            if self._live is None and not self._prices:
                raise NotFound("live updates are not enabled on this server")
        except (QueryError, NotFound) as err:
            status = 404 if isinstance(err, NotFound) and not self._prices else 400
            self.statuses[status] += 1
            await self._endpoint.error_page(err, status, scope)(scope, receive, send)
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
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.statuses[200] += 1
        self._tally.clients += 1
        connection = _Connection(self, scope, send)
        disconnect = asyncio.ensure_future(connection.until_disconnect(receive))
        self._wakeups.join(connection)
        try:
            await connection.run(prepared)
        finally:
            self._wakeups.leave(connection)
            connection.close()
            disconnect.cancel()
            self._tally.clients -= 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})


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

    def __init__(self, stream: EventStream, scope: Scope, send: Send) -> None:
        self._stream = stream
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
        stream, live, store = self._stream, self._stream._live, self._stream._store
        monotonic, clock, keepalive, with_prices = stream._monotonic, stream._clock, stream._keepalive, stream._prices
        query = QueryParams(self._scope["query_string"].decode("latin-1"))
        path_params: Mapping[str, Any] = self._scope.get("path_params", {})
        sent_prices = prepared.body
        prices_due = prepared.valid_until  # epoch seconds, or None
        seen = store.version
        if with_prices:
            await self._event("prices", _prices(sent_prices))
        last_sent = monotonic()
        version, last_live, variant = 0, -math.inf, ""
        if live is not None:
            variant = live.variant(path_params, query)
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
