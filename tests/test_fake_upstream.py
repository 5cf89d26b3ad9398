"""The fake upstream answers the real providers as the real APIs do: the providers' own parsers read its
prices and candles, and its windows and per-request maxima hold (so the end-to-end tests prove something)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fake_upstream import FakeUpstream
from tests.providers.helpers import make_provider
from ticker.config import default_settings
from ticker.providers.base import ProviderSettings
from ticker.providers.binance import Binance
from ticker.providers.coinbase import Coinbase
from ticker.providers.coingecko import CoinGecko
from ticker.providers.kraken import Kraken

HOUR, DAY = 3_600, 86_400
COINS = {coin.symbol: coin for coin in default_settings().market.coins}
KINDS = {"kraken": Kraken, "binance": Binance, "coinbase": Coinbase, "coingecko": CoinGecko}


@pytest.fixture
def fake():
    with FakeUpstream() as upstream:
        upstream.serve_default_coins()
        yield upstream


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as http:
        yield http


def provider(name: str, fake: FakeUpstream, client: httpx.AsyncClient):
    url = {"kraken": fake.kraken_url, "binance": fake.binance_url, "coinbase": fake.coinbase_url}
    return make_provider(KINDS[name], client, ProviderSettings(base_url=url.get(name, fake.coingecko_url)))


@pytest.mark.parametrize(
    ("name", "requests", "first_bucket", "closed_at"),
    [
        ("kraken", 1, HOUR, HOUR),  # entries after `since`: the bucket at `since` itself is not one
        ("binance", 1, 0, HOUR),
        ("coinbase", 3, 0, HOUR),  # 300 buckets a request
        # 31 days asked; its point 23 s past each hour closes the hour that ends nearest to it, the one before
        ("coingecko", 1, 0, HOUR + 23),
    ],
)
async def test_thirty_days_of_hourly_candles_run_into_the_live_price(
    fake, client, name, requests, first_bucket, closed_at
):
    now = int(time.time())
    since = (now - 30 * DAY) // HOUR * HOUR
    candles = await provider(name, fake, client).candles(COINS["BTC"], "usd", HOUR, since, now)
    assert candles[0].start == since + first_bucket
    assert [c.start for c in candles] == list(range(candles[0].start, now // HOUR * HOUR, HOUR))  # none missing
    assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in candles)
    last = candles[-1]
    expected = fake.past_price("BTC", 90917.04, last.start + closed_at)
    if name == "coingecko" and now % HOUR < HOUR // 2:
        expected = 90917.04  # CoinGecko's last point is the live price: nearer the hour just ended, it closes it
    assert last.close == pytest.approx(expected, rel=1e-5)
    assert last.close == pytest.approx(90917.04, rel=0.01)  # the chart does not jump to the live price
    assert len(getattr(fake, name).calls) == requests


async def test_a_year_of_daily_candles_fits_each_upstreams_reach(fake, client):
    now = int(time.time())
    since = (now - 365 * DAY) // DAY * DAY
    for name in KINDS:
        candles = await provider(name, fake, client).candles(COINS["ETH"], "usd", DAY, since, now)
        assert since <= candles[0].start <= since + DAY and candles[-1].start == now // DAY * DAY - DAY, name


async def test_the_per_request_maxima_hold(fake, client):
    url = f"{fake.coinbase_url}/products/BTC-USD/candles"
    too_wide = await client.get(
        url, params={"granularity": "3600", "start": "2026-01-01T00:00:00Z", "end": "2026-02-01"}
    )
    assert too_wide.status_code == 400 and "exceeds 300" in too_wide.json()["message"]
    klines = await client.get(
        f"{fake.binance_url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h", "limit": "5000"}
    )
    assert len(klines.json()) == 1000
    ohlc = await client.get(f"{fake.kraken_url}/OHLC", params={"pair": "XBTUSD", "interval": "60", "since": "0"})
    assert len(ohlc.json()["result"]["XXBTZUSD"]) == 720


async def test_prices_come_back_through_every_providers_parser(fake, client):
    coins = list(COINS.values())
    for name in KINDS:
        quotes = await provider(name, fake, client).fetch(coins, ["usd"])
        prices = {q.symbol: q.price for q in quotes}
        assert prices["BTC"] == 90917.04 and prices["DOGE"] == 0.158312, name


async def test_an_unknown_pair_fails_a_whole_kraken_batch_as_on_kraken(fake, client):
    body = (await client.get(f"{fake.kraken_url}/Ticker", params={"pair": "XBTUSD,NOSUCHUSD"})).json()
    assert body == {"error": ["EQuery:Unknown asset pair"]}
    assert fake.kraken.asked("/0/public/Ticker", pair="XBTUSD,NOSUCHUSD")


async def test_a_fault_on_one_endpoint_leaves_the_others_answering(fake, client):
    fake.binance.fail_with(429, b'{"code":-1003}', {"retry-after": "3"}, path="/api/v3/klines")
    assert (await client.get(f"{fake.binance_url}/api/v3/klines?symbol=BTCUSDT&interval=1h")).status_code == 429
    assert (await client.get(f"{fake.binance_url}/api/v3/ticker/24hr?symbols=[%22BTCUSDT%22]")).status_code == 200
    fake.binance.recover()
    assert (await client.get(f"{fake.binance_url}/api/v3/klines?symbol=BTCUSDT&interval=1h")).status_code == 200
