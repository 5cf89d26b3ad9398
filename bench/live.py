#!/usr/bin/env python3
"""Live streams end to end: tick-to-client latency, server CPU and memory, upstream connections per exchange.

    python3 bench/live.py                          # 100 and 5,000 clients, then 3 instances on Redis (~3 min)
    python3 bench/live.py --clients 100 --ticks 5 --no-redis --no-doc

Not part of CI. What it runs, all on loopback:

- tests/fake_exchange.py's FakeExchange (thread mode, in this process) speaking Kraken v2, Coinbase and
  Binance; tests/fake_upstream.py's FakeUpstream (CoinGecko REST for the poller, interval 60 s).
- The real `ticker serve` (a subprocess) with `[live] enabled = true`, BTC and ETH in usd, every exchange's
  `stream_url` pointed at the fake, at most 4 `quotes` events per second per client.
- N lean SSE clients on /api/v1/stream?coins=BTC in a separate client process per instance (uvloop, one
  asyncio Protocol per socket, no HTTP library: a request line, then raw chunks split on blank lines), so
  the clients' own reading is not counted as server CPU. They share the machine's cores with the server.

Measured:

- latency: this process notes time.monotonic() (CLOCK_MONOTONIC, the same clock in every process) just
  before `fake.tick("kraken", "BTC/USD", price)`; each client notes it when a `quotes` event with that
  price completes in its socket. Ticks are 1 s apart (> 1 / max_updates_per_second and longer than a
  fan-out), so every tick is its own event. p50/p99 over every (client, tick).
- server CPU: utime + stime of the `ticker serve` process (/proc/<pid>/stat), over 10 s idle with the
  clients connected, and over the ticks (less the idle rate) per tick. RSS: VmRSS before and with clients.
- upstream connections: accepted WebSocket handshakes per exchange at the fake, with 1 instance and with 3
  instances on a real redis-server (tests/redis_server.py), clients on every instance.

The figures are printed and written between the markers in docs/PERFORMANCE.md ("Live streams") unless
--no-doc.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

if __name__ == "__main__" and sys.prefix == sys.base_prefix:  # not in a virtualenv: use the project's
    if not VENV_PYTHON.exists():
        subprocess.run([sys.executable, str(ROOT / "run.py"), "ticker", "--version"], check=True)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

sys.path[:0] = [str(ROOT)]

DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN = "<!-- bench/live.py results: begin (generated; edit the text around it) -->"
END = "<!-- bench/live.py results: end -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")
EXCHANGES = ("kraken", "coinbase", "binance")
RATE = 4.0  # live.max_updates_per_second
BASE = 91000.0  # BTC's first live price; tick k is BASE + k (the fake upstream polls 90917.04: within the gate)
PRICE = re.compile(rb'"symbol":"BTC".*?"price":([0-9.e+]+)')
REQUEST = "GET /api/v1/stream?coins=BTC HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n{via}\r\n"


def request(n: int) -> bytes:
    """Client n's request, from an address of its own (uvicorn trusts X-Forwarded-For from 127.0.0.1): the
    server takes at most MAX_STREAMS_PER_CLIENT streams per address."""
    return REQUEST.format(via=f"X-Forwarded-For: 10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}\r\n").encode()


def raise_nofile() -> int:
    """Soft open-file limit up to the hard one: each client (and each server connection) is a descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the client process -------------------------------------------------------------------------------


class SseClient(asyncio.Protocol):
    """One raw-socket event-stream client: notes when each `quotes` event carrying a BTC price completes."""

    def __init__(self, got: dict[str, float], primed: list[int], n: int) -> None:
        self.request = request(n)
        self.got = got  # price (as sent) -> time.monotonic() of receipt
        self.primed = primed  # [count of clients that have their first `prices` event]
        self.buffer = b""
        self.started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            if b"event: quotes" in block:
                for match in PRICE.finditer(block):
                    self.got.setdefault(str(float(match.group(1))), now)
            elif b"event: prices" in block and not self.started:
                self.started = True
                self.primed[0] += 1


