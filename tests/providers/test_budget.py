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


def test_instances_polling_on_their_own_share_one_budget_as_a_rate():
    """Redis away, 6 instances last seen: 5/min between them is one request every 72 s each."""
    clock = [0.0]
    budget = RequestBudget(5, None, monotonic=lambda: clock[0])
    budget.share(6)
    assert budget.try_spend()
    sent = [0.0]
    while clock[0] < 600:
        clock[0] += 1
        if budget.try_spend():
            sent.append(clock[0])
    assert [b - a for a, b in zip(sent, sent[1:], strict=False)] == [72.0] * (len(sent) - 1)
    budget.share(1)  # Redis back: the whole budget again
    clock[0] += 72
    assert budget.try_spend() and budget.try_spend()


def test_side_work_leaves_the_next_rounds_their_share():
    clock = [0.0]
    budget = RequestBudget(10, 20_000, monotonic=lambda: clock[0])  # CoinPaprika free: 10/min, 666/day
    reserve = budget.reserve_for(per_round=1, interval=300)  # a round every 5 min: 1 a minute, 288 a day
    assert reserve == (1, 288)
    side = 0
    while budget.try_spend(reserve):
        side += 1
    assert side == 9  # of the minute's 10, one is left for the price round
    assert budget.try_spend()  # and the price round gets it


def test_a_monthly_cap_the_rounds_nearly_fill_still_leaves_side_work_its_remainder():
    """CoinGecko demo: 10,000 a month is 333 a day; rounds every 300 s take 288 of them. After a whole day
    of rounds, side work (hourly market data, backfill) may still send the other 45 in the next day, and
    no day ever exceeds 333 (the rounds' past requests are not counted against their reserve twice)."""
    clock = Ticks()
    budget = RequestBudget(30, 10_000, monotonic=clock)
    reserve = budget.reserve_for(per_round=1, interval=300)
    assert reserve == (1, 288)
    sent_side, sent_at = 0, []
    for step in range(2 * 288):  # two days of rounds, side work trying every 5 minutes too
        assert budget.try_spend(), f"a price round was refused at step {step}"
        sent_at.append(clock.now)
        while budget.try_spend(reserve):
            sent_side += 1
            sent_at.append(clock.now)
        clock.now += 300
    assert 45 <= sent_side <= 2 * 45
    assert max(sum(1 for t in sent_at if start <= t < start + 86_400) for start in sent_at) <= 333


def test_budget_use_survives_as_unix_times():
    clock = [100.0]
    budget = RequestBudget(3, None, monotonic=lambda: clock[0])
    assert budget.try_spend() and budget.try_spend()
    saved = budget.sent_at(wall=1_800_000_000.0)
    other = RequestBudget(3, None, monotonic=lambda: 5.0)  # another process, its own monotonic clock
    other.restore(saved, wall=1_800_000_010.0)  # ten seconds later
    assert other.try_spend() and not other.try_spend()
    assert other.wait_seconds() == 50.0
