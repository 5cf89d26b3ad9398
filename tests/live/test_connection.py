"""StreamConnection against the fake exchange's Kraken v2 protocol, through a small test feed.

The real feeds (ticker/live/kraken.py etc.) are tested on their own; `KrakenLikeFeed` here speaks just
enough Kraken v2 (subscribe acks and errors, ticker snapshot/update, heartbeat, pong) to drive the
connection. Timings are small (silence 0.3 s, backoff base 0.02 s) with generous waits around them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from tests.conftest import until
from tests.fake_exchange import FakeExchange
from ticker.live.connection import BACKOFF_CAP, StreamConnection, backoff_delay
from ticker.live.feed import FeedError, FeedEvent, Heartbeat, Refused, Subscribed, Ticks
from ticker.live.hub import LiveQuotes, StreamState
from ticker.models import Coin, Quote

COINS = [Coin(s, s, {"kraken": s}) for s in ("BTC", "ETH", "DOGE")]
PAIRS = {"BTC/USD": "BTC", "ETH/USD": "ETH"}


class KrakenLikeFeed:
    """A minimal Kraken v2 ticker feed (see the module docstring)."""

    name = "kraken"
    default_url = "wss://ws.kraken.com/v2"

    def __init__(self, *, silence: float = 0.3, ping: float | None = None) -> None:
        self.silence_seconds = silence
        self.ping_seconds = ping
        self.send_spacing = 0.0
        self.refusal_voids_subscription = False

    def pair(self, coin: Coin) -> str | None:
        return f"{coin.symbol}/USD"

    def url(self, base: str, pairs: Sequence[str]) -> str:
        return base

    def subscribe(self, pairs: Sequence[str]) -> list[str]:
        return [
            json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": list(pairs)}, "req_id": 1})
        ]

    def ping(self) -> str | None:
        return json.dumps({"method": "ping", "req_id": 2})

    def reset(self) -> None:
        pass

    def parse(self, frame: str | bytes, pairs: Mapping[str, str], received: datetime) -> list[FeedEvent]:
        try:
            message = json.loads(frame)
        except ValueError:
            raise FeedError("malformed frame") from None
        if not isinstance(message, dict):
            raise FeedError("malformed frame")
        if message.get("method") == "subscribe":
            if message.get("success"):
                return [Subscribed((str(message["result"]["symbol"]),))]
            symbol = message.get("symbol")
            return [Refused(str(symbol) if symbol else None, str(message.get("error")))]
        if message.get("error") and message.get("method") != "subscribe":
            raise FeedError(f"error: {message['error']}", retry_after=5.0 if "rate" in message["error"] else None)
        if message.get("method") == "pong" or message.get("channel") in ("heartbeat", "status"):
            return [Heartbeat()]
        if message.get("channel") == "ticker":
            try:
                quotes = tuple(
                    Quote(pairs[row["symbol"]], "usd", float(row["last"]), float(row["change_pct"]), received, "kraken")
                    for row in message["data"]
                    if row["symbol"] in pairs
                )
            except (KeyError, TypeError, ValueError):
                raise FeedError("malformed ticker") from None
            return [Ticks(quotes)]
        return []


class RecordingHub(LiveQuotes):
    """A hub that keeps every state it was told, in order."""

    def __init__(self) -> None:
        super().__init__(COINS, preference=["kraken"], snapshot=lambda: None, interval=60.0)
        self.states: list[StreamState] = []

    def set_stream(self, name: str, state: StreamState) -> None:
        self.states.append(state)
        super().set_stream(name, state)

    def state(self) -> StreamState:
        return self.streams.get("kraken") or StreamState("down", datetime.now(UTC), (), "not started")

    def downs(self) -> list[str]:
        return [s.reason or "" for s in self.states if s.state == "down" and s.reason != "connecting"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeExchange]:
    async with FakeExchange(heartbeat_seconds=0.05, subscribe_deadline=2.0) as exchange:
        yield exchange


async def running(conn: StreamConnection) -> asyncio.Task[None]:
    return asyncio.create_task(conn.run_forever())


async def finish(conn: StreamConnection, task: asyncio.Task[None]) -> None:
    conn.stop()
    await asyncio.wait_for(task, 2.0)


def make(
    fake_or_url: FakeExchange | str,
    hub: LiveQuotes,
    pairs: Mapping[str, str] = PAIRS,
    feed: Callable[[], KrakenLikeFeed] = KrakenLikeFeed,
    **options: Any,
) -> StreamConnection:
    url = fake_or_url.url("kraken") if isinstance(fake_or_url, FakeExchange) else fake_or_url
    options.setdefault("backoff_base", 0.02)
    options.setdefault("backoff_cap", 0.1)
    return StreamConnection(feed, url, pairs, hub, **options)


def price(hub: LiveQuotes, symbol: str) -> float | None:
    quote = hub.latest().get((symbol, "usd"))
    return quote.price if quote is not None else None


async def test_ticks_reach_the_hub_and_the_stream_is_up(fake: FakeExchange) -> None:
    fake.tick("kraken", "BTC/USD", 90000.0, 1.0)  # before anyone connects: the subscription's snapshot
    hub = RecordingHub()
    conn = make(fake, hub)
    task = await running(conn)
    await until(lambda: price(hub, "BTC") == 90000.0, "the snapshot's price")
    assert hub.state().state == "up"
    assert hub.state().coins == ("BTC", "ETH")
    fake.tick("kraken", "BTC/USD", 91000.5, 1.2)
    await until(lambda: price(hub, "BTC") == 91000.5, "the tick's price")
    assert hub.latest()[("BTC", "usd")].change_24h_pct == 1.2
    assert hub.latest()[("BTC", "usd")].source == "kraken"
    records = fake.connections("kraken")
    assert len(records) == 1
    assert sorted(records[0].pairs) == ["BTC/USD", "ETH/USD"]
    assert (records[0].user_agent or "").startswith("ticker/")
    assert conn.subscribed == {"BTC/USD", "ETH/USD"}
    await finish(conn, task)


async def test_the_stream_is_up_only_once_the_exchange_confirms(fake: FakeExchange) -> None:
    fake.silence("kraken")  # the handshake succeeds, but no ack ever comes
    hub = RecordingHub()
    conn = make(fake, hub, feed=lambda: KrakenLikeFeed(silence=5.0))
    task = await running(conn)
    await until(lambda: fake.connections("kraken"), "a connection")
    await asyncio.sleep(0.3)
    assert hub.state().state == "down"
    assert hub.state().reason == "connecting"
    await finish(conn, task)


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ({"code": 1012, "reason": "Service Restart"}, "closed by exchange: 1012 Service Restart"),
        ({"abrupt": True}, "connection lost"),
    ],
)
async def test_a_dropped_stream_goes_down_with_its_reason_and_comes_back(
    fake: FakeExchange, drop: dict[str, Any], reason: str
) -> None:
    hub = RecordingHub()
    conn = make(fake, hub)
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    fake.drop("kraken", **drop)
    await until(lambda: reason in hub.downs(), f"down with {reason!r}")
    await until(lambda: len(fake.connections("kraken")) == 2 and hub.state().state == "up", "up again")
    fake.tick("kraken", "ETH/USD", 3000.25, -0.5)
    await until(lambda: price(hub, "ETH") == 3000.25, "a tick on the new connection")
    assert len(fake.connections("kraken", open_only=True)) == 1
    await finish(conn, task)


async def test_a_silent_stream_is_replaced_after_its_deadline(fake: FakeExchange) -> None:
    hub = RecordingHub()
    conn = make(fake, hub)  # silence deadline 0.3 s; the fake beats every 0.05 s
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    await asyncio.sleep(0.6)  # heartbeats keep it up
    assert hub.state().state == "up"
    assert len(fake.connections("kraken")) == 1
    fake.silence("kraken")
    silent_at = time.monotonic()
    await until(lambda: "silent for 0.3 s" in hub.downs(), "down for silence")
    assert time.monotonic() - silent_at >= 0.25
    fake.resume("kraken")
    await until(
        lambda: hub.state().state == "up", "up again", timeout=8.0
    )  # a retry may land before resume(): backoff up to 1 s, then 2 s
    assert len(fake.connections("kraken")) >= 2
    await finish(conn, task)


async def test_a_peer_that_stops_answering_pings_is_replaced(fake: FakeExchange) -> None:
    hub = RecordingHub()
    conn = make(fake, hub, feed=lambda: KrakenLikeFeed(silence=30.0), ping_interval=0.1, ping_timeout=0.2)
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    fake.silence("kraken", pings=False)
    await until(lambda: any("keepalive" in r for r in hub.downs()), "down for a missing pong", timeout=3.0)
    await finish(conn, task)


async def test_application_pings_are_sent_and_answered(fake: FakeExchange) -> None:
    fake.heartbeat_seconds = 60.0  # only pongs keep it alive
    hub = RecordingHub()
    conn = make(fake, hub, feed=lambda: KrakenLikeFeed(silence=0.4, ping=0.1))
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    await asyncio.sleep(1.0)
    assert hub.state().state == "up"
    assert len(fake.connections("kraken")) == 1
    await finish(conn, task)


async def test_a_malformed_frame_replaces_the_connection(fake: FakeExchange) -> None:
    hub = RecordingHub()
    conn = make(fake, hub)
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    fake.malformed("kraken")
    await until(lambda: "malformed frame" in hub.downs(), "down for the malformed frame")
    await until(lambda: len(fake.connections("kraken")) == 2 and hub.state().state == "up", "up again")
    await finish(conn, task)


async def test_a_handshake_refused_with_429_waits_for_retry_after(fake: FakeExchange) -> None:
    fake.refuse_handshakes("kraken", 429, retry_after="1")
    hub = RecordingHub()
    conn = make(fake, hub)  # its own backoff would retry within 0.1 s
    task = await running(conn)
    await until(lambda: fake.attempts("kraken"), "the first attempt")
    fake.accept_handshakes("kraken")
    await until(lambda: "handshake refused: HTTP 429" in hub.downs(), "down with the status")
    await until(lambda: hub.state().state == "up", "up after the wait", timeout=4.0)
    first, second = fake.attempts("kraken")[:2]
    assert first.status == 429
    assert second.status == 101
    assert second.at - first.at >= 0.95
    await finish(conn, task)


async def test_an_http_date_retry_after_is_honoured(fake: FakeExchange) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    fake.refuse_handshakes("kraken", 429, retry_after=when)
    hub = RecordingHub()
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)
        conn.stop()

    conn = make(fake, hub, sleep=no_sleep)
    await asyncio.wait_for(conn.run_forever(), 3.0)
    assert 1.5 <= waits[0] <= 3.0
    assert hub.state().reason == "stopped"


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    assert [backoff_delay(n, lambda: 0.5) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff_delay(3, lambda: 0.0) == 0.0
    assert backoff_delay(1000, lambda: 0.999) == pytest.approx(0.999 * BACKOFF_CAP)


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/kraken/v2"


async def test_failed_connections_back_off_with_growing_jittered_waits(caplog: pytest.LogCaptureFixture) -> None:
    hub = RecordingHub()
    draws = iter([0.9, 0.1, 0.7, 0.3, 0.5, 1.0 - 1e-9, 0.2, 0.8])
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 8:
            conn.stop()

    conn = StreamConnection(
        KrakenLikeFeed, closed_port(), PAIRS, hub, sleep=record, random=lambda: next(draws), backoff_base=1.0
    )
    with caplog.at_level(logging.INFO, logger="ticker.live.connection"):
        await asyncio.wait_for(conn.run_forever(), 3.0)
    assert waits == pytest.approx([0.9, 0.2, 2.8, 2.4, 8.0, 32.0, 12.0, 48.0])
    assert hub.state().state == "down"
    assert hub.downs()[0].startswith("connect failed")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"stream kraken down: {hub.downs()[0]}"]  # one line, not one per attempt


async def test_a_refused_pair_is_dropped_and_the_others_go_on(
    fake: FakeExchange, caplog: pytest.LogCaptureFixture
) -> None:
    fake.refuse_pair("kraken", "DOGE/USD")
    hub = RecordingHub()
    conn = make(fake, hub, pairs={"BTC/USD": "BTC", "DOGE/USD": "DOGE"})
    task = await running(conn)
    await until(lambda: hub.state().state == "up" and "DOGE/USD" not in conn.pairs, "up without DOGE")
    await until(lambda: hub.state().coins == ("BTC",), "the stream's coins without DOGE")
    fake.tick("kraken", "BTC/USD", 92000.0, 2.0)
    await until(lambda: price(hub, "BTC") == 92000.0, "BTC still ticks")
    fake.drop("kraken", code=1001)
    await until(lambda: len(fake.connections("kraken")) == 2 and hub.state().state == "up", "up again")
    assert fake.connections("kraken")[1].path == "/kraken/v2"
    await until(lambda: fake.connections("kraken")[1].pairs == ["BTC/USD"], "resubscribed to BTC only")
    await finish(conn, task)
    refusals = [r for r in caplog.records if "refused DOGE/USD" in r.getMessage()]
    assert len(refusals) == 1


async def test_coinbase_subscribes_again_without_a_refused_product(fake: FakeExchange) -> None:
    """Coinbase ignores a whole subscribe frame when one product in it is invalid: the connection is replaced
    at once by one without that product, and the others tick."""
    from ticker.live.coinbase import CoinbaseFeed

    fake.refuse_pair("coinbase", "DOGE-USD")
    hub = RecordingHub()
    conn = StreamConnection(
        CoinbaseFeed,
        fake.url("coinbase"),
        {"BTC-USD": "BTC", "DOGE-USD": "DOGE"},
        hub,  # type: ignore[arg-type]
        backoff_base=0.05,
    )
    task = await running(conn)
    await until(lambda: [c.pairs for c in fake.connections("coinbase")][-1:] == [["BTC-USD"]], "BTC-USD alone")
    fake.tick("coinbase", "BTC-USD", 92000.0, 2.0)
    await until(lambda: price(hub, "BTC") == 92000.0, "BTC ticks")
    state = hub.streams["coinbase"]
    assert state.state == "up" and state.coins == ("BTC",)
    await finish(conn, task)


async def test_a_stream_subscribed_by_its_url_is_up_after_a_quiet_error_free_while(
    fake: FakeExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Binance names the pairs in the URL and acknowledges nothing: a quiet market is still an up stream, but
    not at the handshake alone (a server that accepts and then sends garbage must not flap up and down)."""
    import ticker.live.connection
    from ticker.live.binance import BinanceFeed

    monkeypatch.setattr(ticker.live.connection, "QUIET_UP_SECONDS", 0.5)
    hub = RecordingHub()
    conn = StreamConnection(BinanceFeed, fake.url("binance"), {"btcusdt": "BTC"}, hub)  # type: ignore[arg-type]
    task = await running(conn)
    await until(lambda: fake.connections("binance", open_only=True), "connected")
    assert "binance" not in hub.streams or hub.streams["binance"].state == "down"
    await until(lambda: "binance" in hub.streams and hub.streams["binance"].state == "up", "up after a quiet while")
    assert hub.latest() == {}
    fake.tick("binance", "BTCUSDT", 92000.0, 2.0)
    await until(lambda: price(hub, "BTC") == 92000.0, "BTC ticks")
    await finish(conn, task)


