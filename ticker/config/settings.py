"""Settings: one TOML file validated into frozen objects, or the built-in default.

A bad file never starts a half-configured service: `load_settings` raises
ConfigError carrying every error in the file (`errors`), one line each, each
starting with the key's dotted path (`poller.interval_seconds`,
`market.coins[3]`, 0-based) and naming the closest known key or value where
one is close ("did you mean"). Suspect but valid settings (a currency no
configured provider quotes in, a static coin without a price in a configured
currency) load, and are listed in `Settings.warnings`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.localedata import locale_identifiers
from babel.numbers import get_territory_currencies

from ticker.config._table import Problems, Table, describe, did_you_mean
from ticker.exceptions import ConfigError
from ticker.models import Coin, canonical_symbol
from ticker.providers import PROVIDERS, TOKEN_PROVIDERS
from ticker.providers.base import ProviderSettings
from ticker.providers.chains import CHAINS, address_problem, request_address
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, KRAKEN_WS, lookup
from ticker.top import RANKING_PROVIDERS, TOP_MAX, TopSettings

# Exchanges with a keyless WebSocket ticker feed (ticker/live/), in the default order of [live] providers.
STREAM_PROVIDERS: tuple[str, ...] = ("kraken", "coinbase", "binance")
CRYPTO_CURRENCIES = frozenset({"btc", "eth", "sats"})
THEMES = ("light", "dark", "auto")
# Locales a visitor may ask for (plus the configured widget.locale): Babel keeps every locale it loads,
# so an open list would let visitors grow memory by hundreds of MB.
VISITOR_LOCALES = frozenset(
    "ar ar_AE ar_EG ar_SA bg bg_BG ca ca_ES cs cs_CZ da da_DK de de_AT de_CH de_DE el el_GR en en_AU en_CA "
    "en_GB en_IE en_IN en_NZ en_SG en_US en_ZA es es_AR es_CL es_CO es_ES es_MX es_US et et_EE fa fa_IR fi "
    "fi_FI fil fr fr_BE fr_CA fr_CH fr_FR he he_IL hi hi_IN hr hr_HR hu hu_HU id id_ID it it_CH it_IT ja ja_JP "
    "ko ko_KR lt lt_LT lv lv_LV ms ms_MY nb nb_NO nl nl_BE nl_NL pl pl_PL pt pt_BR pt_PT ro ro_RO ru ru_RU sk "
    "sk_SK sl sl_SI sr sv sv_SE sw th th_TH tr tr_TR uk uk_UA vi vi_VN zh zh_Hans_CN zh_Hant_HK zh_Hant_TW "
    # the translated languages' other common variants
    "ar_MA ar_DZ ar_IQ ar_JO ar_KW ar_QA de_LU en_PK en_NG en_PH en_MY es_PE es_VE fa_AF fr_MA fr_SN he_IL "
    "id_ID it_SM nl_SR pt_AO pt_MZ ru_BY ru_KZ ru_UA tr_CY ur ur_PK ur_IN zh_Hans zh_Hans_SG zh_Hant".split()
)
# A pseudo-locale (accented, lengthened English made from messages.pot): only as widget.locale, for
# checking that every text goes through the catalog. Numbers and dates show as in `en`.
PSEUDO_LOCALE = "en_XA"
LAYOUTS = ("list", "compact", "ticker", "table")
LOG_FORMATS = ("text", "json")
DEFAULT_PROVIDERS: tuple[str, ...] = tuple(
    name for name, cls in PROVIDERS.items() if cls.KEYLESS and name not in TOKEN_PROVIDERS
)


def _currencies_in_use(today: date) -> frozenset[str]:
    """ISO 4217 codes that some territory uses as legal tender on `today`, per CLDR (Babel), lower-case."""
    return frozenset(
        code.lower()
        for territory in get_global("territory_currencies")
        for code in get_territory_currencies(territory, start_date=today, tender=True)
    )


# What market.currencies accepts: currencies in current use (about 150; not DEM, HRK or XAU) and btc, eth, sats.
KNOWN_CURRENCIES = _currencies_in_use(date.today()) | CRYPTO_CURRENCIES


def is_known_currency(code: str) -> bool:
    return code in KNOWN_CURRENCIES


@dataclass(frozen=True)
class MarketSettings:
    coins: tuple[Coin, ...] = ()
    currencies: tuple[str, ...] = ("usd",)
    # Configured currencies none of poller.providers quotes in (e.g. "pkr" with only kraken): live coins are
    # unavailable there for good, which the footer can say. Empty when every coin is static.
    unserved_currencies: frozenset[str] = frozenset()
    top: TopSettings | None = None  # "top:N": coins that change at run time (ticker/top.py)

    @property
    def default_currency(self) -> str:
        return self.currencies[0]

    @property
    def live_coins(self) -> tuple[Coin, ...]:
        return tuple(coin for coin in self.coins if not coin.is_static)


@dataclass(frozen=True)
class PollerSettings:
    interval_seconds: float = 60.0
    timeout_seconds: float = 10.0
    providers: tuple[str, ...] = DEFAULT_PROVIDERS
    stale_after_seconds: float = 300.0
    max_stale_seconds: float = 86400.0
    max_jump_pct: float = 50.0  # a larger move from a fresh price is held until confirmed (plausibility.py); 0: off


@dataclass(frozen=True)
class CacheSettings:
    url: str = "memory://"
    namespace: str = "ticker"
    snapshot_path: Path | None = None  # None: persistence off
    redis_fallback: bool = True  # Redis away longer than stale_after_seconds: each instance polls on its own

    @property
    def shared(self) -> bool:
        return self.url.startswith(("redis://", "rediss://"))


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    frame_ancestors: tuple[str, ...] = ("*",)
    cors_origins: tuple[str, ...] = ("*",)
    log_format: str = "text"
    public_url: str = ""  # e.g. https://prices.example.com: makes /widget/fragment's URLs absolute


@dataclass(frozen=True)
class WidgetSettings:
    title: str = "Latest Market Prices"
    locale: str = "en_US"
    theme: str = "auto"
    layout: str = "list"
    transparent: bool = False
    css_file: Path | None = None
    sparkline: bool = False

    @property
    def visitor_locales(self) -> frozenset[str]:
        return VISITOR_LOCALES | {self.locale}


@dataclass(frozen=True)
class HistorySettings:
    """The price history store: `path` is its SQLite file (None: history off); with a redis:// cache.url the
    history lives in Redis and `path` is not used. `backfill`: fill a new coin's past from candle endpoints."""

    path: Path | None = None
    backfill: bool = True


