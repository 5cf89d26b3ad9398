"""Visitors' query strings, validated against the config.

Queries only select among configured coins and currencies, so no visitor
can make the service fetch, render or remember anything new. Every problem
is a QueryError whose text says what is allowed; values are echoed back
truncated, and the caller escapes them for its format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from ticker.config import LAYOUTS, THEMES, Settings, canonical_locale
from ticker.exceptions import Plural, QueryError
from ticker.history.base import RANGES
from ticker.models import Coin, canonical_symbol

DEFAULT_RANGE = "7d"  # a chart's and the history API's range when the query names none
MAX_COINS = 100  # symbols in one `coins` query, duplicates included
MAX_VALUE_CHARS = MAX_COINS * 21  # room for that many of the longest symbols (20 characters) and commas
MAX_CURRENCIES = 3  # currencies side by side in one list or table widget
# The table layout's columns, and its default; the coin's name always comes first (after a leading rank).
COLUMNS = (
    "price",
    "change_1h",
    "change_24h",
    "change_7d",
    "change_30d",
    "market_cap",
    "volume_24h",
    "rank",
    "sparkline",
)
DEFAULT_COLUMNS = ("price", "change_24h")
MULTI_CURRENCY_LAYOUTS = ("list", "table")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Selection:
    """The coins, and the currencies to show (the first one for changes and JSON; more only in a widget)."""

    coins: tuple[Coin, ...]
    currency: str
    more_currencies: tuple[str, ...] = ()

    @property
    def currencies(self) -> tuple[str, ...]:
        return (self.currency, *self.more_currencies)


@dataclass(frozen=True)
class WidgetOptions:
    theme: str
    layout: str
    locale: str
    transparent: bool
    sparkline: bool
    columns: tuple[str, ...] = DEFAULT_COLUMNS  # the table layout's, in order; see COLUMNS


@dataclass(frozen=True)
class ChartOptions:
    """A chart widget's validated query: one configured coin, its currency, range and look."""

    coin: Coin
    currency: str
    range: str
    theme: str
    locale: str
    transparent: bool


