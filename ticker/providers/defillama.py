"""DefiLlama's coins API (keyless): token prices by contract address, in USD; the fallback of GeckoTerminal.

A coin's id is "chain:address" in DefiLlama's chain names (ticker/providers/chains.py maps them from
GeckoTerminal's; e.g. "ethereum:0x..."). One round asks, per 50 tokens (a URL of a few KB):
- `/prices/current/{coins}`, coins comma-separated: `{"coins": {"ethereum:0x...": {"decimals": 18,
  "symbol": "WETH", "price": 2472.55, "timestamp": 1700000000, "confidence": 0.99}}}` (DefiLlama API docs,
  "coins" section); `timestamp` is the price's own time (Unix seconds). A token it does not know is
  left out of `coins` (the answer is `{"coins": {}}`): missing, not a provider failure.
- `/percentage/{coins}?period=24h`: `{"coins": {"ethereum:0x...": -1.72}}`, the change in percent over
  the last 24 h (same docs). Only asked when some price came back; if it fails, the prices still count
  and the change is None (never made up).
No published rate limit for the free API (fair use; 429 when exceeded): we allow 30 requests a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote as url_quote

from ticker.exceptions import ProviderError
from ticker.models import Coin, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.geckoterminal import TokenInfo
from ticker.providers.parsing import ignored, json_number, percent, unix_time

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BATCH = 50


class DefiLlama(UpstreamProvider):
    """Keyless; tokens by contract address only (a coin without a "defillama" id is never asked for)."""

    BASE_URLS: ClassVar[dict[str, str]] = {"public": "https://coins.llama.fi"}
    CURRENCIES: ClassVar[frozenset[str] | None] = frozenset({"usd"})
    TOKENS_ONLY: ClassVar[bool] = True

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """No published limit for the free coins API (fair use): 30 a minute keeps us far inside it."""
        return 30.0, None

    name = "defillama"
    batch_size = BATCH

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        """USD quotes, with DefiLlama's 24 h change where its percentage endpoint answers."""
        if "usd" not in currencies:
            return []
        by_id = {coin.ids[self.name]: coin for coin in coins if self.name in coin.ids}
        ids = list(by_id)
        quotes: list[Quote] = []
        for start in range(0, len(ids), BATCH):
            chunk = {token_id: by_id[token_id] for token_id in ids[start : start + BATCH]}
            body = await self._session.get_json(self._url("prices/current", chunk), headers=self._headers)
            got = parse_current_prices(self.name, body, chunk)
            if got:
                changes = await self._changes({k: v for k, v in chunk.items() if v.symbol in {q.symbol for q in got}})
                got = [_with_change(quote, changes.get(quote.symbol)) for quote in got]
            quotes.extend(got)
        return quotes

    async def token_info(self, chain: str, address: str) -> TokenInfo | None:
        """What DefiLlama says about one token ("chain" in DefiLlama's names); None when it does not know it."""
        token_id = f"{chain}:{address}"
        body = await self._session.get_json(
            f"{self._base_url}/prices/current/{url_quote(token_id, safe=':')}", headers=self._headers, side=True
        )
        entry = _entry(_coins(self.name, body), token_id)
        if entry is None:
            return None
        symbol = entry.get("symbol")
        return TokenInfo(
            self.name,
            None,
            symbol.strip()[:40] or None if isinstance(symbol, str) else None,
            _positive(entry.get("price")),
            confidence=json_number(entry.get("confidence")),
        )

    async def _changes(self, chunk: dict[str, Coin]) -> dict[str, float | None]:
        """24 h changes by symbol; empty when the percentage endpoint fails (the prices still count)."""
        try:
            body = await self._session.get_json(
                self._url("percentage", chunk), params={"period": "24h"}, headers=self._headers
            )
            coins = _coins(self.name, body)
        except ProviderError as err:
            logger.info("defillama: no 24h change this round (%s)", err.message)
            return {}
        changes: dict[str, float | None] = {}
        for token_id, coin in chunk.items():
            entry = _entry(coins, token_id)
            changes[coin.symbol] = percent(entry)
        return changes

    def _url(self, endpoint: str, chunk: dict[str, Coin]) -> str:
        return f"{self._base_url}/{endpoint}/" + ",".join(url_quote(token_id, safe=":") for token_id in chunk)


def parse_current_prices(provider: str, body: Any, wanted: dict[str, Coin]) -> list[Quote]:
    """USD quotes for the `wanted` coins (keyed by "chain:address" id) from a `/prices/current` body.

    Raises ProviderError when the body has no `coins` object; a token it lacks, or whose price is not a
    positive number, is left out (the latter logged once).
    """
    coins = _coins(provider, body)
    quotes: list[Quote] = []
    for token_id, coin in wanted.items():
        entry = _entry(coins, token_id)
        if not isinstance(entry, dict):
            continue  # unknown to DefiLlama: missing
        price = _positive(entry.get("price"))
        if price is None:
            ignored(provider, f"{coin.symbol}/usd", f"non-numeric price {entry.get('price')!r:.40}", kind="price")
            continue
        quotes.append(
            Quote(
                symbol=coin.symbol,
                currency="usd",
                price=price,
                change_24h_pct=None,  # from /percentage, where it answers
                updated_at=unix_time(entry.get("timestamp")),
                source=provider,
            )
        )
    return quotes


def _coins(provider: str, body: Any) -> dict[str, Any]:
    coins = body.get("coins") if isinstance(body, dict) else None
    if not isinstance(coins, dict):
        raise ProviderError(provider, "unexpected response (no coins object)")
    return coins


def _entry(coins: dict[str, Any], token_id: str) -> Any:
    """The value for `token_id`; keys of EVM addresses may come back in another case than asked."""
    if token_id in coins:
        return coins[token_id]
    if ":0x" not in token_id:
        return None  # Solana addresses are case-sensitive
    wanted = token_id.lower()
    for key, value in coins.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _positive(value: Any) -> float | None:
    found = json_number(value)
    return found if found is not None and found == found and 0 < found < float("inf") else None


def _with_change(quote: Quote, change: float | None) -> Quote:
    return replace(quote, change_24h_pct=change)
