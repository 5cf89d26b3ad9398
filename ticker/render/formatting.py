"""Numbers for people: Babel's locale rules with the precision the contract asks for.

Money shows the currency's own digits from 1 up (CLDR/ISO 4217 via Babel:
USD 2, JPY 0, KWD 3; `btc`/`eth` 8, `sats` whole) and, below 1 in every
currency, 4 significant digits without trailing zeros (0.1412 · 0.0042 ·
0.00000712), so a sub-cent token never shows as "$0.00". Below 0.0001 the
widget may ask for the subscript-zero form (0.0₅712). A letter code gets
CLDR's currency spacing (`CHF 80,072.19`, a no-break space), which Babel does
not apply by itself. In a right-to-left locale a symbol such as "US$" is
followed by a left-to-right mark, so it is not drawn as "$US". A change that rounds to 0.00 % has no direction.

Every function here is total: any float (nan, ±inf, -0.0, 1e308,
subnormals) gives a string, never an exception; unknown is "—", never 0.
The JSON keeps the provider's unrounded numbers; this is display only.
"""

from __future__ import annotations

import decimal
import logging
import math
import re
import unicodedata
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Literal

from babel import Locale
from babel.numbers import (
    format_compact_currency,
    format_compact_decimal,
    format_currency,
    format_decimal,
    format_percent,
    get_currency_name,
    get_currency_precision,
    get_currency_symbol,
    get_decimal_symbol,
)

logger = logging.getLogger(__name__)

UNKNOWN = "—"
SIGNIFICANT_BELOW_ONE = 4
SUBSCRIPT_BELOW = Decimal("0.0001")  # 0.0000712 -> 0.0₄712: at least four zeros after the point
# Units that are not ISO 4217 money: (shown name, digits from 1 up), a number with the unit after it.
CRYPTO_UNITS: dict[str, tuple[str, int]] = {"btc": ("BTC", 8), "eth": ("ETH", 8), "sats": ("sats", 0)}
# Changes outside this range (percent) are implausible (the contract's bounds): shown as unknown.
CHANGE_RANGE = (-100.0, 1_000_000.0)
CHANGE_DIGITS = 2

Direction = Literal["up", "down", "flat", "unknown"]

