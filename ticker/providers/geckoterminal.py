"""GeckoTerminal's public API (v2, keyless): DEX prices of tokens by contract address, in USD.

A coin's id is "network:address" (ticker/providers/chains.py; e.g. "bsc:0x..."). One round asks
`/simple/networks/{network}/token_price/{addresses}` once per network and 30 addresses (the public
API's documented limit per call; 100 only for CoinGecko's paid onchain API), with
`include_24hr_price_change`, `include_market_cap`, `include_24hr_vol` and `include_total_reserve_in_usd`.
Answer (docs.coingecko.com `reference/onchain-simple-price`, JSON:API envelope):
`{"data": {"id", "type": "simple_token_price", "attributes": {"token_prices": {address: "1.23"},
"h24_price_change_percentage": {address: "-2.5"}, "market_cap_usd": {...}, "h24_volume_usd": {...},
"total_reserve_in_usd": {...}}}}`, every figure a decimal string, keyed by the lower-case address.
An address it does not know is left out of `token_prices` (or its price is null): that token is
missing, not a provider failure. The 24 h change is GeckoTerminal's own rolling 24 h figure; where
it is absent the change is None, never made up. Rate limit: 30 calls a minute (apiguide.geckoterminal.com/faq).

`candidates_for` (for `ticker resolve chain:address`) reads `/networks/{network}/tokens/{address}`:
`{"data": {"attributes": {"address", "name", "symbol", "price_usd", "total_reserve_in_usd", ...}}}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

from ticker.exceptions import ProviderError
from ticker.models import Coin, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.chains import split_id
from ticker.providers.parsing import ignored, market_figure, number, percent

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

MAX_ADDRESSES = 30  # per /simple/.../token_price call on the public API


@dataclass(frozen=True)
class TokenInfo:
    """What one DEX source says about a token, for `ticker resolve chain:address`; None where it says nothing.

    `price_usd` in US dollars; `liquidity_usd`: the USD value held in the token's pools (GeckoTerminal's
    `total_reserve_in_usd`); `confidence` DefiLlama's 0..1 score of its price.
    """

    source: str
    name: str | None
    symbol: str | None
    price_usd: float | None
    liquidity_usd: float | None = None
    confidence: float | None = None


class GeckoTerminal(UpstreamProvider):
    """Keyless; tokens by contract address only (a coin without a "geckoterminal" id is never asked for)."""

    BASE_URLS: ClassVar[dict[str, str]] = {"public": "https://api.geckoterminal.com/api/v2"}
    CURRENCIES: ClassVar[frozenset[str] | None] = frozenset({"usd"})
    TOKENS_ONLY: ClassVar[bool] = True

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """Published: 30 calls a minute for the public API (apiguide.geckoterminal.com/faq); no monthly cap."""
        return 30.0, None

    name = "geckoterminal"
    batch_size = MAX_ADDRESSES

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        """USD quotes of the tokens it has ids for; other currencies are left to the poller (none asked here)."""
        if "usd" not in currencies:
            return []
        by_network: dict[str, dict[str, Coin]] = {}
        for coin in coins:
            token_id = coin.ids.get(self.name)
            if token_id is None or ":" not in token_id:
                continue
            network, address = split_id(token_id)
            by_network.setdefault(network, {})[address] = coin
        quotes: list[Quote] = []
        for network, by_address in by_network.items():
            addresses = list(by_address)
            for start in range(0, len(addresses), MAX_ADDRESSES):
                chunk = addresses[start : start + MAX_ADDRESSES]
                body = await self._session.get_json(
                    f"{self._base_url}/simple/networks/{url_quote(network, safe='')}/token_price/"
                    + ",".join(url_quote(a, safe="") for a in chunk),
                    params={
                        "include_24hr_price_change": "true",
                        "include_market_cap": "true",
                        "include_24hr_vol": "true",
                        "include_total_reserve_in_usd": "true",
                    },
                    headers=self._headers,
                )
                quotes.extend(parse_token_prices(self.name, body, {a: by_address[a] for a in chunk}))
        return quotes

    async def token_info(self, network: str, address: str) -> TokenInfo | None:
        """What GeckoTerminal says about one token (None: it does not know it, HTTP 404). Raises ProviderError."""
        try:
            body = await self._session.get_json(
                f"{self._base_url}/networks/{url_quote(network, safe='')}/tokens/{url_quote(address, safe='')}",
                headers=self._headers,
                side=True,
            )
        except ProviderError as err:
            if err.status == 404:
                return None
            raise
        attributes = _attributes(body)
        if attributes is None:
            raise ProviderError(self.name, "unexpected /tokens/{address} response (no data.attributes)")
        return TokenInfo(
            self.name,
            _text(attributes.get("name")),
            _text(attributes.get("symbol")),
            _price(attributes.get("price_usd")),
            liquidity_usd=_price(attributes.get("total_reserve_in_usd")),
        )


def parse_token_prices(provider: str, body: Any, wanted: dict[str, Coin]) -> list[Quote]:
    """USD quotes for the `wanted` coins (keyed by request address) from a `/simple/.../token_price` body.

    Raises ProviderError when the body is not the documented envelope; a token it lacks, or whose
    price is not a positive decimal, is left out (logged once).
    """
    attributes = _attributes(body)
    prices = attributes.get("token_prices") if attributes is not None else None
    if attributes is None or not isinstance(prices, dict):
        raise ProviderError(provider, "unexpected token_price response (no data.attributes.token_prices)")
    lowered = {str(key).lower(): key for key in prices}

    def field(name: str, address: str) -> Any:
        values = attributes.get(name)
        if not isinstance(values, dict):
            return None
        key = lowered.get(address.lower(), address)
        return values.get(key, values.get(address))

    quotes: list[Quote] = []
    for address, coin in wanted.items():
        raw = field("token_prices", address)
        if raw is None:
            continue  # not known there (or no pool): the next provider may have it
        price = _price(raw)
        if price is None:
            ignored(provider, f"{coin.symbol}/usd", f"non-numeric price {raw!r:.40}", kind="price")
            continue
        quotes.append(
            Quote(
                symbol=coin.symbol,
                currency="usd",
                price=price,
                change_24h_pct=percent(number(field("h24_price_change_percentage", address))),
                updated_at=None,  # no price time in the answer: the fetch time stands in
                source=provider,
                market_cap=market_figure(number(field("market_cap_usd", address))),
                volume_24h=market_figure(number(field("h24_volume_usd", address))),
            )
        )
    return quotes


def _attributes(body: Any) -> dict[str, Any] | None:
    data = body.get("data") if isinstance(body, dict) else None
    attributes = data.get("attributes") if isinstance(data, dict) else None
    return attributes if isinstance(attributes, dict) else None


def _price(value: Any) -> float | None:
    """A decimal string (or number) that is a finite positive figure, else None."""
    found = number(value)
    return found if found is not None and found == found and 0 < found < float("inf") else None


def _text(value: Any) -> str | None:
    return value.strip()[:80] or None if isinstance(value, str) else None
