"""Coinbase Exchange's ticker feed: documented frames to events, ordering, batching, pairs, robustness."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes
from tests.live.robustness import RECEIVED, dumps, json_values, keyed, parse_or_feed_error
from ticker.live.coinbase import BATCH, CoinbaseFeed
from ticker.live.feed import FeedError, Heartbeat, Refused, Subscribed, Ticks
from ticker.live.feeds import build_feed
from ticker.models import Coin
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, lookup

PAIRS = {"BTC-USD": "BTC", "ETH-USD": "ETH"}


def frame(name: str) -> bytes:
    return fixture_bytes(f"live/coinbase/{name}")


def ticker(sequence: int, price: str = "100", open_24h: str = "80", product: str = "BTC-USD") -> str:
    return json.dumps(
        {"type": "ticker", "sequence": sequence, "product_id": product, "price": price, "open_24h": open_24h,
         "time": "2026-11-27T18:19:00.000000Z"}
    )  # fmt: skip


def test_ticker_gives_price_change_from_open_24h_and_its_time() -> None:
    [ticks] = CoinbaseFeed().parse(frame("ticker.constructed.json"), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    [quote] = ticks.quotes
    assert (quote.symbol, quote.currency, quote.price, quote.source) == ("ETH", "usd", 1285.22, "coinbase")
    assert quote.change_24h_pct == pytest.approx((1285.22 / 1310.79 - 1) * 100)  # -1.95 %
    assert quote.updated_at == datetime(2022, 10, 19, 23, 28, 22, 61769, tzinfo=UTC)
    assert quote.volume_24h is None and quote.market_cap is None

    [ticks] = CoinbaseFeed().parse(frame("ticker_btc_2024.constructed.json"), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    assert ticks.quotes[0].price == 99728.83
    assert ticks.quotes[0].change_24h_pct == pytest.approx(-1.2258, abs=1e-4)


def test_subscriptions_heartbeat_and_errors() -> None:
    feed = CoinbaseFeed()
    assert feed.parse(frame("subscriptions.constructed.json"), PAIRS, RECEIVED) == [
        Subscribed(("ETH-USD", "ETH-EUR", "ETH-BTC"))
    ]
    assert feed.parse(frame("heartbeat.json"), PAIRS, RECEIVED) == [Heartbeat()]
    [refused] = feed.parse(frame("error_invalid_product.constructed.json"), PAIRS, RECEIVED)
    assert isinstance(refused, Refused) and refused.pair == "FOO-USD"
    for name in ("error_no_product.json", "error_invalid_id.json"):
        with pytest.raises(FeedError, match="Failed to subscribe"):
            feed.parse(frame(name), PAIRS, RECEIVED)


def test_subscriptions_with_channel_names_use_the_top_level_products() -> None:
    message = {"type": "subscriptions", "product_ids": ["BTC-USD"], "channels": ["ticker", "heartbeat"]}
    assert CoinbaseFeed().parse(json.dumps(message), PAIRS, RECEIVED) == [Subscribed(("BTC-USD",))]


def test_an_older_sequence_is_dropped_equal_and_newer_pass_and_reset_forgets() -> None:
    feed = CoinbaseFeed()
    assert feed.parse(ticker(10, "100"), PAIRS, RECEIVED) != []
    assert feed.parse(ticker(9, "90"), PAIRS, RECEIVED) == []  # out of order
    assert feed.parse(ticker(10, "101"), PAIRS, RECEIVED) != []  # one match, several tickers
    assert feed.parse(ticker(500, "102"), PAIRS, RECEIVED) != []  # a gap is harmless
    assert feed.parse(ticker(3, "50", product="ETH-USD"), PAIRS, RECEIVED) != []  # per product
    feed.reset()
    [ticks] = feed.parse(ticker(1, "99"), PAIRS, RECEIVED)  # a new connection starts afresh
    assert isinstance(ticks, Ticks) and ticks.quotes[0].price == 99.0


def test_time_is_clamped_other_products_dropped_bad_price_malformed() -> None:
    early = datetime(2026, 11, 27, 18, 0, 0, tzinfo=UTC)
    [ticks] = CoinbaseFeed().parse(ticker(1), PAIRS, early)
    assert isinstance(ticks, Ticks) and ticks.quotes[0].updated_at == early
    assert CoinbaseFeed().parse(ticker(1, product="DOGE-USD"), PAIRS, RECEIVED) == []
    for bad in ("abc", "", "NaN", "inf"):
        with pytest.raises(FeedError, match="BTC-USD"):
            CoinbaseFeed().parse(ticker(1, bad), PAIRS, RECEIVED)
    [ticks] = CoinbaseFeed().parse(ticker(1, "100", "0"), PAIRS, RECEIVED)  # no open: no change
    assert isinstance(ticks, Ticks) and ticks.quotes[0].change_24h_pct is None


def test_subscribe_batches_products_on_ticker_and_heartbeat() -> None:
    pairs = [f"C{i}-USD" for i in range(BATCH + 1)]
    frames = [json.loads(f) for f in CoinbaseFeed().subscribe(pairs)]
    assert [len(f["product_ids"]) for f in frames] == [BATCH, 1]
    assert all(f["type"] == "subscribe" and f["channels"] == ["ticker", "heartbeat"] for f in frames)
    assert [p for f in frames for p in f["product_ids"]] == pairs


def test_default_coins_map_to_usd_products() -> None:
    feed = build_feed("coinbase")
    assert isinstance(feed, CoinbaseFeed) and feed.ping() is None
    names = {s: feed.pair(Coin(s, s, known.ids)) for s in DEFAULT_SYMBOLS if (known := lookup(s))}
    assert {s: n for s, n in names.items() if n} == {
        "BTC": "BTC-USD",
        "ETH": "ETH-USD",
        "DOGE": "DOGE-USD",
        "LTC": "LTC-USD",
        "ADA": "ADA-USD",
    }
    assert feed.pair(Coin("BTC", "Bitcoin", {"coinbase": "BTC-EUR"})) is None  # the stream quotes USD


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=60) | json_values.map(dumps))
def test_arbitrary_frames_raise_only_feed_error(data: str | bytes) -> None:
    parse_or_feed_error(CoinbaseFeed(), data, PAIRS)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        lambda kind, rest: {"type": kind, **rest},
        st.sampled_from(["ticker", "heartbeat", "subscriptions", "error", "other"]),
        keyed(["product_id", "price", "open_24h", "time", "sequence", "channels", "product_ids", "reason", "message"]),
    )
)
def test_coinbase_shaped_frames_raise_only_feed_error(message: dict[str, object]) -> None:
    parse_or_feed_error(CoinbaseFeed(), dumps(message), PAIRS)


@settings(max_examples=100, deadline=None)
@given(
    price=st.floats(min_value=1e-8, max_value=1e9, allow_nan=False),
    open_24h=st.floats(min_value=1e-8, max_value=1e9, allow_nan=False),
)
def test_documented_ticker_with_random_numbers_gives_them_back(price: float, open_24h: float) -> None:
    [ticks] = CoinbaseFeed().parse(ticker(1, repr(price), repr(open_24h)), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    assert ticks.quotes[0].price == price
    assert ticks.quotes[0].change_24h_pct == pytest.approx((price / open_24h - 1) * 100)


@pytest.mark.parametrize("text", [" 3150 ", "3_022", "٣٠٢٥", "0x10", "1e", "NaN", "inf", ""])
def test_a_price_string_that_is_not_a_plain_decimal_is_malformed(text):
    from ticker.live.frames import price

    with pytest.raises(FeedError):
        price(text, "coinbase", "ETH-USD", strings=True)


def test_plain_decimal_strings_are_prices():
    from ticker.live.frames import price

    assert [price(t, "coinbase", "ETH-USD", strings=True) for t in ("3150", "0.00001234", "1.5e-05", "-2")] == [
        3150.0,
        0.00001234,
        1.5e-05,
        -2.0,
    ]
