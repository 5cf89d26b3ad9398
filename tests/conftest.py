"""Shared test helpers: fixtures from tests/fixtures, settings from TOML text, a fake clock, an app client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.redis_server import RedisServer
from ticker.config import Settings, load_settings
from ticker.models import Quote, Snapshot
from ticker.runtime import create_app
from ticker.store import SnapshotStore

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 27, 18, 20, 0, tzinfo=UTC)


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[Callable[..., Any]]:
    """Build an httpx client for an app whose store holds `snapshot`; the lifespan (poller) does not run."""
    clients: list[httpx.AsyncClient] = []

    async def build(settings: Settings, snapshot: Snapshot | None = None) -> httpx.AsyncClient:
        store = SnapshotStore()
        if snapshot is not None:
            await store.put(snapshot)
        app = create_app(settings, store=store, clock=clock)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        client.store = store  # type: ignore[attr-defined]  # lets a test put a new snapshot
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()


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