async def test_stop_ends_a_connected_stream_within_a_second(fake: FakeExchange) -> None:
    hub = RecordingHub()
    conn = make(fake, hub)
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    started = time.monotonic()
    conn.stop()
    await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 1.0
    assert hub.state().state == "down"
    assert hub.state().reason == "stopped"
    await until(lambda: not fake.connections("kraken", open_only=True), "the exchange saw the close")
    assert fake.connections("kraken")[-1].close_code == 1001  # going away, not an internal error (1011)


async def test_a_cancelled_stream_closes_with_going_away(fake: FakeExchange) -> None:
    """Shutdown cancels the task group the streams run in (runtime.py): the exchange still gets a proper close."""
    hub = RecordingHub()
    conn = make(fake, hub)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(conn.run_forever)
        await until(lambda: hub.state().state == "up", "up")
        started = time.monotonic()
        tasks.cancel_scope.cancel()
    assert time.monotonic() - started < 1.0
    assert hub.state().reason == "stopped"
    await until(lambda: not fake.connections("kraken", open_only=True), "the exchange saw the close")
    assert fake.connections("kraken")[-1].close_code == 1001


async def test_stop_leaves_a_state_someone_else_set(fake: FakeExchange) -> None:
    """A follower's relay puts the lease holder's state in the hub while its own stream stops: it stays."""
    hub = RecordingHub()
    conn = make(fake, hub)
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    holders = StreamState("up", datetime.now(UTC) - timedelta(minutes=5), ("BTC", "ETH"))
    hub.set_stream("kraken", holders)
    await finish(conn, task)
    assert hub.streams["kraken"] is holders
    await until(lambda: not fake.connections("kraken", open_only=True), "the exchange saw the close")


