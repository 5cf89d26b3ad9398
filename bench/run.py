#!/usr/bin/env python3
"""The ticker benchmark: throughput and latency against a bare Starlette baseline, memory, start-up, poller cost.

    python3 bench/run.py                       # everything, default settings (5 to 10 minutes)
    python3 bench/run.py --duration 5 --rounds 3 --connections 64
    python3 bench/run.py --parts http,ready    # only some parts (the doc is then left alone)

It re-executes itself under the project's .venv (created by `python3 run.py ticker --version`
if missing) and installs wrk with apt-get if it is not on PATH. What it measures:

http    bench/baseline_app.py and `ticker serve --demo` (11 coins, interval 60 s), both running under
        the same uvicorn settings, each on its own loopback port. wrk (-t1 -c64 --latency) runs
        baseline -> /api/v1/prices -> /widget -> /widget with If-None-Match (304) -> control ->
        baseline ... for --rounds rounds; the report gives the median of the rounds. The control
        (/mirror on the baseline process) replays /widget's exact bytes from a raw ASGI callable.
        A run during which other processes took more than --quiet-cpus is repeated.
rss     keeps loading ticker until it has served --rss-requests requests (1,000,000), then reads
        VmRSS of the `ticker serve` process.
ready   wall time from Popen to the first 200 from /readyz (polled every 10 ms), for fresh
        `ticker serve --demo` processes, and once against a local fake CoinGecko.
poller  in process: Poller.run_once() over each provider alone at 11, 100, 250 and 1,000 coins, with
        httpx.MockTransport answering in the provider's real response shape: CPU time and upstream
        requests per round, against ceil(coins / batch_size).
history the history store (bench/history_store.py): append cost per round at 250 coins against the cost
        of building the round's snapshot, and bytes per coin-year, for SQLite and Redis.

The figures are printed and, when every part ran, written between the markers in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"


def _reexec_in_venv() -> None:
    """Run under the project's virtualenv, whatever interpreter started us."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PYTHON.exists():
        print("bench: no .venv yet; creating it with `python3 run.py ticker --version` ...", file=sys.stderr)
        subprocess.run([sys.executable, str(ROOT / "run.py"), "ticker", "--version"], check=True)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


if __name__ == "__main__":
    _reexec_in_venv()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import http.client  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from types import MappingProxyType  # noqa: E402
from typing import Any  # noqa: E402

sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import history_store  # noqa: E402
import httpx  # noqa: E402

DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN = "<!-- bench/run.py results: begin (generated; edit the text around it) -->"
END = "<!-- bench/run.py results: end -->"
TICKER = VENV / "bin" / "ticker"
BASELINE_APP = ROOT / "bench" / "baseline_app.py"
INTERVAL = 60  # ticker's poll interval in the benchmark: a new snapshot (and new ETag) once a minute
COIN_COUNTS = (11, 100, 250, 1000)
PARTS = ("http", "rss", "ready", "poller", "history")
PROVIDER_NAMES = ("coingecko", "coinpaprika", "kraken", "binance", "coinbase")

# The targets of the issue.
TARGET_RATIO = 0.85
TARGET_P99_MS = 20.0
TARGET_RSS_MB = 100.0
TARGET_READY_S = 1.5

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine


