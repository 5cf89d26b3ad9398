"""What every provider does the same way: one GET, JSON back, failures typed.

Upstream failures come in many shapes (timeouts, refused connections, 429
with Retry-After, Cloudflare HTML pages with status 200, truncated JSON);
they all leave here as ProviderError, carrying the status and any
Retry-After the upstream asked for.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ticker.exceptions import ProviderError
from ticker.providers.budget import RequestBudget
from ticker.telemetry import UPSTREAM_SKIPPED, outcome_of, record_upstream

MAX_BODY_BYTES = 16 * 1024 * 1024  # CoinPaprika's full /tickers is a few MB; anything far larger is wrong
_MESSAGE_CHARS = 160


async def get_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    budget: RequestBudget | None = None,
) -> Any:
    """GET `url` and return its decoded JSON, or raise ProviderError.

    With a budget, the request is charged before it is sent, and not sent at all when none is left.
    """
    if budget is not None and not budget.try_spend():
        wait = budget.wait_seconds()
        UPSTREAM_SKIPPED.labels(provider).inc()
        raise ProviderError(
            provider,
            f"request budget spent ({budget.limits}); next in {wait:.0f} s",
            retry_after=wait,
            over_budget=True,
        )
    started = time.perf_counter()
    try:
        response, content = await _read_capped(client, url, params, headers)
    except _TooLarge as err:
        record_upstream(provider, "invalid_body", time.perf_counter() - started)
        raise ProviderError(provider, f"response too large (over {MAX_BODY_BYTES} bytes)", status=200) from err
    except httpx.TimeoutException as err:
        record_upstream(provider, "timeout", time.perf_counter() - started)
        raise ProviderError(provider, f"timed out ({type(err).__name__})") from err
    except httpx.HTTPError as err:
        record_upstream(provider, "error", time.perf_counter() - started)
        raise ProviderError(provider, f"request failed ({type(err).__name__}: {_short(str(err))})") from err
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        record_upstream(provider, outcome_of(response.status_code), elapsed)
        raise ProviderError(
            provider,
            _redact(f"HTTP {response.status_code}{_detail(content)}", headers),
            status=response.status_code,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
            code=_error_code(content),
        )
    try:
        body = json.loads(content)
    except ValueError as err:
        record_upstream(provider, "invalid_body", elapsed)
        kind = "an HTML page" if content.lstrip()[:1] == b"<" else "invalid JSON"
        raise ProviderError(provider, f"HTTP 200 with {kind} instead of JSON", status=200) from err
    record_upstream(provider, "ok", elapsed)
    return body


class _TooLarge(Exception):
    pass


async def _read_capped(
    client: httpx.AsyncClient, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str] | None
) -> tuple[httpx.Response, bytes]:
    """The response and its body, read no further than MAX_BODY_BYTES: an upstream cannot fill our memory."""
    async with client.stream("GET", url, params=params, headers=headers) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _TooLarge(size)
            chunks.append(chunk)
    return response, b"".join(chunks)


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


def number(value: Any) -> float | None:
    """A JSON number or numeric string as float; None for anything else (bools, text, null)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float | str):
            return float(value)
    except (ValueError, OverflowError):  # text, or an integer too large for a float
        return None
    return None


def json_number(value: Any) -> float | None:
    """A JSON number as float; None for strings too (aggregators send numbers, a string is off-schema)."""
    return None if isinstance(value, str) else number(value)


def unix_time(value: Any) -> datetime | None:
    seconds = number(value)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or seconds > 32503680000:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _detail(content: bytes) -> str:
    """A short, log-safe reason from an error body (JSON message or nothing)."""
    try:
        body = json.loads(content)
    except ValueError:
        return " (HTML page)" if content.lstrip()[:1] == b"<" else ""
    message = _find_message(body)
    return f": {_short(message)}" if message else ""


def _error_code(content: bytes) -> int | None:
    """A numeric `code` in a JSON error body ({"code": -1121, "msg": ...}), if there is one."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


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
