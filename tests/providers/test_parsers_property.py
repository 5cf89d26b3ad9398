"""Every provider's parser, driven with junk, through the real provider and the poller's gate (hypothesis).

Bodies are the recorded fixtures with fields replaced by values from the whole float range (nan, inf,
-0.0, 1e308, subnormals), huge integers, numeric and other strings, null, booleans and nested junk, or
raw text that is no JSON at all (deeply nested brackets included). Whatever arrives: the provider raises
nothing but ProviderError, and nothing implausible reaches the snapshot.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import respx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CG, DEFAULT_COIN_PRICES, NOW, FakeClock, fixture_json
from tests.providers.helpers import make_provider
from ticker.config import default_settings
from ticker.exceptions import ProviderError
from ticker.models import Coin, Quote
from ticker.plausibility import CHANGE_MAX, CHANGE_MIN, USD_MAX, USD_MIN
from ticker.poller import Poller
from ticker.providers.binance import Binance
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.coinpaprika import CoinPaprika
from ticker.providers.kraken import Kraken
from ticker.providers.parsing import market_figure, percent, rank
from ticker.rates import UNITS_PER_USD
from ticker.store import SnapshotStore

COINS = default_settings().market.coins
EXAMPLES = 40  # per provider: five providers, about 10 s in all


@dataclass(frozen=True)
class Upstream:
    cls: Any
    url: str  # a regex, so Coinbase's one route serves every product
    fixture: str
    fields: frozenset[str]  # the keys the parser reads: their values (and the objects holding them) get replaced
    currencies: tuple[str, ...]


UPSTREAMS = {
    "coingecko": Upstream(
        CoinGecko,
        rf"{CG}/simple/price.*",
        DEFAULT_COIN_PRICES,
        frozenset(
            {"usd", "eur", "usd_24h_change", "eur_24h_change", "last_updated_at", "bitcoin", "neo"}
            | {"usd_market_cap", "eur_market_cap", "usd_24h_vol", "eur_24h_vol"}
        ),
        ("usd", "eur"),
    ),
    "coinpaprika": Upstream(
        CoinPaprika,
        r"https://api\.coinpaprika\.com/v1/tickers.*",
        "coinpaprika_tickers_usd_eur_btc.constructed.json",
        frozenset(
            {"id", "quotes", "USD", "EUR", "price", "percent_change_24h", "last_updated"}
            | {"rank", "market_cap", "volume_24h", "percent_change_1h", "percent_change_7d", "percent_change_30d"}
        ),
        ("usd", "eur"),
    ),
    "kraken": Upstream(
        Kraken,
        r"https://api\.kraken\.com/0/public/Ticker.*",
        "kraken_ticker_default_coins.constructed.json",
        frozenset({"error", "result", "XXBTZUSD", "XETHZUSD", "XDGUSD", "c"}),
        ("usd",),
    ),
    "coinbase": Upstream(
        Coinbase,
        r"https://api\.exchange\.coinbase\.com/products/.*",
        "coinbase_stats.json",
        frozenset({"last", "open"}),
        ("usd",),
    ),
    "binance": Upstream(
        Binance,
        r"https://api\.binance\.com/api/v3/ticker/24hr.*",
        "binance_ticker_24hr_symbols.constructed.json",
        frozenset({"symbol", "lastPrice", "priceChangePercent", "closeTime"}),
        ("usd",),
    ),
}

floats = st.one_of(
    st.floats(),  # the whole range: nan, inf, -0.0, subnormals, 1e308
    st.sampled_from([0.0, -0.0, 5e-324, 2.2e-308, 1e-13, 1e-12, 1e7, 1.01e7, 1e26, 1e308, -1e308, math.inf, math.nan]),
)
scalars = st.one_of(
    floats,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),  # no float holds it
    floats.map(repr),  # "1e+26", "nan", "-0.0" as strings, as exchanges send numbers
    floats.filter(math.isfinite).map(lambda f: f"{f:.12f}"),
    st.sampled_from(["", "NaN", "Infinity", "-0", "0x1p3", "1_000", "١٢٣", "<b>1</b>", "null"]),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
raw_junk = st.one_of(
    st.integers(min_value=1, max_value=200_000).map(lambda depth: "[" * depth + "]" * depth),  # deep nesting
    st.integers(min_value=1, max_value=200_000).map(lambda depth: '{"a":' * depth),
    st.sampled_from(["", "<html>busy</html>", "{", "[1e999]", "NaN", '{"error":["EAPI:Rate limit exceeded"]}']),
    st.text(max_size=40),
)


def paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON document, the root included."""
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from paths(child, (*path, key))


