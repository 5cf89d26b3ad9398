"""The board: what a visitor sees for one selection of coins and one currency.

Both the JSON and the widget render from a Board, so "stale", "unavailable"
and "never fetched" mean the same everywhere. Built from the snapshot and
the time now: staleness is measured from each quote's own `updated_at`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from ticker.history.sparkline import series
from ticker.models import Coin, ProviderStatus, Snapshot, iso

DATE_SHOWN_AFTER = timedelta(hours=20)  # "as of 14:05 UTC" becomes "as of Nov 26 14:05 UTC"


@dataclass(frozen=True)
class Row:
    symbol: str
    name: str
    price: float | None
    change_24h_pct: float | None
    updated_at: datetime | None
    source: str | None
    stale: bool
    history: tuple[float, ...] = ()  # hourly prices, oldest first, for the sparkline
    static: bool = False  # a configured price (never fetched, never stale)
    change_1h_pct: float | None = None
    change_7d_pct: float | None = None
    change_30d_pct: float | None = None

    @property
    def available(self) -> bool:
        return self.price is not None

    def to_json(self, icon_base: str = "") -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "name": self.name,
            "price": self.price,
            "change_24h_pct": self.change_24h_pct,
            "change_1h_pct": self.change_1h_pct,
            "change_7d_pct": self.change_7d_pct,
            "change_30d_pct": self.change_30d_pct,
            "updated_at": iso(self.updated_at),
            "source": self.source,
            "stale": self.stale,
            "icon_url": f"{icon_base}/icons/{self.symbol}",
        }


@dataclass(frozen=True)
class Board:
    currency: str
    generated_at: datetime | None
    rows: tuple[Row, ...]
    valid_until: datetime | None = None  # when a row's stale/unavailable state (or its "as of" text) next changes
    # How each provider fared in the snapshot's round: why rows are unavailable.
    providers: Mapping[str, ProviderStatus] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def stale(self) -> bool:
        return any(row.stale for row in self.rows)

    @property
    def sources(self) -> tuple[str, ...]:
        """The distinct sources of the rows, in row order, for the attribution line: a price past
        max_stale still credits its source, since its "as of" time came from there."""
        return tuple(dict.fromkeys(row.source for row in self.rows if row.source))

    @property
    def unreachable(self) -> bool:
        """No provider answered the last round while at least one was asked and failed or is held."""
        states = {status.state for status in self.providers.values()}
        return "ok" not in states and bool(states & {"failing", "backoff"})

    @property
    def last_reached(self) -> datetime | None:
        """When a provider last answered, if ever: "sources unreachable since" that time."""
        return max((s.last_success for s in self.providers.values() if s.last_success), default=None)

    def to_json(self, icon_base: str = "") -> dict[str, Any]:
        return {
            "currency": self.currency,
            "generated_at": iso(self.generated_at),
            "stale": self.stale,
            "coins": [row.to_json(icon_base) for row in self.rows],
        }


def build_board(
    snapshot: Snapshot | None,
    coins: Sequence[Coin],
    currency: str,
    *,
    now: datetime,
    stale_after: float,
    max_stale: float,
    with_history: bool = False,
) -> Board:
    rows = tuple(_row(snapshot, coin, currency, now, stale_after, max_stale) for coin in coins)
    if with_history and snapshot is not None:
        rows = tuple(replace(row, history=tuple(series(snapshot.history, row.symbol))) for row in rows)
    changes = [
        moment
        for row in rows
        if row.updated_at is not None and row.source != "static"
        for moment in (
            row.updated_at + timedelta(seconds=stale_after),
            row.updated_at + timedelta(seconds=max_stale),
            row.updated_at + DATE_SHOWN_AFTER,
        )
        if moment > now
    ]
    if snapshot is None:
        return Board(currency, None, rows, min(changes, default=None))
    changes += [
        status.last_success + DATE_SHOWN_AFTER  # "since 14:05 UTC" becomes "since Nov 26 14:05 UTC"
        for status in snapshot.providers.values()
        if status.last_success is not None and status.last_success + DATE_SHOWN_AFTER > now
    ]
    return Board(currency, snapshot.generated_at, rows, min(changes, default=None), providers=snapshot.providers)


def _row(
    snapshot: Snapshot | None, coin: Coin, currency: str, now: datetime, stale_after: float, max_stale: float
) -> Row:
    if coin.is_static:
        price = coin.prices.get(currency)
        source = "static" if price is not None else None
        return Row(coin.symbol, coin.name, price, None, None, source, False, static=True)
    quote = snapshot.quote(coin.symbol, currency) if snapshot else None
    if quote is None or quote.updated_at is None:
        return Row(coin.symbol, coin.name, None, None, None, None, True)
    age = (now - quote.updated_at).total_seconds()
    if age > max_stale:
        return Row(coin.symbol, coin.name, None, None, quote.updated_at, quote.source, True)
    return Row(
        coin.symbol,
        coin.name,
        quote.price,
        quote.change_24h_pct,
        quote.updated_at,
        quote.source,
        age > stale_after,
        change_1h_pct=quote.change_1h_pct,
        change_7d_pct=quote.change_7d_pct,
        change_30d_pct=quote.change_30d_pct,
    )