# Wide enough for every float: 1e308 to two decimals (311 digits), 5e-324 to four significant digits.
_WIDE = decimal.Context(prec=800, rounding=ROUND_HALF_EVEN, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_SUBSCRIPT_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
NBSP = "\u00a0"
LRM = "\u200e"  # LEFT-TO-RIGHT MARK


def currency_digits(currency: str) -> int:
    """Fraction digits from 1 up: the currency's own (ISO 4217 via Babel), 8 for btc/eth, 0 for sats."""
    if currency in CRYPTO_UNITS:
        return CRYPTO_UNITS[currency][1]
    return int(get_currency_precision(currency.upper()))


def display_decimal(value: float, digits: int = 2) -> Decimal:
    """`value` (finite) rounded for display: `digits` decimals from 1 up, else 4 significant digits
    without trailing zeros (0.004200 -> 0.0042). Where 4 digits would round up to 1, the currency's
    digits decide: 0.99996 is $1.00 and ¥1, but 0.99995 BTC stays 0.99995, never "1.00000000"."""
    with decimal.localcontext(_WIDE):
        exact = Decimal(repr(value))  # the shortest decimal that is this float: what the provider sent
        own = Decimal(1).scaleb(-digits)
        if abs(exact) >= 1:
            return exact.quantize(own)
        if exact == 0:
            return Decimal(0)
        rounded = exact.quantize(Decimal(1).scaleb(exact.adjusted() - (SIGNIFICANT_BELOW_ONE - 1)))
        if abs(rounded) >= 1:
            rounded = exact.quantize(own)
            if abs(rounded) >= 1:
                return rounded
        return rounded.normalize()


def format_price(value: float | None, currency: str, locale: str, *, subscript: bool = False) -> str:
    """A price in the locale's currency format ("$90,917.04", "84.123,55 €", "CHF 80,072.19",
    "0.0042 BTC"); "—" for None, a non-finite or a non-positive value (never a price) or on any failure.
    `subscript`: below 0.0001 the zeros after the point are one 0 with their count below (0.0₅712)."""
    if value is None or not math.isfinite(value) or value <= 0:
        return UNKNOWN
    try:
        return _format_price(value, currency, locale, subscript)
    except Exception:  # a formatter never takes a page down; the row shows as unknown instead
        logger.exception("cannot format the price %r in %s for %s", value, currency, locale)
        return UNKNOWN


def spoken_amount(value: float, currency: str, locale: str) -> str:
    """The displayed amount with every digit, without symbol or subscript, for screen readers ("0.00000712")."""
    if not math.isfinite(value) or value <= 0:
        return UNKNOWN
    try:
        amount = display_decimal(value, currency_digits(currency))
        with decimal.localcontext(_WIDE):
            return str(format_decimal(amount, format=_with_decimals("#,##0.00", _decimals(amount)), locale=locale))
    except Exception:
        logger.exception("cannot format the amount %r in %s for %s", value, currency, locale)
        return UNKNOWN


COMPACT_FROM = 100_000  # market caps and volumes from here up show as "$1.8T", "45,2 Mrd. $"
COMPACT_LIMIT = 1e18  # a market figure above this is no market figure: shown as unknown


def format_compact_money(value: float | None, currency: str, locale: str) -> str:
    """A large amount in CLDR's short form with one decimal ("$1.8T", "45,2 Mrd. €", "$1.8兆", "1.2M BTC");
    below COMPACT_FROM the price format. "—" for None, non-finite, negative, absurd or on any failure."""
    if value is None or not math.isfinite(value) or value < 0 or value > COMPACT_LIMIT:
        return UNKNOWN
    if value < COMPACT_FROM:
        return format_price(value, currency, locale) if value > 0 else UNKNOWN
    try:
        if currency in CRYPTO_UNITS:
            number = format_compact_decimal(value, locale=locale, fraction_digits=1)
            return f"{number}{NBSP}{CRYPTO_UNITS[currency][0]}"
        return str(format_compact_currency(value, currency.upper(), locale=locale, fraction_digits=1))
    except Exception:
        logger.exception("cannot format the amount %r in %s for %s", value, currency, locale)
        return UNKNOWN


def spoken_compact(value: float, locale: str) -> str:
    """A large amount as CLDR's long compact form for screen readers ("1.8 trillion", "1,8 Billionen");
    below COMPACT_FROM the plain number. "—" when not a market figure."""
    if not math.isfinite(value) or value <= 0 or value > COMPACT_LIMIT:
        return UNKNOWN
    try:
        if value < COMPACT_FROM:
            return str(format_decimal(round(value, 2), locale=locale))
        return str(format_compact_decimal(value, format_type="long", locale=locale, fraction_digits=1))
    except Exception:
        logger.exception("cannot speak the amount %r for %s", value, locale)
        return UNKNOWN


def format_rank(value: int | None, locale: str) -> str:
    """A market-cap rank in the locale's digits ("1", "١"); "—" when unknown or not positive."""
    if value is None or value < 1:
        return UNKNOWN
    try:
        return str(format_decimal(value, locale=locale))
    except Exception:
        return UNKNOWN


def change_direction(value: float | None) -> Direction:
    """up or down by the change as displayed (two decimals); flat when that shows 0.00 %."""
    rounded = _display_change(value)
    if rounded is None:
        return "unknown"
    if rounded == 0:
        return "flat"
    return "up" if rounded > 0 else "down"


def format_change(value: float | None, locale: str) -> str:
    """The size of a change (24h, 7d...), e.g. "1.64%" ("1,64 %" in de); the direction is shown beside it.
    Never signed, so never "-0.00%"; "—" when unknown or implausible."""
    rounded = _display_change(value)
    if rounded is None:
        return UNKNOWN
    try:
        with decimal.localcontext(_WIDE):
            return str(format_percent(abs(rounded).scaleb(-2), format=_percent_pattern(locale), locale=locale))
    except Exception:
        logger.exception("cannot format the change %r for %s", value, locale)
        return UNKNOWN


def spoken_change(value: float, locale: str) -> str:
    """The size of a change as a plain number for screen readers ("1.64")."""
    rounded = _display_change(value)
    if rounded is None:
        return UNKNOWN
    try:
        with decimal.localcontext(_WIDE):
            return str(format_decimal(abs(rounded), format="#,##0.00", locale=locale))
    except Exception:
        logger.exception("cannot format the change %r for %s", value, locale)
        return UNKNOWN


def currency_name(currency: str, locale: str, price: float | None = None) -> str:
    """For screen readers: "US dollars", "euros", "BTC". With the `price` spoken before it, the plural form
    CLDR gives for that amount as displayed (uk "90 917,04 долара США", pl "dolara amerykańskiego"),
    else the form for 2."""
    if currency in CRYPTO_UNITS:
        return CRYPTO_UNITS[currency][0]
    try:
        count: float | Decimal = 2
        if price is not None and math.isfinite(price) and price > 0:
            count = display_decimal(price, currency_digits(currency))
        return str(get_currency_name(currency.upper(), count=count, locale=locale))
    except Exception:
        return currency.upper()


def _display_change(value: float | None) -> Decimal | None:
    """The change rounded to two decimals as displayed, or None when unknown or implausible."""
    if value is None or not math.isfinite(value) or not CHANGE_RANGE[0] <= value <= CHANGE_RANGE[1]:
        return None
    with decimal.localcontext(_WIDE):
        rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-CHANGE_DIGITS))
    return abs(rounded) if rounded == 0 else rounded  # -0.00 is 0.00


