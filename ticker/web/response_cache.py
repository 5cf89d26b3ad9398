"""Responses rendered once per snapshot and served as bytes.

The price data changes once per poll, so a visitor's request is a dict
lookup: the body (and its gzip form, compressed once), a strong ETag and
every header are prepared the first time a variant is asked for and kept
until the snapshot changes or a coin's stale/unavailable state flips. The
cache is keyed by the raw query string (at most MAX_QUERY_BYTES) and
bounded (LRU), so no query can make the server hold unbounded memory.

The endpoints are plain ASGI callables (no Request object, no middleware
on the hot path); a query that fails validation gets its error response
rendered fresh and never cached.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Generic, TypeVar

from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ticker.exceptions import QueryError
from ticker.web.query import ngettext
from ticker.web.security import API_HEADERS, COMMON_HEADERS, CorsPolicy

logger = logging.getLogger(__name__)

MAX_VARIANTS = 512
MAX_QUERY_BYTES = 4096  # every valid query fits; a longer one is refused, never rendered or cached
PLAIN_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
COMMON_RAW = [(name.encode(), value.encode()) for name, value in (COMMON_HEADERS | API_HEADERS).items()]
GZIP_MIN_BYTES = 512
T = TypeVar("T")


class NotFound(Exception):
    """The path names something not configured (404, with a message that says what is)."""


class Unavailable(Exception):
    """What the page is made from cannot be read just now (503); nothing was read before to serve instead."""


@dataclass
class Prepared:
    """One rendered variant: body, validators and headers, ready to send."""

    body: bytes
    content_type: str
    headers: Mapping[str, str]
    version: int  # the store version it was rendered from
    valid_until: float | None  # epoch seconds when a coin's stale state flips; None: until the next snapshot
    etag: bytes = b""
    _raw: list[tuple[bytes, bytes]] = field(default_factory=list)
    _gzip: bytes | None = None

    def __post_init__(self) -> None:
        self.etag = b'"' + hashlib.sha256(self.body).hexdigest()[:32].encode() + b'"'
        self._raw = [(b"content-type", self.content_type.encode()), (b"etag", self.etag)]
        self._raw += [(name.lower().encode(), value.encode()) for name, value in self.headers.items()]

    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzip

    def fresh(self, version: int, now: float) -> bool:
        return self.version == version and (self.valid_until is None or now < self.valid_until)

    def varying(self, name: str) -> Prepared:
        """This rendering with `name` added to its one Vary header (some caches read only one of several)."""
        vary = [v.strip() for key, value in self.headers.items() if key.lower() == "vary" for v in value.split(",")]
        if name.lower() in (v.lower() for v in vary):
            return self
        headers = {key: value for key, value in self.headers.items() if key.lower() != "vary"}
        return replace(self, headers=headers | {"vary": ", ".join([*filter(None, vary), name])})


def cache_headers(*, interval: float, max_stale: float, generated_at: float | None) -> dict[str, str]:
    """Constant per snapshot (never the request time): a CDN may serve it for an interval, and on through errors."""
    headers = {
        "cache-control": (
            f"public, max-age={max(int(interval), 1)}, stale-while-revalidate={max(int(interval), 1)}, "
            f"stale-if-error={int(max_stale)}"
        ),
        "vary": "Accept-Encoding",
    }
    if generated_at is not None:
        headers["last-modified"] = format_datetime(datetime.fromtimestamp(generated_at, UTC), usegmt=True)
    return headers


Render = Callable[[Mapping[str, Any], QueryParams], Prepared]
VariantKey = Callable[[Mapping[str, Any], QueryParams], str]  # validates (QueryError, NotFound) and names the variant
# (the error, its status, the request's query): the query names the locale an HTML error page speaks
ErrorPage = Callable[[Exception, int, Mapping[str, str]], Response]


class PreparedEndpoint:
    """An ASGI endpoint that serves `render`'s output from a bounded cache of variants."""

    def __init__(
        self,
        render: Render,
        error_page: ErrorPage,
        version: Callable[[], int],
        *,
        variant: VariantKey | None = None,
        clock: Callable[[], float] = time.time,
        max_variants: int = MAX_VARIANTS,
        cors: CorsPolicy | None = None,
    ) -> None:
        self._cors = cors
        self._render = render
        self._error_page = error_page
        self._version = version
        self._clock = clock
        self._max = max_variants
        self._variant = variant
        self._cache: OrderedDict[tuple[str, bytes], Prepared] = OrderedDict()  # raw query -> rendering
        self._variants: OrderedDict[str, Prepared] = OrderedDict()  # canonical variant -> rendering
        self.renders = 0  # how many bodies were rendered, for tests and the benchmark
        self.statuses: Counter[int] = Counter()  # responses by status, for /metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS":
            await self._preflight(scope, send)
            return
        try:
            prepared = await self.prepared(scope)
        except Exception as err:
            await self._failed(err, scope, receive, send)
            return
        # The prepared headers already say Vary: Origin where the policy needs it (see _finish).
        extra = self._cors.allow_origin(header_value(scope, b"origin")) if self._cors else []
        self.statuses[await _send(prepared, scope, send, extra)] += 1

    async def prepared(self, scope: Scope) -> Prepared:
        """The rendering this request gets (ReadingEndpoint awaits its data here); raises what `get` raises."""
        return self.get(scope)

    async def _failed(self, err: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """The answer to a request that got no rendering: 400, 404 or 503 saying why, else a plain 500."""
        status = 400 if isinstance(err, QueryError) else 404 if isinstance(err, NotFound) else 503
        if isinstance(err, QueryError | NotFound | Unavailable):
            self.statuses[status] += 1
            await self.error_page(err, status, scope)(scope, receive, send)
            return
        # a rendering bug: a plain 500, logged, never a traceback page
        logger.error("rendering %s failed", scope["path"], exc_info=err)
        self.statuses[500] += 1
        headers = [*COMMON_RAW, *PLAIN_TEXT, *self._cors_headers(scope)]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})

    async def _preflight(self, scope: Scope, send: Send) -> None:
        headers = COMMON_RAW + (self._cors.preflight(header_value(scope, b"origin")) if self._cors else [])
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        self.statuses[204] += 1

    def get(self, scope: Scope) -> Prepared:
        """The current rendering for this request's path and query; raises QueryError or NotFound."""
        key, prepared = self._cached(scope)
        if prepared is None:
            prepared = self._variant_for(scope)
            _remember(self._cache, key, prepared, self._max)
        return prepared

    def _cached(self, scope: Scope) -> tuple[tuple[str, bytes], Prepared | None]:
        """This path and raw query's cache key, and its rendering if still fresh; raises on a query too long."""
        if len(scope["query_string"]) > MAX_QUERY_BYTES:
            too_long = ngettext(
                "query too long (at most %(limit)d byte)", "query too long (at most %(limit)d bytes)", MAX_QUERY_BYTES
            )
            raise QueryError.of(too_long, limit=MAX_QUERY_BYTES)
        key = (scope["path"], scope["query_string"])
        prepared = self._cache.get(key)
        if prepared is None or not prepared.fresh(self._version(), self._clock()):
            return key, None
        return key, prepared

    def _variant_for(self, scope: Scope) -> Prepared:
        """Spellings of one variant (`?coins=btc`, `?coins=BTC&x=1`) share one rendering: junk can't force renders."""
        path_params = scope.get("path_params", {})
        query = QueryParams(scope["query_string"].decode("latin-1"))
        if self._variant is None:
            return self._prepare(path_params, query)
        variant = self._variant(path_params, query)
        prepared = self._variants.get(variant)
        if prepared is None or not prepared.fresh(self._version(), self._clock()):
            prepared = self._prepare(path_params, query)
            _remember(self._variants, variant, prepared, self._max)
        return prepared

    def error_page(self, err: Exception, status: int, scope: Scope) -> Response:
        """An error answer with this endpoint's CORS headers, so a browser of an allowed origin can read it."""
        query = QueryParams(scope.get("query_string", b"").decode("latin-1"))
        response = self._error_page(err, status, query)
        response.raw_headers.extend(self._cors_headers(scope))
        return response

    def _cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        return self._cors.headers_for(header_value(scope, b"origin")) if self._cors else []

    @property
    def cors(self) -> CorsPolicy | None:
        return self._cors

    def _prepare(self, path_params: Mapping[str, Any], query: QueryParams) -> Prepared:
        self.renders += 1
        return self._finish(self._render(path_params, query))

    def _finish(self, prepared: Prepared) -> Prepared:
        vary = self._cors.vary if self._cors else None
        return prepared if vary is None else prepared.varying(vary)