def client_process(port: int, count: int) -> None:
    """Run `count` clients against 127.0.0.1:port. stdin: `report` prints JSON {price: [receipt times]};
    EOF ends. stdout: `primed N` once every client has its first `prices`, `lost N` if connections fail."""
    import uvloop

    raise_nofile()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        clients: list[SseClient] = []
        primed = [0]
        for start in range(0, count, 250):  # in batches: the listen backlog
            batch = [SseClient({}, primed, start + i) for i in range(min(250, count - start))]
            results = await asyncio.gather(
                *(loop.create_connection(functools.partial(_same, c), "127.0.0.1", port) for c in batch),
                return_exceptions=True,
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                print(f"lost {len(failed)} {failed[0]!r}", flush=True)
            clients += batch
        while primed[0] < count:
            await asyncio.sleep(0.05)
        print(f"primed {primed[0]}", flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).strip():
            if line == b"report":
                merged: dict[str, list[float]] = {}
                for c in clients:
                    for price, at in c.got.items():
                        merged.setdefault(price, []).append(at)
                print(json.dumps(merged), flush=True)

    uvloop.run(main())


def _same(client: SseClient) -> SseClient:
    return client


class Clients:
    """A client process (see client_process) driven from here."""

    def __init__(self, port: int, count: int) -> None:
        self.count = count
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--client", str(port), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_primed(self, timeout: float = 180) -> None:
        assert self.proc.stdout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("primed"):
                return
            if not line:
                raise SystemExit("the client process ended early")
            log(f"clients: {line.strip()}")
        raise SystemExit("the clients were not all served in time")

    def report(self) -> dict[str, list[float]]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        result: dict[str, list[float]] = json.loads(self.proc.stdout.readline())
        return result

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the servers --------------------------------------------------------------------------------------


def config(workdir: Path, name: str, upstream: Any, fake: Any, redis_url: str | None) -> Path:
    cache = f'url = "{redis_url}"\nnamespace = "bench"' if redis_url else 'url = "memory://"'
    path = workdir / f"{name}.toml"
    streams = "\n".join(f'[providers.{x}]\nstream_url = "{fake.url(x)}"' for x in EXCHANGES if x != "coinbase")
    path.write_text(f"""
[market]
coins = ["BTC", "ETH"]
currencies = ["usd"]
[poller]
interval_seconds = 60
timeout_seconds = 2
providers = ["coingecko"]
[providers.coingecko]
base_url = "{upstream.coingecko_url}"
requests_per_minute = 600
[providers.coinbase]
base_url = "{upstream.coinbase_url}"
stream_url = "{fake.url("coinbase")}"
{streams}
[live]
enabled = true
providers = ["kraken", "coinbase", "binance"]
max_updates_per_second = {RATE}
[cache]
{cache}
snapshot_path = "{name}.snapshot.json"
""")
    return path


@dataclass
class Instance:
    proc: subprocess.Popen[bytes]
    port: int

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1)) / 1024  # type: ignore[union-attr]