def _format_price(value: float, currency: str, locale: str, subscript: bool) -> str:
    amount = display_decimal(value, currency_digits(currency))
    decimals = _decimals(amount)
    with decimal.localcontext(_WIDE):
        if currency in CRYPTO_UNITS:
            number = format_decimal(amount, format=_with_decimals("#,##0.00", decimals), locale=locale)
            text = f"{number}{NBSP}{CRYPTO_UNITS[currency][0]}"
        else:
            code = currency.upper()
            pattern = _with_decimals(_currency_pattern(locale, code), decimals)
            text = format_currency(amount, code, format=pattern, locale=locale, currency_digits=False)
            marked = _symbol_marked(locale, code)
            if marked is not None:
                text = text.replace(*marked, 1)
    if subscript and amount < SUBSCRIPT_BELOW:
        zeros = -amount.adjusted() - 1  # 0.00000712: adjusted -6, five zeros after the point
        point = "0" + get_decimal_symbol(locale)
        text = text.replace(point + "0" * zeros, point + "0" + str(zeros).translate(_SUBSCRIPT_DIGITS), 1)
    return str(text)


def _decimals(amount: Decimal) -> int:
    exponent = amount.as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


@lru_cache(maxsize=256)
def _percent_pattern(locale: str) -> str:
    """The locale's own percent pattern with exactly two decimals ("#,##0.00 %" in de_DE)."""
    return _with_decimals(Locale.parse(locale).percent_formats[None].pattern, CHANGE_DIGITS)


@lru_cache(maxsize=1024)
def _currency_pattern(locale: str, code: str) -> str:
    """The locale's standard currency pattern's positive part, with CLDR's currency spacing applied.

    CLDR (root `currencySpacing`, inherited by every locale): where the currency sign touches a digit
    and the symbol's character on that side is not a symbol or a separator (a letter code such as
    "CHF", "Rs"), a no-break space goes between them. So "¤#,##0.00" with CHF becomes "CHF 80,072.19"
    while "$" and "US$" stay attached, as browsers (ICU) show them.
    """
    pattern = str(Locale.parse(locale).currency_formats["standard"].pattern).split(";")[0]
    symbol = str(get_currency_symbol(code, locale=locale)) or code
    if _needs_space(symbol[-1]):
        pattern = re.sub(r"¤(?=[#0])", "¤" + NBSP, pattern, count=1)
    if _needs_space(symbol[0]):
        pattern = re.sub(r"(?<=[#0])¤", NBSP + "¤", pattern, count=1)
    return pattern


@lru_cache(maxsize=1024)
def _symbol_marked(locale: str, code: str) -> tuple[str, str] | None:
    """In a right-to-left locale, a currency symbol of Latin letters that ends in a sign ("US$", "JP¥"), and
    the same with a left-to-right mark after it; else None. Without the mark the Unicode bidi algorithm
    draws the sign on the letters' other side ("$US" in Arabic, as browsers show ICU's own output too)."""
    if Locale.parse(locale).character_order != "right-to-left":
        return None
    symbol = str(get_currency_symbol(code, locale=locale))
    if not symbol or unicodedata.bidirectional(symbol[-1]) == "L":
        return None
    if not any(unicodedata.bidirectional(char) == "L" for char in symbol):
        return None
    return symbol, symbol + LRM


def _needs_space(char: str) -> bool:
    """CLDR's currencyMatch [[:^S:]&[:^Z:]]: a character that is neither a symbol nor a separator."""
    return unicodedata.category(char)[0] not in ("S", "Z")


@lru_cache(maxsize=1024)
def _with_decimals(pattern: str, decimals: int) -> str:
    """The pattern's positive part with exactly `decimals` fraction digits, so 0.1410 keeps what it shows."""
    positive = pattern.split(";")[0]
    match = re.search(r"0(\.[0#]+)?(?=[^0#.,]*$)", positive)
    if match is None:
        return positive
    digits = "0." + "0" * decimals if decimals else "0"
    return positive[: match.start()] + digits + positive[match.end() :]
