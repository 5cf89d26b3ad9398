"""The widget in a real headless Chromium, against the real `ticker serve` (see conftest.py).

Every page is checked for what a visitor's browser would notice: all coins with prices and icons,
no console error, no uncaught exception, no CSP violation, no request to any host but the service
(and, on the blog, the blog itself), an /embed.js iframe exactly as tall as its content, a ticker
that scrolls, pauses on request and stands still under reduced motion, and no serious or critical
axe-core violation. Screenshots of each layout and theme go to build/screenshots/.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import INTERVAL, SYMBOLS, HostPage, Service, Watched, require_browser

pytestmark = pytest.mark.e2e

require_browser()

LAYOUTS = ("list", "compact", "ticker")
THEMES = ("light", "dark")
BACKGROUNDS = {"light": "rgb(255, 255, 255)", "dark": "rgb(22, 27, 34)"}  # --tk-bg in widget.css
UNAVAILABLE = "—"


def viewport(layout: str) -> dict[str, int]:
    """A sidebar for the list layouts, a strip across a page for the ticker."""
    return {"width": 1000, "height": 120} if layout == "ticker" else {"width": 320, "height": 800}


def rows(frame: Any) -> list[dict[str, Any]]:
    """The coins of the first list (the ticker's second list is its scrolling copy)."""
    found: list[dict[str, Any]] = frame.evaluate(
        """() => [...document.querySelector('.tk ol').querySelectorAll('li[data-k]')].map(li => {
             const img = li.querySelector('img');
             return {symbol: li.dataset.k, price: li.querySelector('.tk-v b').textContent.trim(),
                     spoken: li.querySelector('.sr-only').textContent.trim(),
                     icon: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0};
           })"""
    )
    return found


def wait_for_icons(frame: Any) -> None:
    frame.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")


def run_axe(page: Any, axe_source: str, name: str) -> list[dict[str, Any]]:
    """axe-core injected into the page and each of its frames, run over all of them; prints a summary."""
    for frame in page.frames:
        frame.evaluate(axe_source)
    result = page.evaluate(
        """async () => {
             const r = await axe.run(document, {resultTypes: ['violations']});
             const brief = (list) => list.map(v => ({id: v.id, impact: v.impact, help: v.help,
               nodes: v.nodes.map(n => ({target: n.target.flat().join(' >>> '), why: n.failureSummary}))}));
             return {violations: brief(r.violations), incomplete: brief(r.incomplete),
                     version: axe.version, passes: r.passes.length};
           }"""
    )

    def listed(found: list[dict[str, Any]]) -> list[str]:
        return [
            f"{v['id']} ({v['impact']}, {len(v['nodes'])}: {', '.join(n['target'] for n in v['nodes'][:3])})"
            for v in found
        ]

    print(f"\naxe {result['version']} on {name}: {result['passes']} rules passed")
    print("  violations:", "; ".join(listed(result["violations"])) or "none")
    print("  needs review:", "; ".join(listed(result["incomplete"])) or "none")
    return cast(list[dict[str, Any]], result["violations"])


def assert_no_serious_axe_violation(violations: list[dict[str, Any]]) -> None:
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=1)


def tape_transform(page: Any) -> str:
    return str(page.eval_on_selector(".tk-tape", "tape => getComputedStyle(tape).transform"))


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_widget_layout_and_theme(
    layout: str, theme: str, service: Service, open_page: Callable[..., Watched], axe_source: str, screenshots: Path
) -> None:
    watched = open_page(viewport=viewport(layout))
    page = watched.page
    page.goto(f"{service.url}/widget?layout={layout}&theme={theme}")
    wait_for_icons(page)

    # All 11 default coins, in order, each with a price and its icon from our own /icons/.
    shown = rows(page)
    assert [r["symbol"] for r in shown] == SYMBOLS
    assert all(r["price"] and r["price"] != UNAVAILABLE for r in shown), shown
    assert shown[0]["price"] == "$90,917.04"
    assert shown[0]["spoken"] == "Bitcoin, 90,917.04 US dollars, up 1.64 percent in 24 hours"
    assert all(r["loaded"] and r["icon"] == f"/icons/{r['symbol']}" for r in shown), shown
    icons = {url: kind for url, (_, kind) in watched.responses.items() if "/icons/" in url}
    assert len(icons) == len(SYMBOLS) and set(icons.values()) == {"image/png"}, icons

    # The theme is applied, whatever the browser's own preference.
    assert page.eval_on_selector("html", "html => html.className") == f"theme-{theme}"
    assert page.eval_on_selector(".tk", "tk => getComputedStyle(tk).backgroundColor") == BACKGROUNDS[theme]

    page.locator(".tk").screenshot(path=screenshots / f"widget-{layout}-{theme}.png", animations="disabled")
    violations = run_axe(page, axe_source, f"/widget?layout={layout}&theme={theme}")
    watched.assert_clean(service.url)
    assert_no_serious_axe_violation(violations)


