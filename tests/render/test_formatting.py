"""The formatters: each currency's own digits, four significant digits below 1, CLDR currency spacing,
a change that rounds to 0 has no direction; and, over the whole float range, they never raise."""

from __future__ import annotations

import decimal
import math
import re
from decimal import Decimal

import pytest
from babel.numbers import get_currency_precision, get_decimal_symbol, get_group_symbol
from hypothesis import given, settings
from hypothesis import strategies as st

from ticker.config.settings import VISITOR_LOCALES
from ticker.render.formatting import (
    UNKNOWN,
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

NB = "\u00a0"

PRICES = [
    # (value, currency, locale, shown, shown with subscript zeros)
    (13709330.22, "jpy", "en_US", "¥13,709,330", None),  # JPY has no minor unit
    (90481.58, "kwd", "en_US", f"KWD{NB}90,481.580", None),  # three digits; the code apart from the number
    (80072.19, "chf", "en_US", f"CHF{NB}80,072.19", None),
    (25465862.9, "pkr", "en_US", f"PKR{NB}25,465,862.90", None),
    (80072.19, "pkr", "ur", f"Rs{NB}80,072.19", None),  # a letter symbol, not only ISO codes
    (80072.19, "usd", "zh_Hans_CN", "US$80,072.19", None),  # a symbol ending in "$" stays attached
    # Right to left: a symbol of letters and a sign is marked left-to-right, or it shows as "$US"
    (90917.04, "usd", "ar", f"\u200f90,917.04{NB}US$\u200e", None),
    (13709330.22, "jpy", "ar_EG", f"\u200f13,709,330{NB}JP¥\u200e", None),
    (90917.04, "usd", "ur_PK", "$90,917.04", None),  # a sign alone reads the same either way
    (80072.19, "chf", "ar", f"\u200f80,072.19{NB}CHF", None),  # letters alone too
    (90917.04, "usd", "de_DE", f"90.917,04{NB}$", None),
    (80072.19, "chf", "de_CH", f"CHF{NB}80'072.19", None),  # the locale's own space, not doubled
    (84123.55, "eur", "de_DE", f"84.123,55{NB}€", None),
    (90917.04, "usd", "en_US", "$90,917.04", None),
    (0.1412, "usd", "en_US", "$0.1412", None),
    (0.004200, "usd", "en_US", "$0.0042", None),  # no trailing zeros below 1
    (0.1, "eur", "de_DE", f"0,1{NB}€", None),
    (0.00000712, "usd", "en_US", "$0.00000712", "$0.0₅712"),
    (0.00000712, "eur", "de_DE", f"0,00000712{NB}€", f"0,0₅712{NB}€"),
    (0.0000999949, "usd", "en_US", "$0.00009999", "$0.0₄9999"),
    (0.0001, "usd", "en_US", "$0.0001", None),  # not below 0.0001: no subscript
    (0.99996, "usd", "en_US", "$1.00", None),  # rounds up to one: the currency's digits
    (0.99996, "jpy", "en_US", "¥1", None),
    (0.99995, "btc", "en_US", f"0.99995{NB}BTC", None),  # not "1.00000000 BTC": that would claim 8 digits
    (0.999999996, "btc", "en_US", f"1.00000000{NB}BTC", None),
    (0.42, "jpy", "en_US", "¥0.42", None),  # below 1 in every currency, JPY too
    (1.23456789, "btc", "en_US", f"1.23456789{NB}BTC", None),
    (0.0000021, "btc", "en_US", f"0.0000021{NB}BTC", f"0.0₅21{NB}BTC"),
    (3021.5512, "eth", "en_US", f"3,021.55120000{NB}ETH", None),
    (2100.4, "sats", "en_US", f"2,100{NB}sats", None),  # whole sats
    (0.5, "sats", "de_DE", f"0,5{NB}sats", None),
    (1e26, "usd", "en_US", "$100,000,000,000,000,000,000,000,000.00", None),  # never InvalidOperation
]


@pytest.mark.parametrize(("value", "currency", "locale", "shown", "subscripted"), PRICES)
def test_money_follows_each_currencys_digits_and_spacing(value, currency, locale, shown, subscripted):
    assert format_price(value, currency, locale) == shown
    assert format_price(value, currency, locale, subscript=True) == (subscripted or shown)


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, -1e-300])
def test_no_price_is_unknown_never_zero(value):
    assert format_price(value, "usd", "en_US") == UNKNOWN
    assert format_price(value, "jpy", "de_DE", subscript=True) == UNKNOWN


