"""Live quotes shared through Redis (ticker/live/relay.py): the holder publishes, followers apply.

The relays run against a real redis-server (tests/redis_server.py) through the store's own Redis client;
the message checks at the end need no server. Timings are shortened (heartbeat 0.2 s: silence after
0.6 s) and every wait allows at least three times what the relay needs.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from functools import partial

import anyio
import anyio.abc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import NOW, until
from tests.redis_server import RedisServer, require_redis_server
from ticker.lease import LeaseRole
from ticker.live.hub import LiveQuotes, StreamState
from ticker.live.relay import CHANNEL, STATES_KEY, BadMessage, LiveRelay, decode_message, encode_message
from ticker.models import Coin, Quote
from ticker.redis_store import RedisHealth, RedisSnapshotStore, redis_cache

KRAKEN_UP = StreamState("up", NOW, ("BTC", "ETH"))
COINBASE_DOWN = StreamState("down", NOW, (), "silent for 30 s")


def tick(symbol: str, price: float, *, seconds: int = 0, source: str = "kraken") -> Quote:
    return Quote(symbol, "usd", price, 1.25, NOW + timedelta(seconds=seconds), source)


def make_hub() -> LiveQuotes:
    coins = [Coin("BTC", "Bitcoin"), Coin("ETH", "Ethereum")]
    return LiveQuotes(coins, preference=["kraken", "coinbase"], snapshot=lambda: None, interval=60.0)


class Instance:
    """One ticker instance's share of the relay: its store (Redis client, namespace, health), hub and relay."""

    def __init__(self, url: str, *, role: LeaseRole, rate: float = 4.0, heartbeat: float = 0.2) -> None:
        self.store = RedisSnapshotStore(redis_cache(url, "t"), snapshot_path=None, health=RedisHealth())
        self.hub = make_hub()
        self.role: LeaseRole = role
        self.relay = LiveRelay(
            self.store.redis,
            self.store.key(CHANNEL),
            self.store.key(STATES_KEY),
            self.hub,
            rate=rate,
            health=self.store.health,
            heartbeat=heartbeat,
        )
        self.scope = anyio.CancelScope()

    def start(self, tasks: anyio.abc.TaskGroup) -> Instance:
        async def run() -> None:
            try:
                with self.scope:
                    await self.relay.run(lambda: self.role)
            finally:
                with anyio.CancelScope(shield=True):
                    await self.store.close()

        tasks.start_soon(run)
        return self

    def quotes(self) -> dict[tuple[str, str], Quote]:
        return dict(self.hub.latest())


@pytest.fixture
def redis(request: pytest.FixtureRequest) -> RedisServer:
    """conftest's redis_server, or a skip (a failure with TICKER_REQUIRE_REDIS=1) without redis-server."""
    require_redis_server()
    server: RedisServer = request.getfixturevalue("redis_server")
    return server


@pytest.fixture
def redis_url(redis: RedisServer) -> str:
    return redis.url


async def subscribed(url: str, count: int = 1) -> bool:
    """Whether at least `count` clients listen on the live channel (a message sent earlier is lost)."""
    return await subscribers(url) >= count


async def subscribers(url: str) -> int:
    probe = RedisSnapshotStore(redis_cache(url, "t"), snapshot_path=None, health=RedisHealth())
    try:
        counts = await probe.redis.pubsub_numsub(probe.key(CHANNEL))
        return int(counts[0][1])
    finally:
        await probe.close()


async def listen(url: str, received: list[dict[str, object]], *, task_status: anyio.abc.TaskStatus[None]) -> None:
    """Collect every message on the live channel, as a third party sees it."""
    store = RedisSnapshotStore(redis_cache(url, "t"), snapshot_path=None, health=RedisHealth())
    pubsub = store.redis.pubsub()
    await pubsub.subscribe(store.key(CHANNEL))
    task_status.started()
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                received.append(json.loads(message["data"]))
    finally:
        with anyio.CancelScope(shield=True):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await store.close()


@pytest.mark.e2e
async def test_the_holders_quotes_reach_two_followers_identically_within_a_second(redis_url):
    async with anyio.create_task_group() as tasks:
        holder = Instance(redis_url, role="holder").start(tasks)
        followers = [Instance(redis_url, role="follower").start(tasks) for _ in range(2)]
        await until(lambda: subscribed(redis_url), "both followers subscribed")
        await until(lambda: all(f.relay.published == 0 for f in followers) and holder.relay.published, "a heartbeat")
        holder.hub.set_stream("kraken", KRAKEN_UP)
        started = anyio.current_time()
        holder.hub.accept([tick("BTC", 90917.04), tick("ETH", 3012.5)])
        await until(lambda: all(f.quotes() == holder.quotes() for f in followers), "quotes on the followers", 1.0)
        assert anyio.current_time() - started < 1.0
        assert holder.quotes()[("BTC", "usd")].price == 90917.04
        await until(lambda: all(f.hub.streams == {"kraken": KRAKEN_UP} for f in followers), "the stream state")
        holder.hub.accept([tick("BTC", 90950.0, seconds=1)])
        await until(lambda: all(f.quotes() == holder.quotes() for f in followers), "the next tick", 1.0)
        assert all(f.hub.latest()[("BTC", "usd")].price == 90950.0 for f in followers)
        tasks.cancel_scope.cancel()


