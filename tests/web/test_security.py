"""Security properties: hostile queries and upstreams, headers on every response, bounded memory, secret keys.

- Property tests (hypothesis): random query strings, paths and headers on every route never give a 5xx,
  and HTML never carries markup that a visitor or an upstream injected.
- Hostile upstream strings (names, symbols, icon URLs, junk keys) never reach the HTML unescaped, and
  no upstream URL reaches a visitor's page; hostile config names are escaped in HTML, intact in JSON.
- Security headers on every kind of response, CSP and CORS as configured.
- Thousands of junk queries leave the prepared-response caches at their bound and cost no upstream request.
- A provider key set in the environment appears nowhere but in the outgoing request header: not in any
  response, log line (text or JSON, at DEBUG), CLI output, snapshot file or URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_from_bytes, urlsplit

import anyio
import anyio.from_thread
import httpx
import pytest
import respx
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from starlette.routing import Route

from tests.conftest import (
    CG,
    NOW,
    FakeClock,
    asgi_request,
    fixture_json,
    quote,
    serving,
    settings_from,
    snapshot_of,
    wait_for_price,
)
from tests.fake_upstream import LocalServer, icon_png
from tests.service import Service, free_port, run_ticker, wait_until
from ticker import __version__
from ticker.config import Settings, load_settings
from ticker.exceptions import ConfigError, ProviderError
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory
from ticker.render.chart_page import ChartRenderer
from ticker.render.widget import WidgetRenderer
from ticker.runtime import create_app
from ticker.store import SnapshotStore
from ticker.web.response_cache import MAX_VARIANTS, PreparedEndpoint

SETTINGS = """
[market]
coins = ["BTC", "ETH", "nano", { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]
currencies = ["usd", "eur"]
[poller]
interval_seconds = 60
providers = ["coingecko"]
[providers.coingecko]
requests_per_minute = 600
[server]
frame_ancestors = ["https://blog.example"]
[cache]
snapshot_path = ""
"""

# What an attacker would send, in a query or from a compromised upstream.
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><script>alert(1)</script>',
    "' onerror='alert(1)",
    '" onerror="alert(1)',
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "</title><svg onload=alert(1)>",
    "<!--",
    "]]><x>",
    "{{7*7}}",
    "${7*7}",
    "\x00<script>",
    "%3Cscript%3Ealert(1)%3C/script%3E",
]
# A payload that carries markup (a tag or an attribute break) must never appear verbatim in HTML.
MARKUP_PAYLOADS = [p for p in PAYLOADS if "<" in p or '"' in p or "'" in p]
QUERY_KEYS = [
    *("coins", "currency", "theme", "layout", "locale", "transparent", "sparkline", "symbol", "callback"),
    *("coin", "range"),
]
SYMBOLS = ["BTC", "btc", "ETH", "NANO", "xno", "OPENVC", "DOGE", "", " ", "BTC ", ",", "ＢＴＣ", "İ", "ß"]


def prepared_endpoints(app: Any) -> dict[str, PreparedEndpoint]:
    return {
        route.name: route.endpoint
        for route in app.routes
        if isinstance(route, Route) and isinstance(route.endpoint, PreparedEndpoint)
    }


# --- HTML safety: parse what we serve and allow only the markup our templates make ---


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._in: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in, self._text = tag, []
            self._attrs = dict(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            if tag == "script":
                self.scripts.append((self._attrs, "".join(self._text)))
            else:
                self.styles.append("".join(self._text))
            self._in = None


def parse_html(text: str) -> Markup:
    parser = Markup()
    parser.feed(text)
    parser.close()
    return parser


def _is_markup(value: str) -> bool:
    """A whole tag, or a quote inside something long enough to break out of an attribute.

    A lone "<" or '"' is in every HTML page: finding one proves nothing (hypothesis once tried "<").
    """
    return bool(re.search(r"<[A-Za-z!/][^>]*>", value)) or (len(value) >= 6 and any(q in value for q in "\"'"))


def assert_safe_html(
    text: str, *, allowed_tags: set[str], icon_prefix: str = "/icons/", injected: Sequence[str] = ()
) -> None:
    """No injected markup, event handler, javascript: URL, foreign script or foreign image in `text`."""
    for payload in [*MARKUP_PAYLOADS, *(p for p in injected if _is_markup(p))]:
        assert payload not in text, f"raw {payload!r} in HTML"
    page = parse_html(text)
    for tag, attrs in page.tags:
        assert tag in allowed_tags, f"unexpected <{tag}> in HTML: {attrs}"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"event handler <{tag} {name}={value!r}>"
            assert "javascript:" not in (value or "").lower().replace(" ", ""), f"<{tag} {name}={value!r}>"
        if tag == "img":
            assert (attrs.get("src") or "").startswith(icon_prefix), f"image from elsewhere: {attrs}"
    for attrs, body in page.scripts:
        if "src" in attrs:
            assert attrs["src"] == "/embed.js" and not body.strip(), attrs
        else:
            assert body in (WidgetRenderer.JS, ChartRenderer.JS), "an inline script that is not the widget's own"
    for style in page.styles:
        assert style in (WidgetRenderer.CSS, ChartRenderer.CSS), "an inline style that is not the widget's own"


@pytest.fixture(scope="module")
def portal() -> Iterator[anyio.from_thread.BlockingPortal]:
    """One event loop in a thread for the sync hypothesis tests: the app's anyio objects live in it."""
    with anyio.from_thread.start_blocking_portal() as running:
        yield running


async def _build(settings: Settings) -> Any:
    store = SnapshotStore()
    await store.put(
        snapshot_of(
            quote("BTC", 90917.04),
            quote("BTC", 84123.55, currency="eur"),
            quote("ETH", 3021.55, age=600),  # stale
            quote("XNO", 0.93, change=None, age=90000),  # past max_stale: unavailable
        )
    )
    history = MemoryHistory()
    await history.append([Tick("BTC", "usd", NOW.timestamp() - 3600 * i, 90000.0 + 50 * i) for i in range(48)])
    return create_app(settings, store=store, clock=FakeClock(), history=history)


@pytest.fixture(scope="module")
def fuzzed_app(portal, tmp_path_factory) -> Any:
    return portal.call(_build, settings_from(tmp_path_factory.mktemp("fuzz"), SETTINGS))


@pytest.fixture(scope="module")
def own_pages(portal, fuzzed_app) -> list[str]:
    """What our templates make: each layout, with sparklines, the fragment, the landing and error pages."""
    urls = [("/widget", f"layout={layout}&sparkline=1") for layout in ("list", "compact", "ticker")]
    urls += [("/widget/fragment", "layout=ticker"), ("/", ""), ("/widget", "theme=nope")]
    urls += [("/widget/chart", "range=24h"), ("/widget/chart", "coin=ETH"), ("/widget/chart", "range=1w")]
    return [portal.call(asgi_request, fuzzed_app, path, query.encode()).text for path, query in urls]


@pytest.fixture(scope="module")
def allowed_tags(own_pages) -> set[str]:
    """Every tag our templates make."""
    tags = {tag for text in own_pages for tag, _ in parse_html(text).tags}
    assert {"html", "section", "li", "img", "script", "style", "p"} <= tags
    return tags


# --- strategies ---

junk_text = st.text(st.characters(codec="utf-8"), max_size=60) | st.sampled_from(PAYLOADS)
# What a server passes on as a query string: uvicorn (httptools) answers 400 itself to a request target with
# bytes outside visible ASCII, so the app sees printable ASCII, with everything else percent-encoded.
VISIBLE = bytes(range(0x21, 0x7F))
value_text = (
    junk_text
    | st.sampled_from(["list", "compact", "ticker", "light", "dark", "auto", "usd", "EUR", "1", "0", "de_DE", "und"])
    | st.lists(st.sampled_from(SYMBOLS) | junk_text, max_size=12).map(",".join)
    | st.integers(990, 20_000).map(lambda n: "B" * n)
)


def encode(text: str, how: str) -> bytes:
    """`quoted`: everything but letters, digits and `,` percent-encoded; `raw`: as a browser sends it (only
    what is not visible ASCII encoded, so `&`, `=`, `%`, `<`, `"` go through as they are); `safe`: raw but
    with the separators `&`, `=`, `#` encoded too."""
    raw = text.encode("utf-8", "surrogatepass")
    if how == "quoted":
        return quote_from_bytes(raw, safe=b",").encode()
    visible = quote_from_bytes(raw, safe=VISIBLE.replace(b"%", b"") + b"%").encode()
    if how == "raw":
        return visible
    return visible.replace(b"&", b"%26").replace(b"=", b"%3D").replace(b"#", b"%23")


@st.composite
def query_strings(draw) -> tuple[bytes, list[str]]:
    """A query string as bytes, and the decoded values in it (to look for in the response)."""
    kind = draw(st.sampled_from(["pairs", "pairs", "pairs", "binary", "text"]))
    if kind == "binary":
        raw = draw(st.lists(st.sampled_from(VISIBLE), max_size=400).map(bytes))
        return raw, []
    if kind == "text":
        text = draw(junk_text)
        return encode(text, draw(st.sampled_from(["quoted", "raw", "safe"]))), [text]
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | junk_text, value_text), max_size=12)
    )  # repeated keys included
    how = draw(st.sampled_from(["quoted", "raw", "safe"]))
    parts = [
        encode(key, how) + (b"=" + encode(value, how) if value or draw(st.booleans()) else b"") for key, value in pairs
    ]
    return b"&".join(parts), [value for _, value in pairs]


