"""A local fake of the three exchanges' public WebSocket ticker feeds, with faults, for tests.

Paths (one server, one port):

- `/kraken/v2`: Kraken Spot WebSocket v2 (docs.kraken.com/exchange/api-reference/spot-websocket-v2/ticker):
  a `status` message on connect; `{"method": "subscribe", "params": {"channel": "ticker", "symbol": [...]},
  "req_id": n}` answered per symbol by an ack (`"success": true`, `result.symbol`) or an error
  (`"success": false`, `"error"`, `"symbol"`), then a `snapshot` of the pair's ticker; `update`s on each
  tick; `{"channel": "heartbeat"}` about once a second while subscribed; `{"method": "ping"}` answered by
  `{"method": "pong"}` with the same `req_id`. Ticker fields: symbol, bid, bid_qty, ask, ask_qty, last,
  volume, vwap, low, high, change, change_pct, timestamp (RFC 3339).
- `/coinbase`: Coinbase Exchange (docs.cdp.coinbase.com/exchange/websocket-feed/channels): `{"type":
  "subscribe", "product_ids": [...], "channels": ["ticker", "heartbeat"]}` (channels also as objects with
  their own product_ids) answered by `{"type": "subscriptions", "channels": [...]}` and the products' last
  `ticker`; an unknown product fails the whole message with `{"type": "error", "message": "Failed to
  subscribe", "reason": "<id> is not a valid product"}` and nothing subscribed (coinbase/coinbase-pro-node#174,
  thrasher-corp/gocryptotrader#1421); `heartbeat` messages per product every second on the heartbeat channel;
  no subscribe within `subscribe_deadline` (5 s, as documented) closes the connection.
- `/binance/stream?streams=btcusdt@miniTicker/...` (combined, frames wrapped `{"stream", "data"}`) and
  `/binance/ws[/<stream>]` (raw) for Binance Spot (developers.binance.com/docs/binance-spot-api-docs/
  web-socket-streams): `{"method": "SUBSCRIBE", "params": [...], "id": n}` answered `{"result": null,
  "id": n}`, a malformed stream name by `{"error": {"code": 2, "msg": "Invalid request: invalid stream"},
  "id": n}` (ctubio/Krypto-trading-bot#1121); an unknown symbol is accepted and never ticks, as Binance does
  (JKorf/Binance.Net#620); `24hrMiniTicker` payloads (e, E, s, c, o, h, l, v, q) on each tick and, for pairs
  with a price, again every `heartbeat_seconds` (the documented update speed is 1000 ms); WebSocket pings
  only; more than 5 incoming messages in a second closes the connection (the documented limit).

Constructed (no documented shape found; change them if the real one turns up): Coinbase's close on a
missed subscribe and a slow consumer (code 1008 with a short reason), Binance's close over the message
limit (1008 "Too many requests").

Faults, switchable while a client is connected: `tick` (to every subscriber of that pair), `drop` (a close
code, or an abrupt TCP drop), `silence` (no frames at all, optionally not even reading, so WebSocket pings
go unanswered), `malformed`, `send` (any raw frame), `refuse_handshakes` (HTTP 429 + Retry-After),
`refuse_pair` (the exchange's own refusal), `slow_consumer` (the Coinbase close). `records` notes every
handshake (monotonic time, exchange, path, HTTP status, pairs subscribed) so tests can count upstream
connections.

Drivable in-process (`async with FakeExchange() as fake`, on the test's loop) or from a thread (`with
FakeExchange() as fake`: its own loop on a daemon thread, for tests that run the real `ticker serve`).
Every public method is safe to call from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

EXCHANGES = ("kraken", "coinbase", "binance")
BINANCE_MAX_MESSAGES_PER_SECOND = 5


@dataclass
class Record:
    """One handshake: `status` 101 when accepted; `pairs` the exchange's pair names it subscribed to."""

    at: float  # time.monotonic()
    exchange: str
    path: str
    status: int
    pairs: list[str] = field(default_factory=list)
    closed_at: float | None = None
    close_code: int | None = None  # the client's close code; 1006 when the TCP connection just ended
    user_agent: str | None = None


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    exchange: str
    record: Record
    combined: bool = False  # Binance: frames wrapped as {"stream", "data"}
    heartbeat: bool = False  # Coinbase: subscribed to the heartbeat channel
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    sent: list[float] = field(default_factory=list)  # Binance: when the client's messages arrived


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _num(value: float) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".")


