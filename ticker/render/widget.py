"""The sidebar's HTML: a Board turned into an autoescaped Jinja2 document or fragment.

Everything a visitor reads is prepared here (Babel-formatted numbers, the
arrow and colour of a change, the sentence a screen reader speaks), so the
templates only lay it out. Words come from the gettext catalogs (see
ticker/render/i18n.py): whole sentences with named placeholders, never pieces
glued together, so a translation can change word order and plurals.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from babel.dates import format_skeleton, format_time
from markupsafe import Markup

from ticker.config import LAYOUTS, Settings
from ticker.render.board import DATE_SHOWN_AFTER, Board, Row
from ticker.render.cells import ARROWS as ARROWS  # re-exported: the chart page draws the same arrows
from ticker.render.cells import DISPLAY_LIMIT, Cell, price_cell, table_cells, table_columns
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
from ticker.render.i18n import Language, available, language, templates
from ticker.render.sparkline import sparkline_svg
from ticker.web.query import WidgetOptions

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
_REPORTED: set[tuple[str, str]] = set()  # (symbol, currency) rows already logged as not displayable

HOURS_OF_CHANGE = 24  # the change shown is over this many hours


def N_(message: str) -> str:
    """Marks a message for extraction (`pybabel extract -k N_`); translated where it is shown."""
    return message


DEFAULT_TITLE = N_("Latest Market Prices")  # translated; a title the operator set is shown as written

# Why rows are unavailable (or stale): kind -> (footer note, the same for a screen reader's sentence).
NO_SOURCE = "no_source"
WAITING = "waiting"
UNREACHABLE = "unreachable"
REASONS: dict[str, tuple[str, str]] = {
    NO_SOURCE: (N_("No configured source for this currency"), N_("no configured source for this currency")),
    WAITING: (N_("Waiting for the first prices"), N_("waiting for the first prices")),
    UNREACHABLE: (N_("Sources unreachable"), N_("sources unreachable")),
}
UNREACHABLE_SINCE = (N_("Sources unreachable since %(time)s"), N_("sources unreachable since %(time)s"))

# How the attribution line names each source (and links to it); labels without a link are translated.
SOURCE_LABELS: dict[str, tuple[str, str | None]] = {
    "coingecko": ("CoinGecko", "https://www.coingecko.com/"),
    "coinpaprika": ("CoinPaprika", "https://coinpaprika.com/"),
    "kraken": ("Kraken", "https://www.kraken.com/"),
    "binance": ("Binance", "https://www.binance.com/"),
    "coinbase": ("Coinbase", "https://exchange.coinbase.com/"),
    "demo": (N_("simulated demo data"), None),
    "static": (N_("fixed prices set by this site"), None),
}


@dataclass(frozen=True)
class Reason:
    """Why a row is unavailable or stale: a REASONS kind, and since when sources are unreachable (UTC)."""

    kind: str
    since: datetime | None = None

    def text(self, lang: Language, now: datetime, *, note: bool) -> str:
        """The footer note ("Sources unreachable since 14:05 UTC") or, with note=False, the screen reader's."""
        index = 0 if note else 1
        if self.since is not None:
            return lang.gettext(UNREACHABLE_SINCE[index]) % {"time": clock_time(self.since, now, lang)}
        return lang.gettext(REASONS[self.kind][index])


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
    more: tuple[Cell, ...] = ()  # the price in each further currency (list layout)
    cells: tuple[Cell, ...] = ()  # the table layout's, in table_columns' order


@dataclass(frozen=True)
class Page:
    """Where the rendered widget finds things: URLs are relative unless server.public_url is set."""

    icon_base: str = ""
    fragment_url: str = "/widget/fragment"
    css_url: str | None = None
    live_url: str | None = None  # /widget/stream with the widget's query, when live rows reach this widget


def _static(name: str) -> str:
    """A template asset with its line breaks dropped: the CSS and JS are written one rule per line."""
    return "".join(line.strip() for line in (TEMPLATES / name).read_text().splitlines())


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


