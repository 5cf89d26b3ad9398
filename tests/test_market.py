"""Market fields in process: CoinGecko through its session, the poller and side work on one fake clock, to the JSON.

Market cap and 24 h volume come with every round's /simple/price at no extra request; rank and CoinGecko's own
1h/7d/30d changes come from /coins/markets, asked at most once an hour as side work, merged into the next
rounds' quotes while at most two hours old, and win over the changes our own history gives.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from tests.conftest import CG, DEFAULT_COIN_PRICES, NOW, FakeClock, fixture_json, settings_from
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings, default_settings
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory
from ticker.history.recorder import HistoryRecorder
from ticker.models import Snapshot, iso
from ticker.poller import Poller
from ticker.providers.budget import RequestBudget
from ticker.providers.coingecko import CoinGecko
from ticker.side_work import SideWork
from ticker.store import SnapshotStore

COINS = default_settings().market.coins  # the 11 default coins, all of them on CoinGecko
PRICES_URL = f"{CG}/simple/price"
MARKETS_URL = f"{CG}/coins/markets"
MARKETS_CHANGES = "coingecko_coins_markets_changes.constructed.json"
HOUR = 3600


class Service:
    """CoinGecko, the poller and side work wired as runtime.py wires them, on `clock`: a round every `interval`
    seconds and a side work pass half an interval after each."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        clock: FakeClock,
        *,
        interval: float = 60,
        budget: RequestBudget | None = None,
        history: HistoryRecorder | None = None,
        settings: ProviderSettings | None = None,
    ) -> None:
        self.clock = clock
        self.interval = interval
        self.coingecko = make_provider(
            CoinGecko, client, settings, budget=budget, monotonic=clock.monotonic, interval=interval
        )
        self.coingecko.session.manners.wall = lambda: clock().timestamp()
        self.store = SnapshotStore()
        self.poller = Poller(
            [self.coingecko],
            self.store,
            COINS,
            ["usd", "eur"],
            interval=interval,
            timeout=10,
            clock=clock,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
            history=history,
        )
        self.side_work = SideWork(
            [self.coingecko],
            COINS,
            "usd",
            icons=None,
            current=lambda: self.store.current,
            interval=interval,
            time_budget=30,
            monotonic=clock.monotonic,
        )

    async def run(self, seconds: float) -> Snapshot:
        """Rounds and side work passes for `seconds`; the last round's snapshot."""
        end = self.clock.monotonic() + seconds
        snapshot = None
        while self.clock.monotonic() < end:
            snapshot = await self.poller.run_once()
            self.clock.advance(self.interval / 2)
            await self.side_work.run_once()
            self.clock.advance(self.interval / 2)
        assert snapshot is not None
        return snapshot


def markets_answer(clock: FakeClock, asked: list[float], *, answers: int | None = None) -> Any:
    """/coins/markets as CoinGecko answers it: the constructed rows, each updated 30 s before it is asked;
    after `answers` good answers, HTTP 500."""

    def answer(request: httpx.Request) -> httpx.Response:
        if answers is not None and len(asked) >= answers:
            return httpx.Response(500)
        asked.append(clock.monotonic())
        rows = fixture_json(MARKETS_CHANGES)
        for row in rows:
            row["last_updated"] = iso(clock() - timedelta(seconds=30))
        return httpx.Response(200, json=rows)

    return answer


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


def prices_route(router: respx.MockRouter, clock: FakeClock, sent: list[float] | None = None) -> respx.Route:
    """/simple/price for the default coins in usd and eur, each price updated 29 s before it is asked."""

    def answer(request: httpx.Request) -> httpx.Response:
        if sent is not None:
            sent.append(clock.monotonic())
        body = fixture_json(DEFAULT_COIN_PRICES)
        for entry in body.values():
            entry["last_updated_at"] = int(clock().timestamp()) - 29
        return httpx.Response(200, json=body)

    return router.get(PRICES_URL).mock(side_effect=answer)


