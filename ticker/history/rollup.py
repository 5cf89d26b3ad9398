"""The resolution scheme, in one place: tiers, bucket arithmetic, exact merging, and chart plans.

Every backend keeps the same tiers for each coin in each currency (a "series"):

    tier   holds                                        kept
    raw    every accepted quote, (at, price)            48 hours
    5m     one bucket per 5 minutes                     14 days
    1h     one bucket per hour                          366 days
    1d     one bucket per UTC day                       forever

A quote enters raw and its bucket in every tier at once, so there is nothing to roll up later: `prune`
only deletes what is past its tier's age (and series of removed coins). Buckets start at whole multiples
of their length since the Unix epoch, so a 5-minute bucket lies in exactly one hour and an hour in one
UTC day. A bucket keeps open (its first price), high, low, close (its last price), and the whole seconds
from its start to its first and last price, so merging two buckets of one start gives exactly the bucket
of all their prices, in any order (within one second: the open stored first, the close stored last win).

Charts (`plan`, `assemble`): a range gets buckets of a "nice" length of at least 1/496 of its span (24h:
5 min, 288; 7d: 30 min, 336; 30d: 2 h, 360; 1y: 1 day, 365; max: up to 28 days or its multiples), merged
exactly from the finest tier whose length divides it and that keeps the whole span. Coarser tiers fill
the time before that tier's first bucket (a backfilled hourly past under a 7-day chart), in buckets of
their own length or the chart's, whichever is longer, so a chart shows the finest data there is.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ticker.history.base import LATEST, MAX_POINTS, RANGES
from ticker.models import Candle

DAY = 86_400
RAW_KEEP = 2 * DAY  # raw quotes are kept this long (seconds after `at`)
FORGET_AFTER = 30 * DAY  # a coin no longer configured is forgotten this long after its last point


@dataclass(frozen=True, slots=True)
class Tier:
    """Buckets of `seconds` each, kept until `keep` seconds after their end (None: forever)."""

    name: str
    seconds: int
    keep: int | None


TIERS = (Tier("5m", 300, 14 * DAY), Tier("1h", 3600, 366 * DAY), Tier("1d", DAY, None))
# Chart bucket lengths (seconds); past the last, whole multiples of it. Each divides every tier length
# above it and is a multiple of those below, so merging into a chart bucket is always exact.
NICE = (300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY)


@dataclass(frozen=True, slots=True)
class Bucket:
    """One tier bucket: `start` (Unix seconds, a multiple of its length), open/high/low/close, and `first`,
    `last`: whole seconds from `start` to the open's and the close's quote."""

    start: int
    open: float
    high: float
    low: float
    close: float
    first: int
    last: int

    @property
    def close_at(self) -> int:
        """Unix seconds of the close's quote: the time this bucket stands for as a point."""
        return self.start + self.last


