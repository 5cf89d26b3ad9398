"""Icon downloads: per-host sessions and holds, and every address checked before we connect (issue 10, item 4)."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence

import anyio
import httpx
import pytest

from tests.conftest import FakeClock
from ticker.icons import MAX_ICON_BYTES, Icon, IconCache, IconDeferred
from ticker.providers.icon_hosts import IconHosts, allowed_address

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PNG_HEADERS = {"content-type": "image/png"}
A, B = "93.184.215.14", "93.184.215.15"  # public addresses; respx answers for them, nothing leaves the machine
URL = "https://assets.example/coins/bitcoin.png?1547033579"
AT_A = f"https://{A}/coins/bitcoin.png?1547033579"


class Resolver:
    """A DNS stand-in: names to addresses, recording every lookup."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def hosts(client: httpx.AsyncClient, table: Mapping[str, Sequence[str]], clock: FakeClock | None = None, **kw):
    clock = clock or FakeClock()
    return IconHosts(
        client,
        timeout=kw.pop("timeout", 5.0),
        interval=60.0,
        resolver=Resolver(table),
        monotonic=clock.monotonic,
        wall=lambda: clock().timestamp(),
        **kw,
    )


async def test_the_request_goes_to_the_checked_address_with_the_real_host_name(respx_mock, client):
    route = respx_mock.get(AT_A).respond(200, content=PNG, headers=PNG_HEADERS)
    assert await hosts(client, {"assets.example": [A]}).download(URL) == Icon(PNG, "image/png")
    request = route.calls.last.request
    assert request.headers["host"] == "assets.example"
    assert request.extensions["sni_hostname"] == "assets.example"  # TLS verifies the name, not the address
    assert request.headers["connection"] == "close"  # a connection verified for one name serves no other


async def test_a_port_and_ipv6_answers_are_kept_and_ipv4_is_preferred(respx_mock, client):
    v6 = respx_mock.get("http://[2606:2800:220:1::1]:8080/x.png").respond(200, content=PNG, headers=PNG_HEADERS)
    v4 = respx_mock.get(f"http://{B}:8080/x.png").respond(200, content=PNG, headers=PNG_HEADERS)
    icons = hosts(client, {"six.example": ["2606:2800:220:1::1"], "both.example": ["2606:2800:220:1::2", B]})
    assert await icons.download("http://six.example:8080/x.png") is not None
    assert v6.calls.last.request.headers["host"] == "six.example:8080"
    assert "sni_hostname" not in v6.calls.last.request.extensions  # plain http: no TLS
    assert await icons.download("http://both.example:8080/x.png") is not None
    assert v4.call_count == 1


@pytest.mark.parametrize(
    "addresses",
    [
        ["169.254.169.254"],  # cloud metadata
        ["10.0.0.5"],
        ["fe80::1"],
        ["::ffff:169.254.169.254"],  # IPv4-mapped
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254
        ["2002:a9fe:a9fe::1"],  # 6to4 of 169.254.169.254
        ["100.100.100.200"],  # shared address space: Alibaba's metadata
        ["192.168.1.1"],
        ["224.0.0.1"],
        ["0.0.0.0"],
        [A, "10.0.0.5"],  # any one bad address refuses the name
    ],
)
async def test_a_name_resolving_to_a_private_address_is_refused_without_a_request(respx_mock, client, addresses):
    icons = hosts(client, {"assets.example": addresses})
    assert await icons.download(URL) is None
    assert icons._resolve.asked == ["assets.example"]  # type: ignore[attr-defined]
    assert not respx_mock.calls


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/icon.png",
        "http://10.0.0.5/icon.png",
        "http://192.168.1.1/icon.png",
        "http://[fe80::1]/icon.png",
        "http://0.0.0.0/icon.png",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "https://user:secret@assets.example/x.png",  # user info would go out as a header
        "https:///x.png",
    ],
)
async def test_address_literals_and_odd_urls_are_refused_without_a_lookup(respx_mock, client, url):
    icons = hosts(client, {"assets.example": [A]})
    assert await icons.download(url) is None
    assert icons._resolve.asked == []  # type: ignore[attr-defined]
    assert not respx_mock.calls


async def test_loopback_stays_allowed_for_local_mirrors(respx_mock, client):
    route = respx_mock.get("http://127.0.0.1:9000/x.png").respond(200, content=PNG, headers=PNG_HEADERS)
    assert await hosts(client, {"localhost": ["127.0.0.1", "::1"]}).download("http://localhost:9000/x.png")
    assert route.calls.last.request.headers["host"] == "localhost:9000"
    assert allowed_address("::1") and allowed_address("127.0.0.1")
    assert not allowed_address("::ffff:10.0.0.1") and not allowed_address("not an address")


BAD_ICONS = [
    pytest.param(httpx.Response(200, content=b"<svg onload=alert(1)/>", headers={"content-type": "image/svg+xml"})),
    pytest.param(httpx.Response(200, content=b"<html>", headers=PNG_HEADERS), id="lying-type"),
    pytest.param(httpx.Response(200, content=PNG, headers={"content-type": "text/html"}), id="html-type"),
    pytest.param(httpx.Response(200, content=PNG + b"x" * MAX_ICON_BYTES, headers=PNG_HEADERS), id="too-big"),
    pytest.param(httpx.Response(404, content=b"nope"), id="404"),
    pytest.param(httpx.Response(403, content=b"AccessDenied"), id="403"),
    pytest.param(httpx.Response(302, headers={"location": "http://169.254.169.254/x.png"}), id="redirect"),
    pytest.param(httpx.ConnectError("refused"), id="refused"),
]


