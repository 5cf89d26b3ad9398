"""Issue #15 end to end: the real `ticker serve` with `[live] enabled = true` against the local fake exchange
(tests/fake_exchange.py: Kraken v2, Coinbase Exchange and Binance streams) and the fake REST upstream, the
11 default coins, a 2 s interval.

One service serves the module; each test starts from every stream up and leaves it so. The exchanges keep
to their own coins so the tests do not steal each other's pairs (the first of live.providers that ticked a
coin owns it): Kraken BTC, Coinbase ETH, Binance NEO (only Binance lists NEO; the fake has no Kraken price
for ETH). Kraken and Binance are the ones dropped, Coinbase the one silenced and sent nonsense, which keeps
each exchange's run of failed connections (and so its backoff) short. Time bounds carry at least 3x margin
over what the service needs on an idle machine; a reconnect's bound is 3x its backoff's ceiling, computed
from the attempts so far (connection.py's full jitter), never its luck. The silence test takes Coinbase's
real 10 s deadline: feeds carry their deadlines as constants, with no setting or variable to shorten them.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_exchange import EXCHANGES, FakeExchange
from tests.fake_upstream import FakeUpstream
from tests.service import Service, free_port, running, wait_until, write_config
from ticker.live.connection import BACKOFF_BASE, BACKOFF_CAP

pytestmark = pytest.mark.e2e

INTERVAL = 2.0
ROUND = 3 * INTERVAL  # "within one interval", with the 3x margin
AT_ONCE = 1.0  # a state change the service makes as the event happens (it takes milliseconds)
TIMEOUT = 2.0  # poller.timeout_seconds: a loaded machine must not fail a REST round over
# Each exchange's coins among the defaults (its pairs in the coin table), as /readyz lists them.
STREAM_COINS = {
    "kraken": ["ADA", "BTC", "DOGE", "ETH", "LTC", "XMR"],
    "coinbase": ["ADA", "BTC", "DOGE", "ETH", "LTC"],
    "binance": ["ADA", "ARK", "BTC", "DOGE", "ETH", "LTC", "NEO", "XNO"],
}
# The coin each exchange ticks in these tests: (our symbol, the exchange's pair). Ticks stay within a few
# percent of the fake REST prices (fixtures/coingecko_simple_price_default_coins.constructed.json): plausible.
OWN = {"kraken": ("BTC", "BTC/USD"), "coinbase": ("ETH", "ETH-USD"), "binance": ("NEO", "NEOUSDT")}
POLLED = {"BTC": 90917.04, "ETH": 3021.5512, "NEO": 4.1203}  # what the fake REST says (CoinGecko first)


def live_config(tmp_path: Path, upstream: FakeUpstream, exchange: FakeExchange) -> Path:
    """The default coins and providers, every REST provider at the fake upstream, every stream at the fake
    exchange."""
    config = write_config(tmp_path, upstream, INTERVAL, market="", providers=None, timeout=TIMEOUT)
    text = config.read_text() + "\n[live]\nenabled = true\n"
    for name in EXCHANGES:
        text = text.replace(f"[providers.{name}]\n", f'[providers.{name}]\nstream_url = "{exchange.url(name)}"\n')
    config.write_text(text)
    return config


@dataclass
class Live:
    service: Service
    exchange: FakeExchange
    upstream: FakeUpstream


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with FakeUpstream() as upstream, FakeExchange() as exchange:
        upstream.serve_default_coins()
        for name, (symbol, pair) in OWN.items():  # Binance says nothing on connect: its first tick makes it up
            exchange.tick(name, pair, POLLED[symbol], 0.5)
        config = live_config(tmp_path_factory.mktemp("live"), upstream, exchange)
        with running(config) as service:
            yield Live(service, exchange, upstream)


@pytest.fixture
def up(live: Live) -> Live:
    """The module's service with every stream up on one connection and each exchange's own coin on its stream
    at the exchange's last price (ticked again: a coin no stream ticked for a minute is the poller's again)."""
    # After an earlier test's drops the backoff may have grown (a connection up < 60 s counts as a failure):
    # full jitter up to 8-16 s, so allow for it here rather than in each test.
    all_up(live.service, live.exchange, timeout=30.0)
    owned = {}
    for name, (symbol, pair) in OWN.items():
        price, change = live.exchange.prices[(name, pair)]
        live.exchange.tick(name, pair, price, change)
        owned[symbol] = (price, name)
    wait_until(
        lambda: all((c[s]["price"], c[s]["source"]) == owned[s] for c in [coins(live.service)] for s in owned),
        ROUND,
        "each exchange's own coin from its stream",
    )
    return live


# -- reading the service ----------------------------------------------------------------------------


def streams(service: Service) -> dict[str, dict[str, Any]]:
    return dict(service.get("/readyz").json()["streams"])


def coins(service: Service) -> dict[str, dict[str, Any]]:
    return {c["symbol"]: c for c in service.get("/api/v1/prices").json()["coins"]}


def sources(service: Service) -> set[tuple[str, str]]:
    return {(symbol, coin["source"]) for symbol, coin in coins(service).items()}


def all_up(service: Service, exchange: FakeExchange, timeout: float = ROUND) -> None:
    def ready() -> bool:
        states = streams(service)
        return all(states.get(n, {}).get("state") == "up" for n in EXCHANGES) and all(
            len(exchange.connections(n, open_only=True)) == 1 for n in EXCHANGES
        )

    try:
        wait_until(ready, timeout, "every stream up on one connection")
    except AssertionError:
        states = {n: (v["state"], v.get("reason")) for n, v in streams(service).items()}
        opened = {n: len(exchange.connections(n, open_only=True)) for n in EXCHANGES}
        raise AssertionError(f"not every stream up on one connection: {states}, open: {opened}") from None


def generated_at(service: Service) -> str:
    return str(service.get("/api/v1/prices").json()["generated_at"])


def rounds_later(service: Service, count: int) -> None:
    """Wait until `count` more snapshots were made (each a poll round)."""
    for _ in range(count):
        before = generated_at(service)
        wait_until(lambda b=before: generated_at(service) != b, ROUND, "a new snapshot")


def backoff_ceiling(exchange: FakeExchange, name: str) -> float:
    """The longest wait the stream may take before its next attempt, from the attempts so far: every earlier
    one ended in a failure (none stayed up the 60 s that resets the count), and the k-th failure in a row
    waits less than base * 2**(k-1), capped."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (len(exchange.attempts(name)) - 1)))


