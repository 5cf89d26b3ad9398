"""/openapi.json: a valid OpenAPI 3.1 document whose enums are this instance's config, and the truth about the API.

Every JSON answer the app gives on a documented path (200s, 400s, 404s, 503s, the stream's first event) is
validated here against the schema the document declares for that status and media type. The fuzzing of
the same document against a running `ticker serve` is in test_schemathesis.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from tests.conftest import NOW, asgi_request, quote, settings_from
from ticker import __version__
from ticker.config import default_settings
from ticker.history.base import Tick
from ticker.history.memory import MemoryHistory
from ticker.models import ProviderStatus, Snapshot
from ticker.web.openapi import openapi_document

CUSTOM = """
[market]
coins = ["BTC", "nano", "ETH", { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]
currencies = ["eur", "usd", "sats"]
[poller]
stale_after_seconds = 300
max_stale_seconds = 3600
[cache]
snapshot_path = ""
"""


@pytest.fixture
def settings(tmp_path):
    return settings_from(tmp_path, CUSTOM)


def validator(document: dict[str, Any], ref: str) -> jsonschema_rs.Validator:
    """A Draft 2020-12 validator for one component, resolving its #/components/... references in `document`."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": ref, "components": document["components"]}, validate_formats=True
    )


def response_schema(document: dict[str, Any], path: str, status: int, media_type: str) -> dict[str, Any]:
    responses = document["paths"][path]["get"]["responses"]
    assert str(status) in responses, f"{path}: status {status} is not documented ({', '.join(responses)})"
    content = responses[str(status)]["content"]
    assert media_type in content, f"{path} {status}: {media_type} is not documented ({', '.join(content)})"
    return content[media_type]["schema"]


def assert_conforms(document: dict[str, Any], path: str, response: httpx.Response) -> None:
    media_type = response.headers["content-type"].split(";")[0].strip()
    schema = response_schema(document, path, response.status_code, media_type)
    if media_type == "application/json":
        errors = [str(e) for e in validator(document, schema["$ref"]).iter_errors(response.json())]
        assert not errors, f"{path} {response.status_code}: {errors}\n{response.text}"


@pytest.mark.parametrize("config", ["default", "custom"])
async def test_openapi_is_a_valid_31_document(make_client, tmp_path, config):
    settings = default_settings() if config == "default" else settings_from(tmp_path, CUSTOM)
    response = await (await make_client(settings)).get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    document = response.json()
    assert document == json.loads(json.dumps(openapi_document(settings)))
    assert document["openapi"] == "3.1.0" and document["info"]["version"] == __version__
    errors = [f"{e.instance_path}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert not errors
    schemathesis.openapi.from_dict(document).validate()  # schemathesis' own loader agrees
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), f"components.schemas.{name} is not a valid 2020-12 schema"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [node["$ref"]] if "$ref" in node else [r for value in node.values() for r in refs(value)]
        return [r for value in node for r in refs(value)] if isinstance(node, list) else []

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert method == "get", path
            assert "200" in operation["responses"], path
            names = [(p["in"], p["name"]) for p in operation.get("parameters", [])]
            assert len(names) == len(set(names)), path
            path_params = {name for where, name in names if where == "path"}
            assert path_params == {part[1:-1] for part in path.split("/") if part.startswith("{")}, path


@pytest.mark.parametrize("config", ["default", "custom"])
def test_coin_and_currency_enums_are_the_config(tmp_path, config):
    settings = default_settings() if config == "default" else settings_from(tmp_path, CUSTOM)
    symbols = [coin.symbol for coin in settings.market.coins]
    currencies = list(settings.market.currencies)
    if config == "custom":
        assert symbols == ["BTC", "XNO", "ETH", "OPENVC"] and currencies == ["eur", "usd", "sats"]
    else:
        assert symbols == ["BTC", "ETH", "NEO", "WAVES", "XMR", "XNO", "ARK", "ARRR", "DOGE", "LTC", "ADA"]
    document = openapi_document(settings)
    schemas = document["components"]["schemas"]
    assert schemas["Coin"]["properties"]["symbol"]["enum"] == symbols
    assert schemas["OneCoin"]["properties"]["symbol"]["enum"] == symbols
    assert schemas["Prices"]["properties"]["currency"]["enum"] == currencies
    assert schemas["OneCoin"]["properties"]["currency"]["enum"] == currencies
    for path, item in document["paths"].items():
        for parameter in item["get"].get("parameters", []):
            if parameter["name"] == "currency":
                assert parameter["schema"]["enum"] == currencies and parameter["schema"]["default"] == currencies[0]
            elif parameter["name"] == "symbol":
                assert parameter["schema"]["enum"] == symbols, path
            elif parameter["name"] == "range":
                assert parameter["schema"]["enum"] == ["24h", "7d", "30d", "1y", "max"] and path.startswith(
                    "/api/v1/history/"
                )
            else:
                assert parameter["name"] == "coins"
                assert all(symbol in parameter["description"] for symbol in symbols)