@pytest.mark.parametrize("outcome", BAD_ICONS)
async def test_anything_but_a_small_raster_image_is_refused(respx_mock, client, outcome):
    route = respx_mock.get(AT_A)
    route.mock(side_effect=outcome) if isinstance(outcome, Exception) else route.mock(return_value=outcome)
    assert await hosts(client, {"assets.example": [A]}).download(URL) is None
    assert route.call_count == 1  # no redirect followed


async def test_a_trickling_host_is_cut_at_the_whole_request_deadline(respx_mock, client):
    async def trickle() -> AsyncIterator[bytes]:
        yield PNG[:8]
        for _ in range(50):
            await anyio.sleep(0.2)
            yield b"\x00"

    respx_mock.get(AT_A).mock(return_value=httpx.Response(200, content=trickle(), headers=PNG_HEADERS))
    started = time.monotonic()
    assert await hosts(client, {"assets.example": [A]}, timeout=0.5).download(URL) is None
    assert time.monotonic() - started < 1.5  # 0.5 s deadline, 3x margin (the trickle alone lasts 10 s)


@pytest.mark.parametrize(("retry_after", "held"), [("120", 120.0), (None, 60.0)])
async def test_a_429_holds_that_host_only(respx_mock, client, retry_after, held):
    clock = FakeClock()
    headers = {"retry-after": retry_after} if retry_after else {}
    a_btc = respx_mock.get(f"https://{A}/btc.png").respond(429, headers=headers)
    a_eth = respx_mock.get(f"https://{A}/eth.png").respond(200, content=PNG, headers=PNG_HEADERS)
    b_xmr = respx_mock.get(f"https://{B}/xmr.png").respond(200, content=PNG, headers=PNG_HEADERS)
    icons = hosts(client, {"a.example": [A], "b.example": [B]}, clock)
    cache = IconCache(None, monotonic=clock.monotonic)
    urls = {"BTC": "https://a.example/btc.png", "ETH": "https://a.example/eth.png", "XMR": "https://b.example/xmr.png"}

    assert await cache.refresh(urls, source=icons, concurrency=1) == 1  # one at a time: the order is the dict's
    assert (a_btc.call_count, a_eth.call_count, b_xmr.call_count) == (1, 0, 1)
    assert cache.get("XMR") is not None and cache.get("BTC") is None  # the other host's icon still came
    clock.advance(held - 1)
    assert await cache.refresh(urls, source=icons, concurrency=1) == 0
    assert (a_btc.call_count, a_eth.call_count) == (1, 0)  # held: no request at all
    clock.advance(2)
    a_btc.respond(200, content=PNG, headers=PNG_HEADERS)
    assert await cache.refresh(urls, source=icons) == 2  # a hold is not a failure: asked again once it ends
    assert cache.get("BTC") is not None and cache.get("ETH") is not None


async def test_a_host_that_does_not_answer_backs_off_and_its_other_icons_wait(respx_mock, client):
    clock = FakeClock()
    dead = respx_mock.get(f"https://{A}/btc.png").mock(side_effect=httpx.ConnectTimeout("no answer"))
    later = respx_mock.get(f"https://{A}/eth.png").respond(200, content=PNG, headers=PNG_HEADERS)
    icons = hosts(client, {"a.example": [A]}, clock)
    assert await icons.download("https://a.example/btc.png") is None  # failed: retried a day later
    with pytest.raises(IconDeferred):
        await icons.download("https://a.example/eth.png")  # backing off: deferred, not failed
    assert (dead.call_count, later.call_count) == (1, 0)
    clock.advance(121)  # backoff is at most two intervals
    assert await icons.download("https://a.example/eth.png") is not None


async def test_an_unresolvable_name_fails_the_icon_and_backs_off_its_host(respx_mock, client):
    icons = hosts(client, {})
    assert await icons.download("https://gone.example/x.png") is None
    with pytest.raises(IconDeferred):
        await icons.download("https://gone.example/y.png")
    assert icons._resolve.asked == ["gone.example"]  # type: ignore[attr-defined]


async def test_hosts_are_bounded_and_a_held_one_is_never_forgotten(respx_mock, client):
    clock = FakeClock()
    respx_mock.get(f"https://{A}/x.png").respond(429, headers={"retry-after": "100"})
    respx_mock.get(f"https://{B}/x.png").respond(200, content=PNG, headers=PNG_HEADERS)
    icons = hosts(client, {"a.example": [A], "b.example": [B], "c.example": [B]}, clock, max_hosts=1)
    with pytest.raises(IconDeferred):
        await icons.download("https://a.example/x.png")
    with pytest.raises(IconDeferred):
        await icons.download("https://b.example/x.png")  # no room while a.example is held
    clock.advance(101)
    assert await icons.download("https://b.example/x.png") is not None  # a.example forgotten once free
    assert await icons.download("https://c.example/x.png") is not None
    assert list(icons._sessions) == ["c.example"]
