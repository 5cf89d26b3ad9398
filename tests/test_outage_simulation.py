"""A one-hour CoinGecko outage with 429s, on a fake clock: real providers, real poller, respx upstream.

Prints the request counts (run with -s to see them); asserts the budget, the Retry-After manners,
per-coin failover to CoinPaprika, and recovery to the primary within two intervals.
"""

from __future__ import annotations

from collections import Counter

import httpx

from tests.conftest import DEFAULT_COIN_PRICES, FakeClock, fixture_bytes, fixture_json
from ticker.config import ProviderSettings, default_settings
from ticker.models import iso
from ticker.poller import Poller
from ticker.providers.budget import RequestBudget
from ticker.providers.coingecko import CoinGecko
from ticker.providers.coinpaprika import CoinPaprika
from ticker.store import SnapshotStore

INTERVAL = 60
OUTAGE = (5 * 60, 65 * 60)  # CoinGecko answers 429 from minute 5 to minute 65
RETRY_AFTER = 119  # as in the captured 429


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


async def test_one_hour_outage_with_429s(respx_mock, capsys):
    clock = FakeClock()
    sent: dict[str, list[float]] = {"coingecko": [], "coinpaprika": []}

    def coingecko(request: httpx.Request) -> httpx.Response:
        elapsed = clock.monotonic() - 1_000
        sent["coingecko"].append(elapsed)
        if OUTAGE[0] <= elapsed < OUTAGE[1]:
            return httpx.Response(
                429, headers={"retry-after": str(RETRY_AFTER)}, content=fixture_bytes("coingecko_error_429.json")
            )
        if request.url.path.endswith("/coins/markets"):
            return httpx.Response(200, json=fixture_json("coingecko_coins_markets_fixture.json"))
        body = fixture_json(DEFAULT_COIN_PRICES)
        stamp = int(clock.now.timestamp())  # CoinGecko's last_updated_at is within a minute of the request
        return httpx.Response(200, json={cid: entry | {"last_updated_at": stamp} for cid, entry in body.items()})

    def coinpaprika(request: httpx.Request) -> httpx.Response:
        sent["coinpaprika"].append(clock.monotonic() - 1_000)
        now = iso(clock.now)  # CoinPaprika refreshes every few minutes; the capture's 2021 time would be stale
        return httpx.Response(200, json=[row | {"last_updated": now} for row in paprika_rows()])

    respx_mock.route(host="api.coingecko.com").mock(side_effect=coingecko)
    respx_mock.route(host="api.coinpaprika.com").mock(side_effect=coinpaprika)

    settings = default_settings()
    budgets = {
        "coingecko": RequestBudget(5, None, monotonic=clock.monotonic),  # keyless CoinGecko
        "coinpaprika": RequestBudget(10, 20_000, monotonic=clock.monotonic),  # free CoinPaprika
    }
    async with httpx.AsyncClient() as client:
        providers = [
            CoinGecko(client, ProviderSettings(plan="demo"), budget=budgets["coingecko"], monotonic=clock.monotonic),
            CoinPaprika(client, ProviderSettings(plan="free"), budget=budgets["coinpaprika"]),
        ]
        poller = Poller(
            providers,
            SnapshotStore(),
            settings.market.coins,
            ["usd"],
            interval=INTERVAL,
            clock=clock,
            sleep=clock.sleep,
            random_fraction=lambda: 0.5,
        )
        sources_by_minute: dict[int, Counter[str]] = {}
        for minute in range(80):
            snapshot = await poller.run_once()
            sources_by_minute[minute] = Counter(q.source for q in snapshot.quotes.values())
            clock.advance(INTERVAL)

    in_outage = {name: sum(OUTAGE[0] <= t < OUTAGE[1] for t in times) for name, times in sent.items()}
    with capsys.disabled():
        print(
            f"\n1-hour outage: requests during the outage {in_outage}; "
            f"over 80 minutes { {k: len(v) for k, v in sent.items()} }"
        )

    # The budget is never exceeded in any 60-second window.
    for name, limit in (("coingecko", 5), ("coinpaprika", 10)):
        times = sent[name]
        assert max(sum(t <= u < t + 60 for u in times) for t in times) <= limit
    # Retry-After wins: after each 429, no request to CoinGecko for RETRY_AFTER seconds.
    failures = [t for t in sent["coingecko"] if OUTAGE[0] <= t < OUTAGE[1]]
    assert all(b - a >= RETRY_AFTER for a, b in zip(failures, failures[1:], strict=False))
    assert in_outage["coingecko"] <= 60 * 60 / RETRY_AFTER + 1  # ~one probe per Retry-After, not one per round
    # Every coin fails over to CoinPaprika during the outage; it was not asked before the outage.
    assert not [t for t in sent["coinpaprika"] if t < OUTAGE[0]]
    for minute in range(7, 64):
        assert sources_by_minute[minute]["coinpaprika"] == 11, minute
    # Recovery to the primary within two intervals after the last Retry-After has passed.
    back = OUTAGE[1] + RETRY_AFTER
    recovered_minute = next(m for m in range(OUTAGE[1] // 60, 80) if sources_by_minute[m]["coingecko"] == 11)
    assert recovered_minute * 60 <= back + 2 * INTERVAL
    assert max(sent["coinpaprika"]) < recovered_minute * 60 + INTERVAL
