"""create_app: the one place that wires settings, store, poller and views together.

The lifespan owns the HTTP client and the poller task: the last snapshot is
loaded before the first request is served, the first poll starts at once,
and shutdown cancels the poller cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime

import anyio
import httpx
from starlette.applications import Starlette

from ticker import __version__
from ticker.backfill import Backfill, candle_sources
from ticker.config import Settings, load_settings
from ticker.exceptions import HistoryError
from ticker.history import open_history
from ticker.history.base import HistoryStore
from ticker.history.demo import DemoHistory
from ticker.history.recorder import HistoryRecorder
from ticker.icons import IconCache
from ticker.lease import LEASE_KEY, LeaseRole, PollerLease, SharedPolling
from ticker.live.connection import StreamConnection
from ticker.live.hub import LiveQuotes
from ticker.live.relay import CHANNEL as RELAY_CHANNEL
from ticker.live.relay import STATES_KEY as RELAY_STATES_KEY
from ticker.live.relay import LiveRelay
from ticker.live.streams import LiveStreams
from ticker.logs import setup_logging
from ticker.models import Candle, SavedManners, utcnow
from ticker.poller import Poller
from ticker.providers import TOKEN_PROVIDERS, Provider, build_provider
from ticker.providers.demo import DemoSource
from ticker.providers.icon_hosts import IconHosts
from ticker.redis_store import RedisHealth, RedisSnapshotStore, redis_cache
from ticker.render.chart_page import ChartRenderer
from ticker.render.widget import WidgetRenderer
from ticker.side_work import SideWork
from ticker.store import SnapshotStore
from ticker.top import RankingSource, TopRanking
from ticker.web.app import build_app
from ticker.web.history_reads import HistoryReads
from ticker.web.history_views import HistoryViews
from ticker.web.views import Views

logger = logging.getLogger(__name__)

USER_AGENT = f"ticker/{__version__} (self-hosted price widget)"
SIDE_WORK_SECONDS = 30.0  # time budget of one side-work pass (icons, metadata); the rest waits for the next
MANNERS_SAVE_SECONDS = 0.5  # how soon a new hold or spent request reaches Redis
# Relay messages per second from the lease holder to the followers: above live.max_updates_per_second's default,
# so the relay adds at most 0.1 s before a follower's own per-client limit applies.
RELAY_RATE = 10.0
LIVE_FRESH_SECONDS = 60.0  # how long a stream's last tick of a pair covers it (see LiveQuotes)


def create_app(
    settings: Settings,
    *,
    store: SnapshotStore | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    demo: bool = False,
    clock: Callable[[], datetime] = utcnow,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    history: HistoryStore | None = None,
) -> Starlette:
    """The app with its lifespan. `clock` (wall, for timestamps), `monotonic` (holds, budgets, schedules)
    and `sleep` (the poller's) are injectable so tests can drive rounds by hand. `history`: a store to use
    instead of the configured one (a test's; the app leaves it open); else the lifespan opens the configured
    one. With `demo`, nothing is recorded, and charts show DemoHistory's simulated past unless `history` is
    given."""
    shared = settings.cache.shared and not demo and store is None
    if store is None:
        # Demo prices must never land in the snapshot file (or the Redis) that real prices are restored from.
        path = None if demo else settings.cache.snapshot_path
        if shared:
            cache = redis_cache(settings.cache.url, settings.cache.namespace)
            store = RedisSnapshotStore(cache, snapshot_path=path, health=RedisHealth())
        else:
            store = SnapshotStore(snapshot_path=path)
    renderer = WidgetRenderer(settings)
    snapshot_path = settings.cache.snapshot_path
    icons = IconCache(snapshot_path.parent / "icons" if snapshot_path and not demo else None)
    polling: SharedPolling | None = None  # set by the lifespan in Redis mode

    def lease_role() -> LeaseRole:
        if polling is not None:
            return polling.role
        return "follower" if isinstance(store, RedisSnapshotStore) else "single"

    snapshots = store  # the store, as the closures below see it (never None from here on)
    interval = settings.poller.interval_seconds
    live = (
        LiveQuotes(
            settings.market.live_coins,
            preference=settings.live.providers,
            snapshot=lambda: snapshots.current,
            interval=interval,
            # A pair with no trade for a while keeps its stream's last price: still the last price traded,
            # until half of stale_after (a quiet pair must never show as stale while the poller could help).
            fresh_seconds=min(max(interval, LIVE_FRESH_SECONDS), settings.poller.stale_after_seconds / 2),
            max_jump_pct=settings.poller.max_jump_pct or None,
            stale_after=settings.poller.stale_after_seconds,
            clock=clock,
            monotonic=monotonic,
        )
        # Live quotes from the exchange streams (usd only: without usd they would carry nothing); none in the demo.
        if settings.live.enabled and "usd" in settings.market.currencies and not demo
        else None
    )
    views = Views(settings, store, renderer, icons, clock=clock, lease_role=lease_role, live=live)

    def snapshot_time() -> float:
        """Where a chart's window ends: the snapshot's time, so instances sharing it draw the same chart."""
        current = snapshots.current
        return (current.generated_at if current is not None else clock()).timestamp()

    def current_price(symbol: str, currency: str) -> float | None:
        current = snapshots.current
        quote = current.quote(symbol, currency) if current is not None else None
        return quote.price if quote is not None else None

    injected = history
    demo_history = DemoHistory(settings.market.coins, current_price, clock=lambda: clock().timestamp())
    reads = HistoryReads(  # what charts read: opened by the lifespan unless injected or simulated
        lambda: snapshots.version,
        snapshot_time,
        enabled=injected is not None or demo or settings.cache.shared or settings.history.path is not None,
        store=injected if injected is not None else demo_history if demo else None,
    )
    history_views = HistoryViews(settings, store, reads, ChartRenderer(), demo=demo, coins=views.coins)
    closing = anyio.Event()  # set at shutdown: ends open event streams

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal polling
        icons.load()
        loaded = await store.load()
        if loaded is not None:
            logger.info("serving the saved snapshot of %s until the first poll", loaded.generated_at.isoformat())
        timeout = httpx.Timeout(settings.poller.timeout_seconds)
        headers = {"user-agent": USER_AGENT}
        async with httpx.AsyncClient(transport=transport, timeout=timeout, headers=headers) as client:
            sharing = store if isinstance(store, RedisSnapshotStore) else None
            providers: list[Provider] = (
                [DemoSource(settings.market.coins)]
                if demo
                else build_providers(settings, client, monotonic=monotonic, wall=lambda: clock().timestamp())
            )
            # Demo prices never reach the real history store either (the demo's history is simulated).
            if demo:
                history = None
            elif injected is not None:
                history = injected
            else:
                history = reads.store = await _open_history(settings, sharing)
            views.history = history
            ranking = None if demo else _top_ranking(settings, providers, monotonic)
            recorder = (
                HistoryRecorder(
                    history,
                    [coin.symbol for coin in settings.market.live_coins],
                    settings.market.default_currency,
                )
                if history is not None
                else None
            )
            poller = Poller(
                providers,
                store,
                views.coins,
                settings.market.currencies,
                interval=interval,
                timeout=settings.poller.timeout_seconds,
                clock=clock,
                monotonic=monotonic,
                sleep=sleep,
                max_jump_pct=settings.poller.max_jump_pct or None,
                stale_after=settings.poller.stale_after_seconds,
                history=recorder,
                ranking=ranking,
                live=live.covered if live is not None else None,
            )
            if loaded is not None:
                poller.restore_manners(loaded.manners)
            # Per icon CDN host: its own holds, no API budget; side work runs it, never a price round.
            icon_hosts = IconHosts(
                client, timeout=settings.poller.timeout_seconds, interval=interval, monotonic=monotonic
            )
            side_work = SideWork(
                providers,
                lambda: poller.coins,
                settings.market.default_currency,
                ranking=ranking,
                icons=lambda snapshot: icons.refresh(snapshot.icons, source=icon_hosts, shared=sharing),
                current=lambda: store.current,
                interval=interval,
                time_budget=max(interval, SIDE_WORK_SECONDS),
                monotonic=monotonic,
            )
            backfill = Backfill(
                candle_sources(providers),
                settings.market.live_coins,
                settings.market.currencies,
                history if history is not None else _NO_HISTORY,
                interval=interval,
                time_budget=max(interval, SIDE_WORK_SECONDS),
                enabled=history is not None and settings.history.backfill,
                wall=lambda: clock().timestamp(),
                monotonic=monotonic,
                follow=(lambda: poller.coins) if settings.market.top is not None else None,
            )
            async with anyio.create_task_group() as tasks:
                if sharing is None:
                    tasks.start_soon(poller.run_forever)
                else:
                    lease = PollerLease(sharing.redis, sharing.key(LEASE_KEY), ttl=1.5 * interval)

                    async def take_over(instances: int) -> None:
                        saved = await sharing.get_manners() if sharing.health.ok else None
                        if saved is None and sharing.current is not None:
                            saved = dict(sharing.current.manners)
                        poller.restore_manners(saved or {}, instances=instances)

                    polling = SharedPolling(
                        poller.run_once,
                        sharing,
                        lease,
                        interval=interval,
                        fallback_after=settings.poller.stale_after_seconds if settings.cache.redis_fallback else None,
                        on_follow=lambda snapshot: icons.refresh(snapshot.icons, shared=sharing),
                        on_lead=take_over,
                        sleep=sleep,
                    )
                    side_work.active = backfill.active = lambda: polling.role != "follower"
                    tasks.start_soon(polling.run_forever)
                    if live is not None:  # the holder's ticks to every follower, through Redis pub/sub
                        relay = LiveRelay(
                            sharing.redis,
                            sharing.key(RELAY_CHANNEL),
                            sharing.key(RELAY_STATES_KEY),
                            live,
                            rate=RELAY_RATE,
                            health=sharing.health,
                        )
                        tasks.start_soon(relay.run, lambda: polling.role)
                    tasks.start_soon(_share_manners, poller, sharing, lambda: polling.role == "holder")
                tasks.start_soon(side_work.run_forever)
                tasks.start_soon(backfill.run_forever)
                if live is not None:
                    streams = LiveStreams(
                        settings.live.providers,
                        {name: settings.provider(name).stream_url for name in settings.live.providers},
                        live,
                        lambda: poller.coins,
                        role=lease_role,
                        connect=lambda feed, url, pairs, hub: StreamConnection(feed, url, pairs, hub, clock=clock),
                    )
                    tasks.start_soon(streams.run_forever)
                try:
                    yield
                finally:
                    closing.set()
                    tasks.cancel_scope.cancel()
            if history is not None and injected is None:
                reads.store = None
                with anyio.move_on_after(1, shield=True):
                    await history.close()
            if sharing is not None:
                with anyio.move_on_after(1, shield=True):  # a silent Redis must not hold up shutdown
                    await lease.release()
                    await sharing.close()

    return build_app(
        settings, store, views, history=history_views, lifespan=lifespan, closing=closing, clock=clock, live=live
    )


async def _open_history(settings: Settings, sharing: RedisSnapshotStore | None) -> HistoryStore | None:
    """The price history store (in Redis beside the snapshots when they are shared, else the SQLite file at
    history.path), or None when history is off or its file cannot be used: prices are served either way,
    and an unusable file is left as it is for the operator to look at."""
    try:
        return await open_history(settings, redis=sharing.redis if sharing is not None else None)
    except HistoryError as err:
        logger.error("price history off: %s", err)
        return None


def _top_ranking(
    settings: Settings, providers: Sequence[Provider], monotonic: Callable[[], float]
) -> TopRanking | None:
    """The hourly "top:N" ranking from its configured source (config made sure it is among the providers)."""
    top = settings.market.top
    source = next((p for p in providers if top is not None and p.name == top.source), None)
    if top is None or not isinstance(source, RankingSource):
        return None
    return TopRanking(source, top, "usd", monotonic=monotonic)


class _NoHistory:
    """What backfill writes to when history is off (it is then disabled and never writes)."""

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        return 0

    async def earliest(self, symbol: str, currency: str) -> float | None:
        return None


_NO_HISTORY = _NoHistory()


async def _share_manners(poller: Poller, store: RedisSnapshotStore, holding: Callable[[], bool]) -> None:
    """Write the holds and budget use to Redis soon after they change, so a new lease holder obeys them."""
    last: dict[str, SavedManners] = {}
    while True:
        await anyio.sleep(MANNERS_SAVE_SECONDS)
        if holding():
            saved = poller.saved_manners()
            if saved != last:
                await store.put_manners(saved)
                last = saved


def build_providers(
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> list[Provider]:
    """The configured providers in failover order, sharing one HTTP client, each with its own session.

    With tokens by contract address configured, the DEX sources (geckoterminal, then defillama) follow
    unless poller.providers lists them already; they price only tokens, and tokens only them.
    """
    providers: list[Provider] = []
    names = list(settings.poller.providers)
    if any(coin.is_token for coin in settings.market.live_coins):
        names += [name for name in TOKEN_PROVIDERS if name not in names]
    for name in names:
        provider = build_provider(
            name,
            settings.provider(name),
            client,
            interval=settings.poller.interval_seconds,
            timeout=settings.poller.timeout_seconds,
            monotonic=monotonic,
            wall=wall,
            sleep=sleep,
        )
        _warn_if_over_budget(provider, settings, primary=not providers)
        providers.append(provider)
    return providers


def _warn_if_over_budget(provider: Provider, settings: Settings, *, primary: bool) -> None:
    """Say at start when polling every round would ask more of a provider than its budget allows.

    A warning for the primary (it is asked every round); a note for fallbacks, asked only when needed.
    """
    budget = provider.session.budget if provider.session is not None else None
    if budget is None:
        return
    coins = [coin for coin in settings.market.live_coins if provider.supports(coin)]
    per_round = math.ceil(len(coins) / provider.batch_size) if coins else 0
    rounds_per_minute = 60.0 / settings.poller.interval_seconds
    over = []
    if budget.per_minute is not None and per_round * rounds_per_minute > budget.per_minute:
        over.append(f"{per_round * rounds_per_minute:.1f}/min against {budget.per_minute:g}/min")
    if budget.per_day is not None and per_round * rounds_per_minute * 1440 > budget.per_day:
        over.append(f"{per_round * rounds_per_minute * 1440:.0f}/day against {budget.per_day:.0f}/day")
    if over:
        logger.log(
            logging.WARNING if primary else logging.INFO,
            "%s: asked every %g s round it would need %s; when it has to serve every round it will be "
            "asked less often (raise poller.interval_seconds or providers.%s.requests_per_minute/_per_month)",
            provider.name,
            settings.poller.interval_seconds,
            " and ".join(over),
            provider.name,
        )


def app_from_environment() -> Starlette:
    """A no-argument factory for `uvicorn --factory` (and `ticker serve --workers N`): config from TICKER_CONFIG."""
    setup_logging(os.environ.get("TICKER_LOG_FORMAT", "text"))
    return create_app(load_settings(os.environ.get("TICKER_CONFIG") or None))
