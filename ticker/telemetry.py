"""Upstream request metrics, recorded where every provider request is made (providers/_http.py).

Module-level because that helper has no app to ask; each app registers them in its own registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

UPSTREAM_REQUESTS = Counter(
    "ticker_upstream_requests",
    "Requests sent to upstream price APIs, by provider and outcome.",
    ["provider", "outcome"],
    registry=None,
)
UPSTREAM_SECONDS = Histogram(
    "ticker_upstream_request_seconds",
    "Latency of upstream price API requests.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
UPSTREAM_SKIPPED = Counter(
    "ticker_upstream_skipped",
    "Requests not sent because the provider's own request budget was spent.",
    ["provider"],
    registry=None,
)


def record_upstream(provider: str, outcome: str, seconds: float | None = None) -> None:
    UPSTREAM_REQUESTS.labels(provider, outcome).inc()
    if seconds is not None:
        UPSTREAM_SECONDS.labels(provider).observe(seconds)


def outcome_of(status: int) -> str:
    if status == 200:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "http_5xx" if status >= 500 else "http_4xx"