class ReadingEndpoint(PreparedEndpoint, Generic[T]):
    """A PreparedEndpoint whose renderings need data read (awaited) first, from a store that is not a plain
    reference: `read(path_params, query)` gets it, then `render(path_params, query, data)` makes the bytes.

    A request served from the cache reads nothing and awaits nothing. On a miss, `variant` validates the
    query and names the variant; a fresh rendering of that variant is reused; else `read` runs (it may
    raise Unavailable: a 503) and `render` follows. How often the store itself is read is `read`'s
    business (HistoryReads: once per snapshot and series). `get` is not available here: use `prepared`.
    """

    def __init__(
        self,
        read: Callable[[Mapping[str, Any], QueryParams], Awaitable[T]],
        render: Callable[[Mapping[str, Any], QueryParams, T], Prepared],
        error_page: ErrorPage,
        version: Callable[[], int],
        *,
        variant: VariantKey,
        clock: Callable[[], float] = time.time,
        max_variants: int = MAX_VARIANTS,
        cors: CorsPolicy | None = None,
    ) -> None:
        super().__init__(
            _unread, error_page, version, variant=variant, clock=clock, max_variants=max_variants, cors=cors
        )
        self._read = read
        self._render_read = render
        self._variant_key = variant

    async def prepared(self, scope: Scope) -> Prepared:
        key, prepared = self._cached(scope)
        if prepared is not None:
            return prepared
        path_params = scope.get("path_params", {})
        query = QueryParams(scope["query_string"].decode("latin-1"))
        variant = self._variant_key(path_params, query)
        prepared = self._variants.get(variant)
        if prepared is None or not prepared.fresh(self._version(), self._clock()):
            data = await self._read(path_params, query)
            self.renders += 1
            prepared = self._finish(self._render_read(path_params, query, data))
            _remember(self._variants, variant, prepared, self._max)
        _remember(self._cache, key, prepared, self._max)
        return prepared


