"""Every candle parser, driven with junk (hypothesis): only ProviderError, or sorted, sane candles.

Bodies are the candle fixtures with values or whole rows replaced by the junk of
test_parsers_property (the whole float range, huge integers, numeric and other strings, null,
booleans, nested junk), rows of such values, or raw text that is no JSON at all. Whatever arrives,
`candles()` raises nothing but ProviderError, or returns buckets oldest first, one per start, inside
the asked window, each with finite positive prices and a high at or above its low, open and close.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from dataclasses import dataclass
from typing import Any

import httpx
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CG, NOW, FakeClock, fixture_json
from tests.providers.helpers import make_provider
from tests.providers.test_parsers_property import junk, paths, raw_junk, replace_at, scalars
from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin
from ticker.providers.binance import Binance
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.kraken import Kraken

EXAMPLES = 40  # per source: four sources, about 10 s in all
NOW_S = int(NOW.timestamp())
COIN = Coin(
    "BTC",
    "Bitcoin",
    {"kraken": "XBTUSD", "binance": "BTCUSDT", "coinbase": "BTC-USD", "coingecko": "bitcoin"},
)


@dataclass(frozen=True)
class Source:
    cls: Any
    url: str  # a regex
    fixture: str
    rows: tuple[Any, ...]  # where the fixture keeps its rows
    until: int  # "now" for the fixture: its rows lie before it


SOURCES = {
    "kraken": Source(
        Kraken,
        r"https://api\.kraken\.com/0/public/OHLC.*",
        "kraken_ohlc_xbtusd_1h.constructed.json",
        ("result", "XXBTZUSD"),
        1706799600 + 1800,
    ),
    "binance": Source(
        Binance, r"https://api\.binance\.com/api/v3/klines.*", "binance_klines_btcusdt_1h.constructed.json", (), NOW_S
    ),
    "coinbase": Source(
        Coinbase,
        r"https://api\.exchange\.coinbase\.com/products/BTC-USD/candles.*",
        "coinbase_candles_1h.json",
        (),
        1710327600 + 7200,
    ),
    "coingecko": Source(
        CoinGecko,
        rf"{CG}/coins/bitcoin/market_chart.*",
        "coingecko_market_chart_1h.constructed.json",
        ("prices",),
        NOW_S,
    ),
}


def bodies(source: Source) -> st.SearchStrategy[bytes]:
    """The fixture with 1 to 4 positions replaced, its rows replaced by rows of junk, or raw junk."""
    base = fixture_json(source.fixture)
    positions = [p for p in paths(base) if len(p) > len(source.rows)]  # mostly inside the rows
    value = st.one_of(scalars, scalars.map(repr), junk)

    def mutate(changes: list[tuple[tuple[Any, ...], Any]]) -> bytes:
        body = copy.deepcopy(base)
        for path, new in changes:
            body = replace_at(body, path, new)
        return json.dumps(body).encode()

    mutated = st.lists(st.tuples(st.sampled_from(positions + [source.rows]), value), min_size=1, max_size=4)
    junk_rows = st.lists(st.lists(st.one_of(scalars, st.integers(1, 2**41)), max_size=8), max_size=6).map(
        lambda rows: json.dumps(replace_at(copy.deepcopy(base), source.rows, rows)).encode()
    )
    return st.one_of(mutated.map(mutate), mutated.map(mutate), junk_rows, raw_junk.map(str.encode))


async def no_sleep(seconds: float) -> None:
    return None


async def fetch(source: Source, body: bytes) -> list[Candle] | ProviderError:
    clock = FakeClock()
    with respx.mock(assert_all_called=False) as router:
        router.get(url__regex=source.url).respond(200, content=body, headers={"content-type": "application/json"})
        async with httpx.AsyncClient() as client:
            provider = make_provider(source.cls, client, monotonic=clock.monotonic, sleep=no_sleep)
            try:
                candles: list[Candle] = await provider.candles(
                    COIN, "usd", 3600, source.until - 30 * 86400, source.until
                )
            except ProviderError as err:
                return err
    return candles


def check(source: Source, body: bytes) -> None:
    got = asyncio.run(fetch(source, body))  # anything but ProviderError propagates and fails the test
    if isinstance(got, ProviderError):
        return
    since = source.until - 30 * 86400
    starts = [c.start for c in got]
    assert starts == sorted(set(starts)), "oldest first, one per start"
    for candle in got:
        assert type(candle.start) is int and since <= candle.start <= source.until - 3600 and candle.seconds == 3600
        prices = (candle.open, candle.high, candle.low, candle.close)
        assert all(type(p) is float and math.isfinite(p) and p > 0 for p in prices), candle
        assert candle.low <= min(candle.open, candle.close) and candle.high >= max(candle.open, candle.close), candle


def junk_test(name: str) -> Any:
    source = SOURCES[name]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=bodies(source))
    def test(body: bytes) -> None:
        check(source, body)

    test.__doc__ = f"{name}: junk in, only ProviderError or sorted, sane candles out."
    return test


test_kraken_ohlc_junk = junk_test("kraken")
test_binance_klines_junk = junk_test("binance")
test_coinbase_candles_junk = junk_test("coinbase")
test_coingecko_market_chart_junk = junk_test("coingecko")


def test_the_oracle_is_not_vacuous():
    """Unchanged fixtures give candles for every source; the same rows with high and low swapped give none."""
    for name, source in SOURCES.items():
        body = fixture_json(source.fixture)
        got = asyncio.run(fetch(source, json.dumps(body).encode()))
        assert isinstance(got, list) and got, name
        if name == "coingecko":
            continue  # points, not OHLC rows: a single price cannot have its high below its low
        high, low = {"kraken": (2, 3), "binance": (2, 3), "coinbase": (2, 1)}[name]
        rows = copy.deepcopy(body)
        for row in rows[source.rows[0]][source.rows[1]] if source.rows else rows:
            row[high], row[low] = row[low], row[high]
        assert asyncio.run(fetch(source, json.dumps(rows).encode())) == [], name
