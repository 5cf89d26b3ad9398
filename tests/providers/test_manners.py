from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.conftest import NOW
from ticker.exceptions import ProviderError
from ticker.providers.manners import BLOCKED_SECONDS, BREAKER_FAILURES, ProviderHealth


def health(fraction: float = 1.0) -> ProviderHealth:
    return ProviderHealth("cg", interval=60, random_fraction=lambda: fraction)


def at(seconds: float):
    return NOW + timedelta(seconds=seconds)


def test_retry_after_wins_exactly():
    h = health()
    h.failed(ProviderError("cg", "HTTP 429", status=429, retry_after=119), NOW)
    assert not h.may_ask(at(118.9))
    assert h.may_ask(at(119))
    assert h.status(at(60)).state == "backoff"


@pytest.mark.parametrize("status", [401, 402, 403, 451])
def test_blocked_providers_wait_an_hour(status):
    h = health()
    h.failed(ProviderError("cg", f"HTTP {status}", status=status), NOW)
    assert not h.may_ask(at(BLOCKED_SECONDS - 1)) and h.may_ask(at(BLOCKED_SECONDS))


@pytest.mark.parametrize(("fraction", "delays"), [(1.0, [60, 120, 120, 120]), (0.0, [30, 60, 60, 60])])
def test_backoff_is_exponential_with_jitter_and_capped_at_two_intervals(fraction, delays):
    h = health(fraction)
    got = [h.failed(ProviderError("cg", "HTTP 500", status=500), NOW) for _ in delays]
    assert got == delays


def test_circuit_opens_after_repeated_failures_and_closes_on_success(caplog):
    h = health()
    with caplog.at_level(logging.DEBUG):
        for i in range(BREAKER_FAILURES):
            h.failed(ProviderError("cg", "timed out"), at(i * 120))
        assert h.status(at(10_000)).state == "backoff"
        h.succeeded(at(10_000))
    assert h.status(at(10_000)).state == "ok" and h.last_success == at(10_000) and h.may_ask(at(10_000))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert warnings == [
        "provider cg failing: timed out",
        "provider cg keeps failing (timed out); probing it at most every 120 s",
        "provider cg recovered after 5 failed attempts",
    ]


def test_a_single_failure_is_failing_not_backoff():
    h = health()
    h.failed(ProviderError("cg", "HTTP 502", status=502), NOW)
    assert h.status(NOW).state == "failing" and h.last_error == "HTTP 502"


def test_our_own_budget_is_not_an_upstream_failure(caplog):
    h = health()
    with caplog.at_level(logging.INFO):
        for i in range(3):
            h.failed(ProviderError("cg", "request budget spent", retry_after=20, over_budget=True), at(i))
    assert h.failures == 0 and h.status(at(2)).state == "backoff"
    assert not h.may_ask(at(21)) and h.may_ask(at(22))
    assert caplog.text.count("request budget spent") == 1
