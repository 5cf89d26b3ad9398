"""A simulated price source for `ticker serve --demo`: no network, clearly labelled.

A seeded random walk from realistic prices, so two runs show the same
numbers and a newcomer with no network sees a working widget. Every quote
says `source: "demo"`; it is never used unless --demo is given.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

from ticker.models import Coin, Quote
from ticker.providers.session import UpstreamSession

# Realistic USD starting points (late 2026 orders of magnitude).
START_USD: dict[str, float] = {
    "BTC": 90917.04,
    "ETH": 3021.55,
    "NEO": 4.12,
    "WAVES": 0.9412,
    "XMR": 402.17,
    "XNO": 0.8123,
    "ARK": 0.3517,
    "ARRR": 0.1412,
    "DOGE": 0.1583,
    "LTC": 84.36,
    "ADA": 0.4127,
}
# Rough USD value of one unit of each currency, for the simulated conversion.
USD_PER_UNIT: dict[str, float] = {
    "usd": 1.0,
    "eur": 1.08,
    "gbp": 1.27,
    "chf": 1.13,
    "jpy": 0.0066,
    "cad": 0.72,
    "aud": 0.65,
    "btc": START_USD["BTC"],
    "eth": START_USD["ETH"],
    "sats": START_USD["BTC"] / 100_000_000,
}
STEP = 0.004  # standard deviation of one round's relative move


class DemoSource:
    """Deterministic: round N always gives the same prices for the same coins."""

    name = "demo"
    batch_size = 1_000_000
    session: UpstreamSession | None = None  # simulated: no upstream, nothing to hold

    def __init__(self, seed: int = 2026) -> None:
        self._rng = random.Random(seed)
        self._usd: dict[str, float] = {}
        self._open: dict[str, float] = {}

    def supports(self, coin: Coin) -> bool:
        return True

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        quotes = []
        for coin in coins:
            start = self._usd.get(coin.symbol) or _start_price(coin.symbol)
            self._open.setdefault(coin.symbol, start * (1 + self._rng.uniform(-0.05, 0.05)))
            usd = start * (1 + self._rng.gauss(0.0, STEP))
            self._usd[coin.symbol] = usd
            change = (usd - self._open[coin.symbol]) / self._open[coin.symbol] * 100
            for currency in currencies:
                price = usd / USD_PER_UNIT.get(currency, 1.0)
                quotes.append(Quote(coin.symbol, currency, price, change, None, self.name))
        return quotes


def _start_price(symbol: str) -> float:
    """A stable made-up price for coins the table above does not know."""
    if symbol in START_USD:
        return START_USD[symbol]
    return 0.01 + (zlib.crc32(symbol.encode()) % 100_000) / 100.0
