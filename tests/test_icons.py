from __future__ import annotations

import httpx
import pytest

from ticker.icons import MAX_ICON_BYTES, Icon, IconCache, download_icon, monogram_svg

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
URL = "https://assets.example/coins/bitcoin.png"


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


async def test_an_icon_is_downloaded_once_saved_and_loaded_after_a_restart(respx_mock, client, tmp_path):
    route = respx_mock.get(URL).respond(200, content=PNG, headers={"content-type": "image/png"})
    cache = IconCache(tmp_path / "icons")
    assert await cache.refresh(client, {"BTC": URL}) == 1
    assert await cache.refresh(client, {"BTC": URL}) == 0
    assert route.call_count == 1
    assert cache.get("BTC") == Icon(PNG, "image/png")
    assert (tmp_path / "icons" / "BTC.png").read_bytes() == PNG
    restarted = IconCache(tmp_path / "icons")
    restarted.load()
    assert restarted.get("BTC") == Icon(PNG, "image/png")


BAD_ICONS = [
    pytest.param(
        httpx.Response(200, content=b"<svg onload=alert(1)/>", headers={"content-type": "image/svg+xml"}), id="svg"
    ),
    pytest.param(httpx.Response(200, content=b"<html>", headers={"content-type": "image/png"}), id="lying-type"),
    pytest.param(httpx.Response(200, content=PNG, headers={"content-type": "text/html"}), id="html-type"),
    pytest.param(
        httpx.Response(200, content=PNG + b"x" * MAX_ICON_BYTES, headers={"content-type": "image/png"}), id="too-big"
    ),
    pytest.param(httpx.Response(404, content=b"nope"), id="404"),
    pytest.param(httpx.ConnectError("refused"), id="refused"),
]


@pytest.mark.parametrize("outcome", BAD_ICONS)
async def test_anything_but_a_small_raster_image_is_refused(respx_mock, client, outcome):
    route = respx_mock.get(URL)
    route.mock(side_effect=outcome) if isinstance(outcome, Exception) else route.mock(return_value=outcome)
    assert await download_icon(client, URL) is None


async def test_non_http_urls_are_never_fetched(respx_mock, client):
    assert await download_icon(client, "javascript:alert(1)") is None
    assert await download_icon(client, "file:///etc/passwd") is None
    assert not respx_mock.calls


async def test_a_failed_icon_is_retried_a_day_later(respx_mock, client):
    now = [0.0]
    route = respx_mock.get(URL).mock(
        side_effect=[httpx.Response(500), httpx.Response(200, content=PNG, headers={"content-type": "image/png"})]
    )
    cache = IconCache(None, monotonic=lambda: now[0])
    await cache.refresh(client, {"BTC": URL})
    now[0] += 3600
    await cache.refresh(client, {"BTC": URL})
    assert route.call_count == 1
    now[0] += 86400
    await cache.refresh(client, {"BTC": URL})
    assert route.call_count == 2 and cache.get("BTC") is not None


def test_monogram_is_a_stable_escaped_svg():
    svg = monogram_svg("BTC").decode()
    assert svg.startswith("<svg") and ">BTC</text>" in svg
    assert svg == monogram_svg("BTC").decode() and svg != monogram_svg("ETH").decode()
    assert "<b>" not in monogram_svg("<b>").decode()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/icon.png",
        "http://10.0.0.5/icon.png",
        "http://192.168.1.1/icon.png",
        "http://[fe80::1]/icon.png",
        "http://0.0.0.0/icon.png",
    ],
)
async def test_upstream_urls_cannot_reach_private_addresses(respx_mock, client, url):
    assert await download_icon(client, url) is None
    assert not respx_mock.calls


async def test_redirects_are_not_followed(respx_mock, client):
    respx_mock.get(URL).respond(302, headers={"location": "http://169.254.169.254/x.png"})
    assert await download_icon(client, URL) is None
    assert len(respx_mock.calls) == 1
