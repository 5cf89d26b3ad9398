"""Failures every provider meets the same way: they all pass through `providers._http.get_json`.

Each provider's test module adds its own (error envelopes, rate-limit shapes) to these.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import fixture_bytes


def transport_failures(truncated_body: bytes) -> list:
    """(outcome, message part, status, retry_after) for the parametrised provider failure tests."""
    html = fixture_bytes("cloudflare_error_page.constructed.html")
    return [
        pytest.param(httpx.ConnectTimeout("timed out"), "timed out (ConnectTimeout)", None, None, id="timeout"),
        pytest.param(
            httpx.ConnectError("[Errno 111] Connection refused"),
            "cannot reach",
            None,
            None,
            id="refused",
        ),
        pytest.param(httpx.Response(500, text="Internal Server Error"), "HTTP 500", 500, None, id="500"),
        pytest.param(
            httpx.Response(503, headers={"Retry-After": "Fri, 27 Nov 2099 18:25:00 GMT"}),
            "HTTP 503",
            503,
            7 * 86400.0,
            id="503-http-date",
        ),
        pytest.param(
            httpx.Response(200, headers={"content-type": "text/html"}, content=html),
            "HTTP 200 with an HTML page instead of JSON",
            200,
            None,
            id="html-200",
        ),
        pytest.param(
            httpx.Response(200, content=truncated_body), "HTTP 200 with invalid JSON", 200, None, id="truncated-json"
        ),
    ]
