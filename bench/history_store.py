#!/usr/bin/env python3
"""History store figures: the cost of appending a round, and bytes per coin-year.

    python3 bench/history_store.py                 # 2 to 4 minutes; `bench/run.py --parts history` runs the same
    python3 bench/history_store.py --coins 250 --rounds 200 --prefill-rounds 1440 --size-coins 10

append  250 coins in 1 currency, one `append` per round (a quote of every coin), on a store already holding
        --prefill-rounds such rounds (a day: 1,440); the median of --rounds rounds, wall and CPU ms per round,
        for SQLite (a file in a temporary directory), Redis (a local redis-server on a free port, when
        installed; its own CPU read from /proc) and memory. Two baselines from the same run and the same
        quotes: building and serialising the round's snapshot (what the poller and SnapshotStore.put do
        with every round), and inserting the quotes into a plain dict.
size    --size-coins coins in 1 currency through a simulated year, and separately two years
        (tests/history/simulation.py: a quote a minute for the last 48 hours and coarser before, so every
        bucket of every tier is filled; pruned at the end of each day): the SQLite file's size after closing,
        per coin, and what the second year adds; for Redis, MEMORY USAGE of the history keys per coin.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve():
    python = VENV / "bin" / "python"
    if not python.exists():
        sys.exit("bench: no .venv yet; run `python3 run.py ticker --version` first")
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])

import argparse  # noqa: E402
import asyncio  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

sys.path[:0] = [str(ROOT)]

from tests.history.simulation import Series, days  # noqa: E402
from ticker.history.base import Tick  # noqa: E402
from ticker.history.memory import MemoryHistory  # noqa: E402
from ticker.history.rollup import DAY  # noqa: E402
from ticker.history.sqlite import SqliteHistory  # noqa: E402
from ticker.models import Quote, Snapshot  # noqa: E402

NOW = 20_961 * DAY + 18 * 3600  # a fixed simulated time: the figures do not depend on the date they were taken
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def round_ticks(coins: int, at: float) -> list[Tick]:
    return [Tick(f"C{i}", "usd", at, 1000.0 + i + (at % 977) / 1000) for i in range(coins)]


def snapshot_baseline(ticks: Sequence[Tick]) -> float:
    """Seconds to build and serialise the round's snapshot (the same quotes), as the poller and store do."""
    started = time.perf_counter()
    moment = datetime.fromtimestamp(ticks[0].at, UTC)
    quotes = {(t.symbol, t.currency): Quote(t.symbol, t.currency, t.price, 1.5, moment, "coingecko") for t in ticks}
    Snapshot(moment, quotes).to_json()
    return time.perf_counter() - started


def dict_baseline(ticks: Sequence[Tick]) -> float:
    started = time.perf_counter()
    table: dict[tuple[str, str, float], float] = {}
    for t in ticks:
        table[(t.symbol, t.currency, t.at)] = t.price
    return time.perf_counter() - started


async def append_case(name: str, store: Any, args: argparse.Namespace, server_pid: int | None = None) -> dict[str, Any]:
    at = NOW - (args.prefill_rounds + args.rounds) * 60.0
    for _ in range(args.prefill_rounds):
        await store.append(round_ticks(args.coins, at))
        at += 60.0
    walls, cpus, server, snapshots, dicts = [], [], [], [], []
    for _ in range(args.rounds):
        ticks = round_ticks(args.coins, at)
        snapshots.append(snapshot_baseline(ticks))
        dicts.append(dict_baseline(ticks))
        server_before = process_cpu(server_pid) if server_pid else 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        await store.append(ticks)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        server.append(process_cpu(server_pid) - server_before if server_pid else 0.0)
        at += 60.0
    await store.close()
    result = {
        "backend": name,
        "wall_ms": statistics.median(walls) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
        "snapshot_ms": statistics.median(snapshots) * 1000,
        "dict_ms": statistics.median(dicts) * 1000,
    }
    if server_pid:
        result["server_cpu_ms"] = sum(server) / len(server) * 1000  # clock ticks are 10 ms: the mean
    return result


async def simulate(store: Any, coins: list[Series], years: int) -> None:
    start = NOW - years * 365 * DAY
    keep = {coin.symbol for coin in coins}
    for day_end, batch in days(start, NOW, coins):
        if NOW - day_end < 2 * DAY:
            for one_round in batch:
                await store.append(one_round)
        else:
            await store.append([tick for one_round in batch for tick in one_round])
        await store.prune(keep, day_end)


def size_coins(count: int) -> list[Series]:
    return [Series(f"C{i}", 100.0 + i, seed=i) for i in range(count)]


async def sqlite_size(workdir: Path, coins: int, years: int) -> dict[str, float]:
    path = workdir / f"size-{years}y.sqlite3"
    store = await SqliteHistory.open(path)
    await simulate(store, size_coins(coins), years)
    await store.close()
    return {"bytes_per_coin": path.stat().st_size / coins}


async def redis_size(url: str, coins: int, years: int) -> dict[str, float]:
    from redis.asyncio import Redis

    from ticker.history.redis import RedisHistory

    client = Redis.from_url(url)
    namespace = f"size{years}"
    store = RedisHistory(client, namespace)
    await simulate(store, size_coins(coins), years)
    total = 0
    async for key in client.scan_iter(match=f"{namespace}:history:*"):
        total += int(await client.memory_usage(key, samples=0) or 0)
    await client.aclose()
    return {"bytes_per_coin": total / coins}