def commit() -> str:
    """The checked-out commit, `+dirty` if ticker/ has uncommitted changes: the code the figures are for."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "ticker"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "?"
    return (head.stdout.strip() or "?") + ("+dirty" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"^MemTotal:\s+(\d+)", meminfo, re.M).group(1))  # type: ignore[union-attr]
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "?"
    wrk = shutil.which("wrk")
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines() if wrk else []
    versions = {name: importlib.metadata.version(name) for name in ("uvicorn", "starlette", "uvloop", "httptools")}
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else "?",
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"Debian {debian}, Linux {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "ticker": importlib.metadata.version("ticker"),
        "commit": commit(),
        "wrk": wrk_version[0].split(" [")[0] if wrk_version else "?",
        "loadavg_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------- wrk


def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    log("wrk not found: installing it with apt-get (Debian package 'wrk') ...")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    apt = [*sudo, "apt-get", "-o", "DPkg::Lock::Timeout=300"]
    subprocess.run([*apt, "update", "-qq"], check=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*apt, "install", "-y", "-qq", "wrk"], check=True, env=env)
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("bench: apt-get install wrk did not put wrk on PATH")
    return wrk


@dataclass
class Run:
    """One wrk run and what the machine did meanwhile."""

    target: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    bytes_read: float
    errors: int  # socket errors plus non-2xx/3xx answers
    server_cpu_s: float  # the server process's user+system CPU during the run
    wrk_cpu_s: float
    other_cpu_s: float  # everything else on the machine: other processes, the kernel's other work
    repeats: int = 0  # how many earlier attempts were thrown away because other jobs were busy

    @property
    def other_load(self) -> float:
        return self.other_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_response(self) -> float:
        return self.bytes_read / self.requests if self.requests else 0.0

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else 0.0


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_UNITS_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_wrk(output: str) -> dict[str, float]:
    def latency(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        if not found:
            raise ValueError(f"no {pct}% line in wrk output:\n{output}")
        return float(found.group(1)) * _UNITS_MS[found.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)([KMGT]?B) read", output, re.M)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{output}")
    errors = 0
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return {
        "rps": float(rps.group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "requests": int(total.group(1)),
        "seconds": float(total.group(2)) * _UNITS_MS[total.group(3)] / 1000,
        "bytes_read": float(total.group(4)) * _UNITS_BYTES[total.group(5)],
        "errors": errors,
    }


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all CPUs; /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _process_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet(args: argparse.Namespace) -> float:
    """Wait (up to --quiet-wait s) until the machine is nearly idle: other jobs would steal the server's CPU.

    Returns the seconds waited. Only the start of a run is guarded; the `other load` column shows what
    the rest of the machine did during it.
    """
    started = time.monotonic()
    while args.quiet_cpus > 0:
        busy, begun = _busy_seconds(), time.monotonic()
        time.sleep(0.5)
        load = (_busy_seconds() - busy) / (time.monotonic() - begun)
        if load <= args.quiet_cpus:
            break
        if time.monotonic() - started > args.quiet_wait:
            log(f"machine still busy ({load:.2f} CPUs) after {args.quiet_wait:g} s; measuring anyway")
            break
    return time.monotonic() - started


def wrk(
    target: str,
    url: str,
    server_pid: int,
    args: argparse.Namespace,
    *,
    headers: Sequence[str] = (),
    seconds: float | None = None,
) -> Run:
    duration = max(round(seconds if seconds is not None else args.duration), 1)  # wrk takes whole seconds
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    busy, server, children, own = _busy_seconds(), _process_seconds(server_pid), _children_seconds(), _own_seconds()
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    busy = _busy_seconds() - busy
    server = _process_seconds(server_pid) - server
    children = _children_seconds() - children
    own = _own_seconds() - own
    parsed = parse_wrk(done.stdout)
    return Run(
        target=target,
        server_cpu_s=server,
        wrk_cpu_s=children,
        other_cpu_s=max(busy - server - children - own, 0.0),
        **parsed,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(
    port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 2.0
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    started: float  # perf_counter just before Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until(self, path: str, timeout: float = 30.0, every: float = 0.01) -> float:
        """Poll `path` until it answers 200; the seconds since Popen."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                status, _, _ = http_get(self.port, path, timeout=1.0)
                if status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(every)
        raise RuntimeError(f"{self.name}: {path} not 200 after {timeout} s:\n{self.log_path.read_text()}")

    def server_pid(self) -> int:
        """The pid of the process that runs uvicorn, checked against what uvicorn logged where it can be."""
        pid = self.proc.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if self.name == "ticker":
            # `ticker serve` runs uvicorn.run() in-process: uvicorn logs its own pid.
            logged = re.search(r"Started server process \[(\d+)\]", self.log_path.read_text())
            if not logged or int(logged.group(1)) != pid or b"serve" not in cmdline:
                raise RuntimeError(f"ticker serve pid {pid} is not the uvicorn process (log: {logged}, {cmdline})")
        return pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(name: str, command: list[str], port: int, workdir: Path) -> Server:
    log_path = workdir / f"{name}-{port}.log"
    with log_path.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
    return Server(name, proc, port, log_path, started)


