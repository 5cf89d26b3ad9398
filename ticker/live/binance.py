"""Binance spot's combined `<symbol>@miniTicker` streams.

Source: Binance's "WebSocket Streams for Binance" (github.com/binance/binance-spot-api-docs,
`web-socket-streams.md`, as of 2026-07; also developers.binance.com/docs/binance-spot-api-docs/
web-socket-streams):
- endpoint `wss://stream.binance.com:9443`; combined streams at `/stream?streams=<a>/<b>/...`, each
  event wrapped as `{"stream": "<name>", "data": <payload>}`; stream symbols are lower case.
- Individual Symbol Mini Ticker Stream: "24hr rolling window mini-ticker statistics. These are NOT
  the statistics of the UTC day, but a 24hr rolling window for the previous 24hrs"; payload
  `{"e": "24hrMiniTicker", "E": <event time, ms>, "s": "BNBBTC", "c": <close>, "o": <open>, "h", "l",
  "v", "q"}` (numbers as strings), pushed every 1000 ms. Change = (c / o - 1) * 100.
- limits: 5 incoming messages per second per connection (pings, pongs and JSON control messages
  count; beyond it the connection is dropped and repeat offenders' IPs banned), 1024 streams per
  connection, 300 connection attempts every 5 minutes per IP; a connection lives at most 24 hours.
- the server sends a WebSocket ping every 20 s and drops a connection that has not answered with a
  pong within a minute (the WebSocket library answers); `serverShutdown` announces a disconnection.
- control answers: `{"result": null, "id": N}`; errors `{"error": {"code": .., "msg": ..}, "id": ..}`
  (and the table's bare `{"code": .., "msg": ..}`).

We name the streams in the URL (`url()`) rather than sending `SUBSCRIBE`: no message spends the
5-a-second budget, nothing waits for an ack, and a reconnect is one request. Binance accepts any stream
name this way (an unknown symbol simply sends nothing), so the first frame after connecting reports
every named pair as Subscribed; a pair that never ticks is left to the poller by the hub's freshness
rule. At most 1024 pairs are named (the per-connection limit); the rest stay with the poller.

Timing: miniTickers arrive every second for a traded pair and the server pings every 20 s, so a
minute of silence (Binance's own pong deadline) means the stream is dead. No application ping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ticker.live.feed import FeedError, FeedEvent, Heartbeat, Subscribed, Ticks
from ticker.live.frames import change_from_open, load, not_after, price, short, tick
from ticker.models import Coin
from ticker.providers.binance import QUOTE_ASSET, SYMBOL_RE
from ticker.providers.parsing import number

NAME = "binance"
MAX_STREAMS = 1024  # streams per connection
STREAM_SUFFIX = "@miniTicker"
_EVENT = "24hrMiniTicker"
_LATEST_MS = 32503680000000  # 3000-01-01 in Unix milliseconds


class BinanceFeed:
    name = NAME
    default_url = "wss://stream.binance.com:9443"
    silence_seconds = 60.0
    ping_seconds: float | None = None
    send_spacing = 0.25  # under 5 incoming messages a second (we send none: streams are in the URL)
    refusal_voids_subscription = False

    def __init__(self) -> None:
        self._named: tuple[str, ...] = ()  # the pairs the last url() named
        self._confirmed = False

    def pair(self, coin: Coin) -> str | None:
        """The coin's USDT pair (`ids["binance"]`, "BTCUSDT") lower-cased as streams name it ("btcusdt")."""
        symbol = coin.ids.get(NAME)
        if symbol is None or not SYMBOL_RE.fullmatch(symbol) or not symbol.endswith(QUOTE_ASSET):
            return None
        return symbol.lower() if symbol != QUOTE_ASSET else None

    def url(self, base: str, pairs: Sequence[str]) -> str:
        """`base/stream?streams=btcusdt@miniTicker/...` for the first 1024 pairs."""
        self._named = tuple(pairs[:MAX_STREAMS])
        return f"{base.rstrip('/')}/stream?streams=" + "/".join(p + STREAM_SUFFIX for p in self._named)

    def subscribe(self, pairs: Sequence[str]) -> list[str]:
        return []  # named in the URL

    def ping(self) -> str | None:
        return None

    def reset(self) -> None:
        self._confirmed = False

    def parse(self, frame: str | bytes, pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        message = load(frame, NAME)
        if not isinstance(message, dict):
            raise FeedError("binance: frame is not a JSON object")
        events = self._events(message, pairs, received)
        if not self._confirmed and self._named:
            self._confirmed = True
            events.insert(0, Subscribed(self._named))
        return events

    def _events(self, message: dict[str, Any], pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        if "error" in message:
            error = message["error"]
            error = error if isinstance(error, dict) else {"msg": error}
            raise FeedError(f"binance: error {short(error.get('code'))}: {short(error.get('msg'))}")
        if "code" in message and "msg" in message:
            raise FeedError(f"binance: error {short(message['code'])}: {short(message['msg'])}")
        if "result" in message and "id" in message:
            return [Heartbeat()]  # the answer to a control message
        data = message.get("data", message) if "stream" in message else message
        if not isinstance(data, dict):
            raise FeedError("binance: stream event without a data object")
        event = data.get("e")
        if event == _EVENT:
            return _mini_ticker(data, pairs, received)
        if event == "serverShutdown":
            raise FeedError("binance: server shutting down")
        return []  # another stream's event: not ours to read


def _mini_ticker(data: dict[str, Any], pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
    raw = data.get("s")
    if not isinstance(raw, str):
        raise FeedError("binance: miniTicker without a symbol")
    pair = raw.lower()
    symbol = pairs.get(pair)
    if symbol is None:
        return []
    close = price(data.get("c"), NAME, pair, strings=True)
    change = change_from_open(close, data.get("o"))
    return [Ticks((tick(symbol, close, change, not_after(_event_time(data.get("E")), received), NAME),))]


def _event_time(value: Any) -> datetime | None:
    """The event time in Unix milliseconds as UTC; None when it is not a plausible one."""
    millis = number(value) if not isinstance(value, str) else None
    if millis is None or not math.isfinite(millis) or millis <= 0 or millis > _LATEST_MS:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)
