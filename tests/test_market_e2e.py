"""Issue #14 end to end: the real `ticker serve` against the local fake upstream (tests/fake_upstream.py)
with `coins = ["top:10", a token by contract address]`: the ten largest coins in rank order, the token's
live price from GeckoTerminal with its failover to DefiLlama, market fields null (never 0) where the fake
gives none, `currency=usd,eur` and the table layout on /widget (branch h6), and one /simple/price request per
round for the whole list (ceil(coins / batch)).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from tests.fake_upstream import FakeUpstream, body_of
from tests.service import Service, running, wait_until, write_config
from ticker.providers.coin_ids import KNOWN_COINS

pytestmark = pytest.mark.e2e

INTERVAL = 1.0
ADDRESS = "0x4a7c1b0c3e8f5d2a9b6e1f0d3c2b5a4e7d8f9a01"  # constructed: no real token
TOKEN_PRICE, TOKEN_CHANGE = 0.004217, -12.5
# CoinGecko ids, largest first: the default coins and two more, not in the configured order.
RANKING = [
    "bitcoin",
    "ethereum",
    "ripple",
    "solana",
    "dogecoin",
    "cardano",
    "litecoin",
    "monero",
    "neo",
    "waves",
    "nano",  # 11th and 12th: outside the top 10
    "ark",
]
SYMBOL = {coin.ids["coingecko"]: symbol for symbol, coin in KNOWN_COINS.items() if "coingecko" in coin.ids}
MARKET = f"""[market]
coins = ["top:10", {{ symbol = "OPENVC", name = "OpenVoiceCoin", chain = "bsc", address = "{ADDRESS}" }}]
currencies = ["usd", "eur"]"""


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.serve_default_coins()
        fake.coingecko.prices["ripple"] = {"usd": (2.31, 1.2), "eur": (2.12, 1.1)}
        fake.coingecko.prices["solana"] = {"usd": (182.4, -0.8), "eur": (167.3, -0.9)}
        fake.coingecko_ranking = list(RANKING)
        fake.coingecko.market["bitcoin"] = {"usd_market_cap": 1.8e12, "usd_24h_vol": 4.52e10, "eur_market_cap": 1.65e12}
        fake.serve_token("bsc", "bsc", ADDRESS, TOKEN_PRICE, TOKEN_CHANGE)
        yield fake


def prices(service: Service) -> list[dict]:
    reply = service.get("/api/v1/prices")
    assert reply.status_code == 200, reply.text
    return reply.json()["coins"]


def token_from(service: Service, source: str) -> dict | None:
    return next((c for c in prices(service) if c["symbol"] == "OPENVC" and c["source"] == source), None)


def generated_at(service: Service) -> str:
    return str(service.get("/api/v1/prices").json()["generated_at"])


def listed(service: Service) -> list[str]:
    return [c["symbol"] for c in prices(service) if c["price"] is not None]


def test_top_ten_and_a_token_by_address(upstream: FakeUpstream, tmp_path) -> None:
    config = write_config(tmp_path, upstream, INTERVAL, market=MARKET, timeout=4)
    top10 = [SYMBOL[i] for i in RANKING[:10]]
    with running(config) as service:
        wait_until(lambda: listed(service) == [*top10, "OPENVC"], 15, "the top ten in rank order, then OPENVC")
        ranks = list(range(1, 11))
        wait_until(lambda: [c["rank"] for c in prices(service)][:10] == ranks, 10, "ranks from /coins/markets")
        coins = {c["symbol"]: c for c in prices(service)}
        assert (coins["BTC"]["market_cap"], coins["BTC"]["volume_24h"]) == (1.8e12, 4.52e10)
        for symbol in top10[1:]:  # the fake gives no market figures for these: null, never 0
            coin = coins[symbol]
            assert coin["source"] == "coingecko"
            assert (coin["market_cap"], coin["volume_24h"]) == (None, None), symbol
        token = coins["OPENVC"]
        assert token["name"] == "OpenVoiceCoin"
        assert token["source"] == "geckoterminal"
        assert token["price"] == pytest.approx(TOKEN_PRICE)
        assert token["change_24h_pct"] == pytest.approx(TOKEN_CHANGE)
        assert token["market_cap"] == pytest.approx(TOKEN_PRICE * 1_000_000)
        assert token["volume_24h"] == pytest.approx(TOKEN_PRICE * 25_000)

        # GeckoTerminal rate-limits us: the token's next price comes from DefiLlama.
        upstream.defillama.prices[f"bsc:{ADDRESS}"] = {"usd": (TOKEN_PRICE * 1.01, TOKEN_CHANGE)}
        upstream.geckoterminal.fail_with(
            429, body_of("geckoterminal_error_429.constructed.json"), {"retry-after": "60"}
        )
        token = wait_until(lambda: token_from(service, "defillama"), 10, "OPENVC from defillama")
        assert token["price"] == pytest.approx(TOKEN_PRICE * 1.01)
        assert token["change_24h_pct"] == pytest.approx(TOKEN_CHANGE)
        assert listed(service) == [*top10, "OPENVC"]

        widget = service.get("/widget?currency=usd,eur&coins=BTC,OPENVC")
        assert widget.status_code == 200, widget.text
        assert "$90,917.04" in widget.text and "€84,123.55" in widget.text  # fixture's usd and eur prices
        assert "$0.004259" in widget.text and "0.004259 US dollars" in widget.text  # the DefiLlama price
        assert "OpenVoiceCoin, 0.004259 US dollars, down 12.50 percent in 24 hours, 0.0" in widget.text  # and euros
        table = service.get("/widget?layout=table&columns=rank,price,market_cap,volume_24h&coins=BTC,ETH,OPENVC")
        assert table.status_code == 200, table.text
        rows = {row.split('"', 1)[0]: row for row in table.text.split('<tr data-k="')[1:]}
        assert '<td class="tk-h3">1</td>' in rows["BTC"] and '<td class="tk-h3">2</td>' in rows["ETH"]
        assert ">$1.8T<" in rows["BTC"] and ">$45.2B<" in rows["BTC"]
        assert rows["ETH"].count('<span class="sr-only">unknown</span>') == 2  # no market figures: a dash, not $0
        assert ">$0<" not in table.text and ">$0.00<" not in table.text


def test_one_price_request_per_provider_per_round(upstream: FakeUpstream, tmp_path) -> None:
    """ceil(coins / batch) upstream price requests a round: CoinGecko's 10 ranked coins in one /simple/price
    (batch 500), the token in one GeckoTerminal token_price call (batch 30); the ranking is not asked again."""
    config = write_config(tmp_path, upstream, INTERVAL, market=MARKET, timeout=4)
    with running(config) as service:
        wait_until(lambda: len(listed(service)) == 11, 15, "the top ten and the token priced")
        rounds = {generated_at(service)}  # round A: its requests were made before this line
        start = len(upstream.coingecko.calls), len(upstream.geckoterminal.calls)
        while len(rounds) < 5:  # rounds A+1 to A+4 published; A+5 may be under way
            rounds.add(wait_until(lambda: (at := generated_at(service)) not in rounds and at, 5, "a new round"))
        cg = [c for c in upstream.coingecko.calls[start[0] :] if c.path == "/api/v3/simple/price"]
        gt = upstream.geckoterminal.calls[start[1] :]
        ranked = {",".join(RANKING[:10])}
        assert {c.query["ids"][0] for c in cg} == ranked  # the whole list in each request
        assert all(c.query["vs_currencies"] == ["usd,eur"] for c in cg)  # one request serves both currencies
        assert {c.path for c in gt} == {f"/gt/api/v2/simple/networks/bsc/token_price/{ADDRESS}"}
        per_round = math.ceil(10 / 500)
        assert 4 * per_round <= len(cg) <= 5 * per_round, [c.at for c in cg]
        assert 4 <= len(gt) <= 5, [c.at for c in gt]
        assert not [c for c in upstream.coingecko.calls[start[0] :] if c.query.get("order") == ["market_cap_desc"]]
