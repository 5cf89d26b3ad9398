"""create_app: the one place that wires settings, store, poller and views together.

The lifespan owns the HTTP client and the poller task: the last snapshot is
loaded before the first request is served, the first poll starts at once,
and shutdown cancels the poller cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

import anyio
import httpx
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ticker import __version__
from ticker.config import Settings, load_settings
from ticker.icons import IconCache
from ticker.lease import LEASE_KEY, PollerLease, SharedPolling
from ticker.logs import setup_logging
from ticker.models import utcnow
from ticker.poller import Poller
from ticker.providers import Provider, build_providers
from ticker.providers.demo import DemoSource
from ticker.redis_store import RedisHealth, RedisSnapshotStore, redis_cache
from ticker.render.widget import WidgetRenderer
from ticker.store import SnapshotStore
from ticker.web.metrics import Counted, HttpTally, ServiceCollector, build_registry
from ticker.web.openapi import openapi_document
from ticker.web.response_cache import ErrorPage, FastPaths, PreparedEndpoint, Render, VariantKey
from ticker.web.security import CorsPolicy
from ticker.web.stream import PriceStream
from ticker.web.views import PLAIN_HEADERS, Views, json_bytes

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
    views = Views(settings, store, renderer, icons, clock=clock)
    interval = settings.poller.interval_seconds

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
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

    cors = CorsPolicy(settings.server.cors_origins)
    epoch_clock = time.time if clock is utcnow else lambda: clock().timestamp()  # no datetime per request
    closing = anyio.Event()  # set at shutdown: ends open event streams

    def prepared(render: Render, variant: VariantKey, error_page: ErrorPage, *, api: bool = False) -> PreparedEndpoint:
        return PreparedEndpoint(
            render,
            error_page,
            lambda: store.version,
            variant=variant,
            clock=epoch_clock,
            cors=cors if api else None,
        )

    get = ["GET", "HEAD"]
    api = ["GET", "HEAD", "OPTIONS"]
    prices = prepared(views.render_prices, views.prices_variant, views.json_error_page, api=True)
    stream = PriceStream(prices, store, closing, clock=epoch_clock)
    routes = [
        Route("/api/v1/prices", prices, methods=api, name="prices"),
        Route("/api/v1/stream", stream, methods=["GET"], name="stream"),
        Route(
            "/api/v1/prices/{symbol}",
            prepared(views.render_price, views.price_variant, views.json_error_page, api=True),
            methods=api,
            name="price",
        ),
        Route(
            "/widget",
            prepared(views.render_widget, views.widget_variant, views.html_error_page),
            methods=get,
            name="widget",
        ),
        Route(
            "/widget/fragment",
            prepared(views.render_fragment, views.widget_variant, views.html_error_page),
            methods=get,
            name="fragment",
        ),
        Route("/widget/site.css", views.site_css, name="site_css"),
        Route("/icons/{symbol}", views.icon, name="icon"),
        Route("/embed.js", views.embed_js, name="embed_js"),
        Route("/landing.css", views.landing_css, name="landing_css"),
        Route("/", views.index, name="index"),
        Route("/healthz", views.healthz, name="healthz"),
        Route("/readyz", views.readyz, name="readyz"),
    ]
    tally = HttpTally()
    endpoints = [(route.name, route.endpoint) for route in routes if isinstance(route.endpoint, PreparedEndpoint)]
    collector = ServiceCollector(
        settings,
        store,
        tally,
        clock,
        extra=lambda: [(name, code, n) for name, ep in endpoints for code, n in ep.statuses.items()],
    )
    registry = build_registry([collector])
    openapi = json_bytes(openapi_document(settings))

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers=PLAIN_HEADERS | {"content-type": content_type})

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json", headers=PLAIN_HEADERS)

    routes += [Route("/metrics", metrics, name="metrics"), Route("/openapi.json", openapi_json, name="openapi")]
    for route in routes:
        if not isinstance(route.endpoint, PreparedEndpoint):
            route.app = Counted(route.app, route.name, tally)
    route_names = {id(route.endpoint): route.name for route in routes}

    async def not_found(request: Request, exc: Exception) -> Response:
        tally.add("unmatched", 404)
        return Response("Not Found", 404, media_type="text/plain", headers=PLAIN_HEADERS)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        extra = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}  # e.g. Allow on a 405
        tally.add(route_names.get(id(request.scope.get("endpoint")), "unmatched"), status)
        return Response(HTTPStatus(status).phrase, status, media_type="text/plain", headers=PLAIN_HEADERS | extra)

    async def server_error(request: Request, exc: Exception) -> Response:
        tally.add("error", 500)
        return Response("Internal Server Error", 500, media_type="text/plain", headers=PLAIN_HEADERS)

    handlers = {404: not_found, HTTPException: http_error, Exception: server_error}
    fast = {
        route.path: route.endpoint
        for route in routes
        if route.name in FAST_ROUTES and isinstance(route.endpoint, PreparedEndpoint)
    }
    app = TickerApp(routes=routes, lifespan=lifespan, exception_handlers=handlers, fast_paths=fast)
    app.router.redirect_slashes = False  # a redirect would be built from the visitor's Host header
    return app


FAST_ROUTES = ("prices", "widget", "fragment")  # hit by every page view and bot: served before the router


class TickerApp(Starlette):
    """Starlette, with the hottest prepared endpoints served before its middleware and router."""

    def __init__(self, *, fast_paths: Mapping[str, PreparedEndpoint], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_paths = fast_paths

    def build_middleware_stack(self) -> ASGIApp:
        return FastPaths(super().build_middleware_stack(), self._fast_paths)


def app_from_environment() -> Starlette:
    """A no-argument factory for `uvicorn --factory` (and `ticker serve --workers N`): config from TICKER_CONFIG."""
    setup_logging(os.environ.get("TICKER_LOG_FORMAT", "text"))
    return create_app(load_settings(os.environ.get("TICKER_CONFIG") or None))
