"""Hourly market data (rank, 1 h, 7 d and 30 d changes) merged into each round's quotes, while fresh.

CoinGecko's `/coins/markets` is side work asked once an hour (side_work.py), so its figures are up to an
hour old when they reach a quote. They travel with the provider's quotes as `Quote.market`, keep their own
time (`MarketData.at`) and are dropped once older than `MAX_AGE`, so a stale rank is never presented as
fresh. A figure that came with the price itself wins (CoinPaprika's `/tickers` carries rank and changes
with every price); the changes are merged only into the quote in the market data's own currency, since a
change in USD is not a change in EUR, while a rank is the same in every currency.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ticker.models import Quote

MAX_AGE = 2 * 3600.0  # seconds: an hourly refresh that failed once still counts; two hours more, it is dropped


def with_market(quote: Quote, now: datetime) -> Quote:
    """`quote` with its `market` extra merged into the fields it left None (and the extra dropped)."""
    market = quote.market
    if market is None:
        return quote
    if (now - market.at).total_seconds() > MAX_AGE:
        return replace(quote, market=None)
    same = market.currency == quote.currency
    return replace(
        quote,
        market=None,
        rank=quote.rank if quote.rank is not None else market.rank,
        change_1h_pct=_first(quote.change_1h_pct, market.change_1h_pct if same else None),
        change_7d_pct=_first(quote.change_7d_pct, market.change_7d_pct if same else None),
        change_30d_pct=_first(quote.change_30d_pct, market.change_30d_pct if same else None),
    )


def _first(own: float | None, merged: float | None) -> float | None:
    return own if own is not None else merged
