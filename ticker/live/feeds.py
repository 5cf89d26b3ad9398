"""The exchange feeds by provider name, and a new feed object for each connection."""

from __future__ import annotations

from ticker.live.binance import BinanceFeed
from ticker.live.coinbase import CoinbaseFeed
from ticker.live.feed import ExchangeFeed
from ticker.live.kraken import KrakenFeed

FEEDS: dict[str, type[KrakenFeed] | type[CoinbaseFeed] | type[BinanceFeed]] = {
    "kraken": KrakenFeed,
    "coinbase": CoinbaseFeed,
    "binance": BinanceFeed,
}


def build_feed(name: str) -> ExchangeFeed:
    """A fresh feed for the exchange `name` (a key of FEEDS). Raises KeyError for an unknown name."""
    return FEEDS[name]()