@pytest.fixture
def json_of(make_client: Any, tmp_path: Path) -> Any:
    """The coins of /api/v1/prices for a snapshot (default coins, usd and eur), by symbol."""
    settings = settings_from(tmp_path, '[market]\ncurrencies = ["usd", "eur"]\n[cache]\nsnapshot_path = ""\n')

    async def coins(snapshot: Snapshot, currency: str = "usd") -> dict[str, dict[str, Any]]:
        client = await make_client(settings, snapshot)
        response = await client.get("/api/v1/prices", params={"currency": currency})
        assert response.status_code == 200, response.text
        return {coin["symbol"]: coin for coin in response.json()["coins"]}

    return coins


async def test_market_cap_and_volume_come_with_every_round_at_no_extra_request(respx_mock, client, clock, json_of):
    prices = prices_route(respx_mock, clock)  # the only route: any other request would fail the test
    service = Service(client, clock)
    for round_number in range(1, 4):
        snapshot = await service.poller.run_once()
        clock.advance(60)
        assert prices.call_count == len(respx_mock.calls) == round_number
        btc = snapshot.quote("BTC", "eur")
        assert (btc.market_cap, btc.volume_24h) == (1679465294322.92, 28925054631.94)
    coins = await json_of(snapshot)
    assert (coins["BTC"]["market_cap"], coins["BTC"]["volume_24h"]) == (1815092365248.12, 31260929299.52)
    assert coins["ARRR"]["market_cap"] is None and coins["ARRR"]["volume_24h"] == 212345.67  # CoinGecko's 0
    assert coins["BTC"]["rank"] is None  # no hourly market data yet: unknown, never 0


async def test_coins_markets_is_asked_at_most_once_an_hour_and_its_rank_and_changes_reach_the_json(
    respx_mock, client, clock, json_of
):
    asked: list[float] = []
    prices = prices_route(respx_mock, clock)
    respx_mock.get(MARKETS_URL).mock(side_effect=markets_answer(clock, asked))
    service = Service(client, clock)
    snapshot = await service.run(3 * HOUR)
    assert prices.call_count == 180  # a round a minute, each one request for every coin and currency
    assert len(asked) == 3 and [b - a for a, b in zip(asked, asked[1:], strict=False)] == [HOUR, HOUR]
    coins = await json_of(snapshot)
    btc = coins["BTC"]
    assert (btc["rank"], btc["change_1h_pct"], btc["change_7d_pct"], btc["change_30d_pct"]) == (
        1,
        0.2146,
        -1.8421,
        6.7312,
    )
    assert btc["change_24h_pct"] == 1.64 and btc["market_cap"] == 1815092365248.12
    assert coins["ARRR"]["rank"] is None and coins["ARRR"]["change_7d_pct"] is None  # null in the answer
    assert coins["XMR"]["change_1h_pct"] == 0.0  # a real 0 change is shown as 0
    in_eur = await json_of(snapshot, "eur")
    assert in_eur["BTC"]["rank"] == 1  # a rank is the same in every currency
    assert in_eur["BTC"]["change_7d_pct"] is None  # a change in USD is not one in EUR (no history here)


async def test_market_data_older_than_two_hours_is_dropped_never_shown_as_fresh(respx_mock, client, clock, json_of):
    asked: list[float] = []
    prices_route(respx_mock, clock)
    # The first answer, then CoinGecko's /coins/markets fails every hour (prices keep coming).
    respx_mock.get(MARKETS_URL).mock(side_effect=markets_answer(clock, asked, answers=1))
    service = Service(client, clock)
    snapshot = await service.run(2 * HOUR - 5 * 60)
    assert snapshot.quote("BTC", "usd").rank == 1  # an hour and 55 minutes old: still shown
    snapshot = await service.run(10 * 60)
    coins = await json_of(snapshot)
    assert coins["BTC"]["price"] == 90917.04 and not coins["BTC"]["stale"]  # the price is fresh, the rank gone
    assert coins["BTC"]["rank"] is None and coins["BTC"]["change_7d_pct"] is None
    assert len(asked) == 1