def test_screen_readers_get_every_digit():
    assert spoken_amount(0.00000712, "usd", "en_US") == "0.00000712"
    assert spoken_amount(13709330.22, "jpy", "en_US") == "13,709,330"
    assert spoken_amount(90481.58, "kwd", "de_DE") == "90.481,580"
    assert currency_name("kwd", "en_US") == "Kuwaiti dinars" and currency_name("sats", "en_US") == "sats"


def test_currency_names_agree_with_the_amount_as_displayed():
    """CLDR's plural form for the spoken amount: a decimal takes uk "долара", pl "dolara" (not the form for 2);
    a whole yen amount its own form; a non-number falls back to the plural."""
    assert currency_name("usd", "uk", 90917.04) == "долара США"
    assert currency_name("usd", "pl", 90917.04) == "dolara amerykańskiego"
    assert currency_name("jpy", "pl", 13709330.22) == "jenów japońskich"  # 13 709 330: whole, "many"
    assert currency_name("usd", "en_US", 1.0) == "US dollars"  # "1.00 US dollars"
    assert currency_name("usd", "pl", float("nan")) == currency_name("usd", "pl")


CHANGES = [
    # (change in %, direction, shown)
    (-0.0001, "flat", "0.00%"),
    (0.004, "flat", "0.00%"),
    (-0.004, "flat", "0.00%"),
    (-0.0, "flat", "0.00%"),
    (0.0, "flat", "0.00%"),
    (0.005, "flat", "0.00%"),  # half to even, as ICU rounds
    (0.006, "up", "0.01%"),
    (-0.006, "down", "0.01%"),
    (1.64, "up", "1.64%"),
    (-2.3127, "down", "2.31%"),
    (None, "unknown", UNKNOWN),
    (math.nan, "unknown", UNKNOWN),
    (-math.inf, "unknown", UNKNOWN),
    (-100.5, "unknown", UNKNOWN),  # outside the contract's bounds: implausible, not shown
    (1e7, "unknown", UNKNOWN),
]


@pytest.mark.parametrize(("value", "direction", "shown"), CHANGES)
def test_a_change_that_rounds_to_zero_has_no_direction(value, direction, shown):
    assert change_direction(value) == direction
    assert format_change(value, "en_US") == shown


def test_a_change_in_the_locales_own_percent_format():
    assert format_change(-1.7, "de_DE") == f"1,70{NB}%"
    assert format_change(-0.0001, "tr_TR") == "%0,00"
    assert spoken_change(-2.3127, "de_DE") == "2,31"


# --- properties over the whole float range, a sample of currencies and the visitors' locales ---

CURRENCIES = ["usd", "eur", "jpy", "kwd", "chf", "pkr", "btc", "eth", "sats", "clf", "isk", "krw", "vnd", "irr"]
LOCALES = sorted(VISITOR_LOCALES)
SUBSCRIPT = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
WIDE = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
any_float = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [1e26, 1e308, 5e-324, 2.2250738585072014e-308, -0.0, 0.99995, 0.999949, 0.0001, 0.00009999, 1.005, 2.675]
)


def digits_of(currency: str) -> int:
    return {"btc": 8, "eth": 8, "sats": 0}.get(currency, get_currency_precision(currency.upper()))


def shown_number(text: str, locale: str) -> str:
    """The number in a formatted price or change, subscript zeros written out, in plain "1234.5" form."""
    point, group = get_decimal_symbol(locale), get_group_symbol(locale)
    sub = re.search("0" + re.escape(point) + "0([₀-₉]+)", text)
    if sub:
        zeros = "0" * int(sub.group(1).translate(SUBSCRIPT))
        text = text[: sub.start()] + "0" + point + zeros + text[sub.end() :]
    match = re.search(rf"[0-9](?:[0-9]|{re.escape(group)}(?=[0-9]))*(?:{re.escape(point)}[0-9]+)?", text)
    assert match, text
    return match.group(0).replace(group, "").replace(point, ".")


