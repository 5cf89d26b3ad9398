"""Right-to-left widgets (Arabic, and Urdu as Pakistan asks for it) in a real Chromium.

With the content that breaks layouts (conftest.py's CONTENT_MARKET) at the narrowest supported width
and a usual one, each layout says `dir="rtl"`, is mirrored (icon at the right, the price at the left,
the tape starting at the right), holds together (no text cut, overlapping another or out of the page),
and still reads right: every number keeps its own left-to-right order, the percent sign stays with
its number and the arrow goes before it in reading order. The tape scrolls towards the reading
direction's end (rightwards; an LTR language leftwards), and stands still without overflowing the page
under reduced motion. Urdu is set in Nastaliq, Arabic in a font that has Arabic letters. axe-core finds
no serious or critical violation. Every page measured goes to build/screenshots/
(`rtl-<locale>-<layout>-<width>.png`); `i18n-*.png` are the README's translated examples.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import SYMBOLS, Service, Watched, require_browser
from tests.browser.test_layout_browser import MEASURE, layout_faults
from tests.browser.test_widget_browser import assert_no_serious_axe_violation, run_axe, tape_transform
from tests.browser.texts import TOLERANCE, text_faults, texts

pytestmark = pytest.mark.e2e

ARABIC_FONT, URDU_FONT = "Noto Naskh Arabic", "Noto Nastaliq Urdu"  # fonts-noto-core
require_browser(ARABIC_FONT, URDU_FONT)

LANGS = {"ar": "ar", "ur_PK": "ur"}  # the locale asked for -> the language the page is in
WIDTHS = {"list": (200, 320), "compact": (200, 320), "ticker": (320, 1000)}  # the narrowest, a usual one
ARROWS = "▲▼"
NUMBER = re.compile(r"\d[\d.,\u066b\u066c₀-₉]*%?")  # digits with their separators, and a percent sign after them
WORD = re.compile(r"[A-Za-z]+[^\s\d\u200e\u200f]*")  # a currency code or symbol with Latin letters: "US$", "JP¥", "CHF"

# Per coin of the first list: the boxes of its row, icon, name part and value part, and for its price and
# change the text and the characters as they stand on the screen, left to right (each character's place
# measured with a Range; bidi marks, which have no width, drop out).
READ = """() => {
  const rect = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right}; };
  const onScreen = (el) => {
    const chars = [];
    const walk = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walk.nextNode(); node; node = walk.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        const r = range.getBoundingClientRect();
        if (r.width > 0) chars.push({c: node.data[i], x: (r.left + r.right) / 2});
      }
    }
    return chars.sort((a, b) => a.x - b.x).map((c) => c.c).join('');
  };
  const part = (el) => ({text: el.textContent.trim(), screen: onScreen(el)});
  return [...document.querySelector('.tk ol').querySelectorAll('li[data-k]')].map((li) => ({
    symbol: li.dataset.k, row: rect(li), icon: rect(li.querySelector('img')), name: rect(li.querySelector('.tk-n')),
    value: rect(li.querySelector('.tk-v')), price: part(li.querySelector('.tk-v b')),
    change: part(li.querySelector('.tk-v small:not(.tk-asof)')),
  }));
}"""

# The ticker, its tape stopped at its start: the strip, the Pause control and each coin of the first list.
TAPE = """() => {
  const rect = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right}; };
  return {view: rect(document.querySelector('.tk-view')), pause: rect(document.querySelector('label[for=tk-pause]')),
          rows: [...document.querySelector('.tk ol').querySelectorAll('li[data-k]')].map(rect)};
}"""


def reading_faults(rows: list[dict[str, Any]], direction: str) -> list[str]:
    """Numbers, and the words beside them ("US$", "JP¥"), that do not read left to right as written; arrows
    on the wrong side of their number."""
    faults = []
    for row in rows:
        for name in ("price", "change"):
            text, screen = row[name]["text"], row[name]["screen"]
            for word in NUMBER.findall(text) + WORD.findall(text):
                if word not in screen:
                    faults.append(f"{row['symbol']}: its {name} {text!r} shows {screen!r}, not {word!r} in order")
        text, screen = row["change"]["text"], row["change"]["screen"]
        numbers = NUMBER.findall(text)
        if text[:1] in ARROWS and numbers and numbers[0] in screen:
            arrow_right = screen.index(text[0]) > screen.index(numbers[0])
            if arrow_right != (direction == "rtl"):
                faults.append(f"{row['symbol']}: the arrow of {text!r} is on the wrong side: {screen!r}")
    return faults


def mirror_faults(rows: list[dict[str, Any]]) -> list[str]:
    """Rows of a right-to-left list: icon at the row's right edge, then the name, the price at the left."""
    faults = []
    for row in rows:
        icon, name, value, box = row["icon"], row["name"], row["value"], row["row"]
        if abs(icon["right"] - box["right"]) > 1 or name["right"] > icon["left"] + TOLERANCE:
            faults.append(f"{row['symbol']}: the icon {icon} is not at the right of its row {box}, before {name}")
        if value["right"] > name["left"] + TOLERANCE:
            faults.append(f"{row['symbol']}: the value {value} is not left of the name {name}")
    return faults


