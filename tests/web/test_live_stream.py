"""Live quotes reach browsers: `quotes` on /api/v1/stream and `rows` on /widget/stream, from a hand-fed hub."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from asgi_lifespan import LifespanManager

from tests.conftest import NOW, FakeClock, app_client, quote, settings_from, snapshot_of, until
from ticker.live.hub import LiveQuotes, StreamState
from ticker.models import ProviderStatus, Quote, Snapshot
from ticker.render.widget import WidgetRenderer
from ticker.runtime import create_app
from ticker.store import SnapshotStore
from ticker.web.stream import EventStream

LIVE = """
[market]
coins = ["BTC", "ETH", "XNO"]
currencies = ["usd", "eur"]
[live]
enabled = true
max_updates_per_second = {rate}
"""


def snapshot() -> Snapshot:
    snap = snapshot_of(
        quote("BTC", 90917.04, change=1.64),
        quote("BTC", 84123.55, currency="eur", change=1.7),
        quote("ETH", 3021.5512, change=-2.31),
        quote("XNO", 0.9123, change=0.5),
    )
    return Snapshot(NOW, snap.quotes, {"coingecko": ProviderStatus("ok", NOW)})


def tick(symbol: str, price: float, change: float = 2.0, *, after: float = 1.0) -> Quote:
    return Quote(symbol, "usd", price, change, NOW + timedelta(seconds=after), "kraken")


class Sse:
    """One event-stream client straight into the ASGI app: the events as they arrive, and leaving at will."""

    def __init__(
        self, app: Any, path: str, query: str = "", *, address: str = "127.0.0.1", method: str = "GET"
    ) -> None:
        self.app, self.path, self.query, self.address, self.method = app, path, query, address, method
        self.headers: dict[str, str] = {}
        self.status = 0
        self.events: list[tuple[str, str]] = []  # (event, data)
        self.times: list[float] = []  # time.monotonic() of each event's arrival
        self.chunks: list[bytes] = []
        self.ended = anyio.Event()
        self.gone = anyio.Event()

    async def run(self) -> None:
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await self.gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
                return
            body = message.get("body", b"")
            self.chunks.append(body)
            for block in body.decode().split("\n\n"):
                fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
                if "event" in fields:
                    self.events.append((fields["event"], fields["data"]))
                    self.times.append(time.monotonic())
            if not message.get("more_body", False):
                self.ended.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": self.method,
            "scheme": "http",
            "path": self.path,
            "raw_path": self.path.encode(),
            "root_path": "",
            "query_string": self.query.encode(),
            "headers": [(b"host", b"testserver")],
            "client": (self.address, 50000),
            "server": ("testserver", 80),
        }
        await self.app(scope, receive, send)
        self.ended.set()

    def named(self, event: str) -> list[Any]:
        return [json.loads(data) for name, data in self.events if name == event]

    async def wait(self, event: str, count: int = 1) -> Any:
        await until(lambda: len(self.named(event)) >= count, f"{count} {event} event(s) on {self.path}")
        return self.named(event)[count - 1]


class Tasks:
    """Background tasks of one test (asyncio: a task group cannot span a fixture's setup and teardown)."""

    def __init__(self) -> None:
        self.running: list[asyncio.Task[None]] = []

    def start_soon(self, run: Callable[[], Awaitable[None]]) -> None:
        self.running.append(asyncio.ensure_future(run()))


@pytest.fixture
async def tasks() -> AsyncIterator[Tasks]:
    started = Tasks()
    yield started
    for task in started.running:
        task.cancel()
    await asyncio.gather(*started.running, return_exceptions=True)


def build(tmp_path: Path, *, rate: float = 4.0, enabled: bool = True, clock: FakeClock | None = None) -> Any:
    settings = settings_from(
        tmp_path, LIVE.format(rate=rate).replace("enabled = true", f"enabled = {str(enabled).lower()}")
    )
    store = SnapshotStore()
    store._set_current(snapshot())
    app = create_app(settings, store=store, clock=clock or FakeClock())
    app.state.store = store
    return app


def hub_of(app: Any) -> LiveQuotes:
    stream = next(route.endpoint for route in app.routes if route.name == "stream")
    assert isinstance(stream, EventStream) and stream.live is not None
    return stream.live.hub


def feed(app: Any, *ticks: Quote) -> None:
    hub = hub_of(app)
    hub.set_stream("kraken", StreamState("up", NOW, ("BTC", "ETH", "XNO")))
    assert hub.apply(list(ticks)), "the hub took no tick"


async def open_stream(tasks: Tasks, app: Any, path: str, query: str = "", *, address: str = "127.0.0.1") -> Sse:
    client = Sse(app, path, query, address=address)
    tasks.start_soon(client.run)
    first = path == "/api/v1/stream"  # prices at once; /widget/stream says nothing until something changes
    await until(lambda: (client.events or not first) and client.status or client.ended.is_set(), f"{path} open")
    return client


async def taken_in(app: Any) -> None:
    """The poller's next round: the hub's quotes land in the snapshot, as the lead's poller will do."""
    store: SnapshotStore = app.state.store
    current = store.current
    assert current is not None
    await store.put(replace(current, quotes={**current.quotes, **hub_of(app).latest()}))


async def test_quotes_carry_the_changed_coins_exactly_as_prices_will_show_them(tmp_path, tasks):
    app = build(tmp_path)
    sse = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC,ETH")
    assert [name for name, _ in sse.events] == ["prices"]  # nothing live yet: no catch-up
    feed(app, tick("BTC", 91000.5, 1.9))
    event = await sse.wait("quotes")
    assert event["currency"] == "usd"
    assert [coin["symbol"] for coin in event["coins"]] == ["BTC"]
    assert event["coins"][0]["price"] == 91000.5 and event["coins"][0]["source"] == "kraken"
    await taken_in(app)
    async with app_client(app) as client:
        prices = (await client.get("/api/v1/prices?coins=BTC,ETH")).json()
    assert event["coins"][0] == prices["coins"][0]
    sse.gone.set()


async def test_only_the_selection_and_its_currency_get_quotes(tmp_path, tasks):
    app = build(tmp_path)
    eth = await open_stream(tasks, app, "/api/v1/stream", "coins=ETH")
    eur = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC&currency=eur")
    both = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC,ETH")
    feed(app, tick("BTC", 91000.5))
    await both.wait("quotes")
    await anyio.sleep(0.2)
    assert eth.named("quotes") == [] and eur.named("quotes") == []
    feed(app, tick("ETH", 3030.0, after=2))
    assert [c["symbol"] for c in (await eth.wait("quotes"))["coins"]] == ["ETH"]
    assert eur.named("quotes") == []


async def test_updates_are_rate_limited_and_merged(tmp_path, tasks):
    app = build(tmp_path, rate=5)  # one quotes event per 0.2 s
    sse = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC,ETH,XNO")
    feed(app, tick("BTC", 91000.0))
    await sse.wait("quotes")
    feed(app, tick("BTC", 91001.0, after=2))
    feed(app, tick("ETH", 3030.0, after=2))
    feed(app, tick("BTC", 91002.0, after=3))
    merged = await sse.wait("quotes", 2)
    assert {c["symbol"]: c["price"] for c in merged["coins"]} == {"BTC": 91002.0, "ETH": 3030.0}
    assert sse.times[-1] - sse.times[-2] >= 0.18  # the gap (0.2 s, less timer slack)
    await anyio.sleep(0.3)
    assert len(sse.named("quotes")) == 2  # three changes, one merged event


async def test_a_client_connecting_late_gets_what_the_snapshot_lacks(tmp_path, tasks):
    app = build(tmp_path)
    feed(app, tick("ETH", 3030.0))
    sse = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC,ETH")
    await sse.wait("quotes")
    assert [name for name, _ in sse.events] == ["prices", "quotes"]
    assert [c["symbol"] for c in sse.named("quotes")[0]["coins"]] == ["ETH"]
    await taken_in(app)  # once the snapshot has it, a new client needs no catch-up
    late = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC,ETH")
    await anyio.sleep(0.1)
    assert [name for name, _ in late.events] == ["prices"]


async def test_without_live_streams_there_are_no_quotes_and_no_widget_stream(tmp_path, tasks):
    app = build(tmp_path, enabled=False)
    sse = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC")
    assert sse.status == 200 and [name for name, _ in sse.events] == ["prices"]
    async with app_client(app) as client:
        widget = await client.get("/widget?coins=BTC")
        stream = await client.get("/widget/stream?coins=BTC")
    assert "data-live" not in widget.text
    assert stream.status_code == 404 and "live updates are not enabled" in stream.text


@pytest.mark.parametrize("query", ["coins=NOPE", "layout=sideways", "coins=BTC&currency=xyz", "locale=%3Cb%3E"])
async def test_a_bad_widget_stream_query_gets_the_widgets_400_page(tmp_path, query):
    app = build(tmp_path)
    async with app_client(app) as client:
        stream = await client.get(f"/widget/stream?{query}")
        page = await client.get(f"/widget?{query}")
    assert stream.status_code == page.status_code == 400
    assert stream.text == page.text and stream.headers["content-type"].startswith("text/html")


async def test_shutdown_ends_open_streams(tmp_path):
    app = build(tmp_path)
    async with anyio.create_task_group() as group:
        async with LifespanManager(app) as manager:
            prices = Sse(manager.app, "/api/v1/stream", "coins=BTC")
            rows = Sse(manager.app, "/widget/stream", "coins=BTC")
            group.start_soon(prices.run)
            group.start_soon(rows.run)
            await until(lambda: prices.events and rows.status == 200, "both streams open")
        with anyio.fail_after(2):
            await prices.ended.wait()
            await rows.ended.wait()
    assert prices.chunks[-1] == b"" and rows.chunks[-1] == b""


def element(page: str, symbol: str, tag: str) -> str:
    match = re.search(rf'<{tag}(?: class="[^"]*")? data-k="{symbol}">.*?</{tag}>', page, re.S)
    assert match, f"no {tag} for {symbol}"
    return match.group(0)


@pytest.mark.parametrize(
    ("query", "tag"),
    [
        ("coins=BTC,ETH&layout=list", "li"),
        ("coins=BTC,ETH&layout=compact&locale=de_DE", "li"),
        ("coins=BTC,ETH&layout=ticker", "li"),
        ("coins=BTC,ETH&layout=table", "tr"),
        ("coins=BTC,ETH&layout=table&currency=usd,eur&locale=ar", "tr"),
        ("coins=BTC,ETH&layout=list&currency=usd,eur", "li"),
    ],
)
async def test_widget_rows_are_the_pages_own_markup_after_the_same_change(tmp_path, tasks, query, tag):
    app = build(tmp_path)
    async with app_client(app) as client:
        before = (await client.get(f"/widget?{query}")).text
    assert 'data-live="/widget/stream?coins=BTC,ETH&amp;' in before
    sse = await open_stream(tasks, app, "/widget/stream", query)
    feed(app, tick("BTC", 91234.5, 3.25))
    html = (await sse.wait("rows"))["html"]
    await taken_in(app)
    async with app_client(app) as client:
        page = (await client.get(f"/widget?{query}")).text
    assert html.strip() == element(page, "BTC", tag)
    assert element(page, "BTC", tag) != element(before, "BTC", tag)
    assert 'data-k="ETH"' not in html


@pytest.mark.parametrize("path", ["/widget", "/widget/fragment"])
async def test_the_page_and_its_refresh_show_a_live_quote_before_the_next_snapshot(tmp_path, path):
    # widget.js replaces its rows with /widget/fragment every refresh: a page made from the snapshot alone
    # would put the last polled price back over a newer live one until the next round.
    app = build(tmp_path)
    async with app_client(app) as client:
        before = await client.get(f"{path}?coins=BTC,ETH")
        assert "$90,917.04" in before.text
        feed(app, tick("BTC", 91234.5, 3.25))
        after = await client.get(f"{path}?coins=BTC,ETH")
        assert "$91,234.50" in after.text and "$90,917.04" not in after.text
        assert after.headers["etag"] != before.headers["etag"]
        again = await client.get(f"{path}?coins=BTC,ETH", headers={"if-none-match": after.headers["etag"]})
        assert again.status_code == 304  # still one render per change, not per request


async def test_the_json_shows_a_live_quote_before_the_next_snapshot(tmp_path):
    app = build(tmp_path)
    async with app_client(app) as client:
        feed(app, tick("BTC", 91234.5, 3.25))
        prices = (await client.get("/api/v1/prices?coins=BTC,ETH")).json()
        one = (await client.get("/api/v1/prices/BTC")).json()
    assert [(c["symbol"], c["price"], c["source"]) for c in prices["coins"]] == [
        ("BTC", 91234.5, "kraken"),
        ("ETH", 3021.5512, "coingecko"),
    ]
    assert prices["generated_at"] == "2026-11-27T18:20:00Z"  # still the snapshot's time
    assert (one["price"], one["change_24h_pct"], one["source"]) == (91234.5, 3.25, "kraken")


async def test_widgets_in_another_first_currency_get_no_live_url(tmp_path):
    app = build(tmp_path)
    async with app_client(app) as client:
        page = await client.get("/widget?coins=BTC&currency=eur,usd")
    assert page.status_code == 200 and "data-live" not in page.text


async def test_two_hundred_clients_each_get_the_update_built_once(tmp_path, tasks):
    app = build(tmp_path)
    clients = [Sse(app, "/api/v1/stream", "coins=BTC,ETH", address=f"10.0.{n // 100}.{n % 100}") for n in range(200)]
    for client in clients:
        tasks.start_soon(client.run)
    await until(lambda: all(c.events for c in clients), "every client's prices", timeout=10)
    feed(app, tick("BTC", 91000.5))
    await until(lambda: all(c.named("quotes") for c in clients), "every client's quotes", timeout=10)
    assert {json.dumps(c.named("quotes")) for c in clients} == {json.dumps(clients[0].named("quotes"))}
    stream = next(route.endpoint for route in app.routes if route.name == "stream")
    assert stream.live.builds == 2  # the (empty) catch-up at connect and the update, each once for all 200


class StuckSse(Sse):
    """A client that stops reading after its first event: its sends block, as on a full socket buffer."""

    async def run(self) -> None:
        stuck = anyio.Event()
        app = self.app

        async def stuck_app(scope: Any, receive: Any, send: Any) -> None:
            async def blocking_send(message: dict[str, Any]) -> None:
                if self.events:
                    await stuck.wait()  # never set
                await send(message)

            await app(scope, receive, blocking_send)

        self.app = stuck_app
        await super().run()


async def test_a_client_that_stops_reading_holds_up_no_one(tmp_path, tasks):
    app = build(tmp_path)
    stuck = StuckSse(app, "/api/v1/stream", "coins=BTC")
    tasks.start_soon(stuck.run)
    await until(lambda: stuck.events, "the stuck client's prices")
    reader = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC")
    feed(app, tick("BTC", 91000.5))
    assert (await reader.wait("quotes"))["coins"][0]["price"] == 91000.5
    feed(app, tick("BTC", 91001.5, after=2))
    assert (await reader.wait("quotes", 2))["coins"][0]["price"] == 91001.5
    assert [name for name, _ in stuck.events] == ["prices"]


async def test_a_quiet_stream_gets_a_keepalive_comment_after_the_keepalive_period(tmp_path, tasks):
    app = build(tmp_path)
    endpoint = next(route.endpoint for route in app.routes if route.name == "stream")
    quiet = EventStream(endpoint._endpoint, app.state.store, anyio.Event(), live=endpoint.live, keepalive=0.4)
    sse = await open_stream(tasks, quiet, "/api/v1/stream", "coins=BTC")
    opened = sse.times[0]
    await anyio.sleep(0.25)
    feed(app, tick("BTC", 91000.5))  # an event postpones the next keep-alive
    await sse.wait("quotes")
    await until(lambda: b": keep-alive\n\n" in sse.chunks, "a keep-alive", timeout=2)
    keepalive_at = time.monotonic()
    assert keepalive_at - sse.times[-1] >= 0.35 and keepalive_at - opened >= 0.6
    names = [name for name, _ in sse.events]
    # (a `prices` may come again when a coin's stale state is looked at: its body now carries the live quote)
    assert names[0] == "prices" and names.count("quotes") == 1


async def test_metrics_count_stream_clients_and_live_events(tmp_path, tasks):
    app = build(tmp_path)
    sse = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC")
    feed(app, tick("BTC", 91000.5))
    await sse.wait("quotes")
    async with app_client(app) as client:
        text = (await client.get("/metrics")).text
    assert "ticker_stream_clients 1.0" in text
    assert 'ticker_stream_events_total{event="quotes"} 1.0' in text
    sse.gone.set()
    await sse.ended.wait()
    async with app_client(app) as client:
        assert "ticker_stream_clients 0.0" in (await client.get("/metrics")).text


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_widget_js_parses_as_served(tmp_path):
    script = tmp_path / "widget.js"
    script.write_text(WidgetRenderer.JS)  # the file's lines joined, as the page inlines (and hashes) it
    subprocess.run(["node", "--check", str(script)], check=True)


def test_the_highlight_fades_and_stays_still_for_reduced_motion():
    css = WidgetRenderer.CSS
    assert ".tk-hl{animation:tk-hl 1s ease-out}" in css
    assert "@media (prefers-reduced-motion:reduce){.tk-hl{animation:none}}" in css
    assert 'new EventSource(s.dataset.live).addEventListener("rows"' in WidgetRenderer.JS
    assert "aria-live" not in WidgetRenderer.JS


async def test_readyz_and_metrics_say_which_exchange_streams_are_up(tmp_path):
    app = build(tmp_path)
    hub = hub_of(app)
    hub.set_stream("kraken", StreamState("up", NOW, ("BTC", "ETH")))
    hub.set_stream("binance", StreamState("down", NOW, ("XNO",), "closed by exchange: 1008 Too many requests"))
    hub.apply([tick("BTC", 91000.5)])
    async with app_client(app) as client:
        ready = (await client.get("/readyz")).json()
        text = (await client.get("/metrics")).text
    assert ready["streams"] == {
        "binance": {
            "state": "down",
            "since": "2026-11-27T18:20:00Z",
            "coins": ["XNO"],
            "reason": "closed by exchange: 1008 Too many requests",
        },
        "kraken": {"state": "up", "since": "2026-11-27T18:20:00Z", "coins": ["BTC", "ETH"], "reason": None},
    }
    assert 'ticker_exchange_stream_up{exchange="kraken"} 1.0' in text
    assert 'ticker_exchange_stream_up{exchange="binance"} 0.0' in text
    assert 'ticker_exchange_stream_coins{exchange="kraken"} 2.0' in text
    assert "ticker_exchange_stream_ticks_total 1.0" in text


async def test_without_live_readyz_has_no_streams(tmp_path):
    app = build(tmp_path, enabled=False)
    async with app_client(app) as client:
        assert "streams" not in (await client.get("/readyz")).json()
        assert "ticker_exchange_stream" not in (await client.get("/metrics")).text
