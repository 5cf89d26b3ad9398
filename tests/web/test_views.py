from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FULL_CONFIG, full_snapshot, quote, serving, settings_from, snapshot_of, until
from ticker.runtime import create_app


@pytest.fixture
def settings(tmp_path):
    return settings_from(tmp_path, FULL_CONFIG)


async def test_prices_json_follows_the_contract(make_client, settings):
    client = await make_client(settings, full_snapshot())
    response = await client.get("/api/v1/prices")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["currency"] == "usd" and body["generated_at"] == "2026-11-27T18:20:00Z" and body["stale"] is True
    assert [c["symbol"] for c in body["coins"]] == ["BTC", "ETH", "ARRR", "OPENVC", "XNO"]
    btc, eth, arrr, openvc, xno = body["coins"]
    assert {k: btc[k] for k in ("symbol", "name", "price", "change_24h_pct", "updated_at", "source", "stale")} == {
        "symbol": "BTC",
        "name": "Bitcoin",
        "price": 90917.04,
        "change_24h_pct": 1.64,
        "updated_at": "2026-11-27T18:19:31Z",
        "source": "coingecko",
        "stale": False,
    }
    assert eth["price"] == 3021.5512 and eth["stale"] is True
    assert arrr["price"] is None and arrr["change_24h_pct"] is None and arrr["stale"] is True
    assert arrr["updated_at"] == "2026-11-26T17:20:00Z"  # still says when it was last known
    assert openvc == openvc | {"price": 0.0042, "source": "static", "stale": False, "change_24h_pct": None}
    assert xno == xno | {"price": None, "change_24h_pct": None, "updated_at": None, "stale": True, "source": None}


async def test_before_the_first_poll_every_coin_is_null_never_zero(make_client, settings):
    client = await make_client(settings)
    body = (await client.get("/api/v1/prices")).json()
    assert body["generated_at"] is None and body["stale"] is True
    live = [c for c in body["coins"] if c["symbol"] != "OPENVC"]
    assert all(c["price"] is None and c["stale"] for c in live)
    assert (await client.get("/readyz")).status_code == 503
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_query_selects_orders_and_dedupes(make_client, settings):
    client = await make_client(settings, full_snapshot())
    body = (
        await client.get("/api/v1/prices", params={"coins": "eth, btc,Nano,ETH", "currency": "EUR", "x": "1"})
    ).json()
    assert [c["symbol"] for c in body["coins"]] == ["ETH", "BTC", "XNO"]
    assert body["currency"] == "eur" and body["coins"][1]["price"] == 84123.55


async def test_static_coin_in_another_currency_is_unavailable_not_stale(make_client, settings):
    client = await make_client(settings, full_snapshot())
    body = (await client.get("/api/v1/prices?coins=OPENVC&currency=eur")).json()
    assert body["coins"][0] | {} == body["coins"][0] and body["coins"][0]["price"] is None
    assert body["coins"][0]["stale"] is False and body["stale"] is False


BAD_API_QUERIES = [
    ("/api/v1/prices?coins=DOGE", "coins: unknown coin 'DOGE'; allowed: BTC, ETH, ARRR, OPENVC, XNO"),
    ("/api/v1/prices?coins=", "coins: empty; allowed: BTC, ETH, ARRR, OPENVC, XNO"),
    ("/api/v1/prices?coins=,,", "coins: empty"),
    ("/api/v1/prices?currency=gbp", "currency: unknown currency 'gbp'; allowed: usd, eur"),
    ("/api/v1/prices?coins=" + "A" * 3000, "coins: too long"),
    ("/api/v1/prices?coins=%3Cscript%3Ealert(1)%3C/script%3E", "coins: unknown coin '<script>alert(1)</script…'"),
    ("/api/v1/prices/BTC?currency=xyz", "currency: unknown currency 'xyz'; allowed: usd, eur"),
]


@pytest.mark.parametrize(("url", "message"), BAD_API_QUERIES)
async def test_bad_api_queries_get_400_saying_what_is_allowed(make_client, settings, url, message):
    client = await make_client(settings, full_snapshot())
    response = await client.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"].startswith(message)


async def test_one_coin(make_client, settings):
    client = await make_client(settings, full_snapshot())
    body = (await client.get("/api/v1/prices/btc?currency=eur")).json()
    assert body["symbol"] == "BTC" and body["price"] == 84123.55 and body["currency"] == "eur"
    assert (await client.get("/api/v1/prices/nano")).json()["symbol"] == "XNO"
    missing = await client.get("/api/v1/prices/DOGE")
    assert missing.status_code == 404 and "unknown coin 'DOGE'" in missing.json()["error"]


async def test_readyz_reports_age_stale_and_providers(make_client, settings):
    client = await make_client(settings, full_snapshot())
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "stale": True,
        "age_seconds": 29.0,
        "providers": {
            "coingecko": {"state": "ok", "last_success": "2026-11-27T18:20:00Z", "last_error": None, "retry_at": None}
        },
        "lease": "single",  # memory mode: this instance polls for itself alone
    }


async def test_readyz_stays_up_while_stale_and_fails_past_max_stale(make_client, settings):
    old = snapshot_of(quote("BTC", 1.0, age=3600))
    response = await (await make_client(settings, old)).get("/readyz")
    assert response.status_code == 200 and response.json()["stale"] is True
    ancient = snapshot_of(quote("BTC", 1.0, age=86401))
    response = await (await make_client(settings, ancient)).get("/readyz")
    assert response.status_code == 503 and response.json()["ready"] is False


async def test_cors_is_public_read_only_without_credentials(make_client, settings):
    client = await make_client(settings, full_snapshot())
    response = await client.get("/api/v1/prices", headers={"origin": "https://blog.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" not in response.headers["vary"].lower()  # no Vary: Origin where the answer never varies


async def test_cors_with_a_list_of_origins(make_client, tmp_path):
    settings = settings_from(tmp_path, '[server]\ncors_origins = ["https://blog.example"]')
    client = await make_client(settings, full_snapshot())
    allowed = await client.get("/api/v1/prices", headers={"origin": "https://blog.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://blog.example"
    assert allowed.headers.get_list("vary") == ["Accept-Encoding, Origin"]
    other = await client.get("/api/v1/prices", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = await client.options(
        "/api/v1/prices", headers={"origin": "https://blog.example", "access-control-request-method": "GET"}
    )
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-methods"] == "GET, HEAD"
    assert "access-control-allow-credentials" not in preflight.headers


async def test_readyz_with_every_coin_static_reports_no_provider_ok(tmp_path, respx_mock):
    """No provider is asked when every coin is static: each is "idle", never "ok"; and the instance is ready."""
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = [{ symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]\n'
        '[cache]\nsnapshot_path = ""\n',
    )
    async with serving(create_app(settings)) as client:

        async def polled() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get("/readyz")).json()
            return body if body["providers"] else None

        body = await until(polled, "a round's provider states in /readyz")
        response = await client.get("/readyz")
    assert response.status_code == 200 and body["ready"] is True and body["stale"] is False
    assert set(body["providers"]) == set(settings.poller.providers)
    assert {status["state"] for status in body["providers"].values()} == {"idle"}
    assert not respx_mock.calls  # nothing was asked upstream
