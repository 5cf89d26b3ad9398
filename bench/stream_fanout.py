"""Live fan-out: how long one hub.apply() takes to reach N event-stream clients, and what they cost the server.

The server is ticker's app under a real uvicorn (uvloop, httptools, as `ticker serve` runs it) on loopback,
in a child process, with live streams enabled, a fixed snapshot and no lifespan (no poller, nothing
upstream). The child drives its hub in-process: for each `tick N` line on stdin it applies one BTC tick
(price 90000 + N) and prints `applied N <time.monotonic()>`; `stats` prints its RSS and CPU seconds.
The parent opens N lean raw-socket SSE clients (asyncio streams, no HTTP library) to
/api/v1/stream?coins=BTC,ETH and notes time.monotonic() (system-wide on Linux) when each client reads
the `quotes` event carrying price 90000 + N. Latency = receipt - apply, so it includes the parent's own
reading of N sockets on the same 2 cores.

Not part of CI. Example:

    PYTHONPATH=$PWD python bench/stream_fanout.py --clients 100 5000 --updates 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

CONFIG = """
[market]
coins = ["BTC", "ETH"]
currencies = ["usd"]
[live]
enabled = true
max_updates_per_second = 4
"""
PRICE = re.compile(rb'"symbol":"BTC"[^}]*?"price":(\d+)')


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop, as `ticker serve` runs (uvicorn's loop "auto")."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


# -- the server (child) ---------------------------------------------------------------------------


def serve(port: int) -> None:
    import anyio
    import uvicorn

    from ticker.config import load_settings
    from ticker.live.hub import StreamState
    from ticker.models import ProviderStatus, Quote, Snapshot, utcnow
    from ticker.runtime import create_app
    from ticker.store import SnapshotStore
    from ticker.web.stream import EventStream

    raise_nofile()
    path = Path(tempfile.mkdtemp()) / "ticker.toml"
    path.write_text(CONFIG)
    settings = load_settings(path)
    now = utcnow()
    store = SnapshotStore()
    quotes = {
        ("BTC", "usd"): Quote("BTC", "usd", 90000.0, 1.0, now - timedelta(seconds=30), "coingecko"),
        ("ETH", "usd"): Quote("ETH", "usd", 3000.0, -1.0, now - timedelta(seconds=30), "coingecko"),
    }
    store._set_current(Snapshot(now, quotes, {"coingecko": ProviderStatus("ok", now)}))
    app = create_app(settings, store=store)
    stream = next(route.endpoint for route in app.routes if route.name == "stream")
    assert isinstance(stream, EventStream) and stream.live is not None
    hub = stream.live.hub
    hub.set_stream("kraken", StreamState("up", now, ("BTC", "ETH")))

    async def drive() -> None:
        while True:
            line = (await anyio.to_thread.run_sync(sys.stdin.readline)).split()
            if not line:
                return
            if line[0] == "tick":
                n = int(line[1])
                tick = Quote("BTC", "usd", 90000.0 + n, 1.0, utcnow(), "kraken")
                start = time.monotonic()
                hub.apply([tick])
                print(f"applied {n} {start}", flush=True)
            elif line[0] == "stats":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                rss = next(
                    int(x.split()[1])
                    for x in Path("/proc/self/status").read_text().splitlines()
                    if x.startswith("VmRSS")
                )
                print(f"stats {rss} {usage.ru_utime + usage.ru_stime}", flush=True)

    async def main() -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            backlog=8192,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve)
            await drive()
            stream._closing.set()  # what TickerServer does at shutdown (no lifespan here to hand it over)
            server.should_exit = True

    if os.environ.get("BENCH_PROFILE"):  # a cProfile of the server, written to this path at exit
        import cProfile

        cProfile.runctx("run_loop(main())", globals(), locals(), os.environ["BENCH_PROFILE"])
        return
    run_loop(main())


# -- the clients (parent) -------------------------------------------------------------------------


@dataclass
class Client:
    got: dict[int, float] = field(default_factory=dict)  # tick number -> receipt time
    primed: asyncio.Event = field(default_factory=asyncio.Event)


async def client(port: int, me: Client, stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /api/v1/stream?coins=BTC,ETH HTTP/1.1\r\nHost: bench\r\n\r\n")
    await writer.drain()
    while not stop.is_set():
        chunk = await reader.read(65536)
        if not chunk:
            break
        if b"event: prices" in chunk:
            me.primed.set()
        if b"event: quotes" in chunk:
            now = time.monotonic()
            for match in PRICE.finditer(chunk.split(b"event: quotes", 1)[1]):
                me.got.setdefault(int(match.group(1)) - 90000, now)
    writer.close()


class Server:
    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        self.port = port

    def ask(self, line: str) -> list[str]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def stats(self) -> tuple[float, float]:
        _, rss, cpu = self.ask("stats")
        return int(rss) / 1024, float(cpu)

    def stop(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run(n: int, updates: int, idle: float) -> None:
    server = Server(free_port())
    try:
        wait_listening(server.port)
        rss0, _ = server.stats()
        stop = asyncio.Event()
        clients = [Client() for _ in range(n)]
        tasks = []
        for batch in range(0, n, 500):  # connect in batches: the listen backlog
            for me in clients[batch : batch + 500]:
                tasks.append(asyncio.create_task(client(server.port, me, stop)))
            await asyncio.sleep(0.2)
        await asyncio.wait_for(asyncio.gather(*(me.primed.wait() for me in clients)), 120)
        rss_idle, cpu_a = server.stats()
        await asyncio.sleep(idle)
        _, cpu_b = server.stats()
        applied: dict[int, float] = {}
        for k in range(1, updates + 1):
            _, number, at = await asyncio.to_thread(server.ask, f"tick {k}")
            applied[int(number)] = float(at)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sum(k in me.got for me in clients) < n:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # past the 1/rate gap, so every update is its own event
        rss_busy, cpu_c = server.stats()
        latencies = sorted((me.got[k] - applied[k]) * 1000 for me in clients for k in applied if k in me.got)
        missing = n * updates - len(latencies)
        busy_seconds = updates * 0.3
        print(
            f"{n:>5} clients: apply->receipt p50 {statistics.median(latencies):.1f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms, max {latencies[-1]:.1f} ms, missing {missing}; "
            f"server RSS {rss0:.0f} MB empty, {rss_idle:.0f} MB with clients, {rss_busy:.0f} MB after updates; "
            f"CPU {cpu_b - cpu_a:.3f} s over {idle:.0f} s idle, {(cpu_c - cpu_b) / updates * 1000:.0f} ms per update "
            f"(over {updates} updates, {busy_seconds:.0f} s and more)"
        )
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 5000])
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    args = parser.parse_args()
    raise_nofile()
    if args.serve:
        serve(args.serve)
        return
    for n in args.clients:
        run_loop(run(n, args.updates, args.idle))


if __name__ == "__main__":
    main()