def _unread(path_params: Mapping[str, Any], query: QueryParams) -> Prepared:
    raise AssertionError("a ReadingEndpoint renders after its read: call `prepared`, not `get`")


def _remember(cache: OrderedDict[Any, Prepared], key: Any, prepared: Prepared, limit: int) -> None:
    cache[key] = prepared
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def header_value(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


async def _send(prepared: Prepared, scope: Scope, send: Send, extra: list[tuple[bytes, bytes]]) -> int:
    if_none_match = accept_encoding = b""
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            if_none_match = value
        elif name == b"accept-encoding":
            accept_encoding = value
    if if_none_match and _matches(if_none_match, prepared.etag):
        await send({"type": "http.response.start", "status": 304, "headers": prepared._raw[1:] + extra})
        await send({"type": "http.response.body", "body": b""})
        return 304
    body = prepared.body
    headers = prepared._raw + extra
    if b"gzip" in accept_encoding and len(body) >= GZIP_MIN_BYTES:
        body = prepared.gzipped()
        headers.append((b"content-encoding", b"gzip"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""})
    return 200


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    if if_none_match.strip() == b"*":
        return True
    return any(candidate.strip().removeprefix(b"W/") == etag for candidate in if_none_match.split(b","))


class FastPaths:
    """ASGI: the hottest exact paths go straight to their endpoint (a PreparedEndpoint, an event stream), before
    Starlette's middleware and router.

    Everything else (and every other method) goes through the full app. The endpoints handle their own
    errors and count their own statuses, so nothing here needs Starlette's error middleware.
    """

    def __init__(self, app: ASGIApp, endpoints: Mapping[str, ASGIApp]) -> None:
        self._app = app
        self._endpoints = dict(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            endpoint = self._endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self._app(scope, receive, send)
