"""CoinGecko API v3: the primary provider.

The frugal shape (every call counts against the budget, errors included):
prices, 24h changes, market caps and 24h volumes for every coin and currency
come from one `/simple/price` call per batch of ids (`include_market_cap`,
`include_24hr_vol`: the keys `<cur>_market_cap` and `<cur>_24h_vol`, in that
currency; docs.coingecko.com/reference/simple-price). What changes slowly comes
from `/coins/markets` in the default currency once an hour, as side work off
the price path (`refresh_metadata`), with only the budget the price rounds leave
over: rank (`market_cap_rank`), the 1h/7d/30d changes (asked with
`price_change_percentage=1h,7d,30d`, answered as
`price_change_percentage_<span>_in_currency`; the parameter is in the docs'
`/coins/markets` reference, the answer keys as real answers show them, the docs'
schema naming only `price_change_percentage_1h`) and icon URLs; 7-day
sparklines with it once a day. Rank and changes go out with the next quotes as
`Quote.market`, stamped with the row's `last_updated`; the poller drops them
once they are two hours old (ticker/market.py).

Candles (backfill, only where the budget allows): `GET /coins/{id}/market_chart?vs_currency=&days=`
gives `{"prices": [[ms, price], ...], "market_caps": ..., "total_volumes": ...}`, oldest first,
the last point being "now". Its granularity is automatic: 5-minutely for 1 day, hourly for 2-90
days, daily (00:00 UTC) beyond; keyless and demo access reaches back 365 days at most
(docs.coingecko.com/reference/coins-id-market-chart). A point is a price at a moment, not a
bucket: each becomes the close of the bucket it lies in or ends (a daily point at 00:00 UTC
closes the day before), and several in one bucket make its open, high, low and close.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

from ticker.exceptions import ProviderError
from ticker.models import Candidate, Candle, Coin, MarketData, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.parsing import (
    candle,
    ignored,
    iso_time,
    json_number,
    market_figure,
    number,
    percent,
    rank,
    unix_time,
    window,
)
from ticker.providers.session import UpstreamSession

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BASE_URLS = {"demo": "https://api.coingecko.com/api/v3", "pro": "https://pro-api.coingecko.com/api/v3"}
KEY_HEADERS = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}
MARKET_REFRESH_SECONDS = 3600.0  # rank, 1h/7d/30d changes and icons from /coins/markets: hourly
SPARKLINE_REFRESH_SECONDS = 24 * 3600.0  # sparkline seeds (the bulk of that body): with it once a day
CHANGE_SPANS = ("1h", "7d", "30d")  # price_change_percentage asked of /coins/markets
MARKETS_PAGE = 250  # /coins/markets per_page maximum
CHART_MAX_DAYS = 365  # keyless and demo access to market_chart reaches back a year
CHART_SECONDS = frozenset({3600, 86400})  # buckets made from its points: hourly (2-90 days asked), daily
# /simple/supported_vs_currencies, the `vs_currencies` CoinGecko quotes in: its fiat list as documented at
# docs.coingecko.com/docs/fiat-currencies-support, plus the answer's crypto and metal codes as public clients
# copy it (2024). Of these, market.currencies accepts the ISO 4217 codes in current use and btc, eth, sats.
VS_CURRENCIES = frozenset(
    "btc eth ltc bch bnb eos xrp xlm link dot yfi usd aed ars aud bdt bhd bmd brl cad chf clp cny czk dkk eur "
    "gbp gel hkd huf idr ils inr jpy krw kwd lkr mmk mxn myr ngn nok nzd php pkr pln rub sar sek sgd thb try "
    "twd uah vef vnd zar xdr xag xau bits sats".split()
)


class CoinGecko(UpstreamProvider):
    """Keyless by default; a demo or pro key is sent as a header, never in the URL."""

    PLANS: ClassVar[tuple[str, ...]] = ("demo", "pro")
    BASE_URLS: ClassVar[dict[str, str]] = BASE_URLS
    CURRENCIES: ClassVar[frozenset[str] | None] = VS_CURRENCIES

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """Published limits: keyless ~5-15/min per IP; demo key 30/min and 10,000/month; pro 500/min."""
        if settings.plan == "pro":
            return 500.0, None
        if settings.api_key():
            return 30.0, 10_000.0
        return 5.0, None

    name = "coingecko"
    batch_size = 500  # documented maximum is 515 ids per /simple/price call

    def __init__(self, session: UpstreamSession, settings: ProviderSettings) -> None:
        super().__init__(session, settings)
        key = settings.api_key()
        if key:
            self._headers[KEY_HEADERS[self._plan]] = key
        session.key_hint = key_hint(settings, self._plan)
        self._icons: dict[str, str] = {}
        self._sparklines: dict[str, tuple[float, ...]] = {}  # handed out once, with the next quotes
        self._market: dict[str, MarketData] = {}  # by id: the last hourly market data, with every quote
        self._sparklines_at: float | None = None  # Unix seconds of the last sparkline seeds

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        by_id = {coin.ids[self.name]: coin for coin in coins if self.name in coin.ids}
        ids = list(by_id)
        if not ids:
            return []
        quotes: list[Quote] = []
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start : start + self.batch_size]
            body = await self._session.get_json(
                f"{self._base_url}/simple/price",
                params={
                    "ids": ",".join(batch),
                    "vs_currencies": ",".join(currencies),
                    "include_market_cap": "true",
                    "include_24hr_vol": "true",
                    "include_24hr_change": "true",
                    "include_last_updated_at": "true",
                    "precision": "full",
                },
                headers=self._headers,
            )
            if not isinstance(body, dict):
                raise ProviderError(self.name, f"unexpected /simple/price response ({type(body).__name__})")
            for coin_id in batch:
                quotes.extend(self._parse_entry(by_id[coin_id], body.get(coin_id), currencies))
        return quotes

    def _parse_entry(self, coin: Coin, entry: Any, currencies: Sequence[str]) -> list[Quote]:
        if entry is None:
            return []  # unknown or delisted id: CoinGecko simply omits it
        if not isinstance(entry, dict):
            ignored(self.name, coin.symbol, f"malformed entry ({type(entry).__name__})", kind="entry")
            return []
        updated_at = unix_time(entry.get("last_updated_at"))
        icon = self._icons.get(coin.ids[self.name])
        market = self._market.get(coin.ids[self.name])
        sparkline = self._sparklines.pop(coin.ids[self.name], None)
        quotes = []
        for currency in currencies:
            if currency not in entry:
                continue
            price = json_number(entry[currency])
            if price is None:
                ignored(
                    self.name, f"{coin.symbol}/{currency}", f"non-numeric price {entry[currency]!r:.40}", kind="price"
                )
                continue
            change = entry.get(f"{currency}_24h_change")
            quotes.append(
                Quote(
                    symbol=coin.symbol,
                    currency=currency,
                    price=price,
                    change_24h_pct=json_number(change),
                    updated_at=updated_at,
                    source=self.name,
                    icon_url=icon,
                    sparkline_7d=sparkline if currency == currencies[0] else None,
                    market_cap=market_figure(entry.get(f"{currency}_market_cap")),
                    volume_24h=market_figure(entry.get(f"{currency}_24h_vol")),
                    market=market,
                )
            )
        return quotes

    metadata_every = MARKET_REFRESH_SECONDS

    async def refresh_metadata(self, coins: Sequence[Coin], currency: str) -> None:
        """Rank, 1h/7d/30d changes (in `currency`) and icon URLs from /coins/markets, one request per 250
        coins, handed out with the next quotes; 7-day sparklines too when a day has passed since the last.

        Side work, asked hourly: its requests spend only the budget the price rounds leave over, and raise
        ProviderError (the caller retries later) rather than ever delaying a price round.
        """
        ids = [coin.ids[self.name] for coin in coins if self.name in coin.ids]
        wall = self._session.manners.wall()
        seed = self._sparklines_at is None or wall - self._sparklines_at >= SPARKLINE_REFRESH_SECONDS
        fetched = unix_time(wall)
        for start in range(0, len(ids), MARKETS_PAGE):
            page = ids[start : start + MARKETS_PAGE]
            for row in await self._markets(page, currency, sparkline=seed, changes=True, side=True):
                if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                    continue
                if _is_http_url(row.get("image")):
                    self._icons[row["id"]] = row["image"]
                if fetched is not None:
                    self._market[row["id"]] = _market_data(row, currency, fetched)
                series = _sparkline(row.get("sparkline_in_7d"))
                if series:
                    self._sparklines[row["id"]] = series
        if seed:
            self._sparklines_at = wall

    async def _markets(
        self,
        ids: Sequence[str],
        currency: str,
        *,
        symbols: str | None = None,
        sparkline: bool = False,
        changes: bool = False,
        side: bool = False,
    ) -> list[Any]:
        params = {"vs_currency": currency, "per_page": str(MARKETS_PAGE), "page": "1"}
        if sparkline:
            params["sparkline"] = "true"
        if changes:
            params["price_change_percentage"] = ",".join(CHANGE_SPANS)
        if symbols:
            params |= {"symbols": symbols, "include_tokens": "all"}
        else:
            params["ids"] = ",".join(ids)
        body = await self._session.get_json(
            f"{self._base_url}/coins/markets",
            params=params,
            headers=self._headers,
            side=side,
        )
        if not isinstance(body, list):
            raise ProviderError(self.name, f"unexpected /coins/markets response ({type(body).__name__})")
        return body

    def has_candles(self, coin: Coin, currency: str) -> bool:
        return self.name in coin.ids and currency in VS_CURRENCIES

    async def candles(self, coin: Coin, currency: str, seconds: int, since: int, until: int) -> list[Candle]:
        """One side request to market_chart for the days from `since` to now (at most 365), bucketed."""
        if seconds not in CHART_SECONDS or not self.has_candles(coin, currency):
            raise ValueError(f"coingecko: no {seconds} s candles for {coin.symbol}/{currency}")
        days = min(max(math.ceil((until - since) / 86400), 2), CHART_MAX_DAYS)  # 2+: hourly points, not 5-minutely
        body = await self._session.get_json(
            f"{self._base_url}/coins/{url_quote(coin.ids[self.name], safe='')}/market_chart",
            params={"vs_currency": currency, "days": str(days), "precision": "full"},
            headers=self._headers,
            side=True,
        )
        prices = body.get("prices") if isinstance(body, dict) else None
        if not isinstance(prices, list):
            raise ProviderError(self.name, f"unexpected market_chart response ({type(body).__name__} without prices)")
        return window(_buckets(self.name, f"{coin.symbol}/{currency}", prices, seconds), since, until)

    async def ranking(self, count: int, currency: str, *, side: bool = True) -> list[Candidate]:
        """The `count` (at most 250) largest coins by market cap in `currency`: one `/coins/markets` request
        with `order=market_cap_desc&per_page=count&page=1` (docs.coingecko.com/reference/coins-markets),
        rows in the answer's order with `market_cap_rank` (null for an unranked coin). Raises ProviderError."""
        body = await self._session.get_json(
            f"{self._base_url}/coins/markets",
            params={
                "vs_currency": currency,
                "order": "market_cap_desc",
                "per_page": str(min(max(count, 1), MARKETS_PAGE)),
                "page": "1",
            },
            headers=self._headers,
            side=side,
        )
        if not isinstance(body, list):
            raise ProviderError(self.name, f"unexpected /coins/markets response ({type(body).__name__})")
        return [
            Candidate(
                provider=self.name,
                id=row["id"],
                symbol=row["symbol"].upper(),
                name=row["name"] if isinstance(row.get("name"), str) else "",
                market_cap=market_figure(row.get("market_cap")),
                rank=rank(row.get("market_cap_rank")),
            )
            for row in body
            if isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("symbol"), str)
        ]

    async def candidates(self, symbol: str) -> list[Candidate]:
        """Every CoinGecko coin with this symbol, largest market cap first."""
        rows = await self._markets([], "usd", symbols=symbol.lower())
        found = [
            Candidate(
                provider=self.name,
                id=str(row.get("id")),
                symbol=str(row.get("symbol", "")).upper(),
                name=str(row.get("name", "")),
                market_cap=market_figure(row.get("market_cap")),
                rank=rank(row.get("market_cap_rank")),
            )
            for row in rows
            if isinstance(row, dict) and isinstance(row.get("id"), str)
        ]
        return sorted(found, key=lambda c: -(c.market_cap or 0.0))


