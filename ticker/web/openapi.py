"""/openapi.json: the JSON API described as OpenAPI 3.1, with this instance's coins and currencies as enums
(no coin enum when "top:N" makes the list change at run time)."""

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
    symbol_schema: dict[str, Any] = {"type": "string", "enum": spellings}
    listed = ", ".join(symbols)
    if settings.market.top is not None:  # "top:N": the list changes at run time, so no enum
        symbol_schema = {"type": "string", "minLength": 1, "maxLength": 20}
        listed = f"the {settings.market.top.count} largest coins by market cap (refreshed hourly)" + (
            f" and {listed}" if listed else ""
        )
    coins_param = {
        "name": "coins",
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": "Configured symbols, comma-separated, case-insensitive, in the order wanted "
        "(duplicates dropped): " + listed,
        "schema": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_COINS,
            "items": symbol_schema,
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
    symbol_param = {
        "name": "symbol",
        "in": "path",
        "required": True,
        "description": "A configured symbol (case-insensitive; NANO means XNO).",
        "schema": symbol_schema if settings.market.top is not None else {"type": "string", "enum": symbols},
    }
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
                        symbol_param,
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
                    "description": "With live exchange streams ([live] enabled), event `quotes` also carries "
                    '`{"currency": "usd", "coins": [coin objects that changed]}` between snapshots: right after '
                    "`prices` at connect (what the snapshot lacks), then at most live.max_updates_per_second per "
                    "client, changes in between coalesced. Coin objects are those of /api/v1/prices. A keep-alive "
                    "comment comes every 15 s.",
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
                        symbol_param,
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
        "components": {"schemas": _schemas(None if settings.market.top is not None else symbols, currencies)},
    }


def aliases(symbols: list[str]) -> list[str]:
    """Other accepted spellings of configured symbols (NANO for XNO)."""
    return [alias for alias, target in ALIASES.items() if target in symbols for alias in (alias, alias.lower())]


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ref}}}


_CHANGE = (
    "Change over {span}, in percent: the provider's own figure (CoinPaprika's with each price; CoinGecko's from "
    "its hourly /coins/markets in the default currency, so up to an hour old, and dropped when older than two "
    "hours), else ours from the point of the price history nearest to {span} ago (within 10 % of the span); "
    "null until the history reaches back that far."
)
NULLABLE_INTEGER = {"type": ["integer", "null"]}


def _schemas(symbols: list[str] | None, currencies: list[str]) -> dict[str, Any]:
    """`symbols`: the coin enum; None when the list changes at run time ("top:N")."""
    coin_properties: dict[str, Any] = {
        "symbol": {"type": "string", "enum": symbols} if symbols is not None else {"type": "string"},
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
        "market_cap": NULLABLE_NUMBER
        | {
            "exclusiveMinimum": 0,
            "description": "Market capitalisation in `currency`, from the provider of the price (CoinGecko's "
            "/simple/price and CoinPaprika's /tickers, every round); null when unknown or past max_stale_seconds "
            "(a provider's 0 means unknown and is never shown).",
        },
        "volume_24h": NULLABLE_NUMBER
        | {
            "exclusiveMinimum": 0,
            "description": "Volume traded in the last 24 hours, in `currency`, from the provider of the price "
            "(every round); null when unknown or past max_stale_seconds, never 0 for unknown.",
        },
        "rank": NULLABLE_INTEGER
        | {
            "minimum": 1,
            "description": "Rank by market cap, 1 being the largest, from the provider of the price: "
            "CoinPaprika's with each price, CoinGecko's from its hourly /coins/markets (so up to an hour old, and "
            "dropped when older than two hours); null when unknown or past max_stale_seconds.",
        },
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
                "symbol": {"type": "string", "enum": symbols} if symbols is not None else {"type": "string"},
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
