"""Reading upstream numbers and times defensively: anything off-schema becomes None, never an exception."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

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


def unix_time(value: Any) -> datetime | None:
    seconds = number(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or seconds > 32503680000:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def ignored(provider: str, where: str, what: str, *, kind: str) -> None:
    """Log an off-schema value we skip ("coingecko: BTC/usd: ignoring non-numeric price '<b>1</b>'").

    At most once a day per provider, place and kind (logs.py's "once" filter): a bad upstream field
    repeats every round, and the log should say it once, not sixty times an hour.
    """
    logger.warning("%s: %s: ignoring %s", provider, where, what, extra={"once": (provider, where, kind)})
