"""LiveStreams: one connection per exchange, only on the instance that polls, following the coin list."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio
import pytest

from tests.conftest import until
from ticker.lease import LeaseRole
from ticker.live.feed import ExchangeFeed
from ticker.live.hub import LiveQuotes
from ticker.live.streams import LiveStreams, Plan, plan
from ticker.models import Coin
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, lookup

DEFAULT_COINS = [Coin(k.symbol, k.name, k.ids) for k in (lookup(s) for s in DEFAULT_SYMBOLS) if k is not None]
STATIC = Coin("SITE", "Site Token", prices={"usd": 0.5})
TOKEN = Coin("OPENVC", "OpenVoiceCoin", {"geckoterminal": "bsc:0xabc"}, chain="bsc", address="0xabc")


def test_each_exchange_gets_the_default_coins_it_lists_and_static_coins_and_tokens_never_stream():
    plans = plan(
        ["kraken", "coinbase", "binance"], {"binance": "ws://127.0.0.1:9/binance"}, [*DEFAULT_COINS, STATIC, TOKEN]
    )
    assert plans["kraken"] == Plan(
        "wss://ws.kraken.com/v2",
        {"BTC/USD": "BTC", "ETH/USD": "ETH", "XMR/USD": "XMR", "DOGE/USD": "DOGE", "LTC/USD": "LTC", "ADA/USD": "ADA"},
    )
    assert set(plans["coinbase"].pairs.values()) == {"BTC", "ETH", "DOGE", "LTC", "ADA"}
    assert plans["binance"].url == "ws://127.0.0.1:9/binance"
    assert set(plans["binance"].pairs) == {
        "btcusdt",
        "ethusdt",
        "neousdt",
        "xnousdt",
        "arkusdt",
        "dogeusdt",
        "ltcusdt",
        "adausdt",
    }
    # An exchange that lists none of the coins gets no connection.
    assert plan(["kraken"], {}, [lookup_coin("NEO")]) == {}


def lookup_coin(symbol: str) -> Coin:
    known = lookup(symbol)
    assert known is not None
    return Coin(known.symbol, known.name, known.ids)


class FakeConnection:
    def __init__(self, name: str, pairs: Mapping[str, str], log: list[tuple[str, str, tuple[str, ...]]]) -> None:
        self.name, self.pairs, self.log = name, dict(pairs), log
        self.stopped = False

    async def run_forever(self) -> None:
        self.log.append(("start", self.name, tuple(self.pairs)))
        await anyio.sleep_forever()

    def stop(self) -> None:
        self.stopped = True
        self.log.append(("stop", self.name, tuple(self.pairs)))


async def test_streams_run_only_where_this_instance_polls_and_follow_the_coins():
    role: list[LeaseRole] = ["follower"]
    coins = [lookup_coin("BTC"), lookup_coin("NEO")]
    log: list[tuple[str, str, tuple[str, ...]]] = []
    hub = LiveQuotes(coins, preference=["kraken", "binance"], snapshot=lambda: None, interval=60)

    def connect(feed: Callable[[], ExchangeFeed], url: str, pairs: Mapping[str, str], _: LiveQuotes) -> FakeConnection:
        return FakeConnection(feed().name, pairs, log)

    streams = LiveStreams(
        ["kraken", "binance"],
        {},
        hub,
        lambda: coins,
        role=lambda: role[0],
        connect=connect,  # type: ignore[arg-type]
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(streams.run_forever)
        await anyio.sleep(0.7)
        assert log == [] and streams.connections == 0  # a follower holds none
        role[0] = "holder"
        # `connections` counts a connection as soon as it is planned; its task runs (and logs) a moment later.
        await until(lambda: streams.connections == 2 and len(log) == 2, "one connection per exchange")
        assert sorted(log) == [("start", "binance", ("btcusdt", "neousdt")), ("start", "kraken", ("BTC/USD",))]
        log.clear()
        coins.append(lookup_coin("ETH"))  # "top:N" moved: both exchanges list ETH, both restart with it
        await until(lambda: len(log) == 4, "restarted")
        assert sorted(log)[:2] == [
            ("start", "binance", ("btcusdt", "neousdt", "ethusdt")),
            ("start", "kraken", ("BTC/USD", "ETH/USD")),
        ]
        log.clear()
        role[0] = "follower"  # the lease moved on: every stream stops
        await until(lambda: streams.connections == 0, "stopped")
        assert sorted(entry[0] for entry in log) == ["stop", "stop"]
        tasks.cancel_scope.cancel()


@pytest.mark.parametrize("role", ["single", "holder"])
async def test_a_single_instance_and_a_holder_both_connect(role: LeaseRole):
    log: list[tuple[str, str, tuple[str, ...]]] = []
    hub = LiveQuotes([], preference=["kraken"], snapshot=lambda: None, interval=60)
    streams = LiveStreams(
        ["kraken"],
        {},
        hub,
        lambda: [lookup_coin("BTC")],
        role=lambda: role,
        connect=lambda feed, url, pairs, _: FakeConnection("kraken", pairs, log),  # type: ignore[arg-type,return-value]
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(streams.run_forever)
        await until(lambda: streams.connections == 1, "connected")
        tasks.cancel_scope.cancel()
    assert log[-1][0] == "stop"