class WidgetRenderer:
    """Renders the widget; its inline CSS and JS are constants, so the CSP allows them by hash."""

    CSS = _static("theme.css") + _static("widget.css")  # the themes (shared with the chart), then the widget's
    JS = _static("widget.js")
    TABLE_CSS = CSS + _static("table.css")  # only the table layout carries its rules
    STYLE_HASH = csp_hash(CSS)
    TABLE_STYLE_HASH = csp_hash(TABLE_CSS)
    SCRIPT_HASH = csp_hash(JS)

    def __init__(self, settings: Settings) -> None:
        self._env = self._environment(settings.widget.locale)
        self._locale = settings.widget.locale
        self._title = settings.widget.title
        self._refresh = max(int(settings.poller.interval_seconds), 1)
        self._coins = [coin.symbol for coin in settings.market.coins]
        self._currencies = settings.market.currencies
        self._unserved = settings.market.unserved_currencies
        self._embed_js = self._env.get_template("embed.js").render(
            title=self.title(language(self._locale)),
            titles=_js_object(self._iframe_titles()),
            default_locale=self._locale,
            default_count=len(self._coins),
            default_layout=settings.widget.layout,
        )

    def _environment(self, locale: str) -> jinja2.Environment:
        return templates(locale, TEMPLATES)

    def _iframe_titles(self) -> dict[str, str]:
        """The iframe title embed.js sets for a `data-locale`, by catalog name ("de", "pt_BR") plus the bare
        languages whose catalog lies elsewhere ("pt" -> pt_BR, "zh" -> zh_Hans); empty for an operator's
        own title, which is never translated. The widget page also posts its exact title once loaded."""
        if self._title != DEFAULT_TITLE:
            return {}
        names = available()
        bare = {name.split("_")[0] for name in names} - names
        return {name: self.title(language(name)) for name in sorted(names | bare)}

    def title(self, lang: Language) -> str:
        """The widget's title: the default one translated, an operator's own as written."""
        return lang.gettext(DEFAULT_TITLE) if self._title == DEFAULT_TITLE else self._title

    def document(
        self, board: Board, options: WidgetOptions, *, now: datetime, page: Page, others: Sequence[Board] = ()
    ) -> str:
        """The widget page; `others`: the same coins in further currencies (list and table layouts)."""
        context = self._context(board, options, now, page, others)
        env = self._environment(options.locale)
        css = self.TABLE_CSS if options.layout == "table" else self.CSS
        return env.get_template("widget.html").render(context, css=Markup(css), js=Markup(self.JS))

    def fragment(
        self, board: Board, options: WidgetOptions, *, now: datetime, page: Page, others: Sequence[Board] = ()
    ) -> str:
        return (
            self._environment(options.locale)
            .get_template("_board.html")
            .render(self._context(board, options, now, page, others))
        )

    def rows(
        self, board: Board, options: WidgetOptions, *, now: datetime, page: Page, others: Sequence[Board] = ()
    ) -> str:
        """Only the `[data-k]` elements of the board's rows (list/compact/ticker `<li>`, table `<tr>`), rendered by
        the same macros and options as `document`, for /widget/stream's `rows` event. Rows come from the server
        rather than being formatted in the browser because the display rules (currency digits, subscript zeros,
        sats, locales, RTL isolation, the spoken sentence) live here in Python and Babel: a streamed row is
        byte for byte what the next page load would show."""
        context = self._context(board, options, now, page, others)
        return self._environment(options.locale).get_template("_rows.html").render(context)

    def error(self, message: str, locale: str | None = None) -> str:
        """A small escaped error page in `locale` (default widget.locale); `message` is already in it."""
        lang = language(locale or self._locale)
        return (
            self._environment(locale or self._locale)
            .get_template("error.html")
            .render(message=message, lang=lang.tag, dir=lang.dir)
        )

    def embed_js(self) -> str:
        return self._embed_js

    def landing(self, base: str, locale: str | None = None) -> str:
        """The page at /: every layout and theme previewed, and the snippets to paste. `locale` (allowed,
        Babel-spelled) is the page's language and goes into the snippets and previews; None: widget.locale."""
        lang = language(locale or self._locale)
        title = self.title(lang)
        # Snippets are HTML the operator pastes elsewhere: every attribute value escaped, so any title pastes.
        coins = ",".join(self._coins[:2])
        chosen = {"locale": locale} if locale else {}
        widget_url = f"{base}/widget?" + urlencode({"coins": coins, "theme": "auto", **chosen}, safe=",")
        locale_attribute = f' data-locale="{_attr(locale)}"' if locale else ""
        script = (
            f'<script src="{_attr(base + "/embed.js")}" data-coins="{_attr(coins)}" data-theme="auto"'
            f"{locale_attribute} async></script>"
        )
        iframe = (
            f'<iframe src="{_attr(widget_url)}" title="{_attr(title)}" width="320" height="200" '
            'style="border:0" loading="lazy" referrerpolicy="no-referrer"></iframe>'
        )
        return (
            self._environment(locale or self._locale)
            .get_template("index.html")
            .render(
                title=title,
                lang=lang.tag,
                dir=lang.dir,
                base=base,
                locale=locale,
                script_snippet=script,
                iframe_snippet=iframe,
                coins=", ".join(self._coins),
                currencies=", ".join(self._currencies),
                layouts=LAYOUTS,
                themes=("light", "dark"),
            )
        )

    def _context(
        self, board: Board, options: WidgetOptions, now: datetime, page: Page, others: Sequence[Board] = ()
    ) -> dict[str, object]:
        live = [row for row in board.rows if not row.static]
        # Past max_stale too: prices were seen then, and the footer says when.
        newest = max((row.updated_at for row in live if row.updated_at), default=None)
        lang = language(options.locale)
        reasons = {row.symbol: explain(row, board, self._unserved, now) for row in board.rows}
        notes = [reason.text(lang, now, note=True) for reason in dict.fromkeys(filter(None, reasons.values()))]
        return {
            "title": self.title(lang),
            "lang": lang.tag,
            "dir": lang.dir,
            "options": options,
            "refresh_seconds": self._refresh,
            "rows": [
                present(
                    row, board.currency, options, now, reasons[row.symbol], [(o.currency, o.rows[i]) for o in others]
                )
                for i, row in enumerate(board.rows)
            ],
            "columns": table_columns(options, lang, [board.currency, *(o.currency for o in others)]),
            "updated": clock_time(newest, now, lang) if newest else None,
            "notes": notes,
            "source_links": source_links(board.sources, lang),
            "demo": "demo" in board.sources,
            "icon_base": page.icon_base,
            "fragment_url": page.fragment_url,
            "css_url": page.css_url,
            "live_url": page.live_url,
        }


