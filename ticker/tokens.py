"""Tokens by contract address in other currencies: their USD price times the rate BTC implies.

The DEX sources quote USD only. A token's price in another currency is its USD price times
BTC's price in that currency over BTC's price in USD, all three from the same poll round
(CONTRACT, "History, charts and market data"); without them the token is unavailable there.
The change is left None: a USD change is not the change in another currency, and no source gives that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from ticker.models import Coin, Quote

Pair = tuple[str, str]  # (symbol, currency)
REFERENCE = "BTC"


def converted(tokens: Sequence[Coin], fresh: Mapping[Pair, Quote], wanted: Iterable[Pair]) -> list[Quote]:
    """Quotes for the `wanted` (token, currency) pairs other than usd, from this round's `fresh` quotes.

    `fresh`: the quotes accepted in this round only (never carried over), by pair. A pair gets a quote
    when the token's usd quote and BTC's usd and target-currency quotes are all in `fresh`; the quote
    keeps the token's source, time and market-cap-free figures (price only, change None).
    """
    symbols = {coin.symbol for coin in tokens if coin.is_token}
    btc_usd = fresh.get((REFERENCE, "usd"))
    quotes = []
    for symbol, currency in sorted(wanted):
        token_usd = fresh.get((symbol, "usd"))
        btc_there = fresh.get((REFERENCE, currency))
        if symbol not in symbols or currency == "usd" or None in (token_usd, btc_usd, btc_there):
            continue
        assert token_usd is not None and btc_usd is not None and btc_there is not None
        if not btc_usd.price > 0:
            continue
        quotes.append(
            replace(
                token_usd,
                currency=currency,
                price=token_usd.price * btc_there.price / btc_usd.price,
                change_24h_pct=None,
                change_1h_pct=None,
                change_7d_pct=None,
                change_30d_pct=None,
                market_cap=None,
                volume_24h=None,
                rank=None,
                market=None,
            )
        )
    return quotes
