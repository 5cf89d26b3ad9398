from __future__ import annotations

from datetime import timedelta

from tests.conftest import NOW
from ticker.history.sparkline import POINTS, hour_of, record, series
from ticker.models import Quote
from ticker.render.sparkline import sparkline_svg


def q(price: float, *, at=NOW, currency="usd", spark=None) -> Quote:
    return Quote("BTC", currency, price, None, at, "coingecko", sparkline_7d=spark)


def test_one_point_per_hour_and_seven_days_at_most():
    history = {}
    for minute in range(0, 60 * 24 * 8, 30):
        history = record(history, [q(1000.0 + minute, at=NOW + timedelta(minutes=minute))], "usd")
    assert len(history["BTC"]) == POINTS
    hours = [hour for hour, _ in history["BTC"]]
    assert hours == sorted(set(hours)) and hours[-1] == hour_of(NOW + timedelta(minutes=60 * 24 * 8 - 30))


def test_other_currencies_do_not_enter_the_history():
    assert record({}, [q(1.0, currency="eur")], "usd") == {}


def test_a_provider_sparkline_seeds_a_short_history():
    history = record({}, [q(105.0, spark=(100.0, 101.0, 102.0, 103.0))], "usd")
    assert series(history, "BTC") == [100.0, 101.0, 102.0, 105.0]


def test_sparkline_svg_is_small_and_needs_two_points():
    assert sparkline_svg([]) is None and sparkline_svg([5.0]) is None
    svg = sparkline_svg([float(i % 17 + 100) for i in range(168)])
    assert svg.startswith('<svg class="tk-spark tk-') and 'aria-hidden="true"' in svg
    assert len(svg) < 600
    assert "tk-down" in sparkline_svg([3.0, 2.0, 1.0]) and "tk-up" in sparkline_svg([1.0, 2.0])