def test_embed_js_iframe_fits_its_content_on_another_origin(
    service: Service, host_page: HostPage, open_page: Callable[..., Watched]
) -> None:
    watched = open_page(viewport={"width": 1000, "height": 800})
    page = watched.page
    page.goto(host_page.url)
    iframe = page.wait_for_selector("aside iframe")
    frame = iframe.content_frame()
    assert frame is not None
    frame.wait_for_load_state("load")
    wait_for_icons(frame)
    assert iframe.get_attribute("title") == "Latest Market Prices"
    assert frame.url.startswith(f"{service.url}/widget?")
    assert frame.eval_on_selector("html", "html => html.className") == "theme-dark"
    assert [r["symbol"] for r in rows(frame)] == ["BTC", "ETH", "XMR"]
    assert all(r["price"] != UNAVAILABLE and r["loaded"] for r in rows(frame))

    # embed.js starts with an estimate; the widget then reports its height and the iframe takes it.
    # A live refresh (every INTERVAL s) replaces the rows; the iframe must still fit afterwards.
    with page.expect_request(lambda request: "/widget/fragment?" in request.url, timeout=(INTERVAL + 3) * 1000):
        pass
    heights = settled_heights(page, frame)
    assert abs(heights["iframe"] - heights["content"]) <= 1, heights
    assert heights["scroll_height"] <= heights["client_height"] + 1, heights  # no hidden inner scrolling
    assert heights["scroll_width"] <= heights["client_width"] + 1, heights

    watched.assert_clean(host_page.origin, service.url)
    assert any(url.startswith(f"{service.url}/widget/fragment?") for url in watched.requests)


def settled_heights(page: Any, frame: Any, timeout: float = 5.0) -> dict[str, float]:
    """The iframe's and its content's sizes once the iframe's height has not changed for 0.5 s."""
    deadline = time.monotonic() + timeout
    history: list[float] = []
    while True:
        history.append(page.eval_on_selector("aside iframe", "f => f.getBoundingClientRect().height"))
        if len(history) >= 6 and len(set(history[-6:])) == 1:
            break
        assert time.monotonic() < deadline, f"the iframe's height never settled: {history}"
        time.sleep(0.1)
    inner: dict[str, float] = frame.evaluate(
        """() => { const e = document.documentElement;
             return {content: e.getBoundingClientRect().height, scroll_height: e.scrollHeight,
                     client_height: e.clientHeight, scroll_width: e.scrollWidth, client_width: e.clientWidth}; }"""
    )
    return {"iframe": history[-1]} | inner


