"""/openapi.json: the JSON API described as OpenAPI 3.1, with this instance's coins and currencies as enums."""

from __future__ import annotations

from typing import Any, get_args

from ticker import __version__
from ticker.config import Settings
from ticker.history.base import MAX_POINTS, RANGES
from ticker.lease import LeaseRole
from ticker.models import ALIASES
from ticker.web.query import DEFAULT_RANGE, MAX_COINS

NULLABLE_NUMBER = {"type": ["number", "null"]}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def openapi_document(settings: Settings) -> dict[str, Any]:
    symbols = [coin.symbol for coin in settings.market.coins]
    currencies = list(settings.market.currencies)
    spellings = sorted({*symbols, *(symbol.lower() for symbol in symbols), *aliases(symbols)})
    coins_param = {
        "name": "coins",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "Configured symbols, comma-separated, case-insensitive, in the order wanted "
        "(duplicates dropped): " + ", ".join(symbols),
        "schema": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_COINS,
            "items": {"type": "string", "enum": spellings},
        },
    }
    currency_param = {
        "name": "currency",
        "in": "query",
        "required": False,
        "description": "A configured currency; the first is the default.",
        "schema": {"type": "string", "enum": currencies, "default": currencies[0]},
    }
    error = {"description": "What was wrong and what is allowed.", "content": _json("#/components/schemas/Error")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ticker",
            "version": __version__,
            "description": "Crypto prices polled once for every visitor. Prices are the providers' unrounded numbers; "
            "`stale` marks data older than the configured threshold; unknown is null, never 0.",
        },
        "paths": {
            "/api/v1/prices": {
                "get": {
                    "summary": "Prices of the configured (or selected) coins in one currency",
                    "parameters": [coins_param, currency_param],
                    "responses": {
                        "200": {"description": "The prices.", "content": _json("#/components/schemas/Prices")},
                        "400": error,
                    },
                }
            },
            "/api/v1/prices/{symbol}": {
                "get": {
                    "summary": "One coin",
                    "parameters": [
                        {
                            "name": "symbol",
                            "in": "path",
                            "required": True,
                            "description": "A configured symbol (case-insensitive; NANO means XNO).",
                            "schema": {"type": "string", "enum": symbols},
                        },
                        currency_param,
                    ],
                    "responses": {
                        "200": {"description": "The coin.", "content": _json("#/components/schemas/OneCoin")},
                        "400": error,
                        "404": error,
                    },
                }
            },
            "/api/v1/stream": {
                "get": {
                    "summary": "Server-Sent Events: event `prices` carries the JSON of /api/v1/prices, "
                    "sent at connect and on each change",
                    "parameters": [coins_param, currency_param],
                    "responses": {
                        "200": {
                            "description": "An event stream.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "400": error,
                    },
                }
            },
            "/api/v1/history/{symbol}": {
                "get": {
                    "summary": "One coin's price history: at most 500 points, oldest first",
                    "description": "Each point is [unix_seconds, price]: the last price (close) of one bucket, at the "
                    "bucket's end (or, for the bucket still open, at the snapshot's time). Buckets are 5 minutes "
                    "for 24h, 30 minutes for 7d, 2 hours for 30d, a day for 1y, and longer for max. No data yet: "
                    "points is []. 404 when the coin is not configured or history is off on this instance.",
                    "parameters": [
                        {
                            "name": "symbol",
                            "in": "path",
                            "required": True,
                            "description": "A configured symbol (case-insensitive; NANO means XNO).",
                            "schema": {"type": "string", "enum": symbols},
                        },
                        {
                            "name": "range",
                            "in": "query",
                            "required": False,
                            "description": "How far back: 24 hours, 7 days, 30 days, a year, or everything recorded.",
                            "schema": {"type": "string", "enum": list(RANGES), "default": DEFAULT_RANGE},
                        },
                        currency_param,
                    ],
                    "responses": {
                        "200": {"description": "The points.", "content": _json("#/components/schemas/History")},
                        "400": error,
                        "404": error,
                        "503": {
                            "description": "The history store cannot be read just now.",
                            "content": _json("#/components/schemas/Error"),
                        },
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": {"description": "Alive.", "content": _json("#/components/schemas/Health")}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: 200 while prices (fresh or stale) can be served",
                    "responses": {
                        "200": {"description": "Ready.", "content": _json("#/components/schemas/Ready")},
                        "503": {
                            "description": "No data, or all of it too old.",
                            "content": _json("#/components/schemas/Ready"),
                        },
                    },
                }
            },
        },
        "components": {"schemas": _schemas(symbols, currencies)},
    }


def aliases(symbols: list[str]) -> list[str]:
    """Other accepted spellings of configured symbols (NANO for XNO)."""
    return [alias for alias, target in ALIASES.items() if target in symbols for alias in (alias, alias.lower())]


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


_CHANGE = (
    "Change over {span}, in percent: the provider's own figure, else ours from the point of the price history "
    "nearest to {span} ago (within 10 % of the span); null until the history reaches back that far."
)


def _schemas(symbols: list[str], currencies: list[str]) -> dict[str, Any]:
    coin_properties: dict[str, Any] = {
        "symbol": {"type": "string", "enum": symbols},
        "name": {"type": "string"},
        "price": NULLABLE_NUMBER | {"description": "Null when never fetched or older than max_stale_seconds."},
        "change_24h_pct": NULLABLE_NUMBER
        | {
            "description": "Rolling 24 hours, in percent: the provider's own, else ours from the price history "
            "once it spans 24 h (Kraken); null when unknown, never 0 for unknown."
        },
        "change_1h_pct": NULLABLE_NUMBER | {"description": _CHANGE.format(span="1 hour")},
        "change_7d_pct": NULLABLE_NUMBER | {"description": _CHANGE.format(span="7 days")},
        "change_30d_pct": NULLABLE_NUMBER | {"description": _CHANGE.format(span="30 days")},
        "updated_at": NULLABLE_TIME | {"description": "The provider's own time, else when it was fetched (UTC)."},
        "source": {"type": ["string", "null"], "description": "The provider, or `static` / `demo`."},
        "stale": {"type": "boolean"},
        "icon_url": {"type": "string", "description": "The coin's icon, served by this service."},
    }
    required = list(coin_properties)
    return {
        "Coin": {"type": "object", "properties": coin_properties, "required": required},
        "Prices": {
            "type": "object",
            "properties": {
                "currency": {"type": "string", "enum": currencies},
                "generated_at": NULLABLE_TIME
                | {"description": "When the snapshot was built (the poll); null before it."},
                "stale": {"type": "boolean", "description": "True when any coin is stale."},
                "coins": {"type": "array", "items": {"$ref": "#/components/schemas/Coin"}},
            },
            "required": ["currency", "generated_at", "stale", "coins"],
        },
        "OneCoin": {
            "type": "object",
            "properties": coin_properties
            | {"currency": {"type": "string", "enum": currencies}, "generated_at": NULLABLE_TIME},
            "required": [*required, "currency", "generated_at"],
        },
        "History": {
            "type": "object",
            "properties": {
                "symbol": {"type": "string", "enum": symbols},
                "currency": {"type": "string", "enum": currencies},
                "range": {"type": "string", "enum": list(RANGES)},
                "points": {
                    "type": "array",
                    "maxItems": MAX_POINTS,
                    "items": {
                        "type": "array",
                        "description": "[unix_seconds, price]: a whole number of seconds (UTC), then the price, "
                        "unrounded and positive.",
                        "items": {"type": "number", "exclusiveMinimum": 0},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
            },
            "required": ["symbol", "currency", "range", "points"],
        },
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "Health": {"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]},
        "Ready": {
            "type": "object",
            "properties": {
                "ready": {"type": "boolean"},
                "stale": {"type": "boolean"},
                "age_seconds": NULLABLE_NUMBER | {"description": "Age of the newest price held."},
                "providers": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "state": {"enum": ["ok", "failing", "backoff"]},
                            "last_success": NULLABLE_TIME,
                        },
                        "required": ["state", "last_success"],
                    },
                },
                "lease": {
                    "enum": list(get_args(LeaseRole)),
                    "description": "Who polls: this instance for all (holder), another one (follower), "
                    "or this one alone (single: memory mode, or Redis away with cache.redis_fallback).",
                },
            },
            "required": ["ready", "stale", "age_seconds", "providers", "lease"],
        },
    }
