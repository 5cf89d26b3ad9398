"""HTTP endpoints. They read `store.current` and the config; never the network.

Every bad query is a 400 that says what is allowed (JSON on /api/*, a small
escaped HTML page on /widget*); nothing a visitor sends reaches a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ticker.board import Board, build_board
from ticker.coins import canonical_symbol
from ticker.config import Settings
from ticker.exceptions import QueryError
from ticker.models import Coin, utcnow
from ticker.query import echo, select, select_currency, widget_options
from ticker.store import SnapshotStore
from ticker.widget import WidgetRenderer

HTML_TYPE = "text/html; charset=utf-8"


class Views:
    def __init__(
        self,
        settings: Settings,
        store: SnapshotStore,
        renderer: WidgetRenderer,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._store = store
        self._renderer = renderer
        self._clock = clock

    def board(self, coins: Sequence[Coin], currency: str, now: datetime) -> Board:
        poller = self._settings.poller
        return build_board(
            self._store.current,
            coins,
            currency,
            now=now,
            stale_after=poller.stale_after_seconds,
            max_stale=poller.max_stale_seconds,
        )

    async def prices(self, request: Request) -> Response:
        try:
            selection = select(request.query_params, self._settings)
        except QueryError as err:
            return json_error(str(err), 400)
        return JSONResponse(self.board(selection.coins, selection.currency, self._clock()).to_json())

    async def price(self, request: Request) -> Response:
        raw = request.path_params["symbol"]
        coin = self._settings.coins_by_symbol.get(canonical_symbol(raw))
        if coin is None:
            allowed = ", ".join(self._settings.coins_by_symbol)
            return json_error(f"unknown coin {echo(raw)}; configured: {allowed}", 404)
        try:
            currency = select_currency(request.query_params, self._settings)
        except QueryError as err:
            return json_error(str(err), 400)
        board = self.board((coin,), currency, self._clock())
        body = board.rows[0].to_json() | {"currency": currency, "generated_at": board.to_json()["generated_at"]}
        return JSONResponse(body)

    async def widget(self, request: Request) -> Response:
        return self._html(request, fragment=False)

    async def fragment(self, request: Request) -> Response:
        return self._html(request, fragment=True)

    def _html(self, request: Request, *, fragment: bool) -> Response:
        try:
            selection = select(request.query_params, self._settings)
            options = widget_options(request.query_params, self._settings)
        except QueryError as err:
            return HTMLResponse(self._renderer.error(str(err)), 400, media_type=HTML_TYPE)
        now = self._clock()
        board = self.board(selection.coins, selection.currency, now)
        if fragment:
            return HTMLResponse(self._renderer.fragment(board, options, now=now), media_type=HTML_TYPE)
        css_url = "/widget/site.css" if self._settings.widget.css_file else None
        return HTMLResponse(self._renderer.document(board, options, now=now, css_url=css_url), media_type=HTML_TYPE)

    async def site_css(self, request: Request) -> Response:
        """The operator's own stylesheet (widget.css_file), served by us so visitors contact no other host."""
        path = self._settings.widget.css_file
        if path is None:
            return Response("no widget.css_file configured", 404, media_type="text/plain")
        try:
            css = path.read_bytes()
        except OSError:
            return Response("widget.css_file unreadable", 404, media_type="text/plain")
        return Response(css, media_type="text/css; charset=utf-8")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready while any price can be served, fresh or stale; upstream trouble alone never makes it 503."""
        now = self._clock()
        snapshot = self._store.current
        market = self._settings.market
        board = self.board(market.coins, market.default_currency, now)
        ages = [
            (now - quote.updated_at).total_seconds()
            for quote in (snapshot.quotes.values() if snapshot else ())
            if quote.updated_at is not None
        ]
        newest_age = min(ages) if ages else None
        if not market.live_coins:
            ready = True
        else:
            ready = newest_age is not None and newest_age <= self._settings.poller.max_stale_seconds
        providers = {
            name: {"state": status.state, "last_success": status.to_dict()["last_success"]}
            for name, status in (snapshot.providers.items() if snapshot else ())
        }
        body = {
            "ready": ready,
            "stale": board.stale,
            "age_seconds": None if newest_age is None else round(newest_age, 3),
            "providers": providers,
        }
        return JSONResponse(body, status_code=200 if ready else 503)


def json_error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
