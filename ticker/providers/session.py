"""UpstreamSession: the one gate every request to one upstream passes.

A provider (or one icon CDN host) gets one session. Before each request it
checks the upstream's hold (Retry-After, block, backoff: manners.py) and
its request budget (budget.py); it bounds the whole request, connect to
last byte, by `poller.timeout_seconds` (httpx's own timeout is per read, so
an upstream trickling a byte at a time would never time out) and caps the
body; it records a 429/418, a Retry-After or a block the moment it arrives,
on any endpoint, and holds the whole upstream for it; it keeps the
"skip this symbol for a day" lists and the upstream metrics.

Failures come in many shapes (timeouts, refused connections, 429 with
Retry-After, Cloudflare HTML pages with status 200, truncated JSON); they
all leave here as ProviderError, carrying the status and any Retry-After.
Providers are left to build a request and parse a body.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from ticker.exceptions import ProviderError
from ticker.models import SavedManners
from ticker.providers.budget import RequestBudget
from ticker.providers.manners import KEY_ERROR_CODES, Manners
from ticker.telemetry import UPSTREAM_SKIPPED, outcome_of, record_upstream

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024  # CoinPaprika's full /tickers is a few MB; anything far larger is wrong
_MESSAGE_CHARS = 160

BodyCheck = Callable[[Any], None]  # raises ProviderError for an error carried inside a 200 body


class Quarantine:
    """Symbols (pairs, products) an upstream says it does not know: skipped for a while, then asked again.

    Kept per symbol, so one delisted coin costs one request a day instead of one every round.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._monotonic = monotonic

    def __contains__(self, key: str) -> bool:
        """Whether `key` was quarantined and not released since (due again or not)."""
        return key in self._until

    def skipped(self, key: str) -> bool:
        """Whether `key` must not be asked for now."""
        return self._until.get(key, 0.0) > self._monotonic()

    def skip(self, key: str, seconds: float) -> bool:
        """Skip `key` for `seconds`; True the first time (so callers log it once)."""
        first = key not in self._until
        self._until[key] = self._monotonic() + seconds
        return first

    def release(self, key: str) -> bool:
        """The upstream answered for `key` again; True if it had been quarantined."""
        return self._until.pop(key, None) is not None


