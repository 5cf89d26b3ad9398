from __future__ import annotations

import logging

import pytest

from tests.conftest import NOW
from ticker.exceptions import ProviderError
from ticker.models import SavedManners
from ticker.providers.manners import BLOCKED_SECONDS, BREAKER_FAILURES, Manners


class Clocks:
    """A monotonic clock and a wall clock that move together, unless a test steps the wall clock alone."""

    def __init__(self) -> None:
        self.mono = 5_000.0
        self.wall = NOW.timestamp()

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def manners(clocks: Clocks, fraction: float = 1.0) -> Manners:
    return Manners(
        "cg", interval=60, random_fraction=lambda: fraction, monotonic=lambda: clocks.mono, wall=lambda: clocks.wall
    )


def test_retry_after_wins_exactly():
    clocks = Clocks()
    m = manners(clocks)
    m.failed(ProviderError("cg", "HTTP 429", status=429, retry_after=119))
    clocks.advance(118.9)
    assert not m.may_ask() and m.status().state == "backoff"
    clocks.advance(0.1)
    assert m.may_ask()


def test_a_wall_clock_step_neither_stretches_nor_shortens_a_hold():
    clocks = Clocks()
    m = manners(clocks)
    m.hold(600, "HTTP 429")
    clocks.wall -= 3600  # NTP steps the clock back an hour
    clocks.advance(599)
    assert not m.may_ask()
    clocks.wall += 7200  # and forward two
    clocks.advance(1)
    assert m.may_ask()


def test_a_success_of_a_request_in_flight_does_not_clear_a_hold():
    clocks = Clocks()
    m = manners(clocks)
    m.hold(600, "HTTP 429")  # one product's 429, recorded by the session the moment it arrived
    m.succeeded()  # another product's 200 in the same round
    assert m.held_seconds() == 600 and not m.may_ask() and m.status().state == "backoff"


@pytest.mark.parametrize("status", [401, 402, 403, 451])
def test_blocked_providers_wait_an_hour(status):
    clocks = Clocks()
    m = manners(clocks)
    m.failed(ProviderError("cg", f"HTTP {status}", status=status))
    clocks.advance(BLOCKED_SECONDS - 1)
    assert not m.may_ask()
    clocks.advance(1)
    assert m.may_ask()


@pytest.mark.parametrize(("fraction", "delays"), [(1.0, [60, 120, 120, 120]), (0.0, [30, 60, 60, 60])])
def test_backoff_is_exponential_with_jitter_and_capped_at_two_intervals(fraction, delays):
    m = manners(Clocks(), fraction)
    got = [m.failed(ProviderError("cg", "HTTP 500", status=500)) for _ in delays]
    assert got == delays


def test_circuit_opens_after_repeated_failures_and_closes_on_success(caplog):
    clocks = Clocks()
    m = manners(clocks)
    with caplog.at_level(logging.DEBUG):
        for _ in range(BREAKER_FAILURES):
            m.failed(ProviderError("cg", "timed out"))
            clocks.advance(120)
        assert m.status().state == "backoff"
        clocks.advance(10_000)
        m.succeeded()
    assert m.status().state == "ok" and m.last_success.timestamp() == clocks.wall and m.may_ask()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert warnings == [
        "provider cg failing: timed out",
        "provider cg keeps failing (timed out); probing it at most every 120 s",
        "provider cg recovered after 5 failed attempts",
    ]


def test_a_single_failure_is_failing_not_backoff_and_never_asked_is_idle():
    m = manners(Clocks())
    assert m.status().state == "idle" and m.status().retry_at is None
    m.failed(ProviderError("cg", "HTTP 502", status=502))
    assert m.status().state == "failing" and m.last_error == "HTTP 502"


def test_status_says_when_it_may_be_asked_again():
    clocks = Clocks()
    m = manners(clocks)
    m.hold(90, "HTTP 429")
    assert m.status().retry_at.timestamp() == pytest.approx(clocks.wall + 90)


def test_our_own_budget_is_not_an_upstream_failure(caplog):
    clocks = Clocks()
    m = manners(clocks)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            m.failed(ProviderError("cg", "request budget spent", retry_after=20, over_budget=True))
            clocks.advance(1)
    assert m.failures == 0 and m.status().state == "ok"
    clocks.advance(18)
    assert not m.may_ask()
    clocks.advance(1)
    assert m.may_ask()
    assert caplog.text.count("request budget spent") == 1


def test_a_saved_hold_binds_the_next_instance_as_a_utc_deadline():
    clocks = Clocks()
    first = manners(clocks)
    first.hold(600, "HTTP 429: rate limited")
    clocks.advance(100)
    saved = SavedManners.from_dict(first.saved().to_dict())  # through JSON, as in the snapshot or Redis
    later = Clocks()
    later.wall, later.mono = clocks.wall, 1.0  # another process: the same wall time, its own monotonic clock
    second = manners(later)
    second.restore(saved)
    assert second.held_seconds() == pytest.approx(500) and second.hold_reason == "HTTP 429: rate limited"
    later.advance(500)
    assert second.may_ask()


@pytest.mark.parametrize("code", [10002, 10010, 10011])
def test_a_key_error_in_a_400_blocks_like_a_401(code):
    """CoinGecko sends 10010/10011 (a key of the wrong plan) as HTTP 400: retrying sooner than the hour cannot help."""
    clocks = Clocks()
    m = manners(clocks)
    m.failed(ProviderError("cg", f"HTTP 400: error {code}", status=400, code=code))
    clocks.advance(BLOCKED_SECONDS - 1)
    assert not m.may_ask() and m.status().state == "backoff"
    clocks.advance(1)
    assert m.may_ask()
