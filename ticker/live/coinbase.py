"""Coinbase Exchange's WebSocket feed: the `ticker` and `heartbeat` channels.

Sources (docs.cdp.coinbase.com/exchange/websocket-feed/):
- overview (`/exchange/websocket-feed`): endpoint `wss://ws-feed.exchange.coinbase.com`; a
  subscribe `{"type": "subscribe", "product_ids": [...], "channels": ["ticker", "heartbeat"]}` must
  come within 5 seconds of connecting; the answer is a `subscriptions` message listing every channel
  and its products; errors are `{"type": "error", "message": ..., "reason": ...}`; "New message types
  can be added at any time. Clients are expected to ignore messages they do not support."
- channels (`/exchange/websocket-feed/channels`): `ticker` messages carry the product's whole state on
  every match: `price`, `open_24h`, `volume_24h`, `low_24h`, `high_24h`, best bid/ask, `time` (RFC 3339),
  `sequence`, `trade_id` (prices are strings). `open_24h` opens a rolling 24 h window (as the REST
  `/products/{id}/stats` it mirrors, ticker/providers/coinbase.py), so the change is
  (price / open_24h - 1) * 100. `heartbeat` sends one message per product every second.
- rate limits (`/exchange/websocket-feed/rate-limits`): 8 requests per second per IP (bursts of 20),
  100 client messages per second per IP.
- a refused product: `{"type": "error", "message": "Failed to subscribe", "reason": "FOO-USD is not a
  valid product"}` (thrasher-corp/gocryptotrader#1421 shows the reason's shape); a refused subscribe
  is ignored entirely (coinbase/coinbase-pro-node#174), so the connection resubscribes the rest.

Ordering: a ticker whose `sequence` is lower than the last one seen for its product arrived out of
order and is dropped (equal ones are repeats of one match: captures show several tickers per
sequence). A gap is harmless: each ticker carries the product's whole state, nothing is rebuilt from
deltas.

Timing: heartbeats come every second per product, so ten silent seconds mean the stream is dead
(a few periods and room for a slow link); Coinbase has no application ping (WebSocket pings only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ticker.live.feed import FeedError, FeedEvent, Heartbeat, Refused, Subscribed, Ticks
from ticker.live.frames import change_from_open, load, not_after, price, short, tick
from ticker.models import Coin
from ticker.providers.parsing import iso_time

NAME = "coinbase"
BATCH = 100  # products per subscribe frame
_INVALID = " is not a valid product"


class CoinbaseFeed:
    name = NAME
    default_url = "wss://ws-feed.exchange.coinbase.com"
    silence_seconds = 10.0
    ping_seconds: float | None = None
    send_spacing = 0.25  # 4 a second, under the 8 requests per second per IP
    refusal_voids_subscription = True

    def __init__(self) -> None:
        self._sequence: dict[str, int] = {}  # product -> the highest ticker sequence seen

    def pair(self, coin: Coin) -> str | None:
        """The coin's USD product (`ids["coinbase"]`, "BTC-USD"), as the REST provider uses it; or None."""
        product = coin.ids.get(NAME)
        return product if product is not None and product.endswith("-USD") and len(product) > 4 else None

    def url(self, base: str, pairs: Sequence[str]) -> str:
        return base

    def subscribe(self, pairs: Sequence[str]) -> list[str]:
        """One `subscribe` frame per `BATCH` products, to `ticker` and `heartbeat`."""
        return [
            json.dumps(
                {"type": "subscribe", "product_ids": list(pairs[i : i + BATCH]), "channels": ["ticker", "heartbeat"]}
            )
            for i in range(0, len(pairs), BATCH)
        ]

    def ping(self) -> str | None:
        return None

    def reset(self) -> None:
        self._sequence.clear()

    def parse(self, frame: str | bytes, pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        message = load(frame, NAME)
        if not isinstance(message, dict):
            raise FeedError("coinbase: frame is not a JSON object")
        kind = message.get("type")
        if kind == "ticker":
            return self._ticker(message, pairs, received)
        if kind == "heartbeat":
            return [Heartbeat()]
        if kind == "subscriptions":
            return [_subscriptions(message)]
        if kind == "error":
            return [_error(message)]
        return []  # "Clients are expected to ignore messages they do not support"

    def _ticker(self, message: dict[str, Any], pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        product = message.get("product_id")
        if not isinstance(product, str):
            raise FeedError("coinbase: ticker without a product_id")
        symbol = pairs.get(product)
        if symbol is None:
            return []
        sequence = message.get("sequence")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            if sequence < self._sequence.get(product, sequence):
                return []  # out of order: a newer state was already applied
            self._sequence[product] = sequence
        value = price(message.get("price"), NAME, product, strings=True)
        change = change_from_open(value, message.get("open_24h"))
        updated = not_after(iso_time(message.get("time")), received)
        return [Ticks((tick(symbol, value, change, updated, NAME),))]


def _subscriptions(message: dict[str, Any]) -> FeedEvent:
    """The products subscribed to the ticker channel (channels come as names or as {name, product_ids})."""
    channels = message.get("channels")
    if not isinstance(channels, list):
        raise FeedError("coinbase: subscriptions without a channel list")
    top = message.get("product_ids")
    confirmed: list[str] = []
    for channel in channels:
        if isinstance(channel, dict) and channel.get("name") == "ticker":
            products = channel.get("product_ids")
        elif channel == "ticker":
            products = top
        else:
            continue
        if isinstance(products, list):
            confirmed.extend(p for p in products if isinstance(p, str) and p not in confirmed)
    return Subscribed(tuple(confirmed))


def _error(message: dict[str, Any]) -> FeedEvent:
    """One invalid product named in `reason` is refused; any other error ends the connection."""
    reason = message.get("reason")
    text = short(f"{message.get('message', 'error')}: {reason}")
    if isinstance(reason, str) and reason.endswith(_INVALID):
        product = reason[: -len(_INVALID)].strip()
        if product and " " not in product:
            return Refused(product, text)
    raise FeedError(f"coinbase: {text}")
