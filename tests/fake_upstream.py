"""A local HTTP server that answers like CoinGecko, for end-to-end tests of the real `ticker serve`.

It serves `/api/v3/simple/price` and `/api/v3/coins/markets` in the documented shapes from a dict
the test edits, counts requests per path, and can be told to fail (status, body, headers) so tests
can switch faults on and off while the service runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FakeCoinGecko:
    def __init__(self) -> None:
        # coingecko id -> {currency: price, f"{currency}_24h_change": change}
        self.prices: dict[str, dict[str, float]] = {}
        self.updated_at: int | None = None  # None: "now" at each request
        self.fault: tuple[int, bytes, dict[str, str]] | None = None
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v3"

    def __enter__(self) -> FakeCoinGecko:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_with(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.fault = (status, body, headers or {})

    def recover(self) -> None:
        self.fault = None

    def count(self, path: str = "/api/v3/simple/price") -> int:
        with self._lock:
            return self.requests[path]

    def _respond(self, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.requests[path] += 1
        if self.fault is not None:
            return self.fault
        ids = query.get("ids", [""])[0].split(",")
        if path == "/api/v3/simple/price":
            currencies = query.get("vs_currencies", ["usd"])[0].split(",")
            stamp = self.updated_at or int(time.time())
            body: Any = {}
            for coin_id in ids:
                if coin_id in self.prices:
                    entry = {k: v for k, v in self.prices[coin_id].items() if k.split("_")[0] in currencies}
                    body[coin_id] = entry | {"last_updated_at": stamp}
            return 200, json.dumps(body).encode(), {"content-type": "application/json"}
        if path == "/api/v3/coins/markets":
            rows = [
                {"id": i, "symbol": i[:3], "name": i.title(), "image": f"https://assets.example/{i}.png"}
                for i in ids
                if i in self.prices
            ]
            return 200, json.dumps(rows).encode(), {"content-type": "application/json"}
        return 404, b'{"error":"Not Found"}', {"content-type": "application/json"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                status, body, headers = fake._respond(url.path, parse_qs(url.query))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