@pytest.mark.e2e
async def test_changes_are_coalesced_to_the_rate(redis_url):
    received: list[dict[str, object]] = []
    async with anyio.create_task_group() as tasks:
        await tasks.start(partial(listen, redis_url, received))
        holder = Instance(redis_url, role="holder", rate=4.0, heartbeat=10.0).start(tasks)
        follower = Instance(redis_url, role="follower").start(tasks)
        await until(lambda: subscribed(redis_url, 2), "the follower subscribed")
        await until(lambda: received, "the first message (stream states)")
        received.clear()
        started = anyio.current_time()
        price = 90000.0
        for step in range(150):  # 150 changes in 1.5 s
            price = 90000.0 + step
            holder.hub.accept([tick("BTC", price, seconds=step)])
            await anyio.sleep(0.01)
        elapsed = anyio.current_time() - started
        await until(lambda: follower.quotes().get(("BTC", "usd")) == holder.quotes()[("BTC", "usd")], "the last price")
        with_quotes = [m for m in received if m["quotes"]]
        assert 2 <= len(with_quotes) <= math.ceil(elapsed * 4) + 2, (len(with_quotes), elapsed)
        assert with_quotes[-1]["quotes"] == [holder.quotes()[("BTC", "usd")].to_dict()]  # the last change, once
        assert follower.quotes()[("BTC", "usd")].price == price
        tasks.cancel_scope.cancel()


BAD_MESSAGES = [
    b"\xff\xfe not JSON",
    "[]",
    '{"v": 2, "quotes": [], "streams": {}}',
    '{"v": true, "quotes": [], "streams": {}}',
    '{"v": 1, "quotes": {}, "streams": {}}',
    '{"v": 1, "quotes": [], "streams": []}',
]


def bad_quote(**fields: object) -> str:
    item = {**tick("BTC", 1.0).to_dict(), **fields}
    return json.dumps({"v": 1, "quotes": [item], "streams": {}})


BAD_MESSAGES += [
    bad_quote(price="90917.04"),  # a number as text
    bad_quote(price=float("nan")),  # json.dumps writes NaN, json.loads reads it
    bad_quote(price=-1.0),
    bad_quote(price=0),
    bad_quote(price=True),
    bad_quote(symbol=None),
    bad_quote(currency=""),
    bad_quote(change_24h_pct="1.5"),
    bad_quote(market_cap=float("inf")),
    bad_quote(rank=1.5),
    bad_quote(updated_at="soon"),
    bad_quote(updated_at=1764267600),
    json.dumps({"v": 1, "quotes": [], "streams": {"kraken": {"state": "sideways", "since": "2026-11-27T18:20:00Z"}}}),
    json.dumps({"v": 1, "quotes": [], "streams": {"kraken": {"state": "up", "since": "yesterday"}}}),
    json.dumps(
        {"v": 1, "quotes": [], "streams": {"kraken": {"state": "up", "since": "2026-11-27T18:20:00Z", "coins": "BTC"}}}
    ),
]


@pytest.mark.e2e
async def test_malformed_messages_are_skipped_and_logged_once(redis_url, caplog):
    publisher = RedisSnapshotStore(redis_cache(redis_url, "t"), snapshot_path=None, health=RedisHealth())
    async with anyio.create_task_group() as tasks:
        follower = Instance(redis_url, role="follower").start(tasks)
        await until(lambda: subscribed(redis_url), "the follower subscribed")
        with caplog.at_level("DEBUG", logger="ticker.live.relay"):
            for raw in BAD_MESSAGES:
                await publisher.redis.publish(publisher.key(CHANNEL), raw)
            good = tick("ETH", 3012.5)
            await publisher.redis.publish(publisher.key(CHANNEL), encode_message([good], {"kraken": KRAKEN_UP}))
            await until(lambda: follower.quotes(), "the good message after the bad ones")
        assert follower.quotes() == {("ETH", "usd"): good} and follower.hub.streams == {"kraken": KRAKEN_UP}
        assert follower.relay.skipped == len(BAD_MESSAGES)
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "malformed live message" in warnings[0].getMessage()
        tasks.cancel_scope.cancel()
    await publisher.close()


