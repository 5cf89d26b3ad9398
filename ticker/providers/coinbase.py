"""Coinbase Exchange: a keyless per-product fallback for the coins Coinbase lists.

`GET /products/{id}/stats` gives the `last` trade and the `open` of the 24-hour
window it reports, so one call prices one coin with its 24 h change; the
Exchange API has no batch endpoint. The calls go out a few at a time and paced,
well under the public 10 requests/s per IP. One product's failure only costs
that coin (it fails over to the next provider); a product Coinbase does not
list (404) is skipped for a day instead of costing a request every round; only
a round in which nothing could be priced raises.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

import anyio
import httpx

from ticker.exceptions import ProviderError
from ticker.models import Coin, Quote
from ticker.providers.budget import RequestBudget
from ticker.providers.session import get_json, number

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BASE_URL = "https://api.exchange.coinbase.com"
CONCURRENCY = 3  # requests in flight at once
REQUEST_SPACING = 0.2  # seconds between request starts: at most 5/s, half the public 10/s per IP
NOT_FOUND_SKIP_SECONDS = 24 * 3600.0  # a delisted product is asked again once a day
RATE_LIMIT_RETRY_SECONDS = 10.0  # Coinbase's 429 carries no Retry-After; its token bucket refills in 1.5 s


@dataclass
class _Round:
    """What one fetch gathered, product id -> outcome."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    errors: dict[str, ProviderError] = field(default_factory=dict)
    stopped: bool = False  # a 429 or our spent budget: send nothing more this round


class Coinbase:
    """Keyless; one `/stats` request per product, priced in the product's quote currency (USD for `X-USD`)."""

    KEYLESS: ClassVar[bool] = True
    PLANS: ClassVar[tuple[str, ...]] = ("public",)

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """Published: 10/s per IP (bursts 15), no monthly cap. We take 60/min: a coin is asked at most
        once a minute, so this covers 60 coins and leaves nine tenths of the IP's limit to anything else."""
        return 60.0, None

    name = "coinbase"
    batch_size = 1  # one product per /stats call

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: ProviderSettings,
        *,
        budget: RequestBudget | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._client = client
        self._base_url = (settings.base_url or BASE_URL).rstrip("/")
        self._headers = {"accept": "application/json"}
        self._budget = budget
        self._monotonic = monotonic
        self._sleep = sleep
        self._next_start = 0.0
        self._not_found: dict[str, float] = {}  # product -> when to ask again; kept until it answers
        self._failing: set[str] = set()  # products whose last attempt failed, to log changes once

    def supports(self, coin: Coin) -> bool:
        return self.name in coin.ids

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        now = self._monotonic()
        wanted = [
            (coin, coin.ids[self.name])
            for coin in coins
            if self.name in coin.ids
            and _quote_currency(coin.ids[self.name]) in currencies
            and self._not_found.get(coin.ids[self.name], now) <= now
        ]
        if not wanted:
            return []
        state = _Round()
        limiter = anyio.Semaphore(CONCURRENCY)
        async with anyio.create_task_group() as tasks:
            for coin, product in wanted:
                tasks.start_soon(self._ask, coin, product, limiter, state)
        self._remember_not_found(state, now)
        if not state.quotes and state.errors:
            raise self._round_error(state.errors)
        self._log_changes(state)
        return [state.quotes[product] for _, product in wanted if product in state.quotes]

    async def _ask(self, coin: Coin, product: str, limiter: anyio.Semaphore, state: _Round) -> None:
        async with limiter:
            if state.stopped:
                return
            await self._pace()
            if state.stopped:
                return
            try:
                body = await get_json(
                    self._client,
                    self.name,
                    f"{self._base_url}/products/{url_quote(product, safe='')}/stats",
                    headers=self._headers,
                    budget=self._budget,
                )
                state.quotes[product] = self._parse(coin, product, body)
            except ProviderError as err:
                state.errors[product] = err
                if err.status == 429 or err.over_budget:
                    state.stopped = True  # more requests now would only be refused too

    async def _pace(self) -> None:
        """Space request starts by REQUEST_SPACING; the slot is taken before waiting, so concurrent callers queue."""
        now = self._monotonic()
        start = max(now, self._next_start)
        self._next_start = start + REQUEST_SPACING
        if start > now:
            await self._sleep(start - now)

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

    def _remember_not_found(self, state: _Round, now: float) -> None:
        """Skip 404 products for a day, but only when another product answered this round: a 404 for
        every product means a wrong base URL or path, not a delisting, and must stay a visible failure."""
        for product in list(state.quotes):
            if self._not_found.pop(product, None) is not None:
                logger.info("coinbase: %s is listed again", product)
        if not state.quotes:
            return
        for product, err in list(state.errors.items()):
            if err.status != 404:
                continue
            del state.errors[product]
            if product not in self._not_found:
                logger.warning("coinbase: %s not found (delisted?); asking again in 24 h", product)
            self._not_found[product] = now + NOT_FOUND_SKIP_SECONDS

    def _round_error(self, errors: dict[str, ProviderError]) -> ProviderError:
        """The most telling failure of a round that priced nothing, named by its product."""
        product, err = max(errors.items(), key=lambda item: _telling(item[1]))
        if err.over_budget:
            return err  # nothing was sent: the budget's own message and wait say it all
        others = sum(1 for e in errors.values() if not e.over_budget) - 1
        message = f"{product}: {err.message}" + (f" (and {others} more)" if others else "")
        retry_after = err.retry_after
        if err.status == 429 and retry_after is None:
            retry_after = RATE_LIMIT_RETRY_SECONDS
        return ProviderError(self.name, message, status=err.status, retry_after=retry_after)

    def _log_changes(self, state: _Round) -> None:
        """Per-product failures in a round that still priced something, logged when they start and end."""
        failed = {product: err for product, err in state.errors.items() if not err.over_budget}
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


def _telling(err: ProviderError) -> tuple[bool, bool, bool, bool, bool]:
    """Sort key: upstream before budget, then 429, an explicit wait, a provider-wide HTTP status, any status."""
    return (
        not err.over_budget,
        err.status == 429,
        err.retry_after is not None,
        err.status is not None and err.status != 404,
        err.status is not None,
    )