class UpstreamSession:
    """Every request one provider's API (or one icon host) is sent goes through here."""

    def __init__(
        self,
        name: str,
        client: httpx.AsyncClient,
        manners: Manners,
        *,
        budget: RequestBudget | None = None,
        timeout: float = 10.0,
        max_bytes: int | None = None,
        spacing: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.name = name
        self.manners = manners
        self.budget = budget
        self.timeout = timeout
        self.quarantine = Quarantine(monotonic)
        self.reserve: tuple[int, ...] = ()  # budget left to price rounds: per window, requests side work may not use
        self.deadline: float | None = None  # monotonic: no request starts after it, none runs past it
        # Set by the poller: a price round is under way, and when (monotonic) the next one starts. A side
        # request never takes a pacing slot that a price request of the round (or the next) would wait for.
        self.in_round = False
        self.next_round: float | None = None
        # How to set this upstream's API key, added to a refused-key answer (401/403, KEY_ERROR_CODES): the
        # provider sets it, since only it knows its config keys and where a free key comes from.
        self.key_hint: str | None = None
        self._client = client
        self._max_bytes = max_bytes
        self._spacing = spacing  # seconds between request starts, where the upstream asks for pacing
        self._next_start = 0.0
        self._monotonic = monotonic
        self._sleep = sleep

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        side: bool = False,
        check: BodyCheck | None = None,
    ) -> Any:
        """GET `url` and return its decoded JSON, or raise ProviderError.

        `side`: metadata or other side work, which may only spend budget the price rounds will not need.
        `check`: raises ProviderError for an error inside a 200 body (Kraken's `error` list), so that a
        rate limit reported that way holds the provider like a 429 does.
        """
        status, _, content = await self.get(url, params=params, headers=headers, side=side)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError) as err:  # RecursionError: nesting deeper than the parser's stack
            kind = "an HTML page" if content.lstrip()[:1] == b"<" else "invalid JSON"
            raise self._failed(
                ProviderError(self.name, f"HTTP {status} with {kind} instead of JSON", status=status)
            ) from err
        if check is not None:
            try:
                check(body)
            except ProviderError as err:
                raise self._failed(err) from None
        return body

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        side: bool = False,
        max_bytes: int | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> tuple[int, httpx.Headers, bytes]:
        """GET `url` and return (status 200, headers, body), or raise ProviderError (nothing sent if held)."""
        self._check_hold()
        await self._pace(side)
        self._admit(side)
        limit = max_bytes or self._max_bytes or MAX_BODY_BYTES
        started = time.perf_counter()
        seconds = self.timeout
        if self.deadline is not None:
            seconds = min(seconds, max(self.deadline - self._monotonic(), 0.0))
        try:
            with anyio.fail_after(seconds):
                response, content = await self._read_capped(url, params, headers, limit, extensions)
        except _TooLarge as err:
            record_upstream(self.name, "invalid_body", time.perf_counter() - started)
            raise ProviderError(self.name, f"response too large (over {limit} bytes)", status=200) from err
        except TimeoutError as err:
            record_upstream(self.name, "timeout", time.perf_counter() - started)
            raise ProviderError(self.name, f"timed out (whole request over {seconds:.3g} s)") from err
        except httpx.TimeoutException as err:
            record_upstream(self.name, "timeout", time.perf_counter() - started)
            raise ProviderError(self.name, f"timed out ({type(err).__name__})") from err
        except httpx.ConnectError as err:  # offline, DNS, firewall: say which host, so the operator can check
            record_upstream(self.name, "error", time.perf_counter() - started)
            raise ProviderError(self.name, f"{UNREACHABLE} {_host(url)} ({_why_unreachable(err)})") from err
        except httpx.HTTPError as err:
            record_upstream(self.name, "error", time.perf_counter() - started)
            raise ProviderError(self.name, f"request failed ({type(err).__name__}: {_short(str(err))})") from err
        elapsed = time.perf_counter() - started
        record_upstream(self.name, outcome_of(response.status_code), elapsed)
        if response.status_code != 200:
            code = _error_code(content)
            hint = f"; {self.key_hint}" if self.key_hint and _key_refused(response.status_code, code) else ""
            raise self._failed(
                ProviderError(
                    self.name,
                    _redact(f"HTTP {response.status_code}{_detail(content)}", headers) + hint,
                    status=response.status_code,
                    retry_after=retry_after_seconds(response.headers.get("retry-after")),
                    code=code,
                )
            )
        return response.status_code, response.headers, content

    async def _pace(self, side: bool) -> None:
        """Space request starts by `spacing`; the slot is taken before waiting, so concurrent callers queue.

        Price rounds come first: a side request raises (held, nothing sent) rather than take a slot during a
        price round, or one whose spacing would still run when the next round starts.
        """
        if self._spacing <= 0:
            return
        now = self._monotonic()
        start = max(now, self._next_start)
        if side and (self.in_round or (self.next_round is not None and start + self._spacing > self.next_round)):
            wait = max((self.next_round or now) - now, 0.0) + self._spacing
            raise ProviderError(
                self.name,
                f"its requests are spaced {self._spacing:g} s apart and the price rounds need the next slot",
                retry_after=wait,
                held=True,
            )
        self._next_start = start + self._spacing
        if start > now:
            await self._sleep(start - now)

    def _check_hold(self) -> None:
        """Raise, sending nothing, while the upstream is held (Retry-After, block) or backing off."""
        wait = self.manners.wait_seconds()
        if wait > 0:
            UPSTREAM_SKIPPED.labels(self.name).inc()
            reason = self.manners.hold_reason if self.manners.held_seconds() > 0 else "backing off after failures"
            if reason and self.key_hint:  # said once, as the hold began; not again with every refused request
                reason = reason.replace(f"; {self.key_hint}", "")
            raise ProviderError(self.name, f"held for {wait:.0f} s more ({reason})", retry_after=wait, held=True)

    def _admit(self, side: bool) -> None:
        """Raise, sending nothing, while held, when the round's time is up, or when the budget is spent."""
        self._check_hold()
        if self.deadline is not None and self._monotonic() >= self.deadline:
            raise ProviderError(self.name, "the round's time for this provider is used up", held=True)
        if self.budget is None:
            return
        reserve = self.reserve if side else None
        if not self.budget.try_spend(reserve):
            wait = self.budget.wait_seconds(reserve)
            UPSTREAM_SKIPPED.labels(self.name).inc()
            what = "request budget left over by price rounds" if side else "request budget"
            raise ProviderError(
                self.name,
                f"{what} spent ({self.budget.limits}); next in {wait:.0f} s",
                retry_after=wait,
                over_budget=True,
            )

    def _failed(self, err: ProviderError) -> ProviderError:
        """Hold the upstream at once for a Retry-After, a rate limit or a block; return `err` to raise."""
        self.manners.hold_for(err)
        return err

    async def _read_capped(
        self,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        limit: int,
        extensions: Mapping[str, Any] | None,
    ) -> tuple[httpx.Response, bytes]:
        """The response and its body, read no further than `limit`: an upstream cannot fill our memory."""
        request = self._client.build_request(
            "GET", url, params=params, headers=headers, extensions=dict(extensions or {})
        )
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _TooLarge(size)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return response, b"".join(chunks)

    # -- saved state: holds and budget bind whoever polls next --------------------------------

    def saved(self) -> SavedManners:
        wall = self.manners.wall()
        hold = self.manners.saved()
        sent = tuple(self.budget.sent_at(wall)) if self.budget is not None else ()
        return SavedManners(hold.hold_until, hold.reason, sent)

    def restore(self, saved: SavedManners) -> None:
        self.manners.restore(saved)
        if self.budget is not None and saved.sent:
            self.budget.restore(saved.sent, self.manners.wall())


