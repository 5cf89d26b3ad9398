from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import FULL_CONFIG, NOW, full_snapshot, quote, settings_from, snapshot_of
from ticker.config import load_settings
from ticker.config.settings import VISITOR_LOCALES
from ticker.models import ProviderStatus, Snapshot
from ticker.render.board import Board, Row
from ticker.render.i18n import language
from ticker.render.widget import Page, WidgetRenderer
from ticker.web.query import WidgetOptions

RENDERER = WidgetRenderer(load_settings(None))


@pytest.fixture
def settings(tmp_path):
    return settings_from(tmp_path, FULL_CONFIG)


def rows(html: str) -> dict[str, str]:
    return {
        m.group(1): m.group(0) for m in re.finditer(r'<li(?: class="tk-stale")? data-k="(\w+)">.*?</li>', html, re.S)
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
    assert '<span class="sr-only">Bitcoin, 90,917.04 US dollars, up 1.64 percent in 24 hours</span>' in html
    assert '<img src="/icons/BTC" alt=""' in found["BTC"]  # served by us, never the provider
    assert "Updated 18:19 UTC" in html
    assert '<a href="https://www.coingecko.com/" target="_blank" rel="noopener noreferrer">CoinGecko</a>' in html


async def test_sub_cent_prices_keep_four_significant_digits(make_client, settings):
    snap = snapshot_of(quote("ARRR", 0.00001234), quote("ETH", 0.14123456), quote("BTC", 0.004200))
    found = rows((await (await make_client(settings, snap)).get("/widget?coins=ARRR,ETH,BTC")).text)
    assert "<b>$0.1412</b>" in found["ETH"] and "<b>$0.0042</b>" in found["BTC"]  # no trailing zeros
    # Below 0.0001: the zeros as a count, every digit for screen readers and on hover.
    assert '<b title="$0.00001234">$0.0₄1234</b>' in found["ARRR"]
    assert "Pirate Chain, 0.00001234 US dollars" in found["ARRR"]


async def test_locale_and_currency_formatting(make_client, settings):
    client = await make_client(settings, full_snapshot())
    html = (await client.get("/widget?coins=BTC&currency=eur&locale=de-DE")).text
    assert "84.123,55\xa0€" in html and "1,70\xa0%" in html and '<html lang="de"' in html


async def test_theme_layout_and_transparency_are_applied(make_client, settings):
    client = await make_client(settings, full_snapshot())
    html = (await client.get("/widget?theme=dark&layout=compact&transparent=1")).text
    assert '<html lang="en" dir="ltr" class="theme-dark transparent">' in html
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
    assert "Demo: simulated prices" in (await (await make_client(settings, snap)).get("/widget?layout=ticker")).text


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


def inline(html: str, tag: str) -> str:
    return re.search(rf"<{tag}>(.*?)</{tag}>", html, re.S).group(1)


async def test_ticker_layout_scrolls_a_hidden_copy_and_can_pause(make_client, settings):
    html = (await (await make_client(settings, full_snapshot())).get("/widget?layout=ticker")).text
    assert '<input type="checkbox" id="tk-pause" class="tk-pause"><label for="tk-pause">' in html
    assert '<ol class="tk-copy" aria-hidden="true">' in html
    main, rest = html.split('<ol class="tk-copy" aria-hidden="true">')
    copy = rest.split("</ol>")[0]
    assert main.count('class="sr-only">Bitcoin,') == 1 and 'sr-only">Bitcoin' not in copy
    assert "data-k" not in copy  # the script refreshes the copy from the readable list
    css = inline(html, "style")
    assert "@media (prefers-reduced-motion:reduce){.tk-tape{animation:none}" in css
    assert (
        ".tk-tape:hover,.tk-tape:focus-within,.tk-pause:checked~.tk-view .tk-tape{animation-play-state:paused}" in css
    )


async def test_sparklines_on_request(make_client, settings):
    base = full_snapshot()
    hist = {"BTC": tuple((490000 + i, 90000.0 + (i % 7) * 10) for i in range(168))}
    snap = Snapshot(base.generated_at, base.quotes, base.providers, history=hist)
    client = await make_client(settings, snap)
    assert "<svg" not in (await client.get("/widget")).text
    html = (await client.get("/widget?sparkline=1")).text
    assert html.count('<svg class="tk-spark') == 1  # BTC has history; the others show none
    assert "<svg" not in (await client.get("/widget?sparkline=1&currency=eur")).text


async def test_refresh_points_at_the_canonical_fragment_and_no_js_still_refreshes(make_client, settings):
    html = (await (await make_client(settings, full_snapshot())).get("/widget?coins=eth,btc&x=%3Cxss%3E")).text
    assert (
        'data-src="/widget/fragment?coins=ETH,BTC&amp;currency=usd&amp;theme=auto&amp;layout=list&amp;locale=en_US'
        '&amp;transparent=0&amp;sparkline=0"' in html
    )
    assert '<noscript><meta http-equiv="refresh" content="60"></noscript>' in html
    assert "xss" not in html


async def test_transparent_widgets_declare_no_colour_scheme(make_client, settings):
    client = await make_client(settings, full_snapshot())
    assert '<meta name="color-scheme" content="light dark">' in (await client.get("/widget")).text
    assert '<meta name="color-scheme" content="dark">' in (await client.get("/widget?theme=dark")).text
    assert "color-scheme" not in (await client.get("/widget?transparent=1")).text.split("<style>")[0]


@pytest.mark.parametrize("layout", ["list", "compact", "ticker"])
@pytest.mark.parametrize("age", [30, 3600], ids=["fresh", "stale"])
async def test_eleven_coins_weigh_under_13_kb_with_at_most_2_kb_of_js(make_client, tmp_path, layout, age):
    settings = settings_from(tmp_path, "")  # the 11 default coins
    snap = snapshot_of(*(quote(c.symbol, 1234.5678, change=-1.23, age=age) for c in settings.market.coins))
    response = await (await make_client(settings, snap)).get(f"/widget?layout={layout}")
    assert len(response.content) < 13 * 1024, len(response.content)  # about 3 KB gzipped
    assert len(inline(response.text, "script").encode()) <= 2 * 1024


@pytest.mark.parametrize("layout", ["list", "table"])
async def test_csp_allows_exactly_the_inline_style_and_script_by_hash(make_client, settings, layout):
    response = await (await make_client(settings, full_snapshot())).get(f"/widget?layout={layout}")
    csp = response.headers["content-security-policy"]
    for tag, directive in (("style", "style-src"), ("script", "script-src")):
        digest = base64.b64encode(hashlib.sha256(inline(response.text, tag).encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp.split(directive)[1].split(";")[0]
    assert "default-src 'none'" in csp and "img-src 'self' data:" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'self' *" in csp and "unsafe-inline" not in csp


async def test_icons_are_ours_with_a_monogram_fallback(make_client, settings):
    client = await make_client(settings, full_snapshot())
    mono = await client.get("/icons/btc")
    assert mono.status_code == 200 and mono.headers["content-type"] == "image/svg+xml"
    assert ">BTC</text>" in mono.text and "max-age=86400" in mono.headers["cache-control"]
    again = await client.get("/icons/BTC", headers={"if-none-match": mono.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/icons/DOGE")).status_code == 404


async def test_embed_js_is_small_and_checks_the_message_origin(make_client, settings):
    response = await (await make_client(settings, full_snapshot())).get("/embed.js")
    assert response.headers["content-type"].startswith("text/javascript")
    js = response.text
    assert len(js.encode()) < 3 * 1024  # with the iframe title in every language
    assert "e.origin!==o||e.source!==f.contentWindow" in js and "h>=20&&h<=5000" in js
    assert 'f.referrerPolicy="no-referrer"' in js


async def test_embed_js_titles_the_iframe_in_the_language_of_data_locale(make_client, settings):
    """The iframe's title (what a screen reader announces for the frame) is translated like the widget: a
    table by catalog for the first guess, then the widget's own <title> posted with its height."""
    js = (await (await make_client(settings, full_snapshot())).get("/embed.js")).text
    titles = json.loads(re.search(r"const T=(\{.*?\}),L=", js).group(1))
    assert titles["de"] == "Aktuelle Marktkurse" and titles["en"] == "Latest Market Prices"
    assert set(titles) >= {"de", "en"} and all(titles.values())
    assert '||"Latest Market Prices";' in js  # widget.locale's title when nothing matches
    assert "f.title=m.title.slice(0,200)" in js and "!s.dataset.title" in js  # the exact title, unless the site set one
    widget = (await (await make_client(settings, full_snapshot())).get("/widget?locale=de")).text
    assert "<title>Aktuelle Marktkurse</title>" in widget


async def test_embed_js_keeps_an_operators_own_title_untranslated(make_client, tmp_path):
    own = settings_from(tmp_path, FULL_CONFIG + '[widget]\ntitle = "Kurse <live>"\n')
    js = (await (await make_client(own, full_snapshot())).get("/embed.js")).text
    assert "const T={}," in js and '||"Kurse \\u003clive\\u003e";' in js


async def test_landing_page_speaks_the_requested_locale_and_puts_it_in_snippets_and_previews(make_client, settings):
    client = await make_client(settings, full_snapshot())
    page = (await client.get("/?locale=de_DE")).text
    assert '<html lang="de" dir="ltr"' in page and "<h1>Aktuelle Marktkurse: Ihr Widget</h1>" in page
    assert page.count('data-locale="de_DE"') == 8  # the previews
    assert page.count("data-locale=&#34;de_DE&#34;") == 1  # the script snippet, shown as code
    assert "theme=auto&amp;amp;locale=de_DE&#34;" in page and "title=&#34;Aktuelle Marktkurse&#34;" in page
    default = (await client.get("/")).text
    assert '<html lang="en" dir="ltr"' in default and "data-locale" not in default
    bad = await client.get("/?locale=xx_YY")
    assert bad.status_code == 400 and "locale: unknown locale" in bad.text and "Traceback" not in bad.text


async def test_landing_page_previews_every_layout_and_theme_and_shows_snippets(make_client, settings):
    response = await (await make_client(settings, full_snapshot())).get("/")
    html = response.text
    assert response.status_code == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    for layout in ("list", "compact", "ticker"):
        for theme in ("light", "dark"):
            assert f'data-layout="{layout}" data-theme="{theme}"' in html
    assert 'data-layout="table" data-columns="rank,price,change_24h,market_cap" data-theme="dark"' in html
    assert "&lt;script src=&#34;http://testserver/embed.js&#34; data-coins=&#34;BTC,ETH&#34;" in html
    assert "&lt;iframe src=&#34;http://testserver/widget?coins=BTC,ETH&amp;amp;theme=auto&#34;" in html


# --- what the widget shows is right and safe (issue 11) ---


@pytest.mark.parametrize("url", ["/widget", "/widget/fragment", "/widget?layout=ticker", "/widget?layout=compact"])
async def test_an_absurd_price_shows_its_row_unavailable_never_a_500(make_client, settings, url):
    snap = snapshot_of(quote("BTC", 1e26, change=1e300), quote("ETH", 3021.5512, change=-2.3127))
    response = await (await make_client(settings, snap)).get(url)
    assert response.status_code == 200
    found = rows(response.text)
    assert "<b>$3,021.55</b>" in found["ETH"] and "▼ 2.31%" in found["ETH"]
    assert "<b>—</b>" in found["BTC"] and "1,000" not in found["BTC"] and "Bitcoin, price unavailable" in found["BTC"]


async def test_a_change_that_rounds_to_zero_reads_unchanged(make_client, settings):
    snap = snapshot_of(quote("BTC", 90917.04, change=-0.0001), quote("ETH", 3021.55, change=0.004))
    snap = snapshot_of(*snap.quotes.values(), quote("ARRR", 0.5, change=-0.0))
    html = (await (await make_client(settings, snap)).get("/widget")).text
    found = rows(html)
    for symbol in ("BTC", "ETH", "ARRR"):
        assert '<small class="tk-flat">0.00%</small>' in found[symbol], found[symbol]
        assert "▲" not in found[symbol] and "▼" not in found[symbol]
        assert "unchanged in 24 hours" in found[symbol] and " up " not in found[symbol]
    assert "-0.0" not in html and "down 0.00" not in html


async def test_money_in_each_currencys_own_digits_with_cldr_spacing(make_client, tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = ["BTC", "ETH"]\ncurrencies = ["usd", "jpy", "kwd", "chf", "pkr", "btc", "sats"]\n',
    )
    snap = snapshot_of(
        quote("BTC", 13709330.22, currency="jpy"),
        quote("BTC", 90481.58, currency="kwd"),
        quote("BTC", 80072.19, currency="chf"),
        quote("BTC", 25465862.9, currency="pkr"),
        quote("ETH", 0.0345678912, currency="btc"),
        quote("ETH", 3456789.4, currency="sats"),
        quote("ETH", 0.00000712, currency="usd"),
    )
    client = await make_client(settings, snap)
    shown = {
        currency: rows((await client.get(f"/widget?currency={currency}")).text)
        for currency in ("jpy", "kwd", "chf", "pkr", "btc", "sats", "usd")
    }
    assert "<b>¥13,709,330</b>" in shown["jpy"]["BTC"]
    assert "<b>KWD\xa090,481.580</b>" in shown["kwd"]["BTC"]
    assert "<b>CHF\xa080,072.19</b>" in shown["chf"]["BTC"]
    assert "<b>PKR\xa025,465,862.90</b>" in shown["pkr"]["BTC"]
    assert "<b>0.03457\xa0BTC</b>" in shown["btc"]["ETH"]
    assert "<b>3,456,789\xa0sats</b>" in shown["sats"]["ETH"]
    assert '<b title="$0.00000712">$0.0₅712</b>' in shown["usd"]["ETH"]
    assert "13,709,330 Japanese yen" in shown["jpy"]["BTC"]


def foot(html: str) -> str:
    return re.search(r'<p class="tk-foot" data-k="foot">(.*?)</p>', html, re.S).group(1)


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


async def test_footer_says_why_rows_are_unavailable_and_when_prices_were_last_seen(make_client, settings):
    last_ok = NOW - timedelta(hours=25)
    down = {"coingecko": ProviderStatus("backoff", last_ok, "HTTP 503"), "kraken": ProviderStatus("failing")}
    # Every price is past max_stale (a day-long outage): no "waiting", the credit stays, and why.
    old = snapshot_of(quote("BTC", 90917.04, age=90000), quote("ETH", 3021.55, age=90000))
    client = await make_client(settings, Snapshot(NOW, old.quotes, down))
    for url in ("/widget", "/widget?layout=ticker", "/widget/fragment"):
        html = (await client.get(url)).text
        said = text(foot(html))
        assert "Waiting" not in html and "Updated Nov 26 17:20 UTC" in said, said
        assert "Sources unreachable since Nov 26 17:20 UTC" in said and "Data: CoinGecko" in said
    found = rows(html)
    assert "Bitcoin, price unavailable, sources unreachable since Nov 26 17:20 UTC" in found["BTC"]
    # Stale rows say "as of"; the footer says why they are stale.
    stale = snapshot_of(quote("BTC", 90917.04, age=3600))
    html = (await (await make_client(settings, Snapshot(NOW, stale.quotes, down))).get("/widget?coins=BTC")).text
    assert "as of 17:20 UTC" in rows(html)["BTC"] and "Sources unreachable since Nov 26" in foot(html)
    # Never priced, no provider ever answered: unreachable, still not "waiting".
    never = {"coingecko": ProviderStatus("failing", None, "connection refused")}
    html = (await (await make_client(settings, Snapshot(NOW, {}, never))).get("/widget")).text
    assert "Waiting" not in html and text(foot(html)) == "Sources unreachable · Data: fixed prices set by this site"


async def test_footer_names_a_currency_no_source_serves(make_client, settings):
    unserved = replace(settings, market=replace(settings.market, unserved_currencies=frozenset({"eur"})))
    client = await make_client(unserved, full_snapshot())
    said = text(foot((await client.get("/widget?currency=eur&coins=ETH,OPENVC")).text))
    assert said == "No configured source for this currency"  # static OPENVC has no eur price either
    said = text(foot((await client.get("/widget?coins=ETH,XNO")).text))
    assert "No configured source" not in said and said == "Updated 18:13 UTC · Data: CoinGecko"


async def test_footer_never_waits_when_every_coin_is_static(make_client, tmp_path):
    settings = settings_from(
        tmp_path, '[market]\ncoins = [{ symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]\n'
    )
    for snap in (None, Snapshot(NOW, {}, {"coingecko": ProviderStatus("idle")})):
        html = (await (await make_client(settings, snap)).get("/widget")).text
        assert text(foot(html)) == "Data: fixed prices set by this site" and "Waiting" not in html


async def test_footer_waits_only_before_the_first_snapshot(make_client, settings):
    html = (await (await make_client(settings)).get("/widget?coins=BTC,ETH")).text
    assert text(foot(html)) == "Waiting for the first prices"
    assert "Bitcoin, price unavailable, waiting for the first prices" in rows(html)["BTC"]


LAYOUT_OPTIONS = st.builds(
    WidgetOptions,
    theme=st.sampled_from(["light", "dark", "auto"]),
    layout=st.sampled_from(["list", "compact", "ticker"]),
    locale=st.sampled_from(sorted(VISITOR_LOCALES)),
    transparent=st.booleans(),
    sparkline=st.booleans(),
)
any_number = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e26, 1e308, 5e-324, -0.0, 0.0])


@hypothesis_settings(max_examples=400, deadline=None)
@given(
    price=any_number | st.none(),
    change=any_number | st.none(),
    history=st.lists(any_number, max_size=5),
    currency=st.sampled_from(["usd", "eur", "jpy", "kwd", "chf", "pkr", "btc", "eth", "sats"]),
    options=LAYOUT_OPTIONS,
)
def test_no_row_can_take_the_widget_down(price, change, history, currency, options):
    """One row with any numbers at all: the page renders, the good row is intact, the bad one shows a
    price of at most 4 significant digits below 1 (or "—"), and no direction for a change shown as 0.00."""
    bad = Row("NEO", "Neo", price, change, NOW, "coingecko", False, tuple(history))
    good = Row("BTC", "Bitcoin", 90917.04, 1.64, NOW, "coingecko", False)
    board = Board(currency, NOW, (bad, good))
    html = RENDERER.document(board, options, now=NOW, page=Page())
    assert html.startswith("<!doctype html>") and len(re.findall(r"<li[ >]", html)) == 2 * (
        1 + (options.layout == "ticker")
    )
    neo = rows(html)["NEO"]
    lang = language(options.locale)
    unavailable = lang.gettext("%(name)s, price unavailable") % {"name": "Neo"}
    assert "Neo" in neo and (unavailable in neo) == (price is None or not math.isfinite(price) or not 0 < price < 1e15)
    if "tk-flat" in neo:
        unchanged = lang.ngettext("unchanged in %(hours)d hour", "unchanged in %(hours)d hours", 24) % {"hours": 24}
        assert "▲" not in neo and "▼" not in neo and unchanged in neo
    assert "-0.0" not in neo and "nan" not in neo.lower() and "inf" not in neo.lower()