def kraken_ticker(pair: str, price: float, change: float | None, kind: str = "update") -> str:
    """A Kraken v2 `ticker` snapshot or update for one pair; other figures derived from the price."""
    pct = change or 0.0
    opened = price / (1 + pct / 100)
    row = {
        "symbol": pair,
        "bid": round(price * 0.9999, 8),
        "bid_qty": 0.5,
        "ask": round(price * 1.0001, 8),
        "ask_qty": 0.25,
        "last": price,
        "volume": 1234.5,
        "vwap": round((price + opened) / 2, 8),
        "low": round(min(price, opened) * 0.99, 8),
        "high": round(max(price, opened) * 1.01, 8),
        "change": round(price - opened, 8),
        "change_pct": round(pct, 2),
        "timestamp": _now_iso(),
    }
    return json.dumps({"channel": "ticker", "type": kind, "data": [row]})


def coinbase_ticker(product: str, price: float, change: float | None, sequence: int, trade_id: int) -> str:
    """A Coinbase Exchange `ticker` message; open_24h from the change, so (price - open) / open is it."""
    opened = price / (1 + (change or 0.0) / 100)
    return json.dumps(
        {
            "type": "ticker",
            "sequence": sequence,
            "product_id": product,
            "price": _num(price),
            "open_24h": _num(opened),
            "volume_24h": "1234.5",
            "low_24h": _num(min(price, opened) * 0.99),
            "high_24h": _num(max(price, opened) * 1.01),
            "volume_30d": "45678.9",
            "best_bid": _num(price * 0.9999),
            "best_bid_size": "0.5",
            "best_ask": _num(price * 1.0001),
            "best_ask_size": "0.25",
            "side": "buy",
            "time": _now_iso(),
            "trade_id": trade_id,
            "last_size": "0.01",
        }
    )


def binance_mini_ticker(symbol: str, price: float, change: float | None) -> dict[str, Any]:
    """A Binance `24hrMiniTicker` payload; the open price ("o") from the change."""
    opened = price / (1 + (change or 0.0) / 100)
    return {
        "e": "24hrMiniTicker",
        "E": int(time.time() * 1000),
        "s": symbol.upper(),
        "c": _num(price),
        "o": _num(opened),
        "h": _num(max(price, opened) * 1.01),
        "l": _num(min(price, opened) * 0.99),
        "v": "1234.5",
        "q": _num(1234.5 * price),
    }


