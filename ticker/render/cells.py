"""The table layout's cells and headers, and a price in a further currency (list and table).

Each figure is a Cell: the text on screen and, where that text would read badly ("$1.8T", "▲ 1.64%", "—"),
what a screen reader says instead ("1.8 trillion US dollars", "up 1.64 percent", "unknown"), so a table
read by its headers reads well. Headers are Columns, with the CLDR short unit on screen ("24h", "7 T") and
a whole phrase for screen readers ("Change over 24 hours"). Nothing here raises on odd numbers: the
formatters are total, and a figure that is no figure shows as "—".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from babel.units import format_unit
from markupsafe import Markup

from ticker.render.board import Row
from ticker.render.formatting import (
    UNKNOWN,
    Direction,
    change_direction,
    currency_name,
    format_change,
    format_compact_money,
    format_price,
    format_rank,
    spoken_amount,
    spoken_change,
    spoken_compact,
)
from ticker.render.i18n import Language
from ticker.render.sparkline import sparkline_svg
from ticker.web.query import COLUMNS, WidgetOptions

ARROWS: dict[Direction, str] = {"up": "▲", "down": "▼", "flat": "", "unknown": ""}
# A price above this in any currency is no price of a coin (1e7 USD in the weakest currency, or in sats,
# stays below 1e14): the row shows as unavailable rather than an absurd number, whatever reached the snapshot.
DISPLAY_LIMIT = 1e15
TABLE_SPARK_POINTS = 24  # a table row's sparkline: 7 days at 7-hour steps keeps 11 rows light

# The table's change columns: the Row field and the period it covers (a CLDR duration unit and its count).
CHANGE_COLUMNS: dict[str, tuple[str, str, int]] = {
    "change_1h": ("change_1h_pct", "duration-hour", 1),
    "change_24h": ("change_24h_pct", "duration-hour", 24),
    "change_7d": ("change_7d_pct", "duration-day", 7),
    "change_30d": ("change_30d_pct", "duration-day", 30),
}
# Which columns a narrow table hides first (CSS classes tk-h1 below 480 px, tk-h2 below 400, tk-h3 below 340);
# the coin, its prices and the 24 h change always stay.
HIDE_PRIORITY = {"sparkline": 1, "change_30d": 1, "change_1h": 1, "volume_24h": 2, "change_7d": 2}
HIDE_PRIORITY |= {"market_cap": 3, "rank": 3}
assert set(HIDE_PRIORITY) | {"price", "change_24h"} == set(COLUMNS)


@dataclass(frozen=True)
class Cell:
    """One figure as shown: `text` on screen; `spoken` (when set) replaces it for screen readers."""

    text: str
    spoken: str | None = None
    direction: Direction | None = None  # a change's (arrow and colour), else None
    title: str | None = None  # every digit of an abbreviated price
    spark: Markup | None = None
    note: str | None = None  # "as of 14:05 UTC" under a stale price


@dataclass(frozen=True)
class Column:
    """A table column: its header (`text` on screen, `spoken` for screen readers when set) and the CSS class
    that hides it on narrow widths (tk-h1..3; 0 never)."""

    name: str
    text: str
    spoken: str | None = None
    hide: int = 0


def price_cell(row: Row, currency: str, lang: Language) -> Cell:
    """A price in one currency, with what a screen reader says ("84,123.55 euros", "euros unavailable")."""
    price = row.price
    if price is None or not math.isfinite(price) or not 0 < price < DISPLAY_LIMIT:
        name = currency_name(currency, lang.numbers)
        return Cell(UNKNOWN, lang.gettext("%(currency)s unavailable") % {"currency": name})
    text = format_price(price, currency, lang.numbers, subscript=True)
    full = format_price(price, currency, lang.numbers)
    amount = {
        "amount": spoken_amount(price, currency, lang.numbers),
        "currency": currency_name(currency, lang.numbers, price),
    }
    return Cell(text, lang.gettext("%(amount)s %(currency)s") % amount, title=full if full != text else None)


def price_column_cell(row: Row, currency: str, lang: Language) -> Cell:
    """A table's price: as the list shows it, read aloud as written unless abbreviated (0.0₅712) or absent."""
    return _as_written(price_cell(row, currency, lang) if row.available else Cell(UNKNOWN, lang.gettext("unavailable")))


def _as_written(cell: Cell) -> Cell:
    """A price cell a screen reader reads as shown ("$90,917.04"), unless abbreviated or absent."""
    return cell if cell.title or cell.text == UNKNOWN else replace(cell, spoken=None)