def replace_at(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = body
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return body  # an earlier replacement removed this position
    try:
        parent[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass  # the position's parent is now a scalar, or a list where a dict was
    return body


def bodies(upstream: Upstream) -> st.SearchStrategy[bytes]:
    """The fixture with 1 to 4 of the parser's fields (or their containers) replaced, or raw junk."""
    base = fixture_json(upstream.fixture)
    fields = [p for p in paths(base) if p and p[-1] in upstream.fields]  # a price, change or time, mostly
    others = [p for p in paths(base) if len(p) <= 1 or (p not in fields and any(k in upstream.fields for k in p))]
    target = st.one_of(st.sampled_from(fields), st.sampled_from(fields), st.sampled_from(others))
    value = st.one_of(floats, floats, floats.map(repr), junk)  # mostly numbers: the values a parser must judge

    def mutate(changes: list[tuple[tuple[Any, ...], Any]]) -> bytes:
        body = copy.deepcopy(base)
        for path, value in changes:
            body = replace_at(body, path, value)
        return json.dumps(body).encode()  # NaN and Infinity as JavaScript spells them, as some servers do

    mutated = st.lists(st.tuples(target, value), min_size=1, max_size=4).map(mutate)
    return st.one_of(mutated, mutated, mutated, raw_junk.map(str.encode))


class Recording:
    """The real provider, with any exception other than ProviderError kept for the test to see."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.batch_size, self.session = inner.name, inner.batch_size, inner.session
        self.unexpected: BaseException | None = None

    def supports(self, coin: Coin) -> bool:
        return bool(self.inner.supports(coin))

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        try:
            quotes: list[Quote] = await self.inner.fetch(coins, currencies)
        except ProviderError:
            raise
        except Exception as err:
            self.unexpected = err
            raise
        return quotes


async def no_sleep(seconds: float) -> None:
    return None


async def poll_once(upstream: Upstream, body: bytes) -> tuple[Recording, dict[tuple[str, str], Quote]]:
    clock = FakeClock()
    with respx.mock(assert_all_called=False) as router:
        router.get(url__regex=upstream.url).respond(200, content=body, headers={"content-type": "application/json"})
        async with httpx.AsyncClient() as client:
            provider = Recording(make_provider(upstream.cls, client, sleep=no_sleep))
            poller = Poller(
                [provider],
                SnapshotStore(),
                COINS,
                list(upstream.currencies),
                interval=60,
                clock=clock,
                monotonic=clock.monotonic,
                sleep=clock.sleep,
            )
            snapshot = await poller.run_once()
    return provider, dict(snapshot.quotes)


def check(upstream: Upstream, body: bytes) -> None:
    provider, quotes = asyncio.run(poll_once(upstream, body))
    assert provider.unexpected is None, f"{type(provider.unexpected).__name__}: {provider.unexpected}"
    symbols = {coin.symbol for coin in COINS}
    for (symbol, currency), quote in quotes.items():
        assert symbol in symbols and currency in upstream.currencies
        assert type(quote.price) is float and math.isfinite(quote.price) and quote.price > 0
        assert USD_MIN <= quote.price / UNITS_PER_USD[currency] <= USD_MAX, quote
        for change in (quote.change_24h_pct, quote.change_1h_pct, quote.change_7d_pct, quote.change_30d_pct):
            assert change is None or (type(change) is float and CHANGE_MIN <= change <= CHANGE_MAX), quote
        assert quote.updated_at is not None and quote.updated_at <= NOW
        assert_market_fields(quote)


def assert_market_fields(quote: Quote) -> None:
    """Market cap and volume are unknown or finite positive floats; a rank is unknown or a whole number from 1."""
    for figure in (quote.market_cap, quote.volume_24h):
        assert figure is None or (type(figure) is float and math.isfinite(figure) and figure > 0), quote
    assert quote.rank is None or (type(quote.rank) is int and quote.rank >= 1), quote
    assert quote.market is None, quote  # the poller merged or dropped the provider's hourly extra


def junk_test(name: str) -> Any:
    upstream = UPSTREAMS[name]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=bodies(upstream))
    def test(body: bytes) -> None:
        check(upstream, body)

    test.__doc__ = f"{name}: junk in, only ProviderError or plausible quotes out."
    return test


test_coingecko_simple_price_junk = junk_test("coingecko")
test_coinpaprika_tickers_junk = junk_test("coinpaprika")
test_kraken_ticker_junk = junk_test("kraken")
test_coinbase_stats_junk = junk_test("coinbase")
test_binance_ticker_24hr_junk = junk_test("binance")


BTC_PRICE_AT = {  # where each fixture keeps BTC's USD price, and how it spells numbers there
    "coingecko": (("bitcoin", "usd"), float),
    "coinpaprika": ((0, "quotes", "USD", "price"), float),
    "kraken": (("result", "XXBTZUSD", "c", 0), repr),
    "coinbase": (("last",), repr),
    "binance": ((0, "lastPrice"), repr),
}


def test_the_oracle_is_not_vacuous():
    """Unchanged bodies put BTC in the snapshot for every provider; BTC at 1e26 USD keeps it out."""
    for name, upstream in UPSTREAMS.items():
        body = fixture_json(upstream.fixture)
        _, quotes = asyncio.run(poll_once(upstream, json.dumps(body).encode()))
        assert ("BTC", "usd") in quotes, name
        path, spell = BTC_PRICE_AT[name]
        _, quotes = asyncio.run(poll_once(upstream, json.dumps(replace_at(body, path, spell(1e26))).encode()))
        assert ("BTC", "usd") not in quotes, name


# -- CoinGecko's hourly /coins/markets: rank and 1h/7d/30d changes, merged into the next round's quotes --------

MARKETS = Upstream(
    CoinGecko,
    rf"{CG}/coins/markets.*",
    "coingecko_coins_markets_changes.constructed.json",
    frozenset(
        {"id", "market_cap_rank", "last_updated", "image"}
        | {f"price_change_percentage_{span}_in_currency" for span in ("1h", "7d", "30d")}
    ),
    ("usd", "eur"),
)


async def poll_after_markets(body: bytes) -> tuple[BaseException | None, dict[tuple[str, str], Quote]]:
    """Side work's /coins/markets answer is `body`; then one round of the real /simple/price fixture."""
    clock = FakeClock()
    unexpected: BaseException | None = None
    with respx.mock(assert_all_called=False) as router:
        router.get(url__regex=MARKETS.url).respond(200, content=body, headers={"content-type": "application/json"})
        router.get(url__regex=rf"{CG}/simple/price.*").respond(200, json=fixture_json(DEFAULT_COIN_PRICES))
        async with httpx.AsyncClient() as client:
            cg = make_provider(CoinGecko, client, sleep=no_sleep)
            cg.session.manners.wall = lambda: clock().timestamp()
            try:
                await cg.refresh_metadata(COINS, "usd")
            except ProviderError:
                pass
            except Exception as err:
                unexpected = err
            poller = Poller(
                [cg], SnapshotStore(), COINS, ["usd", "eur"], interval=60, clock=clock, monotonic=clock.monotonic
            )
            snapshot = await poller.run_once()
    return unexpected, dict(snapshot.quotes)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies(MARKETS))
def test_coingecko_coins_markets_junk(body: bytes) -> None:
    """coingecko /coins/markets: junk in, only ProviderError out; every price still there, every figure plausible."""
    unexpected, quotes = asyncio.run(poll_after_markets(body))
    assert unexpected is None, f"{type(unexpected).__name__}: {unexpected}"
    assert len(quotes) == 22  # the hourly side answer never costs a price
    for quote in quotes.values():
        for change in (quote.change_1h_pct, quote.change_7d_pct, quote.change_30d_pct):
            assert change is None or (type(change) is float and CHANGE_MIN <= change <= CHANGE_MAX), quote
        assert_market_fields(quote)


def test_the_markets_oracle_is_not_vacuous():
    """The unchanged answer puts rank and changes into the quotes; an absurd change is nulled, not shown."""
    body = fixture_json(MARKETS.fixture)
    _, quotes = asyncio.run(poll_after_markets(json.dumps(body).encode()))
    btc = quotes["BTC", "usd"]
    assert (btc.rank, btc.change_1h_pct, btc.change_7d_pct, btc.change_30d_pct) == (1, 0.2146, -1.8421, 6.7312)
    body[0]["price_change_percentage_7d_in_currency"] = -250.0
    _, quotes = asyncio.run(poll_after_markets(json.dumps(body).encode()))
    assert quotes["BTC", "usd"].change_7d_pct is None and quotes["BTC", "usd"].rank == 1


@settings(max_examples=200, deadline=None)
@given(value=junk)
def test_the_market_field_parsers_never_raise_and_never_invent(value: Any) -> None:
    """Whatever JSON value arrives: a figure is a finite positive float or None, a rank a whole number from 1 or
    None, a change a finite float or None; and a plain good value comes back unchanged."""
    figure = market_figure(value)
    assert figure is None or (type(figure) is float and math.isfinite(figure) and figure > 0)
    position = rank(value)
    assert position is None or (type(position) is int and position >= 1)
    change = percent(value)
    assert change is None or (type(change) is float and math.isfinite(change))
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        assert figure == value and change == value
    if isinstance(value, str | bool) or value is None or value == 0:
        assert figure is None and position is None
