"""Kraken's WebSocket v2 `ticker` channel.

Sources (Kraken's API reference, docs.kraken.com/exchange/api-reference/spot-websocket-v2/):
- `ticker`: subscribe `{"method": "subscribe", "params": {"channel": "ticker", "symbol": [...]}}`; one
  ack per symbol, `{"method": "subscribe", "result": {"channel": "ticker", "symbol": "BTC/USD", ...},
  "success": true}`, or `"success": false` with an `"error"` text; then `snapshot` and `update` messages
  `{"channel": "ticker", "type": "snapshot"|"update", "data": [{"symbol", "last", "change_pct", ...}]}`
  with prices as JSON numbers. `change_pct` is "24-hour price change (in percentage points)" and
  `change` "24-hour price change": a rolling 24 h window, as the v1 ticker's `last_24h` fields and
  the REST ticker (ticker/providers/kraken.py) also are. `last` is "only guaranteed if traded within the
  past 24 hours": an entry without one carries no price. The current page adds an RFC 3339
  `timestamp` to each entry; older captures have none, and then the frame's arrival time is used.
- `heartbeat`: `{"channel": "heartbeat"}` about once a second in the absence of other updates.
- `status`: `{"channel": "status", "type": "update", "data": [{"system": "online", ...}]}` on connect
  and on every change of the trading engine's state (online, maintenance, cancel_only, post_only).
- `ping`: `{"method": "ping"}` answered by `{"method": "pong", ...}`, an application-level ping.
- v1 vs v2 (spot-websocket overview): v2 names pairs `BTC/USD` where v1 said `XBT/USD` and REST
  `XBTUSD`; the coin table's `kraken_ws` id holds the v2 name (docs/coin-ids.md).
- Refused pairs: the ack's error reads "Currency pair not supported XBT/USDC" (JKorf/Kraken.Net#126,
  2024-12, quoting the exchange); acks of a failed subscription also carry the `symbol`.
- Limits: Kraken documents no fixed number of symbols per subscribe and a dynamic per-connection
  message rate ("Exceeded msg rate"; docs.kraken.com/api/docs/guides/spot-ratelimits): we send at most
  `BATCH` symbols per frame, `send_spacing` apart.

Timing: heartbeats come every second when nothing else does, so ten silent seconds mean the stream is
dead (a little more than "about three periods": one slow second on a busy link should not cost a
reconnect, and reconnects spend the IP's connection budget); an application ping every 30 s proves the
request path too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ticker.live.feed import FeedError, FeedEvent, Heartbeat, Refused, Subscribed, Ticks
from ticker.live.frames import load, not_after, price, short, tick
from ticker.models import Coin
from ticker.providers.parsing import iso_time, percent

NAME = "kraken"
ID_KEY = "kraken_ws"  # the coin table's id key for Kraken's v2 pair name ("BTC/USD")
BATCH = 50  # symbols per subscribe frame
_MAINTENANCE = "maintenance"


class KrakenFeed:
    name = NAME
    default_url = "wss://ws.kraken.com/v2"
    silence_seconds = 10.0
    ping_seconds: float | None = 30.0
    send_spacing = 0.5
    refusal_voids_subscription = False

    def pair(self, coin: Coin) -> str | None:
        """The coin's v2 USD pair (`ids["kraken_ws"]`, "BTC/USD"), or None."""
        pair = coin.ids.get(ID_KEY)
        return pair if pair is not None and pair.endswith("/USD") and len(pair) > 4 else None

    def url(self, base: str, pairs: Sequence[str]) -> str:
        return base

    def subscribe(self, pairs: Sequence[str]) -> list[str]:
        """One `subscribe` frame per `BATCH` symbols."""
        return [
            json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": list(pairs[i : i + BATCH])}})
            for i in range(0, len(pairs), BATCH)
        ]

    def ping(self) -> str | None:
        return json.dumps({"method": "ping"})

    def reset(self) -> None:
        """Nothing to forget: Kraken's ticker has no sequence numbers."""

    def parse(self, frame: str | bytes, pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        message = load(frame, NAME)
        if not isinstance(message, dict):
            raise FeedError("kraken: frame is not a JSON object")
        method = message.get("method")
        if method == "subscribe":
            return [_ack(message)]
        if method == "pong":
            return [Heartbeat()]
        if method is not None:
            if message.get("success") is False:
                raise FeedError(f"kraken: {short(method)} failed: {short(message.get('error'))}")
            return []  # an answer to a request we do not send (unsubscribe): ignored, as for unknown types
        channel = message.get("channel")
        if channel == "ticker":
            return _ticks(message, pairs, received)
        if channel == "heartbeat":
            return [Heartbeat()]
        if channel == "status":
            return [_status(message)]
        if "error" in message or "Error" in message:  # e.g. {"Error": "Exceeded msg rate"}
            raise FeedError(f"kraken: {short(message.get('error', message.get('Error')))}")
        return []  # "Clients are expected to ignore messages they do not support"


def _ack(message: dict[str, Any]) -> FeedEvent:
    """A subscribe ack: the pair confirmed, or refused (its symbol named in `result`, `symbol` or the text)."""
    result = message.get("result")
    result = result if isinstance(result, dict) else {}
    symbol = result.get("symbol", message.get("symbol"))
    symbol = symbol if isinstance(symbol, str) and symbol else None
    success = message.get("success")
    if success is True:
        if symbol is None:
            raise FeedError("kraken: subscribe ack without a symbol")
        return Subscribed((symbol,))
    if success is not False:
        raise FeedError("kraken: subscribe ack without success true or false")
    error = short(message.get("error", "subscription refused"))
    if symbol is None:
        named = error.rsplit(" ", 1)[-1]
        symbol = named if "/" in named else None  # "Currency pair not supported XBT/USDC"
    return Refused(symbol, error)


def _ticks(message: dict[str, Any], pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
    kind = message.get("type")
    data = message.get("data")
    if kind not in ("snapshot", "update") or not isinstance(data, list):
        raise FeedError("kraken: ticker message without type snapshot/update and a data list")
    quotes = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("symbol"), str):
            raise FeedError("kraken: ticker entry without a symbol")
        pair = entry["symbol"]
        symbol = pairs.get(pair)
        if symbol is None or entry.get("last") is None:
            continue  # not ours, or no trade in 24 h: no price to show
        last = price(entry["last"], NAME, pair, strings=False)
        change = percent(entry.get("change_pct"))
        updated = not_after(iso_time(entry.get("timestamp")), received)
        quotes.append(tick(symbol, last, change, updated, NAME))
    return [Ticks(tuple(quotes))] if quotes else []


def _status(message: dict[str, Any]) -> FeedEvent:
    """`online` (or post_only / cancel_only: prices still flow) is a sign of life; maintenance ends the
    connection (no trades, so no prices, until Kraken says otherwise)."""
    data = message.get("data")
    entries = data if isinstance(data, list) else []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("system") == _MAINTENANCE:
            raise FeedError("kraken: exchange in maintenance")
    return Heartbeat()