def key_hint(settings: ProviderSettings, plan: str) -> str:
    """One line for the log when CoinGecko refuses to answer without a (valid) key; never the key itself."""
    if settings.api_key_env and settings.api_key():
        return (
            f"CoinGecko refused the key in ${settings.api_key_env}: check it, and that it is a {plan} key "
            f'(providers.coingecko.plan = "{plan}")'
        )
    env = settings.api_key_env or "COINGECKO_API_KEY"
    return (
        f"CoinGecko wants an API key: get a free demo key at coingecko.com/en/api, set "
        f'providers.coingecko.api_key_env = "{env}" and the environment variable {env} to the key'
    )


def _buckets(provider: str, where: str, points: Iterable[Any], seconds: int) -> list[Candle]:
    """`[[ms, price], ...]` as candles of `seconds`: a point closes the bucket whose end lies nearest to it
    (CoinGecko's hourly points fall a few minutes past the hour: 10:03 closes 09:00-10:00, not
    10:00-11:00, which would date that price almost an hour late)."""
    prices: dict[int, list[float]] = {}
    for point in points:
        millis = number(point[0]) if isinstance(point, list) and len(point) == 2 else None
        price = json_number(point[1]) if millis is not None else None
        if millis is None or price is None or not (math.isfinite(millis) and math.isfinite(price) and price > 0):
            ignored(provider, where, f"off-schema chart point {point!r:.60}", kind="candle")
            continue
        start = round(millis / 1000.0 / seconds) * seconds - seconds
        prices.setdefault(start, []).append(price)
    found = (candle(provider, where, start, seconds, (p[0], max(p), min(p), p[-1])) for start, p in prices.items())
    return [bucket for bucket in found if bucket is not None]


def _market_data(row: dict[str, Any], currency: str, fetched: datetime) -> MarketData:
    """A /coins/markets row's rank and changes, as of its `last_updated` (never later than `fetched`)."""
    updated = iso_time(row.get("last_updated"))
    return MarketData(
        currency=currency,
        at=updated if updated is not None and updated <= fetched else fetched,
        rank=rank(row.get("market_cap_rank")),
        change_1h_pct=percent(row.get("price_change_percentage_1h_in_currency")),
        change_7d_pct=percent(row.get("price_change_percentage_7d_in_currency")),
        change_30d_pct=percent(row.get("price_change_percentage_30d_in_currency")),
    )


def _sparkline(value: Any) -> tuple[float, ...]:
    """`sparkline_in_7d.price`: hourly prices, oldest first; non-numbers dropped."""
    prices = value.get("price") if isinstance(value, dict) else None
    if not isinstance(prices, list):
        return ()
    return tuple(p for p in (json_number(x) for x in prices[-200:]) if p is not None and 0 < p < math.inf)


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) <= 500