# -- event-stream clients ---------------------------------------------------------------------------


class Events:
    """One event-stream client on its own thread, reading the lines of one httpx stream as they come (as a
    browser's EventSource does): every event with its arrival time (time.monotonic()). Each comes from an
    address of its own (X-Forwarded-For, which uvicorn trusts from 127.0.0.1), as a browser would: the server
    takes only so many streams from one address."""

    addresses = itertools.count(1)

    def __init__(self, url: str) -> None:
        self.url = url
        n = next(Events.addresses)
        self.address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        self.events: list[tuple[float, str, Any]] = []
        self.status = 0
        self.ending = ""  # "clean" once the server ended the stream, else what went wrong
        self.ended = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5, read=30))
        self._socket: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers={"x-forwarded-for": self.address}) as response:
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self.status = response.status_code
                name = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        self.events.append((time.monotonic(), name, json.loads(line.removeprefix("data: "))))
            self.ending = "clean"
        except Exception as err:  # closed by us (close()) or a broken stream: the test reads `ending`
            self.ending = f"{type(err).__name__}: {err}"
        finally:
            self.ended.set()

    def named(self, event: str) -> list[tuple[float, Any]]:
        return [(at, data) for at, name, data in list(self.events) if name == event]

    def wait(self, event: str, check: Callable[[Any], bool] = lambda _: True, timeout: float = ROUND) -> float:
        """The arrival time of the first `event` whose data passes `check`."""
        found = wait_until(
            lambda: next((at for at, data in self.named(event) if check(data)), None), timeout, f"{event} event"
        )
        return float(found)

    def close(self) -> None:
        """Leave, as a browser closing the page does (a shutdown wakes the thread's blocking read)."""
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._client.close()


@contextlib.contextmanager
def listening(service: Service, path: str = "/api/v1/stream", count: int = 1) -> Iterator[list[Events]]:
    """`count` clients of the event stream at `path`, each past its first `prices` event (if the path
    sends one)."""
    clients = [Events(service.url + path) for _ in range(count)]
    try:
        for client in clients:
            wait_until(lambda c=client: c.status, ROUND, f"{path} open")
            assert client.status == 200
            if path.startswith("/api/"):
                client.wait("prices")
        yield clients
    finally:
        for client in clients:
            client.close()


