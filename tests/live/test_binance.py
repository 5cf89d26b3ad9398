"""Binance's combined miniTicker streams: documented frames to events, the URL, pairs, robustness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes
from tests.live.robustness import RECEIVED, dumps, json_values, keyed, parse_or_feed_error
from ticker.live.binance import MAX_STREAMS, BinanceFeed
from ticker.live.feed import FeedError, Heartbeat, Subscribed, Ticks
from ticker.live.feeds import FEEDS, build_feed
from ticker.models import Coin
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, lookup

PAIRS = {"btcusdt": "BTC", "bnbbtc": "BNB"}


def frame(name: str) -> bytes:
    return fixture_bytes(f"live/binance/{name}")


def mini(close: str, open_: str, symbol: str = "BTCUSDT", event_ms: object = 1764267598123) -> str:
    data = {"e": "24hrMiniTicker", "E": event_ms, "s": symbol, "c": close, "o": open_}
    return json.dumps({"stream": f"{symbol.lower()}@miniTicker", "data": data})


def connected(pairs: list[str]) -> BinanceFeed:
    feed = BinanceFeed()
    feed.reset()
    feed.url(feed.default_url, pairs)
    return feed


def test_combined_mini_ticker_gives_close_rolling_change_and_event_time() -> None:
    events = connected(["btcusdt"]).parse(frame("combined_btcusdt.constructed.json"), PAIRS, RECEIVED)
    assert events[0] == Subscribed(("btcusdt",))  # the first frame confirms the streams named in the URL
    ticks = events[1]
    assert isinstance(ticks, Ticks)
    [quote] = ticks.quotes
    assert (quote.symbol, quote.currency, quote.price, quote.source) == ("BTC", "usd", 91234.56, "binance")
    assert quote.change_24h_pct == pytest.approx((91234.56 / 90167.45 - 1) * 100)
    assert quote.updated_at == datetime(2025, 11, 27, 18, 19, 58, 123000, tzinfo=UTC)


def test_raw_doc_payload_is_read_too_and_subscribed_comes_once() -> None:
    feed = connected(["bnbbtc"])
    first = feed.parse(frame("mini_ticker.json"), PAIRS, RECEIVED)
    assert first[0] == Subscribed(("bnbbtc",))
    [ticks] = feed.parse(frame("mini_ticker.json"), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    assert (ticks.quotes[0].price, ticks.quotes[0].change_24h_pct) == (0.0025, pytest.approx(150.0))
    assert ticks.quotes[0].updated_at == datetime(2022, 12, 31, 19, 43, 2, 136000, tzinfo=UTC)
    feed.reset()
    assert feed.parse(frame("subscribe_result.json"), PAIRS, RECEIVED) == [Subscribed(("bnbbtc",)), Heartbeat()]


@pytest.mark.parametrize(
    "name", ["server_shutdown.json", "error_unknown_method.constructed.json", "error_wrapped.constructed.json"]
)
def test_errors_and_shutdown_end_the_connection(name: str) -> None:
    with pytest.raises(FeedError):
        connected(["btcusdt"]).parse(frame(name), PAIRS, RECEIVED)


def test_time_clamped_other_pairs_dropped_bad_price_malformed() -> None:
    feed = connected(["btcusdt"])
    feed.parse(frame("subscribe_result.json"), PAIRS, RECEIVED)
    future = int(RECEIVED.timestamp() * 1000) + 60_000
    [ticks] = feed.parse(mini("100", "80", event_ms=future), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks) and ticks.quotes[0].updated_at == RECEIVED
    [ticks] = feed.parse(mini("100", "80", event_ms="soon"), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks) and ticks.quotes[0].updated_at == RECEIVED
    assert feed.parse(mini("100", "80", symbol="ETHUSDT"), PAIRS, RECEIVED) == []
    with pytest.raises(FeedError, match="btcusdt"):
        feed.parse(mini("n/a", "80"), PAIRS, RECEIVED)
    [ticks] = feed.parse(mini("100", "0"), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks) and ticks.quotes[0].change_24h_pct is None


def test_url_names_streams_up_to_the_limit_and_nothing_is_sent() -> None:
    feed = BinanceFeed()
    url = feed.url("wss://stream.binance.com:9443/", ["btcusdt", "ethusdt"])
    assert url == "wss://stream.binance.com:9443/stream?streams=btcusdt@miniTicker/ethusdt@miniTicker"
    many = [f"c{i}usdt" for i in range(MAX_STREAMS + 5)]
    streams = parse_qs(urlsplit(feed.url(feed.default_url, many)).query)["streams"][0].split("/")
    assert len(streams) == MAX_STREAMS and streams[0] == "c0usdt@miniTicker"
    assert feed.subscribe(many) == [] and feed.ping() is None
    assert feed.send_spacing >= 0.2  # 5 incoming messages a second at most


def test_default_coins_map_to_lower_case_usdt_pairs() -> None:
    feed = build_feed("binance")
    assert set(FEEDS) == {"kraken", "coinbase", "binance"}
    names = {s: feed.pair(Coin(s, s, known.ids)) for s in DEFAULT_SYMBOLS if (known := lookup(s))}
    assert {s: n for s, n in names.items() if n} == {
        "BTC": "btcusdt",
        "ETH": "ethusdt",
        "NEO": "neousdt",
        "XNO": "xnousdt",
        "ARK": "arkusdt",
        "DOGE": "dogeusdt",
        "LTC": "ltcusdt",
        "ADA": "adausdt",
    }
    assert feed.pair(Coin("BTC", "Bitcoin", {"binance": "BTCEUR"})) is None  # not a USDT pair


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=60) | json_values.map(dumps))
def test_arbitrary_frames_raise_only_feed_error(data: str | bytes) -> None:
    parse_or_feed_error(connected(["btcusdt"]), data, PAIRS)


@settings(max_examples=200, deadline=None)
@given(
    keyed(["stream", "data", "result", "id", "error", "code", "msg", "e"])
    | st.builds(
        lambda payload: {"stream": "btcusdt@miniTicker", "data": {"e": "24hrMiniTicker", **payload}},
        keyed(["E", "s", "c", "o"]),
    )
)
def test_binance_shaped_frames_raise_only_feed_error(message: dict[str, object]) -> None:
    parse_or_feed_error(connected(["btcusdt"]), dumps(message), PAIRS)


@settings(max_examples=100, deadline=None)
@given(
    close=st.floats(min_value=1e-8, max_value=1e9, allow_nan=False),
    open_=st.floats(min_value=1e-8, max_value=1e9, allow_nan=False),
)
def test_documented_mini_ticker_with_random_numbers_gives_them_back(close: float, open_: float) -> None:
    [ticks] = BinanceFeed().parse(mini(repr(close), repr(open_)), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    assert ticks.quotes[0].price == close
    assert ticks.quotes[0].change_24h_pct == pytest.approx((close / open_ - 1) * 100)