class _TooLarge(Exception):
    pass


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), 7 * 86400.0)


def _detail(content: bytes) -> str:
    """A short, log-safe reason from an error body (JSON message or nothing)."""
    try:
        body = json.loads(content)
    except ValueError:
        return " (HTML page)" if content.lstrip()[:1] == b"<" else ""
    message = _find_message(body)
    return f": {_short(message)}" if message else ""


def _error_code(content: bytes) -> int | None:
    """A numeric error code in a JSON error body, if there is one.

    Binance: `{"code": -1121, "msg": ...}`; CoinGecko: `{"status": {"error_code": 10002, ...}}`, or
    `error_code` beside `status` (its 400 for a key sent to the wrong host).
    """
    try:
        body = json.loads(content)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    for code in (
        body.get("code"),
        body.get("error_code"),
        status.get("error_code") if isinstance(status, dict) else None,
    ):
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    return None


def _key_refused(status: int, code: int | None) -> bool:
    return status in (401, 403) or code in KEY_ERROR_CODES


UNREACHABLE = "cannot reach"  # starts the message of a failed connection: "cannot reach HOST (REASON)"
OFFLINE_HINT = "no provider could be reached: check the network (DNS, firewall, proxy), or try `ticker serve --demo`"
_UNREACHABLE_HOST = re.compile(UNREACHABLE + r" (\S+) \(")


def unreachable_host(message: str) -> str | None:
    """The host a ProviderError message says could not be reached (providers may prefix it), else None."""
    found = _UNREACHABLE_HOST.search(message)
    return found.group(1) if found else None


def _host(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port}" if parsed.port is not None else parsed.host


def _why_unreachable(err: BaseException) -> str:
    """A few words on why a connection failed: the OS error under httpx's, else its text."""
    cause: BaseException | None = err
    seen: set[int] = set()  # a re-raised exception can make the chain a cycle
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return "name lookup failed" if cause.errno == socket.EAI_AGAIN else "name not found"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable" if cause.errno == errno.ENETUNREACH else "host unreachable"
        cause = cause.__cause__ or cause.__context__
    text = str(err).lower()
    if "name or service not known" in text or "nodename nor servname" in text:
        return "name not found"
    if "name resolution" in text:
        return "name lookup failed"
    if "refused" in text:
        return "connection refused"
    return _short(str(err)) or type(err).__name__


def _find_message(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("error_message", "error", "message", "msg", "Message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value and isinstance(value[0], str):
                return "; ".join(str(v) for v in value)
        status = body.get("status")
        if isinstance(status, dict):
            return _find_message(status)
    return None


def _redact(message: str, headers: Mapping[str, str] | None) -> str:
    """An upstream may echo the key it refused ("invalid key <key>"): never let it into a message."""
    for name, value in (headers or {}).items():
        if name.lower() not in ("accept", "user-agent") and len(value) >= 6:
            message = message.replace(value, "[key]")
    return message


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"
