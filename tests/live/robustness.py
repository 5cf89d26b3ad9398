"""What every feed's parse promises whatever arrives: events, or FeedError, nothing else.

Shared by test_kraken, test_coinbase and test_binance: strategies for arbitrary frames, and the check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from ticker.live.feed import ExchangeFeed, FeedError, FeedEvent

RECEIVED = datetime(2026, 11, 27, 18, 20, 0, tzinfo=UTC)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)


def keyed(keys: list[str], extra: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[dict[str, Any]]:
    """Objects using the exchange's own keys (so they reach deep into parse) with arbitrary values."""
    return st.dictionaries(st.sampled_from(keys), extra, max_size=len(keys))


def parse_or_feed_error(feed: ExchangeFeed, frame: str | bytes, pairs: Mapping[str, str]) -> list[FeedEvent] | None:
    """The events, or None when parse raised FeedError; any other exception fails the test."""
    try:
        return feed.parse(frame, pairs, RECEIVED)
    except FeedError as err:
        assert err.reason  # a reason to show in /readyz
        return None


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)
