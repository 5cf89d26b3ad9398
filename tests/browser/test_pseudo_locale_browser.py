"""The pseudo-locale en_XA (every text accented and lengthened, see ticker/render/i18n.py) in every layout,
from the narrowest supported width up, in a real Chromium.

A longer language must not break the widget: with the content that breaks layouts (conftest.py's
CONTENT_MARKET: a 20-character symbol, yen prices, a stale and an unavailable row), no text runs out of
its box or the page, none overlaps another, and none is cut where the reader would lose something (a
name or symbol may end in "…": the other one, or the icon, still tells the coin). Each layout at its
narrowest width goes to build/screenshots/ as `pseudo-<layout>-<width>.png`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import Service, Watched, require_browser, serving_content
from tests.browser.test_layout_browser import MEASURE, WIDTHS, layout_faults
from tests.browser.texts import text_faults, texts

pytestmark = pytest.mark.e2e

require_browser()


@pytest.fixture(scope="module")
def pseudo_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The content service with `widget.locale = "en_XA"` (visitors cannot ask for the pseudo-locale)."""
    with serving_content(tmp_path_factory.mktemp("browser-pseudo"), widget='locale = "en_XA"') as service:
        yield service


@pytest.mark.parametrize("layout", ["list", "compact", "ticker"])
def test_longer_texts_fit_at_every_width(
    layout: str, pseudo_service: Service, open_page: Callable[..., Watched], screenshots: Path
) -> None:
    widths = WIDTHS[layout]
    watched = open_page(viewport={"width": widths[0], "height": 900})
    page = watched.page
    page.goto(f"{pseudo_service.url}/widget?layout={layout}&theme=light&currency=jpy")
    page.wait_for_function("() => [...document.images].every(img => img.complete && img.naturalWidth > 0)")
    # The page really is in the pseudo-locale: its title is the lengthened one.
    title = page.title()
    assert title.startswith("[") and title.endswith("]") and "Ṁàŕķéţ" in title, title
    faults = []
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        faults += [f"{width} px: {fault}" for fault in layout_faults(layout, page.evaluate(MEASURE))]
        faults += [f"{width} px: {fault}" for fault in text_faults(texts(page))]
        if width == widths[0]:
            page.locator(".tk").screenshot(path=screenshots / f"pseudo-{layout}-{width}.png", animations="disabled")
    assert faults == [], "\n".join(faults)
    watched.assert_clean(pseudo_service.url)


def test_the_landing_page_fits_a_phone_in_longer_words(
    pseudo_service: Service, open_page: Callable[..., Watched]
) -> None:
    """At 320 px the lengthened headings, snippets and previews take the width there is: no sideways scrolling."""
    watched = open_page(viewport={"width": 320, "height": 700})
    page = watched.page
    page.goto(f"{pseudo_service.url}/")
    page.wait_for_function("() => document.querySelectorAll('.grid iframe').length === 8")  # 4 layouts x 2 themes
    assert "Ṁàŕķéţ" in page.inner_text("h1")
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, room: document.documentElement.clientWidth,"
        " wider: [...document.querySelectorAll('h1, h2, h3, p, pre, figure')]"
        ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)"
        ".map(e => e.tagName + ': ' + e.textContent.slice(0, 40))})"
    )
    assert widths["page"] <= widths["room"] and widths["wider"] == [], widths
    watched.assert_clean(pseudo_service.url)
