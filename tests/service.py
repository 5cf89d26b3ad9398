"""Run the real `ticker serve` as a subprocess, with a config whose providers all point at a fake upstream."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from tests.fake_upstream import FakeUpstream

_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before in this run.

    The OS may give a just-released port again; two services on one port would share a log file
    and one of them would fail to bind.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class Service:
    """A running `ticker serve`; stopped with SIGTERM at the end."""

    def __init__(self, config: Path, port: int, *extra: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=5)
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        self.log = config.parent / f"serve-{port}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ticker", "serve", "--config", str(config), "--port", str(port), *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ticker serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not ready after {timeout} s: {self.log.read_text()}")

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path)

    def stop(self) -> float:
        started = time.monotonic()
        self.client.close()
        if self.proc.poll() is not None:
            return 0.0
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)
        return time.monotonic() - started


@contextlib.contextmanager
def running(config: Path, *extra: str) -> Iterator[Service]:
    """`ticker serve --config CONFIG EXTRA...` on a fresh port, ready; stopped at the end, with no traceback logged."""
    service = Service(config, free_port(), *extra)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
    log = service.log.read_text()
    assert "Traceback" not in log, log


def run_ticker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`ticker ARGS...` as a user runs it, in a new process; its output captured as text."""
    return subprocess.run([sys.executable, "-m", "ticker", *args], capture_output=True, text=True, timeout=timeout)


MARKET = """[market]
coins = ["BTC", "ETH", "ARRR", { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]
currencies = ["usd", "eur"]"""


def write_config(
    tmp_path: Path,
    upstream: FakeUpstream,
    interval: float,
    *,
    market: str = MARKET,
    providers: Sequence[str] | None = ("coingecko",),
    poller: str = "",
    cache: str = 'snapshot_path = "state/snapshot.json"',
    history: str = "",
    name: str = "ticker.toml",
    timeout: float = 1,
) -> Path:
    """A config whose providers all point at the fake upstream: no test ever reaches a real API.

    Every provider's base_url is the fake's, with a test budget (a 1 s interval would leave the published
    keyless budgets nothing beyond the price rounds). `providers`: poller.providers, None for the built-in
    default (all five keyless ones); `market=""`: the built-in default coins; `history`: lines of [history];
    `timeout`: poller.timeout_seconds (a longer one keeps a loaded test machine from failing rounds over).
    """
    config = tmp_path / name
    listed = "" if providers is None else f"providers = {list(providers)!r}"
    config.write_text(f"""
{market}
[poller]
interval_seconds = {interval}
timeout_seconds = {timeout}
{listed}
{poller}
[providers.coingecko]
base_url = "{upstream.coingecko_url}"
requests_per_minute = 600
[providers.coinpaprika]
base_url = "{upstream.coinpaprika_url}"
requests_per_minute = 600
requests_per_month = 100000000
[providers.kraken]
base_url = "{upstream.kraken_url}"
requests_per_minute = 600
[providers.binance]
base_url = "{upstream.binance_url}"
requests_per_minute = 600
[providers.coinbase]
base_url = "{upstream.coinbase_url}"
requests_per_minute = 6000
[providers.geckoterminal]
base_url = "{upstream.geckoterminal_url}"
requests_per_minute = 600
[providers.defillama]
base_url = "{upstream.defillama_url}"
requests_per_minute = 600
[cache]
{cache}
[history]
{history}
""")
    return config


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)
