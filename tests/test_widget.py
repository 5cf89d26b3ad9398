from __future__ import annotations

import re

import pytest

from tests.conftest import NOW, quote, settings_from, snapshot_of
from tests.test_views import CONFIG, full_snapshot
from ticker.models import Snapshot


@pytest.fixture
def settings(tmp_path):
    return settings_from(tmp_path, CONFIG)


def rows(html: str) -> dict[str, str]:
    return {
        m.group(1): m.group(0) for m in re.finditer(r'<li class="tk-row[^"]*" data-symbol="(\w+)".*?</li>', html, re.S)
    }


async def test_sidebar_shows_every_coin_with_formatted_prices(make_client, settings):
    client = await make_client(settings, full_snapshot())
    response = await client.get("/widget")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert html.startswith("<!doctype html>") and "<title>Latest Market Prices</title>" in html
    found = rows(html)
    assert list(found) == ["BTC", "ETH", "ARRR", "OPENVC", "XNO"]
    assert "Bitcoin" in found["BTC"] and "$90,917.04" in found["BTC"]
    assert 'class="tk-up">▲ 1.64%' in found["BTC"]
    assert 'class="tk-down">▼ 2.31%' in found["ETH"]
    assert "tk-stale" in found["ETH"] and "as of 18:13 UTC" in found["ETH"]
    assert "$0.0042" in found["OPENVC"]  # static: never "$0.00"
    assert "—" in found["ARRR"] and "as of Nov 26 17:20 UTC" in found["ARRR"]  # past max_stale: unavailable
    assert "—" in found["XNO"] and "unavailable" in found["XNO"]
    assert "$0.00<" not in html
    assert 'aria-label="Bitcoin, 90,917.04 US dollars, up 1.64 percent in 24 hours"' in html
    assert "Updated 18:19 UTC" in html
    assert '<a href="https://www.coingecko.com/" target="_blank" rel="noopener noreferrer">CoinGecko</a>' in html


async def test_sub_cent_prices_keep_four_significant_digits(make_client, settings):
    snap = snapshot_of(quote("ARRR", 0.00001234), quote("ETH", 0.14123456))
    html = (await (await make_client(settings, snap)).get("/widget?coins=ARRR,ETH")).text
    assert "$0.00001234" in html and "$0.1412" in html


async def test_locale_and_currency_formatting(make_client, settings):
    client = await make_client(settings, full_snapshot())
    html = (await client.get("/widget?coins=BTC&currency=eur&locale=de-DE")).text
    assert "84.123,55\xa0€" in html and "1,70\xa0%" in html and '<html lang="de"' in html


async def test_theme_layout_and_transparency_are_applied(make_client, settings):
    client = await make_client(settings, full_snapshot())
    html = (await client.get("/widget?theme=dark&layout=compact&transparent=1")).text
    assert '<html lang="en" class="theme-dark transparent">' in html
    assert 'class="tk layout-compact"' in html


async def test_fragment_is_the_bare_list(make_client, settings):
    client = await make_client(settings, full_snapshot())
    response = await client.get("/widget/fragment?coins=BTC")
    assert response.status_code == 200
    assert response.text.startswith("<section") and "<html" not in response.text
    assert list(rows(response.text)) == ["BTC"]


async def test_demo_data_is_labelled(make_client, settings):
    snap = snapshot_of(quote("BTC", 90000.0, source="demo"))
    html = (await (await make_client(settings, snap)).get("/widget?coins=BTC")).text
    assert "Demo: simulated prices, not market data" in html and "simulated demo data" in html


BAD_WIDGET_QUERIES = [
    "/widget?theme=pink",
    "/widget?layout=grid",
    "/widget?locale=xx_YY",
    "/widget?transparent=maybe",
    "/widget?coins=",
    "/widget?currency=jpy",
    "/widget/fragment?coins=%3Cimg%20src=x%20onerror=alert(1)%3E",
    "/widget?theme=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
]


@pytest.mark.parametrize("url", BAD_WIDGET_QUERIES)
async def test_bad_widget_queries_get_a_small_escaped_400(make_client, settings, url):
    client = await make_client(settings, full_snapshot())
    response = await client.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>" not in response.text and "<img" not in response.text
    assert "allowed" in response.text or "expected" in response.text or "use a name" in response.text


async def test_hostile_names_are_escaped_in_html_and_intact_in_json(make_client, tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = [{ symbol = "EVIL", name = "<script>alert(1)</script>\\" onerror=\\"x", price = 1 }]',
    )
    client = await make_client(settings, Snapshot(NOW))
    html = (await client.get("/widget")).text
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&#34; onerror=&#34;x" in html
    assert (await client.get("/api/v1/prices")).json()["coins"][0]["name"] == '<script>alert(1)</script>" onerror="x'
