"""The `ticker` command: serve, check-config, fetch, resolve, history.

A bad config is one line per error on stderr (every error in the file) and exit 2, never a traceback;
suspect settings are `warning: …` lines (check-config) or WARNING log lines (serve), and it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from ticker import __version__
from ticker.config import LOG_FORMATS, Settings, load_settings
from ticker.exceptions import ConfigError, HistoryError, ProviderError
from ticker.history import open_history
from ticker.history.base import RANGES, Tick
from ticker.history.importing import parse_series
from ticker.history.points import chart_points
from ticker.live.streams import plan as live_plan
from ticker.logs import setup_logging
from ticker.models import Quote, canonical_symbol, iso
from ticker.providers import TOKEN_PROVIDERS, Provider, build_provider
from ticker.providers.chains import CHAINS, address_problem, request_address
from ticker.providers.defillama import DefiLlama
from ticker.providers.demo import DemoSource
from ticker.providers.geckoterminal import GeckoTerminal, TokenInfo
from ticker.providers.session import OFFLINE_HINT, unreachable_host
from ticker.render.formatting import change_direction, format_change, format_price
from ticker.runtime import build_providers
from ticker.store import SnapshotStore
from ticker.top import MARGIN, CoinList, RankingSource, ranked_coins
from ticker.web.query import DEFAULT_RANGE

logger = logging.getLogger("ticker")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config(args.path)
        settings = load_settings(args.config or os.environ.get("TICKER_CONFIG") or None)
        if args.command == "serve":
            return serve(settings, args)
        if args.command == "fetch":
            return asyncio.run(fetch(settings, demo=args.demo))
        if args.command == "resolve":
            return asyncio.run(resolve(settings, args.symbol))
        if args.command == "history":
            return asyncio.run(history(settings, args))
    except ConfigError as err:
        for line in err.errors:
            print(f"ticker: config error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticker", description="Self-hosted crypto price ticker widget.")
    parser.add_argument("--version", action="version", version=f"ticker {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config_help = "config file (default: $TICKER_CONFIG, else the built-in default)"

    serve = commands.add_parser("serve", help="run the poller and the web app")
    serve.add_argument("--config", help=config_help)
    serve.add_argument("--host", help="address to listen on (default: server.host)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (needs a redis:// cache)")
    serve.add_argument("--log-format", choices=LOG_FORMATS, help="text or json (default: server.log_format)")
    serve.add_argument("--demo", action="store_true", help="serve simulated prices instead of asking providers")

    check = commands.add_parser("check-config", help="validate a config file and show how coins resolved")
    check.add_argument("path")

    fetch = commands.add_parser("fetch", help="poll every provider once and print what each returned")
    fetch.add_argument("--config", help=config_help)
    fetch.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)

    resolve = commands.add_parser(
        "resolve", help="ask the providers which ids match a symbol, or what they say of a chain:address token"
    )
    resolve.add_argument("symbol", help="a symbol (ETH) or a token as chain:address (bsc:0x...)")
    resolve.add_argument("--config", help=config_help)

    history = commands.add_parser(
        "history",
        help="print a coin's recorded prices, or import your own series",
        description="Print SYMBOL's recorded price points (the last price of each bucket, at the bucket's end, "
        "UTC) as a table or CSV, or load a series from a CSV file of unix_seconds,price[,currency] lines.",
    )
    history.add_argument("symbol", help="a configured coin")
    history.add_argument("--range", choices=tuple(RANGES), default=DEFAULT_RANGE, help="how far back (default: 7d)")
    history.add_argument("--currency", help="a configured currency (default: the first)")
    history.add_argument("--csv", action="store_true", help="print unix_seconds,price,currency lines")
    history.add_argument(
        "--import", dest="import_file", metavar="FILE.csv", help="load unix_seconds,price[,currency] lines"
    )
    history.add_argument("--config", help=config_help)
    return parser


def serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ticker.runtime import create_app
    from ticker.web.server import run

    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: expected 0 to 65535, got {port}")
    if args.workers < 1:
        raise ConfigError(f"--workers: expected 1 or more, got {args.workers}")
    if args.workers > 1:
        if not settings.cache.shared or settings.source is None:
            raise ConfigError(
                f'--workers {args.workers}: several workers need a shared cache (cache.url = "redis://..." in '
                "a config file) so that one poller serves them all; run one worker with the memory cache"
            )
        if args.demo:
            raise ConfigError("--workers: demo mode runs in one worker")
    log_format = args.log_format or settings.server.log_format
    problem = _cannot_listen(host, port)
    if problem:
        print(f"ticker: {problem}", file=sys.stderr)
        return 3
    setup_logging(log_format)
    for warning in settings.warnings:
        logger.warning("config: %s", warning)
    if args.demo:
        logger.warning("demo mode: serving simulated prices, not market data")
        if settings.live.enabled:
            logger.info("demo mode: live exchange streams are off (live.enabled is ignored)")
    logger.info("ticker %s listening on http://%s:%d", __version__, host, port)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 1,
    }
    if args.workers > 1:
        # Each worker process builds its own app from the same config file; the Redis lease picks one poller.
        assert settings.source is not None
        os.environ["TICKER_CONFIG"] = str(settings.source.resolve())
        os.environ["TICKER_LOG_FORMAT"] = log_format
        config = uvicorn.Config("ticker.runtime:app_from_environment", factory=True, workers=args.workers, **options)
    else:
        config = uvicorn.Config(create_app(settings, demo=args.demo), **options)
    return 0 if run(config) else 3  # uvicorn's exit status for a server that failed to start


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (one line that says what to do), or None if it can.

    Checked before anything starts: uvicorn would run the app's startup (a first upstream round) and then
    log a bare `[Errno 98]` after "listening on …". A probe socket that is closed at once leaves a tiny
    window in which another process may take the port; uvicorn's own error covers that.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as err:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if err.errno == errno.EADDRINUSE:
                return f"{where} is already in use (another ticker or server?); choose a free port with --port"
            if err.errno == errno.EACCES:
                return f"no permission to listen on {where} (ports below 1024 need privileges); use --port 8000"
            if isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL:
                return f"cannot listen on {where}: no such local address; use --host 127.0.0.1 or 0.0.0.0"
            return f"cannot listen on {where} ({err.strerror or err}); try another --host or --port"
    return None


def check_config(path: str) -> int:
    settings = load_settings(path)
    providers = settings.poller.providers
    print(f"{path}: OK")
    print(f"currencies: {', '.join(settings.market.currencies)} (default {settings.market.default_currency})")
    print(f"providers (failover order): {', '.join(providers)}")
    rows = [["coin", "name", *providers]]
    top = settings.market.top
    for index, coin in enumerate(settings.market.coins):
        if top is not None and index == top.position:
            rows.append(_top_row(settings))
        if coin.is_static:
            prices = ", ".join(f"{price:g} {cur}" for cur, price in coin.prices.items())
            rows.append([coin.symbol, coin.name, f"static: {prices}", *[""] * (len(providers) - 1)])
        elif coin.is_token:
            continue  # listed below: they have no ids at the configured providers
        else:
            rows.append([coin.symbol, coin.name, *[coin.ids.get(name, "-") for name in providers]])
    if top is not None and top.position == len(settings.market.coins):
        rows.append(_top_row(settings))
    print(_table(rows))
    tokens = [
        [coin.symbol, coin.name, f"{coin.chain}:{coin.address}"] for coin in settings.market.coins if coin.is_token
    ]
    if tokens:
        print("tokens by contract (geckoterminal, then defillama; in usd, other currencies via BTC's price):")
        print(_table([["coin", "name", "chain:address"], *tokens]))
    if settings.live.enabled and settings.live.providers and "usd" in settings.market.currencies:
        print(_live_lines(settings))
    if top is not None:
        print(asyncio.run(show_top(settings)))
    for warning in settings.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _live_lines(settings: Settings) -> str:
    """Which exchange stream carries which configured coin ("top:N" coins join once the ranking is known)."""
    urls = {name: settings.provider(name).stream_url for name in settings.live.providers}
    plans = live_plan(settings.live.providers, urls, settings.market.coins)
    rate = settings.live.max_updates_per_second
    lines = [f"live streams (usd; preference order; at most {rate:g} updates/s per client):"]
    for name in settings.live.providers:
        target = plans.get(name)
        if target is None:
            lines.append(f"  {name}: lists none of the listed coins: no connection")
        else:
            lines.append(f"  {name}: {', '.join(target.pairs.values())} ({target.url})")
    if settings.market.top is not None:
        lines.append(
            f'  and the "top:{settings.market.top.count}" coins each exchange lists, once the ranking is known'
        )
    carried = {symbol for target in plans.values() for symbol in target.pairs.values()}
    polled = [c.symbol for c in settings.market.live_coins if c.symbol not in carried]
    if polled:
        lines.append(f"  polled only: {', '.join(polled)}")
    return "\n".join(lines)


def _top_row(settings: Settings) -> list[str]:
    top = settings.market.top
    assert top is not None
    what = f"{top.count} largest by market cap" + (", no stablecoins" if top.skip_stablecoins else "")
    return [
        f"top:{top.count}",
        what,
        *[f"{top.source} ranking" if i == 0 else "" for i in range(len(settings.poller.providers))],
    ]


async def show_top(settings: Settings) -> str:
    """What "top:N" resolves to now (one ranking request), or why that cannot be shown (offline, failure)."""
    setup_logging("text", level=logging.WARNING)
    top = settings.market.top
    assert top is not None
    async with httpx.AsyncClient(timeout=settings.poller.timeout_seconds) as client:
        source = next(p for p in build_providers(settings, client) if p.name == top.source)
        assert isinstance(source, RankingSource)
        try:
            rows = await source.ranking(top.count + MARGIN, "usd", side=False)
        except ProviderError as err:
            if offline([err]):
                return f"top:{top.count}: needs the network to show what it resolves to now ({err.message})"
            return f"top:{top.count}: {top.source} did not answer the ranking ({err.message})"
    listed = CoinList(settings.market.coins, top)
    shown = [c for c in listed.resolve(ranked_coins(rows, top)) if c not in listed.configured]
    if not shown:
        return f"top:{top.count}: {top.source}'s ranking has no coin that is not listed already"
    providers = settings.poller.providers
    table = [["coin", "name", *providers]]
    table += [[c.symbol, c.name, *[c.ids.get(name, "-") for name in providers]] for c in shown]
    return (
        f"top:{top.count} now ({top.source}'s ranking; refreshed hourly; a coin fails over only to the providers "
        f"with an id here):\n{_table(table)}"
    )


async def fetch(settings: Settings, *, demo: bool = False) -> int:
    """One poll of each provider on its own (no failover), for people checking their setup."""
    setup_logging("text", level=logging.WARNING)
    coins = settings.market.live_coins
    currencies = settings.market.currencies
    answered = False
    failures: list[ProviderError] = []
    rows = [["coin", "currency", "price", "24h change", "updated", "source"]]
    async with httpx.AsyncClient(timeout=settings.poller.timeout_seconds) as client:
        providers: list[Provider] = [DemoSource(settings.market.coins)] if demo else build_providers(settings, client)
        await _obey_saved_holds(settings, providers)
        for provider in providers:
            try:
                quotes = await provider.fetch([c for c in coins if provider.supports(c)], currencies)
            except ProviderError as err:
                print(f"{provider.name}: {'not asked' if err.held else 'failed'}: {err.message}")
                failures.append(err)
                continue
            answered = answered or bool(quotes)
            got = {(q.symbol, q.currency) for q in quotes}
            rows.extend(_quote_row(q, settings.widget.locale) for q in quotes)
            lacking = sorted({c.symbol for c in coins for cur in currencies if (c.symbol, cur) not in got})
            print(f"{provider.name}: {len(quotes)} prices" + (f"; none for {', '.join(lacking)}" if lacking else ""))
    if len(rows) > 1:
        print(_table(rows))
    if not answered and offline(failures):
        print(OFFLINE_HINT)
    return 0 if answered else 1


def offline(failures: Sequence[ProviderError]) -> bool:
    """Whether these failures look like no network: every request that was sent failed to connect."""
    sent = [err for err in failures if not (err.held or err.over_budget)]
    return bool(sent) and all(unreachable_host(err.message) for err in sent)


async def _obey_saved_holds(settings: Settings, providers: list[Provider]) -> None:
    """A running service's Retry-After holds bind this one-shot command too (memory mode: its snapshot file)."""
    path = settings.cache.snapshot_path
    if settings.cache.shared or path is None:
        return
    snapshot = await SnapshotStore(snapshot_path=path).load()
    for provider in providers:
        if snapshot is not None and provider.session is not None and provider.name in snapshot.manners:
            provider.session.manners.restore(snapshot.manners[provider.name])