def start_baseline(workdir: Path, mirror: str | None = None) -> Server:
    port = free_port()
    command = [str(VENV_PYTHON), str(BASELINE_APP), "--port", str(port), *(["--mirror", mirror] if mirror else [])]
    return start("baseline", command, port, workdir)


def ticker_config(directory: Path, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ticker.toml"
    config.write_text(
        f"""# bench/run.py: the default 11 coins and usd; one snapshot a minute.
[poller]
interval_seconds = {INTERVAL}
{extra}
[cache]
snapshot_path = "{directory / "state" / "snapshot.json"}"
"""
    )
    return config


def start_ticker(workdir: Path, config: Path, *, demo: bool = True) -> Server:
    port = free_port()
    command = [str(TICKER), "serve", "--config", str(config), "--port", str(port), *(["--demo"] if demo else [])]
    return start("ticker", command, port, workdir)


def rss_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1)) for key in ("VmRSS", "VmHWM")}  # type: ignore[union-attr]


# --------------------------------------------------------------------------- http + rss


def snapshot_age(port: int) -> float:
    status, _, body = http_get(port, "/readyz")
    age = json.loads(body).get("age_seconds")
    return float(age) if status == 200 and age is not None else 0.0


def quiet_window(port: int, seconds: float) -> None:
    """Wait, if need be, so that no poll (new snapshot, new ETag) lands in the next `seconds`."""
    if seconds + 2 >= INTERVAL:
        return  # runs this long always span a poll
    age = snapshot_age(port)
    if age + seconds + 1.0 <= INTERVAL:
        return
    time.sleep(max(INTERVAL - age, 0.0))
    deadline = time.monotonic() + 15
    while snapshot_age(port) > 5 and time.monotonic() < deadline:
        time.sleep(0.1)


def check(port: int, path: str, expected: int, headers: dict[str, str] | None = None) -> dict[str, str]:
    status, response_headers, body = http_get(port, path, headers)
    if status != expected:
        raise RuntimeError(f"GET {path} {headers or ''} answered {status}, expected {expected}: {body[:200]!r}")
    return {name.lower(): value for name, value in response_headers.items()}


def current_etag(port: int) -> str:
    """The ETag /widget has now, checked to really give a 304."""
    etag = check(port, "/widget", 200)["etag"]
    check(port, "/widget", 304, {"If-None-Match": etag})
    return etag


def ticker_run(target: str, ticker: Server, pid: int, args: argparse.Namespace, seconds: float | None = None) -> Run:
    duration = args.duration if seconds is None else seconds
    quiet_window(ticker.port, duration)
    if target == "304":
        etag = current_etag(ticker.port)
        return wrk(target, f"{ticker.url}/widget", pid, args, headers=[f"If-None-Match: {etag}"], seconds=seconds)
    path = {"prices": "/api/v1/prices", "widget": "/widget"}[target]
    return wrk(target, f"{ticker.url}{path}", pid, args, seconds=seconds)


TARGETS = ("baseline", "prices", "widget", "304", "mirror")


