"""The sidebar's HTML: a Board turned into an autoescaped Jinja2 document or fragment.

Everything a visitor reads is prepared here (Babel-formatted numbers, the
arrow and colour of a change, the sentence a screen reader speaks), so the
templates only lay it out.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup

from ticker.config import LAYOUTS, Settings
from ticker.render.board import DATE_SHOWN_AFTER, Board, Row
from ticker.render.formatting import (
    SUBSCRIPT_BELOW,
    UNKNOWN,
    Direction,
    change_direction,
    currency_name,
    format_change,
    format_price,
    spoken_amount,
    spoken_change,
)
from ticker.render.sparkline import sparkline_svg
from ticker.web.query import WidgetOptions

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
# A price above this in any currency is no price of a coin (1e7 USD in the weakest currency, or in sats,
# stays below 1e14): the row shows as unavailable rather than an absurd number, whatever reached the snapshot.
DISPLAY_LIMIT = 1e15
_REPORTED: set[tuple[str, str]] = set()  # (symbol, currency) rows already logged as not displayable
ARROWS: dict[Direction, str] = {"up": "▲", "down": "▼", "flat": "", "unknown": ""}

# Why rows are unavailable (or stale), for the footer and screen readers; lower case, capitalised in the footer.
NO_SOURCE = "no configured source for this currency"
WAITING = "waiting for the first prices"
UNREACHABLE = "sources unreachable"

# How the attribution line names each source (and links to it).
SOURCE_LABELS: dict[str, tuple[str, str | None]] = {
    "coingecko": ("CoinGecko", "https://www.coingecko.com/"),
    "coinpaprika": ("CoinPaprika", "https://coinpaprika.com/"),
    "kraken": ("Kraken", "https://www.kraken.com/"),
    "binance": ("Binance", "https://www.binance.com/"),
    "coinbase": ("Coinbase", "https://exchange.coinbase.com/"),
    "demo": ("simulated demo data", None),
    "static": ("fixed prices set by this site", None),
}


@dataclass(frozen=True)
class RowView:
    symbol: str
    name: str
    price_text: str
    price_full: str | None  # the price with every digit, when price_text abbreviates it (0.0₅712)
    change_text: str
    direction: Direction
    arrow: str
    stale: bool
    as_of: str | None
    spoken: str
    spark: Markup | None


@dataclass(frozen=True)
class Page:
    """Where the rendered widget finds things: URLs are relative unless server.public_url is set."""

    icon_base: str = ""
    fragment_url: str = "/widget/fragment"
    css_url: str | None = None


def _static(name: str) -> str:
    """A template asset with its line breaks dropped: the CSS and JS are written one rule per line."""
    return "".join(line.strip() for line in (TEMPLATES / name).read_text().splitlines())


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class WidgetRenderer:
    """Renders the widget; its inline CSS and JS are constants, so the CSP allows them by hash."""

    CSS = _static("widget.css")
    JS = _static("widget.js")
    STYLE_HASH = csp_hash(CSS)
    SCRIPT_HASH = csp_hash(JS)

    def __init__(self, settings: Settings) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._title = settings.widget.title
        self._refresh = max(int(settings.poller.interval_seconds), 1)
        self._coins = [coin.symbol for coin in settings.market.coins]
        self._currencies = settings.market.currencies
        self._unserved = settings.market.unserved_currencies
        self._embed_js = self._env.get_template("embed.js").render(
            title=self._title, default_count=len(self._coins), default_layout=settings.widget.layout
        )

    def document(self, board: Board, options: WidgetOptions, *, now: datetime, page: Page) -> str:
        context = self._context(board, options, now, page)
        return self._env.get_template("widget.html").render(context, css=Markup(self.CSS), js=Markup(self.JS))

    def fragment(self, board: Board, options: WidgetOptions, *, now: datetime, page: Page) -> str:
        return self._env.get_template("_board.html").render(self._context(board, options, now, page))

    def error(self, message: str) -> str:
        return self._env.get_template("error.html").render(message=message)

    def embed_js(self) -> str:
        return self._embed_js

    def landing(self, base: str) -> str:
        """The page at /: every layout and theme previewed, and the snippets to paste."""
        # Snippets are HTML the operator pastes elsewhere: every attribute value escaped, so any title pastes.
        coins = ",".join(self._coins[:2])
        widget_url = f"{base}/widget?" + urlencode({"coins": coins, "theme": "auto"}, safe=",")
        script = (
            f'<script src="{_attr(base + "/embed.js")}" data-coins="{_attr(coins)}" data-theme="auto" async></script>'
        )
        iframe = (
            f'<iframe src="{_attr(widget_url)}" title="{_attr(self._title)}" width="320" height="200" '
            'style="border:0" loading="lazy" referrerpolicy="no-referrer"></iframe>'
        )
        return self._env.get_template("index.html").render(
            title=self._title,
            base=base,
            script_snippet=script,
            iframe_snippet=iframe,
            coins=", ".join(self._coins),
            currencies=", ".join(self._currencies),
            layouts=LAYOUTS,
            themes=("light", "dark"),
        )

    def _context(self, board: Board, options: WidgetOptions, now: datetime, page: Page) -> dict[str, object]:
        live = [row for row in board.rows if not row.static]
        # Past max_stale too: prices were seen then, and the footer says when.
        newest = max((row.updated_at for row in live if row.updated_at), default=None)
        reasons = {row.symbol: explain(row, board, self._unserved, now) for row in board.rows}
        return {
            "title": self._title,
            "lang": options.locale.split("_")[0],
            "options": options,
            "refresh_seconds": self._refresh,
            "rows": [present(row, board.currency, options, now, reasons[row.symbol]) for row in board.rows],
            "updated": clock_time(newest, now) if newest else None,
            "notes": [reason[0].upper() + reason[1:] for reason in dict.fromkeys(filter(None, reasons.values()))],
            "sources": [SOURCE_LABELS.get(source, (source.capitalize(), None)) for source in board.sources],
            "demo": "demo" in board.sources,
            "icon_base": page.icon_base,
            "fragment_url": page.fragment_url,
            "css_url": page.css_url,
        }


def explain(row: Row, board: Board, unserved: frozenset[str], now: datetime) -> str | None:
    """Why a row is unavailable or stale, if we know: no source for the currency, no data yet, or
    every source failing (since the last time one answered). None for a fresh row."""
    if row.available and not row.stale:
        return None
    if row.static or board.currency in unserved:
        return NO_SOURCE
    if board.generated_at is None:
        return WAITING
    if board.unreachable:
        since = board.last_reached
        return f"{UNREACHABLE} since {clock_time(since, now)}" if since else UNREACHABLE
    return None


def present(row: Row, currency: str, options: WidgetOptions, now: datetime, reason: str | None = None) -> RowView:
    """A row as shown; one that cannot be shown (an absurd price, a formatting failure) shows as unavailable."""
    try:
        if row.price is None or (math.isfinite(row.price) and 0 < row.price < DISPLAY_LIMIT):
            return _present(row, currency, options, now, reason)
        if (row.symbol, currency) not in _REPORTED:  # once: every variant and snapshot renders it again
            _REPORTED.add((row.symbol, currency))
            logger.warning("not showing %s's price %r %s: no displayable price", row.symbol, row.price, currency)
    except Exception:
        if (row.symbol, currency) not in _REPORTED:
            _REPORTED.add((row.symbol, currency))
            logger.exception("cannot show %s in %s for %s; shown as unavailable", row.symbol, currency, options.locale)
    return _present(Row(row.symbol, row.name, None, None, None, None, row.stale), currency, options, now, reason)


def _present(row: Row, currency: str, options: WidgetOptions, now: datetime, reason: str | None) -> RowView:
    locale = options.locale
    direction = change_direction(row.change_24h_pct) if row.available else "unknown"
    as_of = None
    if row.stale and row.updated_at is not None:
        as_of = f"as of {clock_time(row.updated_at, now)}"
    elif not row.available:
        as_of = "unavailable"
    spark = sparkline_svg(row.history) if options.sparkline and row.history else None
    price_text = format_price(row.price, currency, locale, subscript=True) if row.available else UNKNOWN
    full = format_price(row.price, currency, locale) if row.price is not None and row.price < SUBSCRIPT_BELOW else None
    return RowView(
        symbol=row.symbol,
        name=row.name,
        price_text=price_text,
        price_full=full if full != price_text else None,
        change_text=format_change(row.change_24h_pct, locale) if row.available else UNKNOWN,
        direction=direction,
        arrow=ARROWS[direction],
        stale=row.stale,
        as_of=as_of,
        spoken=spoken(row, currency, locale, direction, reason),
        spark=Markup(spark) if spark else None,
    )


def spoken(row: Row, currency: str, locale: str, direction: Direction, reason: str | None = None) -> str:
    """'Bitcoin, 90,917.04 US dollars, up 1.64 percent in 24 hours' for screen readers: every digit of the
    price, and a change that shows as 0.00 % is "unchanged"."""
    if row.price is None:
        return f"{row.name}, price unavailable" + (f", {reason}" if reason else "")
    text = f"{row.name}, {spoken_amount(row.price, currency, locale)} {currency_name(currency, locale)}"
    if direction in ("up", "down") and row.change_24h_pct is not None:
        text += f", {direction} {spoken_change(row.change_24h_pct, locale)} percent in 24 hours"
    elif direction == "flat":
        text += ", unchanged in 24 hours"
    if row.stale and row.updated_at is not None:
        text += f", last updated {row.updated_at:%H:%M} UTC"
    return text


def clock_time(moment: datetime, now: datetime) -> str:
    """'14:05 UTC' today, 'Nov 26 14:05 UTC' for older times."""
    if now - moment < DATE_SHOWN_AFTER:
        return f"{moment:%H:%M} UTC"
    return f"{moment:%b %d %H:%M} UTC"


def _attr(value: str) -> str:
    """A value for a double-quoted HTML attribute in a snippet we show for pasting."""
    return escape(value, quote=True)
