"""Reading upstream numbers and times defensively: anything off-schema becomes None, never an exception."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ticker.models import Candle

logger = logging.getLogger(__name__)


def number(value: Any) -> float | None:
    """A JSON number or numeric string as float; None for anything else (bools, text, null)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float | str):
            return float(value)
    except (ValueError, OverflowError):  # text, or an integer too large for a float
        return None
    return None


def json_number(value: Any) -> float | None:
    """A JSON number as float; None for strings too (aggregators send numbers, a string is off-schema)."""
    return None if isinstance(value, str) else number(value)


_LATEST = 32503680000  # 3000-01-01 in Unix seconds: anything later is no upstream's time


def unix_time(value: Any) -> datetime | None:
    seconds = number(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or seconds > _LATEST:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def candle(provider: str, where: str, start: Any, seconds: int, prices: Sequence[Any]) -> Candle | None:
    """One OHLC bucket from upstream values, or None (logged via `ignored`) if any is off-schema.

    `start`: the bucket's start in Unix seconds (a number or numeric string; callers convert
    milliseconds); `prices`: open, high, low, close as numbers or numeric strings. Off-schema: a start
    that is no plausible time, a price that is not a finite positive number, or a high below the
    low, the open or the close, or a low above the open or the close.
    """
    moment = number(start)
    values = [number(value) for value in prices]
    if moment is not None and math.isfinite(moment) and 0 < moment <= _LATEST and len(values) == 4:
        opened, high, low, close = values
        if (
            opened is not None
            and high is not None
            and low is not None
            and close is not None
            and all(math.isfinite(v) and v > 0 for v in (opened, high, low, close))
            and low <= min(opened, close)
            and high >= max(opened, close)
        ):
            return Candle(int(moment), seconds, opened, high, low, close)
    ignored(provider, where, f"off-schema candle {[start, *prices]!r:.80}", kind="candle")
    return None


def window(candles: Iterable[Candle], since: int, until: int) -> list[Candle]:
    """The complete buckets that start at or after `since` and end by `until`, oldest first, one per start.

    Upstreams send newest first (Coinbase), a bucket still open (Kraken's last entry), or a few before
    the asked start (Coinbase); where two share a start, the first one seen is kept.
    """
    kept: dict[int, Candle] = {}
    for bucket in candles:
        if since <= bucket.start and bucket.start + bucket.seconds <= until:
            kept.setdefault(bucket.start, bucket)
    return [kept[start] for start in sorted(kept)]


def ignored(provider: str, where: str, what: str, *, kind: str) -> None:
    """Log an off-schema value we skip ("coingecko: BTC/usd: ignoring non-numeric price '<b>1</b>'").

    At most once a day per provider, place and kind (logs.py's "once" filter): a bad upstream field
    repeats every round, and the log should say it once, not sixty times an hour.
    """
    logger.warning("%s: %s: ignoring %s", provider, where, what, extra={"once": (provider, where, kind)})