request_headers = st.lists(
    st.tuples(
        st.sampled_from([b"origin", b"if-none-match", b"accept-encoding", b"accept", b"host", b"x-forwarded-host"]),
        st.binary(max_size=80).map(lambda b: b.translate(None, b"\r\n\x00"))
        | st.sampled_from([b"*", b"gzip", b"https://blog.example", b'"x", W/"y"', b"<script>"]),
    ),
    max_size=4,
)
methods = st.sampled_from(["GET", "GET", "GET", "GET", "HEAD", "OPTIONS", "POST"])
path_segment = st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=40) | st.sampled_from(
    SYMBOLS + PAYLOADS[:6] + ["..", "%2e%2e", "BTC%00", "..%2f..%2fetc%2fpasswd"]
)

ROUTES = {
    "index": st.just("/"),
    "widget": st.just("/widget"),
    "fragment": st.just("/widget/fragment"),
    "prices": st.just("/api/v1/prices"),
    "price": path_segment.map(lambda s: f"/api/v1/prices/{s}"),
    "stream": st.just("/api/v1/stream"),
    "history": path_segment.map(lambda s: f"/api/v1/history/{s}"),
    "chart": st.just("/widget/chart"),
    "healthz": st.just("/healthz"),
    "readyz": st.just("/readyz"),
    "metrics": st.just("/metrics"),
    "openapi": st.just("/openapi.json"),
    "embed_js": st.just("/embed.js"),
    "icon": path_segment.map(lambda s: f"/icons/{s}"),
    "landing_css": st.just("/landing.css"),
    "site_css": st.just("/widget/site.css"),
    "unknown": st.lists(path_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
}
EXAMPLES_PER_ROUTE = 150


@pytest.mark.parametrize("route", list(ROUTES))
def test_random_queries_never_give_a_5xx_nor_reflect_markup(portal, fuzzed_app, own_pages, allowed_tags, route, capsys):
    count, statuses = 0, Counter[int]()

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(path=ROUTES[route], query=query_strings(), method=methods, headers=request_headers)
    def check(path: str, query: tuple[bytes, list[str]], method: str, headers: list[tuple[bytes, bytes]]) -> None:
        nonlocal count
        count += 1
        raw, values = query
        reply = portal.call(lambda: asgi_request(fuzzed_app, path, raw, method=method, headers=headers))
        statuses[reply.status] += 1
        assert reply.status < 500, f"{method} {path}?{raw!r}: {reply.status} {reply.text[:300]}"
        assert reply.header("server") is None
        if reply.content_type == "text/html":
            # A value that is a piece of our own markup (a lone `"`, `<b`) proves nothing when found in a page.
            injected = [value for value in values if not any(value in page for page in own_pages)]
            assert_safe_html(reply.text, allowed_tags=allowed_tags, injected=injected)
        elif reply.content_type == "application/json" and method != "HEAD" and reply.body:
            json.loads(reply.content)
        if reply.status == 400 and reply.content_type == "application/json":
            assert len(reply.body) < 2000  # echoes are short: a huge value is never reflected whole

    check()
    with capsys.disabled():
        print(f"\n{route}: {count} hypothesis examples, statuses {dict(sorted(statuses.items()))}", end="")
    assert count == EXAMPLES_PER_ROUTE


# --- hostile upstream and hostile config ---

HOSTILE_MARKETS = [
    {
        "id": "bitcoin",
        "symbol": "<script>alert(1)</script>",
        "name": '" onerror="alert(1)',
        "image": 'https://evil.example/x.png" onerror="alert(1)',
        "sparkline_in_7d": {"price": [1.0, "<b>", None, 2.0, -1, 1e308]},
    },
    {"id": "ethereum", "symbol": "eth", "name": "<img src=x onerror=alert(1)>", "image": "javascript:alert(1)"},
    {"id": "nano", "symbol": '"><svg onload=alert(1)>', "name": "Nano", "image": "data:text/html,<script>x</script>"},
    {"id": "<script>", "symbol": "x", "name": "x", "image": "https://evil.example/svg.png"},
    "<script>alert(1)</script>",
]


def hostile_prices() -> dict[str, Any]:
    body = fixture_json("coingecko_simple_price_default_coins.constructed.json")
    return {
        "bitcoin": body["bitcoin"] | {"<script>": "alert(1)", "usd_24h_change": "<b>1</b>", "eur": "NaN"},
        "ethereum": body["ethereum"] | {"javascript:alert(1)": 1, "eur": -5},
        "nano": "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>": {"usd": 1.0},
        "__proto__": {"usd": 1.0},
    }


async def test_hostile_upstream_strings_never_reach_the_page(tmp_path, respx_mock):
    settings = settings_from(tmp_path, SETTINGS)
    respx_mock.get(f"{CG}/coins/markets").respond(200, json=HOSTILE_MARKETS)
    prices = respx_mock.get(f"{CG}/simple/price").respond(200, json=hostile_prices())
    # An "icon" that is an SVG with script, and one that is HTML labelled PNG: both must be refused.
    respx_mock.get(url__startswith="https://evil.example/x.png").respond(
        200,
        content=b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        headers={"content-type": "image/svg+xml"},
    )
    respx_mock.get("https://evil.example/svg.png").respond(
        200, content=b"<html><script>alert(1)</script></html>", headers={"content-type": "image/png"}
    )
    app = create_app(settings, clock=FakeClock())
    async with serving(app) as client:
        await wait_for_price(client)
        assert prices.call_count == 1
        body = (await client.get("/api/v1/prices?currency=usd")).json()
        assert [(c["symbol"], c["name"]) for c in body["coins"]] == [
            ("BTC", "Bitcoin"),
            ("ETH", "Ethereum"),
            ("XNO", "Nano"),
            ("OPENVC", "OpenVoiceCoin"),
        ]
        assert [c["icon_url"] for c in body["coins"]] == [f"/icons/{s}" for s in ("BTC", "ETH", "XNO", "OPENVC")]
        assert body["coins"][0]["change_24h_pct"] is None  # "<b>1</b>" is no number
        eur = (await client.get("/api/v1/prices?currency=eur")).json()["coins"]
        assert eur[0]["price"] is None and eur[1]["price"] is None  # "NaN" and -5 rejected
        allowed = {"html", "head", "meta", "link", "title", "style", "body", "section", "h2", "ol", "li", "img"}
        allowed |= {"span", "b", "small", "p", "a", "script", "noscript", "svg", "polyline", "path", "input"}
        allowed |= {"label", "div", "main", "h1", "h3", "pre", "code", "em", "figure", "figcaption"}
        pages = [
            "/widget",
            "/widget?layout=ticker&sparkline=1",
            "/widget?currency=eur",
            "/widget/fragment?sparkline=1",
            "/",
        ]
        for url in pages:
            response = await client.get(url)
            assert response.status_code == 200, url
            assert_safe_html(response.text, allowed_tags=allowed)
            for hostile in ("evil.example", "assets.coingecko", "alert(1)", "data:text/html"):
                assert hostile not in response.text, (url, hostile)
        for symbol in ("BTC", "ETH", "XNO"):
            icon = await client.get(f"/icons/{symbol}")
            assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
            assert b"<script" not in icon.content and b"alert" not in icon.content  # our monogram, not theirs
        for request, _ in respx_mock.calls:
            assert request.url.scheme == "https" and not str(request.url).startswith(("javascript:", "data:"))


async def test_hostile_config_names_are_escaped_in_html_and_intact_in_json(make_client, tmp_path):
    name = "<img src=x onerror=alert(1)>"
    title = '</title><script>alert("t")</script>'
    settings = settings_from(
        tmp_path,
        f"""
[market]
coins = ["BTC", {{ symbol = "OPENVC", name = {json.dumps(name)}, price = 0.0042 }}]
[widget]
title = {json.dumps(title)}
""",
    )
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    allowed = {"html", "head", "meta", "link", "title", "style", "body", "section", "h2", "ol", "li", "img"}
    allowed |= {"span", "b", "small", "p", "a", "script", "noscript", "main", "h1", "h3", "pre", "code", "em"}
    allowed |= {"figure", "figcaption", "div", "input", "label"}
    for url in ("/widget", "/widget?layout=ticker", "/widget/fragment", "/"):
        text = (await client.get(url)).text
        assert_safe_html(text, allowed_tags=allowed, injected=[name, title])
        assert "&lt;img src=x onerror=alert(1)&gt;" in text or url == "/"
        assert "&lt;/title&gt;&lt;script&gt;" in text
    embed = (await client.get("/embed.js")).text
    fallback = embed.split("||T[P[0]]||", 1)[1]
    assert "</script>" not in embed and "<" not in fallback[:60]
    assert json.loads(fallback.split(";", 1)[0]) == title
    coin = (await client.get("/api/v1/prices/OPENVC")).json()
    assert coin["name"] == name
    assert (await client.get("/api/v1/prices?coins=OPENVC")).json()["coins"][0]["name"] == name


# --- every text from config reaches each output context escaped for that context ---
#
# Config strings that reach output: a coin's name (element text, the screen-reader sentence, JSON), the
# widget title (<title>, <h2>, aria-label, the landing page's headings, data-title attributes, its iframe
# snippet's title attribute, embed.js's JS string), symbols, currencies and the locale (validated to
# [A-Za-z0-9-] and Babel's names: a hostile one is a config error). css_file's path never reaches a page: the
# widget links /widget/site.css. No config string reaches inline CSS or the widget's inline script, which are
# constants allowed by hash.

HOSTILE_CONFIG_STRINGS = [
    "</script><script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "`${alert(1)}`",
    "</style><style>*{display:none}",
    "line\u2028separator\u2029paragraph",
    "{{7*7}} {% raw %}",
    "&amp; &lt;b&gt; &#34;",
    "</title></textarea><!--",
]


class Content(HTMLParser):
    """Every text node (with its enclosing tag) and every attribute value of a page, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.texts: list[tuple[str, str]] = []
        self.attrs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]
        if tag not in ("img", "meta", "link", "input", "br"):
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        self.texts.append((self.open[-1] if self.open else "", data))


def content(text: str) -> Content:
    parser = Content()
    parser.feed(text)
    parser.close()
    return parser


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's (\\uXXXX, \\", \\\\)."""
    return json.dumps(value)


def hostile_config(tmp_path: Path, hostile: str) -> Path:
    path = tmp_path / "ticker.toml"
    path.write_text(
        f"""
[market]
coins = ["BTC", {{ symbol = "OPENVC", name = {toml_string(hostile)}, price = 0.0042 }}]
[widget]
title = {toml_string(hostile)}
"""
    )
    return path


@pytest.mark.parametrize("hostile", HOSTILE_CONFIG_STRINGS)
async def test_config_strings_reach_every_context_escaped_and_intact(make_client, tmp_path, hostile, capsys):
    from ticker.cli import main

    path = hostile_config(tmp_path, hostile)
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err  # a valid config, as an operator writes
    client = await make_client(load_settings(path), snapshot_of(quote("BTC", 1.0)))
    tags = {"html", "head", "meta", "link", "title", "style", "body", "section", "h2", "ol", "li", "img"}
    tags |= {"span", "b", "small", "p", "a", "script", "noscript", "main", "h1", "h3", "pre", "code", "em"}
    tags |= {"figure", "figcaption", "div", "input", "label"}

    for url in ("/widget", "/widget?layout=ticker", "/widget?layout=compact", "/widget/fragment"):
        text = (await client.get(url)).text
        assert_safe_html(text, allowed_tags=tags, injected=[hostile])
        page = content(text)
        texts = [data for _, data in page.texts]
        assert ("b", hostile) in page.texts, url  # the coin's name, as written
        assert any(data.startswith(f"{hostile}, 0.0042 US dollars") for data in texts), url  # screen readers
        assert ("section", "aria-label", hostile) in page.attrs, url
        if url != "/widget/fragment":
            assert ("title", hostile) in page.texts
        if "ticker" not in url:
            assert ("h2", hostile) in page.texts, url

    landing = (await client.get("/")).text
    assert_safe_html(landing, allowed_tags=tags, injected=[hostile])
    page = content(landing)
    assert ("title", f"ticker: {hostile}") in page.texts and ("h1", f"{hostile}: your widget") in page.texts
    previews = [value for tag, name, value in page.attrs if tag == "script" and name == "data-title"]
    assert len(previews) == 8 and all(value.startswith(f"{hostile} (") for value in previews)
    # The snippets paste as valid HTML: one element each, whose attribute values are what we meant.
    snippets = [data for tag, data in page.texts if tag == "code" and data.startswith("<")]
    assert len(snippets) == 2
    for snippet in sorted(snippets, key=lambda text: not text.startswith("<iframe")):  # the iframe first
        pasted = content(snippet)
        assert len(pasted.tags) == 1 and pasted.tags[0] in ("script", "iframe"), snippet
        values = {name: value for _, name, value in pasted.attrs}
        if pasted.tags[0] == "iframe":
            assert values["title"] == hostile
            assert values["src"] == "http://testserver/widget?coins=BTC,OPENVC&theme=auto"
            assert set(values) == {"src", "title", "width", "height", "style", "loading", "referrerpolicy"}
        else:
            assert values == {
                "src": "http://testserver/embed.js",
                "data-coins": "BTC,OPENVC",
                "data-theme": "auto",
                "async": "",
            }

    # JS: the title is a string literal that cannot end the script, break the line or the string.
    embed = (await client.get("/embed.js")).text
    start = embed.index("||T[P[0]]||") + len("||T[P[0]]||")
    literal, end = json.JSONDecoder().raw_decode(embed, start)  # a JSON string is a JS string literal
    assert literal == hostile and embed[end] == ";"
    source = embed[start:end]
    assert not any(breaker in source for breaker in ("<", ">", "\u2028", "\u2029", "\n")), source

    # JSON: the name as written.
    assert (await client.get("/api/v1/prices/OPENVC")).json()["name"] == hostile


@pytest.mark.parametrize("field", ["locale", "theme", "layout"])
def test_a_hostile_widget_setting_is_a_config_error_never_output(tmp_path, field, capsys):
    from ticker.cli import main

    path = tmp_path / "ticker.toml"
    path.write_text(f"[widget]\n{field} = {toml_string(HOSTILE_CONFIG_STRINGS[1])}\n")
    assert main(["check-config", str(path)]) == 2
    assert f"widget.{field}" in capsys.readouterr().err


async def test_the_css_file_path_never_reaches_a_page(make_client, tmp_path):
    folder = tmp_path / "a</style><script>alert(1)<"
    (folder / "script>").mkdir(parents=True)
    css = folder / "script>" / '"><img src=x onerror=alert(1)>.css'
    css.write_text(".tk{color:red}\n")
    settings = settings_from(tmp_path, f"[widget]\ncss_file = {toml_string(str(css.relative_to(tmp_path)))}\n")
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    for url in ("/widget", "/widget?layout=ticker", "/"):
        text = (await client.get(url)).text
        assert "alert(1)" not in text and "onerror" not in text and "a&lt;/style" not in text, url
    widget = content((await client.get("/widget")).text)
    assert ("link", "href", "/widget/site.css") in widget.attrs
    served = await client.get("/widget/site.css")
    assert served.text == ".tk{color:red}\n" and served.headers["content-type"] == "text/css; charset=utf-8"


# --- headers on every kind of response ---


def csp(value: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in value.split(";") if part.strip()}


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_security_headers_on_every_kind_of_response(make_client, tmp_path):
    settings = settings_from(tmp_path, SETTINGS)
    history = MemoryHistory()
    await history.append([Tick("BTC", "usd", NOW.timestamp() - 600 * i, 1.0 + i / 100) for i in range(50)])
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0), quote("ETH", 2.0)), history=history)
    widget_etag = (await client.get("/widget")).headers["etag"]
    prices_etag = (await client.get("/api/v1/prices")).headers["etag"]
    chart_etag = (await client.get("/widget/chart")).headers["etag"]
    requests = [
        ("GET", "/", {}, 200, "html"),
        ("GET", "/widget", {}, 200, "widget"),
        ("GET", "/widget", {"if-none-match": widget_etag}, 304, "widget"),
        ("HEAD", "/widget", {}, 200, "widget"),
        ("GET", "/widget?layout=spiral", {}, 400, "plain"),
        ("POST", "/widget", {}, 405, "plain"),
        ("GET", "/widget/fragment", {}, 200, "plain"),
        ("GET", "/widget/chart", {}, 200, "chart"),
        ("GET", "/widget/chart", {"if-none-match": chart_etag}, 304, "chart"),
        ("GET", "/widget/chart?range=1w", {}, 400, "plain"),
        ("POST", "/widget/chart", {}, 405, "plain"),
        ("GET", "/api/v1/history/BTC", {"origin": "https://a.example"}, 200, "api"),
        ("GET", "/api/v1/history/BTC?range=1w", {}, 400, "api"),
        ("GET", "/api/v1/history/NOPE", {}, 404, "api"),
        ("GET", "/api/v1/prices", {"origin": "https://a.example"}, 200, "api"),
        ("GET", "/api/v1/prices", {"if-none-match": prices_etag, "origin": "https://a.example"}, 304, "api"),
        ("GET", "/api/v1/prices?currency=xyz", {"origin": "https://a.example"}, 400, "api"),
        ("GET", "/api/v1/prices/NOPE", {"origin": "https://a.example"}, 404, "api"),
        ("POST", "/api/v1/prices", {}, 405, "plain"),
        ("GET", "/api/v1/stream?coins=NOPE", {}, 400, "api"),
        ("GET", "/healthz", {}, 200, "plain"),
        ("GET", "/readyz", {}, 200, "plain"),
        ("GET", "/metrics", {}, 200, "plain"),
        ("GET", "/openapi.json", {}, 200, "plain"),
        ("GET", "/embed.js", {}, 200, "plain"),
        ("GET", "/icons/BTC", {}, 200, "plain"),
        ("GET", "/icons/NOPE", {}, 404, "plain"),
        ("GET", "/landing.css", {}, 200, "plain"),
        ("GET", "/widget/site.css", {}, 404, "plain"),
        ("GET", "/no/such/page", {}, 404, "plain"),
    ]
    icon_etag = (await client.get("/icons/BTC")).headers["etag"]
    requests.append(("GET", "/icons/BTC", {"if-none-match": icon_etag}, 304, "plain"))
    observed: dict[str, set[str]] = {}
    for method, url, headers, status, kind in requests:
        response = await client.request(method, url, headers=headers)
        assert response.status_code == status, (method, url)
        h = response.headers
        assert h["x-content-type-options"] == "nosniff", url
        assert h["referrer-policy"] == "no-referrer", url
        assert "server" not in h and not any(__version__ in v for v in h.values()), url
        assert "access-control-allow-credentials" not in h, url
        policy = csp(h["content-security-policy"])
        if kind in ("widget", "chart"):
            renderer = WidgetRenderer if kind == "widget" else ChartRenderer
            assert policy["default-src"] == "'none'"
            styles = [renderer.CSS] if kind == "chart" else [WidgetRenderer.CSS, WidgetRenderer.TABLE_CSS]
            assert policy["style-src"] == " ".join(sha256(css) for css in styles)  # the table's CSS is its own
            assert policy["script-src"] == sha256(renderer.JS)
            assert policy["img-src"] == "'self' data:"
            assert policy["connect-src"] == "'self'"
            assert policy["frame-ancestors"] == "'self' https://blog.example"
            assert "'unsafe-inline'" not in h["content-security-policy"]
        elif kind == "html":
            assert policy["default-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
            assert "'unsafe-inline'" not in h["content-security-policy"]
        else:
            assert policy == {"default-src": "'none'", "frame-ancestors": "'none'"}, url
        if kind == "api":
            assert h["access-control-allow-origin"] == "*", url
        else:
            assert "access-control-allow-origin" not in h, url
        observed.setdefault(f"{kind} {status}", set()).update(h.keys())
    print({kind: sorted(names) for kind, names in observed.items()})
    # The inline style and script really are the ones the hashes allow.
    page = parse_html((await client.get("/widget")).text)
    assert [body for _, body in page.scripts] == [WidgetRenderer.JS] and page.styles == [WidgetRenderer.CSS]
    chart = parse_html((await client.get("/widget/chart")).text)
    assert [body for _, body in chart.scripts] == [ChartRenderer.JS] and chart.styles == [ChartRenderer.CSS]


@pytest.mark.parametrize("path", ["/widget/", "/api/v1/prices/", "/healthz/"])
async def test_trailing_slash_answers_carry_the_common_headers(make_client, tmp_path, path):
    client = await make_client(settings_from(tmp_path, SETTINGS), snapshot_of(quote("BTC", 1.0)))
    response = await client.get(path, headers={"host": "evil.example"})
    assert "evil.example" not in response.headers.get("location", "")
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"


@pytest.mark.parametrize(
    ("frame_ancestors", "expected"),
    [
        ('["*"]', "'self' *"),
        ('["https://blog.example"]', "'self' https://blog.example"),
        ('["https://a.example/", "http://b.example:8080", "self"]', "'self' https://a.example http://b.example:8080"),
    ],
)
async def test_frame_ancestors_follow_the_config_with_self_always(make_client, tmp_path, frame_ancestors, expected):
    settings = settings_from(tmp_path, f"[server]\nframe_ancestors = {frame_ancestors}\n")
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    for url in ("/widget", "/widget?layout=compact"):
        assert csp((await client.get(url)).headers["content-security-policy"])["frame-ancestors"] == expected
    for url in ("/api/v1/prices", "/widget/fragment", "/healthz", "/", "/widget?theme=x"):
        assert csp((await client.get(url)).headers["content-security-policy"])["frame-ancestors"] == "'none'", url


async def test_a_frame_ancestors_entry_cannot_add_csp_directives(tmp_path):
    """Only bare origins reach the CSP: an entry with ';' or a space is a config error at start."""
    for bad in ("https://a.example; script-src *", "https://a.example 'unsafe-inline'", "'unsafe-eval'"):
        with pytest.raises(ConfigError, match=r"server\.frame_ancestors\[0\]: expected an origin"):
            settings_from(tmp_path, f'[server]\nframe_ancestors = ["{bad}"]\n')


async def test_cors_wildcard_and_origin_list(make_client, tmp_path):
    wildcard = await make_client(settings_from(tmp_path, SETTINGS), snapshot_of(quote("BTC", 1.0)))
    for url in ("/api/v1/prices", "/api/v1/prices/BTC", "/api/v1/prices?coins=NOPE", "/api/v1/prices/NOPE"):
        for origin in ({}, {"origin": "https://blog.example"}, {"origin": "null"}):
            response = await wildcard.get(url, headers=origin)
            assert response.headers["access-control-allow-origin"] == "*", url
            assert "access-control-allow-credentials" not in response.headers
    preflight = await wildcard.options(
        "/api/v1/prices",
        headers={"origin": "https://blog.example", "access-control-request-method": "GET", "cookie": "a=b"},
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers
    assert preflight.headers["access-control-allow-methods"] == "GET, HEAD"

    listed = settings_from(
        tmp_path, SETTINGS.replace("[server]\n", '[server]\ncors_origins = ["https://blog.example/"]\n')
    )
    client = await make_client(listed, snapshot_of(quote("BTC", 1.0)))
    for url in ("/api/v1/prices", "/api/v1/prices/BTC"):
        ok = await client.get(url, headers={"origin": "https://blog.example"})
        assert ok.headers.get_list("access-control-allow-origin") == ["https://blog.example"]
        assert ok.headers.get_list("vary") == ["Accept-Encoding, Origin"]
        for other in ("https://evil.example", "https://blog.example.evil.example", "null", "*", "https://BLOG.example"):
            response = await client.get(url, headers={"origin": other})
            assert "access-control-allow-origin" not in response.headers, other
        assert "access-control-allow-origin" not in (await client.get(url)).headers
        assert all("access-control-allow-credentials" not in r.headers for r in (ok,))
    etag = (await client.get("/api/v1/prices")).headers["etag"]
    not_modified = await client.get("/api/v1/prices", headers={"origin": "https://blog.example", "if-none-match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["access-control-allow-origin"] == "https://blog.example"
    denied = await client.options("/api/v1/prices", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    allowed = await client.options("/api/v1/prices", headers={"origin": "https://blog.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://blog.example"
    assert "access-control-allow-credentials" not in allowed.headers


async def test_preflight_has_the_common_headers(make_client, tmp_path):
    client = await make_client(settings_from(tmp_path, SETTINGS), snapshot_of(quote("BTC", 1.0)))
    response = await client.options("/api/v1/prices", headers={"origin": "https://blog.example"})
    assert response.status_code == 204
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("referrer-policy") == "no-referrer"


async def test_stream_has_the_common_headers(make_client, tmp_path):
    client = await make_client(settings_from(tmp_path, SETTINGS), snapshot_of(quote("BTC", 1.0)))
    reply = await asgi_request(client._transport.app, "/api/v1/stream")
    assert reply.status == 200 and reply.body.startswith(b"event: prices\n")
    assert reply.header("x-content-type-options") == "nosniff"
    assert reply.header("access-control-allow-origin") == "*"
    assert reply.header("referrer-policy") == "no-referrer"
    assert csp(reply.header("content-security-policy") or "").get("frame-ancestors") == "'none'"


# --- bounded memory, and visitors never cost an upstream request ---


async def test_junk_queries_keep_the_caches_bounded_and_cost_no_upstream_request(tmp_path, respx_mock, coingecko):
    settings = settings_from(tmp_path, SETTINGS)
    app = create_app(settings, clock=FakeClock())
    async with serving(app) as client:
        await wait_for_price(client)
        upstream_before = len(respx_mock.calls)
        endpoints = prepared_endpoints(app)
        assert set(endpoints) == {"prices", "price", "widget", "fragment", "history", "chart"}
        statuses: dict[str, set[int]] = {}
        for i in range(4 * MAX_VARIANTS):  # every cache overflows four times over
            for path, query in (
                ("/api/v1/prices", f"junk{i}=1&coins=btc,{'eth' if i % 2 else 'nano'}"),
                ("/widget", f"x={i}&theme={'dark' if i % 3 else 'light'}"),
                ("/widget/fragment", f"coins=BTC&_={i}"),
                ("/api/v1/prices/BTC", f"currency=eur&i={i}"),
                ("/api/v1/prices", f"coins=NOPE{i}"),  # 400s are never cached
                ("/api/v1/prices/NOPE{i}", ""),
                ("/widget/chart", f"coin=btc&j={i}&range={'24h' if i % 2 else '7d'}"),
                ("/api/v1/history/BTC", f"range=30d&j={i}"),
            ):
                reply = await asgi_request(app, path, query.encode())
                statuses.setdefault(path.split("NOPE")[0], set()).add(reply.status)
        assert statuses == {
            "/api/v1/prices": {200, 400},
            "/widget": {200},
            "/widget/fragment": {200},
            "/api/v1/prices/BTC": {200},
            "/api/v1/prices/": {404},
            "/widget/chart": {200},
            "/api/v1/history/BTC": {200},
        }
        for name, endpoint in endpoints.items():
            assert len(endpoint._cache) <= MAX_VARIANTS, name
            assert set(endpoint.statuses) <= {200, 304, 400, 404, 204}
        assert len(endpoints["prices"]._cache) == MAX_VARIANTS
        assert len(respx_mock.calls) == upstream_before  # 12,288 visitor requests cost upstream nothing
        assert coingecko.prices.call_count == 1  # (side work's /coins/markets waits half an interval)
        for request, _ in respx_mock.calls:
            ids = parse_qs(request.url.query.decode()).get("ids", [""])[0].split(",")
            assert set(ids) <= {"bitcoin", "ethereum", "nano"}  # only configured coins are ever asked for
    metrics = "".join(
        line for line in (await asgi_request(app, "/metrics")).text.splitlines(keepends=True) if "route=" in line
    )
    assert len(metrics.splitlines()) < 20  # one series per route and status, whatever the queries were


LOCALE_SCRIPT = r"""
import asyncio, gc, json, resource, sys
import httpx
from babel import localedata
from ticker.runtime import create_app
from ticker.config import load_settings
from ticker.store import SnapshotStore
from tests.conftest import NOW, quote, snapshot_of

async def main():
    store = SnapshotStore()
    await store.put(snapshot_of(quote("BTC", 90917.04), quote("ETH", 0.001234, change=-1.5)))
    app = create_app(load_settings(sys.argv[1]), store=store, clock=lambda: NOW)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/widget")
        gc.collect()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        statuses = set()
        for name in localedata.locale_identifiers():
            statuses.add((await client.get("/widget", params={"locale": name})).status_code)
        gc.collect()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps([len(localedata.locale_identifiers()), sorted(statuses), (after - before) // 1024]))

asyncio.run(main())
"""


@pytest.mark.e2e  # a fresh interpreter, so that its peak RSS is the widget's alone
def test_visitor_locales_cannot_grow_memory(tmp_path):
    config = tmp_path / "ticker.toml"
    config.write_text('[market]\ncoins = ["BTC", "ETH"]\n[cache]\nsnapshot_path = ""\n')
    result = subprocess.run(
        [sys.executable, "-c", LOCALE_SCRIPT, str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    count, statuses, grown_mb = json.loads(result.stdout)
    print(f"{count} locales asked for, statuses {statuses}, memory grew by {grown_mb} MB")
    assert statuses == [200, 400]  # the allowed locales render; the rest are refused, never loaded
    assert grown_mb < 50


# --- a provider key goes out in its request header and nowhere else ---

SECRET = "sk-test-SECRET-1234"
KEY_HEADER = "x-cg-demo-api-key"
CLOUDFLARE_PAGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>cf</body></html>"


class RecordingUpstream(LocalServer):
    """A local CoinGecko (/api/v3/simple/price, /api/v3/coins/markets, icons at /img/) that records every
    request's URL and headers, and answers according to `mode` (ok or one of many failures)."""

    PRICES = {"bitcoin": {"usd": 90917.04, "eur": 84123.55}, "ethereum": {"usd": 3021.55, "eur": 2795.8}}

    def __init__(self) -> None:
        super().__init__(self._record_and_answer)
        self.mode = "ok"
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (mode, path?query, headers)
        self._lock = threading.Lock()

    def _record_and_answer(self, target: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        url = urlsplit(target)
        with self._lock:
            mode = self.mode
            self.requests.append((mode, target, headers))
        if mode == "timeout" and url.path == "/api/v3/simple/price":
            time.sleep(1.2)  # the client gave up after timeout_seconds = 0.5
        return self._answer(mode, url.path, parse_qs(url.query))

    def count(self, mode: str) -> int:
        with self._lock:
            # Price requests only: the side work's /coins/markets runs on its own schedule.
            return sum(1 for m, target, _ in self.requests if m == mode and target.startswith("/api/v3/simple/"))

    def _answer(self, mode: str, path: str, query: dict[str, list[str]]) -> tuple[int, bytes, dict[str, str]]:
        json_type = {"content-type": "application/json"}
        if path.startswith("/img/"):
            return 200, icon_png(path[5:-4]), {"content-type": "image/png"}
        if path == "/api/v3/coins/markets":
            if "symbols" in query:  # `ticker resolve`
                rows = [
                    {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "market_cap": 1.8e12, "market_cap_rank": 1}
                ]
                return 200, json.dumps(rows).encode(), json_type
            ids = query.get("ids", [""])[0].split(",")
            rows = [{"id": i, "symbol": i[:3], "name": i, "image": f"{self.origin}/img/{i}.png"} for i in ids]
            return 200, json.dumps(rows).encode(), json_type
        if path != "/api/v3/simple/price":
            return 404, b'{"error":"Not Found"}', json_type
        now = int(time.time())
        if mode == "http_500":
            return 500, b"<html><body>Internal Server Error</body></html>", {"content-type": "text/html"}
        if mode == "rate_limited":
            body = b'{"status":{"error_code":429,"error_message":"You\'ve exceeded the Rate Limit."}}'
            return 429, body, json_type | {"retry-after": "1"}
        if mode == "html_200":
            return 200, CLOUDFLARE_PAGE, {"content-type": "text/html"}
        if mode == "bad_json":
            return 200, b'{"bitcoin": {"usd": 9', json_type
        if mode == "unauthorized":
            return 401, b'{"status":{"error_code":10002,"error_message":"API Key Missing"}}', json_type
        if mode == "junk":
            junk = {"bitcoin": {"usd": "<b>1</b>", "eur": -3, "last_updated_at": now}, "ethereum": ["x"]}
            return 200, json.dumps(junk).encode(), json_type
        factor = 3.0 if mode == "jump" else 1.0
        answer = {
            coin: {cur: price * factor for cur, price in prices.items()}
            | {f"{cur}_24h_change": 1.5 for cur in prices}
            | {"last_updated_at": now}
            for coin, prices in self.PRICES.items()
        }
        return 200, json.dumps(answer).encode(), json_type


def keyed_config(directory: Path, upstream: RecordingUpstream) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.css").write_text(".tk{color:red}\n")
    config = directory / "ticker.toml"
    config.write_text(f"""
[market]
coins = ["BTC", "ETH", {{ symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }}]
currencies = ["usd", "eur"]
[poller]
interval_seconds = 1
timeout_seconds = 0.5
providers = ["coingecko"]
[providers.coingecko]
base_url = "{upstream.origin}/api/v3"
api_key_env = "COINGECKO_API_KEY"
requests_per_minute = 600
requests_per_month = 100000000
[cache]
snapshot_path = "state/snapshot.json"
[widget]
css_file = "site.css"
""")
    return config


def visit_everything(service: Service) -> list[str]:
    """Every route, and its 304, 400, 404 and 405 answers; each response as text (status, headers, body)."""
    client = service.client
    etag = client.get("/widget").headers.get("etag", "")
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", path, {})
        for path in (
            "/",
            "/widget",
            "/widget?layout=ticker&sparkline=1&currency=eur",
            "/widget/fragment",
            "/widget?theme=<script>",
            "/widget/site.css",
            "/api/v1/prices",
            "/api/v1/prices?coins=NOPE",
            "/api/v1/prices/BTC?currency=eur",
            "/api/v1/prices/NOPE",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/embed.js",
            "/icons/BTC",
            "/icons/OPENVC",
            "/landing.css",
            "/no/such/page",
            "/widget/",
        )
    ]
    requests += [
        ("GET", "/widget", {"if-none-match": etag}),
        ("HEAD", "/api/v1/prices", {}),
        ("OPTIONS", "/api/v1/prices", {"origin": "https://blog.example"}),
        ("POST", "/api/v1/prices", {}),
        ("DELETE", "/healthz", {}),
    ]
    seen = []
    for method, path, headers in requests:
        response = client.request(method, path, headers=headers)
        assert response.status_code < 500, (method, path)
        assert "server" not in response.headers
        seen.append(f"{method} {path} {response.status_code}\n{response.headers}\n{response.text}")
    with client.stream("GET", "/api/v1/stream?coins=BTC") as stream:
        assert stream.status_code == 200
        seen.append(f"stream {stream.headers}\n{next(stream.iter_text())}")
    return seen


def cli(*args: str) -> str:
    result = run_ticker(*args)
    return f"$ ticker {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"


FAULTS = ["jump", "junk", "http_500", "rate_limited", "html_200", "bad_json", "timeout", "ok", "unauthorized"]


@pytest.mark.e2e
def test_the_key_goes_out_in_its_header_and_nowhere_else(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COINGECKO_API_KEY", SECRET)
    monkeypatch.setenv("TICKER_LOG_LEVEL", "DEBUG")
    with RecordingUpstream() as text_upstream, RecordingUpstream() as json_upstream:
        upstreams = [text_upstream, json_upstream]
        configs = [keyed_config(tmp_path / "text", text_upstream), keyed_config(tmp_path / "json", json_upstream)]
        services = [
            Service(configs[0], free_port()),
            Service(configs[1], free_port(), "--log-format", "json"),
        ]
        responses: list[str] = []
        try:
            for service in services:
                service.wait_ready()
            for service in services:
                responses += visit_everything(service)
            for mode in FAULTS:
                before = [upstream.count(mode) for upstream in upstreams]
                for upstream in upstreams:
                    upstream.mode = mode
                wait_until(
                    lambda mode=mode, before=before: all(
                        u.count(mode) > n for u, n in zip(upstreams, before, strict=True)
                    ),
                    6,
                    f"a request in mode {mode}",
                )
                if mode != "timeout":
                    time.sleep(0.1)  # let the round finish and log
                for service in services:
                    for path in ("/readyz", "/metrics", "/api/v1/prices", "/widget"):
                        response = service.get(path)
                        responses.append(f"{mode} {path} {response.status_code}\n{response.headers}\n{response.text}")
            time.sleep(1.2)  # a blocked round after the 401
            for service in services:
                responses += visit_everything(service)
        finally:
            for service in services:
                service.stop()
        logs = [service.log.read_text() for service in services]
        for upstream in upstreams:
            upstream.mode = "ok"
        # The service's last round was blocked (401: an hour's hold, saved): `ticker fetch` obeys it. A copy of
        # the config with a snapshot of its own exercises the command's failure output.
        held = cli("fetch", "--config", str(configs[0]))
        own = configs[0].with_name("cli.toml")
        own.write_text(configs[0].read_text().replace("state/snapshot.json", "cli-state/snapshot.json"))
        outputs = [cli("check-config", str(own)), cli("fetch", "--config", str(own))]
        outputs.append(cli("resolve", "BTC", "--config", str(own)))
        for mode in ("http_500", "html_200", "unauthorized"):
            text_upstream.mode = mode
            outputs.append(cli("fetch", "--config", str(own)))
        outputs.append(held)
    saved = [path.read_bytes().decode("latin-1") for path in tmp_path.rglob("*") if path.is_file()]

    # The paths we meant to exercise were taken (text log), and the JSON log is JSON.
    text_log, json_log = logs
    for line in (
        "jumped",
        "ignoring non-numeric price",
        "ignoring malformed entry",
        "rejecting",
        "provider coingecko failing: HTTP 500 (HTML page)",
        "HTTP 429",
        "HTTP 200 with an HTML page instead of JSON",
        "HTTP 200 with invalid JSON instead of JSON",
        "timed out",
        "keeps failing",
        "recovered after",
        "HTTP 401: API Key Missing",
        "DEBUG",
    ):
        assert line in text_log, f"log path not exercised: {line!r}\n{text_log}"
    entries = [json.loads(line) for line in json_log.splitlines() if line.strip()]  # every line is JSON
    assert {"DEBUG", "INFO", "WARNING"} <= {entry["level"] for entry in entries}
    assert "coingecko: failed: HTTP 500" in outputs[3] and "HTTP 401: API Key Missing" in outputs[5]
    assert "coingecko: not asked: held for" in held and "API Key Missing" in held
    assert "coingecko: 4 prices" in outputs[1] and "bitcoin" in outputs[2]

    # The key went out in its header on every request to the API, and nowhere else.
    api_requests = [r for u in upstreams for r in u.requests if r[1].startswith("/api/v3/")]
    icon_requests = [r for u in upstreams for r in u.requests if r[1].startswith("/img/")]
    assert len(api_requests) >= 2 * len(FAULTS) and icon_requests
    for _, target, headers in api_requests:
        assert headers.get(KEY_HEADER) == SECRET, target
        assert [name for name, value in headers.items() if "SECRET" in value] == [KEY_HEADER]
    for _, target, headers in icon_requests:
        assert not any("SECRET" in value for value in headers.values()), target  # icon hosts never get it
        assert KEY_HEADER not in headers
    places = {
        "request URLs": [target for u in upstreams for _, target, _ in u.requests],
        "responses": responses,
        "text log": [text_log],
        "JSON log": [json_log],
        "CLI output": outputs,
        "files (snapshot, icons)": saved,
    }
    for where, texts in places.items():
        for text in texts:
            for needle in (SECRET, "SECRET-1234", quote_from_bytes(SECRET.encode())):
                assert needle not in text, (
                    f"the key leaked into {where}: ...{text[max(text.find(needle) - 200, 0) :][:400]}"
                )
    with capsys.disabled():
        print(
            f"\nkey test: {len(api_requests)} API requests (all with {KEY_HEADER}), {len(icon_requests)} icon "
            f"requests (none with it); {len(responses)} responses, {len(text_log.splitlines())} + "
            f"{len(json_log.splitlines())} log lines, {len(outputs)} CLI runs, {len(saved)} files: no key"
        )


async def test_a_key_echoed_back_by_the_upstream_is_not_logged(tmp_path, monkeypatch, caplog):
    from ticker.poller import Poller
    from ticker.runtime import build_providers

    monkeypatch.setenv("COINGECKO_API_KEY", SECRET)
    settings = settings_from(
        tmp_path, '[market]\ncoins = ["BTC"]\n[providers.coingecko]\napi_key_env = "COINGECKO_API_KEY"\n'
    )
    echo = {"status": {"error_code": 10002, "error_message": f"Invalid API key: {SECRET}"}}
    store = SnapshotStore(snapshot_path=tmp_path / "snapshot.json")
    with respx.mock(base_url=CG) as mock:
        mock.get("/coins/markets").respond(401, json=echo)
        mock.get("/simple/price").respond(401, json=echo)
        async with httpx.AsyncClient() as client:
            provider = build_providers(settings, client)[0]  # coingecko
            with caplog.at_level("DEBUG"):
                with pytest.raises(ProviderError):
                    await provider.refresh_metadata(settings.market.coins, "usd")  # side work
                provider.session.manners.hold_until = 0  # let the price round be sent too
                poller = Poller([provider], store, settings.market.coins, settings.market.currencies, interval=60)
                await poller.run_once()
        assert all(request.headers[KEY_HEADER] == SECRET for request, _ in mock.calls)
    assert "Invalid API key" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in (tmp_path / "snapshot.json").read_text()