def with_redis(workdir: Path) -> Any:
    """A local redis-server (tests/redis_server.py), or None when it is not installed."""
    if shutil.which("redis-server") is None:
        return None
    from tests.redis_server import RedisServer

    server = RedisServer(workdir)
    server.start()
    return server


@dataclass(frozen=True)
class Options:
    coins: int = 250  # per round in the append case
    rounds: int = 200  # measured append rounds
    prefill_rounds: int = 1440  # rounds stored before measuring: a day
    size_coins: int = 10  # coins in the size simulation


async def run_all(options: Options, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    server = with_redis(workdir)
    cases: list[tuple[str, Callable[[], Awaitable[Any]], int | None]] = [
        ("sqlite", lambda: SqliteHistory.open(workdir / "append.sqlite3"), None),
        ("memory", lambda: _ready(MemoryHistory()), None),
    ]
    if server is not None:
        from redis.asyncio import Redis

        from ticker.history.redis import RedisHistory

        assert server.proc is not None
        pid = server.proc.pid
        cases.insert(
            1, ("redis", lambda: _ready(RedisHistory(Redis.from_url(server.url), "bench", owns_client=True)), pid)
        )
    results: dict[str, Any] = asdict(options)
    try:
        results["append"] = []
        for name, make, pid in cases:
            result = await append_case(name, await make(), options, pid)
            results["append"].append(result)
            log(f"history append {name:6}: {result['wall_ms']:.2f} ms/round wall, {result['cpu_ms']:.2f} ms CPU")
        results["size"] = {"coins": options.size_coins}
        for years in (1, 2):
            results["size"][f"sqlite_{years}y"] = await sqlite_size(workdir, options.size_coins, years)
            if server is not None:
                results["size"][f"redis_{years}y"] = await redis_size(server.url, options.size_coins, years)
            log(f"history size {years} y: {results['size'][f'sqlite_{years}y']['bytes_per_coin']:,.0f} B/coin (SQLite)")
    finally:
        if server is not None:
            server.stop()
    return results


async def _ready(store: Any) -> Any:
    return store


def render(results: dict[str, Any]) -> list[str]:
    """The figures as Markdown lines (bench/run.py puts them in docs/PERFORMANCE.md)."""
    out = [
        f"History store, append: {results['coins']} coins × 1 currency, one `append` per round on a store holding"
        f" {results['prefill_rounds']:,} such rounds; median of {results['rounds']} rounds. Baselines from the same"
        " rounds: building and serialising the round's snapshot, and a plain dict insert of its quotes.",
        "",
        "| backend | wall ms/round | CPU ms/round | Redis server CPU ms/round | × snapshot build | × dict insert |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["append"]:
        server = f"{row['server_cpu_ms']:.2f}" if "server_cpu_ms" in row else "—"
        out.append(
            f"| {row['backend']} | {row['wall_ms']:.2f} | {row['cpu_ms']:.2f} | {server} | "
            f"{row['wall_ms'] / row['snapshot_ms']:.2f} | {row['wall_ms'] / row['dict_ms']:.0f} |"
        )
    base = results["append"][0]
    out += [
        "",
        f"Baselines: snapshot build {base['snapshot_ms']:.2f} ms, dict insert {base['dict_ms'] * 1000:.0f} µs"
        " per round.",
        "",
    ]
    size = results["size"]
    one, two = size["sqlite_1y"]["bytes_per_coin"], size["sqlite_2y"]["bytes_per_coin"]
    line = (
        f"History size, {size['coins']} coins × 1 currency, simulated with every bucket filled: SQLite"
        f" **{one / 1e6:.2f} MB per coin-year** (file size after a year), {(two - one) / 1e3:,.0f} KB per further"
        " year (after two years:"
        f" {two / 1e6:.2f} MB per coin)"
    )
    if "redis_1y" in size:
        r1, r2 = size["redis_1y"]["bytes_per_coin"], size["redis_2y"]["bytes_per_coin"]
        line += f"; Redis (MEMORY USAGE) {r1 / 1e6:.2f} MB per coin-year, {(r2 - r1) / 1e3:,.0f} KB per further year"
    out += [line + ".", ""]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="history store benchmark (see docs/PERFORMANCE.md)")
    add_arguments(parser)
    options = options_from(parser.parse_args(argv))
    with tempfile.TemporaryDirectory(prefix="ticker-bench-history-") as tmp:
        results = asyncio.run(run_all(options, Path(tmp), lambda m: print(m, file=sys.stderr, flush=True)))
    print("\n".join(render(results)))
    return 0


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """This benchmark's options (bench/run.py adds them as --history-...)."""
    default = Options()
    parser.add_argument(f"--{prefix}coins", type=int, default=default.coins, help="coins per round (default 250)")
    parser.add_argument(f"--{prefix}rounds", type=int, default=default.rounds, help="measured rounds (default 200)")
    parser.add_argument(
        f"--{prefix}prefill-rounds", type=int, default=default.prefill_rounds, help="rounds stored first (1,440)"
    )
    parser.add_argument(f"--{prefix}size-coins", type=int, default=default.size_coins, help="coins simulated (10)")


def options_from(args: argparse.Namespace, prefix: str = "") -> Options:
    dest = prefix.replace("-", "_")
    return Options(*(getattr(args, dest + name) for name in ("coins", "rounds", "prefill_rounds", "size_coins")))


if __name__ == "__main__":
    sys.exit(main())