async def test_stop_ends_a_long_wait_within_a_second(fake: FakeExchange) -> None:
    fake.refuse_handshakes("kraken", 429, retry_after="30")
    hub = RecordingHub()
    conn = make(fake, hub)
    task = await running(conn)
    await until(lambda: "handshake refused: HTTP 429" in hub.downs(), "refused")
    conn.stop()
    await asyncio.wait_for(task, 1.0)
    assert hub.state().reason == "stopped"
    assert len(fake.attempts("kraken")) == 1


@pytest.mark.parametrize(
    ("fault", "reason", "least"),
    [
        (
            lambda fake: fake.drop("kraken", code=1013, reason="Try Again Later"),
            "closed by exchange: 1013 Try Again Later",
            30.0,
        ),
        (lambda fake: fake.slow_consumer("kraken"), "closed by exchange: 1008 slow consumer", 10.0),
        (lambda fake: fake.send("kraken", json.dumps({"error": "Exceeded msg rate"})), "error: Exceeded msg rate", 5.0),
        (lambda fake: fake.drop("kraken", code=1001), "closed by exchange: 1001", 0.0),
    ],
)
async def test_exchange_closes_and_errors_set_the_least_wait(
    fake: FakeExchange, fault: Callable[[FakeExchange], None], reason: str, least: float
) -> None:
    hub = RecordingHub()
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        conn.stop()

    conn = make(fake, hub, sleep=record)
    task = await running(conn)
    await until(lambda: hub.state().state == "up", "up")
    fault(fake)
    await asyncio.wait_for(task, 2.0)
    assert hub.downs()[0] == reason
    assert least <= waits[0] <= max(least, 0.1)
