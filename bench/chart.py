#!/usr/bin/env python3
"""The chart widget's costs: rendering 500 points, and /widget/chart's throughput against bare Starlette.

    python3 bench/chart.py                          # about 3 minutes
    python3 bench/chart.py --duration 5 --rounds 3 --parts render

It runs under the project's .venv when there is one (`python3 run.py ticker --version` makes it), else
under the Python that started it (then ticker and its dependencies must be importable, for example with
PYTHONPATH=.). It uses bench/run.py's machinery and method for /widget:

render  in process: ChartRenderer.document for 500 buckets (the most a chart has), median of --renders;
        the cold path of one /widget/chart variant (HistoryReads reads a MemoryHistory, then the page is
        rendered and its ETag and headers prepared), and a warm request served from the cache.
http    bench/baseline_app.py and `ticker serve --demo` (11 coins, interval 60 s; DemoHistory draws the
        charts), both under ticker's uvicorn settings. wrk (-t1 -c64 --latency) alternates baseline ->
        /widget/chart?coin=BTC&range=7d -> the same with If-None-Match (304) -> /widget, for --rounds
        rounds; medians reported, and the chart's ratio to the baseline against the goal of 0.85.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
if __name__ == "__main__" and Path(sys.prefix).resolve() != VENV.resolve() and (VENV / "bin" / "python").exists():
    os.execv(VENV / "bin" / "python", [str(VENV / "bin" / "python"), str(Path(__file__).resolve()), *sys.argv[1:]])
sys.path[:0] = [str(ROOT)]


def _bench_run() -> Any:
    """bench/run.py as a module (wrk, servers, quiet windows), by path: the repository root has a run.py too."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


run = _bench_run()

CHART = "/widget/chart?coin=BTC&range=7d"
TARGETS = ("baseline", "chart", "chart304", "widget")
GOAL = run.TARGET_RATIO
POINTS = 500


# --------------------------------------------------------------------------- in process


def bench_render(renders: int) -> dict[str, float]:
    from ticker.config import default_settings
    from ticker.history.memory import MemoryHistory
    from ticker.models import Candle
    from ticker.render.chart_page import ChartRenderer
    from ticker.web.query import chart_options

    settings = default_settings()
    now = 1_795_000_000
    rng = random.Random(7)
    price, candles = 90_917.04, []
    for i in range(POINTS):
        start = now - (POINTS - i) * 2 * 86_400
        close = price * (1 + rng.gauss(0, 0.02))
        candles.append(Candle(start, 2 * 86_400, price, max(price, close) * 1.01, min(price, close) * 0.99, close))
        price = close
    renderer = ChartRenderer()
    options = chart_options({"coin": "BTC", "range": "max"}, settings)
    links = {name: f"/widget/chart?coin=BTC&range={name}" for name in ("24h", "7d", "30d", "1y", "max")}
    renderer.document(options.coin, options, candles, now=now, links=links)  # templates compiled, locale loaded
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        page = renderer.document(options.coin, options, candles, now=now, links=links)
        times.append(time.perf_counter() - started)
    result = {"render_ms": statistics.median(times) * 1e3, "bytes": len(page.encode()), "points": len(candles)}

    async def served() -> dict[str, float]:
        import httpx

        from ticker.history.base import Tick
        from ticker.runtime import create_app
        from ticker.store import SnapshotStore

        history = MemoryHistory()
        await history.append([Tick("BTC", "usd", now - 600 * i, 90_000.0 + math.sin(i / 30)) for i in range(1100)])
        store = SnapshotStore()
        app = create_app(settings, store=store, history=history, clock=lambda: _at(now))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as client:
            cold = []
            for n in range(20):
                started = time.perf_counter()
                response = await client.get(f"{CHART}&theme=dark&n={n}&locale=de_DE" if n % 2 else CHART)
                cold.append(time.perf_counter() - started)
                assert response.status_code == 200
                await store.put(_snapshot(now))  # a new snapshot: the next request reads and renders again
            warm = []
            for _ in range(200):
                started = time.perf_counter()
                await client.get(CHART)
                warm.append(time.perf_counter() - started)
        return {"cold_ms": statistics.median(cold) * 1e3, "warm_ms": statistics.median(warm) * 1e3}

    return result | asyncio.run(served())