def quoted(symbol: str, price: float) -> Callable[[Any], bool]:
    """A `quotes` event's data carries `symbol` at `price`."""
    return lambda data: any(c["symbol"] == symbol and c["price"] == price for c in data["coins"])


# -- the tests --------------------------------------------------------------------------------------


def test_each_exchange_streams_its_coins_into_the_prices_and_to_stream_clients(up):
    service, exchange = up.service, up.exchange
    states = streams(service)
    assert sorted(states) == sorted(EXCHANGES)
    for name in EXCHANGES:
        assert states[name]["state"] == "up", states
        assert states[name]["coins"] == STREAM_COINS[name]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", states[name]["since"]), states[name]
        assert states[name]["reason"] is None
    assert re.search(r"ticker_exchange_stream_up\{[^}]*kraken[^}]*\} 1", service.get("/metrics").text)

    with listening(service) as (client,):
        ticks = {
            name: round(POLLED[symbol] * (1.01 + n / 1000), 4) for n, (name, (symbol, _)) in enumerate(OWN.items())
        }
        for name, (symbol, pair) in OWN.items():
            sent = time.monotonic()
            exchange.tick(name, pair, ticks[name], 2.5)
            arrived = client.wait("quotes", quoted(symbol, ticks[name]), timeout=AT_ONCE)
            assert arrived - sent < AT_ONCE
        (_, event), *_ = client.named("quotes")
        assert event["currency"] == "usd"
    expected = {symbol: (ticks[name], name, 2.5) for name, (symbol, _) in OWN.items()}
    now = wait_until(
        lambda: (
            (c := coins(service)) and all((c[s]["price"], c[s]["source"]) == e[:2] for s, e in expected.items()) and c
        ),
        ROUND,
        "each tick in the prices",
    )
    for symbol, (_, _, change) in expected.items():
        assert now[symbol]["change_24h_pct"] == pytest.approx(change, abs=0.01)
    assert now["WAVES"]["source"] == now["ARRR"]["source"] == "coingecko"  # listed by no exchange


def test_one_connection_per_exchange_however_many_clients(up):
    service, exchange = up.service, up.exchange
    attempts = {name: len(exchange.attempts(name)) for name in EXCHANGES}
    paths = ["/api/v1/prices", "/widget", "/widget?coins=BTC,ETH&layout=table", "/api/v1/prices/BTC", "/readyz"]

    with listening(service, count=50) as clients, ThreadPoolExecutor(16) as pool, httpx.Client() as http:
        price = round(POLLED["BTC"] * 1.013, 2)
        exchange.tick("kraken", "BTC/USD", price, 1.0)
        for client in clients:  # one tick, every client
            client.wait("quotes", quoted("BTC", price))
        statuses = list(pool.map(lambda i: http.get(service.url + paths[i % len(paths)]).status_code, range(200)))
        assert statuses == [200] * 200
        with listening(service, "/widget/stream", count=5):
            time.sleep(0.5)
        assert {name: len(exchange.connections(name, open_only=True)) for name in EXCHANGES} == dict.fromkeys(
            EXCHANGES, 1
        )
    assert {name: len(exchange.attempts(name)) for name in EXCHANGES} == attempts  # no visitor opened one


@pytest.mark.parametrize(
    ("name", "drop", "reason"),
    [
        ("kraken", {"abrupt": True}, "connection lost"),
        ("binance", {"code": 1001, "reason": "going away"}, "closed by exchange: 1001 going away"),
    ],
    ids=["kraken-abrupt", "binance-close-1001"],
)
def test_a_dropped_stream_falls_back_to_the_poller_and_reconnects(up, name, drop, reason):
    service, exchange = up.service, up.exchange
    symbol, pair = OWN[name]
    price = round(POLLED[symbol] * 1.02, 4)
    exchange.tick(name, pair, price, 3.0)
    wait_until(lambda: coins(service)[symbol]["price"] == price, ROUND, "the tick")
    ceiling = backoff_ceiling(exchange, name)
    # Nothing answers for a while (as when the exchange is away): the stream stays down and the poller serves.
    exchange.refuse_handshakes(name, 503, retry_after=None)
    dropped = time.monotonic()
    exchange.drop(name, **drop)

    state = wait_until(lambda: (s := streams(service)[name])["state"] == "down" and s, AT_ONCE, "down")
    assert state["reason"] and state["coins"] == STREAM_COINS[name]
    wait_until(lambda: f"stream {name} down: {reason}" in service.log.read_text(), AT_ONCE, "the reason logged")
    coin = wait_until(lambda: (c := coins(service)[symbol])["source"] == "coingecko" and c, ROUND, "the poller")
    assert coin["price"] == POLLED[symbol]
    retried = wait_until(
        lambda: [a for a in exchange.attempts(name) if a.at > dropped], 3 * ceiling + AT_ONCE, "a retry"
    )
    assert retried[0].at - dropped < 3 * ceiling  # the first retry within the backoff
    assert all(a.status == 503 for a in retried)

    exchange.accept_handshakes(name)
    last = exchange.attempts(name)[-1].at
    ceiling = backoff_ceiling(exchange, name)
    wait_until(lambda: len(exchange.connections(name, open_only=True)) == 1, 3 * ceiling + AT_ONCE, "reconnected")
    assert exchange.connections(name)[-1].at - last < 3 * ceiling
    wait_until(lambda: streams(service)[name]["state"] == "up", ROUND, "up again (Binance: at its first tick)")
    # Subscribed again; the exchange's snapshot (Kraken) or next mini ticker (Binance) puts the coin back.
    wait_until(lambda: (c := coins(service)[symbol])["source"] == name and c["price"] == price, ROUND, "streamed")
    assert sorted(exchange.connections(name)[-1].pairs) == sorted(exchange.connections(name)[0].pairs)


