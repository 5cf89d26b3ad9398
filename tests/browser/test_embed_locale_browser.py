"""embed.js on a blog in other languages: each iframe's title (what a screen reader announces for the
frame) is in the language of its `data-locale`, guessed from embed.js's table at once and then set to
the widget's own <title> once it loads — also where the guess was wrong (pt_AO reads pt_PT, zh_Hant_TW
has no catalog and reads English)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.browser.conftest import Service, Watched, require_browser
from tests.fake_upstream import LocalServer
from ticker.render.i18n import language

pytestmark = pytest.mark.e2e

LOCALES = ("de_AT", "pt_AO", "zh_Hant_TW", "ar")
BLOG = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A multilingual blog</title>
<link rel="icon" href="data:,"></head><body>{scripts}</body></html>"""


@pytest.fixture(scope="module")
def blog(service: Service) -> Iterator[str]:
    scripts = "".join(
        f'<div><script src="{service.url}/embed.js" data-coins="BTC" data-locale="{locale}" async></script></div>'
        for locale in LOCALES
    )
    body = BLOG.format(scripts=scripts).encode()
    with LocalServer(lambda target, headers: (200, body, {"content-type": "text/html; charset=utf-8"})) as server:
        yield f"{server.origin}/"


def test_each_iframe_is_titled_in_the_language_of_its_data_locale(
    service: Service, blog: str, open_page: Callable[..., Watched]
) -> None:
    require_browser()
    expected = [language(locale).gettext("Latest Market Prices") for locale in LOCALES]
    assert expected[0] == "Aktuelle Marktkurse" and expected[2] == "Latest Market Prices"
    assert len(set(expected)) == len(expected)  # four languages, four titles
    watched = open_page(viewport={"width": 800, "height": 900})
    page = watched.page
    page.goto(blog)
    page.wait_for_function(f"() => document.querySelectorAll('iframe').length === {len(LOCALES)}")
    for frame in page.frames[1:]:
        frame.wait_for_load_state("load")
    page.wait_for_function(
        "expected => [...document.querySelectorAll('iframe')].every((f, i) => f.title === expected[i])",
        arg=expected,
        timeout=10_000,
    )
    langs = [frame.evaluate("() => document.documentElement.lang") for frame in page.frames[1:]]
    assert sorted(langs) == sorted(["de", "pt-PT", "en", "ar"])
