"""A one-hour CoinGecko outage with 429s, on a fake clock: real providers, poller and side work, respx upstream.

Besides the outage, /coins/markets answers one 429 (Retry-After 20) to the side work just before a price
round, and Coinbase answers one product with 429 (Retry-After 600) while the others succeed.
Prints the request counts (run with -s to see them); asserts the budgets, that the request log shows
nothing inside any hold, per-coin failover, and recovery to the primary within two intervals.
"""

from __future__ import annotations

from collections import Counter

import httpx

from tests.conftest import DEFAULT_COIN_PRICES, FakeClock, fixture_bytes, fixture_json
from tests.providers.helpers import make_provider
from ticker.config import ProviderSettings, default_settings
from ticker.models import iso
from ticker.poller import Poller
from ticker.providers.budget import RequestBudget
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.coinpaprika import CoinPaprika
from ticker.side_work import SideWork
from ticker.store import SnapshotStore

INTERVAL = 60
OUTAGE = (5 * 60, 65 * 60)  # CoinGecko answers 429 from minute 5 to minute 65
RETRY_AFTER = 119  # as in the captured 429
MARKETS_429 = (160, 200)  # /coins/markets answers 429 (Retry-After 20) in this window, before the outage
MARKETS_RETRY_AFTER = 20
COINBASE_RETRY_AFTER = 600  # ETH-USD answers its first request with this 429; BTC-USD is priced in that round


def paprika_rows() -> list[dict]:
    """The real /v1/tickers rows, plus rows for the default coins the capture lacks (same schema)."""
    rows = fixture_json("coinpaprika_tickers.json")
    have = {row["id"] for row in rows}
    template = rows[0]
    for coin in default_settings().market.coins:
        pid = coin.ids["coinpaprika"]
        if pid not in have:
            rows.append(
                template
                | {"id": pid, "symbol": coin.symbol, "quotes": {"USD": template["quotes"]["USD"] | {"price": 1.25}}}
            )
    return rows


def hold_lines(name: str, log: list[tuple[float, str, float | None]], most: int = 3) -> list[str]:
    """'coingecko: 429 on coins/markets at 170.0 s, Retry-After 20 -> next request at 230.0 s (60.0 s later)'."""
    lines = []
    for at, what, retry_after in log:
        if retry_after is not None and len(lines) < most:
            after = [t for t, _, _ in log if t > at]
            following = (
                f"next request at {after[0]:.1f} s ({after[0] - at:.1f} s later)" if after else "no later request"
            )
            lines.append(f"{name}: 429 on {what} at {at:.1f} s, Retry-After {retry_after:g} -> {following}")
    return lines


def held_requests(log: list[tuple[float, str, float | None]]) -> list[str]:
    """Requests sent after a Retry-After arrived and before it ran out (the same provider, any endpoint)."""
    wrong = []
    for at, what, retry_after in log:
        if retry_after is None:
            continue
        wrong += [
            f"{w} at {t:.1f} s, inside {what}'s hold from {at:.1f} s" for t, w, _ in log if at < t < at + retry_after
        ]
    return wrong


