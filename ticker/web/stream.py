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
waiting on a change event: no CPU between changes. Streams end when the
client goes away or the app shuts down (`closing`).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

import anyio
from starlette.datastructures import QueryParams
from starlette.types import Message, Receive, Scope, Send

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
    `endpoint` also validates the query: a bad one gets its error page (400) before the stream starts."""

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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            prepared = self._endpoint.get(scope)
            if self._live is None and not self._prices:
                raise NotFound("live updates are not enabled on this server")
        except (QueryError, NotFound) as err:
            status = 404 if isinstance(err, NotFound) and not self._prices else 400
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
        self._tally.clients += 1
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
                tasks.start_soon(_cancel_on_event, self._closing, tasks.cancel_scope)
                if self._live is None:
                    await self._pump(scope, send, prepared.body)
                else:
                    await _Connection(self, self._live, scope, send, tasks).run(prepared)
        finally:
            self._tally.clients -= 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, scope: Scope, send: Send, body: bytes) -> None:
        """Snapshots only: wait on the store, send `prices` when its body changed, else a keep-alive."""
        await self._send(send, "prices", _event(body))
        sent = body
        while True:
            version = self._store.version
            prepared = self._endpoint.get(scope)
            wait = self._keepalive
            if prepared.valid_until is not None:
                wait = min(wait, max(prepared.valid_until - self._clock(), 0.0) + 0.01)
            with anyio.move_on_after(wait):
                await self._store.wait_for_change(version)
            prepared = self._endpoint.get(scope)
            if prepared.body != sent:
                await self._send(send, "prices", _event(prepared.body))
                sent = prepared.body
            else:
                await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})

    async def _send(self, send: Send, name: str, message: bytes | Message) -> None:
        self._tally.events[name] += 1
        if isinstance(message, bytes):
            message = {"type": "http.response.body", "body": message, "more_body": True}
        await send(message)


class _Connection:
    """One client of a stream with live events. The connection waits on the hub; a small task watching the
    store cuts that wait short when a snapshot comes (for `prices`)."""

    def __init__(self, stream: EventStream, live: LiveEvents, scope: Scope, send: Send, tasks: Any) -> None:
        self._stream = stream
        self._live = live
        self._scope = scope
        self._send = send
        self._tasks = tasks
        self._query = QueryParams(scope["query_string"].decode("latin-1"))
        self._path_params: Mapping[str, Any] = scope.get("path_params", {})
        self._waiting: anyio.CancelScope | None = None

    async def run(self, prepared: Prepared) -> None:
        """The events until cancelled. The hot path (a tick) touches no rendering of `prices`: that is looked
        at only when the snapshot changed or a coin's stale state flips (`valid_until`)."""
        stream, live, store, hub = self._stream, self._live, self._stream._store, self._live.hub
        monotonic = stream._monotonic
        body = prepared.body
        prices_due = prepared.valid_until
        seen = store.version
        variant = live.variant(self._path_params, self._query)
        if stream._prices:
            self._tasks.start_soon(self._watch_store)
            await stream._send(self._send, "prices", _event(body))
        sent_prices = body
        version = hub.version
        last_live = -float("inf")
        last_sent = monotonic()
        message = live.catch_up(self._path_params, self._query, variant)
        if message:
            await stream._send(self._send, live.name, message)
            last_live = last_sent = monotonic()
        while True:
            now = monotonic()
            pending = hub.version > version
            wait = max(last_sent + stream._keepalive - now, 0.0)
            if pending:
                wait = min(wait, max(last_live + live.gap - now, 0.0))
            if stream._prices and prices_due is not None:
                wait = min(wait, max(prices_due - stream._clock(), 0.0) + 0.01)
            if store.version == seen or not stream._prices:
                with anyio.move_on_after(wait) as self._waiting:
                    if pending:
                        await anyio.sleep_forever()  # only the rate limit (or a snapshot) holds it back
                    else:
                        await hub.wait_for_change(version)
                self._waiting = None
            if stream._prices and (store.version != seen or (prices_due is not None and stream._clock() >= prices_due)):
                if store.version != seen:
                    seen = store.version
                    variant = live.variant(self._path_params, self._query)  # "top:N" may have moved
                prepared = stream._endpoint.get(self._scope)
                prices_due = prepared.valid_until
                if prepared.body != sent_prices:
                    await stream._send(self._send, "prices", _event(prepared.body))
                    sent_prices = prepared.body
                    last_sent = monotonic()
            now = monotonic()
            if hub.version > version and now >= last_live + live.gap:
                message = live.since(self._path_params, self._query, variant, version)
                version = hub.version
                if message:
                    await stream._send(self._send, live.name, message)
                    last_live = last_sent = monotonic()
            if monotonic() - last_sent >= stream._keepalive:
                await self._send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
                last_sent = monotonic()

    async def _watch_store(self) -> None:
        store = self._stream._store
        while True:
            await store.wait_for_change(store.version)
            if self._waiting is not None:
                self._waiting.cancel()


def _event(body: bytes) -> Message:
    return {"type": "http.response.body", "body": b"event: prices\ndata: " + body + b"\n\n", "more_body": True}


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _cancel_on_event(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
