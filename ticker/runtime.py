"""create_app: the one place that wires settings, store, poller and views together.

The lifespan owns the HTTP client and the poller task: the last snapshot is
loaded before the first request is served, the first poll starts at once,
and shutdown cancels the poller cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import anyio
import httpx
from starlette.applications import Starlette

from ticker import __version__
from ticker.config import Settings, load_settings
from ticker.icons import IconCache
from ticker.lease import LEASE_KEY, LeaseRole, PollerLease, SharedPolling
from ticker.logs import setup_logging
from ticker.models import utcnow
from ticker.poller import Poller
from ticker.providers import Provider, build_providers
from ticker.providers.demo import DemoSource
from ticker.redis_store import RedisHealth, RedisSnapshotStore, redis_cache
from ticker.render.widget import WidgetRenderer
from ticker.store import SnapshotStore
from ticker.web.app import build_app
from ticker.web.views import Views

logger = logging.getLogger(__name__)

USER_AGENT = f"ticker/{__version__} (self-hosted price widget)"


def create_app(
    settings: Settings,
    *,
    store: SnapshotStore | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    demo: bool = False,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> Starlette:
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

    views = Views(settings, store, renderer, icons, clock=clock, lease_role=lease_role)
    interval = settings.poller.interval_seconds
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
            providers: list[Provider] = [DemoSource()] if demo else build_providers(settings, client)
            poller = Poller(
                providers,
                store,
                settings.market.coins,
                settings.market.currencies,
                interval=interval,
                clock=clock,
                sleep=sleep,
                max_jump_pct=settings.poller.max_jump_pct or None,
                after_round=lambda snapshot: icons.refresh(client, snapshot.icons, shared=sharing),
            )
            async with anyio.create_task_group() as tasks:
                if sharing is None:
                    tasks.start_soon(poller.run_forever)
                else:
                    lease = PollerLease(sharing.redis, sharing.key(LEASE_KEY), ttl=1.5 * interval)
                    polling = SharedPolling(
                        poller.run_once,
                        sharing,
                        lease,
                        interval=interval,
                        fallback_after=settings.poller.stale_after_seconds if settings.cache.redis_fallback else None,
                        on_follow=lambda snapshot: icons.refresh(
                            client, snapshot.icons, shared=sharing, download=False
                        ),
                        sleep=sleep,
                    )
                    tasks.start_soon(polling.run_forever)
                try:
                    yield
                finally:
                    closing.set()
                    tasks.cancel_scope.cancel()
            if sharing is not None:
                with anyio.move_on_after(1, shield=True):  # a silent Redis must not hold up shutdown
                    await lease.release()
                    await sharing.close()

    return build_app(settings, store, views, lifespan=lifespan, closing=closing, clock=clock)


def app_from_environment() -> Starlette:
    """A no-argument factory for `uvicorn --factory` (and `ticker serve --workers N`): config from TICKER_CONFIG."""
    setup_logging(os.environ.get("TICKER_LOG_FORMAT", "text"))
    return create_app(load_settings(os.environ.get("TICKER_CONFIG") or None))
