"""The Starlette app: routes, prepared endpoints, error handlers and the fast path before the router.

runtime.py wires the store, poller and views and hands them here; this module only answers visitors.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from http import HTTPStatus
from typing import Any

import anyio
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Lifespan

from ticker.config import Settings
from ticker.live.hub import LiveQuotes
from ticker.models import utcnow
from ticker.store import SnapshotStore
from ticker.web.history_reads import Read
from ticker.web.history_views import HistoryViews
from ticker.web.metrics import (
    Counted,
    ExchangeStreamCollector,
    HttpTally,
    ServiceCollector,
    StreamCollector,
    build_registry,
)
from ticker.web.openapi import openapi_document
from ticker.web.response_cache import (
    ErrorPage,
    FastPaths,
    Prepared,
    PreparedEndpoint,
    ReadingEndpoint,
    Render,
    VariantKey,
)
from ticker.web.security import CorsPolicy
from ticker.web.stream import CLOSING_STATE, EventStream, LiveBody, LiveEvents, StreamTally
from ticker.web.views import PLAIN_HEADERS, Views, json_bytes


def build_app(
    settings: Settings,
    store: SnapshotStore,
    views: Views,
    *,
    history: HistoryViews,
    lifespan: Lifespan[Starlette],
    closing: anyio.Event,
    clock: Callable[[], datetime] = utcnow,
    live: LiveQuotes | None = None,
) -> Starlette:
    """Every route of the contract over `views` (and `history`: its JSON and the chart); `closing` ends open
    event streams at shutdown. `live`: the exchange streams' quotes (live.enabled), sent to event-stream
    clients between snapshots."""
    cors = CorsPolicy(settings.server.cors_origins)
    epoch_clock = time.time if clock is utcnow else lambda: clock().timestamp()  # no datetime per request

    def prepared(
        render: Render,
        variant: VariantKey,
        error_page: ErrorPage,
        *,
        api: bool = False,
        version: Callable[[], int] = lambda: store.version,
    ) -> PreparedEndpoint:
        """`version`: what the rendered body depends on (widget pages: the snapshot and the live quotes)."""
        return PreparedEndpoint(
            render,
            error_page,
            version,
            variant=variant,
            clock=epoch_clock,
            cors=cors if api else None,
        )

    def reading(
        read: ReadHistory, render: RenderHistory, variant: VariantKey, error_page: ErrorPage, *, api: bool
    ) -> ReadingEndpoint[Read]:
        return ReadingEndpoint(
            read,
            render,
            error_page,
            lambda: store.version,
            variant=variant,
            clock=epoch_clock,
            cors=cors if api else None,
        )

    get = ["GET", "HEAD"]
    api = ["GET", "HEAD", "OPTIONS"]
    prices = prepared(
        views.render_prices, views.prices_variant, views.json_error_page, api=True, version=views.page_version
    )
    widget = prepared(views.render_widget, views.widget_variant, views.html_error_page, version=views.page_version)
    streams = StreamTally()
    rate = settings.live.max_updates_per_second

    def live_events(name: str, build: LiveBody, variant: VariantKey) -> LiveEvents | None:
        return None if live is None else LiveEvents(name, live, store, build, variant, rate=rate)

    stream = EventStream(
        prices,
        store,
        closing,
        live=live_events("quotes", views.live_coins, views.prices_variant),
        tally=streams,
        clock=epoch_clock,
    )
    widget_stream = EventStream(
        widget,
        store,
        closing,
        live=live_events("rows", views.live_rows, views.widget_variant),
        prices=False,
        tally=streams,
        clock=epoch_clock,
    )
    routes = [
        Route("/api/v1/prices", prices, methods=api, name="prices"),
        Route("/api/v1/stream", stream, methods=get, name="stream"),
        Route("/widget/stream", widget_stream, methods=get, name="widget_stream"),
        Route(
            "/api/v1/prices/{symbol}",
            prepared(
                views.render_price, views.price_variant, views.json_error_page, api=True, version=views.page_version
            ),
            methods=api,
            name="price",
        ),
        Route("/widget", widget, methods=get, name="widget"),
        Route(
            "/widget/fragment",
            prepared(views.render_fragment, views.widget_variant, views.html_error_page, version=views.page_version),
            methods=get,
            name="fragment",
        ),
        Route(
            "/api/v1/history/{symbol}",
            reading(
                history.read_history, history.render_history, history.history_variant, views.json_error_page, api=True
            ),
            methods=api,
            name="history",
        ),
        Route(
            "/widget/chart",
            reading(history.read_chart, history.render_chart, history.chart_variant, views.html_error_page, api=False),
            methods=get,
            name="chart",
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
    endpoints = [
        (route.name, route.endpoint) for route in routes if isinstance(route.endpoint, PreparedEndpoint | EventStream)
    ]
    collector = ServiceCollector(
        settings,
        store,
        tally,
        clock,
        extra=lambda: [(name, code, n) for name, ep in endpoints for code, n in ep.statuses.items()],
        lease_role=views.lease_role,
    )
    collectors: list[Collector] = [collector, StreamCollector(streams)]
    if live is not None:
        collectors.append(ExchangeStreamCollector(live))
    registry = build_registry(collectors)
    openapi = json_bytes(openapi_document(settings))

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), headers=PLAIN_HEADERS | {"content-type": content_type})

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type="application/json", headers=PLAIN_HEADERS)

    routes += [Route("/metrics", metrics, name="metrics"), Route("/openapi.json", openapi_json, name="openapi")]
    for route in routes:
        if not isinstance(route.endpoint, PreparedEndpoint | EventStream):  # those count their own statuses
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
    fast: dict[str, ASGIApp] = {
        route.path: route.endpoint
        for route in routes
        if route.name in FAST_ROUTES and isinstance(route.endpoint, PreparedEndpoint | EventStream)
    }
    app = TickerApp(
        routes=routes, lifespan=_handing_over(lifespan, closing), exception_handlers=handlers, fast_paths=fast
    )
    app.router.redirect_slashes = False  # a redirect would be built from the visitor's Host header
    return app


def _handing_over(lifespan: Lifespan[Starlette], closing: anyio.Event) -> Lifespan[Starlette]:
    """`lifespan`, whose state also carries `closing`: the server sets it before it waits for open streams."""

    @contextlib.asynccontextmanager
    async def with_closing(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        async with lifespan(app) as state:
            yield {**(state or {}), CLOSING_STATE: closing}

    return with_closing


ReadHistory = Callable[[Mapping[str, Any], QueryParams], Awaitable[Read]]
RenderHistory = Callable[[Mapping[str, Any], QueryParams, Read], Prepared]
# Served before the router: hit by every page view and bot, or (the streams) writing to thousands of clients per
# tick, where each of Starlette's `send` wrappers would cost a coroutine call per client.
FAST_ROUTES = ("prices", "widget", "fragment", "chart", "stream", "widget_stream")


class TickerApp(Starlette):
    """Starlette, with the hottest endpoints (prepared ones, event streams) served before its middleware and router."""

    def __init__(self, *, fast_paths: Mapping[str, ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fast_paths = fast_paths

    def build_middleware_stack(self) -> ASGIApp:
        return FastPaths(super().build_middleware_stack(), self._fast_paths)
