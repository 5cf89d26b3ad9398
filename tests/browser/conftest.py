"""A real headless Chromium against the real `ticker serve`, which polls a local fake CoinGecko.

Session-wide: the fake upstream (prices for the 11 default coins, real PNG icons), one `ticker serve`
process, a host page on another loopback origin that embeds the widget with /embed.js, and one
browser. Each test gets fresh browser contexts through `open_page`, which records every request,
response, console error, page error and CSP violation of the page and all its frames.

Needs Debian's chromium (`/usr/bin/chromium`, never a Playwright download) and axe-core from npm
(`cd tests/browser && npm ci`). Without them the browser tests are skipped, unless
TICKER_REQUIRE_BROWSER=1, which turns a missing piece into a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fake_upstream import FakeUpstream, LocalServer
from tests.service import Service, running, wait_until, write_config

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"  # the README names it; docs/screenshots/ keeps a copy
AXE_JS = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# The default coins, by CoinGecko id: (usd price, 24h change %).
PRICES: dict[str, tuple[float, float]] = {
    "bitcoin": (90917.04, 1.64),
    "ethereum": (3021.5512, -2.3127),
    "neo": (5.1234, 0.52),
    "waves": (1.0843, -0.75),
    "monero": (163.21, 2.05),
    "nano": (0.8123, -1.2),
    "ark": (0.3456, 3.1),
    "pirate-chain": (0.1412, -0.67),
    "dogecoin": (0.1523, 4.4),
    "litecoin": (84.3, -0.21),
    "cardano": (0.4521, 0.0),
}
SYMBOLS = ["BTC", "ETH", "NEO", "WAVES", "XMR", "XNO", "ARK", "ARRR", "DOGE", "LTC", "ADA"]
INTERVAL = 2


def require_browser(*fonts: str) -> None:
    """Skip the calling test module without the browser pieces (and the font families named), unless
    TICKER_REQUIRE_BROWSER=1 (CI) fails it."""
    missing = missing_pieces(fonts)
    if missing:
        reason = "browser tests need " + "; ".join(missing)
        if os.environ.get("TICKER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"TICKER_REQUIRE_BROWSER=1, but the {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)


def missing_pieces(fonts: tuple[str, ...] = ()) -> list[str]:
    """What the browser tests need and this machine lacks: Chromium, axe-core, and each font family in
    `fonts` (without a font for a script Chromium draws boxes, and measures boxes)."""
    missing = [
        f"the font {font!r} (apt-get install fonts-noto-core fonts-noto-cjk)" for font in fonts if not has_font(font)
    ]
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install -e '.[dev]')")
    if CHROMIUM is None:
        missing.append("chromium on PATH (apt-get install chromium)")
    if not AXE_JS.is_file():
        missing.append(f"axe-core at {AXE_JS.relative_to(ROOT)} (cd tests/browser && npm ci)")
    return missing


def has_font(family: str) -> bool:
    """Whether fontconfig, where Chromium on Linux finds its fonts, knows the family."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return False
    listed = subprocess.run([fc_list, family, "family"], capture_output=True, text=True, check=False).stdout
    return bool(listed.strip())


@pytest.fixture(scope="package")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(serve_icons=True) as fake:
        fake.coingecko.prices = {coin_id: {"usd": quote} for coin_id, quote in PRICES.items()}
        yield fake


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Service]:
    """`ticker serve` with the default coins, polling the fake every INTERVAL s; ready and with every icon."""
    config = write_config(tmp_path_factory.mktemp("browser-service"), upstream, INTERVAL, market="")  # default coins
    with running(config) as service:

        def icons_missing() -> set[str]:
            return {s for s in SYMBOLS if service.get(f"/icons/{s}").headers["content-type"] != "image/png"}

        wait_until(lambda: not icons_missing(), 15, "every icon downloaded")
        yield service


# Real content that breaks layouts: a 20-character symbol (a static coin, priced in both currencies), yen prices
# of eight digits, a stale row (XMR: only CoinPaprika has it, last updated 20 minutes ago) and an unavailable row
# (LTC: no provider has it). No icon is served, so every coin shows its generated monogram (USDT reads "USDT").
LONG_SYMBOL = "ABCDEFGHIJKLMNOPQRST"
CONTENT_MARKET = f"""[market]
coins = ["BTC", "ETH",
  {{ symbol = "{LONG_SYMBOL}", name = "A very long token name indeed", prices = {{ usd = 0.0042, jpy = 0.6521 }} }},
  "XMR", "LTC", "USDT", "DOGE", "ADA"]
currencies = ["usd", "jpy"]"""
CONTENT_SYMBOLS = ["BTC", "ETH", LONG_SYMBOL, "XMR", "LTC", "USDT", "DOGE", "ADA"]
STALE, UNAVAILABLE_COIN, PLAIN = "XMR", "LTC", "USDT"  # PLAIN: a fresh row with a short price, the usual height
CONTENT_PRICES: dict[str, dict[str, tuple[float, float | None]]] = {
    "bitcoin": {"usd": (90917.04, 1.64), "jpy": (13709330.22, 1.64)},
    "ethereum": {"usd": (3021.5512, -2.3127), "jpy": (455612.31, -2.3127)},
    "tether": {"usd": (1.0002, 0.01), "jpy": (150.81, 0.01)},
    "dogecoin": {"usd": (0.1523, 4.4), "jpy": (22.97, 4.4)},
    "cardano": {"usd": (0.4521, -0.35), "jpy": (68.17, -0.35)},
}


