"""Sats are exact: the decimal product of the BTC price and 1e8, never a binary-float near miss."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import NOW, FakeClock, settings_from
from ticker.models import iso
from ticker.runtime import create_app
from ticker.units import SATS_PER_BTC, btc_to_sats


@pytest.mark.parametrize(
    ("btc", "sats"),
    [
        (0.0000021, 210),
        (0.00000029, 29),
        (0.00000007, 7),
        (0.57, 57_000_000),
        (1.1, 110_000_000),
        (0.00000001, 1),
        (1.0, SATS_PER_BTC),
        (21_000_000.0, 2_100_000_000_000_000),
    ],
)
def test_btc_prices_become_exact_sats(btc: float, sats: int) -> None:
    assert btc_to_sats(btc) == sats


def test_the_float_product_misses_where_the_decimal_one_does_not() -> None:
    """Why: the old `price * 100_000_000`."""
    assert 0.0000021 * SATS_PER_BTC == 209.99999999999997
    assert btc_to_sats(0.0000021) == 210


def test_sub_sat_prices_keep_their_digits() -> None:
    assert btc_to_sats(1.234e-12) == 0.0001234
    assert btc_to_sats(0.000000012345) == 1.2345


def test_non_finite_input_passes_through_for_the_validator_to_reject() -> None:
    assert math.isnan(btc_to_sats(math.nan))
    assert btc_to_sats(math.inf) == math.inf
    assert btc_to_sats(0.0) == 0


@settings(max_examples=200, deadline=None)
@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(21_000_000), places=8))
def test_sats_equal_the_exact_decimal_product_for_8_decimal_prices(btc: Decimal) -> None:
    """An 8-decimal price is a whole number of sats; the float we hand on is exactly that number."""
    sats = btc_to_sats(float(btc))
    assert sats == btc.scaleb(8)
    assert sats.is_integer()


PAPRIKA = "https://api.coinpaprika.com/v1"


async def test_the_served_sats_price_is_exact(respx_mock, tmp_path):
    """Black box: CoinPaprika's BTC quote of 0.0000021 is served as exactly 210 sats."""
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = ["BTC", { symbol = "ARRR", ids = { coinpaprika = "arrr-pirate" } }]\n'
        'currencies = ["usd", "sats"]\n[poller]\ninterval_seconds = 60\nproviders = ["coinpaprika"]',
    )

    def row(coin_id: str, usd: float, btc: float) -> dict[str, Any]:
        quotes = {"USD": {"price": usd, "percent_change_24h": 1.0}, "BTC": {"price": btc, "percent_change_24h": 1.0}}
        return {"id": coin_id, "last_updated": iso(NOW), "quotes": quotes}

    tickers = [row("btc-bitcoin", 90900.0, 1.0), row("arrr-pirate", 0.19089, 0.0000021)]
    respx_mock.get(f"{PAPRIKA}/tickers").respond(200, json=tickers)
    app = create_app(settings, clock=FakeClock())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            with anyio.fail_after(3):
                while (body := (await client.get("/api/v1/prices/ARRR?currency=sats")).json())["price"] is None:
                    await anyio.sleep(0.01)
    assert body["source"] == "coinpaprika"
    assert body["price"] == 210
