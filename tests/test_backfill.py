"""Backfill: a new coin's past from the candle endpoints, through the providers' sessions, beside the price rounds.

A fake history store keeps the agreed contract (`add_candles` keeps only buckets older than what it
has; `earliest` is its oldest point); the providers are the real ones against respx, on a fake clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
import respx

from tests.conftest import CG, NOW, FakeClock, fixture_bytes, fixture_json
from tests.providers.helpers import make_provider
from ticker.backfill import DAILY, HOURLY, RETRY_SECONDS, Backfill, candle_sources
from ticker.config import default_settings
from ticker.models import Candle, Coin
from ticker.poller import Poller
from ticker.providers.binance import Binance
from ticker.providers.budget import RequestBudget
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.kraken import Kraken
from ticker.store import SnapshotStore

OHLC = "https://api.kraken.com/0/public/OHLC"
TICKER = "https://api.kraken.com/0/public/Ticker"
KLINES = "https://api.binance.com/api/v3/klines"
BINANCE_TICKER = "https://api.binance.com/api/v3/ticker/24hr"
CANDLES = r"https://api\.exchange\.coinbase\.com/products/[^/]+/candles"
CHART = rf"{CG}/coins/[^/]+/market_chart"
NOW_S = int(NOW.timestamp())
BTC = Coin("BTC", "Bitcoin", {"kraken": "XBTUSD", "binance": "BTCUSDT", "coinbase": "BTC-USD", "coingecko": "bitcoin"})
ETH = Coin("ETH", "Ethereum", {"kraken": "ETHUSD", "binance": "ETHUSDT"})


class FakeHistory:
    """The two HistoryStore methods the backfill calls, as agreed: only older buckets are kept."""

    def __init__(self, earliest: dict[tuple[str, str], float] | None = None) -> None:
        self.candles: dict[tuple[str, str], list[Candle]] = {}
        self.ticks_from = dict(earliest or {})  # the oldest point of history recorded some other way

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        first = await self.earliest(symbol, currency)
        kept = [c for c in candles if first is None or c.start + c.seconds <= first]
        self.candles.setdefault((symbol, currency), []).extend(kept)
        self.candles[(symbol, currency)].sort(key=lambda c: c.start)
        return len(kept)

    async def earliest(self, symbol: str, currency: str) -> float | None:
        starts: list[float] = [c.start for c in self.candles.get((symbol, currency), [])]
        if (symbol, currency) in self.ticks_from:
            starts.append(self.ticks_from[(symbol, currency)])
        return min(starts) if starts else None


def clock_at(unix: int) -> FakeClock:
    """A clock whose wall time is `unix`; its monotonic seconds start at 1000, as FakeClock's do at NOW."""
    clock = FakeClock(datetime.fromtimestamp(unix, UTC))
    clock.monotonic = lambda: (clock.now - datetime.fromtimestamp(unix, UTC)).total_seconds() + 1_000.0  # type: ignore[method-assign]
    return clock


def backfill(sources, coins, store, clock: FakeClock, currencies=("usd",), interval=60, **kwargs) -> Backfill:
    return Backfill(
        sources,
        coins,
        list(currencies),
        store,
        interval=interval,
        time_budget=30,
        wall=lambda: clock().timestamp(),
        monotonic=clock.monotonic,
        **{"sleep": clock.sleep, **kwargs},
    )


def kraken_ohlc(first: int, count: int, seconds: int = 3600, price: float = 90000.0) -> dict[str, Any]:
    """An /OHLC body in the documented shape: `count` buckets of `seconds` from `first`, under XXBTZUSD."""
    rows = [
        [first + i * seconds, str(price), str(price + 10), str(price - 10), str(price), "1", "1", 1]
        for i in range(count)
    ]
    return {"error": [], "result": {"XXBTZUSD": rows, "last": first + (count - 1) * seconds}}


LAST_HOUR = NOW_S - NOW_S % 3600  # 18:00, still open at the tests' 18:20
TODAY = NOW_S - NOW_S % 86400