@pytest.mark.e2e
async def test_a_follower_that_starts_later_learns_the_stream_states(redis_url):
    async with anyio.create_task_group() as tasks:
        holder = Instance(redis_url, role="holder", heartbeat=10.0).start(tasks)
        holder.hub.set_stream("kraken", KRAKEN_UP)
        holder.hub.set_stream("coinbase", COINBASE_DOWN)
        await until(lambda: holder.relay.published, "the holder published its states")
        late = Instance(redis_url, role="follower", heartbeat=10.0).start(tasks)
        # No message comes for 10 s (no change, next heartbeat): only the stored states can tell it.
        await until(lambda: late.hub.streams, "the states on the late follower", 1.0)
        assert late.hub.streams == {"kraken": KRAKEN_UP, "coinbase": COINBASE_DOWN}
        tasks.cancel_scope.cancel()


@pytest.mark.e2e
async def test_the_relay_recovers_when_redis_restarts(redis, caplog):
    redis_server = redis
    with caplog.at_level("INFO", logger="ticker"):
        async with anyio.create_task_group() as tasks:
            holder = Instance(redis_server.url, role="holder").start(tasks)
            follower = Instance(redis_server.url, role="follower").start(tasks)
            await until(lambda: subscribed(redis_server.url), "the follower subscribed")
            holder.hub.accept([tick("BTC", 1.0)])
            await until(lambda: follower.quotes() == holder.quotes(), "the first tick")
            redis_server.stop()
            holder.hub.accept([tick("BTC", 2.0, seconds=1)])  # while Redis is away
            await until(lambda: not holder.store.health.ok and not follower.store.health.ok, "both saw it go")
            redis_server.start()
            await until(lambda: follower.quotes() == holder.quotes(), "the tick sent during the outage", 10.0)
            holder.hub.accept([tick("BTC", 3.0, seconds=2)])
            await until(lambda: follower.quotes()[("BTC", "usd")].price == 3.0, "a tick after the restart", 1.0)
            assert holder.store.health.ok and follower.store.health.ok
            tasks.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis lost" in m for m in messages) == 2  # once per instance
    assert sum("Redis back" in m for m in messages) == 2
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