def test_ticker_scrolls_and_the_pause_control_stops_it(service: Service, open_page: Callable[..., Watched]) -> None:
    watched = open_page(viewport=viewport("ticker"))
    page = watched.page
    page.goto(f"{service.url}/widget?layout=ticker&theme=light")
    wait_for_icons(page)
    assert page.eval_on_selector(".tk-tape", "t => getComputedStyle(t).animationName") == "tk-scroll"

    before = tape_transform(page)
    page.wait_for_timeout(1000)
    assert tape_transform(page) != before, "the tape does not move"

    # From the keyboard: Tab to the Pause control, then to the strip itself, which stops while it has focus.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "tk-pause"
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "tk-view"
    assert page.eval_on_selector(".tk-view", "v => getComputedStyle(v).outlineStyle") == "solid"
    assert play_state(page) == "paused"
    page.keyboard.press("Shift+Tab")
    assert play_state(page) == "running"

    # Space on the Pause control stops it for good; the control then offers Play.
    page.keyboard.press("Space")
    assert page.is_checked("#tk-pause") and play_state(page) == "paused"
    assert page.inner_text("label[for=tk-pause]").startswith("Play")
    paused = tape_transform(page)
    page.wait_for_timeout(1000)
    assert tape_transform(page) == paused, "the tape moves while paused"

    # A click on Play starts it again; a click on Pause stops it.
    page.click("label[for=tk-pause]")
    assert not page.is_checked("#tk-pause") and play_state(page) == "running"
    page.wait_for_timeout(300)
    assert tape_transform(page) != paused, "the tape does not move again after Play"
    page.click("label[for=tk-pause]")
    assert page.is_checked("#tk-pause") and play_state(page) == "paused"
    watched.assert_clean(service.url)


def play_state(page: Any) -> str:
    return str(page.eval_on_selector(".tk-tape", "t => getComputedStyle(t).animationPlayState"))


def test_ticker_stands_still_under_reduced_motion(
    service: Service, open_page: Callable[..., Watched], axe_source: str
) -> None:
    watched = open_page(viewport=viewport("ticker"), reduced_motion="reduce")
    page = watched.page
    page.goto(f"{service.url}/widget?layout=ticker&theme=dark")
    wait_for_icons(page)
    assert page.evaluate("() => matchMedia('(prefers-reduced-motion: reduce)').matches")
    assert page.eval_on_selector(".tk-tape", "t => getComputedStyle(t).animationName") == "none"
    before = tape_transform(page)
    page.wait_for_timeout(1000)
    assert tape_transform(page) == before
    # No duplicate list and no Pause control when nothing moves; every coin is still there.
    assert not page.is_visible(".tk-copy") and not page.is_visible("label[for=tk-pause]")
    assert [r["symbol"] for r in rows(page)] == SYMBOLS
    # The coins past the edge are reached by scrolling the strip, with the keyboard too.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "tk-view"
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.tk-view').scrollLeft > 0", timeout=3000)
    violations = run_axe(page, axe_source, "/widget?layout=ticker&theme=dark, reduced motion")
    watched.assert_clean(service.url)
    assert_no_serious_axe_violation(violations)


def test_landing_page(service: Service, open_page: Callable[..., Watched], axe_source: str, screenshots: Path) -> None:
    watched = open_page(viewport={"width": 1280, "height": 2000})
    page = watched.page
    page.goto(f"{service.url}/")
    page.wait_for_load_state("load")
    page.wait_for_function("() => document.querySelectorAll('.grid iframe').length === 8")
    frames = [handle.content_frame() for handle in page.query_selector_all(".grid iframe")]
    for frame in frames:
        assert frame is not None
        frame.wait_for_load_state("load")
        wait_for_icons(frame)
        if "layout=table" in frame.url:
            assert (
                frame.evaluate("() => [...document.querySelectorAll('tr[data-k]')].map(tr => tr.dataset.k)") == SYMBOLS
            )
        else:
            assert [r["symbol"] for r in rows(frame)] == SYMBOLS
    previews = [parse_qs(urlsplit(f.url).query) for f in frames if f is not None]
    layouts = (*LAYOUTS, "table")
    assert [(q["layout"], q["theme"]) for q in previews] == [([la], [th]) for la in layouts for th in THEMES]
    for handle in page.query_selector_all(".grid iframe"):
        frame = handle.content_frame()
        inner = frame.evaluate("() => document.documentElement.getBoundingClientRect().height")
        page.wait_for_function(
            "([f, h]) => Math.abs(f.getBoundingClientRect().height - h) <= 1", arg=[handle, inner], timeout=5000
        )

    page.screenshot(path=screenshots / "landing.png", full_page=True, animations="disabled")
    violations = run_axe(page, axe_source, "/ (landing page, with its eight previews)")
    watched.assert_clean(service.url)
    assert_no_serious_axe_violation(violations)