def _at(now: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(now, UTC)


def _snapshot(now: float) -> Any:
    from ticker.models import Snapshot

    return Snapshot(_at(now), {})


# --------------------------------------------------------------------------- over HTTP


def bench_http(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    run.ensure_wrk()
    port = run.free_port()
    config = run.ticker_config(workdir / "ticker")
    ticker = run.start(
        "ticker",
        [sys.executable, "-m", "ticker", "serve", "--demo", "--config", str(config), "--port", str(port)],
        port,
        workdir,
    )
    base_port = run.free_port()
    baseline = run.start(
        "baseline", [sys.executable, str(run.BASELINE_APP), "--port", str(base_port)], base_port, workdir
    )
    try:
        ticker.wait_until("/readyz")
        baseline.wait_until("/")
        run.check(ticker.port, CHART, 200)
        etag = run.check(ticker.port, CHART, 200)["etag"]
        run.check(ticker.port, CHART, 304, {"If-None-Match": etag})
        ticker_pid, base_pid = ticker.server_pid(), baseline.server_pid()
        size = len(run.http_get(ticker.port, CHART)[2])
        run.log(f"baseline :{base_port}, ticker :{port}; {CHART} answers 200 ({size:,} B) and 304")

        def one(target: str, seconds: float | None = None) -> Any:
            if target == "baseline":
                return run.wrk(target, f"{baseline.url}/", base_pid, args, seconds=seconds)
            run.quiet_window(ticker.port, seconds or args.duration)
            if target == "chart304":
                tag = run.check(ticker.port, CHART, 200)["etag"]
                return run.wrk(
                    target, f"{ticker.url}{CHART}", ticker_pid, args, headers=[f"If-None-Match: {tag}"], seconds=seconds
                )
            path = CHART if target == "chart" else "/widget"
            return run.wrk(target, f"{ticker.url}{path}", ticker_pid, args, seconds=seconds)

        for target in TARGETS:
            one(target, min(2, args.duration))  # warm-up
        runs = []
        for number in range(1, args.rounds + 1):
            for target in TARGETS:
                run.wait_for_quiet(args)
                result = one(target)
                runs.append(result)
                run.log(
                    f"round {number}/{args.rounds} {target:9} {result.rps:9.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  {result.bytes_per_response:,.0f} B/resp  "
                    f"other load {result.other_cpu_s / result.seconds:.2f} CPUs"
                    + (f"  ERRORS {result.errors}" if result.errors else "")
                )
        medians = {t: statistics.median(r.rps for r in runs if r.target == t) for t in TARGETS}
        p99 = {t: statistics.median(r.p99_ms for r in runs if r.target == t) for t in TARGETS}
        return {"rps": medians, "p99_ms": p99, "chart_bytes": size, "errors": sum(r.errors for r in runs)}
    finally:
        ticker.stop()
        baseline.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="render,http")
    parser.add_argument("--renders", type=int, default=200)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quiet-cpus", type=float, default=0.25)
    parser.add_argument("--quiet-wait", type=float, default=60)
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",")}
    if "render" in parts:
        r = bench_render(args.renders)
        print(
            f"render: {r['points']} points -> {r['bytes']:,} B page in {r['render_ms']:.2f} ms (median of "
            f"{args.renders}); one variant after a new snapshot (read + render + prepare) {r['cold_ms']:.2f} ms; "
            f"from the cache {r['warm_ms']:.3f} ms per request (in process, through httpx's ASGI transport)"
        )
    if "http" in parts:
        with tempfile.TemporaryDirectory(prefix="ticker-bench-chart-") as workdir:
            h = bench_http(args, Path(workdir))
        base = h["rps"]["baseline"]
        print("| endpoint | req/s | p99 ms | ratio to baseline |\n|---|---:|---:|---:|")
        for target in TARGETS:
            print(f"| {target} | {h['rps'][target]:,.0f} | {h['p99_ms'][target]:.2f} | {h['rps'][target] / base:.2f} |")
        ratio = h["rps"]["chart"] / base
        verdict = "met" if ratio >= GOAL else "MISSED"
        print(f"/widget/chart ({h['chart_bytes']:,} B) against the baseline: {ratio:.2f} (goal >= {GOAL}): {verdict}")
        if h["errors"]:
            print(f"wrk reported {h['errors']} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
