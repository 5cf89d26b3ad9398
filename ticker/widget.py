"""The sidebar's HTML: a Board turned into an autoescaped Jinja2 document or fragment.

Everything a visitor reads is prepared here (Babel-formatted numbers, the
arrow and colour of a change, the sentence a screen reader speaks), so the
templates only lay it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import jinja2
from babel.numbers import format_decimal

from ticker.board import Board, Row
from ticker.formatting import UNKNOWN, currency_name, display_decimal, format_change, format_price
from ticker.query import WidgetOptions

# How the attribution line names each source (and links to it).
SOURCE_LABELS: dict[str, tuple[str, str | None]] = {
    "coingecko": ("CoinGecko", "https://www.coingecko.com/"),
    "coinpaprika": ("CoinPaprika", "https://coinpaprika.com/"),
    "kraken": ("Kraken", "https://www.kraken.com/"),
    "binance": ("Binance", "https://www.binance.com/"),
    "coinbase": ("Coinbase", "https://exchange.coinbase.com/"),
    "cryptocompare": ("CryptoCompare", "https://www.cryptocompare.com/"),
    "demo": ("simulated demo data", None),
    "static": ("fixed prices set by this site", None),
}


@dataclass(frozen=True)
class RowView:
    symbol: str
    name: str
    icon_url: str | None
    price_text: str
    change_text: str
    direction: str  # up | down | flat | unknown
    arrow: str
    stale: bool
    as_of: str | None
    spoken: str


class WidgetRenderer:
    def __init__(self, *, title: str, refresh_seconds: float) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("ticker", "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._title = title
        self._refresh = max(int(refresh_seconds), 1)

    def document(self, board: Board, options: WidgetOptions, *, now: datetime, css_url: str | None = None) -> str:
        return self._env.get_template("widget.html").render(self._context(board, options, now), css_url=css_url)

    def fragment(self, board: Board, options: WidgetOptions, *, now: datetime) -> str:
        return self._env.get_template("_board.html").render(self._context(board, options, now))

    def error(self, message: str) -> str:
        return self._env.get_template("error.html").render(message=message)

    def _context(self, board: Board, options: WidgetOptions, now: datetime) -> dict[str, object]:
        newest = max((row.updated_at for row in board.rows if row.updated_at and row.available), default=None)
        return {
            "title": self._title,
            "show_title": options.layout != "ticker",
            "lang": options.locale.split("_")[0],
            "options": options,
            "refresh_seconds": self._refresh,
            "rows": [present(row, board.currency, options.locale, now) for row in board.rows],
            "updated": clock_time(newest, now) if newest else None,
            "sources": [SOURCE_LABELS.get(source, (source.capitalize(), None)) for source in board.sources],
            "demo": "demo" in board.sources,
        }


def present(row: Row, currency: str, locale: str, now: datetime) -> RowView:
    change = row.change_24h_pct
    if change is None or not row.available:
        direction, arrow = "unknown", ""
    elif change > 0:
        direction, arrow = "up", "▲"
    elif change < 0:
        direction, arrow = "down", "▼"
    else:
        direction, arrow = "flat", "▶"
    price_text = format_price(row.price, currency, locale) if row.available else UNKNOWN
    change_text = format_change(change, locale) if row.available else UNKNOWN
    as_of = None
    if row.stale and row.updated_at is not None:
        as_of = f"as of {clock_time(row.updated_at, now)}"
    elif not row.available and row.source is None:
        as_of = "unavailable"
    return RowView(
        symbol=row.symbol,
        name=row.name,
        icon_url=row.icon_url,
        price_text=price_text,
        change_text=change_text if direction != "unknown" or row.available else UNKNOWN,
        direction=direction,
        arrow=arrow,
        stale=row.stale,
        as_of=as_of,
        spoken=spoken(row, currency, locale, direction),
    )


def spoken(row: Row, currency: str, locale: str, direction: str) -> str:
    """'Bitcoin, 90,917.04 US dollars, up 1.64 percent in 24 hours' for screen readers."""
    if row.price is None:
        return f"{row.name}, price unavailable"
    amount = format_decimal(display_decimal(row.price), format="#,##0.00", locale=locale, decimal_quantization=False)
    text = f"{row.name}, {amount} {currency_name(currency, locale)}"
    if direction in ("up", "down") and row.change_24h_pct is not None:
        size = format_decimal(abs(row.change_24h_pct), format="0.00", locale=locale)
        text += f", {direction} {size} percent in 24 hours"
    elif direction == "flat":
        text += ", unchanged in 24 hours"
    if row.stale and row.updated_at is not None:
        text += f", last updated {row.updated_at:%H:%M} UTC"
    return text


def clock_time(moment: datetime, now: datetime) -> str:
    """'14:05 UTC' today, 'Nov 26 14:05 UTC' for older times."""
    if now - moment < timedelta(hours=20):
        return f"{moment:%H:%M} UTC"
    return f"{moment:%b %d %H:%M} UTC"