def test_a_silent_stream_is_replaced_after_its_silence_deadline(up):
    """Coinbase's deadline is 10 s (heartbeats every second; CoinbaseFeed.silence_seconds): nothing configures
    it, so this test takes that long."""
    service, exchange = up.service, up.exchange
    deadline = 10.0
    before = len(exchange.connections("coinbase"))
    silenced = time.monotonic()
    exchange.silence("coinbase", pings=False)  # no frames, and nothing read: WebSocket pings go unanswered too
    try:
        time.sleep(deadline - 3.0)  # the deadline runs from the last heartbeat, at most a second or two back
        assert streams(service)["coinbase"]["state"] == "up"  # not replaced before its deadline
        assert len(exchange.connections("coinbase")) == before
        wait_until(lambda: len(exchange.connections("coinbase")) > before, 3 * deadline, "a new connection")
        replaced = exchange.connections("coinbase")[-1].at - silenced
        assert deadline - 3.0 < replaced < deadline + 3 * backoff_ceiling(exchange, "coinbase")
        assert "stream coinbase down: silent for 10 s" in service.log.read_text()
    finally:
        exchange.resume("coinbase")
    symbol, pair = OWN["coinbase"]
    price = round(POLLED[symbol] * 0.99, 4)
    exchange.tick("coinbase", pair, price, -1.0)  # the new connection's first tick
    wait_until(lambda: (c := coins(service)[symbol])["source"] == "coinbase" and c["price"] == price, ROUND, "back")
    assert streams(service)["coinbase"]["state"] == "up"
    assert len(exchange.connections("coinbase", open_only=True)) == 1


def test_nonsense_is_replaced_and_implausible_ticks_never_reach_the_prices(up):
    service, exchange = up.service, up.exchange
    with listening(service) as (client,):
        # A frame that is not what Coinbase documents: the connection is replaced; ETH keeps its last good price.
        eth = coins(service)["ETH"]["price"]
        ceiling = backoff_ceiling(exchange, "coinbase")
        before = len(exchange.connections("coinbase"))
        sent = time.monotonic()
        exchange.malformed("coinbase", '{"type": "ticker", "product_id": "ETH-USD", "price": "30')
        wait_until(
            lambda: "stream coinbase down: coinbase: frame is not JSON" in service.log.read_text(), AT_ONCE, "down"
        )
        wait_until(lambda: len(exchange.connections("coinbase")) > before, 3 * ceiling, "replaced")
        assert exchange.connections("coinbase")[-1].at - sent < 3 * ceiling
        exchange.send(
            "coinbase", '{"type": "ticker", "product_id": "ETH-USD", "price": "Infinity", "sequence": 10000000000}'
        )
        wait_until(lambda: "price 'Infinity' is not a number" in service.log.read_text(), AT_ONCE, "replaced again")

        # Implausible ticks: a price of 0 is rejected, a jump to 100x held (a stream never confirms its own
        # jump): while held, BTC goes back to the poller, whose providers disagree with the jump.
        btc = coins(service)["BTC"]["price"]
        exchange.tick("kraken", "BTC/USD", 0.0, 1.0)
        exchange.tick("kraken", "BTC/USD", btc * 100, 1.0)
        rounds_later(service, 2)
        exchange.tick("kraken", "BTC/USD", btc * 100, 1.0)  # the same stream again, a round later: still held
        rounds_later(service, 1)
        assert (coins(service)["BTC"]["price"], coins(service)["BTC"]["source"]) == (POLLED["BTC"], "coingecko")
        good = round(btc * 1.001, 2)
        exchange.tick("kraken", "BTC/USD", good, 1.0)  # the stream itself was fine all along
        client.wait("quotes", quoted("BTC", good))
        wait_until(lambda: coins(service)["BTC"]["price"] == good, ROUND, "the next good tick")
        all_up(service, exchange)
    shown = {(c["symbol"], c["price"]) for _, data in client.named("quotes") for c in data["coins"]}
    shown |= {(c["symbol"], c["price"]) for _, data in client.named("prices") for c in data["coins"]}
    assert {p for s, p in shown if s == "BTC"} <= {btc, good, POLLED["BTC"]}
    assert {p for s, p in shown if s == "ETH"} <= {eth, POLLED["ETH"]}


