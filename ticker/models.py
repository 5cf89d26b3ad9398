"""The data that flows from providers through the poller and store to the views.

Everything here is frozen: the memory cache hands out the very object it
holds, so a mutable snapshot could be changed behind the store's back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with `Z`, to the second, as the contract promises."""
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def frozen_map(items: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class Coin:
    """A configured coin: identified by provider ids, never by symbol at run time."""

    symbol: str
    name: str
    ids: Mapping[str, str] = field(default_factory=frozen_map)
    prices: Mapping[str, float] = field(default_factory=frozen_map)
    max_jump_pct: float | None = None  # this coin's jump limit in percent (0: off); None: poller.max_jump_pct

    @property
    def is_static(self) -> bool:
        """A static coin has a configured price and is never fetched."""
        return bool(self.prices)


@dataclass(frozen=True)
class Quote:
    """One coin's price in one currency, as a provider gave it (unrounded)."""

    symbol: str
    currency: str
    price: float
    change_24h_pct: float | None
    updated_at: datetime | None  # the provider's own time; the poller fills in the fetch time
    source: str
    # Extras a provider may attach; the poller moves them into the snapshot's icons and history.
    icon_url: str | None = None
    sparkline_7d: tuple[float, ...] | None = None  # hourly, the last 7 days
    # Changes over other spans, in percent: a provider's own figure, else ours from the price history
    # (ticker/history/recorder.py); None until known.
    change_1h_pct: float | None = None
    change_7d_pct: float | None = None
    change_30d_pct: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "currency": self.currency,
            "price": self.price,
            "change_24h_pct": self.change_24h_pct,
            "change_1h_pct": self.change_1h_pct,
            "change_7d_pct": self.change_7d_pct,
            "change_30d_pct": self.change_30d_pct,
            "updated_at": iso(self.updated_at),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quote:
        updated = data.get("updated_at")
        return cls(
            symbol=str(data["symbol"]),
            currency=str(data["currency"]),
            price=float(data["price"]),
            change_24h_pct=_number_or_none(data.get("change_24h_pct")),
            updated_at=parse_iso(updated) if isinstance(updated, str) else None,
            source=str(data["source"]),
            change_1h_pct=_number_or_none(data.get("change_1h_pct")),
            change_7d_pct=_number_or_none(data.get("change_7d_pct")),
            change_30d_pct=_number_or_none(data.get("change_30d_pct")),
        )


def _number_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Candidate:
    """A provider's coin that matches a symbol, as `ticker resolve` lists them."""

    provider: str
    id: str
    symbol: str
    name: str
    market_cap: float | None
    rank: int | None


@dataclass(frozen=True)
class ProviderStatus:
    """How a provider fared, for /readyz and the logs."""

    state: str  # idle | ok | failing | backoff
    last_success: datetime | None = None
    last_error: str | None = None  # short, keys redacted
    retry_at: datetime | None = None  # when a held or backing-off provider may be asked again

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_success": iso(self.last_success),
            "last_error": self.last_error,
            "retry_at": iso(self.retry_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProviderStatus:
        last = data.get("last_success")
        return cls(
            state=str(data.get("state", "failing")),
            last_success=parse_iso(last) if isinstance(last, str) else None,
            last_error=data.get("last_error") if isinstance(data.get("last_error"), str) else None,
            retry_at=parse_iso(data["retry_at"]) if isinstance(data.get("retry_at"), str) else None,
        )


@dataclass(frozen=True)
class SavedManners:
    """A provider's manners as saved with the snapshot or in Redis: they bind whoever polls next.

    `hold_until` is a UTC deadline (Retry-After or block); `sent` the Unix times of the requests
    still inside a budget window.
    """

    hold_until: datetime | None = None
    reason: str | None = None
    sent: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"hold_until": iso(self.hold_until), "reason": self.reason, "sent": list(self.sent)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SavedManners:
        until = data.get("hold_until")
        sent = data.get("sent")
        return cls(
            hold_until=parse_iso(until) if isinstance(until, str) else None,
            reason=str(data["reason"])[:200] if isinstance(data.get("reason"), str) else None,
            sent=tuple(float(t) for t in sent if isinstance(t, int | float)) if isinstance(sent, list) else (),
        )


@dataclass(frozen=True)
class Snapshot:
    """The last good quote of every coin and currency, as of one poll round.

    Quotes that a round could not refresh are carried over with their old
    `updated_at`, so old data is served and ages honestly instead of vanishing.
    """

    generated_at: datetime
    quotes: Mapping[tuple[str, str], Quote] = field(default_factory=lambda: MappingProxyType({}))
    providers: Mapping[str, ProviderStatus] = field(default_factory=lambda: MappingProxyType({}))
    history: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=lambda: MappingProxyType({}))
    icons: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # symbol -> upstream icon URL
    manners: Mapping[str, SavedManners] = field(default_factory=lambda: MappingProxyType({}))  # by provider

    def quote(self, symbol: str, currency: str) -> Quote | None:
        return self.quotes.get((symbol, currency))

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Snapshot:
        """Rebuild a snapshot; raises ValueError (or KeyError/TypeError) on a damaged one."""
        return cls.from_dict(json.loads(raw))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the form saved to the snapshot file and shared through Redis."""
        return {
            "version": 1,
            "generated_at": iso(self.generated_at),
            "quotes": [quote.to_dict() for quote in self.quotes.values()],
            "providers": {name: status.to_dict() for name, status in self.providers.items()},
            "history": {symbol: [list(point) for point in points] for symbol, points in self.history.items()},
            "icons": dict(self.icons),
            "manners": {name: saved.to_dict() for name, saved in self.manners.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        quotes = [Quote.from_dict(item) for item in data["quotes"]]
        return cls(
            generated_at=parse_iso(data["generated_at"]),
            quotes=MappingProxyType({(q.symbol, q.currency): q for q in quotes}),
            providers=MappingProxyType(
                {str(name): ProviderStatus.from_dict(status) for name, status in data.get("providers", {}).items()}
            ),
            history=MappingProxyType(
                {
                    str(symbol): tuple((int(hour), float(price)) for hour, price in points)
                    for symbol, points in data.get("history", {}).items()
                }
            ),
            icons=MappingProxyType({str(k): str(v) for k, v in data.get("icons", {}).items()}),
            manners=MappingProxyType(
                {str(name): SavedManners.from_dict(saved) for name, saved in data.get("manners", {}).items()}
            ),
        )


# Renamed tickers that users still type; the key is shown as its target.
ALIASES: Mapping[str, str] = MappingProxyType({"NANO": "XNO"})


def canonical_symbol(symbol: str) -> str:
    """Upper-case, with aliases folded (`nano` -> `XNO`)."""
    upper = symbol.strip().upper()
    return ALIASES.get(upper, upper)


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLC bucket of one coin in one currency: `start` Unix seconds (UTC) of the bucket's start,
    `seconds` its length, open/high/low/close prices in that currency."""

    start: int
    seconds: int
    open: float
    high: float
    low: float
    close: float
