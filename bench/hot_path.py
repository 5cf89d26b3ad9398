#!/usr/bin/env python3
"""Where a request's CPU goes in Python: uvicorn's real httptools protocol, no sockets.

    python3 bench/hot_path.py

Each request is fed as bytes to uvicorn's HttpToolsProtocol (the class `ticker serve` uses) over a
transport that writes nowhere, so the figure is the Python work per request: HTTP parsing, uvicorn's
request cycle and header checks, Starlette's middleware and router, and the endpoint. The kernel's share
(the socket writes and waking the client) is left out: bench/run.py measures the whole. The
figures are the median of 5 batches of 20,000 requests, in CPU microseconds.

The last rows are what-if estimates. They change the app object in memory (route order, a dispatch by
exact path, the endpoint's clock) and never the code, to show what each part of the path costs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve():
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit("bench: no .venv yet; run `python3 run.py ticker --version` first")
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])

import asyncio  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]

import baseline_app  # noqa: E402
import uvloop  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402
from uvicorn.config import Config  # noqa: E402
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from ticker.config import default_settings  # noqa: E402
from ticker.runtime import create_app  # noqa: E402
from ticker.web.response_cache import PreparedEndpoint  # noqa: E402


class NullTransport:
    """Enough of an asyncio transport for uvicorn; counts writes (a response is two: head, body)."""

    def __init__(self) -> None:
        self.writes = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Replay:
    """A raw ASGI endpoint that sends a fixed body and header list: bytes without logic."""

    def __init__(self, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.headers = [*headers, (b"content-length", str(len(body)).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


async def per_request_us(app: ASGIApp, path: str, extra_headers: bytes = b"", batch: int = 20_000) -> float:
    config = Config(app=app, log_config=None, access_log=False, server_header=False, lifespan="off")
    config.load()
    protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = NullTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n" + extra_headers + b"\r\n"

    async def one() -> None:
        done = transport.writes + 2
        protocol.data_received(request)
        while transport.writes < done:
            await asyncio.sleep(0)

    for _ in range(2_000):
        await one()
    batches = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(batch):
            await one()
        batches.append((time.process_time() - started) / batch * 1e6)
    return statistics.median(batches)


async def main() -> None:
    ticker = create_app(default_settings(), demo=True)
    rows: list[tuple[str, float]] = []
    async with LifespanManager(ticker):
        await asyncio.sleep(0.2)  # the first (demo) poll
        routes = ticker.router.routes
        position = {route.path: n for n, route in enumerate(routes, 1) if isinstance(route, Route)}
        widget_route = next(r for r in routes if isinstance(r, Route) and r.path == "/widget")
        widget = widget_route.endpoint
        assert isinstance(widget, PreparedEndpoint)
        prepared = widget.get({"path": "/widget", "query_string": b"", "method": "GET", "headers": []})

        rows.append(("baseline app (bench/baseline_app.py)", await per_request_us(baseline_app.app, "/")))
        rows.append(
            (
                f"ticker /api/v1/prices (route {position['/api/v1/prices']})",
                await per_request_us(ticker, "/api/v1/prices"),
            )
        )
        rows.append((f"ticker /widget (route {position['/widget']})", await per_request_us(ticker, "/widget")))
        rows.append(
            (
                "ticker /widget, 304",
                await per_request_us(ticker, "/widget", b"If-None-Match: " + prepared.etag + b"\r\n"),
            )
        )
        control = Starlette(routes=[Route("/", Replay(prepared.body, list(prepared._raw)))])
        rows.append(("control: /widget's bytes, raw ASGI, bare app", await per_request_us(control, "/")))
        for before in (0, 3, 12):
            misses = [Route(f"/miss{i}/{{x}}", baseline_app.prices) for i in range(before)]
            app = Starlette(routes=[*misses, Route("/", baseline_app.prices)])
            rows.append((f"baseline endpoint behind {before} other routes", await per_request_us(app, "/")))

        # What-if estimates, on this app object only.
        routes.remove(widget_route)
        routes.insert(0, widget_route)
        rows.append(("what if: /widget were route 1", await per_request_us(ticker, "/widget")))

        class ExactPaths:
            """Exact-path endpoints first, everything else through Starlette as before."""

            def __init__(self, endpoints: dict[str, ASGIApp]) -> None:
                self.endpoints = endpoints

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" else None
                await (endpoint or ticker)(scope, receive, send)

        front = ExactPaths({"/widget": widget})
        rows.append(("what if: exact paths dispatched before Starlette", await per_request_us(front, "/widget")))
        widget._clock = time.time  # the default clock is datetime.now(UTC).timestamp() per request
        rows.append(("what if: ... and the endpoint's clock were time.time", await per_request_us(front, "/widget")))

    width = max(len(name) for name, _ in rows)
    print(f"{'Python CPU per request':{width}}   µs")
    for name, us in rows:
        print(f"{name:{width}}  {us:5.1f}")


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
