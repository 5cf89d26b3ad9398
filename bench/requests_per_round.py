"""Upstream price requests per round, per provider, for 11, 100 and 250 coins; /widget bytes for 11 coins.

No network: every provider is pointed at the local fake upstream (tests/fake_upstream.py), which answers
in each provider's documented format and counts requests. Each provider fetches all the coins alone (as
when it is the only one left), with its own batch size, pacing (a fake clock: no waiting) and parser;
a figure counts only if every coin came back priced. The widget sizes come from a real `ticker serve`
with the built-in default coins (11) against the same fake.

Run from the repository root:  PYTHONPATH=$PWD python bench/requests_per_round.py
"""

from __future__ import annotations

import gzip
import math
import sys
import tempfile
from pathlib import Path

import anyio
import httpx

from tests.fake_upstream import FakeUpstream, Side
from tests.service import running, write_config
from ticker.config.settings import ProviderSettings
from ticker.models import Coin
from ticker.providers import PROVIDERS, build_provider
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, KNOWN_COINS

PROVIDER_NAMES = ("coingecko", "coinpaprika", "kraken", "binance", "coinbase")
COUNTS = (11, 100, 250)
LAYOUTS = (
    "list",
    "compact",
    "ticker",
    "table",
    "table&columns=rank,price,change_24h,market_cap,volume_24h",
    "list&currency=usd,eur",
    "table&currency=usd,eur",
)


def synthetic(i: int) -> Coin:
    """Coin number i with an id at every provider, in each provider's id style."""
    return Coin(
        f"C{i:03d}",
        f"Coin {i}",
        {
            "coingecko": f"coin-{i}",
            "coinpaprika": f"c{i}-coin-{i}",
            "kraken": f"C{i}USD",
            "binance": f"C{i}USDT",
            "coinbase": f"C{i}-USD",
        },
    )


def coins(count: int) -> list[Coin]:
    if count == len(DEFAULT_SYMBOLS):
        return [KNOWN_COINS[s] for s in DEFAULT_SYMBOLS]
    return [synthetic(i) for i in range(count)]


def price_everything(fake: FakeUpstream, listed: list[Coin]) -> None:
    for name, side in fake.sides().items():
        for coin in listed:
            if name in coin.ids:
                side.prices[coin.ids[name]] = {"usd": (100.0 + len(coin.symbol), 1.5)}


class Clock:
    """Monotonic time that a sleep advances at once: pacing is counted, never waited for."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await anyio.sleep(0)


async def one_round(fake: FakeUpstream, name: str, listed: list[Coin]) -> tuple[int, int, int]:
    """(requests, coins asked, coins priced) of one provider's fetch of `listed` in usd."""
    side: Side = fake.sides()[name]
    urls = {"coingecko": fake.coingecko_url, "coinpaprika": fake.coinpaprika_url, "kraken": fake.kraken_url}
    settings = ProviderSettings(urls.get(name, fake.origin), requests_per_minute=1e6, requests_per_month=1e12)
    clock = Clock()
    async with httpx.AsyncClient() as client:
        provider = build_provider(
            name, settings, client, interval=60, timeout=600, monotonic=clock.monotonic, sleep=clock.sleep
        )
        asked = [c for c in listed if provider.supports(c)]
        before = side.requests
        quotes = await provider.fetch(asked, ["usd"])
        return side.requests - before, len(asked), len({q.symbol for q in quotes})


async def requests_table() -> list[str]:
    lines = ["| provider | batch | " + " | ".join(f"{n} coins" for n in COUNTS) + " |", "|---|---|" + "---|" * 3]
    with FakeUpstream() as fake:
        for count in COUNTS:
            price_everything(fake, coins(count))
        cells: dict[str, list[str]] = {name: [] for name in PROVIDER_NAMES}
        for count in COUNTS:
            for name in PROVIDER_NAMES:
                made, asked, priced = await one_round(fake, name, coins(count))
                if priced != asked:
                    sys.exit(f"{name}: {priced} of {asked} coins priced at {count} coins: no figure")
                expected = math.ceil(asked / PROVIDERS[name].batch_size)
                mark = "" if made == expected else f" (expected ceil({asked}/batch) = {expected})"
                cells[name].append(f"{made}{mark}" if asked == count else f"{made} ({asked} listed there)")
        for name in PROVIDER_NAMES:
            lines.append(f"| {name} | {PROVIDERS[name].batch_size} | " + " | ".join(cells[name]) + " |")
    return lines


def widget_table() -> list[str]:
    lines = ["| layout | bytes | gzip bytes |", "|---|---|---|"]
    with FakeUpstream() as fake, tempfile.TemporaryDirectory() as tmp:
        fake.serve_default_coins()
        market = '[market]\ncurrencies = ["usd", "eur"]'  # the default coins
        config = write_config(Path(tmp), fake, 60, market=market, providers=None, timeout=4)
        with running(config) as service:
            for layout in LAYOUTS:
                reply = service.get(f"/widget?layout={layout}")
                if reply.status_code != 200:
                    sys.exit(f"/widget?layout={layout}: HTTP {reply.status_code}")
                body = reply.content
                lines.append(f"| {layout} | {len(body):,} | {len(gzip.compress(body, 6)):,} |")
    return lines


def main() -> None:
    print("Upstream price requests per round (one provider serving every coin, usd):")
    print("\n".join(anyio.run(requests_table)))
    print("\n/widget for the 11 default coins (English; usd unless said):")
    print("\n".join(widget_table()))


if __name__ == "__main__":
    main()