def _quote_row(quote: Quote, locale: str) -> list[str]:
    sign = {"up": "+", "down": "-"}.get(change_direction(quote.change_24h_pct), "")  # never "-0.00%"
    return [
        quote.symbol,
        quote.currency,
        format_price(quote.price, quote.currency, locale),
        sign + format_change(quote.change_24h_pct, locale),
        iso(quote.updated_at) or "-",
        quote.source,
    ]


async def resolve(settings: Settings, symbol: str) -> int:
    setup_logging("text", level=logging.WARNING)
    if ":" in symbol:
        return await resolve_token(settings, symbol)
    found_any = False
    async with httpx.AsyncClient(timeout=settings.poller.timeout_seconds) as client:
        for provider in build_providers(settings, client):
            lookup = getattr(provider, "candidates", None)
            if lookup is None:
                print(f"{provider.name}: cannot search by symbol")
                continue
            try:
                candidates = await lookup(symbol)
            except ProviderError as err:
                print(f"{provider.name}: failed: {err.message}")
                continue
            if not candidates:
                print(f"{provider.name}: no coin with symbol {symbol.upper()}")
                continue
            found_any = True
            rows = [["id", "symbol", "name", "market cap (usd)", "rank"]]
            for c in candidates:
                cap = f"{c.market_cap:,.0f}" if c.market_cap else "-"
                rows.append([c.id, c.symbol, c.name, cap, str(c.rank or "-")])
            print(f"{provider.name}:\n{_table(rows)}")
            best = candidates[0]
            print(f'config: {{ symbol = "{symbol.upper()}", ids = {{ {provider.name} = "{best.id}" }} }}\n')
    return 0 if found_any else 1


