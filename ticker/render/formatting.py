"""Numbers for people: Babel's locale rules with precision that fits the magnitude.

Two decimals from 1 up, four significant digits below 1 (90,917.04 ·
0.1412 · 0.00001234), so a sub-cent token never shows as "$0.00". Unknown
is "—", never 0. The JSON keeps the provider's unrounded numbers; this is
display only.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_name

UNKNOWN = "—"
SIGNIFICANT_BELOW_ONE = 4
# Units that are not ISO 4217 money: shown as a number with a unit after it.
CRYPTO_UNITS = {"btc": "BTC", "eth": "ETH", "sats": "sats"}


def display_decimal(value: float) -> Decimal:
    """The value rounded for display: 2 decimals from 1 up, else 4 significant digits."""
    exact = Decimal(repr(value))
    if abs(value) >= 1:
        return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    exponent = exact.adjusted() - (SIGNIFICANT_BELOW_ONE - 1)
    rounded = exact.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)
    if abs(rounded) >= 1:  # 0.99999 rounds up to one: show it as 1.00
        return rounded.quantize(Decimal("0.01"))
    return rounded


def format_price(value: float | None, currency: str, locale: str) -> str:
    if value is None or not math.isfinite(value):
        return UNKNOWN
    amount = display_decimal(value)
    decimals = max(-amount.as_tuple().exponent, 0)  # type: ignore[operator]
    if currency in CRYPTO_UNITS:
        number = format_decimal(amount, format=_with_decimals("#,##0.00", decimals), locale=locale)
        return f"{number}\u00a0{CRYPTO_UNITS[currency]}"
    pattern = _with_decimals(_currency_pattern(locale), decimals)
    return format_currency(amount, currency.upper(), format=pattern, locale=locale, currency_digits=False)


def format_change(value: float | None, locale: str) -> str:
    """The size of a 24h change, e.g. "1.64%"; the sign is shown by the arrow beside it."""
    if value is None or not math.isfinite(value):
        return UNKNOWN
    return format_percent(abs(value) / 100, format=_percent_pattern(locale), locale=locale)


def currency_name(currency: str, locale: str) -> str:
    """For screen readers: "US dollars", "euros", "BTC"."""
    if currency in CRYPTO_UNITS:
        return CRYPTO_UNITS[currency]
    return str(get_currency_name(currency.upper(), count=2, locale=locale))


@lru_cache(maxsize=256)
def _percent_pattern(locale: str) -> str:
    """The locale's own percent pattern with exactly two decimals ("#,##0.00 %" in de_DE)."""
    return _with_decimals(Locale.parse(locale).percent_formats[None].pattern, 2)


@lru_cache(maxsize=256)
def _currency_pattern(locale: str) -> str:
    """The locale's standard currency pattern ("¤#,##0.00" in en_US, "#,##0.00 ¤" in de_DE)."""
    return str(Locale.parse(locale).currency_formats["standard"].pattern)


@lru_cache(maxsize=1024)
def _with_decimals(pattern: str, decimals: int) -> str:
    """The pattern's positive part with exactly `decimals` fraction digits, so 0.1410 keeps its last zero."""
    positive = pattern.split(";")[0]
    match = re.search(r"0(\.[0#]+)?(?=[^0#.,]*$)", positive)
    if match is None:
        return positive
    digits = "0." + "0" * decimals if decimals else "0"
    return positive[: match.start()] + digits + positive[match.end() :]
