"""The chart widget in a real headless Chromium, against the real `ticker serve` (see conftest.py).

Its history is a week of BTC imported with `ticker history BTC --import` before the service starts, so the
chart reads the real SQLite store the service opens. At 320 and 800 px in both themes: the line fills the
width with its numbers as text beside it, nothing runs out of the page, no request goes anywhere but the
service, no console error or CSP violation, no serious or critical axe violation; the crosshair shows the
value under the pointer; the range links work without JavaScript; embed.js places the chart with
data-kind="chart" in an iframe as tall as its content. Screenshots: build/screenshots/chart-<theme>-<width>.png.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import INTERVAL, Service, Watched, require_browser
from tests.browser.test_widget_browser import assert_no_serious_axe_violation, run_axe
from tests.fake_upstream import FakeUpstream, LocalServer
from tests.service import run_ticker, running, write_config
from ticker.render.formatting import format_price

pytestmark = pytest.mark.e2e

require_browser()

BACKGROUND = {"light": "rgb(255, 255, 255)", "dark": "rgb(22, 27, 34)"}  # --tk-bg in theme.css
HOURS = 8 * 24  # a week and a day of hourly quotes: the 7-day chart is full
HIGH_AT, LOW_AT = 150, 60  # hours before the last quote: the spike and the dip


def price_at(hours_ago: int) -> float:
    if hours_ago == HIGH_AT:
        return 97_531.25
    if hours_ago == LOW_AT:
        return 83_210.5
    return round(90_000 + 1_500 * math.sin(hours_ago / 9), 2)


@pytest.fixture(scope="module")
def chart_service(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Service]:
    """`ticker serve` with BTC, ETH and a fixed-price coin, and a week of BTC history imported into its SQLite store."""
    directory = tmp_path_factory.mktemp("browser-chart")
    # SITE has a fixed price: never fetched, so never recorded (every polled coin gains history each round).
    market = '[market]\ncoins = ["BTC", "ETH", { symbol = "SITE", name = "Site Token", price = 0.5 }]'
    config = write_config(directory, upstream, INTERVAL, market=market)
    last = int(time.time()) // 3600 * 3600 - 3600
    series = directory / "btc.csv"
    series.write_text("".join(f"{last - 3600 * h},{price_at(h)}\n" for h in reversed(range(HOURS))))
    imported = run_ticker("history", "BTC", "--import", str(series), "--config", str(config))
    assert imported.returncode == 0, imported.stderr
    with running(config) as service:
        yield service


def chart_url(service: Service, **query: str) -> str:
    return f"{service.url}/widget/chart?" + "&".join(f"{k}={v}" for k, v in ({"coin": "BTC"} | query).items())


def stats(page: Any) -> dict[str, tuple[str, str]]:
    """The four figures: label -> (value, when)."""
    found: list[list[str]] = page.evaluate(
        """() => [...document.querySelectorAll('.tc-stats > div')].map(d => [d.querySelector('dt').textContent,
             d.querySelector('b').textContent, d.querySelector('small').textContent])"""
    )
    return {label: (value, when) for label, value, when in found}


def layout(page: Any) -> dict[str, Any]:
    measured: dict[str, Any] = page.evaluate(
        """() => { const r = (s) => { const b = document.querySelector(s).getBoundingClientRect();
                                      return {left: b.left, right: b.right, top: b.top, bottom: b.bottom,
                                              width: b.width, height: b.height}; };
             const e = document.documentElement;
             return {svg: r('.tc-svg'), main: r('.tc'), stats: r('.tc-stats'), nav: r('.tc-ranges'),
                     scroll_width: e.scrollWidth, client_width: e.clientWidth,
                     text_in_svg: document.querySelector('.tc-svg').querySelectorAll('text').length}; }"""
    )
    return measured


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("width", [320, 800])
def test_chart_at_each_width_and_theme(
    width: int,
    theme: str,
    chart_service: Service,
    open_page: Callable[..., Watched],
    axe_source: str,
    screenshots: Path,
) -> None:
    watched = open_page(viewport={"width": width, "height": 700})
    page = watched.page
    page.goto(chart_url(chart_service, range="7d", theme=theme))
    page.wait_for_selector(".tc-svg")

    assert page.title() == "Bitcoin price chart"
    shown = stats(page)
    assert shown["High"] == ("$97,531.25", shown["High"][1]) and shown["High"][1].endswith("UTC")
    assert shown["Low"][0] == "$83,210.50"
    assert shown["Start"][0] == format_price(price_at(7 * 24 - 1), "usd", "en_US")  # the week's first hour
    label = page.get_attribute(".tc-svg", "aria-label") or ""
    assert label.startswith("Bitcoin, last 7 days: from $") and "high $97,531.25, low $83,210.50" in label
    assert page.eval_on_selector("a[aria-current=page]", "a => a.textContent") == "7d"

    box = layout(page)
    assert box["scroll_width"] <= box["client_width"], box  # nothing runs out sideways
    assert box["svg"]["width"] >= width - 2 * 12 and box["svg"]["height"] >= 110, box  # the line spans the page
    assert box["text_in_svg"] == 0  # every text is HTML beside the drawing, readable at any width
    assert box["stats"]["top"] >= box["svg"]["bottom"] and box["nav"]["bottom"] <= box["svg"]["top"]
    assert page.eval_on_selector(".tc", "m => getComputedStyle(m).backgroundColor") == BACKGROUND[theme]
    assert page.eval_on_selector("html", "h => h.className") == f"theme-{theme}"

    page.locator("main.tc").screenshot(path=screenshots / f"chart-{theme}-{width}.png", animations="disabled")
    violations = run_axe(page, axe_source, f"/widget/chart {theme} {width}")
    watched.assert_clean(chart_service.url)
    assert_no_serious_axe_violation(violations)


def test_the_crosshair_shows_the_value_under_the_pointer(
    chart_service: Service, open_page: Callable[..., Watched]
) -> None:
    watched = open_page(viewport={"width": 800, "height": 700})
    page = watched.page
    page.goto(chart_url(chart_service, range="7d"))
    plot = page.locator(".tc-plot").bounding_box()
    assert plot is not None
    assert page.is_hidden(".tc-tip")
    points = page.request.get(f"{chart_service.url}/api/v1/history/BTC?range=7d").json()["points"]
    for share in (0.02, 0.5, 0.98):
        page.mouse.move(plot["x"] + plot["width"] * share, plot["y"] + plot["height"] / 2)
        tip = page.inner_text(".tc-tip")
        t0, t1 = points[0][0], points[-1][0]
        wanted = t0 + share * (t1 - t0)
        nearest = min(points, key=lambda p: abs(p[0] - wanted))
        price, when = tip.split(" · ")
        assert price == format_price(nearest[1], "usd", "en_US"), (share, tip)
        moment = time.gmtime(nearest[0])
        assert when.endswith("UTC") and f"{moment.tm_hour:02d}:{moment.tm_min:02d}" in when, (share, tip)
        line = page.locator(".tc-x").bounding_box()
        assert line is not None and abs(line["x"] - plot["x"] - plot["width"] * (nearest[0] - t0) / (t1 - t0)) < 2
        tip_box = page.locator(".tc-tip").bounding_box()
        assert (
            tip_box is not None
            and plot["x"] - 0.5 <= tip_box["x"]
            and tip_box["x"] + tip_box["width"] <= plot["x"] + plot["width"] + 0.5
        )
    page.mouse.move(plot["x"] + plot["width"] / 2, plot["y"] + plot["height"] + 200)
    assert page.is_hidden(".tc-tip") and page.is_hidden(".tc-x")
    watched.assert_clean(chart_service.url)


def test_the_range_switch_works_without_javascript(chart_service: Service, open_page: Callable[..., Watched]) -> None:
    watched = open_page(viewport={"width": 320, "height": 700}, java_script_enabled=False)
    page = watched.page
    page.goto(chart_url(chart_service, range="7d", theme="dark"))
    page.click("text=24h")
    assert "range=24h" in page.url and "theme=dark" in page.url
    assert page.eval_on_selector("a[aria-current=page]", "a => a.textContent") == "24h"
    assert (page.get_attribute(".tc-svg", "aria-label") or "").startswith("Bitcoin, last 24 hours: from $")
    page.click("text=All")
    assert "range=max" in page.url and page.is_visible(".tc-svg")
    watched.assert_clean(chart_service.url)


def test_too_little_history_says_so(chart_service: Service, open_page: Callable[..., Watched], axe_source: str) -> None:
    watched = open_page(viewport={"width": 320, "height": 400})
    page = watched.page
    page.goto(chart_url(chart_service, coin="SITE", range="24h"))
    assert page.inner_text(".tc-empty") == "Not enough price history for a chart yet"
    assert page.locator(".tc-svg").count() == 0
    violations = run_axe(page, axe_source, "/widget/chart?coin=SITE")
    watched.assert_clean(chart_service.url)
    assert_no_serious_axe_violation(violations)


def test_right_to_left_keeps_the_chart_inside_the_page(
    chart_service: Service, open_page: Callable[..., Watched], screenshots: Path
) -> None:
    watched = open_page(viewport={"width": 320, "height": 700})
    page = watched.page
    page.goto(chart_url(chart_service, range="30d", locale="ar"))
    assert page.eval_on_selector("html", "h => h.dir") == "rtl"
    box = layout(page)
    assert box["scroll_width"] <= box["client_width"], box
    assert page.eval_on_selector(".tc-fig", "f => getComputedStyle(f).direction") == "ltr"  # time runs rightwards
    page.locator("main.tc").screenshot(path=screenshots / "chart-ar-light-320.png")
    watched.assert_clean(chart_service.url)


HOST = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A blog</title><link rel="icon" href="data:,"></head>
<body style="margin:0;padding:16px;font:16px sans-serif"><main style="max-width:640px">
<h1>A post about Bitcoin</h1><p>The last week:</p>
<script src="{service}/embed.js" data-kind="chart" data-coin="BTC" data-range="7d" data-theme="light" async></script>
<p>Text after the chart.</p></main></body></html>
"""