@settings(max_examples=1000, deadline=None)
@given(
    value=any_float,
    currency=st.sampled_from(CURRENCIES),
    locale=st.sampled_from(LOCALES),
    subscript=st.booleans(),
)
def test_any_price_formats_by_the_digits_rule(value, currency, locale, subscript):
    text = format_price(value, currency, locale, subscript=subscript)
    if not (math.isfinite(value) and value > 0):
        assert text == UNKNOWN
        return
    assert text != UNKNOWN and "-" not in text
    assert not re.search(r"[A-Za-z][0-9]|[0-9][A-Za-z]", text), f"a letter code touches the number: {text!r}"
    number = shown_number(text, locale)
    has_subscript = any("₀" <= ch <= "₉" for ch in text)
    assert has_subscript == (subscript and Decimal(number) < Decimal("0.0001")), text
    with decimal.localcontext(WIDE):
        amount, exact = Decimal(number), Decimal(repr(value))  # the shortest decimal that is this float
        fraction = number.partition(".")[2]
        if amount >= 1:
            digits = digits_of(currency)
            assert len(fraction) == digits, (text, digits)
            assert abs(amount - exact) <= Decimal(5).scaleb(-digits - 1), text
        else:
            assert not fraction.endswith("0"), f"trailing zero below 1: {text!r}"
            assert abs(amount - exact) <= Decimal(5).scaleb(-len(fraction) - 1), text  # half the last digit
            if exact < Decimal("0.99995"):  # (above, 4 digits would say 1: the currency's digits decide)
                assert len(fraction.lstrip("0")) <= 4, f"more than 4 significant digits: {text!r}"


@settings(max_examples=500, deadline=None)
@given(value=any_float | st.floats(-0.01, 0.01), locale=st.sampled_from(LOCALES))
def test_any_change_formats_without_sign_and_zero_without_direction(value, locale):
    text, direction = format_change(value, locale), change_direction(value)
    if not math.isfinite(value) or not -100 <= value <= 1_000_000:
        assert (text, direction) == (UNKNOWN, "unknown")
        return
    assert "-" not in text and "\u2212" not in text
    number = Decimal(shown_number(text, locale))
    assert len(shown_number(text, locale).partition(".")[2]) == 2
    assert abs(number - abs(Decimal(repr(value)))) <= Decimal("0.005"), text
    if number == 0:
        assert direction == "flat", (value, text)
    else:
        assert direction == ("up" if value > 0 else "down")


@pytest.mark.parametrize(
    ("value", "currency", "locale", "shown", "spoken"),
    [
        (1.8e12, "usd", "en_US", "$1.8T", "1.8 trillion"),
        (45.2e9, "usd", "de_DE", f"45,2{NB}Mrd.{NB}$", "45,2 Milliarden"),
        (45.2e9, "eur", "ja_JP", "€452億", "452億"),
        (1.2e6, "btc", "en_US", f"1.2M{NB}BTC", "1.2 million"),
        (95_432.1, "usd", "en_US", "$95,432.10", "95,432.1"),  # below 100,000: the full amount
    ],
)
def test_market_figures_are_cldr_compact(value, currency, locale, shown, spoken):
    assert format_compact_money(value, currency, locale) == shown
    assert spoken_compact(value, locale) == spoken


@settings(max_examples=200, deadline=None)
@given(
    value=any_float | st.none(),
    currency=st.sampled_from(["usd", "eur", "jpy", "kwd", "btc", "sats"]),
    locale=st.sampled_from(LOCALES),
)
def test_any_market_figure_formats_or_is_unknown(value, currency, locale):
    """Never raises; a figure that cannot be a market cap (None, nan, inf, negative, above 1e18) is "—"."""
    text = format_compact_money(value, currency, locale)
    if value is None or not math.isfinite(value) or value < 0 or value > 1e18 or value == 0:
        assert text == UNKNOWN
    else:
        assert text != UNKNOWN and "nan" not in text.lower() and "inf" not in text.lower()
    assert format_rank(None, locale) == UNKNOWN and format_rank(0, locale) == UNKNOWN