def source_links(sources: tuple[str, ...], lang: Language) -> Markup:
    """The attribution's sources, linked where they have a site: "CoinGecko, Kraken" as escaped HTML."""
    parts = []
    for source in sources:
        label, url = SOURCE_LABELS.get(source, (source.capitalize(), None))
        if url:
            parts.append(Markup('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>').format(url, label))
        else:
            parts.append(Markup("{}").format(lang.gettext(label) if source in SOURCE_LABELS else label))
    # Translators: the separator between source names in "Data: CoinGecko, Kraken".
    return Markup(lang.gettext(", ")).join(parts)


def explain(row: Row, board: Board, unserved: frozenset[str], now: datetime) -> Reason | None:
    """Why a row is unavailable or stale, if we know: no source for the currency, no data yet, or
    every source failing (since the last time one answered). None for a fresh row."""
    if row.available and not row.stale:
        return None
    if row.static or board.currency in unserved:
        return Reason(NO_SOURCE)
    if board.generated_at is None:
        return Reason(WAITING)
    if board.unreachable:
        return Reason(UNREACHABLE, board.last_reached)
    return None


def present(
    row: Row,
    currency: str,
    options: WidgetOptions,
    now: datetime,
    reason: Reason | None = None,
    others: Sequence[tuple[str, Row]] = (),
) -> RowView:
    """A row as shown, with its price in each further (currency, row); one that cannot be shown (an absurd price,
    a formatting failure) shows as unavailable."""
    try:
        if row.price is None or (math.isfinite(row.price) and 0 < row.price < DISPLAY_LIMIT):
            return _with_more(_present(row, currency, options, now, reason), row, currency, options, others)
        if (row.symbol, currency) not in _REPORTED:  # once: every variant and snapshot renders it again
            _REPORTED.add((row.symbol, currency))
            logger.warning("not showing %s's price %r %s: no displayable price", row.symbol, row.price, currency)
    except Exception:
        if (row.symbol, currency) not in _REPORTED:
            _REPORTED.add((row.symbol, currency))
            logger.exception("cannot show %s in %s for %s; shown as unavailable", row.symbol, currency, options.locale)
    unavailable = Row(row.symbol, row.name, None, None, None, None, row.stale)
    return _with_more(_present(unavailable, currency, options, now, reason), unavailable, currency, options, others)