def start_of(at: float, seconds: int) -> int:
    """The start of the `seconds`-long bucket holding `at` (Unix seconds)."""
    return int(at // seconds) * seconds


def tick_bucket(at: float, price: float, seconds: int) -> Bucket:
    """The `seconds`-long bucket of one quote."""
    start = start_of(at, seconds)
    offset = math.floor(at) - start
    return Bucket(start, price, price, price, price, offset, offset)


def merge(old: Bucket, new: Bucket) -> Bucket:
    """The bucket of both buckets' prices (same start): the earlier open, the later close (ties: `old`'s
    open, `new`'s close), the higher high, the lower low."""
    earlier, later = new.first < old.first, new.last >= old.last
    return Bucket(
        old.start,
        new.open if earlier else old.open,
        max(old.high, new.high),
        min(old.low, new.low),
        new.close if later else old.close,
        new.first if earlier else old.first,
        new.last if later else old.last,
    )


def regroup(buckets: Iterable[Bucket], seconds: int) -> list[Bucket]:
    """Buckets of one series, each inside one `seconds`-long aligned bucket, merged into those, oldest first."""
    out: list[Bucket] = []
    for bucket in sorted(buckets, key=lambda b: b.start):
        start = start_of(bucket.start, seconds)
        shift = bucket.start - start
        moved = Bucket(
            start, bucket.open, bucket.high, bucket.low, bucket.close, bucket.first + shift, bucket.last + shift
        )
        out.append(merge(out.pop(), moved) if out and out[-1].start == start else moved)
    return out


def candle_problem(candle: Candle) -> str | None:
    """Why a backfilled candle cannot be stored (None: it can): it must nest in our buckets and be sane."""
    if not (isinstance(candle.seconds, int) and 0 < candle.seconds <= DAY and DAY % candle.seconds == 0):
        return f"length {candle.seconds!r} s does not divide a day"
    if not isinstance(candle.start, int) or not 0 < candle.start < LATEST or candle.start % candle.seconds:
        return f"start {candle.start!r} is not a multiple of its length between 1970 and 2100"
    prices = (candle.open, candle.high, candle.low, candle.close)
    if not all(math.isfinite(p) and p > 0 for p in prices):
        return "a price is not a finite positive number"
    if candle.low > min(candle.open, candle.close) or candle.high < max(candle.open, candle.close):
        return "high/low do not enclose open and close"
    return None


def candle_buckets(candle: Candle) -> list[tuple[Tier, Bucket]]:
    """A valid candle as a bucket of every tier it nests in (tiers whose length is a multiple of its own)."""
    found = []
    for tier in TIERS:
        if tier.seconds % candle.seconds == 0:
            start = start_of(candle.start, tier.seconds)
            first = candle.start - start
            bucket = Bucket(
                start, candle.open, candle.high, candle.low, candle.close, first, first + candle.seconds - 1
            )
            found.append((tier, bucket))
    return found


def backfill(candles: Iterable[Candle], earliest: float | None) -> list[Candle]:
    """The candles worth storing: valid ones that end by `earliest` (the oldest recorded point; None: all)."""
    return [c for c in candles if candle_problem(c) is None and (earliest is None or c.start + c.seconds <= earliest)]


def expired(tier: Tier, now: float) -> int | None:
    """Buckets of `tier` starting before this are past their age at `now` (None: kept forever)."""
    return None if tier.keep is None else math.floor(now - tier.keep) - tier.seconds + 1


# --------------------------------------------------------------------------- charts


@dataclass(frozen=True, slots=True)
class Plan:
    """What a chart needs: buckets intersecting [since, until] (Unix seconds), `seconds` long, merged from
    `tiers` (finest first: the chart's own tier, then the coarser ones that fill the past before it)."""

    since: float
    until: float
    seconds: int
    tiers: tuple[Tier, ...]

    def after(self, tier: Tier) -> float:
        """The tier's buckets this chart may need start after this (and at `until` at the latest)."""
        return self.since - max(self.seconds, tier.seconds)


def bucket_seconds(span: float) -> int:
    """The chart bucket length for a span: the first NICE length giving at most MAX_POINTS - 4 buckets."""
    want = span / (MAX_POINTS - 4)
    for seconds in NICE:
        if seconds >= want:
            return seconds
    return NICE[-1] * math.ceil(want / NICE[-1])


def plan(range_name: str, now: float, earliest: float | None) -> Plan | None:
    """The plan for a range ending at `now`; None when nothing is recorded. Raises ValueError on an unknown
    range."""
    if range_name not in RANGES:
        raise ValueError(f"unknown range {range_name!r}; expected one of {', '.join(RANGES)}")
    if earliest is None:
        return None
    span = RANGES[range_name]
    since = now - span if span is not None else min(earliest, now)
    seconds = bucket_seconds(now - since)
    for index, tier in enumerate(TIERS):
        if seconds % tier.seconds == 0 and (tier.keep is None or tier.keep >= now - since + seconds):
            return Plan(since, now, seconds, TIERS[index:])
    raise AssertionError("the daily tier keeps everything")  # pragma: no cover


def assemble(chart: Plan, rows: Mapping[int, Sequence[Bucket]]) -> list[Candle]:
    """The chart from each tier's buckets in the window (`rows` by tier length, any order), oldest first."""
    chunks: list[tuple[int, list[Bucket]]] = []
    boundary = math.inf  # the start of the oldest chart bucket so far: coarser tiers fill only before it
    for tier in chart.tiers:
        length = max(chart.seconds, tier.seconds)
        usable = [
            b
            for b in rows.get(tier.seconds, ())
            if b.start <= chart.until
            and start_of(b.start, length) + length > chart.since  # whole chart buckets: the first one too
            and b.start + tier.seconds <= boundary
        ]
        grouped = regroup(usable, length)
        if grouped:
            chunks.append((length, grouped))
            boundary = grouped[0].start
    candles = [to_candle(b, length) for length, chunk in reversed(chunks) for b in chunk]
    return candles[-MAX_POINTS:]


def to_candle(bucket: Bucket, seconds: int) -> Candle:
    return Candle(bucket.start, seconds, bucket.open, bucket.high, bucket.low, bucket.close)


def nearest(points: Iterable[tuple[float, float]], at: float, tolerance: float) -> float | None:
    """The price of the (time, price) point nearest `at` within `tolerance` seconds (ties: the first given)."""
    best: tuple[float, float] | None = None
    for when, price in points:
        distance = abs(when - at)
        if distance <= tolerance and (best is None or distance < best[0]):
            best = (distance, price)
    return None if best is None else best[1]
