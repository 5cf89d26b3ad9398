"""The resolution scheme's arithmetic: properties that hold for any quotes, spans and candles."""

from __future__ import annotations

import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ticker.history import rollup
from ticker.history.base import MAX_POINTS, RANGES
from ticker.history.rollup import DAY, NICE, TIERS, Bucket, merge, regroup, tick_bucket
from ticker.models import Candle

DAY0 = 20_416 * DAY
prices = st.floats(min_value=1e-12, max_value=1e7, allow_nan=False)
# Quotes within a few days, at distinct whole seconds (ties within a second are resolved by arrival order).
quotes = st.dictionaries(st.integers(0, 3 * DAY), prices, min_size=1, max_size=60).map(
    lambda d: sorted((DAY0 + t + 0.25, p) for t, p in d.items())
)
one_day = st.dictionaries(st.integers(0, DAY - 1), prices, min_size=1, max_size=8).map(
    lambda d: sorted((DAY0 + t + 0.5, p) for t, p in d.items())
)


def straight(points, seconds):
    """Buckets of `seconds` computed straight from time-ordered (at, price) points."""
    out = {}
    for at, price in points:
        start = rollup.start_of(at, seconds)
        b = out.get(start)
        out[start] = (
            tick_bucket(at, price, seconds)
            if b is None
            else Bucket(start, b.open, max(b.high, price), min(b.low, price), price, b.first, math.floor(at) - start)
        )
    return [out[k] for k in sorted(out)]


@settings(max_examples=60, deadline=None)
@given(quotes, st.randoms(use_true_random=False))
def test_tier_buckets_merge_into_any_chart_bucket_exactly_in_any_order(points, rnd):
    shuffled = points[:]
    rnd.shuffle(shuffled)
    for tier in TIERS:
        tier_buckets: dict[int, Bucket] = {}
        for at, price in shuffled:
            new = tick_bucket(at, price, tier.seconds)
            old = tier_buckets.get(new.start)
            tier_buckets[new.start] = new if old is None else merge(old, new)
        assert sorted(tier_buckets.values(), key=lambda b: b.start) == straight(points, tier.seconds)
        for length in NICE:
            if length % tier.seconds == 0:
                assert regroup(tier_buckets.values(), length) == straight(points, length)


@settings(max_examples=60, deadline=None)
@given(one_day, one_day, one_day)
def test_merging_is_the_bucket_of_all_prices_commutative_associative_idempotent(a, b, c):
    assume(
        not (
            {t for t, _ in a} & {t for t, _ in b}
            or {t for t, _ in b} & {t for t, _ in c}
            or {t for t, _ in a} & {t for t, _ in c}
        )
    )
    (x,), (y,), (z,) = (straight(q, DAY) for q in (a, b, c))
    assert merge(x, y) == merge(y, x) == straight(sorted(a + b), DAY)[0]
    assert merge(merge(x, y), z) == merge(x, merge(y, z)) == straight(sorted(a + b + c), DAY)[0]
    assert merge(merge(x, y), y) == merge(x, y)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=200 * 365 * DAY), st.floats(min_value=DAY0, max_value=DAY0 + 10 * 365 * DAY))
def test_a_span_never_needs_more_than_max_points_buckets(span, now):
    seconds = rollup.bucket_seconds(span)
    first, last = rollup.start_of(now - span, seconds), rollup.start_of(now, seconds)
    assert (last - first) // seconds + 1 <= MAX_POINTS - 2  # room for a coarser tier's fill before it
    assert seconds % 300 == 0 and (DAY % seconds == 0 or seconds % DAY == 0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(list(RANGES)), st.floats(min_value=DAY0, max_value=DAY0 + 365 * DAY), st.integers(0, 3000))
def test_a_plan_merges_from_a_tier_that_divides_its_buckets_and_keeps_the_span(range_name, now, age_days):
    chart = rollup.plan(range_name, now, now - age_days * DAY)
    assert chart is not None and chart.until == now
    own = chart.tiers[0]
    assert chart.seconds % own.seconds == 0
    assert own.keep is None or own.keep >= now - chart.since + chart.seconds
    assert chart.tiers == TIERS[TIERS.index(own) :]
    assert all(t.seconds % chart.seconds == 0 or chart.seconds % t.seconds == 0 for t in chart.tiers)


def test_the_documented_chart_resolutions():
    now = DAY0 + 0.5
    assert {r: rollup.plan(r, now, now - 2 * 365 * DAY).seconds for r in RANGES} == {  # type: ignore[union-attr]
        "24h": 300,
        "7d": 1800,
        "30d": 7200,
        "1y": DAY,
        "max": 2 * DAY,
    }
    assert rollup.plan("max", now, now - 10 * 365 * DAY).seconds == 14 * DAY  # type: ignore[union-attr]
    assert rollup.plan("max", now, now - 100 * 365 * DAY).seconds == 28 * 3 * DAY  # type: ignore[union-attr]
    assert rollup.plan("7d", now, None) is None


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([60, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, DAY]),
    st.integers(DAY0 // DAY, DAY0 // DAY + 1000),
    st.integers(0, DAY),
    prices,
    prices,
)
def test_a_candle_nests_in_every_tier_at_least_as_long(seconds, day, offset, low, spread):
    start = day * DAY + offset // seconds * seconds
    candle = Candle(start, seconds, low * 1.5, low * 2, low, low * 1.2)
    assert rollup.candle_problem(candle) is None
    placed = rollup.candle_buckets(candle)
    assert [tier for tier, _ in placed] == [t for t in TIERS if t.seconds >= seconds]
    for tier, bucket in placed:
        assert bucket.start <= start and start + seconds <= bucket.start + tier.seconds
        assert 0 <= bucket.first <= bucket.last < tier.seconds
        assert (bucket.open, bucket.high, bucket.low, bucket.close) == (low * 1.5, low * 2, low, low * 1.2)