async def resolve_token(settings: Settings, target: str) -> int:
    """`ticker resolve chain:address`: what each DEX source says of the token (name, symbol, price,
    liquidity where given), and the config entry. Exit 0 if a source knows it, 1 if none does, 2 for a
    chain or address that cannot be one."""
    chain, _, address = target.strip().partition(":")
    chain = chain.lower()
    if chain not in CHAINS:
        print(
            f"ticker: unknown chain {chain!r} (as GeckoTerminal names networks: {', '.join(CHAINS)})", file=sys.stderr
        )
        return 2
    problem = address_problem(chain, address)
    if problem is not None:
        print(f"ticker: {problem}", file=sys.stderr)
        return 2
    lookup_address = request_address(chain, address)
    found: list[TokenInfo] = []
    async with httpx.AsyncClient(timeout=settings.poller.timeout_seconds) as client:
        for name in TOKEN_PROVIDERS:
            source = build_provider(
                name,
                settings.provider(name),
                client,
                interval=settings.poller.interval_seconds,
                timeout=settings.poller.timeout_seconds,
            )
            network = chain if name == "geckoterminal" else CHAINS[chain].defillama
            assert isinstance(source, GeckoTerminal | DefiLlama)
            try:
                info = await source.token_info(network, lookup_address)
            except ProviderError as err:
                print(f"{name}: failed: {err.message}")
                continue
            if info is None or info.price_usd is None and info.symbol is None:
                print(f"{name}: no token at {network}:{address}")
                continue
            found.append(info)
            print(f"{name}: {_describe_token(info, settings.widget.locale)}")
    if not found:
        return 1
    symbol = next((i.symbol for i in found if i.symbol), "TOKEN").upper()
    token_name = next((i.name for i in found if i.name), None)
    named = f", name = {json.dumps(token_name, ensure_ascii=False)}" if token_name else ""  # a TOML string
    print(f'config: {{ symbol = {json.dumps(symbol)}{named}, chain = "{chain}", address = "{address}" }}')
    return 0