def change_cell(value: float | None, lang: Language) -> Cell:
    """A change as the table shows it: arrow and size ("▲ 1.64%"), read as "up 1.64 percent"."""
    direction = change_direction(value)
    text = format_change(value, lang.numbers)
    if direction == "unknown" or value is None:
        return Cell(UNKNOWN, lang.gettext("unknown"), "unknown")
    if direction == "flat":
        return Cell(text, lang.gettext("unchanged"), "flat")
    spoken_size = {"change": spoken_change(value, lang.numbers)}
    if direction == "up":
        said = lang.gettext("up %(change)s percent") % spoken_size
    else:
        said = lang.gettext("down %(change)s percent") % spoken_size
    return Cell(f"{ARROWS[direction]} {text}", said, direction)


def money_cell(value: float | None, currency: str, lang: Language) -> Cell:
    """A market cap or volume: "$1.8T" on screen, "1.8 trillion US dollars" for a screen reader."""
    text = format_compact_money(value, currency, lang.numbers)
    if value is None or text == UNKNOWN:
        return Cell(UNKNOWN, lang.gettext("unknown"))
    amount = {"amount": spoken_compact(value, lang.numbers), "currency": currency_name(currency, lang.numbers)}
    return Cell(text, lang.gettext("%(amount)s %(currency)s") % amount)


def table_cells(
    row: Row, currency: str, as_of: str | None, more: tuple[Cell, ...], options: WidgetOptions, lang: Language
) -> tuple[Cell, ...]:
    """The row's cells in table_columns' order (a leading rank goes before the coin's name, the rest after);
    `as_of` goes under a stale price, `more` are its prices in the further currencies."""
    cells: list[Cell] = []
    for name in options.columns:
        if name == "price":
            first = price_column_cell(row, currency, lang)
            cells += [replace(first, note=as_of if row.available else None), *map(_as_written, more)]
        elif name in CHANGE_COLUMNS:
            value = getattr(row, CHANGE_COLUMNS[name][0]) if row.available else None
            cells.append(change_cell(value, lang))
        elif name in ("market_cap", "volume_24h"):
            cells.append(money_cell(getattr(row, name) if row.available else None, currency, lang))
        elif name == "rank":
            rank = format_rank(row.rank, lang.numbers)
            cells.append(Cell(rank, lang.gettext("unknown") if rank == UNKNOWN else None))
        else:  # sparkline: the line, read as the change it draws
            spark = sparkline_svg(row.history, max_points=TABLE_SPARK_POINTS) if row.history else None
            points = [p for p in row.history if math.isfinite(p) and p > 0]
            drawn = (points[-1] / points[0] - 1) * 100 if spark and len(points) >= 2 else None
            cell = change_cell(drawn, lang)
            cells.append(Cell("" if spark else UNKNOWN, cell.spoken, spark=Markup(spark) if spark else None))
    return tuple(cells)


def table_columns(options: WidgetOptions, lang: Language, currencies: Sequence[str]) -> list[Column]:
    """The table's header row but the coin's, in `columns` order (a leading rank goes before the coin): names
    on screen and for screen readers, the hiding class; the price column once per currency."""
    if options.layout != "table":
        return []
    _ = lang.gettext
    locale = lang.numbers
    columns: list[Column] = []
    for name in options.columns:
        hide = HIDE_PRIORITY.get(name, 0)
        if name == "price" and len(currencies) > 1:
            for code in currencies:
                spoken_name = _("Price in %(currency)s") % {"currency": currency_name(code, locale)}
                columns.append(Column("price", code.upper(), spoken_name))
        elif name == "price":
            columns.append(Column("price", _("Price")))
        elif name in CHANGE_COLUMNS:
            _field, unit, count = CHANGE_COLUMNS[name]
            short = format_unit(count, unit, length="narrow", locale=locale)
            period = format_unit(count, unit, length="long", locale=locale)
            columns.append(Column(name, short, _("Change over %(period)s") % {"period": period}, hide))
        elif name == "market_cap":
            columns.append(Column(name, _("Market cap"), None, hide))
        elif name == "volume_24h":
            columns.append(Column(name, _("24h volume"), None, hide))
        elif name == "rank":
            columns.append(Column(name, "#", _("Rank"), hide))
        else:
            columns.append(Column(name, _("Last 7 days"), None, hide))
    return columns
