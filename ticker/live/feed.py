"""What one exchange's WebSocket ticker protocol is, to the connection that runs it (connection.py).

An `ExchangeFeed` knows one exchange's messages and nothing of sockets: which
pair names its stream uses for our coins, the text frames that subscribe to
them, and what each frame it receives means. It turns frames into events;
the connection decides what to do with them (apply ticks, mark pairs
subscribed, drop a refused pair, reconnect). A feed object lives for one
connection: `reset()` clears what it learnt (sequence numbers) before the next.

Ticks are `Quote`s in the stream's currency (USD; Binance's USDT pairs stand
in for USD as its REST provider does), `source` the exchange's name,
`updated_at` the exchange's event time (else when the frame arrived), and
`change_24h_pct` the exchange's rolling 24 h change where its documentation
says the figure is rolling (all three are; each module cites its page).
Market cap, volume and rank are left None: one exchange's volume is not the
market's, so the poller's figures stay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ticker.models import Coin, Quote

STREAM_CURRENCY = "usd"  # every stream quotes USD (USDT on Binance), as the exchanges' REST providers do


@dataclass(frozen=True)
class Ticks:
    """Price updates, one Quote per pair it names (several for a batch or a snapshot message)."""

    quotes: tuple[Quote, ...]


@dataclass(frozen=True)
class Subscribed:
    """The exchange confirmed these pairs (its own names)."""

    pairs: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    """The exchange refused one pair (unknown or delisted): that pair is dropped, the others go on.

    `pair` None: it refused without naming one (the whole subscription failed): the connection is replaced.
    """

    pair: str | None
    reason: str


@dataclass(frozen=True)
class Heartbeat:
    """A sign of life that carries no price (heartbeat, pong, status "online")."""


FeedEvent = Ticks | Subscribed | Refused | Heartbeat


class FeedError(Exception):
    """The stream sent something that ends this connection: nonsense, an error message or a rate limit.

    `retry_after`: seconds the exchange asked us to wait before connecting again (None: our own backoff).
    `reason` is short and safe to show in /readyz and logs.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ExchangeFeed(Protocol):
    name: str  # the provider's name ("kraken"): config key, the quotes' `source`, /readyz's stream name
    default_url: str  # the exchange's public endpoint; providers.NAME.stream_url replaces it
    # No frame for this long means the stream is dead (about three of the exchange's heartbeat periods).
    silence_seconds: float
    # Send `ping()` this often (an application-level ping the exchange answers); None: WebSocket pings only.
    ping_seconds: float | None
    # Seconds between the subscribe frames we send (the exchange's limit on incoming messages).
    send_spacing: float
    # True where a refused pair voids the whole subscribe frame it came in (Coinbase): the connection is then
    # replaced at once without that pair. False where the others stay subscribed (Kraken answers per pair).
    refusal_voids_subscription: bool

    def pair(self, coin: Coin) -> str | None:
        """The stream's name for the coin's USD pair (from the coin table), or None: not on this exchange."""
        ...

    def url(self, base: str, pairs: Sequence[str]) -> str:
        """The URL to connect to, for these pairs (Binance may name them in the URL; others return `base`)."""
        ...

    def subscribe(self, pairs: Sequence[str]) -> list[str]:
        """The text frames to send after connecting, in order (batched within the exchange's limits)."""
        ...

    def ping(self) -> str | None:
        """An application-level ping frame, or None."""
        ...

    def reset(self) -> None:
        """Forget what this connection learnt (sequence numbers); called before each new connection."""
        ...

    def parse(self, frame: str | bytes, pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        """The events one received frame carries. `pairs`: the stream's pair name -> our coin symbol.

        Ticks for a pair not in `pairs` are dropped. Raises FeedError for a frame that is not what the
        exchange documents (malformed JSON, a price that is not a number) or an error that ends the
        connection. Never raises anything else.
        """
        ...
