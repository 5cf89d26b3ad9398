"""Binance spot `/api/v3/ticker/24hr`: an exchange's own last trade, keyless.

One request per 20 USDT pairs gives the last price, the rolling 24 h change
and the statistics' close time. Tether (USDT) stands in for the US dollar:
quotes come back as currency "usd" only, and every other currency is left
to the providers after this one. A `symbols` batch fails as a whole when
one pair is unknown or delisted (-1121), so the culprit is found by
bisection, skipped for a day, and the others are still priced.

Candles (backfill): `GET /api/v3/klines?symbol=&interval=1h|1d&startTime=&endTime=&limit=`
(weight 2, at most 1000 klines a request) gives `[[open time ms, "open", "high", "low",
"close", "volume", close time ms, ...], ...]`, oldest first, prices as strings
(binance-spot-api-docs `rest-api.md`, "Kline/Candlestick data"). An unknown symbol is a 400
with `{"code": -1121, "msg": "Invalid symbol."}`; a 429 (or a 418 ban) carries Retry-After.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.parsing import candle, ignored, number, unix_time, window
from ticker.providers.session import UpstreamSession

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BASE_URL = "https://api.binance.com"  # https://data-api.binance.vision serves the same market data
TICKER_PATH = "/api/v3/ticker/24hr"
KLINES_PATH = "/api/v3/klines"
# Bucket seconds -> `interval`: the documented ones of fixed length (not "1s", nor "1M").
KLINE_INTERVALS: Mapping[int, str] = MappingProxyType(
    {60 * int(n): f"{n}m" for n in "1 3 5 15 30".split()}
    | {3600 * int(n): f"{n}h" for n in "1 2 4 6 8 12".split()}
    | {86400: "1d", 259200: "3d", 604800: "1w"}
)
KLINES_LIMIT = 1000  # documented maximum per request
CURRENCY = "usd"  # what a USDT quote is reported as
QUOTE_ASSET = "USDT"
# One symbol as the server's `symbols` regex allows it; anything else fails the whole batch with -1100.
SYMBOL_RE = re.compile(r"[A-Z0-9_.-]{1,20}")
INVALID_SYMBOL_SKIP_SECONDS = 24 * 3600.0
# Extra requests a round may spend isolating invalid symbols: one bad pair among 20 takes at most 2·ceil(log2 20).
# More bad pairs than that are found over the next rounds (those found stay skipped), never in a burst.
PROBES_PER_ROUND = 10
INVALID_SYMBOL = -1121  # {"code": -1121, "msg": "Invalid symbol."}
_EXPLAINED = {
    403: "HTTP 403: refused by Binance's web application firewall (WAF); this server's IP or location is blocked",
    418: "HTTP 418: this IP is banned by Binance after requests went on despite 429 (rate limit)",
    451: (
        "HTTP 451: geo-blocked: Binance serves no API requests from this server's location "
        "(restricted region such as the US or some cloud hosts); use another provider"
    ),
}


class Binance(UpstreamProvider):
    """Keyless public market data; only USDT pairs, reported as usd."""

    BASE_URLS: ClassVar[dict[str, str]] = {"public": BASE_URL}
    CURRENCIES: ClassVar[frozenset[str] | None] = frozenset({CURRENCY})  # USDT pairs, reported as usd

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """60 requests/min, no monthly cap.

        Binance allows 6,000 request weight per minute per IP and a batch of up to
        20 symbols weighs 2, so this is at most 120 weight (2 %): room for other
        software behind the same IP, yet ample for ceil(N / 20) requests a round
        plus the few probes that isolate a delisted pair.
        """
        return 60.0, None

    name = "binance"
    # Weight is 2 for 1-20 symbols but 40 for 21-100: five requests of 20 cost 10, one of 100 costs 40.
    # Small batches also limit how many coins one invalid symbol holds up.
    batch_size = 20

    def __init__(self, session: UpstreamSession, settings: ProviderSettings) -> None:
        super().__init__(session, settings)
        self._url = self._base_url + TICKER_PATH
        self._reported: set[str] = set()  # ids already logged as invalid or unusable
        self._probes_left = PROBES_PER_ROUND

    def supports(self, coin: Coin) -> bool:
        """A well-formed USDT pair: other quote assets would be mislabelled usd, bad ids fail whole batches."""
        symbol = coin.ids.get(self.name)
        if symbol is None:
            return False
        if SYMBOL_RE.fullmatch(symbol) and symbol.endswith(QUOTE_ASSET) and symbol != QUOTE_ASSET:
            return True
        if symbol not in self._reported:
            self._reported.add(symbol)
            logger.warning("binance: %s: id %r is not a USDT pair such as BTCUSDT; not used", coin.symbol, symbol)
        return False

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        if CURRENCY not in currencies:
            return []
        by_symbol = {
            coin.ids[self.name]: coin
            for coin in coins
            if self.supports(coin) and not self._session.quarantine.skipped(coin.ids[self.name])
        }
        symbols = list(by_symbol)
        tickers: dict[str, Any] = {}
        self._probes_left = PROBES_PER_ROUND
        try:
            for start in range(0, len(symbols), self.batch_size):
                await self._collect(symbols[start : start + self.batch_size], tickers)
        except ProviderError as err:
            if not ((err.over_budget or err.held) and tickers):
                raise
            # A spent budget or a hold never throws away prices already paid for; the rest fails over.
            logger.info("binance: %s; %d of %d pairs priced this round", err.message, len(tickers), len(symbols))
        quotes = []
        for symbol, coin in by_symbol.items():
            if symbol in tickers:
                quote = quote_from_ticker(coin, tickers[symbol], self.name)
                if quote is not None:
                    quotes.append(quote)
        return quotes

    async def _collect(self, symbols: list[str], into: dict[str, Any], *, probe: bool = False) -> None:
        """Tickers for `symbols` into `into`; on -1121, bisect so the valid ones are still priced."""
        if probe and not self._spend_probe(symbols):
            return
        if not await self._ask(symbols, into):
            await self._isolate(symbols, into)

    async def _isolate(self, symbols: list[str], into: dict[str, Any]) -> None:
        """`symbols` holds at least one invalid symbol: about 2·log2(n) requests find each one."""
        if len(symbols) == 1:
            self._remember_invalid(symbols[0])
            return
        middle = len(symbols) // 2
        left, right = symbols[:middle], symbols[middle:]
        if not self._spend_probe(symbols):
            return
        if await self._ask(left, into):
            await self._isolate(right, into)  # the batch failed, the left half did not: no need to ask
        else:
            await self._isolate(left, into)
            await self._collect(right, into, probe=True)

    def _spend_probe(self, symbols: list[str]) -> bool:
        if self._probes_left > 0:
            self._probes_left -= 1
            return True
        logger.info("binance: %d pairs wait for the next round's search for invalid symbols", len(symbols))
        return False

    async def _ask(self, symbols: list[str], into: dict[str, Any]) -> bool:
        """One request; False if Binance rejected it because a symbol is invalid."""
        try:
            body = await self._session.get_json(
                self._url,
                # Compact JSON: the server's regex for `symbols` rejects the space json.dumps puts after commas.
                params={"symbols": json.dumps(symbols, separators=(",", ":"))},
                headers=self._headers,
            )
        except ProviderError as err:
            if err.code == INVALID_SYMBOL:
                return False
            explained = _explained(err)
            if explained is err:
                raise
            raise explained from err
        if not isinstance(body, list):
            raise ProviderError(self.name, f"unexpected {TICKER_PATH} response ({type(body).__name__})")
        wanted = set(symbols)
        for item in body:
            symbol = item.get("symbol") if isinstance(item, dict) else None
            if isinstance(symbol, str) and symbol in wanted:
                into[symbol] = item
            else:
                logger.debug("binance: ignoring an unasked-for or malformed entry (%s)", type(item).__name__)
        return True

    def has_candles(self, coin: Coin, currency: str) -> bool:
        return currency == CURRENCY and self.supports(coin)

    async def candles(self, coin: Coin, currency: str, seconds: int, since: int, until: int) -> list[Candle]:
        """Klines from `since` to `until`, a side request per 1000 (the backfill's 720 hours or 365 days: one)."""
        interval = KLINE_INTERVALS.get(seconds)
        if interval is None or not self.has_candles(coin, currency):
            raise ValueError(f"binance: no {seconds} s candles for {coin.symbol}/{currency}")
        symbol = coin.ids[self.name]
        where = f"{coin.symbol}/{CURRENCY}"
        found: list[Candle] = []
        start = since
        for _ in range(max(math.ceil((until - since) / (seconds * KLINES_LIMIT)), 1)):
            if start >= until:
                break
            wanted = min(math.ceil((until - start) / seconds), KLINES_LIMIT)
            rows = await self._klines(symbol, interval, start, until, wanted)
            page = [c for c in (_kline(self.name, where, row, seconds) for row in rows) if c is not None]
            found.extend(page)
            if len(rows) < wanted or not page:
                break  # the upstream has no more (or sent nothing usable)
            start = max(c.start for c in page) + seconds
        return window(found, since, until)

    async def _klines(self, symbol: str, interval: str, start: int, until: int, limit: int) -> list[Any]:
        try:
            body = await self._session.get_json(
                self._base_url + KLINES_PATH,
                params={
                    "symbol": symbol,
                    "interval": interval,
                    "startTime": str(start * 1000),
                    "endTime": str(until * 1000 - 1),
                    "limit": str(limit),
                },
                headers=self._headers,
                side=True,
            )
        except ProviderError as err:
            explained = _explained(err)
            if explained is err:
                raise
            raise explained from err
        if not isinstance(body, list):
            raise ProviderError(self.name, f"unexpected {KLINES_PATH} response ({type(body).__name__})")
        return body

    def _remember_invalid(self, symbol: str) -> None:
        self._session.quarantine.skip(symbol, INVALID_SYMBOL_SKIP_SECONDS)
        if symbol in self._reported:
            logger.debug("binance: %s still an invalid symbol; skipped for another 24 h", symbol)
            return
        self._reported.add(symbol)
        logger.warning("binance: %s is an invalid symbol (delisted or unknown); skipped for 24 h", symbol)


def quote_from_ticker(coin: Coin, item: dict[str, Any], source: str = "binance") -> Quote | None:
    """Prices and changes arrive as strings; numbers pass through (the poller rejects NaN and <= 0)."""
    price = number(item.get("lastPrice"))
    if price is None:
        ignored(source, coin.symbol, f"non-numeric price {item.get('lastPrice')!r:.40}", kind="price")
        return None
    return Quote(
        symbol=coin.symbol,
        currency=CURRENCY,
        price=price,
        change_24h_pct=number(item.get("priceChangePercent")),  # rolling 24 h window, as the contract means
        updated_at=_ms_time(item.get("closeTime")),
        source=source,
    )


def _kline(provider: str, where: str, row: Any, seconds: int) -> Candle | None:
    """`[open time ms, open, high, low, close, ...]` as a Candle; None (logged) if off-schema."""
    if isinstance(row, list) and len(row) >= 5:
        millis = number(row[0])
        return candle(provider, where, None if millis is None else millis / 1000.0, seconds, row[1:5])
    ignored(provider, where, f"off-schema kline {row!r:.80}", kind="candle")
    return None


def _ms_time(value: Any) -> datetime | None:
    """Binance times are milliseconds since the epoch."""
    millis = number(value)
    return None if millis is None else unix_time(millis / 1000.0)


def _explained(err: ProviderError) -> ProviderError:
    """The same error with a message an operator can act on, for the statuses whose cause is not in the body."""
    message = _EXPLAINED.get(err.status or 0)
    if message is None:
        return err
    if err.retry_after is not None:
        message += f"; retry after {err.retry_after:.0f} s"
    return ProviderError(err.provider, message, status=err.status, retry_after=err.retry_after)