def snapshot() -> Snapshot:
    quotes = [
        quote("BTC", 90917.04, age=30),
        quote("BTC", 84123.55, currency="eur", change=None, age=30),
        quote("XNO", 0.93, age=600),  # stale
        quote("XNO", 0.85, currency="eur", age=600),
        quote("ETH", 3021.55, age=7200),  # past max_stale_seconds: price null
    ]
    providers = {
        "coingecko": ProviderStatus("ok", last_success=NOW - timedelta(seconds=30)),
        "kraken": ProviderStatus("backoff", last_success=None, last_error="HTTP 429"),
    }
    return Snapshot(NOW, {(q.symbol, q.currency): q for q in quotes}, providers)


async def test_every_json_answer_matches_its_documented_schema(make_client, settings):
    document = openapi_document(settings)
    empty = await make_client(settings, history=MemoryHistory())
    recorded = MemoryHistory()
    await recorded.append([Tick("BTC", "usd", NOW.timestamp() - 600 * i, 90000.0 + i) for i in range(600)])
    full = await make_client(settings, snapshot(), history=recorded)
    off = await make_client(settings_from(settings.source.parent, CUSTOM + '[history]\npath = ""\n'), snapshot())
    unopened = await make_client(settings, snapshot())  # history configured, its store not open (no lifespan)
    cases = [
        (empty, "/api/v1/prices", "/api/v1/prices", 200),  # before the first poll: nulls
        (empty, "/api/v1/prices/{symbol}", "/api/v1/prices/BTC", 200),
        (empty, "/readyz", "/readyz", 503),
        (full, "/api/v1/prices", "/api/v1/prices", 200),
        (full, "/api/v1/prices", "/api/v1/prices?currency=usd&coins=openvc,nano,eth,btc", 200),
        (full, "/api/v1/prices", "/api/v1/prices?currency=sats", 200),  # nothing in sats but the static coin
        (full, "/api/v1/prices", "/api/v1/prices?currency=usd", 200),
        (full, "/api/v1/prices", "/api/v1/prices?coins=DOGE", 400),
        (full, "/api/v1/prices", "/api/v1/prices?currency=jpy", 400),
        (full, "/api/v1/prices", "/api/v1/prices?coins=" + "B" * 1001, 400),
        (full, "/api/v1/prices/{symbol}", "/api/v1/prices/btc?currency=eur", 200),
        (full, "/api/v1/prices/{symbol}", "/api/v1/prices/NANO", 200),
        (full, "/api/v1/prices/{symbol}", "/api/v1/prices/OPENVC?currency=usd", 200),  # static, no usd price
        (full, "/api/v1/prices/{symbol}", "/api/v1/prices/ETH?currency=usd", 200),  # too old: null
        (full, "/api/v1/prices/{symbol}", "/api/v1/prices/DOGE", 404),
        (full, "/api/v1/prices/{symbol}", "/api/v1/prices/BTC?currency=xyz", 400),
        (empty, "/api/v1/history/{symbol}", "/api/v1/history/BTC", 200),  # nothing recorded: points []
        (full, "/api/v1/history/{symbol}", "/api/v1/history/btc?range=max&currency=usd", 200),
        (full, "/api/v1/history/{symbol}", "/api/v1/history/BTC?range=24h", 200),  # nothing in eur (the default)
        (full, "/api/v1/history/{symbol}", "/api/v1/history/BTC?range=1w", 400),
        (full, "/api/v1/history/{symbol}", "/api/v1/history/BTC?currency=jpy", 400),
        (full, "/api/v1/history/{symbol}", "/api/v1/history/DOGE", 404),
        (off, "/api/v1/history/{symbol}", "/api/v1/history/BTC", 404),
        (unopened, "/api/v1/history/{symbol}", "/api/v1/history/BTC", 503),
        (full, "/healthz", "/healthz", 200),
        (full, "/readyz", "/readyz", 200),
    ]
    for client, template, url, status in cases:
        response = await client.get(url)
        assert response.status_code == status, url
        assert_conforms(document, template, response)
    nulls = (await full.get("/api/v1/prices/ETH?currency=usd")).json()
    assert nulls["price"] is None and nulls["stale"] is True
    assert (await full.get("/api/v1/prices?currency=sats")).json()["coins"][0]["price"] is None
    assert len((await full.get("/api/v1/history/BTC?range=max&currency=usd")).json()["points"]) > 2


