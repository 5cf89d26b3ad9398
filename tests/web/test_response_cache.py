"""Precomputed responses: rendered once per snapshot and variant, validated by ETag, compressed once."""

from __future__ import annotations

import gzip
from datetime import timedelta

import pytest
from starlette.routing import Mount, Route

from tests.conftest import NOW, quote, settings_from, snapshot_of
from ticker.web.response_cache import PreparedEndpoint


@pytest.fixture
def settings(tmp_path):
    return settings_from(
        tmp_path, '[market]\ncoins = ["BTC", "ETH"]\n[poller]\ninterval_seconds = 60\nstale_after_seconds = 300'
    )


def endpoints(client) -> dict[str, PreparedEndpoint]:
    found = {}
    for route in client._transport.app.routes:
        for inner in route.routes if isinstance(route, Mount) else [route]:
            if isinstance(inner, Route) and isinstance(inner.endpoint, PreparedEndpoint):
                found[inner.name] = inner.endpoint
    return found


async def test_a_variant_is_rendered_once_per_snapshot(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0), quote("ETH", 2.0)))
    prices = endpoints(client)["prices"]
    bodies = {(await client.get("/api/v1/prices?coins=ETH")).content for _ in range(50)}
    assert len(bodies) == 1 and prices.renders == 1
    await client.get("/api/v1/prices?coins=BTC")
    await client.get("/api/v1/prices")
    assert prices.renders == 3


async def test_a_new_snapshot_renders_anew(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    first = (await client.get("/api/v1/prices/BTC")).json()["price"]
    await client.store.put(snapshot_of(quote("BTC", 2.0)))
    assert (first, (await client.get("/api/v1/prices/BTC")).json()["price"]) == (1.0, 2.0)


async def test_staleness_still_follows_the_clock(make_client, settings, clock):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0, age=200)))
    assert (await client.get("/api/v1/prices/BTC")).json()["stale"] is False
    clock.advance(101)  # now 301 s old: past stale_after, with no new snapshot
    assert (await client.get("/api/v1/prices/BTC")).json()["stale"] is True
    assert "as of" in (await client.get("/widget?coins=BTC")).text


async def test_etag_and_304(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    first = await client.get("/widget")
    etag = first.headers["etag"]
    assert etag.startswith('"') and len(etag) == 34
    again = await client.get("/widget", headers={"if-none-match": f'"other", {etag}'})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert again.headers["cache-control"] == first.headers["cache-control"]
    assert (await client.get("/widget", headers={"if-none-match": '"other"'})).status_code == 200


async def test_cache_headers_are_constant_per_snapshot(make_client, settings):
    response = await (await make_client(settings, snapshot_of(quote("BTC", 1.0)))).get("/api/v1/prices")
    assert response.headers["cache-control"] == ("public, max-age=60, stale-while-revalidate=60, stale-if-error=86400")
    assert response.headers["last-modified"] == "Fri, 27 Nov 2026 18:20:00 GMT"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_gzip_once_for_clients_that_ask(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0), quote("ETH", 2.0)))
    plain = await client.get("/widget", headers={"accept-encoding": "identity"})
    zipped = await client.get("/widget", headers={"accept-encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers and zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decodes; same document
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    widget = endpoints(client)["widget"]
    assert widget.renders == 1 and gzip.decompress(next(iter(widget._cache.values())).gzipped()) == plain.content


async def test_variants_are_bounded(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    prices = endpoints(client)["prices"]
    prices._max = 8
    for i in range(50):
        assert (await client.get(f"/api/v1/prices?junk={i}")).status_code == 200
    assert len(prices._cache) == 8


async def test_bad_queries_are_never_cached(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    for _ in range(3):
        assert (await client.get("/api/v1/prices?coins=NOPE")).status_code == 400
    assert len(endpoints(client)["prices"]._cache) == 0


async def test_head_sends_headers_only(make_client, settings):
    response = await (await make_client(settings, snapshot_of(quote("BTC", 1.0)))).head("/api/v1/prices")
    assert response.status_code == 200 and response.content == b"" and int(response.headers["content-length"]) > 0
    post = await (await make_client(settings, snapshot_of(quote("BTC", 1.0)))).post("/api/v1/prices")
    assert post.status_code == 405


async def test_valid_until_is_the_next_stale_flip(settings):
    from ticker.render.board import build_board

    board = build_board(
        snapshot_of(quote("BTC", 1.0, age=100)),
        settings.market.coins[:1],
        "usd",
        now=NOW,
        stale_after=300,
        max_stale=86400,
    )
    assert board.valid_until == NOW + timedelta(seconds=200)


async def test_overlong_queries_are_refused_not_cached(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    response = await client.get("/api/v1/prices?junk=" + "x" * 5000)
    assert response.status_code == 400 and "query too long" in response.json()["error"]
    assert len(endpoints(client)["prices"]._cache) == 0


async def test_spellings_of_one_variant_share_one_rendering(make_client, settings):
    """Cache-busting junk (`?_=1`, `?_=2`, ...) and other spellings never force a new render."""
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0), quote("ETH", 2.0)))
    widget = endpoints(client)["widget"]
    urls = [f"/widget?_={i}" for i in range(200)] + ["/widget?coins=btc,eth", "/widget?coins=BTC,ETH&theme=auto"]
    bodies = {(await client.get(url)).content for url in urls}
    assert len(bodies) == 1 and widget.renders == 1