def _with_more(
    view: RowView, row: Row, currency: str, options: WidgetOptions, others: Sequence[tuple[str, Row]]
) -> RowView:
    """The view with the further currencies' prices (spoken after the first) and, for a table, its cells."""
    if not others and options.layout != "table":
        return view
    lang = language(options.locale)
    more = tuple(price_cell(other, code, lang) for code, other in others)
    spoken_text = view.spoken
    for cell in more:
        spoken_text = lang.gettext("%(sentence)s, %(clause)s") % {"sentence": spoken_text, "clause": cell.spoken}
    cells = table_cells(row, currency, view.as_of, more, options, lang) if options.layout == "table" else ()
    return replace(view, more=more, spoken=spoken_text, cells=cells)


def _present(row: Row, currency: str, options: WidgetOptions, now: datetime, reason: Reason | None) -> RowView:
    lang = language(options.locale)
    locale = lang.numbers
    direction = change_direction(row.change_24h_pct) if row.available else "unknown"
    as_of = None
    if row.stale and row.updated_at is not None:
        as_of = lang.gettext("as of %(time)s") % {"time": clock_time(row.updated_at, now, lang)}
    elif not row.available:
        as_of = lang.gettext("unavailable")
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
        spoken=spoken(row, currency, lang, direction, now, reason.text(lang, now, note=False) if reason else None),
        spark=Markup(spark) if spark else None,
    )


def spoken(
    row: Row, currency: str, lang: Language, direction: Direction, now: datetime, reason: str | None = None
) -> str:
    """'Bitcoin, 90,917.04 US dollars, up 1.64 percent in 24 hours' for screen readers: every digit of the
    price, and a change that shows as 0.00 % is "unchanged". Clauses are whole catalog sentences, joined
    by the catalog's own "%(sentence)s, %(clause)s" (so Arabic can use its comma)."""
    _ = lang.gettext
    locale = lang.numbers
    if row.price is None:
        if reason:
            return _("%(name)s, price unavailable, %(reason)s") % {"name": row.name, "reason": reason}
        return _("%(name)s, price unavailable") % {"name": row.name}
    amount = {
        "name": row.name,
        "amount": spoken_amount(row.price, currency, locale),
        "currency": currency_name(currency, locale, row.price),
    }
    text = _("%(name)s, %(amount)s %(currency)s") % amount
    clauses = []
    hours = HOURS_OF_CHANGE
    if direction in ("up", "down") and row.change_24h_pct is not None:
        change = {"change": spoken_change(row.change_24h_pct, locale), "hours": hours}
        if direction == "up":
            clauses.append(
                lang.ngettext(
                    "up %(change)s percent in %(hours)d hour", "up %(change)s percent in %(hours)d hours", hours
                )
                % change
            )
        else:
            clauses.append(
                lang.ngettext(
                    "down %(change)s percent in %(hours)d hour", "down %(change)s percent in %(hours)d hours", hours
                )
                % change
            )
    elif direction == "flat":
        clauses.append(
            lang.ngettext("unchanged in %(hours)d hour", "unchanged in %(hours)d hours", hours) % {"hours": hours}
        )
    if row.stale and row.updated_at is not None:
        clauses.append(_("last updated %(time)s") % {"time": clock_time(row.updated_at, now, lang)})
    for clause in clauses:
        text = _("%(sentence)s, %(clause)s") % {"sentence": text, "clause": clause}
    return text


def utc_time(moment: datetime, lang: Language) -> str:
    """'14:05 UTC' in the reader's language and digits."""
    time = format_time(moment, "HH:mm", tzinfo=UTC, locale=lang.numbers)
    return lang.gettext("%(time)s UTC") % {"time": time}


def clock_time(moment: datetime, now: datetime, lang: Language | None = None) -> str:
    """'14:05 UTC' today, 'Nov 26 14:05 UTC' for older times (CLDR's month-day for the locale, '26. Nov.' in de)."""
    lang = lang or language("en_US")
    if now - moment < DATE_SHOWN_AFTER:
        return utc_time(moment, lang)
    date = format_skeleton("MMMd", moment, tzinfo=UTC, locale=lang.numbers)
    time = format_time(moment, "HH:mm", tzinfo=UTC, locale=lang.numbers)
    return lang.gettext("%(date)s %(time)s UTC") % {"date": date, "time": time}


def _attr(value: str) -> str:
    """A value for a double-quoted HTML attribute in a snippet we show for pasting."""
    return escape(value, quote=True)


def _js_object(data: Mapping[str, str]) -> Markup:
    """A JSON object for a JavaScript file, in UTF-8 rather than \\u escapes (a third of the bytes for
    Arabic, half for CJK), with the characters that could end a string or a script tag escaped."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return Markup(text)
