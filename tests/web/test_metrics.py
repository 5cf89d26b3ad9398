"""/metrics: Prometheus text that prometheus-client's own parser reads, with counters that move in step.

The upstream counters are module-level (one per process, shared by every app a test builds), so the
in-process tests compare deltas; the end-to-end test runs the real `ticker serve`, where the counters
start at zero and must equal the fake upstream's own request count.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    DEFAULT_COIN_PRICES,
    NOW,
    FakeClock,
    fixture_json,
    quote,
    serving,
    settings_from,
    snapshot_of,
    until,
)
from tests.service import running, wait_until, write_config
from ticker.models import ProviderStatus, Snapshot
from ticker.runtime import create_app
from ticker.web.metrics import build_registry

FAMILIES = {
    "ticker_upstream_requests": "counter",
    "ticker_upstream_request_seconds": "histogram",
    "ticker_upstream_skipped": "counter",
    "ticker_http_requests": "counter",
    "ticker_snapshot_age_seconds": "gauge",
    "ticker_coins_stale": "gauge",
    "ticker_coins_unavailable": "gauge",
    "ticker_provider_last_success_timestamp_seconds": "gauge",
    "ticker_provider_up": "gauge",
    "ticker_lease_holder": "gauge",
}


def parse(text: str) -> dict[str, Metric]:
    """Families by name, through prometheus-client's parser (which raises on anything malformed)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(sample name, sorted labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def http_count(text: str, route: str, status: int) -> float:
    return value(text, "ticker_http_requests_total", route=route, status=str(status))


@pytest.fixture
def settings(tmp_path):
    return settings_from(
        tmp_path,
        """
[market]
coins = ["BTC", "ETH", "XMR", { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]
currencies = ["usd", "eur"]
[poller]
interval_seconds = 60
stale_after_seconds = 300
max_stale_seconds = 3600
providers = ["coingecko"]
[providers.coingecko]
requests_per_minute = 600
[cache]
snapshot_path = ""
""",
    )


async def test_metrics_parse_as_prometheus_text_with_every_family(make_client, settings, clock):
    ok = ProviderStatus("ok", last_success=NOW - timedelta(seconds=30))
    failing = ProviderStatus("failing", last_success=NOW - timedelta(hours=2), last_error="HTTP 500")
    snapshot = Snapshot(
        NOW - timedelta(seconds=45),
        {(q.symbol, q.currency): q for q in (quote("BTC", 1.0, age=30), quote("ETH", 2.0, age=600))},
        {"coingecko": ok, "coinpaprika": failing},
    )
    client = await make_client(settings, snapshot)
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["x-content-type-options"] == "nosniff"
    families = parse(response.text)
    for name, kind in FAMILIES.items():
        assert name in families, f"{name} missing from /metrics"
        assert families[name].type == kind, name
    text = response.text
    assert value(text, "ticker_snapshot_age_seconds") == 45.0
    # ETH is 600 s old (stale); XMR was never fetched (stale and unavailable); OPENVC is static (never stale).
    assert value(text, "ticker_coins_stale") == 2.0
    assert value(text, "ticker_coins_unavailable") == 1.0
    last = "ticker_provider_last_success_timestamp_seconds"
    assert value(text, last, provider="coingecko") == (NOW - timedelta(seconds=30)).timestamp()
    assert value(text, last, provider="coinpaprika") == (NOW - timedelta(hours=2)).timestamp()
    assert value(text, "ticker_provider_up", provider="coingecko") == 1.0
    assert value(text, "ticker_provider_up", provider="coinpaprika") == 0.0
    clock.advance(15)
    assert value((await client.get("/metrics")).text, "ticker_snapshot_age_seconds") == 60.0


async def test_before_the_first_poll_the_gauges_say_so(make_client, settings):
    text = (await (await make_client(settings)).get("/metrics")).text
    found = samples(text)
    assert not [key for key in found if key[0] == "ticker_snapshot_age_seconds"]  # no snapshot, no age
    assert value(text, "ticker_coins_stale") == 3.0  # every live coin; the static one never is
    assert value(text, "ticker_coins_unavailable") == 3.0