def tape_faults(tape: dict[str, Any], wanted: int) -> list[str]:
    """The stopped tape of a right-to-left ticker: Pause at the right, the first coin flush with the strip's
    right edge, each next coin left of the one before, and at least `wanted` coins whole in the strip."""
    faults = []
    view, pause, rows = tape["view"], tape["pause"], tape["rows"]
    if pause["left"] < view["right"] - TOLERANCE:
        faults.append(f"the Pause control {pause} is not right of the strip {view}")
    if abs(rows[0]["right"] - view["right"]) > 1:
        faults.append(f"the first coin {rows[0]} does not start at the strip's right edge {view}")
    for before, after in zip(rows, rows[1:], strict=False):
        if after["right"] > before["left"] + TOLERANCE:
            faults.append(f"a coin {after} is not left of the one before it {before}")
    whole = sum(row["left"] >= view["left"] - TOLERANCE for row in rows)
    if whole < wanted:
        faults.append(f"the strip {view} shows {whole} whole coins, not {wanted}")
    return faults


def stop_tape(page: Any) -> None:
    """The tape at its start, as a reader first sees it (inline style, which the widget's CSP allows from script)."""
    page.eval_on_selector(".tk-tape", "tape => { tape.style.animation = 'none'; }")


@pytest.mark.parametrize("layout", ["list", "compact", "ticker"])
@pytest.mark.parametrize("locale", list(LANGS))
def test_right_to_left_layouts(
    locale: str,
    layout: str,
    content_service: Service,
    open_page: Callable[..., Watched],
    axe_source: str,
    screenshots: Path,
) -> None:
    widths = WIDTHS[layout]
    watched = open_page(viewport={"width": widths[0], "height": 900})
    page = watched.page
    page.goto(f"{content_service.url}/widget?layout={layout}&theme=light&currency=jpy&locale={locale}")
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    said = page.evaluate(
        "() => [document.documentElement.lang, document.documentElement.dir, document.querySelector('.tk').dir]"
    )
    assert said == [LANGS[locale], "rtl", "rtl"]
    assert page.title() != "Latest Market Prices", "the page is not translated"
    if layout == "ticker":
        stop_tape(page)
    faults = []
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        found = [] if layout == "ticker" else layout_faults(layout, page.evaluate(MEASURE))
        found += text_faults(texts(page))
        rows = page.evaluate(READ)
        found += reading_faults(rows, "rtl")
        if layout == "ticker":
            found += tape_faults(page.evaluate(TAPE), wanted=5 if width >= 1000 else 1)
        else:
            found += mirror_faults(rows)
        faults += [f"{width} px: {fault}" for fault in found]
        page.locator(".tk").screenshot(path=screenshots / f"rtl-{locale}-{layout}-{width}.png", animations="disabled")
    assert faults == [], "\n".join(faults)
    violations = run_axe(page, axe_source, f"/widget?layout={layout}&locale={locale}")
    watched.assert_clean(content_service.url)
    assert_no_serious_axe_violation(violations)


def tape_x(page: Any) -> float:
    """How far the tape is moved sideways now, in px (its transform's translation; 0 when none)."""
    transform = tape_transform(page)
    return 0.0 if transform == "none" else float(transform.rstrip(")").split(",")[4])


@pytest.mark.parametrize(("locale", "direction"), [("ar", "rtl"), ("ur_PK", "rtl"), ("de", "ltr")])
def test_the_tape_scrolls_towards_the_end_of_the_line(
    locale: str, direction: str, service: Service, open_page: Callable[..., Watched]
) -> None:
    """Right-to-left, the coins come in at the left and move right; left-to-right the other way."""
    watched = open_page(viewport={"width": 1000, "height": 120})
    page = watched.page
    page.goto(f"{service.url}/widget?layout=ticker&theme=light&locale={locale}")
    assert page.eval_on_selector(".tk", "tk => tk.dir") == direction
    first = tape_x(page)
    page.wait_for_timeout(600)
    moved = tape_x(page) - first
    assert (moved > 0) if direction == "rtl" else (moved < 0), f"the tape moved {moved:+.1f} px"

    # Under reduced motion it stands at its start, the page does not scroll sideways, and the keyboard
    # scrolls the strip towards the end of the line.
    still = open_page(viewport={"width": 1000, "height": 120}, reduced_motion="reduce").page
    still.goto(f"{service.url}/widget?layout=ticker&theme=light&locale={locale}")
    widths = still.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    first_coin, view = still.evaluate(
        "() => [document.querySelector('li[data-k]'), document.querySelector('.tk-view')]"
        ".map(e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right}; })"
    )
    start = "right" if direction == "rtl" else "left"
    assert abs(first_coin[start] - view[start]) <= 1, (first_coin, view)
    still.focus(".tk-view")
    still.keyboard.press("ArrowLeft" if direction == "rtl" else "ArrowRight")
    moved_towards = "< 0" if direction == "rtl" else "> 0"
    still.wait_for_function(f"() => document.querySelector('.tk-view').scrollLeft {moved_towards}", timeout=3000)
    watched.assert_clean(service.url)