def test_embed_js_places_the_chart_in_an_iframe_as_tall_as_its_content(
    chart_service: Service, open_page: Callable[..., Watched]
) -> None:
    body = HOST.format(service=chart_service.url).encode()

    def respond(target: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if urlsplit(target).path == "/":
            return 200, body, {"content-type": "text/html; charset=utf-8"}
        return 404, b"Not Found", {"content-type": "text/plain"}

    with LocalServer(respond) as host:
        watched = open_page(viewport={"width": 700, "height": 900})
        page = watched.page
        page.goto(f"{host.origin}/")
        iframe = page.wait_for_selector("main iframe")
        frame = iframe.content_frame()
        assert frame is not None
        frame.wait_for_selector(".tc-svg")
        query = dict(part.split("=") for part in urlsplit(frame.url).query.split("&"))
        assert frame.url.startswith(f"{chart_service.url}/widget/chart?")
        assert query == {"coin": "BTC", "range": "7d", "theme": "light"}
        page.wait_for_function(
            """() => { const f = document.querySelector('main iframe');
                 const h = f.contentDocument ? null : f.getBoundingClientRect().height; return h && h > 200; }"""
        )
        deadline = time.monotonic() + 5
        while True:
            outer = page.eval_on_selector("main iframe", "f => f.getBoundingClientRect().height")
            inner = frame.evaluate("() => document.documentElement.getBoundingClientRect().height")
            if abs(outer - inner) <= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert abs(outer - inner) <= 1, (outer, inner)
        assert iframe.get_attribute("title") == "Bitcoin price chart"  # the page's own title, posted with its height
        watched.assert_clean(host.origin, chart_service.url)
