"""The history endpoints: `/api/v1/history/{symbol}` (JSON) and `/widget/chart` (HTML).

Both are ReadingEndpoints (response_cache.py): a variant is validated, its series read through
HistoryReads (at most once per snapshot), then rendered once and served as bytes with an ETag until the
next snapshot. Errors as everywhere: a bad range, currency or query value is a 400 that says what is
allowed; a coin not configured in the path, or history off, a 404; a store that cannot be read (and was
never read) a 503. JSON errors on /api/*, small escaped HTML pages in the visitor's language on /widget*.

The JSON is exactly the contract's: {"symbol", "currency", "range", "points": [[unix_seconds, price]]},
oldest first, at most MAX_POINTS; each point is the last price (close) of its bucket, at the bucket's
end, or at the snapshot's time for the bucket still open (ticker/history/points.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import QueryParams

from ticker.config import Settings
from ticker.history.base import RANGES
from ticker.history.points import chart_points
from ticker.models import Coin, canonical_symbol
from ticker.render.chart_page import ChartRenderer
from ticker.store import SnapshotStore
from ticker.web.history_reads import HistoryReads, Read
from ticker.web.query import _, chart_options, chart_query, echo, select_currency, select_range
from ticker.web.response_cache import NotFound, Prepared, cache_headers
from ticker.web.security import API_HEADERS, COMMON_HEADERS, CorsPolicy, widget_csp
from ticker.web.views import json_bytes

HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"
HISTORY_OFF = _("price history is off on this site")  # a catalog message: the chart's error page translates it


class HistoryViews:
    """Renders the history JSON and the chart from HistoryReads; `demo` labels the chart as simulated."""

    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore,
        reads: HistoryReads,
        renderer: ChartRenderer,
        *,
        demo: bool = False,
    ) -> None:
        self._settings = settings
        self._store = store
        self.reads = reads
        self._renderer = renderer
        self._api_headers = API_HEADERS | CorsPolicy(settings.server.cors_origins).static_headers
        self._demo = demo
        own_css = settings.widget.css_file is not None
        self._chart_headers = {
            "content-security-policy": widget_csp(
                style_hash=renderer.STYLE_HASH,
                script_hash=renderer.SCRIPT_HASH,
                allowed_framers=settings.server.frame_ancestors,
                own_css=own_css,
            )
        }
        base = settings.server.public_url
        self._css_url = f"{base}/widget/site.css" if own_css else None

    # ----------------------------------------------------------------- /api/v1/history/{symbol}

    def history_variant(self, path_params: Mapping[str, Any], query: QueryParams) -> str:
        coin = self._coin(path_params)
        return f"{coin.symbol}|{select_currency(query, self._settings)}|{select_range(query)}"

    async def read_history(self, path_params: Mapping[str, Any], query: QueryParams) -> Read:
        coin = self._coin(path_params)
        return await self.reads.candles(coin.symbol, select_currency(query, self._settings), select_range(query))

    def render_history(self, path_params: Mapping[str, Any], query: QueryParams, read: Read) -> Prepared:
        coin = self._coin(path_params)
        body = {
            "symbol": coin.symbol,
            "currency": select_currency(query, self._settings),
            "range": select_range(query),
            "points": [[at, price] for at, price in chart_points(read.candles, read.now)],
        }
        return self._prepared(json_bytes(body), JSON_TYPE, read, self._api_headers)

    def _coin(self, path_params: Mapping[str, Any]) -> Coin:
        """The path's coin; NotFound when history is off or the coin is not configured."""
        if not self.reads.enabled:
            raise NotFound(HISTORY_OFF)
        raw = str(path_params["symbol"])
        coin = self._settings.coins_by_symbol.get(canonical_symbol(raw))
        if coin is None:
            raise NotFound(f"unknown coin {echo(raw)}; configured: {', '.join(self._settings.coins_by_symbol)}")
        return coin

    # ----------------------------------------------------------------- /widget/chart

    def chart_variant(self, path_params: Mapping[str, Any], query: QueryParams) -> str:
        if not self.reads.enabled:
            raise NotFound(HISTORY_OFF)
        return chart_query(chart_options(query, self._settings))

    async def read_chart(self, path_params: Mapping[str, Any], query: QueryParams) -> Read:
        options = chart_options(query, self._settings)
        return await self.reads.candles(options.coin.symbol, options.currency, options.range)

    def render_chart(self, path_params: Mapping[str, Any], query: QueryParams, read: Read) -> Prepared:
        options = chart_options(query, self._settings)
        base = self._settings.server.public_url
        links = {name: f"{base}/widget/chart?{chart_query(options, range=name)}" for name in RANGES}
        html = self._renderer.document(
            options.coin, options, read.candles, now=read.now, links=links, demo=self._demo, css_url=self._css_url
        )
        return self._prepared(html.encode(), HTML_TYPE, read, self._chart_headers)

    # -----------------------------------------------------------------

    def _prepared(self, body: bytes, content_type: str, read: Read, extra: Mapping[str, str]) -> Prepared:
        poller = self._settings.poller
        snapshot = self._store.current
        caching = cache_headers(
            interval=poller.interval_seconds,
            max_stale=poller.max_stale_seconds,
            generated_at=snapshot.generated_at.timestamp() if snapshot is not None else None,
        )
        return Prepared(body, content_type, COMMON_HEADERS | dict(extra) | caching, read.version, None)
