"""The benchmark's baseline: a bare Starlette app that answers one precomputed JSON body.

It runs under exactly the uvicorn settings `ticker serve` uses (ticker/cli.py: one
worker, loop and http "auto" -> uvloop and httptools, no access log, no Server
header, no logging config), so the only difference the benchmark measures is the
application: ticker's routing, endpoints and headers against the least an ASGI app
can do.

With `--mirror URL` it also serves, at /mirror, the exact body and headers that URL
answered at start (ticker's /widget), from a raw ASGI callable with no logic: a
control that tells the cost of ticker's code from the cost of the bytes it sends.

    python bench/baseline_app.py --port 8001 [--mirror http://127.0.0.1:8000/widget]
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

# About 250 bytes of JSON, built once: the cheapest possible "price API".
BODY = json.dumps(
    {
        "currency": "usd",
        "generated_at": "2026-11-27T18:20:00Z",
        "stale": False,
        "coins": [
            {"symbol": "BTC", "price": 90917.04, "change_24h_pct": 1.64, "updated_at": "2026-11-27T18:19:31Z"},
            {"symbol": "ETH", "price": 3021.55, "change_24h_pct": -2.31, "updated_at": "2026-11-27T18:19:31Z"},
        ],
    },
    separators=(",", ":"),
).encode()


async def prices(request: Request) -> Response:
    return Response(BODY, media_type="application/json")


class Mirror:
    """A raw ASGI endpoint that replays one recorded response: the same bytes as ticker's, none of its code."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=5) as response:  # no Accept-Encoding: the identity body
            self.body = response.read()
            skip = {"date", "server", "content-length", "connection"}
            self.headers = [(k.lower().encode(), v.encode()) for k, v in response.getheaders() if k.lower() not in skip]
        self.headers.append((b"content-length", str(len(self.body)).encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


app = Starlette(routes=[Route("/", prices)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--mirror", help="also serve this URL's response, recorded at start, at /mirror")
    args = parser.parse_args()
    if args.mirror:
        app.router.routes.append(Route("/mirror", Mirror(args.mirror)))
    # The same call as ticker.cli.serve: everything else is uvicorn's default.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