async def test_one_hour_outage_with_429s(respx_mock, capsys):
    clock = FakeClock()
    sent: dict[str, list[float]] = {"coingecko": [], "coinpaprika": [], "coinbase": []}
    logs: dict[str, list[tuple[float, str, float | None]]] = {name: [] for name in sent}

    def coingecko(request: httpx.Request) -> httpx.Response:
        elapsed = clock.monotonic() - 1_000
        sent["coingecko"].append(elapsed)
        path = request.url.path.rsplit("/", 2)[-2:]
        if OUTAGE[0] <= elapsed < OUTAGE[1]:
            logs["coingecko"].append((elapsed, "/".join(path), RETRY_AFTER))
            return httpx.Response(
                429, headers={"retry-after": str(RETRY_AFTER)}, content=fixture_bytes("coingecko_error_429.json")
            )
        if request.url.path.endswith("/coins/markets"):
            if MARKETS_429[0] <= elapsed < MARKETS_429[1]:
                logs["coingecko"].append((elapsed, "coins/markets", MARKETS_RETRY_AFTER))
                return httpx.Response(
                    429,
                    headers={"retry-after": str(MARKETS_RETRY_AFTER)},
                    content=fixture_bytes("coingecko_error_429.json"),
                )
            logs["coingecko"].append((elapsed, "coins/markets", None))
            return httpx.Response(200, json=fixture_json("coingecko_coins_markets_fixture.json"))
        logs["coingecko"].append((elapsed, "simple/price", None))
        body = fixture_json(DEFAULT_COIN_PRICES)
        stamp = int(clock.now.timestamp())  # CoinGecko's last_updated_at is within a minute of the request
        return httpx.Response(200, json={cid: entry | {"last_updated_at": stamp} for cid, entry in body.items()})

    coinbase_limited = []

    def coinbase(request: httpx.Request) -> httpx.Response:
        elapsed = clock.monotonic() - 1_000
        sent["coinbase"].append(elapsed)
        product = request.url.path.split("/")[2]
        if product == "ETH-USD" and not coinbase_limited:
            coinbase_limited.append(elapsed)
            logs["coinbase"].append((elapsed, product, COINBASE_RETRY_AFTER))
            return httpx.Response(
                429,
                headers={"retry-after": str(COINBASE_RETRY_AFTER)},
                content=fixture_bytes("coinbase_error_429.constructed.json"),
            )
        logs["coinbase"].append((elapsed, product, None))
        return httpx.Response(200, json=fixture_json("coinbase_stats.json"))

    def coinpaprika(request: httpx.Request) -> httpx.Response:
        sent["coinpaprika"].append(clock.monotonic() - 1_000)
        now = iso(clock.now)  # CoinPaprika refreshes every few minutes; the capture's 2021 time would be stale
        return httpx.Response(200, json=[row | {"last_updated": now} for row in paprika_rows()])

    respx_mock.route(host="api.coingecko.com").mock(side_effect=coingecko)
    respx_mock.route(host="api.coinpaprika.com").mock(side_effect=coinpaprika)
    respx_mock.route(host="api.exchange.coinbase.com").mock(side_effect=coinbase)

    settings = default_settings()
    budgets = {
        "coingecko": RequestBudget(5, None, monotonic=clock.monotonic),  # keyless CoinGecko
        "coinpaprika": RequestBudget(10, 20_000, monotonic=clock.monotonic),  # free CoinPaprika
        "coinbase": RequestBudget(60, None, monotonic=clock.monotonic),
    }
    async with httpx.AsyncClient() as client:

        def build(cls, name, plan):
            return make_provider(
                cls,
                client,
                ProviderSettings(plan=plan),
                budget=budgets[name],
                monotonic=clock.monotonic,
                sleep=clock.sleep,
            )

        cg = build(CoinGecko, "coingecko", "demo")
        cg.metadata_every = 120  # the daily refresh, made frequent so one lands in the markets' 429 window
        providers = [cg, build(Coinbase, "coinbase", "public"), build(CoinPaprika, "coinpaprika", "free")]
        store = SnapshotStore()
        poller = Poller(
            providers,
            store,
            settings.market.coins,
            ["usd"],
            interval=INTERVAL,
            timeout=10,
            clock=clock,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
            random_fraction=lambda: 0.5,
            max_jump_pct=None,  # the fakes' prices disagree wildly (Coinbase's one body prices every coin at 6813)
        )
        side = SideWork(
            providers,
            settings.market.coins,
            "usd",
            icons=None,
            current=lambda: store.current,
            interval=INTERVAL,
            time_budget=30,
            monotonic=clock.monotonic,
            sleep=clock.sleep,
        )
        sources_by_minute: dict[int, Counter[str]] = {}
        for minute in range(80):
            round_start = clock.monotonic()
            snapshot = await poller.run_once()
            sources_by_minute[minute] = Counter(q.source for q in snapshot.quotes.values())
            clock.advance(round_start + 50 - clock.monotonic())
            await side.run_once()  # side work between rounds, as its own task does
            clock.advance(round_start + INTERVAL - clock.monotonic())

    in_outage = {name: sum(OUTAGE[0] <= t < OUTAGE[1] for t in times) for name, times in sent.items()}
    with capsys.disabled():
        print(
            f"\n1-hour outage: requests during the outage {in_outage}; "
            f"over 80 minutes { {k: len(v) for k, v in sent.items()} }; holds kept: "
            f"{ {k: sum(ra is not None for _, _, ra in v) for k, v in logs.items()} }"
        )
        for name, log in logs.items():
            for line in hold_lines(name, log):
                print("  " + line)

    # The budget is never exceeded in any 60-second window.
    for name, limit in (("coingecko", 5), ("coinpaprika", 10), ("coinbase", 60)):
        times = sent[name]
        assert max(sum(t <= u < t + 60 for u in times) for t in times) <= limit
    # Retry-After wins, on any endpoint: the request log shows nothing inside any hold.
    for name, log in logs.items():
        assert held_requests(log) == [], name
    markets_429 = next(t for t, what, ra in logs["coingecko"] if what == "coins/markets" and ra)
    assert not [t for t in sent["coingecko"] if markets_429 < t < markets_429 + MARKETS_RETRY_AFTER]
    assert sources_by_minute[3]["coingecko"] == 0  # the price round inside the markets' hold failed over
    [eth_429] = coinbase_limited
    assert not [t for t in sent["coinbase"] if eth_429 < t < eth_429 + COINBASE_RETRY_AFTER]
    assert [t for t in sent["coinbase"] if t >= eth_429 + COINBASE_RETRY_AFTER]  # asked again after the hold
    failures = [t for t in sent["coingecko"] if OUTAGE[0] <= t < OUTAGE[1]]
    assert all(b - a >= RETRY_AFTER for a, b in zip(failures, failures[1:], strict=False))
    assert in_outage["coingecko"] <= 60 * 60 / RETRY_AFTER + 1  # ~one probe per Retry-After, not one per round
    # Every coin fails over during the outage; the fallbacks were asked before it only in the markets' hold.
    assert {t // 60 for t in sent["coinpaprika"] + sent["coinbase"] if t < OUTAGE[0]} == {3}
    for minute in range(7, 64):
        assert sources_by_minute[minute]["coinpaprika"] + sources_by_minute[minute]["coinbase"] == 11, minute
    # Recovery to the primary within two intervals after the last Retry-After has passed.
    back = OUTAGE[1] + RETRY_AFTER
    recovered_minute = next(m for m in range(OUTAGE[1] // 60, 80) if sources_by_minute[m]["coingecko"] == 11)
    assert recovered_minute * 60 <= back + 2 * INTERVAL
    assert max(sent["coinpaprika"] + sent["coinbase"]) < recovered_minute * 60 + INTERVAL