def fonts_drawing(page: Any, selector: str) -> dict[str, int]:
    """The fonts Chromium drew an element's text with: family -> glyphs (DevTools' CSS.getPlatformFontsForNode)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return {font["familyName"]: font["glyphCount"] for font in fonts}


def families_for(language: str) -> set[str]:
    """Font families fontconfig says cover a language's letters."""
    listed = subprocess.run(["fc-list", f":lang={language}", "family"], capture_output=True, text=True, check=True)
    return {family for line in listed.stdout.splitlines() for family in line.split(",")}


def test_urdu_is_set_in_nastaliq_and_arabic_in_an_arabic_font(
    service: Service, open_page: Callable[..., Watched]
) -> None:
    """The title's letters come from a font that has them: no boxes. Urdu's from Nastaliq, the style its
    readers expect (widget.css names it for :lang(ur)), while its digits stay in the widget's own font."""
    page = open_page(viewport={"width": 320, "height": 800}).page
    page.goto(f"{service.url}/widget?theme=light&locale=ur_PK")
    title = fonts_drawing(page, ".tk h2")
    assert max(title, key=lambda family: title[family]) == URDU_FONT, title
    price = fonts_drawing(page, "li[data-k=BTC] .tk-v b")
    assert URDU_FONT not in price, price

    page.goto(f"{service.url}/widget?theme=light&locale=ar")
    title = fonts_drawing(page, ".tk h2")
    arabic = families_for("ar")
    assert max(title, key=lambda family: title[family]) in arabic, (title, sorted(arabic))


# The README's translated examples: one left-to-right language, one right-to-left, with the default coins.
EXAMPLES = [("de", "list", "light", 320), ("ar", "list", "dark", 320), ("ar", "ticker", "light", 1000)]


@pytest.mark.parametrize(("locale", "layout", "theme", "width"), EXAMPLES)
def test_translated_examples(
    locale: str,
    layout: str,
    theme: str,
    width: int,
    service: Service,
    open_page: Callable[..., Watched],
    screenshots: Path,
) -> None:
    """Written to build/screenshots/i18n-<locale>-<layout>.png, with every icon loaded."""
    watched = open_page(viewport={"width": width, "height": 800 if layout != "ticker" else 120})
    page = watched.page
    page.goto(f"{service.url}/widget?layout={layout}&theme={theme}&locale={locale}")
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    shown = page.eval_on_selector_all(".tk ol:first-of-type li[data-k]", "rows => rows.map(r => r.dataset.k)")
    assert shown == SYMBOLS
    assert page.title() != "Latest Market Prices"
    if layout == "ticker":
        stop_tape(page)
    page.locator(".tk").screenshot(path=screenshots / f"i18n-{locale}-{layout}.png", animations="disabled")
    watched.assert_clean(service.url)


def test_the_landing_page_in_arabic_fits_a_phone(service: Service, open_page: Callable[..., Watched]) -> None:
    """`/?locale=ar` at 320 px: right to left, and nothing runs out of the page on either side."""
    watched = open_page(viewport={"width": 320, "height": 700})
    page = watched.page
    page.goto(f"{service.url}/?locale=ar")
    page.wait_for_function("() => document.querySelectorAll('.grid iframe').length === 8")  # 4 layouts x 2 themes
    assert page.evaluate("() => [document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, room: document.documentElement.clientWidth,"
        " out: [...document.querySelectorAll('h1, h2, h3, p, pre, figure')].filter(e => {"
        "   const r = e.getBoundingClientRect();"
        "   return r.left < -0.5 || r.right > document.documentElement.clientWidth + 0.5;"
        " }).map(e => e.tagName + ': ' + e.textContent.slice(0, 40))})"
    )
    assert widths["page"] <= widths["room"] and widths["out"] == [], widths
    watched.assert_clean(service.url)