@contextlib.contextmanager
def serving(config_path: Path) -> Iterator[Instance]:
    import httpx

    from tests.service import free_port

    port = free_port()
    log_path = config_path.with_suffix(f".{port}.log")
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ticker", "serve", "--config", str(config_path), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
    instance = Instance(proc, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"ticker serve exited: {log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"ticker serve not ready: {log_path.read_text()}")
            time.sleep(0.1)
        yield instance
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_streams_up(port: int, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streams = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json().get("streams", {})
        if streams.get("kraken", {}).get("state") == "up":
            return
        time.sleep(0.1)
    raise SystemExit(f"the kraken stream is not up on port {port}")


def holder(port: int) -> bool:
    """Whether the instance on `port` holds the lease (and so the exchange streams)."""
    import httpx

    return "ticker_lease_holder 1.0" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text


# -- the runs -----------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


def tick_and_collect(
    fake: Any, clients: list[Clients], ticks: int, base: float
) -> tuple[list[list[float]], int, float]:
    """`ticks` ticks 1 s apart; (latencies in ms for each client group, missing receipts, seconds taken)."""
    sent: dict[float, float] = {}
    started = time.monotonic()
    for k in range(1, ticks + 1):
        sent[base + k] = time.monotonic()
        fake.tick("kraken", "BTC/USD", base + k, 1.5)
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # the last fan-out's stragglers
    per_group: list[list[float]] = []
    missing = 0
    for group in clients:
        received = {float(price): ats for price, ats in group.report().items()}
        latencies = [(t - at) * 1000 for price, at in sent.items() for t in received.get(price, [])]
        missing += group.count * ticks - len(latencies)
        per_group.append(latencies)
    return per_group, missing, elapsed


@contextlib.contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """py-spy (pip install py-spy) sampling `pid` meanwhile, written to `out` in collapsed-stack format."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--format", "raw", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # attached
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def run_single(
    workdir: Path, upstream: Any, n: int, ticks: int, idle: float, profile: Path | None = None
) -> dict[str, Any]:
    from tests.fake_exchange import FakeExchange

    with FakeExchange() as fake, serving(config(workdir, f"single{n}", upstream, fake, None)) as server:
        wait_streams_up(server.port)
        fake.tick("kraken", "BTC/USD", BASE, 1.5)  # the pair's first live price (and its gate round)
        time.sleep(1.0)
        rss_empty = server.rss_mb()
        group = Clients(server.port, n)
        try:
            group.wait_primed()
            time.sleep(1.0)
            rss_clients = server.rss_mb()
            cpu0 = server.cpu()
            time.sleep(idle)
            cpu1 = server.cpu()
            with profiled(server.proc.pid, profile):
                (latencies,), missing, elapsed = tick_and_collect(fake, [group], ticks, BASE)
            cpu2 = server.cpu()
            rss_after = server.rss_mb()
        finally:
            group.stop()
        idle_rate = (cpu1 - cpu0) / idle
        return {
            "clients": n,
            "ticks": ticks,
            "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
            "missing": missing,
            "idle_cpu_s": cpu1 - cpu0,
            "idle_s": idle,
            "cpu_per_tick_ms": max(cpu2 - cpu1 - idle_rate * elapsed, 0.0) / ticks * 1000,
            "rss_empty_mb": rss_empty,
            "rss_clients_mb": rss_clients,
            "rss_after_mb": rss_after,
            "connections": {x: len(fake.connections(x)) for x in EXCHANGES},
        }


def run_redis(workdir: Path, upstream: Any, per_instance: int, ticks: int) -> dict[str, Any]:
    from tests.fake_exchange import FakeExchange
    from tests.redis_server import RedisServer

    redis = RedisServer(workdir)
    redis.start()
    try:
        with FakeExchange() as fake, contextlib.ExitStack() as stack:
            servers = [
                stack.enter_context(serving(config(workdir, f"i{i}", upstream, fake, redis.url))) for i in range(3)
            ]
            for server in servers:
                wait_streams_up(server.port)
            fake.tick("kraken", "BTC/USD", BASE, 1.5)
            time.sleep(1.0)
            groups = [Clients(server.port, per_instance) for server in servers]
            try:
                for group in groups:
                    group.wait_primed()
                time.sleep(1.0)  # past the rate limit's gap after each client's catch-up event
                per_group, missing, _ = tick_and_collect(fake, groups, ticks, BASE)
            finally:
                for group in groups:
                    group.stop()
            return {
                "instances": 3,
                "clients_per_instance": per_instance,
                "ticks": ticks,
                "p50_ms": statistics.median(sum(per_group, [])),
                "p99_ms": percentile(sum(per_group, []), 99),
                "by_instance": [
                    {"holder": holder(server.port), "p50_ms": statistics.median(x), "p99_ms": percentile(x, 99)}
                    for server, x in zip(servers, per_group, strict=True)
                ],
                "missing": missing,
                "connections": {x: len(fake.connections(x)) for x in EXCHANGES},
                "open": {x: len(fake.connections(x, open_only=True)) for x in EXCHANGES},
            }
    finally:
        redis.stop()


# -- the report ---------------------------------------------------------------------------------------


def render(single: list[dict[str, Any]], redis: dict[str, Any] | None, machine: str) -> str:
    lines = [
        f"Machine: {machine}.",
        "",
        "| stream clients | tick → client p50 | p99 | max | missing | server CPU idle (10 s) | server CPU per tick "
        "| RSS empty → with clients | upstream connections (kraken, coinbase, binance) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in single:
        conns = ", ".join(str(r["connections"][x]) for x in EXCHANGES)
        lines.append(
            f"| {r['clients']:,} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.1f} ms | "
            f"{r['missing']} | {r['idle_cpu_s']:.3f} s | {r['cpu_per_tick_ms']:.0f} ms | "
            f"{r['rss_empty_mb']:.0f} → {r['rss_clients_mb']:.0f} MB | {conns} |"
        )
    if redis is not None:
        conns = ", ".join(str(redis["connections"][x]) for x in EXCHANGES)
        lines += [
            "",
            f"3 instances on one redis-server, {redis['clients_per_instance']:,} clients on each: tick → client "
            f"p50 {redis['p50_ms']:.1f} ms, p99 {redis['p99_ms']:.1f} ms over {redis['ticks']} ticks, "
            f"{redis['missing']} missing; upstream connections (kraken, coinbase, binance): {conns} in all.",
            "",
            "| instance | tick → client p50 | p99 |",
            "|---|---:|---:|",
        ]
        for i, one in enumerate(redis["by_instance"]):
            role = "lease holder (streams)" if one["holder"] else "follower (Redis pub/sub)"
            lines.append(f"| {i + 1}, {role} | {one['p50_ms']:.1f} ms | {one['p99_ms']:.1f} ms |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    import platform

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return (
        f"{os.cpu_count()} × {model.group(1).strip() if model else '?'}, Python {platform.python_version()}, "
        f"commit {commit.stdout.strip() or '?'}, {time.strftime('%Y-%m-%d', time.gmtime())}"
    )


def write_doc(block: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Live streams\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{block}{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 5000], help="clients, one run each")
    parser.add_argument("--ticks", type=int, default=10, help="ticks per run, 1 s apart")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--redis-clients", type=int, default=500, help="clients per instance with 3 instances")
    parser.add_argument("--no-redis", action="store_true", help="skip the 3-instance run")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--py-spy", type=Path, help="profile the server over the ticks of the largest run (collapsed stacks)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/PERFORMANCE.md")
    args = parser.parse_args()
    limit = raise_nofile()
    if args.client:
        client_process(*args.client)
        return
    if max(args.clients) * 2 + 200 > limit:
        raise SystemExit(f"open-file hard limit {limit}: too low for {max(args.clients)} clients")
    from tests.fake_upstream import FakeUpstream

    single: list[dict[str, Any]] = []
    redis: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as upstream:
        upstream.serve_default_coins()
        for n in args.clients:
            log(f"{n} clients on one instance ...")
            profile = args.py_spy if n == max(args.clients) else None
            single.append(run_single(Path(tmp), upstream, n, args.ticks, args.idle, profile))
            log(json.dumps(single[-1]))
        if not args.no_redis:
            log(f"3 instances on Redis, {args.redis_clients} clients each ...")
            redis = run_redis(Path(tmp), upstream, args.redis_clients, args.ticks)
            log(json.dumps(redis))
    block = render(single, redis, machine())
    print(block)
    if args.json:
        args.json.write_text(json.dumps({"single": single, "redis": redis}, indent=2))
    if not args.no_doc:
        write_doc(block)


if __name__ == "__main__":
    main()