def test_the_default_widget_gets_the_new_btc_row_after_a_tick(up):
    service, exchange = up.service, up.exchange
    page = service.get("/widget").text
    found = re.search(r'data-live="([^"]+)"', page)
    assert found, page

    def btc_row(data: Any) -> str | None:
        row = re.search(r'<li[^>]*data-k="BTC".*?</li>', data["html"], re.S)
        return row.group(0) if row else None

    with listening(service, html.unescape(found.group(1))) as (client,):
        sent = time.monotonic()
        exchange.tick("kraken", "BTC/USD", 91876.54, 1.25)
        arrived = client.wait("rows", lambda data: "$91,876.54" in (btc_row(data) or ""), timeout=AT_ONCE)
        assert arrived - sent < AT_ONCE
    (row,) = [btc_row(data) for at, data in client.named("rows") if at == arrived]
    assert row is not None and "▲ 1.25%" in row and "91,876.54 US dollars, up 1.25 percent" in row, row
    wait_until(lambda: "$91,876.54" in service.get("/widget").text, ROUND, "the page after the next round")


def test_retry_after_on_the_handshake_is_obeyed_and_sigterm_closes_every_stream(tmp_path, upstream):
    """Its own service (it ends with SIGTERM): Kraken refuses the first handshake with 429 and Retry-After."""
    hold = 3.0
    upstream.serve_default_coins()
    with FakeExchange() as exchange:
        for name, (symbol, pair) in OWN.items():
            exchange.tick(name, pair, POLLED[symbol], 0.5)
        exchange.refuse_handshakes("kraken", 429, retry_after=f"{hold:g}")
        service = Service(live_config(tmp_path, upstream, exchange), free_port())
        try:
            service.wait_ready()
            wait_until(lambda: exchange.attempts("kraken"), ROUND, "the first handshake")
            exchange.accept_handshakes("kraken")
            wait_until(
                lambda: streams(service)["kraken"]["reason"] == "handshake refused: HTTP 429", AT_ONCE, "why down"
            )
            all_up(service, exchange, timeout=3 * hold)
            refused, accepted = exchange.attempts("kraken")
            assert refused.status == 429 and accepted.status == 101
            assert hold - 0.05 <= accepted.at - refused.at < hold + 3 * BACKOFF_BASE  # not a moment before it
            with listening(service, count=3) as clients, listening(service, "/widget/stream", count=2) as rows:
                service.proc.send_signal(signal.SIGTERM)  # every stream is held open here
                signalled = time.monotonic()
                code = service.proc.wait(timeout=10)
                stopped = time.monotonic() - signalled
                for client in clients + rows:
                    assert client.ended.wait(5)
        finally:
            if service.proc.poll() is None:
                service.proc.kill()
                service.proc.wait()
            service.client.close()
        log = service.log.read_text()
        assert code == 0 and stopped < 2.0, f"stopped after {stopped:.2f} s\n{log}"
        assert [client.ending for client in clients + rows] == ["clean"] * 5
        for name in EXCHANGES:  # the exchange saw each connection closed, with a close frame
            (connection,) = exchange.connections(name)[-1:]
            assert connection.closed_at is not None and connection.closed_at - signalled < 2.0, name
            assert connection.close_code in (1000, 1001), (name, connection.close_code)
        for word in ("ERROR", "Traceback"):
            assert word not in log, log
