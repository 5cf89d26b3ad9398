"""What the three exchange feeds share when they read a frame: JSON, prices, times and quotes.

Every helper raises only FeedError (ticker/live/feed.py), so a feed's `parse` can promise the
connection nothing else escapes it.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from ticker.live.feed import STREAM_CURRENCY, FeedError
from ticker.models import Quote
from ticker.providers.parsing import number

# A decimal number as the exchanges write them in strings ("90917.04", "1.2e-05"): ASCII digits only, no
# spaces, underscores or other scripts' digits, which Python's float() would otherwise take.
DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
MAX_FRAME_CHARS = 1_000_000  # a ticker frame is a few hundred bytes; a megabyte is no exchange's ticker


def load(frame: str | bytes, exchange: str) -> Any:
    """The frame's JSON value. Raises FeedError for bytes that are not UTF-8 or text that is not JSON."""
    if len(frame) > MAX_FRAME_CHARS:
        raise FeedError(f"{exchange}: frame of {len(frame)} bytes is too large")
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FeedError(f"{exchange}: frame is not JSON") from err


def price(value: Any, exchange: str, pair: str, *, strings: bool) -> float:
    """A finite price as float (its sign is the gate's business). `strings`: numeric text accepted too
    (Coinbase and Binance send prices as strings; Kraken v2 as JSON numbers).

    Raises FeedError for anything else: a price that is not a number is a malformed frame."""
    found = _number(value) if strings or not isinstance(value, str) else None
    if found is None or not math.isfinite(found):
        raise FeedError(f"{exchange}: {pair}: price {str(value)[:40]!r} is not a number")
    return found


def change_from_open(last: float, open_price: Any) -> float | None:
    """The change in percent from a rolling window's open, (last / open - 1) * 100; None when the open is
    not a positive finite number (no trade in the window)."""
    opened = _number(open_price)
    if opened is None or not math.isfinite(opened) or opened <= 0:
        return None
    change = (last / opened - 1.0) * 100.0
    return change if math.isfinite(change) else None


def _number(value: Any) -> float | None:
    """A JSON number, or a string that is a plain ASCII decimal (see DECIMAL), as float; else None."""
    if isinstance(value, str) and DECIMAL.fullmatch(value) is None:
        return None
    return number(value)


def not_after(moment: datetime | None, received: datetime) -> datetime:
    """The exchange's time, at most when the frame arrived (a fast exchange clock never dates a tick
    ahead of us); `received` when the exchange gave none."""
    return received if moment is None or moment > received else moment


def tick(symbol: str, value: float, change: float | None, updated: datetime, exchange: str) -> Quote:
    """A live tick: price and rolling 24 h change in the stream's currency; market figures left None."""
    return Quote(symbol, STREAM_CURRENCY, value, change, updated, exchange)


def short(text: Any, limit: int = 120) -> str:
    """An exchange's error text, shortened and flattened for /readyz and logs."""
    return " ".join(str(text).split())[:limit]
