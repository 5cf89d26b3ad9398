"""Layouts measured in a real Chromium with content that breaks them (see `content_service` in conftest.py).

For each layout, theme and currency, one page is resized through the widths a sidebar or a strip
really has (list and compact 200-400 px, ticker 320-1600 px) and measured with getBoundingClientRect:
what a reader sees of a row's icon, name, symbol, price, change and "as of" note never overlaps,
nothing runs out of the viewport sideways (but the tape's scrolling content, which its strip clips),
an unavailable row is as tall as an ordinary one, and the tape shows at least five coins at 1000 px.
Each state is also written to build/screenshots/ (`layout-<layout>-<currency>-<theme>-<width>.png`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import (
    CONTENT_SYMBOLS,
    LONG_SYMBOL,
    PLAIN,
    ROOT,
    STALE,
    UNAVAILABLE_COIN,
    Service,
    Watched,
    require_browser,
)
from ticker.icons import monogram_svg

pytestmark = pytest.mark.e2e

require_browser()

WIDTHS = {"list": (200, 260, 320, 400), "compact": (200, 260, 320, 400), "ticker": (320, 1000, 1600)}
TOLERANCE = 0.5  # px: sub-pixel rounding is no overlap

# Per row of the first list: the box of what the reader sees of each part, in viewport pixels, clipped by
# every ancestor up to the row that hides its overflow (an ellipsis shows only what fits), or null when
# the part is not shown. Text is measured by a Range over its glyphs, so text running out of its own
# box (a long unbroken symbol) is caught, not just the box. Also the row's own box, the document's
# widths, and for the ticker the strip, the tape, the Pause control and the footer.
MEASURE = """() => {
  const rect = (r) => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom});
  const seen = (el, stop) => {
    if (!el) return null;
    const range = document.createRange();
    range.selectNodeContents(el);
    let b = rect(el.tagName === 'IMG' ? el.getBoundingClientRect() : range.getBoundingClientRect());
    for (let a = el; a && a !== stop.parentElement; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.display === 'none' || style.visibility === 'hidden') return null;
      if (style.overflowX !== 'visible') {
        const c = a.getBoundingClientRect();
        b = {left: Math.max(b.left, c.left), right: Math.min(b.right, c.right),
             top: Math.max(b.top, c.top), bottom: Math.min(b.bottom, c.bottom)};
      }
    }
    return b.right - b.left > 0.5 && b.bottom - b.top > 0.5 ? b : null;
  };
  const rows = [...document.querySelector('.tk ol').querySelectorAll('li[data-k]')].map(li => ({
    symbol: li.dataset.k, box: rect(li.getBoundingClientRect()),
    parts: {icon: seen(li.querySelector('img'), li), name: seen(li.querySelector('.tk-n b'), li),
            symbol: seen(li.querySelector('.tk-n small'), li), price: seen(li.querySelector('.tk-v b'), li),
            change: seen(li.querySelector('.tk-v small:not(.tk-asof)'), li),
            note: seen(li.querySelector('.tk-asof'), li)},
    texts: {price: li.querySelector('.tk-v b').textContent.trim(),
            note: (li.querySelector('.tk-asof') || {textContent: ''}).textContent.trim()},
  }));
  const html = document.documentElement;
  const box = (selector) => {
    const el = document.querySelector(selector);
    return el && rect(el.getBoundingClientRect());
  };
  const foot = document.querySelector('.tk-foot');
  return {rows, width: html.clientWidth, scroll_width: html.scrollWidth,
          view: box('.tk-view'), tape: box('.tk-tape'), pause: box('label[for=tk-pause]'), foot: box('.tk-foot'),
          foot_clipped: foot.scrollWidth > foot.clientWidth + 1};
}"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > TOLERANCE
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > TOLERANCE
    )


def inside(box: dict[str, float], left: float, right: float) -> bool:
    return box["left"] >= left - TOLERANCE and box["right"] <= right + TOLERANCE


def height(box: dict[str, float]) -> float:
    return box["bottom"] - box["top"]


