"""Kraken's v2 ticker feed: documented frames to events, subscribe batching, pair names, robustness."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fixture_bytes, settings_from
from tests.live.robustness import RECEIVED, dumps, json_values, keyed, parse_or_feed_error
from ticker.live.feed import FeedError, Heartbeat, Refused, Subscribed, Ticks
from ticker.live.feeds import build_feed
from ticker.live.kraken import BATCH, KrakenFeed
from ticker.models import Coin
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, KNOWN_COINS, lookup

PAIRS = {"BTC/USD": "BTC", "DOGE/USD": "DOGE", "ALGO/USD": "ALGO"}


def frame(name: str) -> bytes:
    return fixture_bytes(f"live/kraken/{name}")


def test_snapshot_and_update_give_last_price_and_rolling_change_at_arrival_time() -> None:
    for name in ("snapshot.constructed.json", "update.constructed.json"):
        [ticks] = KrakenFeed().parse(frame(name), PAIRS, RECEIVED)
        assert isinstance(ticks, Ticks)
        [quote] = ticks.quotes
        assert (quote.symbol, quote.currency, quote.price, quote.change_24h_pct) == ("ALGO", "usd", 0.10035, -0.17)
        assert quote.updated_at == RECEIVED  # no timestamp in this schema: when the frame arrived
        assert quote.source == "kraken"
        assert quote.market_cap is None and quote.volume_24h is None and quote.rank is None


def test_snapshot_of_several_pairs_keeps_ours_with_their_timestamps() -> None:
    [ticks] = KrakenFeed().parse(frame("snapshot_default_coins.constructed.json"), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    by_symbol = {q.symbol: q for q in ticks.quotes}
    assert set(by_symbol) == {"BTC", "DOGE"}  # ETH/GBP is not ours
    assert (by_symbol["BTC"].price, by_symbol["BTC"].change_24h_pct) == (91234.6, 1.18)
    assert by_symbol["BTC"].updated_at == datetime(2026, 11, 27, 18, 19, 58, 123456, tzinfo=UTC)
    assert (by_symbol["DOGE"].price, by_symbol["DOGE"].change_24h_pct) == (0.38515, -2.2)


def test_a_timestamp_after_arrival_is_clamped_to_arrival() -> None:
    early = datetime(2026, 11, 27, 18, 19, 0, tzinfo=UTC)
    [ticks] = KrakenFeed().parse(frame("snapshot_default_coins.constructed.json"), PAIRS, early)
    assert isinstance(ticks, Ticks)
    assert all(q.updated_at == early for q in ticks.quotes)


def test_acks_heartbeat_status_and_pong() -> None:
    feed = KrakenFeed()
    assert feed.parse(frame("subscribe_ack.constructed.json"), PAIRS, RECEIVED) == [Subscribed(("ALGO/USD",))]
    [refused] = feed.parse(frame("subscribe_refused.constructed.json"), PAIRS, RECEIVED)
    assert isinstance(refused, Refused)
    assert refused.pair == "XBT/USD" and "not supported" in refused.reason
    for name in ("heartbeat.json", "status.constructed.json", "pong.constructed.json"):
        assert feed.parse(frame(name), PAIRS, RECEIVED) == [Heartbeat()]


def test_a_refusal_naming_its_pair_only_in_the_text_still_names_it() -> None:
    ack = {"method": "subscribe", "success": False, "error": "Currency pair not supported XBT/USDC"}
    assert KrakenFeed().parse(json.dumps(ack), PAIRS, RECEIVED) == [
        Refused("XBT/USDC", "Currency pair not supported XBT/USDC")
    ]
    vague = {"method": "subscribe", "success": False, "error": "Internal error"}
    assert KrakenFeed().parse(json.dumps(vague), PAIRS, RECEIVED) == [Refused(None, "Internal error")]


@pytest.mark.parametrize("name", ["status_maintenance.constructed.json", "rate_limited.constructed.json"])
def test_maintenance_and_rate_limit_end_the_connection(name: str) -> None:
    with pytest.raises(FeedError):
        KrakenFeed().parse(frame(name), PAIRS, RECEIVED)


@pytest.mark.parametrize("last", ['"91234.6"', '"abc"', "true", "[]", "{}"])
def test_a_price_that_is_not_a_json_number_is_malformed(last: str) -> None:
    text = '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":' + last + "}]}"
    with pytest.raises(FeedError, match="BTC/USD"):
        KrakenFeed().parse(text, PAIRS, RECEIVED)


def test_no_last_price_no_tick_and_negative_prices_are_left_to_the_gate() -> None:
    feed = KrakenFeed()
    none = '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":null,"change_pct":1}]}'
    assert feed.parse(none, PAIRS, RECEIVED) == []
    negative = '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","last":-5}]}'
    [ticks] = feed.parse(negative, PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks) and ticks.quotes[0].price == -5.0 and ticks.quotes[0].change_24h_pct is None


def test_subscribe_batches_symbols() -> None:
    pairs = [f"C{i}/USD" for i in range(BATCH * 2 + 3)]
    frames = [json.loads(f) for f in KrakenFeed().subscribe(pairs)]
    assert [len(f["params"]["symbol"]) for f in frames] == [BATCH, BATCH, 3]
    assert [s for f in frames for s in f["params"]["symbol"]] == pairs
    assert all(f["method"] == "subscribe" and f["params"]["channel"] == "ticker" for f in frames)
    assert KrakenFeed().subscribe([]) == []


def test_ping_url_and_build_feed() -> None:
    feed = build_feed("kraken")
    assert isinstance(feed, KrakenFeed) and build_feed("kraken") is not feed
    assert json.loads(feed.ping() or "") == {"method": "ping"}
    assert feed.url("wss://ws.kraken.com/v2", ["BTC/USD"]) == "wss://ws.kraken.com/v2"
    assert feed.default_url == "wss://ws.kraken.com/v2"


def test_default_coins_map_to_v2_names() -> None:
    feed = KrakenFeed()
    names = {s: feed.pair(Coin(s, s, known.ids)) for s in DEFAULT_SYMBOLS if (known := lookup(s))}
    assert names == {
        "BTC": "BTC/USD",
        "ETH": "ETH/USD",
        "NEO": None,
        "WAVES": None,
        "XMR": "XMR/USD",
        "XNO": None,
        "ARK": None,
        "ARRR": None,
        "DOGE": "DOGE/USD",
        "LTC": "LTC/USD",
        "ADA": "ADA/USD",
    }
    assert feed.pair(Coin("BTC", "Bitcoin", {"kraken": "XBTUSD"})) is None  # the REST name is not the stream's


def test_every_row_with_a_kraken_rest_pair_has_a_v2_name() -> None:
    for coin in KNOWN_COINS.values():
        rest = coin.ids.get("kraken")
        assert (rest is None) == ("kraken_ws" not in coin.ids), coin.symbol
        if rest is not None:
            base = coin.ids["kraken_ws"].removesuffix("/USD")
            assert coin.ids["kraken_ws"] == f"{base}/USD" and rest.endswith("USD")
            assert base == coin.symbol  # v2 uses the common symbols (BTC, DOGE), not XBT / XDG


def test_config_accepts_kraken_ws_ids(tmp_path: Path) -> None:
    text = '[market]\ncoins = [{ symbol = "FOO", ids = { coingecko = "foo", kraken_ws = "FOO/USD" } }]'
    [coin] = settings_from(tmp_path, text).market.coins
    assert coin.ids == {"coingecko": "foo", "kraken_ws": "FOO/USD"}
    assert KrakenFeed().pair(coin) == "FOO/USD"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=60) | json_values.map(dumps))
def test_arbitrary_frames_raise_only_feed_error(data: str | bytes) -> None:
    parse_or_feed_error(KrakenFeed(), data, PAIRS)


@settings(max_examples=150, deadline=None)
@given(
    keyed(["channel", "type", "data", "method", "success", "error", "result", "symbol"])
    | st.builds(
        lambda kind, entries: {"channel": "ticker", "type": kind, "data": entries},
        st.sampled_from(["snapshot", "update", "x"]),
        st.lists(keyed(["symbol", "last", "change_pct", "timestamp"]), max_size=3),
    )
)
def test_kraken_shaped_frames_raise_only_feed_error(message: dict[str, object]) -> None:
    parse_or_feed_error(KrakenFeed(), dumps(message), PAIRS)


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(last=finite, change=finite)
def test_documented_ticker_with_random_numbers_gives_them_back(last: float, change: float) -> None:
    message = {
        "channel": "ticker",
        "type": "update",
        "data": [{"symbol": "BTC/USD", "last": last, "change_pct": change}],
    }
    [ticks] = KrakenFeed().parse(json.dumps(message), PAIRS, RECEIVED)
    assert isinstance(ticks, Ticks)
    assert (ticks.quotes[0].price, ticks.quotes[0].change_24h_pct) == (last, change)
