"""CoinPaprika API v1: a keyless fallback with a monthly cap.

Each tick carries, besides the price and its rolling 24 h change, the coin's `rank` and, per quote
currency, `market_cap`, `volume_24h` and `percent_change_1h`/`_7d`/`_30d` (API docs 1.7.9,
`schemas/tickers.yml`); missing values come as "" (documented) or 0, both unknown here, never 0.

The frugal shape: `/tickers` has no id filter, so one call returns every
coin (the top 2,500 on the free plan) and we keep the ones we know. It
takes at most 3 quote currencies, so a round costs ceil(currencies / 3)
calls whatever the number of coins. A single coin is asked for by id
instead: the same number of calls, a body of 1 KB instead of a few MB, and
no 2,500-coin cut-off.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

from ticker.exceptions import ProviderError
from ticker.models import Candidate, Coin, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.parsing import ignored, iso_time, json_number, market_figure, percent, rank
from ticker.providers.session import UpstreamSession
from ticker.units import btc_to_sats

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BASE_URLS = {"free": "https://api.coinpaprika.com/v1", "pro": "https://api-pro.coinpaprika.com/v1"}
MAX_QUOTES = 3  # documented maximum of the `quotes` parameter
# Our currency -> CoinPaprika's quote code: the documented list (API docs 1.7.9, `quotes`).
# "sats" is derived from the BTC quote (exactly, in decimal; the percent change is the same).
QUOTE_CODES: dict[str, str] = {
    code.lower(): code
    for code in (
        "USD EUR BTC ETH PLN KRW GBP CAD JPY RUB TRY NZD AUD CHF UAH HKD SGD NGN PHP MXN BRL "
        "THB CLP CNY CZK DKK HUF IDR ILS INR MYR NOK PKR SEK TWD ZAR VND BOB COP PEN ARS ISK"
    ).split()
} | {"sats": "BTC"}


class CoinPaprika(UpstreamProvider):
    """Keyless on the free plan; a paid key is sent as the `Authorization` header, never in the URL."""

    PLANS: ClassVar[tuple[str, ...]] = ("free", "pro")
    BASE_URLS: ClassVar[dict[str, str]] = BASE_URLS
    CURRENCIES: ClassVar[frozenset[str] | None] = frozenset(QUOTE_CODES)  # its documented `quotes` list

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """Published limits: free 20,000 calls/month (and 10 requests/s per IP); paid plans vary by tier.

        The free plan's real constraint is the monthly cap (about 666 a day, which the budget
        spreads evenly), not the 10/s burst limit, so we allow 10 a minute: enough for one round
        of up to 30 currencies, and a runaway loop cannot spend a day's share in a minute. Paid
        monthly quotas depend on the tier, so set `requests_per_month` for those.
        """
        if settings.plan == "pro":
            return 600.0, None
        return 10.0, 20_000.0

    name = "coinpaprika"
    batch_size = 2_500  # /tickers has no id filter: one call covers every coin (top 2,500 on the free plan)

    def __init__(self, session: UpstreamSession, settings: ProviderSettings) -> None:
        super().__init__(session, settings)
        key = settings.api_key()
        if key:
            self._headers["authorization"] = key
        self._unknown_ids: set[str] = set()  # warned about once, not every round

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        """Quotes in the currencies CoinPaprika has; the poller fails the others over to the next provider."""
        by_id = {coin.ids[self.name]: coin for coin in coins if self.name in coin.ids}
        wanted = [currency for currency in currencies if currency in QUOTE_CODES]
        if not by_id or not wanted:
            return []
        codes = list(dict.fromkeys(QUOTE_CODES[currency] for currency in wanted))  # sats and btc share BTC
        quotes: list[Quote] = []
        for start in range(0, len(codes), MAX_QUOTES):
            chunk = codes[start : start + MAX_QUOTES]
            rows = await self._tickers(list(by_id), chunk)
            chunk_currencies = [currency for currency in wanted if QUOTE_CODES[currency] in chunk]
            seen: set[str] = set()
            for row in rows:
                coin_id = row.get("id") if isinstance(row, dict) else None
                if not isinstance(coin_id, str) or coin_id not in by_id or coin_id in seen:
                    continue  # one of the ~2,500 coins we were not asked for
                seen.add(coin_id)
                quotes.extend(self._parse_row(by_id[coin_id], row, chunk_currencies))
        return quotes

    async def _tickers(self, ids: Sequence[str], codes: Sequence[str]) -> list[Any]:
        """The tick rows for these quote codes: every coin's, or the one coin's when only one is wanted."""
        params = {"quotes": ",".join(codes)}
        if len(ids) > 1:
            body = await self._session.get_json(
                f"{self._base_url}/tickers",
                params=params,
                headers=self._headers,
            )
            if not isinstance(body, list):
                raise ProviderError(self.name, f"unexpected /tickers response ({type(body).__name__})")
            return body
        [coin_id] = ids
        try:
            body = await self._session.get_json(
                f"{self._base_url}/tickers/{url_quote(coin_id, safe='')}",
                params=params,
                headers=self._headers,
            )
        except ProviderError as err:
            if err.status == 404 and err.message.endswith("id not found"):
                # An unknown id is a missing coin, as it is in /tickers, not a provider failure.
                if coin_id not in self._unknown_ids:
                    self._unknown_ids.add(coin_id)
                    logger.warning("coinpaprika: unknown id %.60r (HTTP 404); check the coin's ids", coin_id)
                return []
            raise
        if not isinstance(body, dict):
            raise ProviderError(self.name, f"unexpected /tickers/{{id}} response ({type(body).__name__})")
        return [body]

    async def ranking(self, count: int, currency: str, *, side: bool = True) -> list[Candidate]:
        """The `count` best-ranked coins: one `/tickers?quotes=USD` request (it has no limit parameter, so
        every coin comes back) sorted by each row's `rank` (API docs 1.7.9, `schemas/tickers.yml`; 0 or
        missing: unranked, left out). `currency` is unused: a rank is the same in every quote currency."""
        body = await self._session.get_json(
            f"{self._base_url}/tickers", params={"quotes": "USD"}, headers=self._headers, side=side
        )
        if not isinstance(body, list):
            raise ProviderError(self.name, f"unexpected /tickers response ({type(body).__name__})")
        rows = [
            Candidate(
                provider=self.name,
                id=row["id"],
                symbol=row["symbol"].upper(),
                name=row["name"] if isinstance(row.get("name"), str) else "",
                market_cap=None,
                rank=rank(row.get("rank")),
            )
            for row in body
            if isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("symbol"), str)
        ]
        return sorted((r for r in rows if r.rank is not None), key=lambda r: r.rank or 0)[:count]

    def _parse_row(self, coin: Coin, row: dict[str, Any], currencies: Sequence[str]) -> list[Quote]:
        quotes_by_code = row.get("quotes")
        if not isinstance(quotes_by_code, dict):
            ignored(self.name, coin.symbol, f"malformed quotes ({type(quotes_by_code).__name__})", kind="quotes")
            return []
        updated_at = iso_time(row.get("last_updated"))
        coin_rank = rank(row.get("rank"))  # by market cap, the same in every quote currency
        quotes = []
        for currency in currencies:
            entry = quotes_by_code.get(QUOTE_CODES[currency])
            if entry is None:
                continue  # not returned: the next provider may have it
            if not isinstance(entry, dict):
                ignored(
                    self.name, f"{coin.symbol}/{currency}", f"malformed quote ({type(entry).__name__})", kind="quote"
                )
                continue
            raw = entry.get("price")
            # Missing values come as "" (documented); a numeric string is off-schema too: neither is a price.
            price = json_number(raw)
            if price is None:
                ignored(self.name, f"{coin.symbol}/{currency}", f"non-numeric price {raw!r:.40}", kind="price")
                continue
            in_sats = currency == "sats"
            market_cap, volume = market_figure(entry.get("market_cap")), market_figure(entry.get("volume_24h"))
            quotes.append(
                Quote(
                    symbol=coin.symbol,
                    currency=currency,
                    price=btc_to_sats(price) if in_sats else price,
                    change_24h_pct=json_number(entry.get("percent_change_24h")),  # rolling 24 h, in percent
                    updated_at=updated_at,
                    source=self.name,
                    change_1h_pct=percent(entry.get("percent_change_1h")),
                    change_7d_pct=percent(entry.get("percent_change_7d")),
                    change_30d_pct=percent(entry.get("percent_change_30d")),
                    market_cap=btc_to_sats(market_cap) if in_sats and market_cap is not None else market_cap,
                    volume_24h=btc_to_sats(volume) if in_sats and volume is not None else volume,
                    rank=coin_rank,
                )
            )
        return quotes