async def test_http_requests_are_counted_by_route_and_status(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0), quote("ETH", 2.0)))
    before = (await client.get("/metrics")).text
    assert http_count(before, "prices", 200) == 0
    for _ in range(7):
        assert (await client.get("/api/v1/prices?coins=BTC")).status_code == 200
    etag = (await client.get("/api/v1/prices")).headers["etag"]
    for _ in range(3):
        assert (await client.get("/api/v1/prices", headers={"if-none-match": etag})).status_code == 304
    for bad in ("?coins=NOPE", "?currency=xyz", "?coins=" + "B" * 1001):
        assert (await client.get(f"/api/v1/prices{bad}")).status_code == 400
    assert (await client.head("/api/v1/prices")).status_code == 200
    assert (await client.options("/api/v1/prices", headers={"origin": "https://a.example"})).status_code == 204
    assert (await client.get("/api/v1/prices/BTC")).status_code == 200
    assert (await client.get("/api/v1/prices/NOPE")).status_code == 404
    assert (await client.get("/api/v1/prices/BTC?currency=xyz")).status_code == 400
    for path, status in [
        ("/widget", 200),
        ("/widget?theme=plaid", 400),
        ("/widget/fragment", 200),
        ("/healthz", 200),
        ("/readyz", 200),
        ("/openapi.json", 200),
        ("/icons/BTC", 200),
        ("/icons/NOPE", 404),
        ("/embed.js", 200),
        ("/", 200),
        ("/landing.css", 200),
        ("/widget/site.css", 404),
        ("/no/such/page", 404),
    ]:
        assert (await client.get(path)).status_code == status, path
    text = (await client.get("/metrics")).text
    expected = {
        ("prices", 200): 7 + 1 + 1,  # 7 with coins=BTC, the one that fetched the ETag, one HEAD
        ("prices", 304): 3,
        ("prices", 400): 3,
        ("prices", 204): 1,
        ("price", 200): 1,
        ("price", 404): 1,
        ("price", 400): 1,
        ("widget", 200): 1,
        ("widget", 400): 1,
        ("fragment", 200): 1,
        ("healthz", 200): 1,
        ("readyz", 200): 1,
        ("openapi", 200): 1,
        ("icon", 200): 1,
        ("icon", 404): 1,
        ("embed_js", 200): 1,
        ("index", 200): 1,
        ("landing_css", 200): 1,
        ("site_css", 404): 1,
        ("unmatched", 404): 1,
        ("metrics", 200): 1,  # the first scrape; this one is counted once its response starts
    }
    counted = {
        (dict(labels)["route"], int(dict(labels)["status"])): n
        for (name, labels), n in samples(text).items()
        if name == "ticker_http_requests_total"
    }
    assert counted == expected