def layout_faults(layout: str, found: dict[str, Any]) -> list[str]:
    """Everything wrong with one measured page, as sentences; empty when the layout holds."""
    faults = []
    width = found["width"]
    if found["scroll_width"] > width:
        faults.append(f"the page scrolls sideways: {found['scroll_width']} px wide in {width} px")
    rows = {row["symbol"]: row for row in found["rows"]}
    if list(rows) != CONTENT_SYMBOLS:
        faults.append(f"rows {list(rows)}")
    for symbol, row in rows.items():
        parts = {name: box for name, box in row["parts"].items() if box is not None}
        for must in ("icon", "price") + (("name",) if layout != "ticker" else ("symbol",)):
            if must not in parts:
                faults.append(f"{symbol}: its {must} is not shown")
        names = sorted(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if overlap(parts[a], parts[b]):
                    faults.append(f"{symbol}: {a} {parts[a]} overlaps {b} {parts[b]}")
        if layout != "ticker":  # the tape's rows may lie past the edge: its strip clips them
            for name, box in parts.items():
                if not inside(box, row["box"]["left"], row["box"]["right"]) or not inside(box, 0, width):
                    faults.append(f"{symbol}: {name} {box} runs out of its row {row['box']} or the page ({width} px)")
    if layout != "ticker":
        # What the reader needs to see of the odd rows is there: the note says why.
        for symbol in (STALE, UNAVAILABLE_COIN):
            if rows[symbol]["parts"]["note"] is None:
                faults.append(f"{symbol}: its note ({rows[symbol]['texts']['note']!r}) is not shown")
    if rows[UNAVAILABLE_COIN]["texts"]["price"] != "—":
        faults.append(f"{UNAVAILABLE_COIN} is not unavailable: {rows[UNAVAILABLE_COIN]['texts']}")
    usual, gone = height(rows[PLAIN]["box"]), height(rows[UNAVAILABLE_COIN]["box"])
    if abs(gone - usual) > 2:
        faults.append(f"the unavailable row is {gone:.1f} px high, an ordinary row {usual:.1f} px")
    if layout == "ticker":
        faults += tape_faults(found)
    elif found["foot_clipped"]:
        faults.append("the footer is cut off")
    return faults


def tape_faults(found: dict[str, Any]) -> list[str]:
    """The ticker: its strip, Pause control and footer inside the page, the footer whole, 5 coins at 1000 px."""
    faults = []
    width = found["width"]
    for name in ("view", "pause", "foot"):
        if not inside(found[name], 0, width):
            faults.append(f"the {name} {found[name]} runs out of the page ({width} px)")
    if found["foot_clipped"]:
        faults.append("the footer is cut off")
    for name in ("view", "pause"):
        if overlap(found[name], found["foot"]):
            faults.append(f"the {name} {found[name]} overlaps the footer {found['foot']}")
    # How many coins, price and change, the strip shows whole while the tape is at its start.
    room = found["view"]["right"] - found["view"]["left"]
    start = found["tape"]["left"]
    whole = 0
    for row in found["rows"]:
        shown = [box for box in row["parts"].values() if box is not None]
        if max(box["right"] for box in shown) - start > room:
            break
        whole += 1
    wanted = 5 if width >= 1000 else 1
    if whole < wanted:
        faults.append(f"the tape shows {whole} whole coins in {room:.0f} px, not {wanted}")
    return faults


@pytest.mark.parametrize("currency", ["usd", "jpy"])
@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("layout", ["list", "compact", "ticker"])
def test_rows_hold_together_at_every_width(
    layout: str,
    theme: str,
    currency: str,
    content_service: Service,
    open_page: Callable[..., Watched],
    screenshots: Path,
) -> None:
    widths = WIDTHS[layout]
    watched = open_page(viewport={"width": widths[0], "height": 900})
    page = watched.page
    page.goto(f"{content_service.url}/widget?layout={layout}&theme={theme}&currency={currency}")
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    faults = []
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        found = page.evaluate(MEASURE)
        faults += [f"{width} px: {fault}" for fault in layout_faults(layout, found)]
        shot = screenshots / f"layout-{layout}-{currency}-{theme}-{width}.png"
        page.locator(".tk").screenshot(path=shot, animations="disabled")
    assert faults == [], "\n".join(faults)
    watched.assert_clean(content_service.url)


def test_the_tape_shows_five_default_coins_at_1000_px(service: Service, open_page: Callable[..., Watched]) -> None:
    """The default coins, each with its own icon: at 1000 px the strip, not the footer, takes the width."""
    watched = open_page(viewport={"width": 1000, "height": 200})
    page = watched.page
    page.goto(f"{service.url}/widget?layout=ticker&theme=light")
    found = page.evaluate(MEASURE)
    room = found["view"]["right"] - found["view"]["left"]
    ends = [max(box["right"] for box in row["parts"].values() if box) - found["tape"]["left"] for row in found["rows"]]
    assert sum(end <= room for end in ends) >= 5, (room, ends)
    assert not found["foot_clipped"] and inside(found["foot"], 0, 1000), found["foot"]
    watched.assert_clean(service.url)


SNIPPET = re.compile(
    r'<iframe src="https://prices\.example\.com/widget\?coins=([A-Z,]+)&theme=auto"\s+'
    r'title="[^"]+" width="(\d+)" height="(\d+)"'
)


def test_the_readme_iframe_snippet_fits_its_content(service: Service, open_page: Callable[..., Watched]) -> None:
    """The plain iframe of the README, its size as given there: the whole widget shows, with no inner scrollbar."""
    match = SNIPPET.search((ROOT / "README.md").read_text())
    assert match, "the README's iframe snippet is not where this test looks for it"
    coins, width, height_ = match[1], int(match[2]), int(match[3])
    for theme in ("light", "dark"):  # what `auto` may turn out to be
        watched = open_page(viewport={"width": width, "height": height_}, color_scheme=theme)
        page = watched.page
        page.goto(f"{service.url}/widget?coins={coins}&theme=auto")
        needs = page.evaluate(
            "() => ({height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth})"
        )
        assert needs["height"] <= height_ and needs["width"] <= width, (needs, width, height_)
        # ... and not much more than it needs, or the blog shows a gap under the widget.
        assert height_ - needs["height"] <= 48, (needs, height_)


# Symbols of one to five characters show whole; a longer one shows its first four and an ellipsis.
MONOGRAMS = {
    "A": "A",
    "OP": "OP",
    "BTC": "BTC",
    "USDT": "USDT",
    "WAVES": "WAVES",
    "MWMWM": "MWMWM",
    "1INCH": "1INCH",
    LONG_SYMBOL: "ABCD…",
}


def test_monograms_show_up_to_five_characters_legibly(open_page: Callable[..., Watched]) -> None:
    """Each monogram drawn at the widget's icon size (24 px, clipped round as the widget does): its text is the
    symbol, lies inside the circle, and its letters are set at 9 px or more (7.5 px before), condensed to no less
    than half their own width."""
    page = open_page(viewport={"width": 400, "height": 400}).page
    sized = [monogram_svg(symbol).decode().replace("<svg ", '<svg width="24" height="24" ', 1) for symbol in MONOGRAMS]
    icons = "".join(
        f'<span style="display:inline-block;width:24px;height:24px;border-radius:50%;overflow:hidden">{svg}</span>'
        for svg in sized
    )
    page.set_content(f"<!doctype html><body style='margin:0'>{icons}</body>")
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('svg')].map(svg => {
             const text = svg.querySelector('text'), circle = svg.getBoundingClientRect();
             const box = text.getBoundingClientRect();
             const squeezed = text.getComputedTextLength();
             const given = text.getAttribute('textLength');
             text.removeAttribute('textLength');
             const natural = text.getComputedTextLength();
             if (given !== null) text.setAttribute('textLength', given);
             return {text: text.textContent, size: parseFloat(getComputedStyle(text).fontSize) * circle.width / 32,
                     scale: squeezed / natural, r: circle.width / 2,
                     cx: (circle.left + circle.right) / 2, cy: (circle.top + circle.bottom) / 2,
                     box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom}};
           })"""
    )
    faults = []
    for symbol, icon in zip(MONOGRAMS, drawn, strict=True):
        if icon["text"] != MONOGRAMS[symbol]:
            faults.append(f"{symbol}: reads {icon['text']!r}")
        if icon["size"] < 9 or not 0.5 <= icon["scale"] <= 1.15:
            faults.append(f"{symbol}: {icon['size']:.1f} px letters at {icon['scale']:.0%} of their width")
        # The text's box, less the font's descent below capitals (~20 % of the box), lies inside the circle.
        box = icon["box"]
        cap_bottom = box["bottom"] - 0.2 * (box["bottom"] - box["top"])
        for x in (box["left"], box["right"]):
            for y in (box["top"] + 0.15 * (box["bottom"] - box["top"]), cap_bottom):
                if (x - icon["cx"]) ** 2 + (y - icon["cy"]) ** 2 > (icon["r"] + TOLERANCE) ** 2:
                    faults.append(f"{symbol}: its text {box} runs out of the circle")
                    break
    assert faults == [], "\n".join(faults)


def test_the_landing_page_fits_a_phone(service: Service, open_page: Callable[..., Watched]) -> None:
    """At 320 px the previews take the width there is: the page never scrolls sideways."""
    watched = open_page(viewport={"width": 320, "height": 700})
    page = watched.page
    page.goto(f"{service.url}/")
    page.wait_for_function("() => document.querySelectorAll('.grid iframe').length === 8")  # 4 layouts x 2 themes
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, room: document.documentElement.clientWidth,"
        " previews: [...document.querySelectorAll('.grid figure')].map(f => f.getBoundingClientRect().right)})"
    )
    assert widths["page"] <= widths["room"] and max(widths["previews"]) <= widths["room"], widths
    watched.assert_clean(service.url)