def kraken_answers(request: httpx.Request) -> httpx.Response:
    """Four hourly or four daily buckets up to the open one, by the asked interval."""
    if request.url.params["interval"] == "60":
        return httpx.Response(200, json=kraken_ohlc(LAST_HOUR - 3 * 3600, 4))
    return httpx.Response(200, json=kraken_ohlc(TODAY - 3 * 86400, 4, 86400))


def rows_of(fixture: str, path: tuple[Any, ...] = ()) -> list[Any]:
    body = fixture_json(fixture)
    for key in path:
        body = body[key]
    return body


def hourly(request: httpx.Request, name: str) -> bool:
    params = request.url.params
    return {
        "kraken": lambda: params["interval"] == "60",
        "binance": lambda: params["interval"] == "1h",
        "coinbase": lambda: params["granularity"] == "3600",
        "coingecko": lambda: int(params["days"]) <= 90,
    }[name]()


# name: (class, route, hourly fixture, "now" for it, its expected candles, an empty daily body)
FILLS = {
    "kraken": (
        Kraken,
        OHLC,
        "kraken_ohlc_xbtusd_1h.constructed.json",
        1706799600 + 1800,
        [
            Candle(r[0], 3600, *map(float, r[1:5]))
            for r in rows_of("kraken_ohlc_xbtusd_1h.constructed.json", ("result", "XXBTZUSD"))[:-1]
        ],
        {"error": [], "result": {"XXBTZUSD": [], "last": 0}},
    ),
    "binance": (
        Binance,
        KLINES,
        "binance_klines_btcusdt_1h.constructed.json",
        NOW_S,
        [
            Candle(r[0] // 1000, 3600, *map(float, r[1:5]))
            for r in rows_of("binance_klines_btcusdt_1h.constructed.json")[:-1]
        ],
        [],
    ),
    "coinbase": (
        Coinbase,
        CANDLES,
        "coinbase_candles_1h.json",
        1710327600 + 3700,
        [Candle(1710327600, 3600, 73243.33, 73402.47, 73241.5, 73370.65)],
        [],
    ),
    "coingecko": (
        CoinGecko,
        CHART,
        "coingecko_market_chart_1h.constructed.json",
        NOW_S,
        [
            Candle(round(p[0] / 1000 / 3600) * 3600 - 3600, 3600, p[1], p[1], p[1], p[1])  # the nearest hour's end
            for p in rows_of("coingecko_market_chart_1h.constructed.json", ("prices",))
        ],
        {"prices": []},
    ),
}
REQUESTS_PER_COIN = {"kraken": 2, "binance": 2, "coinbase": 3 + 2, "coingecko": 2}  # hourly 30 d + daily 1 y


@pytest.mark.parametrize("name", list(FILLS))
async def test_each_providers_fixture_fills_the_store(respx_mock, name):
    cls, url, fixture, now, expected, empty = FILLS[name]
    clock = clock_at(now)

    def answer(request: httpx.Request) -> httpx.Response:
        return (
            httpx.Response(200, content=fixture_bytes(fixture))
            if hourly(request, name)
            else httpx.Response(200, json=empty)
        )

    route = (respx_mock.get(url__regex=url) if "[" in url else respx_mock.get(url)).mock(side_effect=answer)
    store = FakeHistory()
    async with httpx.AsyncClient() as client:
        source = make_provider(cls, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill([source], [BTC], store, clock)
        await work.run_once()
        assert store.candles[("BTC", "usd")] == expected
        assert work.pending == 0  # the hourly span got candles; every source answered the daily one with none
        assert route.call_count == REQUESTS_PER_COIN[name]

        await work.run_once()
        assert route.call_count == REQUESTS_PER_COIN[name]  # done: not asked again


async def test_a_429_holds_that_provider_and_the_next_source_is_used_while_rounds_go_on(respx_mock):
    clock = FakeClock()
    ohlc = respx_mock.get(OHLC).respond(429, headers={"Retry-After": "120"})
    kraken_ticker = respx_mock.get(TICKER).respond(200, content=fixture_bytes("kraken_ticker.json"))
    klines = respx_mock.get(KLINES).mock(
        side_effect=lambda request: (
            httpx.Response(200, content=fixture_bytes("binance_klines_btcusdt_1h.constructed.json"))
            if request.url.params["interval"] == "1h"
            else httpx.Response(200, json=[])
        )
    )
    respx_mock.get(BINANCE_TICKER).respond(200, content=fixture_bytes("binance_ticker_24hr_symbols.constructed.json"))
    store = FakeHistory()
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        binance = make_provider(Binance, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill(candle_sources([kraken, binance]), [BTC, ETH], store, clock)
        await work.run_once()

        assert ohlc.call_count == 1  # the 429: Kraken is skipped for the rest of the pass, for every coin
        assert kraken.session.manners.held_seconds() == 120  # its session's manners show the hold
        assert kraken.session.manners.status().state == "backoff"
        assert [c.start for c in store.candles[("BTC", "usd")]] == [
            r[0] // 1000 for r in rows_of("binance_klines_btcusdt_1h.constructed.json")[:-1]
        ]
        assert ("ETH", "usd") in store.candles and klines.call_count == 4  # both coins, both spans, from Binance

        poller = Poller(
            [kraken, binance],
            SnapshotStore(),
            [BTC, ETH],
            ["usd"],
            interval=60,
            timeout=10,
            clock=clock,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
        )
        snapshot = await poller.run_once()  # a price round meanwhile: Kraken held, Binance prices
        assert snapshot.quote("BTC", "usd").source == "binance" and not kraken_ticker.called

        clock.advance(121)
        snapshot = await poller.run_once()  # the hold is over: Kraken is asked again
        assert kraken_ticker.called and kraken.session.manners.status().state == "ok"


async def test_too_many_requests_inside_a_200_holds_kraken_for_its_price_requests_too(respx_mock):
    clock = FakeClock()
    ohlc = respx_mock.get(OHLC).respond(200, content=fixture_bytes("kraken_error_too_many_requests.constructed.json"))
    respx_mock.get(KLINES).respond(200, json=[])
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        binance = make_provider(Binance, client, monotonic=clock.monotonic, sleep=clock.sleep)
        store = FakeHistory()
        work = backfill([kraken, binance], [BTC], store, clock)
        await work.run_once()
        assert ohlc.call_count == 1 and kraken.session.manners.held_seconds() == 60
        assert not kraken.session.manners.may_ask()  # the poller skips Kraken meanwhile
        assert work.pending == 2  # Binance had nothing: the spans wait for Kraken
        clock.advance(61)
        ohlc.respond(200, json=kraken_ohlc(LAST_HOUR - 5 * 3600, 6))
        await work.run_once()
        assert [c.start for c in store.candles[("BTC", "usd")]] == [LAST_HOUR - i * 3600 for i in range(5, 0, -1)]


async def test_a_price_round_runs_on_schedule_while_a_backfill_request_hangs():
    clock = FakeClock()
    hanging = anyio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        hanging.set()
        await anyio.sleep(3600)
        raise AssertionError("never answered")

    with respx.mock(assert_all_called=False) as router:
        router.get(OHLC).mock(side_effect=hang)
        ticker = router.get(TICKER).respond(200, content=fixture_bytes("kraken_ticker.json"))
        async with httpx.AsyncClient() as client:
            kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep, timeout=3600)
            work = backfill([kraken], [BTC], FakeHistory(), clock)
            poller = Poller(
                [kraken],
                SnapshotStore(),
                [BTC],
                ["usd"],
                interval=60,
                timeout=10,
                clock=clock,
                monotonic=clock.monotonic,
                sleep=clock.sleep,
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(work.run_once)
                with anyio.fail_after(5):
                    await hanging.wait()
                    for round_number in (1, 2, 3):
                        snapshot = await poller.run_once()  # on time, through the same session
                        assert snapshot.quote("BTC", "usd").price == 30303.2 and ticker.call_count == round_number
                        clock.advance(60)
                assert work.passes == 0  # the backfill request still hangs
                tasks.cancel_scope.cancel()


@pytest.mark.parametrize(("interval", "from_kraken"), [(1.0, False), (60.0, True)])
async def test_a_backfill_request_never_takes_the_pacing_slot_of_the_next_price_round(
    respx_mock, interval, from_kraken
):
    """Kraken spaces requests a second apart. At a 1 s interval a candle request half-way between rounds
    would make the next round's /Ticker wait for its slot (or miss it), so the backfill asks the next
    source; at 60 s there is room, and Kraken serves it. Either way the round starts its request at once."""
    clock = FakeClock()
    ohlc = respx_mock.get(OHLC).mock(side_effect=kraken_answers)
    ticker = respx_mock.get(TICKER).respond(200, content=fixture_bytes("kraken_ticker.json"))
    klines = respx_mock.get(KLINES).respond(200, content=fixture_bytes("binance_klines_btcusdt_1h.constructed.json"))
    store = FakeHistory()
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep, interval=interval)
        binance = make_provider(Binance, client, monotonic=clock.monotonic, sleep=clock.sleep, interval=interval)
        poller = Poller(
            [kraken, binance],
            SnapshotStore(),
            [BTC],
            ["usd"],
            interval=interval,
            timeout=1,
            clock=clock,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
        )
        await poller.run_once()
        clock.advance(interval / 2)  # the backfill's pass, half-way between rounds
        await backfill(candle_sources([kraken, binance]), [BTC], store, clock, interval=interval).run_once()
        assert ohlc.called is from_kraken and klines.called is not from_kraken
        assert store.candles[("BTC", "usd")]  # filled either way
        clock.now = max(clock.now, NOW + timedelta(seconds=interval))  # the next round is due
        slept = len(clock.slept)
        snapshot = await poller.run_once()
        assert snapshot.quote("BTC", "usd").source == "kraken" and ticker.call_count == 2
        assert clock.slept[slept:] == []  # the round's Kraken request did not wait for a pacing slot


async def test_a_history_that_reaches_back_is_not_asked_again_after_a_restart(respx_mock):
    clock = FakeClock()
    route = respx_mock.get(OHLC).respond(200, json={"error": [], "result": {"XXBTZUSD": [], "last": 0}})
    store = FakeHistory({("BTC", "usd"): NOW_S - 400 * 86400})
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill([kraken], [BTC], store, clock)
        await work.run_once()
        assert work.pending == 0 and not route.called


async def test_a_month_of_own_history_skips_the_hourly_span_but_fills_the_year(respx_mock):
    clock = FakeClock()
    route = respx_mock.get(OHLC).respond(200, json={"error": [], "result": {"XXBTZUSD": [], "last": 0}})
    store = FakeHistory({("BTC", "usd"): NOW_S - 31 * 86400})
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        await backfill([kraken], [BTC], store, clock).run_once()
    assert [call.request.url.params["interval"] for call in route.calls] == ["1440"]


async def test_daily_candles_fill_only_the_months_before_the_hourly_ones(respx_mock):
    clock = FakeClock()
    hour0 = NOW_S - NOW_S % 3600 - 720 * 3600
    day0 = (NOW_S - 365 * 86400) // 86400 * 86400

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["interval"] == "60":
            rows = [[hour0 + i * 3600, "2", "3", "1", "2", "2", "1", 1] for i in range(721)]
        else:
            rows = [[day0 + i * 86400, "2", "3", "1", "2", "2", "1", 1] for i in range(366)]
        return httpx.Response(200, json={"error": [], "result": {"XXBTZUSD": rows, "last": 0}})

    respx_mock.get(OHLC).mock(side_effect=answer)
    store = FakeHistory()
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        await backfill([kraken], [BTC], store, clock).run_once()
    got = store.candles[("BTC", "usd")]
    hours = [c for c in got if c.seconds == HOURLY.seconds]
    days = [c for c in got if c.seconds == DAILY.seconds]
    assert len(hours) == 720 and hours[-1].start + 3600 <= NOW_S  # the open hour is not a bucket yet
    assert days and days[0].start >= NOW_S - 366 * 86400 and days[-1].start + 86400 <= hours[0].start


async def test_sources_are_asked_in_order_coingecko_last_and_only_when_needed(respx_mock):
    clock = FakeClock()
    coinbase_route = respx_mock.get(url__regex=CANDLES).respond(200, json=[])
    kraken_route = respx_mock.get(OHLC).mock(side_effect=kraken_answers)
    chart = respx_mock.get(url__regex=CHART).respond(200, json={"prices": []})
    waves = Coin("WAVES", "Waves", {"coingecko": "waves"})
    async with httpx.AsyncClient() as client:
        providers = [
            make_provider(cls, client, monotonic=clock.monotonic, sleep=clock.sleep)
            for cls in (CoinGecko, Coinbase, Kraken)
        ]
        sources = candle_sources(providers)
        assert [s.name for s in sources] == ["coinbase", "kraken", "coingecko"]
        await backfill(sources, [BTC, waves], FakeHistory(), clock).run_once()
    assert coinbase_route.called and kraken_route.called  # Coinbase had nothing for BTC: Kraken was asked next
    assert [call.request.url.path.split("/")[-2] for call in chart.calls] == ["waves", "waves"]  # never for BTC


async def test_an_unknown_pair_moves_on_and_is_asked_again_after_an_hour(respx_mock, caplog):
    clock = FakeClock()
    ohlc = respx_mock.get(OHLC).respond(200, content=fixture_bytes("kraken_error_unknown_pair.json"))
    klines = respx_mock.get(KLINES).respond(400, content=fixture_bytes("binance_error_invalid_symbol.json"))
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        binance = make_provider(Binance, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill([kraken, binance], [BTC], FakeHistory(), clock)
        with caplog.at_level(logging.INFO):
            await work.run_once()
        assert (ohlc.call_count, klines.call_count) == (1, 1)
        assert kraken.session.manners.may_ask() and binance.session.manners.may_ask()  # no hold: the pair is unknown
        assert "kraken: no BTC/usd hourly candles (API error: EQuery:Unknown asset pair)" in caplog.text
        clock.advance(RETRY_SECONDS - 1)
        await work.run_once()
        assert (ohlc.call_count, klines.call_count) == (1, 1)
        clock.advance(1)
        await work.run_once()
        assert (ohlc.call_count, klines.call_count) == (2, 2) and work.pending == 2


async def test_a_coin_nobody_has_candles_for_is_never_asked(respx_mock):
    clock = FakeClock()
    paprika_only = Coin("ARRR", "Pirate Chain", {"coinpaprika": "arrr-pirate"})
    static = Coin("OPENVC", "OpenVoiceCoin", prices={"usd": 0.0042})
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill([kraken], [paprika_only, static, BTC], FakeHistory(), clock, currencies=("eur",))
    assert work.pending == 0  # Kraken has USD pairs only; nothing was sent (respx would fail an unmocked call)


async def test_coingecko_only_where_its_budget_allows(respx_mock):
    """Keyless CoinGecko: 5 a minute, one kept for the price round; three coins' six requests take two minutes."""
    clock = FakeClock()
    chart = respx_mock.get(url__regex=CHART).respond(200, json={"prices": []})
    coins = [Coin(s, s, {"coingecko": s.lower()}) for s in ("WAVES", "ARRR", "NEO")]
    async with httpx.AsyncClient() as client:
        coingecko = make_provider(
            CoinGecko, client, budget=RequestBudget(5, monotonic=clock.monotonic), monotonic=clock.monotonic
        )
        coingecko.session.reserve = coingecko.session.budget.reserve_for(1, 60.0)
        work = backfill([coingecko], coins, FakeHistory(), clock)
        await work.run_once()
        assert chart.call_count == 4  # 4 side requests in the minute, the 5th is the price round's
        clock.advance(30)
        await work.run_once()
        assert chart.call_count == 4 and work.pending == 2
        clock.advance(31)
        await work.run_once()
        assert chart.call_count == 6 and work.pending == 0


async def test_implausible_candles_never_reach_the_store(respx_mock, caplog):
    clock = FakeClock()
    hour = NOW_S - NOW_S % 3600 - 7200
    rows = [
        [hour, "90000", "91000", "89000", "90500", "1", "1", 1],
        [hour + 3600, "9e9", "9e9", "9e9", "9e9", "1", "1", 1],
    ]
    respx_mock.get(OHLC).respond(200, json={"error": [], "result": {"XXBTZUSD": rows, "last": 0}})
    store = FakeHistory()
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        with caplog.at_level(logging.WARNING):
            await backfill([kraken], [BTC], store, clock).run_once()
    assert [c.close for c in store.candles[("BTC", "usd")]] == [90500.0]  # 9e9 USD for one BTC is no price
    assert "dropped 1 implausible candles" in caplog.text


async def test_turned_off_it_sends_nothing_and_its_task_ends(respx_mock):
    clock = FakeClock()
    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill([kraken], [BTC], FakeHistory(), clock, enabled=False)
        with anyio.fail_after(1):
            await work.run_once()
            await work.run_forever()
    assert work.passes == 0 and clock.slept == []


async def test_only_the_instance_that_polls_backfills_and_the_task_ends_when_done(respx_mock):
    clock = FakeClock()
    polling = False
    route = respx_mock.get(OHLC).respond(200, json=kraken_ohlc(LAST_HOUR - 3 * 3600, 4))

    async def sleep(seconds: float) -> None:
        nonlocal polling
        clock.slept.append(seconds)
        clock.advance(seconds)
        polling = len(clock.slept) >= 3  # follows for two intervals, then takes the lease
        await anyio.sleep(0)

    async with httpx.AsyncClient() as client:
        kraken = make_provider(Kraken, client, monotonic=clock.monotonic, sleep=clock.sleep)
        work = backfill([kraken], [BTC], FakeHistory(), clock, active=lambda: polling, sleep=sleep)
        with anyio.fail_after(5):
            await work.run_forever()
    assert clock.slept[0] == 30  # half an interval after a round: prices go first
    assert route.call_count == 2 and work.pending == 0 and work.passes == 1


async def test_a_backfill_of_the_default_coins_costs(respx_mock):
    """The 11 default coins in usd, each provider alone, with every span answered: requests per provider."""
    clock = FakeClock()
    hour = NOW_S - NOW_S % 3600 - 3600

    def kraken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": [], "result": {"XUSD": [[hour, "1", "1", "1", "1", "1", "1", 1]]}})

    bodies = {
        Kraken: (OHLC, kraken),
        Binance: (KLINES, lambda r: httpx.Response(200, json=[[hour * 1000, "1", "1", "1", "1"]])),
        Coinbase: (CANDLES, lambda r: httpx.Response(200, json=[[hour, 1, 1, 1, 1, 1]])),
        CoinGecko: (CHART, lambda r: httpx.Response(200, json={"prices": [[(hour + 60) * 1000, 1.0]]})),
    }
    coins = default_settings().market.coins
    costs = {}
    for cls, (url, answer) in bodies.items():
        route = (respx_mock.get(url__regex=url) if "[" in url else respx_mock.get(url)).mock(side_effect=answer)
        async with httpx.AsyncClient() as client:
            source = make_provider(cls, client, monotonic=clock.monotonic, sleep=clock.sleep)
            work = backfill([source], coins, FakeHistory(), clock)
            while work.pending and work.passes < 5:
                await work.run_once()
        costs[cls.name] = (sum(1 for c in coins if source.has_candles(c, "usd")), route.call_count)
    assert costs == {
        "kraken": (6, 12),  # BTC ETH XMR DOGE LTC ADA: 2 each
        "binance": (8, 16),  # BTC ETH NEO XNO ARK DOGE LTC ADA: 2 each
        "coinbase": (5, 25),  # BTC ETH DOGE LTC ADA: 3 hourly + 2 daily each
        "coingecko": (11, 22),  # every coin: 2 each
    }
    assert math.isclose(sum(n for _, n in costs.values()), 75)
