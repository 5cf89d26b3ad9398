"""The table layout (`layout=table&columns=...`) in a real Chromium, with content that breaks layouts.

A `ticker serve` polls a fake CoinGecko that also gives market caps, volumes and ranks (and CoinPaprika
for a stale row), with conftest.py's CONTENT_MARKET: a 20-character symbol, yen prices of eight digits,
a stale and an unavailable row. At 320 px (a sidebar) and 1000 px, in both themes, in English and in
Arabic (right to left), and with two currencies: no text is cut (but a coin's name or symbol, which end
in "…"), overlaps another or leaves the page; the page never scrolls sideways; on narrow widths the least
important columns are hidden (no JavaScript); in Arabic the coin column is at the right and figures line
up at the left. axe-core finds no serious or critical violation, and the in-place refresh keeps every
cell. Screenshots go to build/screenshots/table-<locale>-<theme>-<width>.png.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CONTENT_MARKET, CONTENT_PRICES, INTERVAL, STALE, Watched, require_browser
from tests.browser.test_widget_browser import assert_no_serious_axe_violation, run_axe
from tests.browser.texts import TOLERANCE, text_faults, texts
from tests.fake_upstream import FakeUpstream
from tests.service import Service, running, wait_until, write_config

pytestmark = pytest.mark.e2e

require_browser("Noto Naskh Arabic")

COLUMNS = "rank,price,change_24h,change_7d,market_cap,volume_24h,sparkline"
# Market figures as CoinGecko's /simple/price (include_market_cap, include_24hr_vol) and /coins/markets name them.
MARKET = {
    "bitcoin": {"usd_market_cap": 1.81e12, "usd_24h_vol": 45.2e9, "jpy_market_cap": 2.73e14, "jpy_24h_vol": 6.8e12,
                "market_cap_rank": 1, "price_change_percentage_7d_in_currency": 3.4},
    "ethereum": {"usd_market_cap": 3.64e11, "usd_24h_vol": 18.1e9, "market_cap_rank": 2,
                 "price_change_percentage_7d_in_currency": -5.1},
    "tether": {"usd_market_cap": 1.2e11, "usd_24h_vol": 61.3e9, "market_cap_rank": 3},
    "dogecoin": {"usd_market_cap": 2.26e10, "usd_24h_vol": 1.1e9, "market_cap_rank": 9},
}  # fmt: skip
# Columns a width hides (the coin, its prices and the 24 h change always stay).
SHOWN_HEADERS = {320: 3, 1000: 8}  # 320: coin, price, 24h (+ a second price); 1000: all seven and the coin


@pytest.fixture(scope="module")
def table_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with FakeUpstream() as fake:
        fake.coingecko.prices = CONTENT_PRICES
        fake.coingecko.market = MARKET
        fake.coinpaprika.prices = {"xmr-monero": {"usd": (163.21, 2.05), "jpy": (24611.0, 2.05)}}
        fake.coinpaprika.updated_at = int(time.time()) - 1200  # stale
        directory = tmp_path_factory.mktemp("browser-table")
        config = write_config(directory, fake, INTERVAL, market=CONTENT_MARKET, providers=("coingecko", "coinpaprika"))
        with running(config) as service:

            def settled() -> bool:
                coins = {c["symbol"]: c for c in service.get("/api/v1/prices").json()["coins"]}
                btc = coins["BTC"]
                return btc["market_cap"] is not None and btc["rank"] is not None and coins[STALE]["price"] is not None

            wait_until(settled, 20, "market caps, ranks and a stale price")
            yield service


# Per header and row: what is on screen, the boxes of the coin column and of the table.
LAYOUT = """() => {
  const box = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right}; };
  const visible = (el) => getComputedStyle(el).display !== 'none';
  return {
    headers: [...document.querySelectorAll('thead th')].filter(visible).map(th => th.textContent),
    table: box(document.querySelector('table')),
    coin: box(document.querySelector('tbody .tk-c')),
    price: box(document.querySelector('tbody td.tk-pr')),
    cells: [...document.querySelectorAll('tbody tr[data-k]')].map(tr => tr.querySelectorAll('td').length),
  };
}"""


def mirror_faults(found: dict[str, Any], direction: str) -> list[str]:
    """The coin column at the start of the line (left in ltr, right in rtl), the price after it."""
    table, coin, price = found["table"], found["coin"], found["price"]
    if direction == "rtl":
        ok = (
            abs(coin["right"] - table["right"]) <= 1
            or coin["right"] <= table["right"]
            and price["right"] <= coin["left"] + TOLERANCE
        )
    else:
        ok = price["left"] >= coin["right"] - TOLERANCE
    return [] if ok else [f"{direction}: the coin column {coin} and the price {price} are not in reading order"]


@pytest.mark.parametrize(
    ("locale", "theme", "currency"),
    [("en_US", "light", "usd"), ("en_US", "dark", "usd,jpy"), ("ar", "light", "usd"), ("ar", "dark", "jpy,usd")],
)
def test_table_fits_320_and_1000_px(
    locale: str,
    theme: str,
    currency: str,
    table_service: Service,
    open_page: Callable[..., Watched],
    axe_source: str,
    screenshots: Path,
) -> None:
    watched = open_page(viewport={"width": 320, "height": 900})
    page = watched.page
    url = f"{table_service.url}/widget?layout=table&theme={theme}&locale={locale}&currency={currency}&columns={COLUMNS}"
    page.goto(url)
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    direction = "rtl" if locale == "ar" else "ltr"
    assert page.evaluate("() => document.documentElement.dir") == direction
    several = "," in currency
    faults = []
    for width in (320, 1000):
        page.set_viewport_size({"width": width, "height": 900})
        found = page.evaluate(LAYOUT)
        wanted = SHOWN_HEADERS[width] + several
        if len(found["headers"]) != wanted:
            faults.append(f"{width} px: {len(found['headers'])} columns shown, not {wanted}: {found['headers']}")
        faults += [f"{width} px: {fault}" for fault in text_faults(texts(page)) + mirror_faults(found, direction)]
        name = f"table-{locale.split('_')[0]}-{theme}-{width}" + ("-2" if several else "")
        page.locator(".tk").screenshot(path=screenshots / f"{name}.png", animations="disabled")
    assert faults == [], "\n".join(faults)
    if locale == "en_US" and not several:
        btc = page.evaluate("() => [...document.querySelector('tr[data-k=BTC]').children].map(c => c.innerText)")
        assert btc[:2] == ["1", "Bitcoin\nBTC"] and btc[2] == "$90,917.04"
        assert btc[5].startswith("$1.8T") and btc[6].startswith("$45.2B")
    violations = run_axe(page, axe_source, url)
    watched.assert_clean(table_service.url)
    assert_no_serious_axe_violation(violations)


def test_the_table_refreshes_in_place(table_service: Service, open_page: Callable[..., Watched]) -> None:
    """widget.js fetches the fragment and replaces each row's cells: the same columns, no error."""
    watched = open_page(viewport={"width": 1000, "height": 900})
    page = watched.page
    page.goto(f"{table_service.url}/widget?layout=table&currency=usd,jpy&columns={COLUMNS}")
    before = page.evaluate(LAYOUT)
    with page.expect_response(lambda r: "/widget/fragment?" in r.url, timeout=(INTERVAL + 3) * 1000) as answer:
        pass
    assert answer.value.status == 200
    page.wait_for_timeout(300)
    after = page.evaluate(LAYOUT)
    assert after["cells"] == before["cells"] and after["headers"] == before["headers"]
    assert page.evaluate("() => document.querySelector('tr[data-k=BTC] td.tk-pr').textContent") == "$90,917.04"
    watched.assert_clean(table_service.url)