def _describe_token(info: TokenInfo, locale: str) -> str:
    parts = [f"{info.name} ({info.symbol or '?'})" if info.name else info.symbol or "?"]
    parts.append(f"price {format_price(info.price_usd, 'usd', locale)}" if info.price_usd else "no price")
    if info.liquidity_usd is not None:
        parts.append(f"liquidity {format_price(info.liquidity_usd, 'usd', locale)}")
    if info.confidence is not None:
        parts.append(f"confidence {info.confidence:g}")
    return ", ".join(parts)


async def history(settings: Settings, args: argparse.Namespace) -> int:
    """`ticker history`: print a coin's points, or import a series. Exit 0 when done; 1 when the file or the
    store cannot be used (nothing is written then); 2 for an unknown coin or currency, or history off."""
    setup_logging("text", level=logging.WARNING)
    coin = settings.coins_by_symbol.get(canonical_symbol(args.symbol))
    if coin is None:
        return _fail(f"unknown coin {args.symbol!r}; configured: {', '.join(settings.coins_by_symbol)}", 2)
    currencies = settings.market.currencies
    currency = (args.currency or settings.market.default_currency).lower()
    if currency not in currencies:
        return _fail(f"--currency: unknown currency {args.currency!r}; configured: {', '.join(currencies)}", 2)
    ticks: list[Tick] = []
    if args.import_file:
        try:
            with open(args.import_file, encoding="utf-8") as file:
                ticks, problems = parse_series(file, coin.symbol, currencies=currencies, now=time.time())
        except (OSError, UnicodeDecodeError) as err:
            return _fail(f"cannot read {args.import_file}: {err}", 1)
        for problem in problems:
            print(f"ticker: {args.import_file}: {problem}", file=sys.stderr)
        if problems:
            return _fail(f"{len(problems)} bad line(s) in {args.import_file}; nothing imported", 1)
        if not ticks:
            return _fail(f"{args.import_file}: no quotes found; nothing imported", 1)
    try:
        store = await open_history(settings)
    except HistoryError as err:
        return _fail(f"history: {err}", 1)
    if store is None:
        return _fail('history is off (history.path = "" in the config); set history.path to keep it', 2)
    try:
        if ticks:
            await store.append(ticks)
            print(_imported(coin.symbol, ticks))
            return 0
        now = time.time()
        points = chart_points(await store.candles(coin.symbol, currency, args.range, now), now)
    except HistoryError as err:
        return _fail(f"history: {err}", 1)
    finally:
        await store.close()
    if args.csv:
        print("unix_seconds,price,currency")
        print("\n".join(f"{at},{price!r},{currency}" for at, price in points))
    elif not points:
        print(f"no history of {coin.symbol} in {currency} for {args.range} yet")
    else:
        rows = [["time (UTC)", f"price ({currency})"]]
        rows += [[_utc_iso(at), format_price(price, currency, settings.widget.locale)] for at, price in points]
        print(f"{coin.symbol} in {currency}, {args.range}: {len(points)} points, the last price of each bucket")
        print(_table(rows))
    return 0


def _imported(symbol: str, ticks: Sequence[Tick]) -> str:
    """One line: how many points, in which currencies, from when to when (UTC)."""
    counts = Counter(tick.currency for tick in ticks)
    first, last = (_utc_iso(at) for at in (min(t.at for t in ticks), max(t.at for t in ticks)))
    per = ", ".join(f"{n} in {currency}" for currency, n in counts.items())
    return f"imported {len(ticks)} points of {symbol} ({per}), {first} to {last}"


def _utc_iso(at: float) -> str:
    return iso(datetime.fromtimestamp(at, UTC)) or ""


def _fail(message: str, code: int) -> int:
    print(f"ticker: {message}", file=sys.stderr)
    return code


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