async def test_the_providers_own_7d_change_wins_over_our_history(respx_mock, client, clock, json_of):
    history = MemoryHistory()
    week_ago = (NOW - timedelta(days=7)).timestamp()
    await history.append([Tick("BTC", "usd", week_ago, 60611.36), Tick("WAVES", "usd", NOW.timestamp() - HOUR, 0.5)])
    recorder = HistoryRecorder(history, [coin.symbol for coin in COINS], "usd")
    asked: list[float] = []
    prices_route(respx_mock, clock)
    respx_mock.get(MARKETS_URL).mock(side_effect=markets_answer(clock, asked, answers=1))
    service = Service(client, clock, history=recorder)
    first = await service.poller.run_once()
    assert first.quote("BTC", "usd").change_7d_pct == pytest.approx(50.0)  # ours: no market data yet
    clock.advance(30)
    await service.side_work.run_once()
    clock.advance(30)
    coins = await json_of(await service.poller.run_once())
    assert coins["BTC"]["change_7d_pct"] == -1.8421  # CoinGecko's own figure wins over ours (+50 %)
    assert coins["WAVES"]["change_1h_pct"] == pytest.approx(88.24691)  # none in its answer: ours fills it
    clock.advance(2 * HOUR)  # the market data ages out: our own change again, never a stale one of theirs
    coins = await json_of(await service.poller.run_once())
    assert coins["BTC"]["change_7d_pct"] == pytest.approx(50.0, abs=0.5)


def most_in_any_window(moments: list[float], seconds: float) -> int:
    """The most of the sorted `moments` that fall in any window of `seconds` (one starting at each moment)."""
    return max((bisect_left(moments, start + seconds) - i for i, start in enumerate(moments)), default=0)


@pytest.mark.parametrize(
    ("plan", "interval", "hours", "most_markets", "price_calls"),
    [
        pytest.param("keyless", 60, 6, 6, 360, id="keyless-5-a-minute-rounds-every-minute"),
        pytest.param("demo", 300, 24, 24, 288, id="demo-rounds-every-5-min"),
        pytest.param("demo", 240, 24, 0, 333, id="demo-rounds-need-more-than-the-day-share"),
    ],
)
async def test_a_day_of_hourly_markets_never_costs_a_round_nor_exceeds_the_budget(
    respx_mock, client, monkeypatch, plan, interval, hours, most_markets, price_calls
):
    """Hours on the fake clock with the published limits: keyless 5 a minute; a demo key 30 a minute and 10,000
    a month, an even 333 a day. /coins/markets is asked at most once an hour and only with what the rounds leave
    over: every round that the budget allows goes out, and no minute or day holds more than the limits."""
    clock = FakeClock()
    markets, prices = [], []
    prices_route(respx_mock, clock, prices)
    respx_mock.get(MARKETS_URL).mock(side_effect=markets_answer(clock, markets))
    settings = ProviderSettings(plan="demo")
    if plan == "demo":
        monkeypatch.setenv("CG_KEY", "demo-key")
        settings = ProviderSettings(plan="demo", api_key_env="CG_KEY")
    per_minute, per_month = CoinGecko.default_limits(settings)
    budget = RequestBudget(per_minute, per_month, monotonic=clock.monotonic)
    service = Service(client, clock, interval=interval, budget=budget, settings=settings)
    await service.run(hours * HOUR)
    assert len(prices) == price_calls and len(markets) <= most_markets
    assert all(later - earlier >= HOUR for earlier, later in zip(markets, markets[1:], strict=False))
    assert most_in_any_window(sorted(prices + markets), 60) <= per_minute
    assert per_month is None or len(prices) + len(markets) <= per_month // 30
    if plan == "keyless":
        assert len(markets) == hours  # no monthly cap: the minute's 4 spare requests afford it every hour
