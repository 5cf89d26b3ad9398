"""The plausibility gate and the dated rates table it converts with."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest
from babel.core import get_global
from babel.numbers import get_territory_currencies
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import NOW
from ticker.config.settings import CRYPTO_CURRENCIES, is_known_currency
from ticker.models import Coin, Quote
from ticker.plausibility import CHANGE_MAX, CHANGE_MIN, USD_MAX, USD_MIN, Gate
from ticker.rates import RATES_AS_OF, UNITS_PER_USD, usd_value

BTC = Coin("BTC", "Bitcoin", {"alpha": "bitcoin"})
ETH = Coin("ETH", "Ethereum", {"alpha": "ethereum"})
PEPE = Coin("PEPE", "Pepe", {"alpha": "pepe"})
FIAT = sorted(UNITS_PER_USD)


def in_use_today() -> set[str]:
    """ISO 4217 codes some territory uses as legal tender today, per CLDR: the currencies ticker accepts."""
    return {
        code.lower()
        for territory in get_global("territory_currencies")
        for code in get_territory_currencies(territory, start_date=date.today(), tender=True)
    }


def q(symbol: str, currency: str, price: float, change: float | None = 1.0, *, age: float = 0.0, source="alpha"):
    return Quote(symbol, currency, price, change, NOW - timedelta(seconds=age), source)


def gate(**options) -> Gate:
    return Gate([BTC, ETH, PEPE], **({"max_jump_pct": 50.0, "stale_after": 300.0} | options))


# -- the rates table -----------------------------------------------------------------------------------


def test_every_currency_ticker_accepts_has_a_rate():
    """The contract's currencies: ISO 4217 codes some territory uses today (per CLDR), plus btc, eth and sats."""
    in_use = in_use_today()
    assert len(in_use) > 140 and all(is_known_currency(code) for code in in_use)
    assert sorted(code for code in in_use if code not in UNITS_PER_USD) == []
    for crypto in CRYPTO_CURRENCIES:
        assert is_known_currency(crypto) and usd_value(1.0, crypto, btc_usd=90_000.0, eth_usd=3_000.0) is not None
    assert RATES_AS_OF.year >= 2026


@pytest.mark.parametrize(
    ("code", "per_eur"),
    [("bam", 1.95583), ("xof", 655.957), ("xaf", 655.957), ("kmf", 491.96775), ("xpf", 119.33), ("cve", 110.265)],
)
def test_euro_pegs_agree_with_the_euro_rate(code, per_eur):
    """Units per USD, not USD per unit, and consistent: a euro-pegged currency is its peg times the euro's rate."""
    assert UNITS_PER_USD[code] == pytest.approx(per_eur * UNITS_PER_USD["eur"], rel=0.02)


@pytest.mark.parametrize(("code", "low", "high"), [("jpy", 100, 200), ("pkr", 200, 400), ("kwd", 0.2, 0.4)])
def test_rates_are_units_per_dollar(code, low, high):
    assert low < UNITS_PER_USD[code] < high and UNITS_PER_USD["usd"] == 1.0


# -- rule 1: a quote alone ---------------------------------------------------------------------------------


def test_btc_eth_and_sats_are_bounded_through_this_batchs_btc_price():
    g = gate()
    g.begin_round([])
    # 2,000 BTC is 1.8e8 USD at the fallback 90,000 (rejected), 8e6 USD when this batch says BTC is 4,000.
    assert g.screen([q("ETH", "btc", 2_000.0)], NOW) == []
    kept = g.screen([q("BTC", "usd", 4_000.0), q("ETH", "btc", 2_000.0)], NOW)
    assert [(k.symbol, k.currency) for k in kept] == [("BTC", "usd"), ("ETH", "btc")]


def test_the_last_known_btc_price_converts_when_the_batch_has_none():
    g = gate()
    g.begin_round([q("BTC", "eur", 3_440.0)])  # 4,000 USD, learnt through the euro's rate
    assert [k.price for k in g.screen([q("ETH", "btc", 2_000.0)], NOW)] == [2_000.0]
    assert g.screen([q("PEPE", "sats", 1e-9)], NOW) == []  # 4e-14 USD


def test_a_future_time_becomes_the_fetch_time():
    [kept] = gate().screen([q("BTC", "usd", 90_000.0, age=-3600)], NOW)
    assert kept.updated_at == NOW


junk_numbers = st.one_of(
    st.floats(),  # the whole range: nan, inf, -0.0, subnormals, 1e308
    st.sampled_from([0.0, -0.0, 5e-324, 2.2e-308, 1e-13, 1e-12, 1e7, 1.0000001e7, 1e26, 1e308, math.inf, -math.inf]),
    st.integers(min_value=-(10**400), max_value=10**400),
)


