"""The icon cache: kept on disk and shared, fetched a few at a time, and a cut-off pass loses nothing."""

from __future__ import annotations

import anyio
import pytest

from ticker.icons import Icon, IconCache, IconDeferred, monogram_svg

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
URL = "https://assets.example/coins/{}.png"


class Source:
    """An IconSource whose downloads answer at once, never, fail or are deferred, per URL."""

    def __init__(self, hang: set[str] = frozenset(), fail: set[str] = frozenset(), defer: set[str] = frozenset()):
        self.hang, self.fail, self.defer = hang, fail, defer
        self.asked: list[str] = []
        self.running = self.most = 0

    async def download(self, url: str) -> Icon | None:
        self.asked.append(url)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await anyio.sleep(0.01)
            if url in self.hang:
                await anyio.sleep_forever()
            if url in self.defer:
                raise IconDeferred(url)
            return None if url in self.fail else Icon(PNG, "image/png")
        finally:
            self.running -= 1


class Shared:
    def __init__(self, *, blackholed: bool = False) -> None:
        self.icons: dict[str, Icon] = {}
        self.blackholed = blackholed  # a Redis that takes writes and never answers

    async def get_icon(self, symbol: str) -> Icon | None:
        return self.icons.get(symbol)

    async def put_icon(self, symbol: str, icon: Icon) -> None:
        if self.blackholed:
            await anyio.sleep_forever()
        self.icons[symbol] = icon


def urls(*symbols: str) -> dict[str, str]:
    return {symbol: URL.format(symbol.lower()) for symbol in symbols}


async def test_an_icon_is_downloaded_once_saved_and_loaded_after_a_restart(tmp_path):
    source = Source()
    cache = IconCache(tmp_path / "icons")
    assert await cache.refresh(urls("BTC"), source=source) == 1
    assert await cache.refresh(urls("BTC"), source=source) == 0
    assert len(source.asked) == 1
    assert cache.get("BTC") == Icon(PNG, "image/png")
    assert (tmp_path / "icons" / "BTC.png").read_bytes() == PNG
    restarted = IconCache(tmp_path / "icons")
    restarted.load()
    assert restarted.get("BTC") == Icon(PNG, "image/png")


async def test_a_failed_icon_is_retried_a_day_later_and_a_deferred_one_next_pass():
    now = [0.0]
    source = Source(fail={URL.format("btc")}, defer={URL.format("eth")})
    cache = IconCache(None, monotonic=lambda: now[0])
    await cache.refresh(urls("BTC", "ETH"), source=source)
    now[0] += 3600
    await cache.refresh(urls("BTC", "ETH"), source=source)
    assert source.asked.count(URL.format("btc")) == 1 and source.asked.count(URL.format("eth")) == 2
    source.fail = source.defer = set()
    now[0] += 86400
    assert await cache.refresh(urls("BTC", "ETH"), source=source) == 2


async def test_downloads_run_a_few_at_a_time():
    source = Source()
    symbols = [f"C{i}" for i in range(20)]
    assert await IconCache(None).refresh(urls(*symbols), source=source, concurrency=4) == 20
    assert source.most == 4


async def test_a_pass_cut_off_keeps_what_arrived_and_asks_for_the_rest_next_time(tmp_path):
    hanging = {URL.format(s) for s in ("c1", "c2")}
    source = Source(hang=hanging)
    shared = Shared()
    cache = IconCache(tmp_path / "icons")
    with anyio.move_on_after(0.5):
        await cache.refresh(urls("C1", "C2", "C3", "C4", "C5"), source=source, shared=shared)
    assert {s for s in ("C1", "C2", "C3", "C4", "C5") if cache.get(s)} == {"C3", "C4", "C5"}
    assert set(shared.icons) == {"C3", "C4", "C5"} and (tmp_path / "icons" / "C3.png").exists()
    source.hang = set()
    assert await cache.refresh(urls("C1", "C2", "C3", "C4", "C5"), source=source) == 2  # not marked failed


async def test_an_icon_is_kept_even_when_sharing_it_hangs_until_the_cut_off():
    cache = IconCache(None)
    with anyio.move_on_after(0.3):
        await cache.refresh(urls("BTC"), source=Source(), shared=Shared(blackholed=True))
    assert cache.get("BTC") is not None


async def test_shared_icons_come_first_and_a_follower_never_downloads():
    shared = Shared()
    shared.icons["BTC"] = Icon(PNG, "image/png")
    shared.icons["ETH"] = Icon(b"<svg onload=alert(1)/>", "image/png")  # a damaged entry is not served
    source = Source()
    follower = IconCache(None)
    assert await follower.refresh(urls("BTC", "ETH", "XMR"), shared=shared) == 1
    assert follower.get("ETH") is None
    assert await IconCache(None).refresh(urls("BTC", "XMR"), source=source, shared=shared) == 2
    assert source.asked == [URL.format("xmr")] and "XMR" in shared.icons


def test_monogram_is_a_stable_escaped_svg():
    svg = monogram_svg("BTC").decode()
    assert svg.startswith("<svg") and ">BTC</text>" in svg
    assert svg == monogram_svg("BTC").decode() and svg != monogram_svg("ETH").decode()
    assert "<b>" not in monogram_svg("<b>").decode()


def test_monogram_shows_up_to_five_characters():
    """Tether reads USDT, not USD; a longer symbol is visibly cut (its size is checked in tests/browser/)."""
    assert ">USDT</text>" in monogram_svg("USDT").decode() and ">WAVES</text>" in monogram_svg("WAVES").decode()
    assert ">ABCD…</text>" in monogram_svg("ABCDEFGHIJKLMNOPQRST").decode()


@pytest.mark.parametrize("symbol", ["../x", "a b", ""])
async def test_odd_symbols_are_never_fetched(symbol):
    source = Source()
    assert await IconCache(None).refresh({symbol: URL.format("x")}, source=source) == 0
    assert source.asked == []