# Every further price of the list layout: its text box against the page and its own box (an ellipsis or a
# clip would make the text wider than what shows).
MORE_PRICES = """() => [...document.querySelectorAll('.tk-v b.tk-m')].map(b => {
  const range = document.createRange();
  range.selectNodeContents(b);
  const r = range.getBoundingClientRect(), box = b.getBoundingClientRect();
  return {text: b.textContent, left: r.left, right: r.right, boxLeft: box.left, boxRight: box.right,
          width: document.documentElement.clientWidth};
})"""


@pytest.mark.parametrize("locale", ["en_US", "ar"])
def test_the_list_shows_two_currencies_without_cutting_a_price(
    locale: str, table_service: Service, open_page: Callable[..., Watched], axe_source: str, screenshots: Path
) -> None:
    watched = open_page(viewport={"width": 200, "height": 900})
    page = watched.page
    page.goto(f"{table_service.url}/widget?layout=list&theme=light&currency=jpy,usd&locale={locale}")
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    faults = []
    for width in (200, 320):
        page.set_viewport_size({"width": width, "height": 900})
        faults += [f"{width} px: {fault}" for fault in text_faults(texts(page))]
        for price in page.evaluate(MORE_PRICES):
            inside = price["left"] >= price["boxLeft"] - TOLERANCE and price["right"] <= price["boxRight"] + TOLERANCE
            if not inside or price["left"] < 0 or price["right"] > price["width"] + TOLERANCE:
                faults.append(f"{width} px: the second price {price['text']!r} is cut or leaves the page: {price}")
        page.locator(".tk").screenshot(path=screenshots / f"list-2-{locale.split('_')[0]}-{width}.png")
    assert faults == [], "\n".join(faults)
    assert len(page.evaluate(MORE_PRICES)) == 8  # one further price per coin
    violations = run_axe(page, axe_source, f"/widget?currency=jpy,usd&locale={locale}")
    watched.assert_clean(table_service.url)
    assert_no_serious_axe_violation(violations)