@settings(max_examples=300, deadline=None)
@given(
    price=junk_numbers,
    currency=st.sampled_from([*FIAT, "btc", "eth", "sats"]),
    change=st.one_of(st.none(), junk_numbers),
    btc=st.one_of(st.none(), st.floats(min_value=1e3, max_value=1e6)),
)
def test_whatever_a_provider_sends_the_gate_lets_through_only_plausible_numbers(price, currency, change, btc):
    g = gate()
    g.begin_round([])
    batch = ([q("BTC", "usd", btc)] if btc is not None else []) + [q("PEPE", currency, price, change)]
    for kept in g.screen(batch, NOW):
        assert isinstance(kept.price, float) and math.isfinite(kept.price) and kept.price > 0
        usd = usd_value(kept.price, kept.currency, btc_usd=btc or 90_000.0, eth_usd=3_000.0)
        assert usd is not None and USD_MIN <= usd <= USD_MAX
        assert kept.change_24h_pct is None or CHANGE_MIN <= kept.change_24h_pct <= CHANGE_MAX
        assert kept.updated_at is not None and kept.updated_at <= NOW


def finite(value: float) -> bool:
    """A number a float can hold, and not inf or nan (10**400 is neither)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@settings(max_examples=100, deadline=None)
@given(
    changes=st.tuples(*[st.one_of(st.none(), junk_numbers)] * 3),
    figures=st.tuples(*[st.one_of(st.none(), junk_numbers)] * 2),
    rank=st.one_of(st.none(), st.booleans(), st.integers(min_value=-5, max_value=10**6), junk_numbers),
)
def test_changes_and_market_figures_pass_only_when_plausible(changes, figures, rank):
    """Any provider (not only the parsers that already clean them): a 1h/7d/30d change outside -100 % to
    +1,000,000 %, a market cap or volume that is not finite and positive, a rank that is not a whole number from
    1 become None; the price is kept, and a plausible value passes unchanged."""
    sent = Quote("BTC", "usd", 90_000.0, 1.0, NOW, "alpha", None, None, *changes, *figures, rank)
    [kept] = gate().screen([sent], NOW)
    assert kept.price == 90_000.0
    for given_change, change in zip(
        changes, (kept.change_1h_pct, kept.change_7d_pct, kept.change_30d_pct), strict=True
    ):
        plausible = isinstance(given_change, int | float) and CHANGE_MIN <= given_change <= CHANGE_MAX
        assert change == (float(given_change) if plausible else None)
    for given_figure, figure in zip(figures, (kept.market_cap, kept.volume_24h), strict=True):
        plausible = isinstance(given_figure, int | float) and given_figure > 0 and finite(given_figure)
        assert figure == (float(given_figure) if plausible else None) and (figure is None or type(figure) is float)
    whole = isinstance(rank, int) and not isinstance(rank, bool) and rank >= 1
    assert kept.rank == (rank if whole else None)


# -- rule 2: jumps -----------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    base=st.floats(min_value=1e-8, max_value=1e5),
    factor=st.one_of(st.floats(min_value=1.51, max_value=1e6), st.floats(min_value=1e-6, max_value=0.49)),
    rounds=st.integers(min_value=0, max_value=5),
)
def test_a_single_unconfirmed_jump_is_always_held(base, factor, rounds):
    g = gate()
    last = q("PEPE", "usd", base, age=10)
    for _ in range(rounds):  # some calm rounds first
        g.begin_round([last])
        assert g.admit(q("PEPE", "usd", base), last, NOW) is not None
    g.begin_round([last])
    assert g.admit(q("PEPE", "usd", base * factor), last, NOW) is None
    assert g.holding() == {("PEPE", "usd")}
    # The same source cannot confirm itself in the same round; another source or the next round can.
    assert g.admit(q("PEPE", "usd", base * factor * 1.01), last, NOW) is None
    confirmed = g.admit(q("PEPE", "usd", base * factor * 1.01, source="beta"), last, NOW)
    assert confirmed is not None and confirmed.source == "alpha" and g.holding() == frozenset()


def test_a_source_back_in_line_voids_its_earlier_jump():
    g = gate()
    last = q("BTC", "usd", 100.0)
    g.begin_round([last])
    assert g.admit(q("BTC", "usd", 300.0), last, NOW) is None
    g.begin_round([last])
    assert g.admit(q("BTC", "usd", 101.0), last, NOW) is not None  # alpha is back near 100
    g.begin_round([last])
    assert g.admit(q("BTC", "usd", 300.0), last, NOW) is None  # a new jump, not a confirmation of the old one


def test_no_limit_means_no_hold():
    last = q("BTC", "usd", 100.0)
    for g in (gate(max_jump_pct=None), gate(max_jump_pct=0.0)):
        g.begin_round([last])
        assert g.admit(q("BTC", "usd", 1_000.0), last, NOW) is not None


def test_a_held_jump_is_confirmed_only_by_the_next_round_not_a_later_one():
    g = gate()
    last = q("BTC", "usd", 100.0)
    g.begin_round([last])
    assert g.admit(q("BTC", "usd", 300.0), last, NOW) is None
    g.begin_round([last])  # alpha sends nothing this round: the hold stays
    assert g.holding() == {("BTC", "usd")}
    g.begin_round([last])  # two rounds on, that quote no longer confirms anything
    assert g.holding() == frozenset()
    assert g.admit(q("BTC", "usd", 300.0), last, NOW) is None
    g.begin_round([last])
    assert g.admit(q("BTC", "usd", 301.0), last, NOW) is not None