class FakeExchange:
    def __init__(self, *, heartbeat_seconds: float = 1.0, subscribe_deadline: float = 5.0) -> None:
        self.heartbeat_seconds = heartbeat_seconds
        self.subscribe_deadline = subscribe_deadline
        self.records: list[Record] = []
        self.prices: dict[tuple[str, str], tuple[float, float | None]] = {}  # (exchange, pair) -> price, change
        self._lock = threading.Lock()
        self._refused_pairs: dict[str, set[str]] = {name: set() for name in EXCHANGES}
        self._refuse: dict[str, tuple[int, str | None]] = {}
        self._silent: set[str] = set()
        self._clients: set[_Client] = set()
        self._sequence = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[int, Record] = {}  # id(connection) -> its handshake's record

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, ping_interval=20.0
        )

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close(close_connections=False)
            for client in list(self._clients):
                client.ws.transport.abort()
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.aclose())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-exchange", daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    def url(self, exchange: str) -> str:
        """The base URL to configure as `providers.<exchange>.stream_url`."""
        path = {"kraken": "/kraken/v2", "coinbase": "/coinbase", "binance": "/binance"}[exchange]
        return f"ws://127.0.0.1:{self.port}{path}"

    # -- what happened --------------------------------------------------------------------------

    def connections(self, exchange: str, *, open_only: bool = False) -> list[Record]:
        """Accepted connections to `exchange` (still open only, if asked)."""
        with self._lock:
            return [
                r
                for r in self.records
                if r.exchange == exchange and r.status == 101 and not (open_only and r.closed_at is not None)
            ]

    def attempts(self, exchange: str) -> list[Record]:
        """Every handshake to `exchange`, refused ones included."""
        with self._lock:
            return [r for r in self.records if r.exchange == exchange]

    # -- faults and ticks (any thread) ----------------------------------------------------------

    def tick(self, exchange: str, pair: str, price: float, change: float | None = None) -> None:
        """A new price (and rolling 24 h change, percent) for `pair`, sent to every subscriber of it."""
        with self._lock:
            self.prices[(exchange, _key(exchange, pair))] = (price, change)
        self._run(self._tick(exchange, _key(exchange, pair), price, change))

    def drop(self, exchange: str, *, code: int = 1001, reason: str = "", abrupt: bool = False) -> None:
        """Close every connection to `exchange` with `code` and `reason`, or drop the TCP connection."""
        self._run(self._drop(exchange, code, reason, abrupt))

    def silence(self, exchange: str, *, pings: bool = True) -> None:
        """No frames to anyone on `exchange` from now on; `pings=False`: stop reading too, so WebSocket
        pings (and everything else the clients send) go unanswered."""
        with self._lock:
            self._silent.add(exchange)
        if not pings:
            self._run(self._pause(exchange, True))

    def resume(self, exchange: str) -> None:
        with self._lock:
            self._silent.discard(exchange)
        self._run(self._pause(exchange, False))

    def malformed(self, exchange: str, frame: str = '{"channel": "ticker", "type": "update", "data": [{"sym') -> None:
        """Send a frame that is not what the exchange documents to every client of `exchange`."""
        self.send(exchange, frame)

    def send(self, exchange: str, frame: str) -> None:
        """Send any raw text frame to every client of `exchange` (e.g. an exchange error message)."""
        self._run(self._send_all(exchange, frame))

    def refuse_handshakes(self, exchange: str, status: int = 429, retry_after: str | None = "2") -> None:
        """Answer new handshakes to `exchange` with HTTP `status` (and `Retry-After`, unless None)."""
        with self._lock:
            self._refuse[exchange] = (status, retry_after)

    def accept_handshakes(self, exchange: str) -> None:
        with self._lock:
            self._refuse.pop(exchange, None)

    def refuse_pair(self, exchange: str, pair: str) -> None:
        """Answer subscriptions to `pair` as the exchange answers an unknown pair."""
        with self._lock:
            self._refused_pairs[exchange].add(_key(exchange, pair))

    def slow_consumer(self, exchange: str = "coinbase") -> None:
        """Close every connection as an exchange closes a client that reads too slowly (constructed)."""
        self.drop(exchange, code=1008, reason="slow consumer")

    # -- inside (the server's loop) -------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        loop = self._loop
        assert loop is not None, "the fake exchange is not running"
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    def _of(self, exchange: str) -> list[_Client]:
        return [c for c in self._clients if c.exchange == exchange]

    def _is_silent(self, exchange: str) -> bool:
        with self._lock:
            return exchange in self._silent

    async def _out(self, client: _Client, frame: str) -> None:
        if self._is_silent(client.exchange):
            return
        with contextlib.suppress(ConnectionClosed):
            await client.ws.send(frame)

    async def _send_all(self, exchange: str, frame: str) -> None:
        for client in self._of(exchange):
            await self._out(client, frame)

    async def _tick(self, exchange: str, pair: str, price: float, change: float | None) -> None:
        for client in self._of(exchange):
            if pair in client.record.pairs:
                await self._out(client, self._ticker_frame(client, pair, price, change))

    def _ticker_frame(
        self, client: _Client, pair: str, price: float, change: float | None, kind: str = "update"
    ) -> str:
        self._sequence += 1
        if client.exchange == "kraken":
            return kraken_ticker(pair, price, change, kind)
        if client.exchange == "coinbase":
            return coinbase_ticker(pair, price, change, self._sequence, self._sequence)
        data = binance_mini_ticker(pair, price, change)
        if client.combined:
            return json.dumps({"stream": f"{pair.lower()}@miniTicker", "data": data})
        return json.dumps(data)

    async def _drop(self, exchange: str, code: int, reason: str, abrupt: bool) -> None:
        for client in self._of(exchange):
            if abrupt:
                client.ws.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.ws.close(code, reason), 2)

    async def _pause(self, exchange: str, pause: bool) -> None:
        for client in self._of(exchange):
            if pause:
                client.ws.transport.pause_reading()
            else:
                client.ws.transport.resume_reading()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        exchange = _exchange_of(request.path)
        with self._lock:
            refuse = self._refuse.get(exchange) if exchange else None
            status = 404 if exchange is None else refuse[0] if refuse else 101
            record = Record(time.monotonic(), exchange or "?", request.path, status)
            record.user_agent = request.headers.get("User-Agent")
            self.records.append(record)
            self._pending[id(connection)] = record
        if exchange is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if refuse is not None:
            response = connection.respond(refuse[0], f"{HTTPStatus(refuse[0]).phrase}\n")
            if refuse[1] is not None:
                response.headers["Retry-After"] = refuse[1]
            return response
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else ""
        exchange = _exchange_of(path) or "?"
        with self._lock:
            record = self._pending.pop(id(ws))
        client = _Client(ws, exchange, record)
        self._clients.add(client)
        beats = asyncio.create_task(self._heartbeats(client))
        try:
            if exchange == "kraken":
                await self._kraken(client)
            elif exchange == "coinbase":
                await self._coinbase(client)
            else:
                await self._binance(client)
        except ConnectionClosed:
            pass
        finally:
            beats.cancel()
            self._clients.discard(client)
            with self._lock:
                record.closed_at = time.monotonic()
                record.close_code = ws.close_code

    async def _heartbeats(self, client: _Client) -> None:
        await client.subscribed.wait()
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            if client.exchange == "kraken":
                await self._out(client, json.dumps({"channel": "heartbeat"}))
            elif client.exchange == "binance":  # "Update Speed: 1000ms": the last figures again
                for pair in list(client.record.pairs):
                    with self._lock:
                        held = self.prices.get(("binance", pair))
                    if held is not None:
                        await self._out(client, self._ticker_frame(client, pair, *held))
            elif client.exchange == "coinbase" and client.heartbeat:
                for product in list(client.record.pairs):
                    self._sequence += 1
                    beat = {
                        "type": "heartbeat",
                        "sequence": self._sequence,
                        "last_trade_id": self._sequence,
                        "product_id": product,
                        "time": _now_iso(),
                    }
                    await self._out(client, json.dumps(beat))

    def _subscribe(self, client: _Client, pairs: list[str]) -> tuple[list[str], list[str]]:
        """Note `pairs` as subscribed; (accepted, refused)."""
        with self._lock:
            refused = [p for p in pairs if p in self._refused_pairs[client.exchange]]
            accepted = [p for p in pairs if p not in refused]
            client.record.pairs.extend(p for p in accepted if p not in client.record.pairs)
        if accepted:
            client.subscribed.set()
        return accepted, refused

    def _snapshot(self, client: _Client, pair: str) -> str | None:
        with self._lock:
            held = self.prices.get((client.exchange, pair))
        return None if held is None else self._ticker_frame(client, pair, *held, kind="snapshot")

    async def _kraken(self, client: _Client) -> None:
        status = {"api_version": "v2", "connection_id": id(client), "system": "online", "version": "2.0.10"}
        await self._out(client, json.dumps({"channel": "status", "type": "update", "data": [status]}))
        async for message in client.ws:
            time_in = _now_iso()
            try:
                request = json.loads(message)
                method = request["method"]
            except (ValueError, KeyError, TypeError):
                await self._out(
                    client, json.dumps({"error": "Malformed request", "success": False, "time_in": time_in})
                )
                continue
            req_id = request.get("req_id")
            if method == "ping":
                await self._out(
                    client, json.dumps({"method": "pong", "req_id": req_id, "time_in": time_in, "time_out": _now_iso()})
                )
                continue
            params = request.get("params") or {}
            if method != "subscribe" or params.get("channel") != "ticker":
                await self._out(
                    client, json.dumps({"error": "Method not supported", "method": method, "success": False})
                )
                continue
            accepted, refused = self._subscribe(client, [str(s) for s in params.get("symbol", [])])
            for pair in refused:
                error = {
                    "error": f"Currency pair not supported {pair}",
                    "method": "subscribe",
                    "req_id": req_id,
                    "success": False,
                    "symbol": pair,
                    "time_in": time_in,
                    "time_out": _now_iso(),
                }
                await self._out(client, json.dumps(error))
            for pair in accepted:
                ack = {
                    "method": "subscribe",
                    "result": {"channel": "ticker", "snapshot": params.get("snapshot", True), "symbol": pair},
                    "req_id": req_id,
                    "success": True,
                    "time_in": time_in,
                    "time_out": _now_iso(),
                }
                await self._out(client, json.dumps(ack))
                snapshot = self._snapshot(client, pair) if params.get("snapshot", True) else None
                if snapshot is not None:
                    await self._out(client, snapshot)

    async def _coinbase(self, client: _Client) -> None:
        try:
            async with asyncio.timeout(self.subscribe_deadline):
                first = await client.ws.recv()
        except TimeoutError:
            await client.ws.close(1008, "no subscribe within 5 s")
            return
        message: str | bytes | None = first
        while message is not None:
            await self._coinbase_message(client, message)
            try:
                message = await client.ws.recv()
            except ConnectionClosed:
                return

    async def _coinbase_message(self, client: _Client, message: str | bytes) -> None:
        try:
            request = json.loads(message)
            kind = request["type"]
        except (ValueError, KeyError, TypeError):
            await self._out(client, json.dumps({"type": "error", "message": "Malformed JSON"}))
            return
        if kind != "subscribe":
            return
        products = [str(p) for p in request.get("product_ids", [])]
        channels: list[str] = []
        for channel in request.get("channels", []):
            if isinstance(channel, dict):
                channels.append(str(channel.get("name")))
                products += [str(p) for p in channel.get("product_ids", []) if p not in products]
            else:
                channels.append(str(channel))
        with self._lock:
            bad = [p for p in products if p in self._refused_pairs["coinbase"]]
        if bad:
            reason = f"{bad[0]} is not a valid product"
            await self._out(client, json.dumps({"type": "error", "message": "Failed to subscribe", "reason": reason}))
            return
        accepted, _ = self._subscribe(client, products)
        client.heartbeat = client.heartbeat or "heartbeat" in channels
        listed = [{"name": name, "product_ids": accepted} for name in channels]
        await self._out(client, json.dumps({"type": "subscriptions", "channels": listed}))
        if "ticker" in channels:
            for product in accepted:
                snapshot = self._snapshot(client, product)
                if snapshot is not None:
                    await self._out(client, snapshot)

    async def _binance(self, client: _Client) -> None:
        split = urlsplit(client.ws.request.path if client.ws.request is not None else "")
        named: list[str] = []
        if split.path == "/binance/stream":
            client.combined = True
            for value in parse_qs(split.query).get("streams", []):
                named += [s for s in value.split("/") if s]
        elif split.path.startswith("/binance/ws/"):
            named.append(split.path.removeprefix("/binance/ws/"))
        self._subscribe(client, [p for p in map(_binance_pair, named) if p is not None])
        async for message in client.ws:
            now = time.monotonic()
            client.sent = [t for t in client.sent if now - t < 1.0] + [now]
            if len(client.sent) > BINANCE_MAX_MESSAGES_PER_SECOND:
                await client.ws.close(1008, "Too many requests")
                return
            try:
                request = json.loads(message)
                method, request_id = request["method"], request.get("id")
            except (ValueError, KeyError, TypeError):
                await self._out(client, json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
                continue
            if method == "SUBSCRIBE":
                streams = [str(s) for s in request.get("params", [])]
                pairs = [_binance_pair(s) for s in streams]
                if not all(pairs):
                    error = {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": request_id}
                    await self._out(client, json.dumps(error))
                    continue
                self._subscribe(client, [p for p in pairs if p])
                await self._out(client, json.dumps({"result": None, "id": request_id}))
            elif method == "LIST_SUBSCRIPTIONS":
                listed = [f"{p.lower()}@miniTicker" for p in client.record.pairs]
                await self._out(client, json.dumps({"result": listed, "id": request_id}))
            else:
                await self._out(client, json.dumps({"result": None, "id": request_id}))


def _exchange_of(path: str) -> str | None:
    route = urlsplit(path).path
    if route == "/kraken/v2":
        return "kraken"
    if route == "/coinbase":
        return "coinbase"
    if route == "/binance/stream" or route == "/binance/ws" or route.startswith("/binance/ws/"):
        return "binance"
    return None


def _binance_pair(stream: str) -> str | None:
    """`btcusdt@miniTicker` -> "BTCUSDT"; None for a stream name that is not a mini ticker of a symbol."""
    symbol, _, kind = stream.partition("@")
    return symbol.upper() if kind == "miniTicker" and symbol.isalnum() and symbol == symbol.lower() else None


def _key(exchange: str, pair: str) -> str:
    return pair.upper() if exchange == "binance" else pair