def bench_http(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ticker = start_ticker(workdir, ticker_config(workdir / "ticker"))
    baseline: Server | None = None
    try:
        ticker.wait_until("/readyz")
        # The control (/mirror) replays the /widget answer ticker gives now: same bytes, no ticker code.
        baseline = start_baseline(workdir, mirror=f"{ticker.url}/widget")
        baseline.wait_until("/")
        base_pid, ticker_pid = baseline.server_pid(), ticker.server_pid()
        check(baseline.port, "/", 200)
        check(ticker.port, "/api/v1/prices", 200)
        widget_bytes = http_get(ticker.port, "/widget")[2]
        if len(http_get(baseline.port, "/mirror")[2]) != len(widget_bytes):
            raise RuntimeError("the control /mirror does not answer the same body as ticker's /widget")
        current_etag(ticker.port)
        rss_start = rss_kb(ticker_pid)
        log(f"baseline on :{baseline.port} (pid {base_pid}), ticker on :{ticker.port} (pid {ticker_pid}); all 200/304")

        served = 0  # requests ticker answered, from every wrk run against it (repeated ones too)

        def one(target: str, seconds: float | None = None, *, quiet: bool = True) -> Run:
            nonlocal served
            if quiet:
                wait_for_quiet(args)
            if target in ("baseline", "mirror"):
                path = "/" if target == "baseline" else "/mirror"
                return wrk(target, f"{baseline.url}{path}", base_pid, args, seconds=seconds)
            run = ticker_run(target, ticker, ticker_pid, args, seconds)
            served += run.requests
            return run

        def measured(target: str) -> Run:
            """A run during which other jobs took more than --quiet-cpus is repeated (--repeats times at most)."""
            best: Run | None = None
            for attempt in range(args.repeats + 1):
                run = one(target)
                run.repeats = attempt
                if best is None or run.other_load < best.other_load:
                    best = run
                if run.other_load <= args.quiet_cpus:
                    break
                if attempt < args.repeats:
                    log(f"{target}: other processes took {run.other_load:.2f} CPUs during the run; measuring again")
            assert best is not None
            return best

        for target in TARGETS:
            one(target, min(2, args.duration), quiet=False)  # warm-up
        runs: list[Run] = []
        for number in range(1, args.rounds + 1):
            for target in TARGETS:
                run = measured(target)
                runs.append(run)
                log(
                    f"round {number}/{args.rounds} {target:8} {run.rps:9.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                    f"p99 {run.p99_ms:6.2f} ms  server {run.server_us_per_request:5.1f} us/req  "
                    f"other load {run.other_cpu_s / run.seconds:.2f} CPUs  {run.bytes_per_response:.0f} B/resp"
                    + (f"  ERRORS {run.errors}" if run.errors else "")
                )
        for run in runs:
            if run.target == "304" and run.bytes_per_response > 2000:
                raise RuntimeError(f"304 run read {run.bytes_per_response:.0f} B per response: not 304s")

        rss_result: dict[str, Any] | None = None
        if "rss" in args.parts:
            topups: list[Run] = []
            rotation = ("prices", "widget", "304")
            while served < args.rss_requests:
                rate = statistics.median(r.rps for r in runs if r.target not in ("baseline", "mirror"))
                seconds = min(max(math.ceil((args.rss_requests - served) / rate) + 1, 2), 30)
                topups.append(one(rotation[len(topups) % 3], seconds, quiet=False))
                log(f"rss: {served:,} requests served by ticker so far")
            time.sleep(0.5)
            after = rss_kb(ticker_pid)
            rss_result = {
                "requests": served,
                "ticker_rss_kb_ready": rss_start["VmRSS"],
                "ticker_rss_kb": after["VmRSS"],
                "ticker_hwm_kb": after["VmHWM"],
                "baseline_rss_kb": rss_kb(base_pid)["VmRSS"],
                "errors": sum(r.errors for r in topups),
                "pid": ticker_pid,
            }
            log(f"rss after {served:,} requests: {after['VmRSS'] / 1024:.1f} MB (peak {after['VmHWM'] / 1024:.1f} MB)")
        return {"runs": [asdict(r) for r in runs], "rss": rss_result, "ticker_pid": ticker_pid}
    finally:
        ticker.stop()
        if baseline is not None:
            baseline.stop()


# --------------------------------------------------------------------------- time to ready


def bench_ready(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    demo = []
    for attempt in range(args.ready_runs):
        directory = workdir / f"ready-{attempt}"
        server = start_ticker(directory.parent, ticker_config(directory), demo=True)
        try:
            demo.append(server.wait_until("/readyz"))
        finally:
            server.stop()
        log(f"ready (demo) #{attempt + 1}: {demo[-1]:.3f} s")

    from tests.fake_upstream import FakeUpstream
    from ticker.config import default_settings

    coins = default_settings().market.coins
    with FakeUpstream() as fake:
        fake.coingecko.prices = {coin.ids["coingecko"]: {"usd": (1.0 + i, 0.5)} for i, coin in enumerate(coins)}
        directory = workdir / "ready-fake"
        extra = f"""providers = ["coingecko"]
[providers.coingecko]
base_url = "{fake.coingecko_url}"
requests_per_minute = 600
"""
        server = start_ticker(workdir, ticker_config(directory, extra), demo=False)
        try:
            fake_seconds = server.wait_until("/readyz")
            upstream_requests = fake.coingecko.requests
        finally:
            server.stop()
    log(f"ready (fake CoinGecko): {fake_seconds:.3f} s, {upstream_requests} upstream requests")
    return {"demo": demo, "fake_coingecko": fake_seconds, "fake_upstream_requests": upstream_requests}


# --------------------------------------------------------------------------- poller


def synthetic_coins(count: int) -> list[Any]:
    from ticker.models import Coin

    return [
        Coin(
            symbol=f"C{i}",
            name=f"Coin {i}",
            ids=MappingProxyType(
                {
                    "coingecko": f"coin-{i}",
                    "coinpaprika": f"c{i}-coin",
                    "kraken": f"C{i}USD",
                    "binance": f"C{i}USDT",
                    "coinbase": f"C{i}-USD",
                }
            ),
        )
        for i in range(count)
    ]


async def _noop_sleep(seconds: float) -> None:
    return None


def expected_requests(provider: Any, coins: int, currencies: int) -> int:
    if provider.name == "coinpaprika":
        return math.ceil(currencies / 3)  # /tickers has no id filter: one call per 3 quote currencies
    return math.ceil(coins / int(provider.batch_size))


async def _poller_case(name: str, count: int, rounds: int, workdir: Path) -> dict[str, Any]:
    from upstream_shapes import handler

    from tests.providers.helpers import make_provider
    from ticker.config import ProviderSettings
    from ticker.poller import Poller
    from ticker.providers import PROVIDERS
    from ticker.store import SnapshotStore

    coins = synthetic_coins(count)
    answer, counts = handler(name, [coin.ids["coinpaprika"] for coin in coins])
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        # No budget: count what a round needs, not what a budget allows; no pacing sleeps: only idle wall time.
        provider = make_provider(PROVIDERS[name], client, ProviderSettings(), budget=None, sleep=_noop_sleep)
        path = workdir / "poller" / f"{name}-{count}.json"  # the snapshot is written each round, as in production
        store = SnapshotStore(snapshot_path=path)
        poller = Poller([provider], store, coins, ["usd"], interval=INTERVAL, max_jump_pct=50.0)

        async def one_round() -> tuple[float, float, dict[str, int]]:
            counts.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            snapshot = await poller.run_once()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            priced = sum(1 for quote in snapshot.quotes.values() if quote.source == name)
            if priced != count:
                raise RuntimeError(f"{name} at {count} coins priced {priced}")
            return cpu, wall, dict(counts)

        _, _, first = await one_round()
        measured = [await one_round() for _ in range(rounds)]
    requests = [sum(c.values()) for _, _, c in measured]
    first_total = sum(first.values())
    return {
        "provider": name,
        "coins": count,
        "batch_size": provider.batch_size,
        "expected": expected_requests(provider, count, 1),
        "requests": statistics.median(requests),
        "requests_all_equal": len(set(requests)) == 1,
        "first_round_requests": first_total,
        "first_round_extra": {p: n for p, n in first.items() if p not in measured[0][2]},
        "cpu_ms": statistics.median(cpu for cpu, _, _ in measured) * 1000,
        "wall_ms": statistics.median(wall for _, wall, _ in measured) * 1000,
    }


def bench_poller(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    logging.getLogger("ticker").setLevel(logging.WARNING)
    results = []
    for name in PROVIDER_NAMES:
        for count in COIN_COUNTS:
            result = asyncio.run(_poller_case(name, count, args.poller_rounds, workdir))
            results.append(result)
            log(
                f"poller {name:11} {count:5} coins: {result['requests']:g} requests/round "
                f"(ceil rule {result['expected']}), {result['cpu_ms']:.1f} ms CPU/round"
            )
    return results


# --------------------------------------------------------------------------- report


def _median(runs: list[dict[str, Any]], target: str, key: str) -> float:
    values = [float(run[key]) for run in runs if run["target"] == target]
    return statistics.median(values)


def _per_run(runs: list[dict[str, Any]], target: str, fn: Any) -> float:
    return statistics.median(float(fn(run)) for run in runs if run["target"] == target)


def _ok(met: bool) -> str:
    return "met" if met else "**missed**"


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    m = results["machine"]
    out: list[str] = []
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    changed = "" if m["commit_end"] == m["commit"] else f" (**{m['commit_end']} by the end: code changed meanwhile**)"
    out += [
        f"Taken {m['date']} on {m['cpus']} × {m['cpu_model']}, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}, {versions}; {m['wrk']}; ticker {m['ticker']} at commit {m['commit']}{changed}.",
        f"Load average at start {m['loadavg_start'][0]:.2f}, at end {m['loadavg_end'][0]:.2f}.",
        "",
        f"Command: `python3 bench/run.py --duration {args.duration:g} --rounds {args.rounds} "
        f"--connections {args.connections}` (wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s; "
        f"median of {args.rounds} alternating rounds).",
        "",
    ]
    checks: list[tuple[str, str, str]] = []  # target, result, verdict

    http = results.get("http")
    if http:
        runs = http["runs"]
        base = _median(runs, "baseline", "rps")

        def us_per_request(run: dict[str, Any]) -> float:
            return float(run["server_cpu_s"] / run["requests"] * 1e6)

        base_us = _per_run(runs, "baseline", us_per_request)
        out += [
            "| endpoint | req/s | p50 ms | p99 ms | ratio to baseline | server CPU µs/req | CPU ratio | bytes/resp"
            " | other load (CPUs) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        labels = {
            "baseline": "baseline (bare Starlette, 264 B JSON)",
            "prices": "`/api/v1/prices`",
            "widget": "`/widget`",
            "304": "`/widget` 304 (If-None-Match)",
            "mirror": "control: `/widget`'s bytes from a bare ASGI app",
        }
        for target in TARGETS:
            rps = _median(runs, target, "rps")
            us = _per_run(runs, target, us_per_request)
            out.append(
                f"| {labels[target]} | {rps:,.0f} | {_median(runs, target, 'p50_ms'):.2f} | "
                f"{_median(runs, target, 'p99_ms'):.2f} | {rps / base:.2f} | {us:.1f} | {base_us / us:.2f} | "
                f"{_per_run(runs, target, lambda r: r['bytes_read'] / r['requests']):,.0f} | "
                f"{_per_run(runs, target, lambda r: r['other_cpu_s'] / r['seconds']):.2f} |"
            )
        out += ["", "Per round (req/s; p99 ms):", ""]
        out += ["| round | " + " | ".join(TARGETS) + " |", "|---|" + "---:|" * len(TARGETS)]
        for number in range(args.rounds):
            cells = []
            for target in TARGETS:
                run = [r for r in runs if r["target"] == target][number]
                busy = run["other_cpu_s"] / run["seconds"] > args.quiet_cpus
                cells.append(f"{run['rps']:,.0f}; {run['p99_ms']:.1f}" + (" *" if busy else ""))
            out.append(f"| {number + 1} | " + " | ".join(cells) + " |")
        repeated = sum(r["repeats"] for r in runs)
        still = sum(1 for r in runs if r["other_cpu_s"] / r["seconds"] > args.quiet_cpus)
        out += [
            "",
            f"Runs repeated because other processes took more than {args.quiet_cpus:g} CPUs meanwhile: {repeated}."
            f" Runs still contended after {args.repeats} repeats (marked *, the least contended attempt is kept):"
            f" {still} of {len(runs)}.",
        ]
        widget_rps, mirror_rps = _median(runs, "widget", "rps"), _median(runs, "mirror", "rps")
        widget_us, mirror_us = _per_run(runs, "widget", us_per_request), _per_run(runs, "mirror", us_per_request)
        out += [
            "",
            f"`/widget` against the control that sends its exact bytes and headers with no ticker code:"
            f" {widget_rps / mirror_rps:.2f} in req/s, {mirror_us / widget_us:.2f} in server CPU per request.",
        ]
        errors = sum(r["errors"] for r in runs)
        out += ["", f"wrk errors (socket errors and non-2xx/3xx answers) over all runs: {errors}.", ""]
        for target in ("prices", "widget"):
            ratio = _median(runs, target, "rps") / base
            verdict = _ok(ratio >= TARGET_RATIO) + ("" if ratio >= TARGET_RATIO else f" by {TARGET_RATIO - ratio:.2f}")
            cpu_ratio = base_us / _per_run(runs, target, us_per_request)
            measured = f"{ratio:.2f} (CPU ratio {cpu_ratio:.2f})"
            checks.append((f"{labels[target]} ≥ {TARGET_RATIO} × baseline req/s", measured, verdict))
        for target in ("prices", "widget", "304"):
            p99 = _median(runs, target, "p99_ms")
            verdict = _ok(p99 < TARGET_P99_MS) + ("" if p99 < TARGET_P99_MS else f" by {p99 - TARGET_P99_MS:.1f} ms")
            checks.append((f"p99 of {labels[target]} < {TARGET_P99_MS:g} ms", f"{p99:.2f} ms", verdict))

    rss = http.get("rss") if http else None
    if rss:
        mb = rss["ticker_rss_kb"] / 1024
        out += [
            f"Memory: `ticker serve` (pid checked against uvicorn's log) used"
            f" {rss['ticker_rss_kb_ready'] / 1024:.1f} MB RSS when ready and **{mb:.1f} MB** after serving"
            f" {rss['requests']:,} requests (peak {rss['ticker_hwm_kb'] / 1024:.1f} MB);"
            f" the baseline app: {rss['baseline_rss_kb'] / 1024:.1f} MB.",
            "",
        ]
        verdict = _ok(mb < TARGET_RSS_MB) + ("" if mb < TARGET_RSS_MB else f" by {mb - TARGET_RSS_MB:.1f} MB")
        checks.append((f"RSS < {TARGET_RSS_MB:g} MB after ≥ 1,000,000 requests", f"{mb:.1f} MB", verdict))

    ready = results.get("ready")
    if ready:
        demo = ready["demo"]
        out += [
            f"Start to ready (Popen → first `/readyz` 200, polled every 10 ms), {len(demo)} fresh"
            f" `ticker serve --demo`: median **{statistics.median(demo):.3f} s**, max {max(demo):.3f} s"
            f" ({', '.join(f'{s:.3f}' for s in demo)}). Against a local fake CoinGecko (a real HTTP round trip,"
            f" {ready['fake_upstream_requests']} upstream requests: /coins/markets and /simple/price):"
            f" {ready['fake_coingecko']:.3f} s.",
            "",
        ]
        worst = max(*demo, ready["fake_coingecko"])
        met = worst < TARGET_READY_S
        verdict = _ok(met) + ("" if met else f" by {worst - TARGET_READY_S:.2f} s")
        checks.append((f"ready < {TARGET_READY_S:g} s (worst start)", f"{worst:.3f} s", verdict))

    poller = results.get("poller")
    if poller:
        out += [
            "Poller, one provider alone, usd only, `Poller.run_once()` with httpx.MockTransport answering in the"
            f" provider's real response shape, budgets unlimited; median of {args.poller_rounds} rounds after one"
            " warm-up round:",
            "",
            "| provider (batch) | coins | upstream requests/round | expected | CPU ms/round | first round |",
            "|---|---:|---:|---:|---:|---|",
        ]
        mismatches = []
        for row in poller:
            extra = ", ".join(f"+{n} {path.rsplit('/', 1)[-1]}" for path, n in row["first_round_extra"].items())
            first = f"{row['first_round_requests']}" + (f" ({extra})" if extra else "")
            out.append(
                f"| {row['provider']} ({row['batch_size']:,}) | {row['coins']:,} | {row['requests']:g} | "
                f"{row['expected']} | {row['cpu_ms']:.1f} | {first} |"
            )
            if row["requests"] != row["expected"] or not row["requests_all_equal"]:
                mismatches.append(f"{row['provider']} at {row['coins']}")
        out.append("")
        checks.append(
            (
                "upstream requests per round = ceil(coins / batch limit)",
                f"{len(poller) - len(mismatches)} of {len(poller)} cases",
                _ok(not mismatches) + (f": {', '.join(mismatches)}" if mismatches else ""),
            )
        )

    if results.get("history"):
        out += history_store.render(results["history"])

    table = ["| target | measured | verdict |", "|---|---:|---|"]
    table += [f"| {name} | {value} | {verdict} |" for name, value, verdict in checks]
    return "\n".join([*table, "", *out]).rstrip() + "\n"


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## Figures\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{block}{END}{tail}")


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ticker benchmark (see docs/PERFORMANCE.md)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; the median is reported (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: 2 cores share server and wrk)")
    parser.add_argument("--rss-requests", type=int, default=1_000_000, help="requests before reading RSS")
    parser.add_argument("--ready-runs", type=int, default=5, help="fresh starts timed to /readyz (default 5)")
    parser.add_argument("--poller-rounds", type=int, default=5, help="measured poller rounds per case (default 5)")
    parser.add_argument(
        "--quiet-cpus",
        type=float,
        default=0.25,
        help="before each measured run, wait until the rest of the machine uses at most this many CPUs (0: off)",
    )
    parser.add_argument("--quiet-wait", type=float, default=60, help="longest wait for a quiet machine (s)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="times a run is repeated when other jobs took over --quiet-cpus"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset to run")
    history_store.add_arguments(parser, prefix="history-")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    args.parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    unknown = args.parts - set(PARTS)
    if unknown:
        parser.error(f"--parts: unknown {', '.join(sorted(unknown))}")
    if "rss" in args.parts:
        args.parts.add("http")  # the million requests start with the measured runs

    if args.parts & {"http", "rss"}:
        ensure_wrk()
    results: dict[str, Any] = {"machine": machine(), "args": {k: v for k, v in vars(args).items() if k != "json"}}
    results["args"]["parts"] = sorted(args.parts)
    with tempfile.TemporaryDirectory(prefix="ticker-bench-") as tmp:
        workdir = Path(tmp)
        if "http" in args.parts:
            results["http"] = bench_http(args, workdir)
        if "ready" in args.parts:
            results["ready"] = bench_ready(args, workdir)
        if "poller" in args.parts:
            results["poller"] = bench_poller(args, workdir)
        if "history" in args.parts:
            options = history_store.options_from(args, prefix="history-")
            results["history"] = asyncio.run(history_store.run_all(options, workdir, log))
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["machine"]["commit_end"] = commit()
    if results["machine"]["commit_end"] != results["machine"]["commit"]:
        log(f"the code changed during the run ({results['machine']['commit']} -> {results['machine']['commit_end']})")

    block = render(results, args)
    print("\n" + block)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.no_doc:
        pass
    elif args.parts == set(PARTS):
        write_doc(block)
        print(f"bench: figures written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    else:
        print("bench: only some parts ran; docs/PERFORMANCE.md left as it is", file=sys.stderr)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
