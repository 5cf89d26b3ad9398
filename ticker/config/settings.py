"""Settings: one TOML file validated into frozen objects, or the built-in default.

A bad file never starts a half-configured service: `load_settings` raises
ConfigError whose message starts with the key's dotted path
(`poller.interval_seconds`, `market.coins[3]`, 0-based) and fits on one line.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies

from ticker.config._table import Table, describe
from ticker.exceptions import ConfigError
from ticker.models import Coin, canonical_symbol
from ticker.providers import PROVIDERS
from ticker.providers.base import ProviderSettings
from ticker.providers.coin_ids import DEFAULT_SYMBOLS, lookup

CRYPTO_CURRENCIES = frozenset({"btc", "eth", "sats"})
THEMES = ("light", "dark", "auto")
# Locales a visitor may ask for (plus the configured widget.locale): Babel keeps every locale it loads,
# so an open list would let visitors grow memory by hundreds of MB.
VISITOR_LOCALES = frozenset(
    "ar ar_AE ar_EG ar_SA bg bg_BG ca ca_ES cs cs_CZ da da_DK de de_AT de_CH de_DE el el_GR en en_AU en_CA "
    "en_GB en_IE en_IN en_NZ en_SG en_US en_ZA es es_AR es_CL es_CO es_ES es_MX es_US et et_EE fa fa_IR fi "
    "fi_FI fil fr fr_BE fr_CA fr_CH fr_FR he he_IL hi hi_IN hr hr_HR hu hu_HU id id_ID it it_CH it_IT ja ja_JP "
    "ko ko_KR lt lt_LT lv lv_LV ms ms_MY nb nb_NO nl nl_BE nl_NL pl pl_PL pt pt_BR pt_PT ro ro_RO ru ru_RU sk "
    "sk_SK sl sl_SI sr sv sv_SE sw th th_TH tr tr_TR uk uk_UA vi vi_VN zh zh_Hans_CN zh_Hant_HK zh_Hant_TW".split()
)
LAYOUTS = ("list", "compact", "ticker")
LOG_FORMATS = ("text", "json")
DEFAULT_PROVIDERS: tuple[str, ...] = tuple(name for name, cls in PROVIDERS.items() if cls.KEYLESS)


def is_known_currency(code: str) -> bool:
    return code in CRYPTO_CURRENCIES or (code == code.lower() and code.upper() in list_currencies())


@dataclass(frozen=True)
class MarketSettings:
    coins: tuple[Coin, ...] = ()
    currencies: tuple[str, ...] = ("usd",)
    unserved_currencies: frozenset[str] = frozenset()  # configured currencies no configured provider serves

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
class Settings:
    market: MarketSettings = field(default_factory=MarketSettings)
    poller: PollerSettings = field(default_factory=PollerSettings)
    providers: Mapping[str, ProviderSettings] = field(default_factory=lambda: MappingProxyType({}))
    cache: CacheSettings = field(default_factory=CacheSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    widget: WidgetSettings = field(default_factory=WidgetSettings)
    source: Path | None = None  # the file these came from

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
    root = Table(data, "")
    market = _parse_market(Table(root.take("market", dict, {}), "market"))
    provider_tables = Table(root.take("providers", dict, {}), "providers")
    for name in provider_tables.data:
        if name not in PROVIDERS:
            raise ConfigError(f"providers.{name}: unknown provider (known: {', '.join(PROVIDERS)})")
    providers = {name: _parse_provider(provider_tables, name) for name in PROVIDERS}
    poller = _parse_poller(Table(root.take("poller", dict, {}), "poller"))
    cache = _parse_cache(Table(root.take("cache", dict, {}), "cache"), base_dir)
    server = _parse_server(Table(root.take("server", dict, {}), "server"))
    widget = _parse_widget(Table(root.take("widget", dict, {}), "widget"), base_dir)
    root.finish()
    _check_coverage(market, poller)
    return Settings(market, poller, MappingProxyType(providers), cache, server, widget, source)


def _parse_market(table: Table) -> MarketSettings:
    currencies = tuple(c.lower() for c in table.take_strings("currencies", ("usd",)))
    if not currencies:
        raise ConfigError("market.currencies: expected at least one currency")
    for index, code in enumerate(currencies):
        if not is_known_currency(code):
            raise ConfigError(
                f"market.currencies[{index}]: unknown currency {code!r} "
                "(use ISO 4217 codes such as usd, eur, or btc, eth, sats)"
            )
        if code in currencies[:index]:
            raise ConfigError(f"market.currencies[{index}]: duplicate currency {code!r}")
    entries = table.take("coins", list, list(DEFAULT_SYMBOLS))
    table.finish()
    if not entries:
        raise ConfigError("market.coins: expected at least one coin")
    coins: list[Coin] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        coin = _parse_coin(entry, f"market.coins[{index}]", currencies)
        if coin.symbol in seen:
            raise ConfigError(
                f"market.coins[{index}]: duplicate coin {coin.symbol} (already market.coins[{seen[coin.symbol]}])"
            )
        seen[coin.symbol] = index
        coins.append(coin)
    return MarketSettings(tuple(coins), currencies)


def _parse_coin(entry: Any, path: str, currencies: tuple[str, ...]) -> Coin:
    if isinstance(entry, str):
        entry = {"symbol": entry}
    table = Table(entry, path)
    raw_symbol = table.take("symbol", str, "")
    if not raw_symbol.strip() or len(raw_symbol) > 20 or not raw_symbol.strip().replace("-", "").isalnum():
        raise ConfigError(f"{path}.symbol: expected a ticker symbol such as BTC, got {describe(raw_symbol)}")
    symbol = canonical_symbol(raw_symbol)
    known = lookup(symbol)
    name = table.take("name", str, known.name if known else symbol).strip() or symbol
    ids_table = Table(table.take("ids", dict, {}), f"{path}.ids")
    ids = dict(known.ids) if known else {}
    for provider in list(ids_table.data):
        if provider not in PROVIDERS:
            raise ConfigError(f"{path}.ids.{provider}: unknown provider (known: {', '.join(PROVIDERS)})")
        value = ids_table.take(provider, str, "").strip()
        if not value:
            raise ConfigError(f"{path}.ids.{provider}: expected a non-empty id")
        ids[provider] = value
    prices = _parse_static_prices(table, path, currencies)
    # This coin's jump limit in percent (0: off, for thin DEX tokens); absent: poller.max_jump_pct.
    max_jump = table.take_number("max_jump_pct", 0.0, minimum=0.0) if "max_jump_pct" in table.data else None
    table.finish()
    if not prices and not known and not ids:
        raise ConfigError(
            f"{path}: unknown symbol {symbol!r}; give its provider ids "
            f'(ids = {{ coingecko = "..." }}) or run `ticker resolve {symbol}` to find them'
        )
    return Coin(symbol, name, MappingProxyType(ids), MappingProxyType(prices), max_jump)


def _parse_static_prices(table: Table, path: str, currencies: tuple[str, ...]) -> dict[str, float]:
    prices: dict[str, float] = {}
    if "price" in table.data:
        prices[currencies[0]] = table.take_number("price", 0.0, minimum=0.0, exclusive=True)
    per_currency = Table(table.take("prices", dict, {}), f"{path}.prices")
    for code in list(per_currency.data):
        if code.lower() not in currencies:
            raise ConfigError(
                f"{path}.prices.{code}: not a configured currency (market.currencies: {', '.join(currencies)})"
            )
        prices[code.lower()] = per_currency.take_number(code, 0.0, minimum=0.0, exclusive=True)
    return prices


def _parse_provider(tables: Table, name: str) -> ProviderSettings:
    cls = PROVIDERS[name]
    table = Table(tables.take(name, dict, {}), f"providers.{name}")
    base_url = table.take("base_url", str, "").strip() or None
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"providers.{name}.base_url: expected an http:// or https:// URL, got {describe(base_url)}")
    api_key_env = table.take("api_key_env", str, "").strip() or None
    plan = table.take_choice("plan", cls.PLANS, cls.PLANS[0]) if cls.PLANS else None
    per_minute = table.take_number("requests_per_minute", 0.0, minimum=0.0) or None
    per_month = table.take_number("requests_per_month", 0.0, minimum=0.0) or None
    table.finish()
    return ProviderSettings(base_url, api_key_env, plan, per_minute, per_month)


def _parse_poller(table: Table) -> PollerSettings:
    interval = table.take_number("interval_seconds", 60.0, minimum=1.0)
    timeout = table.take_number("timeout_seconds", 10.0, minimum=0.0, exclusive=True)
    providers = table.take_strings("providers", DEFAULT_PROVIDERS)
    if not providers:
        raise ConfigError("poller.providers: expected at least one provider")
    for index, name in enumerate(providers):
        if name not in PROVIDERS:
            raise ConfigError(f"poller.providers[{index}]: unknown provider {name!r} (known: {', '.join(PROVIDERS)})")
        if name in providers[:index]:
            raise ConfigError(f"poller.providers[{index}]: duplicate provider {name!r}")
    stale_after = table.take_number("stale_after_seconds", 300.0, minimum=0.0, exclusive=True)
    max_stale = table.take_number("max_stale_seconds", 86400.0, minimum=0.0, exclusive=True)
    if max_stale < stale_after:
        raise ConfigError(
            f"poller.max_stale_seconds: must be at least poller.stale_after_seconds ({stale_after:g}), "
            f"got {max_stale:g}"
        )
    max_jump = table.take_number("max_jump_pct", 50.0, minimum=0.0)
    table.finish()
    return PollerSettings(interval, timeout, providers, stale_after, max_stale, max_jump)


def _parse_cache(table: Table, base_dir: Path | None) -> CacheSettings:
    url = table.take("url", str, "memory://")
    if not url.startswith(("memory://", "redis://", "rediss://")):
        raise ConfigError(f"cache.url: expected memory:// or redis://host:port/db, got {describe(url)}")
    if url.startswith(("redis://", "rediss://")):
        _check_redis_url(url)
    namespace = table.take("namespace", str, "ticker")
    if not namespace or not all(ch.isalnum() or ch in "-_.:" for ch in namespace):
        raise ConfigError(f"cache.namespace: expected letters, digits, - _ . :, got {describe(namespace)}")
    default_path = "ticker-snapshot.json" if base_dir else str(default_state_dir() / "snapshot.json")
    raw_path = table.take("snapshot_path", str, default_path)
    redis_fallback = table.take("redis_fallback", bool, True)
    table.finish()
    snapshot_path = _resolve_path(raw_path, base_dir) if raw_path else None
    return CacheSettings(url, namespace, snapshot_path, redis_fallback)


def _check_redis_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError when out of range
    except ValueError as err:
        raise ConfigError(f"cache.url: {err} in {describe(url)}") from err
    db = parts.path.lstrip("/")
    if not parts.hostname or (db and not db.isdigit()):
        raise ConfigError(f"cache.url: expected redis://[:password@]host[:port][/db number], got {describe(url)}")


def _parse_server(table: Table) -> ServerSettings:
    host = table.take("host", str, "127.0.0.1")
    port = table.take("port", int, 8000)
    if not 1 <= port <= 65535:
        raise ConfigError(f"server.port: expected 1 to 65535, got {port}")
    frame_ancestors = _origins(table, "frame_ancestors", allow_self=True)
    cors_origins = _origins(table, "cors_origins", allow_self=False)
    log_format = table.take_choice("log_format", LOG_FORMATS, "text")
    public_url = table.take("public_url", str, "").strip().rstrip("/")
    if public_url and not public_url.startswith(("http://", "https://")):
        raise ConfigError(f"server.public_url: expected an http:// or https:// URL, got {describe(public_url)}")
    table.finish()
    return ServerSettings(host, port, frame_ancestors, cors_origins, log_format, public_url)


ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")


def _origins(table: Table, name: str, *, allow_self: bool) -> tuple[str, ...]:
    """A list of bare origins (scheme://host[:port]) or "*": they are copied into CSP and CORS headers."""
    values = table.take_strings(name, ("*",))
    for index, value in enumerate(values):
        if value == "*" or (allow_self and value in ("self", "'self'")) or ORIGIN.fullmatch(value):
            continue
        raise ConfigError(
            f'server.{name}[{index}]: expected an origin such as https://blog.example or "*", got {describe(value)}'
        )
    return values


def _parse_widget(table: Table, base_dir: Path | None) -> WidgetSettings:
    title = table.take("title", str, "Latest Market Prices")
    raw_locale = table.take("locale", str, "en_US")
    locale = canonical_locale(raw_locale)
    if locale is None:
        raise ConfigError(f"widget.locale: unknown locale {raw_locale!r} (examples: en_US, de_DE, fr_FR, ja_JP)")
    theme = table.take_choice("theme", THEMES, "auto")
    layout = table.take_choice("layout", LAYOUTS, "list")
    transparent = table.take("transparent", bool, False)
    css = table.take("css_file", str, "")
    sparkline = table.take("sparkline", bool, False)
    table.finish()
    css_file = _resolve_path(css, base_dir) if css else None
    if css_file is not None and not css_file.is_file():
        raise ConfigError(f"widget.css_file: no such file {str(css_file)!r}")
    return WidgetSettings(title, locale, theme, layout, transparent, css_file, sparkline)


def canonical_locale(name: str) -> str | None:
    """Babel's spelling of a locale name ("en-us" -> "en_US"), or None if Babel has no such locale."""
    if not name or len(name) > 20:
        return None
    try:
        return str(Locale.parse(name.strip().replace("-", "_")))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def _resolve_path(raw: str, base_dir: Path | None) -> Path:
    path = Path(raw).expanduser()
    if path.is_absolute() or base_dir is None:
        return path
    return base_dir / path


def _check_coverage(market: MarketSettings, poller: PollerSettings) -> None:
    """Every live coin needs an id at one of the configured providers at least."""
    for index, coin in enumerate(market.coins):
        if coin.is_static or any(name in coin.ids for name in poller.providers):
            continue
        raise ConfigError(
            f"market.coins[{index}]: {coin.symbol} has no id for the configured providers "
            f'({", ".join(poller.providers)}); add ids = {{ {poller.providers[0]} = "..." }} '
            f"or run `ticker resolve {coin.symbol}`"
        )