def _(message: str) -> str:
    """Marks a message for the catalogs (`pybabel extract`); an HTML error page translates it when shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> Plural:
    """Marks a message with plural forms for the catalogs (Babel's default `ngettext` keyword); an HTML
    error page picks the form for `n` in the visitor's language when shown."""
    return Plural(singular, plural, n)


def echo(value: str) -> str:
    """A visitor's value as it may appear in an error message: short and quoted."""
    return repr(value if len(value) <= 24 else value[:24] + "…")


def _param(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > MAX_VALUE_CHARS:
        too_long = ngettext(
            "%(name)s: too long (at most %(limit)d character)",
            "%(name)s: too long (at most %(limit)d characters)",
            MAX_VALUE_CHARS,
        )
        raise QueryError.of(too_long, name=name, limit=MAX_VALUE_CHARS)
    return value


def select(params: Mapping[str, str], settings: Settings, coins: Sequence[Coin] | None = None) -> Selection:
    """One currency (the JSON endpoints). `coins`: the current coin list (ticker/top.py); None: market.coins."""
    current = tuple(settings.market.coins if coins is None else coins)
    return Selection(select_coins(_param(params, "coins"), current), select_currency(params, settings))


def select_widget(
    params: Mapping[str, str], settings: Settings, layout: str, coins: Sequence[Coin] | None = None
) -> Selection:
    """A widget's selection: `currency` may list up to MAX_CURRENCIES configured codes in the list and table
    layouts ("usd,eur"); the compact and ticker layouts take one. Raises QueryError saying what is allowed."""
    current = tuple(settings.market.coins if coins is None else coins)
    chosen = select_coins(_param(params, "coins"), current)
    raw = _param(params, "currency")
    if raw is None or "," not in raw:
        return Selection(chosen, select_currency(params, settings))
    if layout not in MULTI_CURRENCY_LAYOUTS:
        raise QueryError.of(
            _("%(name)s: one currency in the %(layout)s layout; several only in: %(allowed)s"),
            name="currency",
            layout=layout,
            allowed=", ".join(MULTI_CURRENCY_LAYOUTS),
        )
    codes = list(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    if len(codes) > MAX_CURRENCIES:
        too_many = ngettext(
            "%(name)s: at most %(limit)d currency", "%(name)s: at most %(limit)d currencies", MAX_CURRENCIES
        )
        raise QueryError.of(too_many, name="currency", limit=MAX_CURRENCIES)
    currencies = [select_currency({"currency": code}, settings) for code in codes] or [
        select_currency({"currency": ""}, settings)
    ]
    return Selection(chosen, currencies[0], tuple(currencies[1:]))


def select_columns(params: Mapping[str, str]) -> tuple[str, ...]:
    """`columns`: names from COLUMNS, comma-separated, each once (default DEFAULT_COLUMNS)."""
    raw = _param(params, "columns")
    if raw is None:
        return DEFAULT_COLUMNS
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for name in names:
        if name not in COLUMNS:
            raise QueryError.of(
                _("%(name)s: unknown value %(value)s; allowed: %(allowed)s"),
                name="columns",
                value=echo(name),
                allowed=", ".join(COLUMNS),
            )
    if not names:
        raise QueryError.of(_("%(name)s: empty; allowed: %(allowed)s"), name="columns", allowed=", ".join(COLUMNS))
    return tuple(dict.fromkeys(names))


def select_coins(raw: str | None, coins: Sequence[Coin]) -> tuple[Coin, ...]:
    """The coins a `coins=` value names, of the current `coins`; all of them when absent."""
    configured = {coin.symbol: coin for coin in coins}
    if raw is None:
        return tuple(coins)
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if len(names) > MAX_COINS:
        too_many = ngettext("%(name)s: at most %(limit)d symbol", "%(name)s: at most %(limit)d symbols", MAX_COINS)
        raise QueryError.of(too_many, name="coins", limit=MAX_COINS)
    if not names:
        raise QueryError.of(_("%(name)s: empty; allowed: %(allowed)s"), name="coins", allowed=", ".join(configured))
    chosen: dict[str, Coin] = {}
    for name in names:
        coin = configured.get(canonical_symbol(name))
        if coin is None:
            raise QueryError.of(
                _("%(name)s: unknown coin %(value)s; allowed: %(allowed)s"),
                name="coins",
                value=echo(name),
                allowed=", ".join(configured),
            )
        chosen.setdefault(coin.symbol, coin)
    return tuple(chosen.values())


def select_currency(params: Mapping[str, str], settings: Settings) -> str:
    raw = _param(params, "currency")
    if raw is None:
        return settings.market.default_currency
    currency = raw.strip().lower()
    if currency not in settings.market.currencies:
        raise QueryError.of(
            _("%(name)s: unknown currency %(value)s; allowed: %(allowed)s"),
            name="currency",
            value=echo(raw),
            allowed=", ".join(settings.market.currencies),
        )
    return currency


def widget_options(params: Mapping[str, str], settings: Settings) -> WidgetOptions:
    widget = settings.widget
    return WidgetOptions(
        theme=_choice(params, "theme", THEMES, widget.theme),
        layout=_choice(params, "layout", LAYOUTS, widget.layout),
        locale=_locale(params, widget.locale, widget.visitor_locales),
        transparent=_flag(params, "transparent", widget.transparent),
        sparkline=_flag(params, "sparkline", widget.sparkline),
        columns=select_columns(params),
    )


def select_range(params: Mapping[str, str]) -> str:
    """`range`: one of RANGES (24h, 7d, 30d, 1y, max), default 7d."""
    return _choice(params, "range", tuple(RANGES), DEFAULT_RANGE)


def chart_options(params: Mapping[str, str], settings: Settings, coins: Sequence[Coin] | None = None) -> ChartOptions:
    """The chart's query: `coin` (one symbol of the current `coins` (ticker/top.py; None: market.coins as
    configured); default the first), `currency`, `range`, `theme`, `locale`, `transparent`. Raises
    QueryError saying what is allowed."""
    current = tuple(settings.market.coins if coins is None else coins)
    by_symbol = {coin.symbol: coin for coin in current}
    raw = _param(params, "coin")
    coin = (current[0] if current else None) if raw is None else by_symbol.get(canonical_symbol(raw))
    if coin is None:
        raise QueryError.of(
            _("%(name)s: unknown coin %(value)s; allowed: %(allowed)s"),
            name="coin",
            value=echo(raw or ""),
            allowed=", ".join(by_symbol),
        )
    widget = settings.widget
    return ChartOptions(
        coin=coin,
        currency=select_currency(params, settings),
        range=select_range(params),
        theme=_choice(params, "theme", THEMES, widget.theme),
        locale=_locale(params, widget.locale, widget.visitor_locales),
        transparent=_flag(params, "transparent", widget.transparent),
    )


def chart_query(options: ChartOptions, **changes: str) -> str:
    """The chart's validated query spelled one way (for its range links: `range=` in `changes`)."""
    params = {
        "coin": options.coin.symbol,
        "range": options.range,
        "currency": options.currency,
        "theme": options.theme,
        "locale": options.locale,
        "transparent": "1" if options.transparent else "0",
    }
    return urlencode(params | changes)


def error_locale(params: Mapping[str, str], settings: Settings) -> str:
    """The locale an error page for this query speaks; raises QueryError when `locale` is not allowed."""
    return _locale(params, settings.widget.locale, settings.widget.visitor_locales)


def canonical_query(selection: Selection, options: WidgetOptions) -> str:
    """The validated query, spelled one way: for links we render, never the visitor's raw text."""
    params = {
        "coins": ",".join(coin.symbol for coin in selection.coins),
        "currency": ",".join(selection.currencies),
        "theme": options.theme,
        "layout": options.layout,
        "locale": options.locale,
        "transparent": "1" if options.transparent else "0",
        "sparkline": "1" if options.sparkline else "0",
    }
    if options.layout == "table":
        params["columns"] = ",".join(options.columns)
    return urlencode(params, safe=",")


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = _param(params, name)
    if raw is None:
        return default
    if raw.strip().lower() not in allowed:
        raise QueryError.of(
            _("%(name)s: unknown value %(value)s; allowed: %(allowed)s"),
            name=name,
            value=echo(raw),
            allowed=", ".join(allowed),
        )
    return raw.strip().lower()


def _locale(params: Mapping[str, str], default: str, allowed: frozenset[str]) -> str:
    raw = _param(params, "locale")
    if raw is None:
        return default
    name = canonical_locale(raw) if len(raw) <= 20 else None
    if name is None or name not in allowed:
        raise QueryError.of(
            _("%(name)s: unknown locale %(value)s; allowed: %(allowed)s"),
            name="locale",
            value=echo(raw),
            allowed=", ".join(sorted(allowed)),
        )
    return name


def _flag(params: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _param(params, name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryError.of(_("%(name)s: expected 1 or 0, got %(value)s"), name=name, value=echo(raw))
