"""Local HTTP servers for tests: LocalServer, and FakeUpstream on it, which answers like CoinGecko (under
/api/v3) and CoinPaprika (under /v1).

For end-to-end tests of the real `ticker serve`: each side serves the documented response shapes
from a dict the test edits, counts its requests, and can be told to fail (status, body, headers)
so tests can switch faults on and off while the service runs. With `serve_icons=True` it also serves
a small real PNG at the `/img/<id>.png` URLs its /coins/markets rows point to (off by default, where
those URLs answer 404 as before); `icon_origin` points those URLs at another server instead.
Each side's `log` records every request it answered: (monotonic time, path, status).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import SplitResult, parse_qs, urlsplit

Reply = tuple[int, bytes, dict[str, str]]
JSON = {"content-type": "application/json"}


class Side:
    """One fake provider: prices by that provider's coin id and currency ("usd"), a fault switch, a counter."""

    def __init__(self) -> None:
        self.prices: dict[str, dict[str, tuple[float, float | None]]] = {}  # id -> currency -> (price, change)
        self.updated_at: int | None = None  # unix seconds; None: now at each request
        # id -> market figures as CoinGecko names them: "usd_market_cap", "usd_24h_vol" (in /simple/price),
        # "market_cap_rank", "price_change_percentage_7d_in_currency" (in /coins/markets)
        self.market: dict[str, dict[str, float]] = {}
        self.fault: Reply | None = None
        self.requests = 0
        self.log: list[tuple[float, str, int]] = []  # (monotonic time, path, status) of every request

    def fail_with(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.fault = (status, body, headers or {})

    def recover(self) -> None:
        self.fault = None

    def stamp(self) -> int:
        return self.updated_at or int(time.time())


def icon_png(coin_id: str, size: int = 32) -> bytes:
    """A real size x size RGBA PNG: a disc in a colour derived from the id, transparent around it."""
    r, g, b = hashlib.sha256(coin_id.encode()).digest()[:3]
    centre, radius = (size - 1) / 2, size / 2
    rows = b""
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            inside = (x - centre) ** 2 + (y - centre) ** 2 <= radius**2
            row += bytes((r, g, b, 255 if inside else 0))
        rows += bytes(row)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class LocalServer:
    """An HTTP server on a free loopback port, serving in a thread while its `with` block runs.

    `respond(target, headers)` answers each GET: the request target (path and query) and the headers
    (lower-case names) in, (status, body, headers) out. It runs in the server's threads.
    """

    def __init__(self, respond: Callable[[str, dict[str, str]], Reply]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(respond))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(respond: Callable[[str, dict[str, str]], Reply]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, headers = respond(self.path, {k.lower(): v for k, v in self.headers.items()})
            with contextlib.suppress(OSError):  # the client gave up first (a timeout test)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class FakeUpstream(LocalServer):
    def __init__(self, *, serve_icons: bool = False) -> None:
        super().__init__(lambda target, headers: self._respond(urlsplit(target)))
        self.coingecko = Side()
        self.coinpaprika = Side()
        self.serve_icons = serve_icons
        self.icon_requests = 0  # counted apart from the providers' requests
        self.icon_origin: str | None = None  # where /coins/markets image URLs point; None: here
        self._lock = threading.Lock()

    @property
    def coingecko_url(self) -> str:
        return f"{self.origin}/api/v3"

    @property
    def coinpaprika_url(self) -> str:
        return f"{self.origin}/v1"

    def _respond(self, url: SplitResult) -> Reply:
        path, query = url.path, parse_qs(url.query)
        if self.serve_icons and path.startswith("/img/") and path.endswith(".png"):
            with self._lock:
                self.icon_requests += 1
            return 200, icon_png(path[len("/img/") : -len(".png")]), {"content-type": "image/png"}
        side, answer = self._route(path)
        if side is None or answer is None:
            return 404, b'{"error":"Not Found"}', JSON
        reply = side.fault if side.fault is not None else answer(path, query)
        with self._lock:
            side.requests += 1
            side.log.append((time.monotonic(), path, reply[0]))
        return reply

    def _route(self, path: str) -> tuple[Side | None, Callable[[str, dict[str, list[str]]], Reply] | None]:
        if path == "/api/v3/simple/price":
            return self.coingecko, self._cg_simple_price
        if path == "/api/v3/coins/markets":
            return self.coingecko, self._cg_markets
        if path == "/v1/tickers" or path.startswith("/v1/tickers/"):
            return self.coinpaprika, self._paprika_tickers
        return None, None

    def _cg_simple_price(self, path: str, query: dict[str, list[str]]) -> Reply:
        side = self.coingecko
        currencies = query.get("vs_currencies", ["usd"])[0].split(",")
        body: dict[str, Any] = {}
        for coin_id in query.get("ids", [""])[0].split(","):
            if coin_id not in side.prices:
                continue
            entry: dict[str, Any] = {"last_updated_at": side.stamp()}
            for currency, (price, change) in side.prices[coin_id].items():
                if currency in currencies:
                    entry[currency] = price
                    entry[f"{currency}_24h_change"] = change
            figures = side.market.get(coin_id, {}).items()
            entry |= {key: value for key, value in figures if key.split("_")[0] in currencies}
            body[coin_id] = entry
        return 200, json.dumps(body).encode(), JSON

    def _cg_markets(self, path: str, query: dict[str, list[str]]) -> Reply:
        ids = query.get("ids", [""])[0].split(",")
        origin = self.icon_origin or self.origin
        rows = [
            {"id": i, "symbol": i[:3], "name": i.title(), "image": f"{origin}/img/{i}.png"}
            | {key: value for key, value in self.coingecko.market.get(i, {}).items() if key.startswith(("mark", "pri"))}
            for i in ids
        ]
        return 200, json.dumps([r for r in rows if r["id"] in self.coingecko.prices]).encode(), JSON

    def _paprika_tickers(self, path: str, query: dict[str, list[str]]) -> Reply:
        side = self.coinpaprika
        codes = query.get("quotes", ["USD"])[0].split(",")
        updated = datetime.fromtimestamp(side.stamp(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def tick(coin_id: str) -> dict[str, Any]:
            quotes = {
                cur.upper(): {"price": price, "percent_change_24h": "" if change is None else change}
                for cur, (price, change) in side.prices[coin_id].items()
                if cur.upper() in codes
            }
            return {
                "id": coin_id,
                "name": coin_id,
                "symbol": coin_id.split("-")[0].upper(),
                "rank": 1,
                "last_updated": updated,
                "quotes": quotes,
            }

        if path.startswith("/v1/tickers/"):
            coin_id = path.rsplit("/", 1)[1]
            if coin_id not in side.prices:
                return 404, b'{"error":"id not found"}', JSON
            return 200, json.dumps(tick(coin_id)).encode(), JSON
        return 200, json.dumps([tick(i) for i in side.prices]).encode(), JSON