class FreezingProxy:
    """A TCP relay to redis-server whose open connections can go silent without closing (a dead NAT entry,
    a blackholed peer); connections made afterwards work."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._open: list[dict[str, bool]] = []

    def freeze(self) -> None:
        for connection in self._open:
            connection["frozen"] = True

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started()
            await listener.serve(self._relay)

    async def _relay(self, client: anyio.abc.SocketStream) -> None:
        state = {"frozen": False}
        self._open.append(state)
        async with client, await anyio.connect_tcp("127.0.0.1", self.target) as server:

            async def pipe(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
                async for data in source:
                    if not state["frozen"]:
                        await sink.send(data)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(pipe, client, server)
                await pipe(server, client)
                tasks.cancel_scope.cancel()


@pytest.mark.e2e
async def test_a_follower_whose_connection_dies_unseen_subscribes_again(redis):
    proxy = FreezingProxy(redis.port)
    async with anyio.create_task_group() as tasks:
        await tasks.start(proxy.serve)
        holder = Instance(redis.url, role="holder").start(tasks)
        follower = Instance(f"redis://127.0.0.1:{proxy.port}/0", role="follower").start(tasks)
        holder.hub.set_stream("kraken", KRAKEN_UP)
        await until(lambda: subscribed(redis.url), "the follower subscribed")
        holder.hub.accept([tick("BTC", 1.0)])
        await until(lambda: follower.quotes() == holder.quotes(), "the first tick")
        proxy.freeze()  # no error, no close: the follower's connections just fall silent
        await until(lambda: not follower.hub.streams, "the follower stopped vouching for the stream", 2.0)
        holder.hub.accept([tick("BTC", 2.0, seconds=1)])  # may be lost with the dead subscription
        await until(lambda: follower.hub.streams == {"kraken": KRAKEN_UP}, "subscribed again", 8.0)
        holder.hub.accept([tick("BTC", 3.0, seconds=2)])
        await until(lambda: follower.quotes() == holder.quotes(), "a tick on the new subscription", 1.0)
        tasks.cancel_scope.cancel()


@pytest.mark.e2e
async def test_roles_switch_from_holder_to_follower_and_back(redis_url):
    async with anyio.create_task_group() as tasks:
        a = Instance(redis_url, role="holder").start(tasks)
        b = Instance(redis_url, role="follower").start(tasks)
        await until(lambda: subscribed(redis_url), "b subscribed")
        a.hub.accept([tick("BTC", 1.0)])
        await until(lambda: b.quotes() == a.quotes(), "a's tick on b")

        a.role, b.role = "follower", "holder"
        started = anyio.current_time()
        await until(lambda: b.relay.published and subscribed(redis_url), "b publishing, a subscribed", 2.0)
        b.hub.accept([tick("ETH", 3000.0)])
        await until(lambda: ("ETH", "usd") in a.quotes(), "b's tick on a", 1.5)
        assert anyio.current_time() - started < 1.5

        a.role, b.role = "holder", "follower"
        before = a.relay.published
        await until(lambda: a.relay.published > before, "a publishing again", 1.5)
        await until(lambda: subscribed(redis_url), "b subscribed again", 1.5)
        a.hub.accept([tick("BTC", 2.0, seconds=1)])
        await until(lambda: b.quotes()[("BTC", "usd")].price == 2.0, "a's new tick on b", 1.5)
        assert a.quotes() == b.quotes()
        tasks.cancel_scope.cancel()


@pytest.mark.e2e
async def test_no_stream_is_claimed_up_once_the_holder_is_gone(redis_url):
    async with anyio.create_task_group() as tasks:
        holder = Instance(redis_url, role="holder", heartbeat=0.2).start(tasks)
        follower = Instance(redis_url, role="follower", heartbeat=0.2).start(tasks)
        holder.hub.set_stream("kraken", KRAKEN_UP)
        await until(lambda: follower.hub.streams == {"kraken": KRAKEN_UP}, "the state on the follower")
        await anyio.sleep(1.2)  # twice the silence (3 heartbeats): the heartbeats keep it
        assert follower.hub.streams == {"kraken": KRAKEN_UP}

        holder.scope.cancel()  # the holder dies: no more messages, its stored states expire
        gone = anyio.current_time()
        await until(lambda: not follower.hub.streams, "the follower forgot the streams", 2.0)
        assert anyio.current_time() - gone >= 0.4  # not before silence (0.6 s after its last message)
        late = Instance(redis_url, role="follower", heartbeat=0.2).start(tasks)
        await anyio.sleep(0.5)
        assert late.hub.streams == {}  # the expired key tells a newcomer nothing either
        tasks.cancel_scope.cancel()


@pytest.mark.e2e
async def test_a_single_instance_neither_publishes_nor_follows(redis_url):
    received: list[dict[str, object]] = []
    async with anyio.create_task_group() as tasks:
        await tasks.start(partial(listen, redis_url, received))
        alone = Instance(redis_url, role="single").start(tasks)
        follower = Instance(redis_url, role="follower").start(tasks)
        alone.hub.set_stream("kraken", KRAKEN_UP)
        alone.hub.accept([tick("BTC", 1.0)])
        await anyio.sleep(0.75)
        assert received == [] and follower.quotes() == {}

        # A follower whose Redis went away polls alone: the holder's states it held are its no longer.
        holder = Instance(redis_url, role="holder").start(tasks)
        holder.hub.set_stream("coinbase", COINBASE_DOWN)
        await until(lambda: follower.hub.streams, "the holder's states on the follower")
        follower.role = "single"
        await until(lambda: not follower.hub.streams, "the follower dropped them", 1.5)
        tasks.cancel_scope.cancel()


# -- messages, without a server ------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
quotes = st.builds(
    Quote,
    symbol=st.sampled_from(["BTC", "ETH", "XNO"]),
    currency=st.just("usd"),
    price=st.floats(min_value=1e-9, max_value=1e7),
    change_24h_pct=st.none() | finite,
    updated_at=st.none() | st.integers(0, 10**6).map(lambda s: NOW + timedelta(seconds=s)),
    source=st.sampled_from(["kraken", "coinbase", "binance"]),
    market_cap=st.none() | st.floats(min_value=0, max_value=1e13),
    rank=st.none() | st.integers(1, 5000),
)
states = st.builds(
    StreamState,
    state=st.sampled_from(["up", "down"]),
    since=st.integers(0, 10**6).map(lambda s: NOW - timedelta(seconds=s)),
    coins=st.lists(st.sampled_from(["BTC", "ETH"]), max_size=2).map(tuple),
    reason=st.none() | st.text(max_size=20),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(quotes, max_size=4), st.dictionaries(st.sampled_from(["kraken", "coinbase"]), states))
def test_a_message_reads_back_as_written(sent, streams):
    assert decode_message(encode_message(sent, streams)) == (sent, streams)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
message_like = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1.0, 2, "1", True]), "quotes": json_values, "streams": json_values}
)


@settings(max_examples=150, deadline=None)
@given(json_values | message_like | st.binary(max_size=20))
def test_anything_else_is_a_bad_message_never_a_crash(value):
    raw = value if isinstance(value, bytes) else json.dumps(value)
    try:
        decode_message(raw)
    except BadMessage as err:
        assert str(err)


def test_the_rate_must_be_positive():
    with pytest.raises(ValueError, match="rate"):
        LiveRelay(None, "c", "k", make_hub(), rate=0)  # type: ignore[arg-type]
