"""CORS with a list of origins: every /api/* answer says it varies by Origin.

The allowed origin is echoed per request, so a shared cache in front must key on Origin; if the
answer to a request without Origin (or from another origin) lacked `Vary: Origin`, the cache would
hand it to browsers of the allowed origin, which then could not read it. With "*" the answer is the
same for everyone and nothing varies by Origin.
"""

from __future__ import annotations

import pytest

from tests.conftest import quote, settings_from, snapshot_of
from tests.web.test_security import asgi_request

ALLOWED = "https://blog.example"
MARKET = '[market]\ncoins = ["BTC", "ETH"]\ncurrencies = ["usd", "eur"]\n'
LISTED = f'{MARKET}[server]\ncors_origins = ["{ALLOWED}/"]\n'
WILDCARD = f'{MARKET}[server]\ncors_origins = ["*"]\n'
ORIGINS = {"no Origin": None, "allowed": ALLOWED, "other": "https://evil.example", "null": "null"}
PREPARED = ["/api/v1/prices", "/api/v1/prices?coins=BTC&currency=eur", "/api/v1/prices/BTC", "/api/v1/prices/btc"]
ERRORS = ["/api/v1/prices?coins=NOPE", "/api/v1/prices?currency=xyz", "/api/v1/prices/NOPE"]


def origin_header(case: str) -> dict[str, str]:
    origin = ORIGINS[case]
    return {} if origin is None else {"origin": origin}


def expected_allow(case: str, policy: str) -> list[str]:
    if policy == WILDCARD:
        return ["*"]
    return [ALLOWED] if case == "allowed" else []


@pytest.fixture(params=[LISTED, WILDCARD], ids=["listed", "wildcard"])
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(make_client, tmp_path, policy):
    return await make_client(settings_from(tmp_path, policy), snapshot_of(quote("BTC", 1.0), quote("ETH", 2.0)))


@pytest.mark.parametrize("case", ORIGINS)
@pytest.mark.parametrize("conditional", [False, True], ids=["200", "304"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", PREPARED)
async def test_prices_answers_vary_by_origin_in_one_vary_header(client, policy, path, method, conditional, case):
    headers = origin_header(case) | {"accept-encoding": "gzip"}
    if conditional:
        headers["if-none-match"] = (await client.get(path)).headers["etag"]  # asked without Origin
    response = await client.request(method, path, headers=headers)
    assert response.status_code == (304 if conditional else 200)
    vary = "Accept-Encoding, Origin" if policy == LISTED else "Accept-Encoding"
    assert response.headers.get_list("vary") == [vary]
    assert response.headers.get_list("access-control-allow-origin") == expected_allow(case, policy)


@pytest.mark.parametrize("case", ORIGINS)
@pytest.mark.parametrize("path", ERRORS)
async def test_api_errors_vary_by_origin_and_carry_the_same_cors_headers(client, policy, path, case):
    response = await client.get(path, headers=origin_header(case))
    assert response.status_code in (400, 404) and "error" in response.json()
    assert response.headers.get_list("vary") == (["Origin"] if policy == LISTED else [])
    assert response.headers.get_list("access-control-allow-origin") == expected_allow(case, policy)


@pytest.mark.parametrize("case", ORIGINS)
@pytest.mark.parametrize("query", [b"", b"coins=BTC", b"coins=NOPE"])
async def test_the_event_stream_varies_by_origin(client, policy, query, case):
    origin = ORIGINS[case]
    headers = [] if origin is None else [(b"origin", origin.encode())]
    reply = await asgi_request(client._transport.app, "/api/v1/stream", query, headers=headers)
    assert reply.status == (400 if query == b"coins=NOPE" else 200)
    assert reply.headers_named("vary") == (["Origin"] if policy == LISTED else [])
    assert reply.headers_named("access-control-allow-origin") == expected_allow(case, policy)


@pytest.mark.parametrize("case", ORIGINS)
@pytest.mark.parametrize("path", ["/api/v1/prices", "/api/v1/prices/BTC"])
async def test_preflight_varies_by_origin(client, policy, path, case):
    headers = origin_header(case) | {"access-control-request-method": "GET"}
    response = await client.options(path, headers=headers)
    assert response.status_code == 204
    assert response.headers.get_list("vary") == ["Origin"]  # as it always was, "*" included
    assert response.headers.get_list("access-control-allow-origin") == expected_allow(case, policy)