async def test_stream_requests_are_counted(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    assert (await client.get("/api/v1/stream?coins=NOPE")).status_code == 400
    text = (await client.get("/metrics")).text
    assert http_count(text, "stream", 400) == 1


async def test_method_not_allowed_is_counted(make_client, settings):
    client = await make_client(settings, snapshot_of(quote("BTC", 1.0)))
    assert (await client.post("/api/v1/prices")).status_code == 405
    assert (await client.post("/healthz")).status_code == 405
    text = (await client.get("/metrics")).text
    assert http_count(text, "prices", 405) == 1 and http_count(text, "healthz", 405) == 1


async def test_metrics_content_type_is_the_one_prometheus_client_gives_a_plain_scrape(make_client, settings):
    response = await (await make_client(settings)).get("/metrics")  # a scraper that asks for no version
    assert response.headers["content-type"] == choose_encoder("")[1] == "text/plain; version=0.0.4; charset=utf-8"


class Rounds:
    """The poller's sleep: each round waits for a ticket the test hands out."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[None](100)

    async def sleep(self, seconds: float) -> None:
        await self.receive.receive()

    async def release(self) -> None:
        await self.send.send(None)

    def close(self) -> None:
        self.send.close()
        self.receive.close()


def module_counters() -> str:
    """The process-wide upstream counters as they stand (an empty registry of our own reads them)."""
    return generate_latest(build_registry([])).decode()


def upstream_count(text: str, outcome: str) -> float:
    return value(text, "ticker_upstream_requests_total", provider="coingecko", outcome=outcome)


def upstream_latencies(text: str) -> float:
    return value(text, "ticker_upstream_request_seconds_count", provider="coingecko")


async def test_upstream_counters_move_with_the_upstream_requests(coingecko, settings):
    prices = coingecko.prices
    clock, rounds = FakeClock(), Rounds()
    last_success = "ticker_provider_last_success_timestamp_seconds"

    def sent() -> int:
        return prices.call_count  # /coins/markets is side work, on its own slower schedule

    # Other tests in this process moved the module-level counters: everything below is a delta from here.
    start = module_counters()
    app = create_app(settings, clock=clock, monotonic=clock.monotonic, sleep=rounds.sleep)
    try:
        async with serving(app) as client:

            async def settled(calls: int, *, up: float | None = None) -> str | None:
                """The scrape once `calls` requests were sent and counted, and the snapshot says `up`."""
                if sent() != calls:
                    return None
                text = (await client.get("/metrics")).text
                counted = upstream_latencies(text) - upstream_latencies(start) == calls
                landed = up is None or (
                    "ticker_provider_up{" in text and value(text, "ticker_provider_up", provider="coingecko") == up
                )
                return text if counted and landed else None

            # The first round at start: /simple/price (/coins/markets is side work, later).
            text = await until(lambda: settled(1, up=1.0), "the first round")
            families = parse(text)
            assert {tuple(sorted(s.labels)) for s in families["ticker_upstream_requests"].samples} == {
                ("outcome", "provider")
            }
            assert {tuple(sorted(s.labels)) for s in families["ticker_upstream_request_seconds"].samples} >= {
                ("le", "provider"),
                ("provider",),
            }
            assert upstream_count(text, "ok") - upstream_count(start, "ok") == 1
            assert value(text, "ticker_provider_up", provider="coingecko") == 1.0
            assert value(text, last_success, provider="coingecko") == NOW.timestamp()

            for n in range(1, 6):  # five more rounds, one /simple/price each
                await rounds.release()
                text = await until(lambda n=n: settled(1 + n), f"round {n}")
                assert upstream_count(text, "ok") - upstream_count(start, "ok") == sent() == 1 + n
            assert prices.call_count == 6

            # A failing round: the 5xx outcome moves by one, the ok outcome does not.
            before = text
            prices.respond(503, text="<html>down</html>")
            await rounds.release()
            text = await until(lambda: settled(7, up=0.0), "the 503")
            assert upstream_count(text, "http_5xx") - upstream_count(before, "http_5xx") == 1
            assert upstream_count(text, "ok") == upstream_count(before, "ok")
            assert value(text, "ticker_provider_up", provider="coingecko") == 0.0

            # A 429: rate_limited moves; while its Retry-After is in force a round sends (and counts) nothing.
            clock.advance(3600)  # past any backoff the 503 set
            before = text
            prices.respond(429, headers={"retry-after": "120"}, json={"status": {"error_code": 429}})
            await rounds.release()
            text = await until(lambda: settled(8), "the 429")
            assert upstream_count(text, "rate_limited") - upstream_count(before, "rate_limited") == 1
            await rounds.release()
            await anyio.sleep(0.05)
            assert sent() == 8
            assert upstream_latencies((await client.get("/metrics")).text) == upstream_latencies(text)

            # Recovery: ok moves again and the last-success gauge follows the clock.
            clock.advance(3600)
            before = text
            prices.respond(200, json=fixture_json(DEFAULT_COIN_PRICES))
            await rounds.release()
            text = await until(lambda: settled(9, up=1.0), "recovery")
            assert upstream_count(text, "ok") - upstream_count(before, "ok") == 1
            assert value(text, last_success, provider="coingecko") == clock.now.timestamp()
            assert value(text, "ticker_provider_up", provider="coingecko") == 1.0
    finally:
        rounds.close()


@pytest.mark.e2e
def test_serve_counts_exactly_the_requests_the_fake_upstream_saw(tmp_path, upstream):
    """The real `ticker serve` (1 s rounds): counters start at 0 in its process and track the fake's own count."""

    def scrape_when_quiet() -> tuple[int, str] | None:
        seen = upstream.coingecko.requests
        text = service.get("/metrics").text
        if upstream.coingecko.requests != seen:
            return None  # a round went out during the scrape: try again
        total = sum(
            v
            for (name, labels), v in samples(text).items()
            if name == "ticker_upstream_requests_total" and dict(labels)["provider"] == "coingecko"
        )
        return (seen, text) if total == seen else None  # equal once the in-flight response is counted

    with running(write_config(tmp_path, upstream, interval=1)) as service:
        response = service.get("/metrics")
        assert response.status_code == 200 and "server" not in response.headers
        parse(response.text)
        seen, text = wait_until(scrape_when_quiet, 3, "the counters to match the fake's count")
        ok = value(text, "ticker_upstream_requests_total", provider="coingecko", outcome="ok")
        assert ok == seen >= 1  # /simple/price per round (and /coins/markets as side work)
        assert value(text, "ticker_upstream_request_seconds_count", provider="coingecko") == seen

        wait_until(lambda: upstream.coingecko.requests >= seen + 2, 5, "two more rounds")
        seen2, text2 = wait_until(scrape_when_quiet, 3, "the counters to catch up")
        assert value(text2, "ticker_upstream_requests_total", provider="coingecko", outcome="ok") - ok == seen2 - seen
        assert seen2 - seen >= 2

        upstream.coingecko.fail_with(500, b"<html>Internal Server Error</html>", {"content-type": "text/html"})
        wait_until(lambda: upstream.coingecko.requests > seen2, 5, "a failing round")
        seen3, text3 = wait_until(scrape_when_quiet, 3, "the failure to be counted")
        assert value(text3, "ticker_upstream_requests_total", provider="coingecko", outcome="http_5xx") == seen3 - seen2
        assert value(text3, "ticker_upstream_requests_total", provider="coingecko", outcome="ok") == value(
            text2, "ticker_upstream_requests_total", provider="coingecko", outcome="ok"
        )

        for _ in range(4):
            assert service.get("/api/v1/prices").status_code == 200
        assert service.get("/api/v1/prices?coins=NOPE").status_code == 400
        text4 = service.get("/metrics").text
        assert http_count(text4, "prices", 200) == 4 and http_count(text4, "prices", 400) == 1
        assert http_count(text4, "readyz", 200) >= 1  # wait_ready's polls
        assert http_count(text4, "metrics", 200) >= 4
