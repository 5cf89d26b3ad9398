"""/api/v1/history/{symbol} and how /widget/chart is served: the contract's JSON, its errors, and the cache
(ETag and 304; the store read at most once per snapshot and series, whatever the visitors ask).

The store is the memory backend filled with known quotes; a counting wrapper sees every read."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

import anyio
import pytest

from tests.conftest import FULL_CONFIG, NOW, app_client, full_snapshot, settings_from
from ticker.exceptions import HistoryError
from ticker.history.base import MAX_POINTS, Tick
from ticker.history.memory import MemoryHistory
from ticker.models import Candle, Snapshot
from ticker.runtime import create_app
from ticker.store import SnapshotStore

T0 = NOW.timestamp()
DAY = 86_400


class Counting:
    """A HistoryStore that counts `candles` reads (and can be made to fail, or to wait) before the real one."""

    def __init__(self, inner: MemoryHistory) -> None:
        self.inner = inner
        self.reads: list[tuple[str, str, str, float]] = []
        self.failing = False
        self.gate: anyio.Event | None = None

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        self.reads.append((symbol, currency, range, now))
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise HistoryError("history.sqlite3: disk I/O error")
        return await self.inner.candles(symbol, currency, range, now)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def btc_quotes(days: float, every: float = 600.0, currency: str = "usd") -> list[Tick]:
    """BTC every `every` seconds for `days` days up to NOW: 90,000 + a slow wave (known, smooth)."""
    count = int(days * DAY / every)
    return [Tick("BTC", currency, T0 - i * every, 90_000 + 2_000 * math.sin(i / 40)) for i in range(count)]


@pytest.fixture
async def history() -> Counting:
    memory = MemoryHistory()
    await memory.append(btc_quotes(400, every=3600))  # hourly for 400 days
    await memory.append(btc_quotes(2, every=60))  # and every minute for the last two
    await memory.append([Tick("BTC", "eur", T0 - 3600 * i, 84_000.0 + i) for i in range(30)])
    return Counting(memory)


@pytest.fixture
async def client(make_client, tmp_path, history):
    return await make_client(settings_from(tmp_path, FULL_CONFIG), full_snapshot(), history=history)


def points(body: dict) -> list[list[float]]:
    return body["points"]


async def test_the_json_is_exactly_the_contracts(client):
    response = await client.get("/api/v1/history/btc")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"symbol", "currency", "range", "points"}
    assert (body["symbol"], body["currency"], body["range"]) == ("BTC", "usd", "7d")  # the defaults
    times = [at for at, _ in points(body)]
    assert times == sorted(times) and len(times) <= MAX_POINTS
    assert all(isinstance(at, int) and isinstance(price, float) for at, price in points(body))
    assert response.headers["access-control-allow-origin"] == "*"
    assert "max-age=60" in response.headers["cache-control"]


@pytest.mark.parametrize(
    ("range_name", "bucket", "span"),
    [("24h", 300, DAY), ("7d", 1800, 7 * DAY), ("30d", 7200, 30 * DAY), ("1y", DAY, 365 * DAY), ("max", DAY, None)],
)
async def test_each_range_has_its_buckets_and_each_point_is_a_close_at_its_bucket_end(
    client, history, range_name, bucket, span
):
    body = (await client.get(f"/api/v1/history/BTC?range={range_name}")).json()
    got = points(body)
    candles = await history.inner.candles("BTC", "usd", range_name, T0)
    assert body["range"] == range_name and len(got) == len(candles) <= MAX_POINTS
    assert {c.seconds for c in candles} == {bucket}
    assert got[:-1] == [[c.start + c.seconds, c.close] for c in candles[:-1]]
    assert got[-1] == [int(T0), candles[-1].close]  # the bucket still open: as of the snapshot
    assert got[-1][1] == btc_quotes(1, every=60)[0].price  # the latest quote
    assert {c.seconds for c in candles} == {bucket}
    if span is not None:
        assert T0 - span - bucket < got[0][0] - bucket <= T0 - span  # the first bucket holds the range's start
    else:
        assert got[0][0] - bucket <= T0 - 399 * DAY  # everything: the 400 days recorded
    if range_name == "24h":
        assert len(got) == 289  # a quote a minute: every 5-minute bucket, plus the one just begun


async def test_currency_defaults_to_the_first_and_every_configured_one_is_asked_by_name(client):
    eur = (await client.get("/api/v1/history/BTC?currency=EUR&range=24h")).json()
    assert eur["currency"] == "eur" and len(eur["points"]) == 25  # hourly: 24 hours, both ends included
    assert eur["points"][-1] == [int(T0), 84_000.0]  # the quote at the snapshot's time


async def test_no_data_yet_is_an_empty_list(client):
    for url in ("/api/v1/history/ETH", "/api/v1/history/OPENVC?range=max", "/api/v1/history/nano?currency=eur"):
        response = await client.get(url)
        assert response.status_code == 200 and response.json()["points"] == [], url


@pytest.mark.parametrize(
    ("url", "status", "error"),
    [
        ("/api/v1/history/BTC?range=1w", 400, "range: unknown value '1w'; allowed: 24h, 7d, 30d, 1y, max"),
        ("/api/v1/history/BTC?range=", 400, "range: unknown value ''; allowed: 24h, 7d, 30d, 1y, max"),
        ("/api/v1/history/BTC?currency=jpy", 400, "currency: unknown currency 'jpy'; allowed: usd, eur"),
        ("/api/v1/history/DOGE", 404, "unknown coin 'DOGE'; configured: BTC, ETH, ARRR, OPENVC, XNO"),
        ("/api/v1/history/%3Cb%3E", 404, "unknown coin '<b>'; configured: BTC, ETH, ARRR, OPENVC, XNO"),
    ],
)
async def test_bad_queries_get_400_and_unknown_coins_404_as_json(client, url, status, error):
    response = await client.get(url)
    assert response.status_code == status and response.json() == {"error": error}


async def test_history_off_is_404_for_the_json_and_the_chart(make_client, tmp_path):
    settings = settings_from(tmp_path, FULL_CONFIG + '[history]\npath = ""\n')
    client = await make_client(settings, full_snapshot())
    response = await client.get("/api/v1/history/BTC")
    assert response.status_code == 404 and response.json() == {"error": "price history is off on this site"}
    chart = await client.get("/widget/chart?coin=BTC&locale=de_DE")
    assert chart.status_code == 404 and "text/html" in chart.headers["content-type"]
    assert '<html lang="de"' in chart.text and "price history is off" not in chart.text  # in German


async def test_etag_and_304_for_the_json_and_the_chart(client):
    for url in ("/api/v1/history/BTC?range=30d", "/widget/chart?coin=BTC&range=30d"):
        first = await client.get(url)
        etag = first.headers["etag"]
        again = await client.get(url, headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag, url
        assert "last-modified" in first.headers and "stale-if-error" in first.headers["cache-control"]


async def test_the_store_is_read_once_per_snapshot_and_series(client, history):
    urls = [
        "/api/v1/history/BTC?range=24h",
        "/api/v1/history/btc?range=24h&junk=1",
        "/widget/chart?coin=BTC&range=24h",
        "/widget/chart?coin=btc&range=24h&theme=dark",
        "/widget/chart?coin=BTC&range=24h&locale=de_DE",
        "/widget/chart?coin=BTC&range=24h&theme=light&transparent=1",
    ]
    for _ in range(3):
        for url in urls:
            assert (await client.get(url)).status_code == 200, url
    assert history.reads == [("BTC", "usd", "24h", T0)]  # one series and range: one read for every variant
    await client.get("/widget/chart?coin=BTC&range=7d&currency=eur")
    assert len(history.reads) == 2
    later = full_snapshot()
    await client.store.put(Snapshot(NOW + timedelta(minutes=1), later.quotes, later.providers))
    for url in urls:
        await client.get(url)
    assert history.reads[2:] == [("BTC", "usd", "24h", T0 + 60)]  # a new snapshot: read again, once


async def test_concurrent_requests_share_one_read(client, history):
    history.gate = anyio.Event()
    statuses: list[int] = []

    async def visit(url: str) -> None:
        statuses.append((await client.get(url)).status_code)

    async with anyio.create_task_group() as tasks:
        for theme in ("light", "dark", "auto") * 5:
            tasks.start_soon(visit, f"/widget/chart?coin=BTC&range=30d&theme={theme}")
        tasks.start_soon(visit, "/api/v1/history/BTC?range=30d")
        await anyio.sleep(0.05)
        history.gate.set()
    assert statuses == [200] * 16 and len(history.reads) == 1


async def test_a_failing_store_serves_the_last_read_else_503(client, history, caplog):
    caplog.set_level(logging.INFO, logger="ticker.web.history_reads")
    history.failing = True
    response = await client.get("/api/v1/history/BTC?range=1y")
    assert response.status_code == 503 and response.json() == {"error": "price history cannot be read just now"}
    chart = await client.get("/widget/chart?coin=BTC&range=1y")
    assert chart.status_code == 503 and "<svg" not in chart.text
    assert (await client.get("/api/v1/history/BTC?range=1y")).status_code == 503  # not cached: asked again
    assert sum("cannot read BTC usd 1y" in r.message for r in caplog.records) == 1  # once, not per request
    history.failing = False
    good = (await client.get("/api/v1/history/BTC?range=1y")).json()
    history.failing = True
    later = full_snapshot()
    await client.store.put(Snapshot(NOW + timedelta(minutes=1), later.quotes, later.providers))
    assert (await client.get("/api/v1/history/BTC?range=1y")).json() == good  # the last good read
    assert [r.message for r in caplog.records if "history" in r.message][1] == "history: reads work again"


async def test_the_chart_is_served_like_the_widget(client):
    response = await client.get("/widget/chart?coin=BTC&range=7d")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "script-src 'sha256-" in csp and "style-src 'sha256-" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'self' *" in csp
    assert "<svg" in response.text
    gz = await client.get("/widget/chart?coin=BTC&range=7d", headers={"accept-encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.text == response.text
    head = await client.head("/widget/chart?coin=BTC&range=7d")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("coin=ZZZ", "coin: unknown coin &#39;ZZZ&#39;; allowed: BTC, ETH, ARRR, OPENVC, XNO"),
        ("coin=", "coin: unknown coin &#39;&#39;; allowed: BTC, ETH, ARRR, OPENVC, XNO"),
        ("coin=BTC&range=2y", "range: unknown value &#39;2y&#39;; allowed: 24h, 7d, 30d, 1y, max"),
        ("coin=BTC&theme=<b>", "theme: unknown value &#39;&lt;b&gt;&#39;; allowed: light, dark, auto"),
    ],
)
async def test_a_bad_chart_query_is_a_small_escaped_400_page(client, query, error):
    response = await client.get(f"/widget/chart?{query}")
    assert response.status_code == 400 and error in response.text and "<b>" not in response.text


async def test_the_chart_without_a_coin_shows_the_first_configured_one(client):
    page = (await client.get("/widget/chart")).text
    assert "<title>Bitcoin price chart</title>" in page and "<svg" in page


async def test_demo_charts_are_simulated_labelled_and_never_stored(tmp_path):
    settings = settings_from(tmp_path, FULL_CONFIG)
    store = SnapshotStore()
    await store.put(full_snapshot())
    async with app_client(create_app(settings, store=store, demo=True, clock=lambda: NOW)) as client:
        page = (await client.get("/widget/chart?coin=BTC&range=7d")).text
        assert "<svg" in page and "Demo: simulated prices, not market data" in page
        body = (await client.get("/api/v1/history/BTC?range=24h")).json()
        assert len(body["points"]) == 289 and body["points"][-1][1] == 90917.04  # ends at the snapshot's price
    assert not list(tmp_path.glob("*.sqlite3"))  # nothing was opened, nothing written


async def test_embed_js_places_the_chart_with_data_kind_chart(client):
    js = (await client.get("/embed.js")).text
    assert 'const C=s.dataset.kind=="chart"' in js
    assert 'C?["coin","range","currency","theme","locale","transparent"]' in js  # the chart's query, nothing else
    assert 'f.src=o+(C?"/widget/chart?":"/widget?")+q' in js and 'height:"+(C?330:' in js
    assert len(js.encode()) < 3 * 1024