@pytest.fixture(scope="package")
def content_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`ticker serve` with CONTENT_MARKET, once every row is in its state: fresh, static, stale or unavailable."""
    with serving_content(tmp_path_factory.mktemp("browser-content")) as service:
        yield service


@contextlib.contextmanager
def serving_content(directory: Path, widget: str = "") -> Iterator[Service]:
    """`ticker serve` in `directory` with CONTENT_MARKET (and `widget`, lines of its [widget] table, such as
    `locale = "en_XA"`), once every row is in its state: fresh, static, stale or unavailable."""
    with FakeUpstream() as fake:
        fake.coingecko.prices = CONTENT_PRICES
        fake.coinpaprika.prices = {"xmr-monero": {"usd": (163.21, 2.05), "jpy": (24611.0, 2.05)}}
        fake.coinpaprika.updated_at = int(time.time()) - 1200  # older than stale_after_seconds (300)
        market = f"{CONTENT_MARKET}\n[widget]\n{widget}" if widget else CONTENT_MARKET
        config = write_config(directory, fake, INTERVAL, market=market, providers=("coingecko", "coinpaprika"))
        with running(config) as service:

            def settled() -> bool:
                coins = {c["symbol"]: c for c in service.get("/api/v1/prices?currency=jpy").json()["coins"]}
                return coins["BTC"]["price"] is not None and coins[STALE]["price"] is not None

            wait_until(settled, 15, "fresh and stale prices")
            yield service


HOST_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>A blog on another origin</title><link rel="icon" href="data:,">
<style>body{{font:16px/1.5 sans-serif;margin:0;display:flex;gap:24px;padding:16px}}
main{{flex:1}}aside{{width:300px;flex:none}}</style></head>
<body>
<main><h1>A post</h1><p>Some text before the sidebar. Prices move; this paragraph does not.</p>
<p>More text, so the widget sits inside an ordinary page.</p></main>
<aside><h2>Sidebar</h2><p>Above the widget.</p>
<script src="{service}/embed.js" data-coins="BTC,ETH,XMR" data-theme="dark" async></script>
<p>Below the widget.</p></aside>
</body>
</html>
"""


@dataclass
class HostPage:
    url: str
    origin: str


@pytest.fixture(scope="package")
def host_page(service: Service) -> Iterator[HostPage]:
    """A blog page on another loopback origin (another port) that embeds the widget with /embed.js."""
    body = HOST_PAGE.format(service=service.url).encode()

    def page(target: str, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        if urlsplit(target).path == "/":
            return 200, body, {"content-type": "text/html; charset=utf-8"}
        return 404, b"Not Found", {"content-type": "text/plain"}

    with LocalServer(page) as server:
        yield HostPage(url=f"{server.origin}/", origin=server.origin)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Runs in every frame before its own scripts: keeps the CSP violations where the test can read them.
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI,
                               source: e.sourceFile, line: e.lineNumber, sample: e.sample});
});
"""


@dataclass
class Watched:
    """A page and what it (with its frames) did: requests, responses, console errors, page errors."""

    page: Any
    requests: list[str] = field(default_factory=list)
    responses: dict[str, tuple[int, str]] = field(default_factory=dict)  # url -> (status, content type)
    failed: list[str] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, url of the source)
    csp_messages: list[str] = field(default_factory=list)  # console messages of any type about CSP
    page_errors: list[str] = field(default_factory=list)

    def on_console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.csp_messages.append(message.text)
        if message.type == "error":
            self.console_errors.append((message.text, message.location.get("url", "")))

    def origins(self) -> set[str]:
        """Every origin asked for anything; data:, blob: and about: URLs contact no host and are left out."""
        found = set()
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "about", "blob"):
                continue
            found.add(f"{parts.scheme}://{parts.netloc}")
        return found

    def csp_violations(self) -> list[dict[str, Any]]:
        found = []
        for frame in self.page.frames:
            recorded = frame.evaluate("() => window.__cspViolations || []")
            found += [{"frame": frame.url} | v for v in recorded]
        return found

    def page_errors_and_console_errors(self) -> list[str]:
        """Console errors, less the browser's own /favicon.ico probe of a top-level page (not the page's doing:
        the page asks for no favicon, and in an iframe, the widget's real use, it is never made)."""
        top = urlsplit(self.page.url)
        favicon = f"{top.scheme}://{top.netloc}/favicon.ico"
        return [f"{text} ({url})" for text, url in self.console_errors if url != favicon] + self.page_errors

    def assert_clean(self, *allowed_origins: str) -> None:
        """No console error, no uncaught exception, no CSP violation, no failed request, no foreign host."""
        assert self.page_errors_and_console_errors() == []
        assert self.csp_violations() == [] and self.csp_messages == [], self.csp_messages
        assert self.failed == [], self.failed
        bad = {url: status for url, (status, _) in self.responses.items() if status >= 400}
        assert bad == {}, bad
        assert self.origins() <= set(allowed_origins), sorted(self.requests)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Watched]]:
    """Opens a page in a new context (keyword arguments go to new_context) with everything it does recorded."""
    contexts = []

    def open_(**options: Any) -> Watched:
        context = browser.new_context(**options)
        contexts.append(context)
        context.add_init_script(RECORD_CSP)
        page = context.new_page()
        watched = Watched(page)
        context.on("request", lambda request: watched.requests.append(request.url))
        context.on(
            "response",
            lambda response: watched.responses.__setitem__(
                response.url, (response.status, response.headers.get("content-type", ""))
            ),
        )
        context.on("requestfailed", lambda request: watched.failed.append(f"{request.url}: {request.failure}"))
        page.on("console", watched.on_console)
        page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
        return watched

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="package")
def axe_source() -> str:
    return AXE_JS.read_text()


@pytest.fixture(scope="package")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
