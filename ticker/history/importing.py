"""A user's own price series, read from CSV for `ticker history SYMBOL --import FILE.csv`.

One quote per line: `unix_seconds,price[,currency]` (Unix seconds, UTC, whole or fractional; the price
in `currency`, default the market's default currency). Blank lines and lines starting with `#` are
skipped, and so is a header line before the first quote (a first field that is not a number).

Every line is checked before anything is written, and every problem is reported with its line number:
a field count other than 2 or 3, a time that is not a positive number, looks like milliseconds, or lies
in the future; a price that is not a finite positive number or whose USD equivalent lies outside what
the plausibility gate accepts (plausibility.py, [1e-12, 1e7]); a currency not configured; a time given
twice in one currency. The caller writes the ticks only when there are no problems.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ticker.history.base import Tick
from ticker.plausibility import USD_MAX, USD_MIN
from ticker.rates import FALLBACK_USD_PRICES, usd_value

MILLISECONDS_FROM = 1e11  # a Unix time in seconds this large is the year 5138: someone gave milliseconds
FUTURE_SLACK = 60.0  # seconds a quote may lie ahead of the clock (clocks differ a little)


def parse_series(
    lines: Iterable[str], symbol: str, *, currencies: Sequence[str], now: float
) -> tuple[list[Tick], list[str]]:
    """The ticks of `symbol` in the lines (oldest first), and the problems found ("line 3: ..."): ticks are
    only to be used when there are no problems. `currencies`: the configured ones, the first the default."""
    ticks: list[Tick] = []
    problems: list[str] = []
    seen: dict[tuple[float, str], int] = {}
    quotes_begun = False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        if not quotes_begun and not _is_number(fields[0]):
            quotes_begun = True
            continue  # a header line
        quotes_begun = True
        problem, tick = _quote(fields, symbol, currencies, now)
        if problem is None and tick is not None:
            first = seen.setdefault((tick.at, tick.currency), number)
            if first != number:
                problem = f"time {fields[0]} in {tick.currency} is already on line {first}"
        if problem is not None:
            problems.append(f"line {number}: {problem}")
        elif tick is not None:
            ticks.append(tick)
    return sorted(ticks, key=lambda t: (t.currency, t.at)), problems


def _quote(fields: list[str], symbol: str, currencies: Sequence[str], now: float) -> tuple[str | None, Tick | None]:
    if len(fields) not in (2, 3):
        return f"expected unix_seconds,price[,currency], got {len(fields)} fields", None
    currency = fields[2].lower() if len(fields) == 3 and fields[2] else currencies[0]
    if currency not in currencies:
        return f"unknown currency {fields[2]!r}; configured: {', '.join(currencies)}", None
    at = _number(fields[0])
    if at is None or at <= 0:
        return f"time {fields[0]!r} is not a positive number of Unix seconds", None
    if at >= MILLISECONDS_FROM:
        return f"time {fields[0]} looks like milliseconds; give Unix seconds", None
    if at > now + FUTURE_SLACK:
        return f"time {fields[0]} lies in the future", None
    price = _number(fields[1])
    if price is None or price <= 0:
        return f"price {fields[1]!r} is not a positive number", None
    usd = usd_value(price, currency, btc_usd=FALLBACK_USD_PRICES["btc"], eth_usd=FALLBACK_USD_PRICES["eth"])
    if usd is None or not USD_MIN <= usd <= USD_MAX:
        return f"price {fields[1]} {currency} is not a plausible price of a coin", None
    return None, Tick(symbol, currency, at, price)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
