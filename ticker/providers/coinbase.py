"""Coinbase Exchange: a keyless per-product fallback for the coins Coinbase lists.

`GET /products/{id}/stats` gives the `last` trade and the `open` of the 24-hour
window it reports, so one call prices one coin with its 24 h change; the
Exchange API has no batch endpoint. The calls go out a few at a time, paced by
the session, well under the public 10 requests/s per IP. One product's failure only costs
that coin (it fails over to the next provider); a product Coinbase does not
list (404) is skipped for a day instead of costing a request every round; only
a round in which nothing could be priced raises.

Candles (backfill): `GET /products/{id}/candles?granularity=<s>&start=<ISO 8601>&end=<ISO 8601>`
gives `[[time, low, high, open, close, volume], ...]`, NEWEST FIRST, time in Unix seconds, prices
as numbers. `granularity` is one of 60, 300, 900, 3600, 21600, 86400; a range of more than 300
buckets is refused with a 400, so a longer span takes one request per 300 buckets; some buckets
may precede `start`, and a bucket with no trade is missing
(docs.cdp.coinbase.com, Exchange API "Get product candles").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

import anyio

from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.parsing import candle, ignored, number, window
from ticker.providers.session import UpstreamSession

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BASE_URL = "https://api.exchange.coinbase.com"
CONCURRENCY = 3  # requests in flight at once
REQUEST_SPACING = 0.2  # seconds between request starts: at most 5/s, half the public 10/s per IP
NOT_FOUND_SKIP_SECONDS = 24 * 3600.0  # a delisted product is asked again once a day
GRANULARITIES = frozenset({60, 300, 900, 3600, 21600, 86400})  # the only bucket lengths /candles accepts
MAX_CANDLES = 300  # buckets per /candles request; a wider range is refused


@dataclass
class _Round:
    """What one fetch gathered, product id -> outcome."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    errors: dict[str, ProviderError] = field(default_factory=dict)
    stopped: bool = False  # a 429, a hold or our spent budget: send nothing more this round