@dataclass(frozen=True)
class LiveSettings:
    """Exchange WebSocket streams (ticker/live/): off by default. `providers`: the exchanges to stream from,
    in preference order; `max_updates_per_second`: at most this many `quotes` events per second to each
    client of /api/v1/stream and /widget/stream (changes in between are coalesced)."""

    enabled: bool = False
    providers: tuple[str, ...] = STREAM_PROVIDERS
    max_updates_per_second: float = 4.0


@dataclass(frozen=True)
class Settings:
    market: MarketSettings = field(default_factory=MarketSettings)
    poller: PollerSettings = field(default_factory=PollerSettings)
    providers: Mapping[str, ProviderSettings] = field(default_factory=lambda: MappingProxyType({}))
    cache: CacheSettings = field(default_factory=CacheSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    widget: WidgetSettings = field(default_factory=WidgetSettings)
    source: Path | None = None  # the file these came from
    warnings: tuple[str, ...] = ()  # suspect but valid settings, one line each naming the key
    history: HistorySettings = field(default_factory=HistorySettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    def provider(self, name: str) -> ProviderSettings:
        return self.providers[name]

    @property
    def coins_by_symbol(self) -> Mapping[str, Coin]:
        return {coin.symbol: coin for coin in self.market.coins}


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ticker"


def default_settings() -> Settings:
    """The built-in default: used when neither --config nor TICKER_CONFIG names a file."""
    return _parse({}, base_dir=None, source=None)


def load_settings(path: str | os.PathLike[str] | None) -> Settings:
    if path is None:
        return default_settings()
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise ConfigError(f"{file}: cannot read config file ({err.strerror or err})") from err
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{file}: not valid TOML ({err})") from err
    return _parse(data, base_dir=file.resolve().parent, source=file)


def _parse(data: dict[str, Any], *, base_dir: Path | None, source: Path | None) -> Settings:
    """Every section is read even after an error, so that ConfigError lists every error in the file."""
    root = Table(data, "")
    market, positions = _parse_market(root.table("market"))
    providers = _parse_providers(root.table("providers"))
    poller = _parse_poller(root.table("poller"))
    cache = _parse_cache(root.table("cache"), base_dir)
    server = _parse_server(root.table("server"))
    widget = _parse_widget(root.table("widget"), base_dir)
    history = _parse_history(root.table("history"), base_dir)
    live = _parse_live(root.table("live"))
    root.finish()
    problems = root.problems
    if not problems.under("poller.providers"):  # else a typo there would make every coin an error too
        _check_coverage(market, poller, positions, problems)
        market = _with_ranking_source(market, poller, problems)
    problems.check()
    market = replace(market, unserved_currencies=unserved_currencies(market, poller))
    return Settings(
        market,
        poller,
        MappingProxyType(providers),
        cache,
        server,
        widget,
        source,
        _warnings(market, poller) + _live_warnings(market, live),
        history,
        live,
    )


def _parse_market(table: Table) -> tuple[MarketSettings, dict[str, int]]:
    """The market, and each coin's index in market.coins as written (bad entries are left out of the market)."""
    currencies = _parse_currencies(table)
    entries = table.take("coins", list, list(DEFAULT_SYMBOLS))
    skip_stablecoins = table.take("top_skip_stablecoins", bool, False)
    table.finish()
    if not entries:
        table.fail("coins", "expected at least one coin")
    coins: list[Coin] = []
    seen: dict[str, int] = {}
    top: TopSettings | None = None
    for index, entry in enumerate(entries):
        path = f"market.coins[{index}]"
        if _is_top_entry(entry):
            top = _parse_top(entry, path, len(coins), skip_stablecoins, top, table.problems)
            continue
        coin = _parse_coin(entry, path, currencies, table.problems)
        if coin is None:
            continue
        if coin.symbol in seen:
            table.problems.add(f"{path}: duplicate coin {coin.symbol} (already market.coins[{seen[coin.symbol]}])")
            continue
        seen[coin.symbol] = index
        coins.append(coin)
    return MarketSettings(tuple(coins), currencies, top=top), seen


def _is_top_entry(entry: Any) -> bool:
    return isinstance(entry, str) and entry.strip().lower().startswith("top:")


def _parse_top(
    entry: str, path: str, position: int, skip_stablecoins: bool, earlier: TopSettings | None, problems: Problems
) -> TopSettings | None:
    """A `"top:N"` entry (N from 1 to TOP_MAX) before the coin at `position`; its ranking source is set once
    poller.providers is known (_with_ranking_source). Only one such entry is allowed."""
    if earlier is not None:
        problems.add(f'{path}: only one "top:N" entry is allowed in market.coins')
        return earlier
    raw = entry.strip()[4:].strip()
    if not raw.isdigit() or not 1 <= int(raw) <= TOP_MAX:
        problems.add(f'{path}: expected "top:N" with N a whole number from 1 to {TOP_MAX}, got {describe(entry)}')
        return None
    return TopSettings(int(raw), position, "", skip_stablecoins)


def _with_ranking_source(market: MarketSettings, poller: PollerSettings, problems: Problems) -> MarketSettings:
    """The market with its "top:N" ranked by the first of RANKING_PROVIDERS in poller.providers (an error if none)."""
    if market.top is None:
        return market
    source = next((name for name in RANKING_PROVIDERS if name in poller.providers), None)
    if source is None:
        problems.add(
            f'market.coins: "top:{market.top.count}" needs a ranking from {" or ".join(RANKING_PROVIDERS)}; '
            f"add one of them to poller.providers (now {', '.join(poller.providers)})"
        )
        return market
    return replace(market, top=replace(market.top, source=source))


def _parse_currencies(table: Table) -> tuple[str, ...]:
    """The valid, distinct currencies, lower-case (bad ones reported); ("usd",) if none is valid."""
    given = tuple(c.lower() for c in table.take_strings("currencies", ("usd",)))
    if not given and not table.problems.under("market.currencies"):
        table.fail("currencies", "expected at least one currency")
    currencies: list[str] = []
    for index, code in enumerate(given):
        path = f"market.currencies[{index}]"
        if not is_known_currency(code):
            table.problems.add(
                f"{path}: unknown currency {code!r} (use ISO 4217 codes in current use such as usd, eur, "
                f"or btc, eth, sats){did_you_mean(code, sorted(KNOWN_CURRENCIES))}"
            )
        elif code in currencies:
            table.problems.add(f"{path}: duplicate currency {code!r}")
        else:
            currencies.append(code)
    return tuple(currencies) or ("usd",)


def _parse_coin(entry: Any, path: str, currencies: tuple[str, ...], problems: Problems) -> Coin | None:
    """One entry of market.coins; None when it is not even a coin (reported)."""
    if isinstance(entry, str):
        entry = {"symbol": entry}
    table = Table(entry, path, problems)
    if not table.ok:
        return None
    raw_symbol = table.take("symbol", str, "")
    if not raw_symbol.strip() or len(raw_symbol) > 20 or not raw_symbol.strip().replace("-", "").isalnum():
        table.fail("symbol", f"expected a ticker symbol such as BTC, got {describe(raw_symbol)}")
        table.data.clear()  # whatever else it says belongs to no coin
        return None
    symbol = canonical_symbol(raw_symbol)
    if table.present("chain") or table.present("address"):
        return _parse_token(table, path, symbol)
    known = lookup(symbol)
    name = table.take_text("name", known.name if known else symbol) or symbol
    ids = dict(known.ids) if known else {}
    ids_table = table.table("ids")
    for provider in list(ids_table.data):
        if provider not in PROVIDERS and provider != KRAKEN_WS:  # kraken_ws: Kraken's stream name, "BTC/USD"
            ids_table.fail(provider, _unknown_provider(provider, key=ids_table.key("")))
            del ids_table.data[provider]
        elif provider in TOKEN_PROVIDERS:
            ids_table.fail(provider, "tokens are priced by contract: set chain and address on the coin instead")
            del ids_table.data[provider]
        elif value := ids_table.take_text(provider, blank="expected a non-empty id"):
            ids[provider] = value
    prices = _parse_static_prices(table, path, currencies)
    # This coin's jump limit in percent (0: off, for thin DEX tokens); absent: poller.max_jump_pct.
    max_jump = table.take_number("max_jump_pct", 0.0, minimum=0.0) if table.present("max_jump_pct") else None
    table.finish()
    if not prices and not known and not ids and not problems.under(path):  # (a bad price is reason enough)
        problems.add(
            f"{path}: unknown symbol {symbol!r}; give its provider ids "
            f'(ids = {{ coingecko = "..." }}) or run `ticker resolve {symbol}` to find them'
        )
    return Coin(symbol, name, MappingProxyType(ids), MappingProxyType(prices), max_jump)


def _parse_token(table: Table, path: str, symbol: str) -> Coin | None:
    """A token by contract address: `{ symbol, name, chain, address }` (and `max_jump_pct`), nothing else.

    Its ids are "chain:address" for GeckoTerminal and DefiLlama's chain name plus the address for
    DefiLlama (providers/chains.py); the symbol table is not consulted, so a token that shares a
    symbol with a listed coin is still priced by its contract only.
    """
    has_chain, has_address = "chain" in table.data, "address" in table.data
    name = table.take_text("name", symbol) or symbol
    chain = table.take_text("chain", blank="expected a chain such as eth, bsc or solana").lower()
    address = table.take_text("address", blank="expected the token's contract address")
    max_jump = table.take_number("max_jump_pct", 0.0, minimum=0.0) if table.present("max_jump_pct") else None
    for key in ("ids", "price", "prices"):
        if table.present(key):
            table.fail(key, "not allowed on a token (chain and address say where it is priced)")
            del table.data[key]
    table.finish()
    if not has_chain:
        table.fail("chain", f"missing: a token needs chain (one of {', '.join(CHAINS)}) beside its address")
    if not has_address:
        table.fail("address", "missing: a token needs its contract address beside its chain")
    if chain and chain not in CHAINS:
        table.fail(
            "chain",
            f"unknown chain {chain!r} (as GeckoTerminal names networks: {', '.join(CHAINS)})"
            + did_you_mean(chain, CHAINS),
        )
    if table.problems.under(path):
        return None
    problem = address_problem(chain, address)
    if problem is not None:
        table.fail("address", problem)
        return None
    lookup_address = request_address(chain, address)
    ids = {"geckoterminal": f"{chain}:{lookup_address}", "defillama": f"{CHAINS[chain].defillama}:{lookup_address}"}
    return Coin(symbol, name, MappingProxyType(ids), MappingProxyType({}), max_jump, chain=chain, address=address)


def _parse_static_prices(table: Table, path: str, currencies: tuple[str, ...]) -> dict[str, float]:
    prices: dict[str, float] = {}
    if table.present("price"):
        prices[currencies[0]] = table.take_number("price", 0.0, minimum=0.0, exclusive=True)
    per_currency = table.table("prices")
    for code in list(per_currency.data):
        if code.lower() not in currencies:
            per_currency.fail(
                code,
                f"not a configured currency (market.currencies: {', '.join(currencies)})"
                + did_you_mean(code.lower(), currencies),
            )
            del per_currency.data[code]
            continue
        prices[code.lower()] = per_currency.take_number(code, 0.0, minimum=0.0, exclusive=True)
    return prices


def _unknown_provider(name: str, *, key: str | None = None) -> str:
    """The problem with a provider name we do not implement: a value, or a key of the table at `key`."""
    what = "unknown provider" if key is not None else f"unknown provider {name!r}"
    return f"{what} (known: {', '.join(PROVIDERS)}){did_you_mean(name, PROVIDERS, key=key)}"


def _parse_providers(table: Table) -> dict[str, ProviderSettings]:
    for name in list(table.data):
        if name not in PROVIDERS:
            table.fail(name, _unknown_provider(name, key=table.key("")))
            del table.data[name]
    return {name: _parse_provider(table.table(name), name) for name in PROVIDERS}


def _parse_provider(table: Table, name: str) -> ProviderSettings:
    cls = PROVIDERS[name]
    base_url = table.take_text("base_url") or None
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        table.fail("base_url", f"expected an http:// or https:// URL, got {describe(base_url)}")
    api_key_env = table.take_text("api_key_env") or None
    plan = table.take_choice("plan", cls.PLANS, cls.PLANS[0]) if cls.PLANS else None
    per_minute = table.take_number("requests_per_minute", 0.0, minimum=0.0) or None
    per_month = table.take_number("requests_per_month", 0.0, minimum=0.0) or None
    stream_url = None
    if name in STREAM_PROVIDERS:
        stream_url = table.take_text("stream_url") or None
        if stream_url is not None and not stream_url.startswith(("ws://", "wss://")):
            table.fail("stream_url", f"expected a ws:// or wss:// URL, got {describe(stream_url)}")
    table.finish()
    return ProviderSettings(base_url, api_key_env, plan, per_minute, per_month, stream_url)


def _parse_poller(table: Table) -> PollerSettings:
    interval = table.take_number("interval_seconds", 60.0, minimum=1.0)
    timeout = table.take_number("timeout_seconds", 10.0, minimum=0.0, exclusive=True)
    given = table.take_strings("providers", DEFAULT_PROVIDERS)
    if not given and not table.problems.under("poller.providers"):
        table.fail("providers", "expected at least one provider")
    providers: list[str] = []
    for index, name in enumerate(given):
        if name not in PROVIDERS:
            table.problems.add(f"poller.providers[{index}]: {_unknown_provider(name)}")
        elif name in providers:
            table.problems.add(f"poller.providers[{index}]: duplicate provider {name!r}")
        else:
            providers.append(name)
    stale_after = table.take_number("stale_after_seconds", 300.0, minimum=0.0, exclusive=True)
    max_stale = table.take_number("max_stale_seconds", 86400.0, minimum=0.0, exclusive=True)
    if max_stale < stale_after:
        table.fail(
            "max_stale_seconds",
            f"must be at least poller.stale_after_seconds ({stale_after:g}), got {max_stale:g}",
        )
    max_jump = table.take_number("max_jump_pct", 50.0, minimum=0.0)
    table.finish()
    return PollerSettings(interval, timeout, tuple(providers) or DEFAULT_PROVIDERS, stale_after, max_stale, max_jump)


def _parse_cache(table: Table, base_dir: Path | None) -> CacheSettings:
    url = table.take("url", str, "memory://")
    if not url.startswith(("memory://", "redis://", "rediss://")):
        table.fail("url", f"expected memory:// or redis://host:port/db, got {describe(url)}")
    elif url.startswith(("redis://", "rediss://")) and (problem := _redis_url_problem(url)):
        table.fail("url", problem)
    namespace = table.take("namespace", str, "ticker")
    if not namespace or not all(ch.isalnum() or ch in "-_.:" for ch in namespace):
        table.fail("namespace", f"expected letters, digits, - _ . :, got {describe(namespace)}")
    default_path = "ticker-snapshot.json" if base_dir else str(default_state_dir() / "snapshot.json")
    raw_path = table.take("snapshot_path", str, default_path)
    redis_fallback = table.take("redis_fallback", bool, True)
    table.finish()
    snapshot_path = _resolve_path(raw_path, base_dir) if raw_path else None
    return CacheSettings(url, namespace, snapshot_path, redis_fallback)


def _parse_history(table: Table, base_dir: Path | None) -> HistorySettings:
    default_path = "ticker-history.sqlite3" if base_dir else str(default_state_dir() / "history.sqlite3")
    raw_path = table.take("path", str, default_path).strip()
    backfill = table.take("backfill", bool, True)
    table.finish()
    path = _resolve_path(raw_path, base_dir) if raw_path else None
    if path is not None and path.is_dir():
        table.fail("path", f"expected a file name, got the directory {str(path)!r}")
    return HistorySettings(path, backfill)


def _parse_live(table: Table) -> LiveSettings:
    enabled = table.take("enabled", bool, False)
    given = table.take_strings("providers", STREAM_PROVIDERS)
    providers: list[str] = []
    for index, name in enumerate(given):
        if name not in STREAM_PROVIDERS:
            close = did_you_mean(name, STREAM_PROVIDERS)
            table.problems.add(
                f"live.providers[{index}]: {name!r} has no stream (streams: {', '.join(STREAM_PROVIDERS)}){close}"
            )
        elif name in providers:
            table.problems.add(f"live.providers[{index}]: duplicate provider {name!r}")
        else:
            providers.append(name)
    rate = table.take_number("max_updates_per_second", 4.0, minimum=0.0, exclusive=True)
    table.finish()
    return LiveSettings(enabled, tuple(providers), rate)


def _redis_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when out of range
    except ValueError as err:
        return f"{err} in {describe(url)}"
    db = parts.path.lstrip("/")
    if not parts.hostname or (db and not db.isdigit()):
        return f"expected redis://[:password@]host[:port][/db number], got {describe(url)}"
    return None


def _parse_server(table: Table) -> ServerSettings:
    host = table.take("host", str, "127.0.0.1")
    port = table.take("port", int, 8000)
    if not 1 <= port <= 65535:
        table.fail("port", f"expected 1 to 65535, got {port}")
    frame_ancestors = _origins(table, "frame_ancestors", allow_self=True)
    cors_origins = _origins(table, "cors_origins", allow_self=False)
    log_format = table.take_choice("log_format", LOG_FORMATS, "text")
    public_url = table.take_text("public_url").rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        table.fail("public_url", f"expected an http:// or https:// URL, got {describe(public_url)}")
    table.finish()
    return ServerSettings(host, port, frame_ancestors, cors_origins, log_format, public_url)


ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")


def _origins(table: Table, name: str, *, allow_self: bool) -> tuple[str, ...]:
    """A list of bare origins (scheme://host[:port]) or "*": they are copied into CSP and CORS headers."""
    values = table.take_strings(name, ("*",))
    for index, value in enumerate(values):
        if value == "*" or (allow_self and value in ("self", "'self'")) or ORIGIN.fullmatch(value):
            continue
        table.problems.add(
            f'server.{name}[{index}]: expected an origin such as https://blog.example or "*", got {describe(value)}'
        )
    return values


def _parse_widget(table: Table, base_dir: Path | None) -> WidgetSettings:
    title = table.take("title", str, "Latest Market Prices")
    raw_locale = table.take("locale", str, "en_US")
    locale = canonical_locale(raw_locale)
    if locale is None:
        close = did_you_mean(raw_locale, sorted(VISITOR_LOCALES)) or did_you_mean(raw_locale, locale_identifiers())
        table.fail("locale", f"unknown locale {raw_locale!r} (examples: en_US, de_DE, fr_FR, ja_JP){close}")
    theme = table.take_choice("theme", THEMES, "auto")
    layout = table.take_choice("layout", LAYOUTS, "list")
    transparent = table.take("transparent", bool, False)
    css = table.take("css_file", str, "")
    sparkline = table.take("sparkline", bool, False)
    table.finish()
    css_file = _resolve_path(css, base_dir) if css else None
    if css_file is not None and not css_file.is_file():
        table.fail("css_file", f"no such file {str(css_file)!r}")
    return WidgetSettings(title, locale or "en_US", theme, layout, transparent, css_file, sparkline)


def canonical_locale(name: str) -> str | None:
    """Babel's spelling of a locale name ("en-us" -> "en_US"), or None if Babel has no such locale."""
    if not name or len(name) > 20:
        return None
    if name.strip().replace("-", "_").lower() == PSEUDO_LOCALE.lower():
        return PSEUDO_LOCALE
    try:
        return str(Locale.parse(name.strip().replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def _resolve_path(raw: str, base_dir: Path | None) -> Path:
    path = Path(raw).expanduser()
    if path.is_absolute() or base_dir is None:
        return path
    return base_dir / path


def _check_coverage(
    market: MarketSettings, poller: PollerSettings, positions: Mapping[str, int], problems: Problems
) -> None:
    """Every live coin needs an id at one of the configured providers at least (coins with errors aside)."""
    for coin in market.coins:
        index = positions[coin.symbol]
        if coin.is_static or coin.is_token or any(name in coin.ids for name in poller.providers):
            continue
        if problems.under(f"market.coins[{index}]"):
            continue  # its own error says enough (a bad price is not a missing id)
        problems.add(
            f"market.coins[{index}]: {coin.symbol} has no id for the configured providers "
            f'({", ".join(poller.providers)}); add ids = {{ {poller.providers[0]} = "..." }} '
            f"or run `ticker resolve {coin.symbol}`"
        )


def serves(provider: str, currency: str) -> bool:
    """Whether the provider quotes in this currency (a provider with `CURRENCIES = None` is taken to)."""
    currencies = PROVIDERS[provider].CURRENCIES
    return currencies is None or currency in currencies


def unserved_currencies(market: MarketSettings, poller: PollerSettings) -> frozenset[str]:
    """Configured currencies no configured provider quotes in: live coins are unavailable there."""
    if not market.live_coins and market.top is None:
        return frozenset()
    return frozenset(c for c in market.currencies if not any(serves(p, c) for p in poller.providers))


def _warnings(market: MarketSettings, poller: PollerSettings) -> tuple[str, ...]:
    """Suspect but valid settings, one line each: the service starts, but some prices will never show."""
    warnings = []
    for index, currency in enumerate(market.currencies):
        if currency not in market.unserved_currencies:
            continue
        others = [
            name
            for name in PROVIDERS
            if name not in poller.providers and name not in TOKEN_PROVIDERS and serves(name, currency)
        ]
        fix = f"; {' and '.join(others)} would: add it to poller.providers" if others else ""
        warnings.append(
            f"market.currencies[{index}]: no configured provider ({', '.join(poller.providers)}) quotes in "
            f"{currency!r}, so live coins show as unavailable in it{fix}"
        )
    for index, coin in enumerate(market.coins):
        missing = [c for c in market.currencies if coin.is_static and c not in coin.prices]
        if missing:
            given = ", ".join(f"{c} = {p:g}" for c, p in coin.prices.items())
            wanted = ", ".join(f"{c} = ..." for c in missing)
            warnings.append(
                f"market.coins[{index}]: static coin {coin.symbol} has no price in {', '.join(missing)}, so it "
                f"shows as unavailable there; give prices = {{ {given}, {wanted} }}"
            )
    return tuple(warnings) + _token_warnings(market)


def _live_warnings(market: MarketSettings, live: LiveSettings) -> tuple[str, ...]:
    """Streams quote usd only (Binance's USDT standing in): without usd they would carry nothing shown."""
    if live.enabled and not live.providers:
        return ("live.enabled: live.providers is empty, so no stream will connect; list kraken, coinbase or binance",)
    if live.enabled and "usd" not in market.currencies:
        return (
            "live.enabled: the exchange streams quote usd only, which is not in market.currencies: no stream "
            'will connect; add "usd" to market.currencies or turn live off',
        )
    return ()


def _token_warnings(market: MarketSettings) -> tuple[str, ...]:
    """Tokens are quoted in USD only: another currency needs BTC's price in usd and in it (same round)."""
    btc = next((c for c in market.coins if c.symbol == "BTC" and not c.is_static), None)
    others = [c for c in market.currencies if c != "usd"]
    if not others or (btc is not None and "usd" in market.currencies):
        return ()
    need = "BTC among the coins and usd among the currencies" if btc is None else "usd among the currencies"
    return tuple(
        f"market.coins[{index}]: token {coin.symbol} is quoted in USD only and converted through BTC's price, "
        f"so without {need} it shows as unavailable in {', '.join(others)}"
        for index, coin in enumerate(market.coins)
        if coin.is_token
    )
