"""'top:N' in market.coins: config, the rankings, resolution, and a list that follows the market."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CG, NOW, FakeClock, fixture_json, settings_from
from ticker.exceptions import ConfigError, ProviderError
from ticker.history.memory import MemoryHistory
from ticker.models import Candidate, Coin, Quote, Snapshot
from ticker.poller import Poller
from ticker.providers import PROVIDERS
from ticker.runtime import build_providers
from ticker.side_work import SideWork
from ticker.store import SnapshotStore
from ticker.top import MARGIN, CoinList, TopRanking, TopSettings, ranked_coin, ranked_coins

PAPRIKA = "https://api.coinpaprika.com/v1"
TOP_PAGE = "coingecko_coins_markets_top.constructed.json"


def config_errors(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    return list(caught.value.errors)


# --- config -----------------------------------------------------------------------------------


def test_top_entry_takes_its_place_and_the_first_ranking_provider(tmp_path):
    market = settings_from(tmp_path, '[market]\ncoins = ["XMR", "top:10", "BTC"]\n').market
    assert [c.symbol for c in market.coins] == ["XMR", "BTC"]
    assert market.top == TopSettings(10, 1, "coingecko", skip_stablecoins=False)
    paprika = settings_from(
        tmp_path,
        '[market]\ncoins = ["top:3"]\ntop_skip_stablecoins = true\n[poller]\nproviders = ["kraken", "coinpaprika"]\n',
    ).market
    assert paprika.top == TopSettings(3, 0, "coinpaprika", skip_stablecoins=True)


@pytest.mark.parametrize(
    ("coins", "error"),
    [
        ('["top:0"]', "market.coins[0]: expected \"top:N\" with N a whole number from 1 to 100, got 'top:0'"),
        ('["top:101"]', "market.coins[0]: expected \"top:N\" with N a whole number from 1 to 100, got 'top:101'"),
        (
            '["BTC", "top:ten"]',
            "market.coins[1]: expected \"top:N\" with N a whole number from 1 to 100, got 'top:ten'",
        ),
        ('["top:5", "top:7"]', 'market.coins[1]: only one "top:N" entry is allowed in market.coins'),
    ],
)
def test_bad_top_entries_are_config_errors(tmp_path, coins, error):
    assert error in config_errors(tmp_path, f"[market]\ncoins = {coins}\n")


def test_top_without_a_ranking_provider_is_a_config_error(tmp_path):
    errors = config_errors(tmp_path, '[market]\ncoins = ["top:5"]\n[poller]\nproviders = ["kraken", "binance"]\n')
    assert errors == [
        'market.coins: "top:5" needs a ranking from coingecko or coinpaprika; add one of them to poller.providers '
        "(now kraken, binance)"
    ]


def test_skip_stablecoins_must_be_a_boolean(tmp_path):
    errors = config_errors(tmp_path, '[market]\ncoins = ["top:5"]\ntop_skip_stablecoins = "yes"\n')
    assert len(errors) == 1 and errors[0].startswith("market.top_skip_stablecoins:")


# --- the rankings (respx, documented shapes) --------------------------------------------------


async def ranking_of(name: str, count: int = 10) -> list[Candidate]:
    settings = settings_from_default(name)
    async with httpx.AsyncClient() as client:
        [provider] = build_providers(settings, client)
        return await provider.ranking(count, "usd")  # type: ignore[attr-defined,no-any-return]


def settings_from_default(name: str) -> Any:
    from ticker.config.settings import _parse

    return _parse({"poller": {"providers": [name]}}, base_dir=None, source=None)


async def test_coingecko_ranking_is_one_markets_request_by_market_cap(respx_mock):
    route = respx_mock.get(f"{CG}/coins/markets").respond(200, json=fixture_json(TOP_PAGE))
    rows = await ranking_of("coingecko", 30)
    assert route.call_count == 1
    params = route.calls[0].request.url.params
    assert dict(params) == {"vs_currency": "usd", "order": "market_cap_desc", "per_page": "30", "page": "1"}
    assert [(r.id, r.symbol, r.rank) for r in rows[:3]] == [
        ("bitcoin", "BTC", 1),
        ("ethereum", "ETH", 2),
        ("tether", "USDT", 3),
    ]


async def test_coinpaprika_ranking_sorts_every_ticker_by_rank(respx_mock):
    rows = fixture_json("coinpaprika_tickers.json")
    route = respx_mock.get(f"{PAPRIKA}/tickers").respond(200, json=list(reversed(rows)))
    found = await ranking_of("coinpaprika", 3)
    assert dict(route.calls[0].request.url.params) == {"quotes": "USD"}
    assert [(r.id, r.rank) for r in found] == [("btc-bitcoin", 1), ("eth-ethereum", 2), ("ada-cardano", 6)]


async def test_rows_missing_id_symbol_or_rank_are_left_out(respx_mock):
    page = fixture_json(TOP_PAGE)[:4]
    del page[0]["id"]
    page[1]["symbol"] = None
    page[2]["market_cap_rank"] = None
    respx_mock.get(f"{CG}/coins/markets").respond(200, json=[*page, "junk", None])
    top = TopSettings(10, 0, "coingecko")
    assert [c.symbol for c in ranked_coins(await ranking_of("coingecko"), top)] == ["XRP"]


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(429, headers={"retry-after": "60"}, json=fixture_json("coingecko_error_429.json")),
        httpx.Response(200, json={"status": {"error_code": 10002}}),
        httpx.Response(200, text="<html>oops</html>"),
    ],
)
async def test_a_failed_ranking_is_a_provider_error(respx_mock, reply):
    respx_mock.get(f"{CG}/coins/markets").mock(return_value=reply)
    with pytest.raises(ProviderError):
        await ranking_of("coingecko")


# --- resolution --------------------------------------------------------------------------------


def page_rows(provider: str = "coingecko") -> list[Candidate]:
    return [
        Candidate(provider, row["id"], row["symbol"].upper(), row["name"], row["market_cap"], row["market_cap_rank"])
        for row in fixture_json(TOP_PAGE)
    ]


def test_stablecoins_left_out_when_asked_and_the_rest_fills_n():
    with_stables = ranked_coins(page_rows(), TopSettings(5, 0, "coingecko"))
    without = ranked_coins(page_rows(), TopSettings(5, 0, "coingecko", skip_stablecoins=True))
    assert [c.symbol for c in with_stables] == ["BTC", "ETH", "USDT", "XRP", "BNB"]
    assert [c.symbol for c in without] == ["BTC", "ETH", "XRP", "BNB", "SOL"]


def test_ranked_coins_get_other_ids_only_where_the_id_table_knows_that_id():
    by_symbol = {c.symbol: c for c in ranked_coins(page_rows(), TopSettings(14, 0, "coingecko"))}
    assert by_symbol["BTC"].ids["kraken"] == "XBTUSD"  # fails over to every provider the table names
    assert dict(by_symbol["HYPE"].ids) == {"coingecko": "hyperliquid"}  # unknown to the table: no failover
    impostor = ranked_coin(Candidate("coingecko", "bitcoin-on-some-chain", "BTC", "Fake BTC", None, 1))
    assert dict(impostor.ids) == {"coingecko": "bitcoin-on-some-chain"}  # same symbol, other id: no table ids


def test_listed_coins_are_never_repeated_and_keep_their_place():
    xmr = Coin("XMR", "Monero", MappingProxyType({"coingecko": "monero"}))
    own_btc = Coin("XBT", "My Bitcoin", MappingProxyType({"coingecko": "bitcoin"}))  # same id, other symbol
    token = Coin("ETH", "Some token", prices=MappingProxyType({"usd": 1.0}))  # same symbol, other coin
    coins = CoinList((xmr, own_btc, token), TopSettings(4, 1, "coingecko"))
    top = ranked_coins(page_rows(), TopSettings(4, 0, "coingecko"))
    assert [c.symbol for c in coins.resolve(top)] == ["XMR", "USDT", "XRP", "XBT", "ETH"]
    assert coins.resolve(()) == (xmr, own_btc, token)  # no ranking yet: the listed coins


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["BTC", "ETH", "USDT", "X", "x", "BAD SYMBOL", "", "ÄÖ", "A" * 30]), st.integers(0, 200)
        ),
        max_size=30,
    ),
    st.integers(1, 100),
    st.booleans(),
)
def test_ranked_coins_never_repeat_a_symbol_and_never_exceed_n(rows, count, skip):
    candidates = [
        Candidate("coingecko", f"id-{i}", symbol, "n", None, rank or None) for i, (symbol, rank) in enumerate(rows)
    ]
    coins = ranked_coins(candidates, TopSettings(count, 0, "coingecko", skip))
    symbols = [c.symbol for c in coins]
    assert len(symbols) == len(set(symbols)) <= count
    assert all(s and s.isascii() and s.replace("-", "").isalnum() and len(s) <= 20 for s in symbols)


# --- a list that follows the market, within the budget (fake clock) ----------------------------


def prices_for(request: httpx.Request, clock: FakeClock) -> httpx.Response:
    ids = request.url.params["ids"].split(",")
    stamp = int(clock().timestamp())
    return httpx.Response(
        200, json={cid: {"usd": 1.0 + i, "usd_24h_change": 0.5, "last_updated_at": stamp} for i, cid in enumerate(ids)}
    )


async def test_top10_follows_the_ranking_within_an_hour_and_keeps_to_the_budget(tmp_path, respx_mock, clock):
    settings = settings_from(tmp_path, '[market]\ncoins = ["top:10"]\n[poller]\nproviders = ["coingecko"]\n')
    first = fixture_json(TOP_PAGE)
    second = [
        dict(row) for row in (first[10], *first[:10], *first[11:])
    ]  # hyperliquid leaps to rank 1, tron falls to 11
    for rank, row in enumerate(second, 1):
        row["market_cap_rank"] = rank
    page = {"now": first}
    sent: list[tuple[float, str]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append((clock.monotonic(), request.url.path))
        if request.url.path.endswith("/simple/price"):
            return prices_for(request, clock)
        if request.url.params.get("order") == "market_cap_desc":
            return httpx.Response(200, json=page["now"][: int(request.url.params["per_page"])])
        return httpx.Response(200, json=[])  # the hourly metadata request

    respx_mock.route(host="api.coingecko.com").mock(side_effect=upstream)
    store = SnapshotStore()
    async with httpx.AsyncClient() as client:
        providers = build_providers(settings, client, monotonic=clock.monotonic, wall=lambda: clock().timestamp())
        assert settings.market.top is not None
        ranking = TopRanking(providers[0], settings.market.top, "usd", monotonic=clock.monotonic)  # type: ignore[arg-type]
        coins = CoinList(settings.market.coins, settings.market.top)
        poller = Poller(
            providers, store, coins, ["usd"], interval=60, clock=clock, monotonic=clock.monotonic, ranking=ranking
        )
        side = SideWork(
            providers,
            lambda: poller.coins,
            "usd",
            ranking=ranking,
            icons=None,
            current=lambda: store.current,
            interval=60,
            time_budget=30,
            monotonic=clock.monotonic,
        )
        shown: list[tuple[float, list[str]]] = []
        changed_at = None
        for minute in range(200):
            if minute == 75:
                page["now"], changed_at = second, clock.monotonic()
            await side.run_once()  # side work first while no ranking is known
            clock.advance(30)
            snapshot = await poller.run_once()
            shown.append((clock.monotonic(), [c.symbol for c in coins.current(snapshot)]))
            clock.advance(30)
    assert shown[2][1] == ["BTC", "ETH", "USDT", "XRP", "BNB", "SOL", "USDC", "DOGE", "ADA", "TRX"]
    assert all(len(symbols) == 10 for _, symbols in shown)
    followed = next(t for t, symbols in shown if symbols[0] == "HYPE")
    assert changed_at is not None and followed - changed_at <= 3600 + 60
    assert shown[-1][1][-1] == "ADA" and "TRX" not in shown[-1][1]
    snapshot = store.current
    assert snapshot is not None and snapshot.quote("HYPE", "usd") is not None and snapshot.quote("TRX", "usd") is None
    # CoinGecko keyless: 5 requests a minute at most, every request counted, side work included
    times = [t for t, _ in sent]
    assert max(sum(1 for u in times if t <= u < t + 60) for t in times) <= 5
    rankings = [t for t, path in sent if path.endswith("/coins/markets")]
    assert len(rankings) <= 2 * (200 // 60 + 1)  # hourly: the ranking and the metadata refresh


# --- the list as visitors see it ----------------------------------------------------------------


def top_snapshot(*symbols_ids: tuple[str, str], generated_at=NOW) -> Snapshot:
    top = tuple(Coin(s, s.title(), MappingProxyType({"coingecko": cid})) for s, cid in symbols_ids)
    quotes = {
        (c.symbol, "usd"): Quote(c.symbol, "usd", 10.0 + i, 1.0, generated_at, "coingecko") for i, c in enumerate(top)
    }
    return Snapshot(generated_at, MappingProxyType(quotes), top=top)


async def test_json_and_widget_follow_the_snapshot_list(tmp_path, make_client):
    settings = settings_from(tmp_path, '[market]\ncoins = ["top:2", "XMR"]\n')
    snapshot = top_snapshot(("BTC", "bitcoin"), ("HYPE", "hyperliquid"))
    client = await make_client(settings, snapshot, history=MemoryHistory())
    body = (await client.get("/api/v1/prices")).json()
    assert [c["symbol"] for c in body["coins"]] == ["BTC", "HYPE", "XMR"]
    assert (await client.get("/api/v1/prices/hype")).status_code == 200
    assert (await client.get("/api/v1/prices?coins=HYPE")).status_code == 200
    await client.store.put(top_snapshot(("BTC", "bitcoin"), ("SOL", "solana")))
    body = (await client.get("/api/v1/prices")).json()
    assert [c["symbol"] for c in body["coins"]] == ["BTC", "SOL", "XMR"]
    gone = await client.get("/api/v1/prices?coins=HYPE")
    assert gone.status_code == 400 and "HYPE" in gone.json()["error"]
    assert (await client.get("/api/v1/prices/HYPE")).status_code == 404
    widget = (await client.get("/widget")).text
    assert "SOL" in widget and "HYPE" not in widget
    # The history JSON and the chart follow the same list.
    assert (await client.get("/api/v1/history/SOL")).status_code == 200
    assert (await client.get("/api/v1/history/HYPE")).status_code == 404
    assert (await client.get("/widget/chart?coin=SOL")).status_code == 200
    chart = await client.get("/widget/chart?coin=HYPE")
    assert chart.status_code == 400 and "HYPE" in chart.text


async def test_openapi_has_no_coin_enum_when_the_list_can_change(tmp_path, make_client):
    settings = settings_from(tmp_path, '[market]\ncoins = ["top:10", "XMR"]\n')
    document = (await (await make_client(settings)).get("/openapi.json")).json()
    text = json.dumps(document)
    assert '"XMR"' not in text.replace("and XMR", "")
    coins_param = document["paths"]["/api/v1/prices"]["get"]["parameters"][0]
    assert "enum" not in coins_param["schema"]["items"]
    assert "10 largest coins" in coins_param["description"]


async def test_a_fresh_install_without_network_shows_an_empty_widget_not_an_error(tmp_path, make_client):
    settings = settings_from(tmp_path, '[market]\ncoins = ["top:10"]\n')
    client = await make_client(settings)
    prices = await client.get("/api/v1/prices")
    assert prices.status_code == 200 and prices.json()["coins"] == []
    widget = await client.get("/widget")
    assert widget.status_code == 200
    assert (await client.get("/readyz")).status_code == 503  # nothing to serve yet, and it says so


async def test_a_restart_in_an_outage_keeps_the_last_list(tmp_path, respx_mock, clock):
    settings = settings_from(tmp_path, '[market]\ncoins = ["top:2"]\n[poller]\nproviders = ["coingecko"]\n')
    path = tmp_path / "snap.json"
    await SnapshotStore(snapshot_path=path).put(top_snapshot(("BTC", "bitcoin"), ("HYPE", "hyperliquid")))
    restarted = SnapshotStore(snapshot_path=path)
    loaded = await restarted.load()
    assert loaded is not None and [c.symbol for c in loaded.top] == ["BTC", "HYPE"]
    respx_mock.get(f"{CG}/coins/markets").mock(side_effect=httpx.ConnectError("down"))
    prices = respx_mock.get(f"{CG}/simple/price").mock(side_effect=lambda r: prices_for(r, clock))
    async with httpx.AsyncClient() as client:
        providers = build_providers(settings, client, monotonic=clock.monotonic, wall=lambda: clock().timestamp())
        assert settings.market.top is not None
        ranking = TopRanking(providers[0], settings.market.top, "usd", monotonic=clock.monotonic)  # type: ignore[arg-type]
        assert not await ranking.refresh() and ranking.latest is None  # the ranking source is unreachable
        coins = CoinList(settings.market.coins, settings.market.top)
        poller = Poller(
            providers, restarted, coins, ["usd"], interval=60, clock=clock, monotonic=clock.monotonic, ranking=ranking
        )
        snapshot = await poller.run_once()
    assert [c.symbol for c in coins.current(snapshot)] == ["BTC", "HYPE"]
    assert prices.calls[0].request.url.params["ids"] == "bitcoin,hyperliquid"


def test_every_ranking_provider_is_a_provider():
    assert {"coingecko", "coinpaprika"} <= set(PROVIDERS)
    assert MARGIN >= 10
