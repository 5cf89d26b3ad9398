"""GET /api/v1/stream: Server-Sent Events that push each new snapshot to connected widgets.

Event `prices` carries exactly the JSON of /api/v1/prices for the same query:
once at connect, then whenever the snapshot (or a coin's stale state)
changes. A keep-alive comment goes out every 15 s. An idle connection is a
task waiting on the store's change event: no CPU between snapshots. Streams
end when the client goes away or the app shuts down.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
from starlette.types import Message, Receive, Scope, Send

from ticker.exceptions import QueryError
from ticker.store import SnapshotStore
from ticker.web.response_cache import COMMON_RAW, NotFound, PreparedEndpoint, header_value

KEEPALIVE_SECONDS = 15.0
# The lifespan state key under which the app hands its closing event to the server (ticker.web.server),
# which sets it as its shutdown begins: uvicorn runs the lifespan shutdown only after open connections end.
CLOSING_STATE = "ticker.closing"


class PriceStream:
    def __init__(
        self,
        prices: PreparedEndpoint,
        store: SnapshotStore,
        closing: anyio.Event,
        *,
        clock: Callable[[], float] = time.time,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._prices = prices
        self._store = store
        self._closing = closing
        self._clock = clock
        self._keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            prepared = self._prices.get(scope)
        except (QueryError, NotFound) as err:
            await self._prices.error_page(err, 400, scope)(scope, receive, send)
            return
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # nginx: pass events through at once
            *COMMON_RAW,
        ]
        cors = self._prices.cors
        if cors is not None:
            headers += [(k.encode(), v.encode()) for k, v in cors.static_headers.items()]
            headers += cors.headers_for(header_value(scope, b"origin"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_cancel_on_disconnect, receive, tasks.cancel_scope)
            tasks.start_soon(_cancel_on_event, self._closing, tasks.cancel_scope)
            await self._pump(scope, send, prepared.body)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, scope: Scope, send: Send, body: bytes) -> None:
        await send(_event(body))
        sent = body
        while True:
            version = self._store.version
            prepared = self._prices.get(scope)
            wait = self._keepalive
            if prepared.valid_until is not None:
                wait = min(wait, max(prepared.valid_until - self._clock(), 0.0) + 0.01)
            with anyio.move_on_after(wait):
                await self._store.wait_for_change(version)
            prepared = self._prices.get(scope)
            if prepared.body != sent:
                await send(_event(prepared.body))
                sent = prepared.body
            else:
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})


def _event(body: bytes) -> Message:
    return {"type": "http.response.body", "body": b"event: prices\ndata: " + body + b"\n\n", "more_body": True}


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def _cancel_on_event(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
