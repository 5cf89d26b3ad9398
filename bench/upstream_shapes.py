"""Upstream answers in each provider's real response shape, for the poller part of the benchmark.

Every row is modelled on a real sample in tests/fixtures/ (same fields, same types: CoinGecko
and CoinPaprika send numbers, the exchanges send numeric strings), so the poller parses as
much JSON per coin as it would in production. `handler()` returns an httpx.MockTransport
handler that answers one provider's endpoints for any ids it is asked about, counts the
requests by path, and caches each answer by URL so that building the fake answer is not
charged to the poller after the warm-up round.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

UPDATED_AT = 1795803571  # unix seconds; a fixed provider time, like a quote that did not change
SPARKLINE_POINTS = 168  # /coins/markets?sparkline=true: hourly prices over 7 days
PAPRIKA_FREE_ROWS = 2_500  # /tickers on the free plan answers the top 2,500 coins, whatever we need


def _price(key: str) -> float:
    return 1.0 + (sum(key.encode()) % 997) * 1.2345


def coingecko_simple_price(ids: list[str], currencies: list[str]) -> Any:
    body: dict[str, Any] = {}
    for coin_id in ids:
        entry: dict[str, Any] = {}
        for currency in currencies:
            entry[currency] = _price(coin_id)
            entry[f"{currency}_24h_change"] = 1.9281110755066968
        entry["last_updated_at"] = UPDATED_AT
        body[coin_id] = entry
    return body


def coingecko_markets(ids: list[str]) -> Any:
    rows = []
    for rank, coin_id in enumerate(ids, 1):
        price = _price(coin_id)
        rows.append(
            {
                "id": coin_id,
                "symbol": coin_id[:4],
                "name": coin_id.title(),
                "image": f"https://assets.coingecko.com/coins/images/{rank}/large/{coin_id}.png?1547033579",
                "current_price": price,
                "market_cap": 1240713077017,
                "market_cap_rank": rank,
                "fully_diluted_valuation": 1380944725976,
                "total_volume": 79537777257,
                "high_24h": price * 1.01,
                "low_24h": price * 0.98,
                "price_change_24h": 4256.23,
                "price_change_percentage_24h": 6.85817,
                "market_cap_change_24h": 68350293400,
                "market_cap_change_percentage_24h": 5.83013,
                "circulating_supply": 18867500,
                "total_supply": 21000000,
                "max_supply": 21000000,
                "ath": 67277,
                "ath_change_percentage": -1.62734,
                "ath_date": "2021-10-20T14:54:17.702Z",
                "atl": 67.81,
                "atl_change_percentage": 97500.57075,
                "atl_date": "2013-07-06T00:00:00.000Z",
                "roi": None,
                "last_updated": "2021-11-08T15:48:00.987Z",
                "sparkline_in_7d": {"price": [price * (1 + (h % 7) / 1000) for h in range(SPARKLINE_POINTS)]},
            }
        )
    return rows


def coinpaprika_tickers(ids: list[str], codes: list[str]) -> Any:
    """The whole top-2,500 list: our coins first, then coins nobody asked for."""
    filler = [f"zz{j}-filler" for j in range(max(PAPRIKA_FREE_ROWS - len(ids), 0))]
    rows = []
    for rank, coin_id in enumerate([*ids, *filler], 1):
        price = _price(coin_id)
        quote = {
            "price": price,
            "volume_24h": 49092990352.954,
            "volume_24h_change_24h": -22.62,
            "market_cap": 1144226103905,
            "market_cap_change_24h": -3.78,
            "percent_change_15m": 0.04,
            "percent_change_30m": -0.17,
            "percent_change_1h": -0.73,
            "percent_change_6h": -4.15,
            "percent_change_12h": -3.81,
            "percent_change_24h": -3.78,
            "percent_change_7d": -1.51,
            "percent_change_30d": 38.36,
            "percent_change_1y": 364.42,
            "ath_price": price * 1.1,
            "ath_date": "2021-10-20T16:06:13Z",
            "percent_from_price_ath": -9.26,
        }
        rows.append(
            {
                "id": coin_id,
                "name": coin_id.title(),
                "symbol": coin_id.split("-")[0].upper(),
                "rank": rank,
                "circulating_supply": 18851169,
                "total_supply": 18851169,
                "max_supply": 21000000,
                "beta_value": 0.932555,
                "first_data_at": "2010-07-17T00:00:00Z",
                "last_updated": "2021-10-22T18:11:05Z",
                "quotes": {code: dict(quote) for code in codes},
            }
        )
    return rows


def kraken_ticker(pairs: list[str]) -> Any:
    result = {}
    for pair in pairs:
        last = f"{_price(pair):.5f}"
        result[pair] = {
            "a": [last, "1", "1.000"],
            "b": [last, "1", "1.000"],
            "c": [last, "0.00067643"],
            "v": ["4083.67001100", "4412.73601799"],
            "p": ["30706.77771", "30689.13205"],
            "t": [34619, 38907],
            "l": ["29868.30000", "29868.30000"],
            "h": ["31631.00000", "31631.00000"],
            "o": "30502.80000",
        }
    return {"error": [], "result": result}


def binance_ticker_24hr(symbols: list[str]) -> Any:
    return [
        {
            "symbol": symbol,
            "priceChange": "1467.04000000",
            "priceChangePercent": "1.640",
            "weightedAvgPrice": "90212.51840322",
            "prevClosePrice": "89449.99000000",
            "lastPrice": f"{_price(symbol):.8f}",
            "lastQty": "0.00120000",
            "bidPrice": "90917.03000000",
            "bidQty": "3.21650000",
            "askPrice": "90917.04000000",
            "askQty": "0.51840000",
            "openPrice": "89450.00000000",
            "highPrice": "91280.00000000",
            "lowPrice": "89012.35000000",
            "volume": "18234.51230000",
            "quoteVolume": "1644986742.15832100",
            "openTime": 1795717171040,
            "closeTime": UPDATED_AT * 1000,
            "firstId": 5401234567,
            "lastId": 5404321098,
            "count": 3086532,
        }
        for symbol in symbols
    ]


def coinbase_stats(product: str) -> Any:
    last = _price(product)
    return {
        "open": f"{last * 0.99:.8f}",
        "high": f"{last * 1.02:.8f}",
        "low": f"{last * 0.97:.8f}",
        "volume": "26185.51325269",
        "last": f"{last:.8f}",
        "volume_30day": "1019451.11188405",
    }


def _answer(provider: str, request: httpx.Request) -> Any:
    path = request.url.path
    params = request.url.params
    if provider == "coingecko" and path.endswith("/simple/price"):
        return coingecko_simple_price(params["ids"].split(","), params["vs_currencies"].split(","))
    if provider == "coingecko" and path.endswith("/coins/markets"):
        return coingecko_markets(params["ids"].split(","))
    if provider == "kraken" and path.endswith("/Ticker"):
        return kraken_ticker(params["pair"].split(","))
    if provider == "binance" and path.endswith("/ticker/24hr"):
        return binance_ticker_24hr(json.loads(params["symbols"]))
    if provider == "coinbase" and path.endswith("/stats"):
        return coinbase_stats(path.split("/")[-2])
    raise AssertionError(f"{provider}: unexpected request {request.url}")


def handler(provider: str, paprika_ids: list[str]) -> tuple[Callable[[httpx.Request], httpx.Response], Counter[str]]:
    """A MockTransport handler for one provider and the Counter of its requests by endpoint."""
    counts: Counter[str] = Counter()
    cache: dict[str, bytes] = {}

    def answer(request: httpx.Request) -> httpx.Response:
        counts[request.url.path] += 1
        url = str(request.url)
        body = cache.get(url)
        if body is None:
            if provider == "coinpaprika" and request.url.path.endswith("/tickers"):
                data: Any = coinpaprika_tickers(paprika_ids, request.url.params["quotes"].split(","))
            else:
                data = _answer(provider, request)
            body = cache[url] = json.dumps(data).encode()
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return answer, counts
