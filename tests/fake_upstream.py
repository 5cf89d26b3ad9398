"""Local HTTP servers for tests: LocalServer, and FakeUpstream on it, which answers like the five keyless
providers: CoinGecko (under /api/v3), CoinPaprika (/v1), Kraken (/0/public), Binance (/api/v3/ticker, klines)
and Coinbase Exchange (/products), and the two DEX sources for tokens by contract address: GeckoTerminal
(/gt/api/v2/simple/networks/{network}/token_price/{addresses}) and DefiLlama (/llama/prices/current/{coins},
/llama/percentage/{coins}), in the shapes of fixtures/geckoterminal_simple_token_price.constructed.json and
fixtures/defillama_*.constructed.json. CoinGecko's `/coins/markets?order=market_cap_desc` (the "top:N"
ranking) answers `coingecko_ranking` (ids, largest first) with `market_cap_rank` 1, 2, ...

For end-to-end tests of the real `ticker serve`: each side serves the documented response shapes
from a dict the test edits, counts its requests, and can be told to fail (status, body, headers), as a
whole or on one endpoint, so tests can switch faults on and off while the service runs. Besides prices
it serves candles (Kraken OHLC, Binance klines, Coinbase candles, CoinGecko market_chart) of a
deterministic past that ends at each coin's current fake price (tests/fake_history.py), honouring each
endpoint's window and per-request maximum. `serve_default_coins()` prices the 11 default coins on every
side, so the built-in default config runs against it. With `serve_icons=True` it also serves a small
real PNG at the `/img/<id>.png` URLs its /coins/markets rows point to (off by default, where those URLs
answer 404 as before); `icon_origin` points those URLs at another server instead.
Each side's `log` records every request it answered: (monotonic time, path, status); `calls` the same
with the query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import struct
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from tests import fake_history
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, KNOWN_COINS

Reply = tuple[int, bytes, dict[str, str]]
Query = dict[str, list[str]]
JSON = {"content-type": "application/json"}
FIXTURES = Path(__file__).parent / "fixtures"
# Kraken answers under its own pair names; these are the ones its real answers use for the default coins
# (fixtures/kraken_ticker_default_coins.constructed.json and its README entry). Other pairs: as asked.
KRAKEN_RESULT_KEYS = {
    "XBTUSD": "XXBTZUSD",
    "ETHUSD": "XETHZUSD",
    "XMRUSD": "XXMRZUSD",
    "LTCUSD": "XLTCZUSD",
    "XDGUSD": "XDGUSD",
    "ADAUSD": "ADAUSD",
}
# Every provider's id of a known coin -> its symbol: the fake past of a coin is the same on every side.
SYMBOL_OF = {pid: coin.symbol for coin in KNOWN_COINS.values() for pid in coin.ids.values()}


class Call(NamedTuple):
    at: float  # monotonic
    path: str
    query: Query
    status: int


def body_of(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _json(value: Any, status: int = 200) -> Reply:
    return status, json.dumps(value).encode(), JSON


class Side:
    """One fake provider: prices by that provider's coin id and currency ("usd"), faults, a counter."""

    def __init__(self) -> None:
        self.prices: dict[str, dict[str, tuple[float, float | None]]] = {}  # id -> currency -> (price, change)
        self.updated_at: int | None = None  # unix seconds; None: now at each request
        # id -> market figures as CoinGecko names them: "usd_market_cap", "usd_24h_vol" (in /simple/price),
        # "market_cap_rank", "price_change_percentage_7d_in_currency" (in /coins/markets)
        self.market: dict[str, dict[str, float]] = {}
        self.fault: Reply | None = None  # every endpoint
        self.path_faults: dict[str, Reply] = {}  # path prefix -> reply
        self.requests = 0
        self.log: list[tuple[float, str, int]] = []  # (monotonic time, path, status) of every request
        self.calls: list[Call] = []  # the same, with the query

    def fail_with(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, path: str | None = None
    ) -> None:
        """Answer every request (or those whose path starts with `path`) with this until `recover`."""
        if path is None:
            self.fault = (status, body, headers or {})
        else:
            self.path_faults[path] = (status, body, headers or {})

    def recover(self) -> None:
        self.fault = None
        self.path_faults.clear()

    def fault_for(self, path: str) -> Reply | None:
        return self.fault or next((r for prefix, r in self.path_faults.items() if path.startswith(prefix)), None)

    def stamp(self) -> int:
        return self.updated_at or int(time.time())

    def price(self, coin_id: str, currency: str = "usd") -> tuple[float, float | None] | None:
        return self.prices.get(coin_id, {}).get(currency)

    def asked(self, path: str, **query: str) -> list[Call]:
        """The calls to `path` whose query has these values."""
        return [
            c for c in self.calls if c.path == path and all(c.query.get(k, [None])[0] == v for k, v in query.items())
        ]


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
        self.kraken = Side()
        self.binance = Side()
        self.coinbase = Side()
        self.geckoterminal = Side()  # prices by "network:address" (lower case), usd only
        self.defillama = Side()  # prices by "chain:address" in DefiLlama's chain names, usd only
        self.coingecko_ranking: list[str] = []  # CoinGecko ids, largest market cap first
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

    @property
    def kraken_url(self) -> str:
        return f"{self.origin}/0/public"

    @property
    def binance_url(self) -> str:
        return self.origin

    @property
    def coinbase_url(self) -> str:
        return self.origin

    def sides(self) -> dict[str, Side]:
        return {
            "coingecko": self.coingecko,
            "coinpaprika": self.coinpaprika,
            "kraken": self.kraken,
            "binance": self.binance,
            "coinbase": self.coinbase,
            "geckoterminal": self.geckoterminal,
            "defillama": self.defillama,
        }

    @property
    def geckoterminal_url(self) -> str:
        return f"{self.origin}/gt/api/v2"

    @property
    def defillama_url(self) -> str:
        return f"{self.origin}/llama"

    def serve_token(self, network: str, chain: str, address: str, price: float, change: float | None) -> None:
        """Both DEX sources price the token at `address` on GeckoTerminal's `network` (DefiLlama's `chain`)."""
        self.geckoterminal.prices[f"{network}:{address.lower()}"] = {"usd": (price, change)}
        self.defillama.prices[f"{chain}:{address.lower()}"] = {"usd": (price, change)}

    def serve_default_coins(self) -> None:
        """Every side prices the 11 default coins it lists (by its ids from ticker's coin table), with the
        usd and eur prices and 24 h changes of fixtures/coingecko_simple_price_default_coins.constructed.json;
        the exchanges in usd only."""
        quotes = json.loads(body_of("coingecko_simple_price_default_coins.constructed.json"))
        for symbol in DEFAULT_SYMBOLS:
            ids = KNOWN_COINS[symbol].ids
            entry = quotes[ids["coingecko"]]
            both = {cur: (entry[cur], entry[f"{cur}_24h_change"]) for cur in ("usd", "eur")}
            for name, side in self.sides().items():
                if name in ids:
                    side.prices[ids[name]] = (
                        dict(both) if name in ("coingecko", "coinpaprika") else {"usd": both["usd"]}
                    )

    def past_price(self, symbol: str, price: float, at: float) -> float:
        """What the fake's candles say `symbol` cost at Unix time `at`, given its current `price`."""
        return fake_history.past_price(symbol, price, at, time.time())

    def _respond(self, url: SplitResult) -> Reply:
        path, query = url.path, parse_qs(url.query)
        if self.serve_icons and path.startswith("/img/") and path.endswith(".png"):
            with self._lock:
                self.icon_requests += 1
            return 200, icon_png(path[len("/img/") : -len(".png")]), {"content-type": "image/png"}
        side, answer = self._route(path)
        if side is None or answer is None:
            return 404, b'{"error":"Not Found"}', JSON
        fault = side.fault_for(path)
        reply = fault if fault is not None else answer(path, query)
        with self._lock:
            side.requests += 1
            side.log.append((time.monotonic(), path, reply[0]))
            side.calls.append(Call(time.monotonic(), path, query, reply[0]))
        return reply

    def _route(self, path: str) -> tuple[Side | None, Callable[[str, Query], Reply] | None]:
        if path == "/api/v3/simple/price":
            return self.coingecko, self._cg_simple_price
        if path == "/api/v3/coins/markets":
            return self.coingecko, self._cg_markets
        if path.startswith("/api/v3/coins/") and path.endswith("/market_chart"):
            return self.coingecko, self._cg_market_chart
        if path == "/v1/tickers" or path.startswith("/v1/tickers/"):
            return self.coinpaprika, self._paprika_tickers
        if path == "/0/public/Ticker":
            return self.kraken, self._kraken_ticker
        if path == "/0/public/OHLC":
            return self.kraken, self._kraken_ohlc
        if path == "/api/v3/ticker/24hr":
            return self.binance, self._binance_24hr
        if path == "/api/v3/klines":
            return self.binance, self._binance_klines
        if path.startswith("/products/") and path.endswith(("/stats", "/candles")):
            return self.coinbase, self._coinbase
        if path.startswith("/gt/api/v2/simple/networks/") and "/token_price/" in path:
            return self.geckoterminal, self._gt_token_price
        if path.startswith(("/llama/prices/current/", "/llama/percentage/")):
            return self.defillama, self._llama
        return None, None

    # -- CoinGecko --------------------------------------------------------------------------------

    def _cg_simple_price(self, path: str, query: Query) -> Reply:
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

    def _cg_markets(self, path: str, query: Query) -> Reply:
        if query.get("order", [""])[0] == "market_cap_desc" and "ids" not in query:
            return self._cg_ranking(query)
        ids = query.get("ids", [""])[0].split(",")
        origin = self.icon_origin or self.origin
        rows = [
            {"id": i, "symbol": i[:3], "name": i.title(), "image": f"{origin}/img/{i}.png"}
            | {key: value for key, value in self.coingecko.market.get(i, {}).items() if key.startswith(("mark", "pri"))}
            for i in ids
        ]
        ranked = {coin_id: rank for rank, coin_id in enumerate(self.coingecko_ranking, start=1)}
        for row in rows:
            if row["id"] in ranked:
                row.setdefault("market_cap_rank", ranked[row["id"]])
        return 200, json.dumps([r for r in rows if r["id"] in self.coingecko.prices]).encode(), JSON

    def _cg_ranking(self, query: Query) -> Reply:
        """The first `per_page` of `coingecko_ranking`, in the documented /coins/markets row shape."""
        per_page = int(_number(query.get("per_page", ["100"])[0]) or 100)
        currency = query.get("vs_currency", ["usd"])[0]
        rows = []
        for rank, coin_id in enumerate(self.coingecko_ranking[:per_page], start=1):
            price = self.coingecko.price(coin_id, currency)
            symbol = SYMBOL_OF.get(coin_id, coin_id[:4])
            figures = self.coingecko.market.get(coin_id, {})
            rows.append(
                {
                    "id": coin_id,
                    "symbol": symbol.lower(),
                    "name": coin_id.replace("-", " ").title(),
                    "current_price": None if price is None else price[0],
                    "market_cap": figures.get(f"{currency}_market_cap"),  # null where unset, as CoinGecko may
                    "market_cap_rank": rank,
                    "total_volume": figures.get(f"{currency}_24h_vol"),
                }
            )
        return _json(rows)

    def _cg_market_chart(self, path: str, query: Query) -> Reply:
        coin_id = unquote(path[len("/api/v3/coins/") : -len("/market_chart")])
        currency = query.get("vs_currency", [""])[0]
        if coin_id not in self.coingecko.prices:
            return 404, body_of("coingecko_error_coin_not_found.json"), JSON
        quote = self.coingecko.price(coin_id, currency)
        days = _number(query.get("days", [""])[0])
        if quote is None or days is None or days <= 0:
            return _json({"error": "invalid vs_currency or days"}, 400)  # constructed: not modelled on a capture
        chart = fake_history.coingecko_market_chart(SYMBOL_OF.get(coin_id, coin_id), quote[0], days, time.time())
        return _json(chart)

    # -- CoinPaprika ------------------------------------------------------------------------------

    def _paprika_tickers(self, path: str, query: Query) -> Reply:
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

    # -- Kraken: errors come inside a 200 ---------------------------------------------------------

    def _kraken_ticker(self, path: str, query: Query) -> Reply:
        """/Ticker?pair=A,B: one unknown pair fails the whole call, as on Kraken."""
        pairs = query.get("pair", [""])[0].split(",")
        if any(self.kraken.price(pair) is None for pair in pairs):
            return 200, body_of("kraken_error_unknown_pair.json"), JSON
        now = time.time()
        result = {}
        for pair in pairs:
            price, _ = self.kraken.price(pair) or (0.0, None)
            opened = fake_history.past_price(SYMBOL_OF.get(pair, pair), price, now // 86_400 * 86_400, now)
            low, high = min(price, opened) * 0.99, max(price, opened) * 1.01
            text = fake_history.decimals
            result[KRAKEN_RESULT_KEYS.get(pair, pair)] = {
                "a": [text(price * 1.0001), "1", "1.000"],
                "b": [text(price * 0.9999), "1", "1.000"],
                "c": [text(price), "0.50000000"],
                "v": ["1234.56789012", "2345.67890123"],
                "p": [text(price), text(price)],
                "t": [12345, 23456],
                "l": [text(low), text(low)],
                "h": [text(high), text(high)],
                "o": text(opened),  # today's opening price (UTC midnight), not a rolling 24 h one
            }
        return _json({"error": [], "result": result})

    def _kraken_ohlc(self, path: str, query: Query) -> Reply:
        pair = query.get("pair", [""])[0]
        minutes = _number(query.get("interval", ["1"])[0])
        since = _number(query.get("since", [""])[0])
        quote = self.kraken.price(pair)
        if quote is None:
            return 200, body_of("kraken_error_unknown_pair.json"), JSON
        if minutes not in fake_history.KRAKEN_INTERVALS:
            return _json({"error": ["EGeneral:Invalid arguments"]})  # constructed, in the documented envelope
        body = fake_history.kraken_ohlc(
            KRAKEN_RESULT_KEYS.get(pair, pair),
            SYMBOL_OF.get(pair, pair),
            quote[0],
            int(minutes),
            None if since is None else int(since),
            time.time(),
        )
        return _json(body)

    # -- Binance ----------------------------------------------------------------------------------

    def _binance_24hr(self, path: str, query: Query) -> Reply:
        """/ticker/24hr?symbols=["A","B"]: an unknown symbol fails the whole call with -1121."""
        try:
            symbols = json.loads(query.get("symbols", ["[]"])[0])
        except ValueError:
            return 400, body_of("binance_error_1100_symbols.constructed.json"), JSON
        if not isinstance(symbols, list) or any(self.binance.price(str(s)) is None for s in symbols):
            return 400, body_of("binance_error_invalid_symbol.json"), JSON
        close_ms = self.binance.stamp() * 1000
        rows = []
        for symbol in symbols:
            price, change = self.binance.price(symbol) or (0.0, None)
            opened = price / (1 + (change or 0.0) / 100)
            row = {"symbol": symbol, "priceChange": f"{price - opened:.8f}", "priceChangePercent": f"{change or 0:.3f}"}
            row |= {k: f"{v:.8f}" for k, v in (("weightedAvgPrice", price), ("prevClosePrice", opened))}
            row |= {"lastPrice": f"{price:.8f}", "lastQty": "0.00120000", "bidPrice": f"{price:.8f}"}
            row |= {"bidQty": "3.21650000", "askPrice": f"{price:.8f}", "askQty": "0.51840000"}
            row |= {"openPrice": f"{opened:.8f}", "highPrice": f"{max(price, opened) * 1.01:.8f}"}
            row |= {"lowPrice": f"{min(price, opened) * 0.99:.8f}", "volume": "18234.51230000"}
            row |= {"quoteVolume": "1644986742.15832100", "openTime": close_ms - 86_400_000, "closeTime": close_ms}
            row |= {"firstId": 5401234567, "lastId": 5404321098, "count": 3086532}
            rows.append(row)
        return _json(rows)

    def _binance_klines(self, path: str, query: Query) -> Reply:
        symbol = query.get("symbol", [""])[0]
        seconds = fake_history.BINANCE_INTERVALS.get(query.get("interval", [""])[0])
        quote = self.binance.price(symbol)
        if quote is None:
            return 400, body_of("binance_error_invalid_symbol.json"), JSON
        if seconds is None:
            return _json({"code": -1120, "msg": "Invalid interval."}, 400)  # constructed from errors.md
        start, end = (_number(query.get(k, [""])[0]) for k in ("startTime", "endTime"))
        limit = _number(query.get("limit", [""])[0]) or fake_history.BINANCE_DEFAULT_LIMIT
        rows = fake_history.binance_klines(
            SYMBOL_OF.get(symbol, symbol),
            quote[0],
            seconds,
            None if start is None else int(start),
            None if end is None else int(end),
            int(limit),
            time.time(),
        )
        return _json(rows)

    # -- GeckoTerminal and DefiLlama: tokens by contract address, usd only -------------------------

    def _gt_token_price(self, path: str, query: Query) -> Reply:
        """Unknown addresses are left out of every map, as GeckoTerminal does."""
        network, _, addresses = path[len("/gt/api/v2/simple/networks/") :].partition("/token_price/")
        known = {}
        for address in _token_ids(addresses, ""):
            quote = self.geckoterminal.price(f"{unquote(network)}:{address}")
            if quote is not None:
                known[address] = quote
        attributes = {
            "token_prices": {a: fake_history.decimals(p) for a, (p, _) in known.items()},
            "market_cap_usd": {a: fake_history.decimals(p * 1_000_000) for a, (p, _) in known.items()},
            "h24_volume_usd": {a: fake_history.decimals(p * 25_000) for a, (p, _) in known.items()},
            "h24_price_change_percentage": {a: None if c is None else str(c) for a, (_, c) in known.items()},
            "total_reserve_in_usd": {a: "269041.15769788764465650874159" for a in known},
        }
        data = {"id": "1965b339-94a3-4a77-9475-2c3248081bcf", "type": "simple_token_price", "attributes": attributes}
        return _json({"data": data})

    def _llama(self, path: str, query: Query) -> Reply:
        coins: dict[str, Any] = {}
        if path.startswith("/llama/percentage/"):
            for token_id in _token_ids(path, "/llama/percentage/"):
                quote = self.defillama.price(token_id)
                if quote is not None and quote[1] is not None:
                    coins[token_id] = quote[1]
            return _json({"coins": coins})
        stamp = self.defillama.stamp()
        for token_id in _token_ids(path, "/llama/prices/current/"):
            quote = self.defillama.price(token_id)
            if quote is not None:
                entry = {"decimals": 18, "symbol": "TOKEN", "price": quote[0], "timestamp": stamp, "confidence": 0.99}
                coins[token_id] = entry
        return _json({"coins": coins})

    # -- Coinbase Exchange ------------------------------------------------------------------------

    def _coinbase(self, path: str, query: Query) -> Reply:
        product = unquote(path.split("/")[2])
        quote = self.coinbase.price(product)
        if quote is None:
            return 404, body_of("coinbase_error_404.constructed.json"), JSON
        price, change = quote
        if path.endswith("/stats"):
            opened = price / (1 + (change or 0.0) / 100)
            stats = {"open": opened, "high": max(price, opened) * 1.01, "low": min(price, opened) * 0.99}
            body = {k: f"{v:.8f}" for k, v in stats.items()}
            body |= {"volume": "26185.51325269", "last": f"{price:.8f}", "volume_30day": "1019451.11188405"}
            return _json(body)
        granularity = _number(query.get("granularity", [""])[0])
        if granularity not in fake_history.COINBASE_GRANULARITIES:
            return _json({"message": "Unsupported granularity"}, 400)  # constructed, in the documented envelope
        start, end = (fake_history.iso_seconds(query.get(k, [""])[0]) for k in ("start", "end"))
        rows = fake_history.coinbase_candles(
            SYMBOL_OF.get(product, product), price, int(granularity), start, end, time.time()
        )
        if rows is None:
            return 400, body_of("coinbase_error_candles_range.json"), JSON
        return _json(rows)


def _token_ids(path: str, prefix: str) -> list[str]:
    return [unquote(part).lower() for part in path[len(prefix) :].split(",") if part]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