async def test_the_stream_matches_its_documented_responses(make_client, settings):
    """Excluded from the schemathesis run (its 200 never ends), so checked here: first event and 400."""
    document = openapi_document(settings)
    client = await make_client(settings, snapshot())
    bad = await client.get("/api/v1/stream?currency=jpy")
    assert bad.status_code == 400
    assert_conforms(document, "/api/v1/stream", bad)
    # httpx's ASGITransport waits for the whole body, which a stream never ends: speak ASGI to it directly.
    reply = await asgi_request(client._transport.app, "/api/v1/stream", b"coins=BTC,NANO&currency=eur")
    assert reply.status == 200
    assert response_schema(document, "/api/v1/stream", 200, reply.content_type) == {"type": "string"}
    event, data = reply.text.split("\n")[:2]
    assert event == "event: prices" and data.startswith("data: ")
    data = data.removeprefix("data: ")
    errors = [str(e) for e in validator(document, "#/components/schemas/Prices").iter_errors(json.loads(data))]
    assert not errors
    assert json.loads(data) == (await client.get("/api/v1/prices?coins=BTC,NANO&currency=eur")).json()


async def test_documented_limits_are_the_enforced_ones(make_client, settings):
    """maxItems and enums in the document are what the server enforces."""
    document = openapi_document(settings)
    client = await make_client(settings, snapshot())
    coins = next(p for p in document["paths"]["/api/v1/prices"]["get"]["parameters"] if p["name"] == "coins")
    most = coins["schema"]["maxItems"]
    longest = max(coins["schema"]["items"]["enum"], key=len)
    assert (await client.get(f"/api/v1/prices?coins={','.join([longest] * most)}")).status_code == 200
    assert (await client.get(f"/api/v1/prices?coins={','.join([longest] * (most + 1))}")).status_code == 400
    for currency in settings.market.currencies:
        assert (await client.get(f"/api/v1/prices?currency={currency}")).status_code == 200
        assert (await client.get(f"/api/v1/prices/BTC?currency={currency}")).status_code == 200
    for symbol in document["paths"]["/api/v1/prices/{symbol}"]["get"]["parameters"][0]["schema"]["enum"]:
        assert (await client.get(f"/api/v1/prices/{symbol}")).status_code == 200


# Values of `coins` the server answers 400 to; a schema that describes the parameter would reject each of them.
REJECTED_COINS = ["", ",", "NOPE", "BTC,NOPE", "<script>"]


async def test_the_coins_schema_rejects_what_the_server_rejects(make_client, settings):
    document = openapi_document(settings)
    coins = next(p for p in document["paths"]["/api/v1/prices"]["get"]["parameters"] if p["name"] == "coins")
    client = await make_client(settings, snapshot())
    schema = jsonschema_rs.Draft202012Validator(coins["schema"])
    accepted_by_schema = []
    for raw in REJECTED_COINS:
        assert (await client.get("/api/v1/prices", params={"coins": raw})).status_code == 400, raw
        if coins.get("style", "form") == "form" and coins["schema"].get("type") == "array":
            value: Any = raw.split(",") if raw else []
        else:
            value = raw
        if schema.is_valid(value):
            accepted_by_schema.append(raw)
    assert accepted_by_schema == []