class Coinbase(UpstreamProvider):
    """Keyless; one `/stats` request per product, priced in the product's quote currency (USD for `X-USD`)."""

    BASE_URLS: ClassVar[dict[str, str]] = {"public": BASE_URL}
    CURRENCIES: ClassVar[frozenset[str] | None] = frozenset({"usd"})  # the id table's products are all X-USD
    RATE_LIMIT_HOLD: ClassVar[float] = 10.0  # its 429 carries no Retry-After; its token bucket refills in 1.5 s
    REQUEST_SPACING: ClassVar[float] = REQUEST_SPACING

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """Published: 10/s per IP (bursts 15), no monthly cap. We take 60/min: a coin is asked at most
        once a minute, so this covers 60 coins and leaves nine tenths of the IP's limit to anything else."""
        return 60.0, None

    name = "coinbase"
    batch_size = 1  # one product per /stats call

    def __init__(self, session: UpstreamSession, settings: ProviderSettings) -> None:
        super().__init__(session, settings)
        self._failing: set[str] = set()  # products whose last attempt failed, to log changes once

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        wanted = [
            (coin, coin.ids[self.name])
            for coin in coins
            if self.name in coin.ids
            and _quote_currency(coin.ids[self.name]) in currencies
            and not self._session.quarantine.skipped(coin.ids[self.name])
        ]
        if not wanted:
            return []
        state = _Round()
        limiter = anyio.Semaphore(CONCURRENCY)
        async with anyio.create_task_group() as tasks:
            for coin, product in wanted:
                tasks.start_soon(self._ask, coin, product, limiter, state)
        self._remember_not_found(state)
        if not state.quotes and state.errors:
            raise self._round_error(state.errors)
        self._log_changes(state)
        return [state.quotes[product] for _, product in wanted if product in state.quotes]

    async def _ask(self, coin: Coin, product: str, limiter: anyio.Semaphore, state: _Round) -> None:
        async with limiter:
            if state.stopped:
                return
            try:
                body = await self._session.get_json(
                    f"{self._base_url}/products/{url_quote(product, safe='')}/stats", headers=self._headers
                )
                state.quotes[product] = self._parse(coin, product, body)
            except ProviderError as err:
                state.errors[product] = err
                if err.status == 429 or err.over_budget or err.held:
                    state.stopped = True  # more requests now would only be refused too

    def has_candles(self, coin: Coin, currency: str) -> bool:
        product = coin.ids.get(self.name)
        return product is not None and _quote_currency(product) == currency

    async def candles(self, coin: Coin, currency: str, seconds: int, since: int, until: int) -> list[Candle]:
        """One side request per 300 buckets, oldest range first (720 hours: 3; 365 days: 2)."""
        if seconds not in GRANULARITIES or not self.has_candles(coin, currency):
            raise ValueError(f"coinbase: no {seconds} s candles for {coin.symbol}/{currency}")
        product = coin.ids[self.name]
        url = f"{self._base_url}/products/{url_quote(product, safe='')}/candles"
        where = f"{coin.symbol}/{currency}"
        found: list[Candle] = []
        for start in range(since, until, MAX_CANDLES * seconds):
            end = min(start + (MAX_CANDLES - 1) * seconds, until)  # both ends count: 300 buckets at most
            body = await self._session.get_json(
                url,
                params={"granularity": str(seconds), "start": _iso(start), "end": _iso(end)},
                headers=self._headers,
                side=True,
            )
            if not isinstance(body, list):
                raise ProviderError(self.name, f"unexpected /candles response ({type(body).__name__})")
            for row in body:
                if isinstance(row, list) and len(row) >= 5:  # [time, low, high, open, close, volume]
                    bucket = candle(self.name, where, row[0], seconds, (row[3], row[2], row[1], row[4]))
                    if bucket is not None:
                        found.append(bucket)
                else:
                    ignored(self.name, where, f"off-schema candle {row!r:.80}", kind="candle")
        return window(found, since, until)

    def _parse(self, coin: Coin, product: str, body: Any) -> Quote:
        """`last` is the price; the change is measured from `open`, the price at the start of the 24 h window."""
        if not isinstance(body, dict):
            raise ProviderError(self.name, f"unexpected /stats response ({type(body).__name__})")
        last = number(body.get("last"))
        if last is None:
            raise ProviderError(self.name, f"/stats without a numeric last price ({body.get('last')!r:.40})")
        opened = number(body.get("open"))
        change = None
        if opened is not None and math.isfinite(opened) and opened > 0 and math.isfinite(last):
            change = (last - opened) / opened * 100.0
        # Non-finite or non-positive prices pass through: the poller rejects them for every provider alike.
        return Quote(
            symbol=coin.symbol,
            currency=_quote_currency(product),
            price=last,
            change_24h_pct=change,
            updated_at=None,  # /stats has no time; the poller stamps the fetch time
            source=self.name,
        )

    def _remember_not_found(self, state: _Round) -> None:
        """Skip 404 products for a day, but only when another product answered this round: a 404 for
        every product means a wrong base URL or path, not a delisting, and must stay a visible failure."""
        for product in list(state.quotes):
            if self._session.quarantine.release(product):
                logger.info("coinbase: %s is listed again", product)
        if not state.quotes:
            return
        for product, err in list(state.errors.items()):
            if err.status != 404:
                continue
            del state.errors[product]
            if self._session.quarantine.skip(product, NOT_FOUND_SKIP_SECONDS):
                logger.warning("coinbase: %s not found (delisted?); asking again in 24 h", product)

    def _round_error(self, errors: dict[str, ProviderError]) -> ProviderError:
        """The most telling failure of a round that priced nothing, named by its product."""
        product, err = max(errors.items(), key=lambda item: _telling(item[1]))
        if err.over_budget or err.held:
            return err  # nothing was sent: the budget's or the hold's own message and wait say it all
        others = sum(1 for e in errors.values() if not (e.over_budget or e.held)) - 1
        message = f"{product}: {err.message}" + (f" (and {others} more)" if others else "")
        return ProviderError(self.name, message, status=err.status, retry_after=err.retry_after)

    def _log_changes(self, state: _Round) -> None:
        """Per-product failures in a round that still priced something, logged when they start and end."""
        failed = {product: err for product, err in state.errors.items() if not (err.over_budget or err.held)}
        started = sorted(set(failed) - self._failing)
        if started:
            details = "; ".join(f"{product}: {failed[product].message}" for product in started)
            logger.warning("coinbase: no price this round for %s", details)
        recovered = sorted(self._failing & set(state.quotes))
        if recovered:
            logger.info("coinbase: priced again: %s", ", ".join(recovered))
        self._failing = (self._failing | set(failed)) - set(state.quotes)
        if state.stopped and any(err.over_budget for err in state.errors.values()):
            logger.debug("coinbase: request budget spent mid-round; remaining coins fail over")


def _quote_currency(product: str) -> str:
    """`BTC-USD` -> `usd`: Coinbase product ids are BASE-QUOTE."""
    base, _, quote = product.rpartition("-")
    return quote.lower() if base and quote else ""


def _iso(unix_seconds: int) -> str:
    """`2026-11-27T18:00:00Z`: the ISO 8601 form the Exchange API documents for `start` and `end`."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _telling(err: ProviderError) -> tuple[bool, bool, bool, bool, bool]:
    """Sort key: upstream before budget, then 429, an explicit wait, a provider-wide HTTP status, any status."""
    return (
        not (err.over_budget or err.held),
        err.status == 429,
        err.retry_after is not None,
        err.status is not None and err.status != 404,
        err.status is not None,
    )
