"""Shared test helpers, each in one place.

Fixtures from tests/fixtures, settings from TOML text, a fake clock, quotes and snapshots, respx's
CoinGecko, and three ways to drive the app in process: an httpx client without the lifespan
(`make_client`), one with it (`serving`: the poller polls), and raw ASGI (`asgi_request`: bytes as a
server passes them, and event streams). Real processes are in service.py, fake_upstream.py and
redis_server.py.
"""

from __future__ import annotations

import contextlib
import gzip
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager

from tests.fake_upstream import FakeUpstream
from tests.redis_server import RedisServer
from ticker.config import Settings, load_settings
from ticker.history.base import HistoryStore
from ticker.models import ProviderStatus, Quote, Snapshot
from ticker.runtime import create_app
from ticker.store import SnapshotStore

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 27, 18, 20, 0, tzinfo=UTC)
CG = "https://api.coingecko.com/api/v3"  # CoinGecko's default base URL, as respx routes see it
DEFAULT_COIN_PRICES = "coingecko_simple_price_default_coins.constructed.json"
T = TypeVar("T")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def settings_from(tmp_path: Path, text: str = "") -> Settings:
    """Settings from TOML text written to a file in tmp_path (so relative paths resolve there)."""
    path = tmp_path / "ticker.toml"
    path.write_text(text)
    return load_settings(path)


class FakeClock:
    """A clock the test moves by hand; `sleep` advances it instead of waiting."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        """Seconds since the clock started, for budgets and caches that count in monotonic time."""
        return (self.now - NOW).total_seconds() + 1_000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def quote(
    symbol: str,
    price: float,
    *,
    currency: str = "usd",
    change: float | None = 1.5,
    age: float = 30.0,
    source: str = "coingecko",
    icon_url: str | None = None,
) -> Quote:
    return Quote(symbol, currency, price, change, NOW - timedelta(seconds=age), source, icon_url)


def snapshot_of(*quotes: Quote, generated_at: datetime = NOW) -> Snapshot:
    return Snapshot(generated_at, {(q.symbol, q.currency): q for q in quotes})


# Five coins that show every state a row can be in (see full_snapshot).
FULL_CONFIG = """
[market]
coins = ["BTC", "ETH", "ARRR", { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }, "XNO"]
currencies = ["usd", "eur"]
[poller]
stale_after_seconds = 300
max_stale_seconds = 86400
"""


def full_snapshot() -> Snapshot:
    """For FULL_CONFIG: BTC fresh (usd and eur), ETH stale, ARRR past max_stale, OPENVC static, XNO never fetched."""
    snap = snapshot_of(
        quote("BTC", 90917.04, change=1.64, age=29),
        quote("BTC", 84123.55, currency="eur", change=1.7, age=29),
        quote("ETH", 3021.5512, change=-2.3127, age=400),  # stale
        quote("ARRR", 0.00001234, change=12.5, age=90000),  # older than max_stale
    )
    return Snapshot(NOW, snap.quotes, {"coingecko": ProviderStatus("ok", NOW)})


async def until(check: Callable[[], T | None | Awaitable[T | None]], what: str, timeout: float = 3.0) -> T:
    """The first truthy result of `check()` (awaited if need be), polled; fails naming `what` after `timeout` s."""
    with anyio.move_on_after(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result  # type: ignore[return-value]
            await anyio.sleep(0.005)
    raise AssertionError(f"not within {timeout} s: {what}")


def app_client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client for `app` with its lifespan running, as under uvicorn: the snapshot loads and the poller polls."""
    async with LifespanManager(app) as manager, app_client(manager.app) as client:
        yield client


async def wait_for_price(client: httpx.AsyncClient, symbol: str = "BTC") -> dict[str, Any]:
    """The coin's JSON once a poll has priced it."""

    async def priced() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/v1/prices/{symbol}")).json()
        return body if body["price"] is not None else None

    return await until(priced, f"a price for {symbol}")


class Reply:
    """A response as raw ASGI messages gave it."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.raw_headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.raw_headers if k.lower() == key]

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip()

    @property
    def content(self) -> bytes:
        """The body, gunzipped if it was sent compressed."""
        return gzip.decompress(self.body) if self.header("content-encoding") == "gzip" else self.body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


async def asgi_request(
    app: Any,
    path: str,
    query: bytes = b"",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Reply:
    """One request straight into the ASGI app, with raw bytes in the path, query and headers exactly as a server
    would pass them. An event stream is cut after its first chunk (the client leaves), which httpx's
    ASGITransport cannot do: it waits for the whole body."""
    messages: list[dict[str, Any]] = []
    got_body, asked = anyio.Event(), False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await got_body.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body":
            got_body.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogatepass"),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    with anyio.fail_after(10):
        await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return Reply(start["status"], list(start.get("headers", [])), body)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """Build an httpx client for an app whose store holds `snapshot` (and whose charts read `history`, if
    given); the lifespan (poller) does not run."""
    clients: list[httpx.AsyncClient] = []

    async def build(
        settings: Settings, snapshot: Snapshot | None = None, *, history: HistoryStore | None = None
    ) -> httpx.AsyncClient:
        store = SnapshotStore()
        if snapshot is not None:
            await store.put(snapshot)
        client = app_client(create_app(settings, store=store, clock=clock, history=history))
        client.store = store  # type: ignore[attr-defined]  # lets a test put a new snapshot
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


@dataclass
class CoinGeckoRoutes:
    prices: respx.Route


@pytest.fixture
def coingecko(respx_mock: respx.MockRouter) -> CoinGeckoRoutes:
    """respx's CoinGecko: the 11 default coins at /simple/price, asked in every round. (/coins/markets is side
    work, half an interval after a round: a test that needs it adds the route, since respx fails a test that
    leaves a route uncalled.)"""
    return CoinGeckoRoutes(
        prices=respx_mock.get(f"{CG}/simple/price").respond(200, json=fixture_json(DEFAULT_COIN_PRICES)),
    )


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    """A local fake CoinGecko and CoinPaprika with prices for BTC, ETH and ARRR (see tests/fake_upstream.py)."""
    with FakeUpstream() as fake:
        fake.coingecko.prices = {
            "bitcoin": {"usd": (90917.04, 1.64), "eur": (84123.55, 1.7)},
            "ethereum": {"usd": (3021.5512, -2.3127), "eur": (2795.8, -2.2)},
            "pirate-chain": {"usd": (0.00001234, 12.5), "eur": (0.0000114, 12.4)},
        }
        fake.coinpaprika.prices = {
            "btc-bitcoin": {"usd": (90900.0, 1.5), "eur": (84100.0, 1.6)},
            "eth-ethereum": {"usd": (3020.0, -2.3), "eur": (2795.0, None)},
            "arrr-pirate": {"usd": (0.0000123, 12.0), "eur": (0.0000113, 12.0)},
        }
        yield fake


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, no persistence; the test may stop and restart it."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()
