"""One client cannot hog the event streams: a cap per client address, a cap on live variants, HEAD at once."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import httpx
from starlette.datastructures import QueryParams

from tests.conftest import FakeClock, settings_from, until
from tests.web.test_live_stream import LIVE, Sse, Tasks, build, feed, open_stream, snapshot, taken_in, tick
from tests.web.test_live_stream import tasks as tasks  # the fixture
from tests.web.test_metrics import http_count, value
from ticker.runtime import create_app
from ticker.store import SnapshotStore
from ticker.web.stream import MAX_LIVE_VARIANTS, MAX_STREAMS_PER_CLIENT, RETRY_AFTER_SECONDS, EventStream

LAYOUTS = ("list", "compact", "ticker", "table")
LOCALES = ("en", "de", "fr", "es", "it", "nl", "pl", "ja")
COINS = ("BTC", "ETH", "XNO", "BTC,ETH", "BTC,XNO", "ETH,XNO", "BTC,ETH,XNO")


def widget_queries(count: int) -> list[str]:
    """`count` widget queries that are each a variant of its own (layouts × locales × coin subsets)."""
    combos = itertools.product(LAYOUTS, LOCALES, COINS)
    return [
        f"coins={coins}&locale={locale}&layout={layout}" for layout, locale, coins in itertools.islice(combos, count)
    ]


def client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def refused(app: Any, address: str, path: str) -> httpx.Response:
    """The answer to a GET that should be refused; fails (rather than hangs) when a stream opens instead."""
    with anyio.fail_after(3):
        async with client_from(app, address) as client:
            return await client.get(path)


def endpoint(app: Any, name: str) -> EventStream:
    stream = next(route.endpoint for route in app.routes if route.name == name)
    assert isinstance(stream, EventStream)
    return stream


async def metrics(app: Any) -> str:
    async with client_from(app, "10.9.9.9") as client:
        return (await client.get("/metrics")).text


async def test_one_address_gets_429_past_its_streams_and_others_go_on(tmp_path, tasks: Tasks):
    app = build(tmp_path)
    half = MAX_STREAMS_PER_CLIENT // 2
    mine = [
        await open_stream(
            tasks,
            app,
            "/api/v1/stream",
            "coins=BTC",
        )
        for _ in range(half)
    ]
    mine += [await open_stream(tasks, app, "/widget/stream", "coins=BTC") for _ in range(MAX_STREAMS_PER_CLIENT - half)]
    assert {sse.status for sse in mine} == {200}
    api = await refused(app, "127.0.0.1", "/api/v1/stream?coins=BTC")
    widget = await refused(app, "127.0.0.1", "/widget/stream?coins=BTC&locale=de")
    assert api.status_code == widget.status_code == 429
    assert api.headers["retry-after"] == widget.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert "too many open event streams" in api.json()["error"]
    assert widget.headers["content-type"].startswith("text/html") and "<html" in widget.text.lower()
    other = await open_stream(tasks, app, "/api/v1/stream", "coins=BTC", address="10.0.0.2")
    assert other.status == 200 and other.named("prices")
    text = await metrics(app)
    assert http_count(text, "stream", 429) == http_count(text, "widget_stream", 429) == 1
    assert value(text, "ticker_stream_clients") == MAX_STREAMS_PER_CLIENT + 1

    mine[0].gone.set()  # one leaves: a place is free again
    await until(lambda: mine[0].ended.is_set(), "the stream that left ends")
    again = await open_stream(tasks, app, "/api/v1/stream", "coins=ETH")
    assert again.status == 200 and again.named("prices")


async def test_widget_variants_past_the_cap_get_503_and_served_ones_stay_live(tmp_path, tasks: Tasks):
    app = build(tmp_path)
    queries = widget_queries(MAX_LIVE_VARIANTS + 1)
    served = [
        await open_stream(tasks, app, "/widget/stream", query, address=f"10.1.0.{n}")
        for n, query in enumerate(queries[:-1])
    ]
    assert {sse.status for sse in served} == {200}
    busy = await refused(app, "10.2.0.1", f"/widget/stream?{queries[-1]}")
    page = await refused(app, "10.2.0.1", f"/widget?{queries[-1]}")
    assert busy.status_code == 503 and busy.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    assert busy.headers["content-type"].startswith("text/html") and "too many different live widgets" in busy.text
    assert page.status_code == 200  # the widget itself, and its periodic refresh, are unaffected
    same = await open_stream(tasks, app, "/widget/stream", queries[0], address="10.2.0.2")
    assert same.status == 200  # a variant already served takes more clients

    feed(app, tick("BTC", 91000.5))
    btc = [sse for sse, query in zip(served, queries, strict=False) if "BTC" in query.split("&")[0]]
    await until(lambda: all(sse.named("rows") for sse in [*btc, same]), "rows on every served BTC variant")
    assert http_count(await metrics(app), "widget_stream", 503) == 1

    served[1].gone.set()  # a variant's last client leaves: a new variant fits again
    await until(lambda: served[1].ended.is_set(), "the stream that left ends")
    late = await open_stream(tasks, app, "/widget/stream", queries[-1], address="10.2.0.3")
    assert late.status == 200


def build_five(tmp_path: Any) -> Any:
    """build(), with five coins: enough API variants (coin lists in order × currency) to pass the cap."""
    settings = settings_from(tmp_path, LIVE.format(rate=4.0).replace('"XNO"]', '"XNO", "LTC", "DOGE"]'))
    store = SnapshotStore()
    store._set_current(snapshot())
    app = create_app(settings, store=store, clock=FakeClock())
    app.state.store = store
    return app


async def test_api_variants_past_the_cap_get_prices_but_no_quotes(tmp_path, tasks: Tasks):
    app = build_five(tmp_path)
    stream = endpoint(app, "stream")
    assert stream.live is not None
    by_variant: dict[str, str] = {}
    for size in (3, 2, 4):
        for coins in itertools.permutations(("BTC", "ETH", "XNO", "LTC", "DOGE"), size):
            query = f"coins={','.join(coins)}&currency=usd"
            by_variant.setdefault(stream.live.variant({}, QueryParams(query)), query)
    queries = list(by_variant.values())
    assert len(queries) > MAX_LIVE_VARIANTS and "BTC" in queries[MAX_LIVE_VARIANTS]
    served = [
        await open_stream(tasks, app, "/api/v1/stream", query, address=f"10.3.0.{n}")
        for n, query in enumerate(queries[:MAX_LIVE_VARIANTS])
    ]
    extra = await open_stream(tasks, app, "/api/v1/stream", queries[MAX_LIVE_VARIANTS], address="10.4.0.1")
    assert extra.status == 200 and extra.named("prices")  # prices still come, live quotes do not

    builds = stream.live.builds
    feed(app, tick("BTC", 91000.5))
    btc = [sse for sse in served if "BTC" in sse.query]
    await until(lambda: all(sse.named("quotes") for sse in btc), "quotes on every served BTC variant")
    await taken_in(app)  # the next snapshot carries the tick: the extra stream gets it as `prices`
    await extra.wait("prices", 2)
    assert not extra.named("quotes")
    prices = {c["symbol"]: c["price"] for c in extra.named("prices")[1]["coins"]}
    assert prices["BTC"] == 91000.5
    assert len(btc) <= stream.live.builds - builds <= MAX_LIVE_VARIANTS  # at most one build per served variant


async def test_head_on_a_stream_answers_its_headers_at_once_and_holds_nothing(tmp_path, tasks: Tasks):
    app = build(tmp_path)
    for path in ("/api/v1/stream", "/widget/stream"):
        heads = [Sse(app, path, "coins=BTC", method="HEAD") for _ in range(MAX_STREAMS_PER_CLIENT + 5)]
        for head in heads:
            tasks.start_soon(head.run)
        await until(lambda heads=heads: all(h.ended.is_set() for h in heads), f"every HEAD {path} ends by itself")
        assert {h.status for h in heads} == {200}
        assert {h.headers["content-type"] for h in heads} == {"text/event-stream; charset=utf-8"}
        assert b"".join(b"".join(h.chunks) for h in heads) == b""
    assert value(await metrics(app), "ticker_stream_clients") == 0
    assert (await open_stream(tasks, app, "/api/v1/stream", "coins=BTC")).status == 200  # no place was taken
