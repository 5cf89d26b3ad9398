"""A deterministic past for the fake upstream (tests/fake_upstream.py), and the candle bodies of four
upstreams built from it.

`past_price(key, price, at, now)` is a smooth walk (two sine waves, a 9-day and a 13-hour one, phase
from `key`) scaled so that it ends at the current fake `price` at `now`: a chart drawn from these
candles runs into the live price without a jump, and a test can compute the change it expects. Every
upstream asked for the same coin (`key` is the coin's symbol) tells the same past.

The bodies follow each endpoint's documented format, as the fixtures show it (tests/fixtures/README.md,
"Candles"), and its paging rules:

- Kraken `/0/public/OHLC?pair&interval&since`: `{"error": [], "result": {KEY: [[time, "o", "h", "l", "c",
  "vwap", "volume", count], ...], "last": time}}`; only the 720 most recent entries, those after `since`,
  the last one the bucket still open (docs.kraken.com, "Get OHLC Data").
- Binance `/api/v3/klines?symbol&interval&startTime&endTime&limit`: `[[open ms, "o", "h", "l", "c", "vol",
  close ms, ...], ...]` oldest first, open times in [startTime, endTime], at most `limit` (default 500,
  at most 1000) (binance-spot-api-docs `rest-api.md`).
- Coinbase Exchange `/products/{id}/candles?granularity&start&end`: `[[time, low, high, open, close,
  volume], ...]` newest first, numbers; more than 300 buckets in the range is a 400 (docs.cdp.coinbase.com,
  "Get product candles").
- CoinGecko `/coins/{id}/market_chart?vs_currency&days`: `{"prices": [[ms, price], ...], "market_caps",
  "total_volumes"}`: 5-minutely for 1 day, hourly (a little past each hour) for 2-90, daily at 00:00 UTC
  beyond, and a last point "now"; at most 365 days back (keyless reach) (docs.coingecko.com,
  "Coin Historical Chart Data by ID").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOUR, DAY = 3_600, 86_400
KRAKEN_INTERVALS = frozenset({1, 5, 15, 30, 60, 240, 1440, 10080, 21600})  # minutes
KRAKEN_ENTRIES = 720
BINANCE_INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1h": HOUR, "4h": 4 * HOUR, "1d": DAY}
BINANCE_LIMIT, BINANCE_DEFAULT_LIMIT = 1000, 500
COINBASE_GRANULARITIES = frozenset({60, 300, 900, 3600, 21600, 86400})
COINBASE_MAX = 300
COINGECKO_REACH_DAYS = 365
COINGECKO_HOURLY_OFFSET = 23  # seconds past the hour of its hourly points, as in the real ones


def past_price(key: str, price: float, at: float, now: float) -> float:
    """The fake past price of coin `key` at Unix time `at`, given its current `price` at `now`."""
    return price * _shape(key, at) / _shape(key, now)


def _shape(key: str, at: float) -> float:
    phase = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32 * 2 * math.pi
    return 1 + 0.06 * math.sin(2 * math.pi * at / (9 * DAY) + phase) + 0.015 * math.sin(2 * math.pi * at / 46_800)


@dataclass(frozen=True)
class Bar:
    """One bucket of the fake past: start (Unix seconds) and prices."""

    start: int
    open: float
    high: float
    low: float
    close: float


def bars(key: str, price: float, seconds: int, first: int, last: int, now: float) -> list[Bar]:
    """The buckets of `seconds` starting from `first` to `last` (aligned starts), oldest first; the one
    holding `now` is still open (its close is the current price)."""
    found = []
    for start in range(first - first % seconds, last + 1, seconds):
        if start > now:
            break
        end = min(start + seconds, now)
        opened, middle, close = (past_price(key, price, at, now) for at in (start, (start + end) / 2, end))
        found.append(Bar(start, opened, max(opened, middle, close) * 1.002, min(opened, middle, close) * 0.998, close))
    return found


def decimals(price: float) -> str:
    """A price as Kraken's strings give it: 5 decimals from 1 up (`90917.04000`), more below (`0.158312000`)."""
    places = 5 if price >= 1 else min(12, 8 - math.floor(math.log10(price))) if price > 0 else 8
    return f"{price:.{places}f}"


def kraken_ohlc(result_key: str, key: str, price: float, minutes: int, since: int | None, now: float) -> Any:
    seconds = minutes * 60
    current = int(now // seconds * seconds)
    rows = [
        [b.start, *(decimals(p) for p in (b.open, b.high, b.low, b.close, (b.high + b.low) / 2)), "12.34567890", 123]
        for b in bars(key, price, seconds, current - (KRAKEN_ENTRIES - 1) * seconds, current, now)
        if since is None or b.start > since or b.start == current  # the open bucket "will always be present"
    ]
    return {"error": [], "result": {result_key: rows, "last": current - seconds}}


def binance_klines(
    key: str, price: float, seconds: int, start_ms: int | None, end_ms: int | None, limit: int, now: float
) -> list[list[Any]]:
    limit = min(limit, BINANCE_LIMIT)
    end = int(now) if end_ms is None else min(end_ms // 1000, int(now))
    # Open times at or after startTime (rounded up to a bucket); without one, the `limit` latest.
    start = (end // seconds - limit + 1) * seconds if start_ms is None else -(-start_ms // 1000)
    rows = []
    for b in bars(key, price, seconds, start + (-start) % seconds, end, now)[:limit]:
        close_ms = (b.start + seconds) * 1000 - 1
        rows.append(
            [b.start * 1000, *(f"{p:.8f}" for p in (b.open, b.high, b.low, b.close)), "123.45600000", close_ms]
            + ["11223344.55660000", 4321, "61.72800000", "5611672.27830000", "0"]
        )
    return rows


def coinbase_candles(
    key: str, price: float, granularity: int, start: float | None, end: float | None, now: float
) -> list[list[Any]] | None:
    """The body, or None when the range holds more than 300 buckets (the caller answers the 400)."""
    if start is None or end is None:  # "If either one of start or end is not provided, both are ignored"
        end = now
        start = now - (COINBASE_MAX - 1) * granularity
    if (end - start) / granularity > COINBASE_MAX:
        return None
    rows = [
        [b.start, *(round(p, 8) for p in (b.low, b.high, b.open, b.close)), 12.3456789]
        for b in bars(key, price, granularity, math.ceil(start / granularity) * granularity, int(end), now)
    ]
    return rows[::-1]


def coingecko_market_chart(key: str, price: float, days: float, now: float) -> Any:
    days = min(days, COINGECKO_REACH_DAYS)
    since = now - days * DAY
    if days <= 1:
        step, offset = 300, 0
    elif days <= 90:
        step, offset = HOUR, COINGECKO_HOURLY_OFFSET
    else:
        step, offset = DAY, 0
    moments = [at for at in range(int(since // step) * step + offset, int(now), step) if at >= since]
    points = [[int(at * 1000), past_price(key, price, at, now)] for at in [*moments, now]]
    return {
        "prices": points,
        "market_caps": [[at, p * 19_968_000] for at, p in points],
        "total_volumes": [[at, p * 450_000] for at, p in points],
    }


def iso_seconds(value: str) -> float | None:
    """Coinbase's ISO 8601 `start`/`end` (or Unix seconds) as Unix seconds; None if neither."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
