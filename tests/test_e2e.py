"""End to end: the real `ticker serve` process on a loopback port against a local fake CoinGecko."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.service import Service, free_port, run_ticker, running, wait_until, write_config

pytestmark = pytest.mark.e2e


def test_serve_shows_the_upstream_prices_and_follows_them(tmp_path, upstream):
    service = Service(write_config(tmp_path, upstream, interval=1), free_port())
    try:
        service.wait_ready()
        body = service.get("/api/v1/prices").json()
        assert [c["symbol"] for c in body["coins"]] == ["BTC", "ETH", "ARRR", "OPENVC"]
        assert [c["price"] for c in body["coins"]] == [90917.04, 3021.5512, 0.00001234, 0.0042]
        assert [c["source"] for c in body["coins"]] == ["coingecko", "coingecko", "coingecko", "static"]
        assert body["stale"] is False
        assert service.get("/api/v1/prices/btc?currency=eur").json()["price"] == 84123.55
        widget = service.get("/widget").text
        assert "$90,917.04" in widget and "$0.0₄1234" in widget and "$0.00001234" in widget and "▲ 1.64%" in widget

        upstream.coingecko.prices["bitcoin"]["usd"] = (91000.5, 1.7)
        changed_at = time.monotonic()
        while service.get("/api/v1/prices/BTC").json()["price"] != 91000.5:
            assert time.monotonic() - changed_at < 2.5, "new price not served within two intervals"
            time.sleep(0.05)

        prices = "/api/v3/simple/price"  # rounds only: side work (icons' metadata, backfills) has its own share
        before, started = len(upstream.coingecko.asked(prices)), time.monotonic()
        for i in range(1000):
            path = ("/api/v1/prices?coins=ETH,BTC", "/widget?currency=eur", "/api/v1/prices/ARRR")[i % 3]
            assert service.get(path).status_code == 200
        rounds = time.monotonic() - started
        visitors_cost = len(upstream.coingecko.asked(prices)) - before
        assert visitors_cost <= rounds / 1 + 1  # only the poller's own rounds, never one per visitor
    finally:
        elapsed = service.stop()
    assert elapsed < 2.0
    assert service.proc.returncode == 0  # a clean stop on SIGTERM is a normal exit
    log = service.log.read_text()
    assert "Application shutdown complete" in log and "Traceback" not in log
    assert (tmp_path / "state" / "snapshot.json").exists()


def test_restart_in_an_outage_serves_the_last_prices_at_once(tmp_path, upstream):
    config = write_config(tmp_path, upstream, interval=1)
    with running(config) as first:
        before = first.get("/api/v1/prices").json()
    upstream.coingecko.fail_with(
        429, b'{"status":{"error_code":429,"error_message":"rate limited"}}', {"retry-after": "60"}
    )
    with running(config) as second:
        after = second.get("/api/v1/prices").json()
        assert [c["price"] for c in after["coins"]] == [c["price"] for c in before["coins"]]
        assert [c["updated_at"] for c in after["coins"]] == [c["updated_at"] for c in before["coins"]]
    assert "provider coingecko failing: HTTP 429: rate limited" in second.log.read_text()


def test_a_bad_config_stops_serve_with_one_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[market]\ncoins = ["BTC", "NOSUCHCOIN"]\n')
    result = run_ticker("serve", "--config", str(config), timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("ticker: config error: market.coins[1]: unknown symbol 'NOSUCHCOIN'")


def test_faults_switch_sources_staleness_and_readiness(tmp_path, upstream):
    """Two providers behind the fake upstream; faults go on and off while the real service runs."""
    config = write_config(
        tmp_path,
        upstream,
        interval=1,
        providers=("coingecko", "coinpaprika"),
        poller="stale_after_seconds = 3\nmax_stale_seconds = 3600",
    )
    with running(config) as service:

        def sources() -> list[str]:
            return [c["source"] for c in service.get("/api/v1/prices?coins=BTC,ETH,ARRR").json()["coins"]]

        assert sources() == ["coingecko"] * 3
        assert upstream.coinpaprika.requests == 0  # the fallback costs nothing while the primary answers

        # CoinGecko rate-limits us: its coins come from CoinPaprika within two intervals, and it gets
        # no request until Retry-After has passed.
        upstream.coingecko.fail_with(429, b'{"status":{"error_code":429}}', {"retry-after": "3"})
        limited_at, asked = time.monotonic(), upstream.coingecko.requests
        wait_until(lambda: sources() == ["coinpaprika"] * 3, 2.5, "failover to coinpaprika")
        btc = service.get("/api/v1/prices/BTC").json()
        assert btc["price"] == 90900.0 and btc["stale"] is False
        ready = service.get("/readyz").json()
        assert ready["providers"]["coingecko"]["state"] == "backoff"
        assert ready["providers"]["coinpaprika"]["state"] == "ok"
        wait_until(lambda: upstream.coingecko.requests > asked, 3.0, "the 429 itself")
        after_429 = upstream.coingecko.requests
        time.sleep(max(0.0, limited_at + 2.5 - time.monotonic()))
        assert upstream.coingecko.requests == after_429  # Retry-After honoured

        # CoinGecko is back: it is the source again within two intervals after Retry-After.
        upstream.coingecko.recover()
        wait_until(lambda: sources() == ["coingecko"] * 3, 3 + 2.5, "recovery to coingecko")

        # Both down: last prices stay, turn stale after stale_after_seconds, and /readyz stays 200.
        upstream.coingecko.fail_with(500, b"<html>Internal Server Error</html>", {"content-type": "text/html"})
        upstream.coinpaprika.fail_with(500, b'{"error":"internal"}')
        wait_until(lambda: service.get("/api/v1/prices").json()["stale"], 6, "stale flag")
        body = service.get("/api/v1/prices").json()
        assert [c["price"] for c in body["coins"][:3]] == [90917.04, 3021.5512, 0.00001234]
        assert [c["stale"] for c in body["coins"]] == [True, True, True, False]  # the static coin is never stale
        ready = service.get("/readyz")
        assert ready.status_code == 200 and ready.json()["stale"] is True
        assert {p["state"] for p in ready.json()["providers"].values()} <= {"failing", "backoff"}
        assert "as of" in service.get("/widget").text
        assert service.get("/widget").status_code == 200

        # Recovery: fresh again.
        upstream.coingecko.recover()
        upstream.coinpaprika.recover()
        wait_until(lambda: not service.get("/api/v1/prices").json()["stale"], 3, "fresh again")
    log = service.log.read_text()
    assert log.count("provider coingecko failing") == 2  # once per outage, not once per round
    assert "failover: ARRR, BTC, ETH now from coingecko -> coinpaprika" in log


def test_stream_pushes_snapshots(tmp_path, upstream):
    """Shutdown with open streams: tests/web/test_shutdown_e2e.py (its clients keep reading until the end)."""
    service = Service(write_config(tmp_path, upstream, interval=1), free_port())
    service.wait_ready()
    events: list[dict] = []
    try:
        assert service.get("/api/v1/stream?coins=NOPE").status_code == 400
        with httpx.stream("GET", f"{service.url}/api/v1/stream?coins=BTC", timeout=5) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            started = time.monotonic()
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if len(events) == 1:
                        assert time.monotonic() - started < 0.5  # sent at once on connect
                        now = service.get("/api/v1/prices?coins=BTC").json()  # a round may end in between
                        assert now["generated_at"] >= events[0]["generated_at"]
                        assert {k: v for k, v in events[0].items() if k != "generated_at"} == {
                            k: v for k, v in now.items() if k != "generated_at"
                        }
                        upstream.coingecko.prices["bitcoin"]["usd"] = (95000.25, 2.0)
                    elif events[-1]["coins"][0]["price"] == 95000.25:
                        break
                assert time.monotonic() - started < 3, "no event for the new snapshot"
    finally:
        service.stop()
    assert "Traceback" not in service.log.read_text()
