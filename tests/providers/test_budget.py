from __future__ import annotations

from ticker.providers.budget import RequestBudget


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_minute_is_a_sliding_window():
    clock = Ticks()
    budget = RequestBudget(5, None, monotonic=clock)
    assert [budget.try_spend() for _ in range(6)] == [True] * 5 + [False]
    assert budget.wait_seconds() == 60
    clock.now += 59.9
    assert not budget.try_spend()
    clock.now += 0.1
    assert budget.try_spend() and budget.spent == 6


def test_monthly_cap_is_an_even_daily_share():
    clock = Ticks()
    budget = RequestBudget(None, 20_000, monotonic=clock)  # CoinPaprika free: 666 a day
    spent = 0
    while budget.try_spend():
        spent += 1
        clock.now += 1
    assert spent == 666
    assert 0 < budget.wait_seconds() <= 86400
    clock.now += 86400
    assert budget.try_spend()


def test_both_limits_apply_and_the_tighter_one_wins():
    clock = Ticks()
    budget = RequestBudget(30, 10_000, monotonic=clock)  # CoinGecko demo key
    per_minute = sum(budget.try_spend() for _ in range(100))
    assert per_minute == 30
    assert budget.limits == "30/min, 333/day"


def test_no_limits_means_unlimited():
    budget = RequestBudget(None, None)
    assert all(budget.try_spend() for _ in range(10_000)) and budget.limits == "unlimited"
