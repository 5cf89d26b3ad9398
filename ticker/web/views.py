"""HTTP endpoints. They read `store.current` and the config; never the network.

Every bad query is a 400 that says what is allowed (JSON on /api/*, a small
escaped HTML page on /widget*); nothing a visitor sends reaches a provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ticker.config import Settings
from ticker.exceptions import QueryError
from ticker.history.base import HistoryStore
from ticker.icons import IconCache
from ticker.lease import LeaseRole
from ticker.live.hub import LiveQuotes, Pair
from ticker.models import Coin, Snapshot, canonical_symbol, iso, utcnow
from ticker.render.board import Board, build_board
from ticker.render.i18n import language
from ticker.render.widget import TEMPLATES, Page, WidgetRenderer
from ticker.store import SnapshotStore
from ticker.top import CoinList
from ticker.web.query import (
    Selection,
    WidgetOptions,
    canonical_query,
    echo,
    error_locale,
    select,
    select_currency,
    select_widget,
    widget_options,
)
from ticker.web.response_cache import NotFound, Prepared, cache_headers
from ticker.web.security import API_HEADERS, COMMON_HEADERS, LANDING_CSP, NO_FRAMING_CSP, CorsPolicy, widget_csp

HTML_TYPE = "text/html; charset=utf-8"
JSON_TYPE = "application/json"
PLAIN_HEADERS = COMMON_HEADERS | {"content-security-policy": NO_FRAMING_CSP}
# A fragment is included into other pages by their servers: it never runs as a document of ours.
FRAGMENT_HEADERS = API_HEADERS
LIVE_CURRENCY = "usd"  # the exchange streams quote in it only
LANDING_CSS = (TEMPLATES / "landing.css").read_bytes()


class Views:
    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore,
        renderer: WidgetRenderer,
        icons: IconCache,
        *,
        clock: Callable[[], datetime] = utcnow,
        lease_role: Callable[[], LeaseRole] = lambda: "single",
        live: LiveQuotes | None = None,
    ) -> None:
        """`live`: the live quotes of the exchange streams (live.enabled), which reach browsers through
        /api/v1/stream and /widget/stream between snapshots; pages stay made from the snapshot."""
        self._settings = settings
        self.live = live
        self._store = store
        self.coins = CoinList(settings.market.coins, settings.market.top)  # with "top:N", as of the snapshot
        self.history: HistoryStore | None = None  # set by the lifespan once the store is open
        self._renderer = renderer
        self._icons = icons
        self._api_headers = API_HEADERS | CorsPolicy(settings.server.cors_origins).static_headers
        self._widget_headers = {
            "content-security-policy": widget_csp(
                style_hash=f"{renderer.STYLE_HASH} {renderer.TABLE_STYLE_HASH}",
                script_hash=renderer.SCRIPT_HASH,
                allowed_framers=settings.server.frame_ancestors,
                own_css=settings.widget.css_file is not None,
            )
        }
        self._clock = clock
        self.lease_role = lease_role  # who polls; /metrics reads it too

    def board(
        self,
        coins: Sequence[Coin],
        currency: str,
        now: datetime,
        *,
        with_history: bool = False,
        snapshot: Snapshot | None = None,
    ) -> Board:
        """The board of `coins` from `snapshot` (default: the store's current one)."""
        poller = self._settings.poller
        return build_board(
            snapshot if snapshot is not None else self._store.current,
            coins,
            currency,
            now=now,
            stale_after=poller.stale_after_seconds,
            max_stale=poller.max_stale_seconds,
            with_history=with_history,
        )

    def overlaid(self) -> Snapshot | None:
        """The current snapshot with the live quotes newer than its own laid over it (the snapshot itself
        without live quotes or without a snapshot)."""
        snapshot = self._store.current
        if snapshot is None or self.live is None:
            return snapshot
        newer = self.live.newer_than(snapshot)
        return replace(snapshot, quotes={**snapshot.quotes, **newer}) if newer else snapshot

    def page_version(self) -> int:
        """What widget pages are made from: the snapshot and, with live streams, the hub's quotes. Both
        counters only grow, so their sum changes exactly when either does (a cached page's validity)."""
        return self._store.version + (self.live.version if self.live is not None else 0)

    def live_coins(self, path_params: Mapping[str, Any], query: QueryParams, pairs: Collection[Pair]) -> bytes | None:
        """The `quotes` event's data for the selection's coins among `pairs` (symbol, currency) in its currency:
        `{"currency", "coins": [coin objects exactly as /api/v1/prices has them, from the overlaid snapshot]}`;
        None when none of them is in the selection. Raises QueryError or NotFound on a bad query."""
        selection = select(query, self._settings, self.current())
        coins = [coin for coin in selection.coins if (coin.symbol, selection.currency) in pairs]
        if not coins:
            return None
        board = self.board(coins, selection.currency, self._clock(), snapshot=self.overlaid())
        base = self._settings.server.public_url
        return json_bytes({"currency": selection.currency, "coins": [row.to_json(base) for row in board.rows]})

    def live_rows(self, path_params: Mapping[str, Any], query: QueryParams, pairs: Collection[Pair]) -> bytes | None:
        """The `rows` event's data: `{"html": the [data-k] elements of the widget's coins among `pairs`}`, as
        the widget for this query renders them from the overlaid snapshot; None when none is in it."""
        options = widget_options(query, self._settings)
        selection = select_widget(query, self._settings, options.layout, self.current())
        coins = tuple(coin for coin in selection.coins if (coin.symbol, selection.currency) in pairs)
        if not coins:
            return None
        now = self._clock()
        board, others = self._widget_boards(replace(selection, coins=coins), options, now, self.overlaid())
        html = self._renderer.rows(board, options, now=now, page=self._page(selection, options), others=others)
        return json_bytes({"html": html})

    def current(self) -> tuple[Coin, ...]:
        """The coins of the current snapshot ("top:N" resolved as the poller last did)."""
        return self.coins.current(self._store.current)

    def prices_variant(self, path_params: Mapping[str, Any], query: QueryParams) -> str:
        selection = select(query, self._settings, self.current())
        return f"{','.join(c.symbol for c in selection.coins)}|{selection.currency}"

    def price_variant(self, path_params: Mapping[str, Any], query: QueryParams) -> str:
        return f"{self._coin(path_params).symbol}|{select_currency(query, self._settings)}"

    def widget_variant(self, path_params: Mapping[str, Any], query: QueryParams) -> str:
        options = widget_options(query, self._settings)
        return canonical_query(select_widget(query, self._settings, options.layout, self.current()), options)

    def render_prices(self, path_params: Mapping[str, Any], query: QueryParams) -> Prepared:
        """/api/v1/prices: the snapshot with the streams' newer quotes laid over it, like the widget."""
        version = self.page_version()
        selection = select(query, self._settings, self.current())
        board = self.board(selection.coins, selection.currency, self._clock(), snapshot=self.overlaid())
        return self._prepared(json_bytes(board.to_json(self._settings.server.public_url)), JSON_TYPE, board, version)

    def render_price(self, path_params: Mapping[str, Any], query: QueryParams) -> Prepared:
        version = self.page_version()
        coin = self._coin(path_params)
        currency = select_currency(query, self._settings)
        board = self.board((coin,), currency, self._clock(), snapshot=self.overlaid())
        row = board.rows[0].to_json(self._settings.server.public_url)
        body = row | {"currency": currency, "generated_at": iso(board.generated_at)}
        return self._prepared(json_bytes(body), JSON_TYPE, board, version)

    def _coin(self, path_params: Mapping[str, Any]) -> Coin:
        raw = str(path_params["symbol"])
        coins = self.coins.by_symbol(self._store.current)
        coin = coins.get(canonical_symbol(raw))
        if coin is None:
            raise NotFound(f"unknown coin {echo(raw)}; configured: {', '.join(coins)}")
        return coin

    def render_widget(self, path_params: Mapping[str, Any], query: QueryParams) -> Prepared:
        return self._html(query, fragment=False)

    def render_fragment(self, path_params: Mapping[str, Any], query: QueryParams) -> Prepared:
        return self._html(query, fragment=True)

    def _html(self, query: QueryParams, *, fragment: bool) -> Prepared:
        """The widget page or fragment from the overlaid snapshot: widget.js refreshes its rows from the
        fragment, which must never put a polled price back over a newer live one."""
        version = self.page_version()
        options = widget_options(query, self._settings)
        selection = select_widget(query, self._settings, options.layout, self.current())
        now = self._clock()
        board, others = self._widget_boards(selection, options, now, self.overlaid())
        page = self._page(selection, options)
        if fragment:
            html = self._renderer.fragment(board, options, now=now, page=page, others=others)
            return self._prepared(html.encode(), HTML_TYPE, board, version, FRAGMENT_HEADERS, others)
        html = self._renderer.document(board, options, now=now, page=page, others=others)
        return self._prepared(html.encode(), HTML_TYPE, board, version, self._widget_headers, others)

    def _widget_boards(
        self, selection: Selection, options: WidgetOptions, now: datetime, snapshot: Snapshot | None
    ) -> tuple[Board, tuple[Board, ...]]:
        """A widget's board in its first currency (with history for sparklines) and in its further ones."""
        sparkline = options.sparkline or (options.layout == "table" and "sparkline" in options.columns)
        with_history = sparkline and selection.currency == self._settings.market.default_currency
        board = self.board(selection.coins, selection.currency, now, with_history=with_history, snapshot=snapshot)
        others = tuple(
            self.board(selection.coins, currency, now, snapshot=snapshot) for currency in selection.more_currencies
        )
        return board, others

    def _page(self, selection: Selection, options: WidgetOptions) -> Page:
        base = self._settings.server.public_url
        query = canonical_query(selection, options)
        live = self.live is not None and selection.currency == LIVE_CURRENCY
        return Page(
            icon_base=base,
            fragment_url=f"{base}/widget/fragment?{query}",
            css_url=f"{base}/widget/site.css" if self._settings.widget.css_file else None,
            live_url=f"{base}/widget/stream?{query}" if live else None,
        )

    def _prepared(
        self,
        body: bytes,
        content_type: str,
        board: Board,
        version: int,
        extra: Mapping[str, str] | None = None,
        others: Sequence[Board] = (),
    ) -> Prepared:
        """`others`: the boards of a widget's further currencies; the body changes when any board's rows do."""
        poller = self._settings.poller
        generated = board.generated_at.timestamp() if board.generated_at else None
        caching = cache_headers(
            interval=poller.interval_seconds, max_stale=poller.max_stale_seconds, generated_at=generated
        )
        headers = COMMON_HEADERS | dict(self._api_headers if extra is None else extra) | caching
        until = [b.valid_until for b in (board, *others) if b.valid_until is not None]
        valid_until = min(until).timestamp() if until else None
        return Prepared(body, content_type, headers, version, valid_until)

    def json_error_page(self, err: Exception, status: int, query: Mapping[str, str]) -> Response:
        return JSONResponse({"error": str(err)}, status, headers=COMMON_HEADERS | self._api_headers)

    def html_error_page(self, err: Exception, status: int, query: Mapping[str, str]) -> Response:
        """The error in the visitor's `locale` when that one is valid, else in widget.locale."""
        locale = self._settings.widget.locale
        try:
            locale = error_locale(query, self._settings)
        except QueryError:
            pass
        lang = language(locale)
        message = (
            err.translated(lang) if isinstance(err, QueryError) else lang.gettext(str(err))
        )  # a catalog's, or as is
        return HTMLResponse(self._renderer.error(message, locale), status, headers=COMMON_HEADERS | API_HEADERS)

    async def icon(self, request: Request) -> Response:
        """A coin's icon from our cache, or its monogram; never a redirect to the provider's host."""
        coin = self.coins.by_symbol(self._store.current).get(canonical_symbol(request.path_params["symbol"]))
        if coin is None:
            return Response("unknown coin", 404, media_type="text/plain", headers=PLAIN_HEADERS)
        icon = self._icons.icon_or_monogram(coin.symbol)
        headers = PLAIN_HEADERS | {"cache-control": "public, max-age=86400", "etag": icon.etag}
        if request.headers.get("if-none-match") == icon.etag:
            return Response(status_code=304, headers=headers)
        return Response(icon.body, media_type=icon.content_type, headers=headers)

    async def embed_js(self, request: Request) -> Response:
        headers = PLAIN_HEADERS | {"cache-control": "public, max-age=3600"}
        return Response(self._renderer.embed_js(), media_type="text/javascript; charset=utf-8", headers=headers)

    async def landing_css(self, request: Request) -> Response:
        return Response(LANDING_CSS, media_type="text/css; charset=utf-8", headers=PLAIN_HEADERS)

    async def index(self, request: Request) -> Response:
        """The landing page in widget.locale, or in `?locale=` (an allowed one) for an operator reading
        another language; its previews and snippets then use that locale too."""
        base = self._settings.server.public_url or str(request.base_url).rstrip("/")
        try:
            locale = error_locale(request.query_params, self._settings) if "locale" in request.query_params else None
        except QueryError as err:
            return self.html_error_page(err, 400, request.query_params)
        return HTMLResponse(
            self._renderer.landing(base, locale),
            media_type=HTML_TYPE,
            headers=COMMON_HEADERS | {"content-security-policy": LANDING_CSP},
        )

    async def site_css(self, request: Request) -> Response:
        """The operator's own stylesheet (widget.css_file), served by us so visitors contact no other host."""
        path = self._settings.widget.css_file
        if path is None:
            return Response("no widget.css_file configured", 404, media_type="text/plain", headers=PLAIN_HEADERS)
        try:
            css = path.read_bytes()
        except OSError:
            return Response("widget.css_file unreadable", 404, media_type="text/plain", headers=PLAIN_HEADERS)
        return Response(css, media_type="text/css; charset=utf-8", headers=PLAIN_HEADERS)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=PLAIN_HEADERS)

    async def readyz(self, request: Request) -> Response:
        """Ready while any price can be served, fresh or stale; upstream trouble alone never makes it 503."""
        now = self._clock()
        snapshot = self._store.current
        market = self._settings.market
        coins = self.coins.current(snapshot)
        board = self.board(coins, market.default_currency, now)
        ages = [
            (now - quote.updated_at).total_seconds()
            for quote in (snapshot.quotes.values() if snapshot else ())
            if quote.updated_at is not None
        ]
        newest_age = min(ages) if ages else None
        if not market.top and all(coin.is_static for coin in coins):
            ready = True
        else:
            ready = newest_age is not None and newest_age <= self._settings.poller.max_stale_seconds
        # state, last_success, last_error (keys already redacted by the session), retry_at: as of the last round.
        providers = {name: status.to_dict() for name, status in (snapshot.providers.items() if snapshot else ())}
        body = {
            "ready": ready,
            "stale": board.stale,
            "age_seconds": None if newest_age is None else round(newest_age, 3),
            "providers": providers,
            "lease": self.lease_role(),
        }
        if self.live is not None:  # the streams as this instance knows them (its own, or the holder's via Redis)
            body["streams"] = {name: state.to_dict() for name, state in sorted(self.live.streams.items())}
        return JSONResponse(body, status_code=200 if ready else 503, headers=PLAIN_HEADERS)


def json_bytes(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
