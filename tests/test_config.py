from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import settings_from
from ticker.config import default_settings, load_settings
from ticker.exceptions import ConfigError
from ticker.providers import PROVIDERS, TOKEN_PROVIDERS

ROOT = Path(__file__).parent.parent


def test_builtin_default_matches_the_contract(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings = default_settings()
    symbols = [coin.symbol for coin in settings.market.coins]
    assert symbols == ["BTC", "ETH", "NEO", "WAVES", "XMR", "XNO", "ARK", "ARRR", "DOGE", "LTC", "ADA"]
    assert settings.market.currencies == ("usd",)
    keyless = {name for name, cls in PROVIDERS.items() if cls.KEYLESS and name not in TOKEN_PROVIDERS}
    assert settings.poller.providers[0] == "coingecko" and set(settings.poller.providers) == keyless
    assert settings.cache.url == "memory://"
    assert settings.cache.snapshot_path == tmp_path / "ticker" / "snapshot.json"
    assert settings.history.path == tmp_path / "ticker" / "history.sqlite3" and settings.history.backfill
    assert settings.coins_by_symbol["ARRR"].ids["coingecko"] == "pirate-chain"
    assert settings.coins_by_symbol["XNO"].ids["coingecko"] == "nano"


def test_example_config_documents_the_defaults(monkeypatch, tmp_path):
    """config.example.toml sets every key to its default, so loading it equals loading nothing."""
    example = load_settings(ROOT / "config.example.toml")
    default = settings_from(tmp_path, "")
    assert example.market == default.market
    assert example.poller == default.poller
    assert example.server == default.server
    assert example.widget == default.widget
    assert example.cache.url == default.cache.url and example.cache.namespace == default.cache.namespace
    assert example.cache.snapshot_path == ROOT / "ticker-snapshot.json"
    assert example.history.path == ROOT / "ticker-history.sqlite3" and example.history.backfill is True
    assert example.provider("coingecko") == default.provider("coingecko")


def test_contract_example_block_loads(tmp_path):
    (tmp_path / "site.css").write_text(".tk{}")
    settings = settings_from(
        tmp_path,
        """
[market]
coins = ["BTC", "eth", "XMR",
         { symbol = "ARRR", ids = { coingecko = "pirate-chain" } },
         { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]
currencies = ["usd", "eur"]

[poller]
interval_seconds = 60
timeout_seconds = 10
providers = ["coingecko"]
stale_after_seconds = 300
max_stale_seconds = 86400

[providers.coingecko]
base_url = "https://api.coingecko.com/api/v3"
api_key_env = "COINGECKO_API_KEY"
plan = "demo"
requests_per_minute = 10

[cache]
url = "memory://"
namespace = "ticker"
snapshot_path = "state/ticker-snapshot.json"

[server]
host = "127.0.0.1"
port = 8000
frame_ancestors = ["*"]
cors_origins = ["*"]
log_format = "text"

[widget]
title = "Latest Market Prices"
locale = "de-DE"
theme = "auto"
layout = "list"
transparent = false
css_file = "site.css"
""",
    )
    assert [c.symbol for c in settings.market.coins] == ["BTC", "ETH", "XMR", "ARRR", "OPENVC"]
    openvc = settings.market.coins[-1]
    assert openvc.is_static and openvc.prices == {"usd": 0.0042} and openvc.name == "OpenVoiceCoin"
    assert settings.market.default_currency == "usd"
    assert settings.provider("coingecko").requests_per_minute == 10
    assert settings.cache.snapshot_path == tmp_path / "state" / "ticker-snapshot.json"
    assert settings.widget.css_file == tmp_path / "site.css"
    assert settings.widget.locale == "de_DE"


def test_nano_is_an_alias_of_xno(tmp_path):
    settings = settings_from(tmp_path, '[market]\ncoins = ["nano", "btc"]')
    assert [c.symbol for c in settings.market.coins] == ["XNO", "BTC"]


def test_ids_override_the_table_and_unknown_coins_need_ids(tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = [{ symbol = "ETH", ids = { coingecko = "ethereum-wormhole" } },'
        ' { symbol = "FOO", name = "Foo Coin", ids = { coingecko = "foo-coin" } }]',
    )
    eth, foo = settings.market.coins
    assert eth.ids["coingecko"] == "ethereum-wormhole" and eth.name == "Ethereum"
    assert foo.ids == {"coingecko": "foo-coin"} and foo.name == "Foo Coin"


def test_static_prices_per_currency(tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncurrencies = ["usd", "EUR"]\ncoins = [{ symbol = "SITE", prices = { usd = 1.5, eur = 1.25 } }]',
    )
    assert settings.market.currencies == ("usd", "eur")
    assert settings.market.coins[0].prices == {"usd": 1.5, "eur": 1.25}


BAD_CONFIGS = [
    ("[poller]\ninterval_seconds = 0.5", "poller.interval_seconds: expected a number at least 1, got 0.5"),
    ('[poller]\ninterval_seconds = "60"', "poller.interval_seconds: expected a number, got '60'"),
    ("[poller]\ninterval_seconds = true", "poller.interval_seconds: expected a number, got true"),
    ("[poller]\nintervall_seconds = 60", "poller.intervall_seconds: unknown key"),
    ("[pollers]\ninterval_seconds = 60", "pollers: unknown key"),
    ('[poller]\nproviders = ["coingecko", "bitstamp"]', "poller.providers[1]: unknown provider 'bitstamp'"),
    ('[poller]\nproviders = ["coingecko", "coingecko"]', "poller.providers[1]: duplicate provider"),
    ("[poller]\nproviders = []", "poller.providers: expected at least one provider"),
    ("[poller]\nstale_after_seconds = 600\nmax_stale_seconds = 60", "poller.max_stale_seconds: must be at least"),
    ('[market]\ncoins = ["BTC", "ETH", "BTC"]', "market.coins[2]: duplicate coin BTC (already market.coins[0])"),
    ('[market]\ncoins = ["XNO", "NANO"]', "market.coins[1]: duplicate coin XNO"),
    ('[market]\ncoins = ["BTC", "ETH", "NOSUCHCOIN"]', "market.coins[2]: unknown symbol 'NOSUCHCOIN'"),
    ('[market]\ncoins = ["BTC", 5]', "market.coins[1]: expected a table, got 5"),
    ('[market]\ncoins = [{ symbol = "BTC", colour = "red" }]', "market.coins[0].colour: unknown key"),
    ('[market]\ncoins = [{ symbol = "X", price = -1 }]', "market.coins[0].price: expected a number greater than 0"),
    (
        '[market]\ncoins = [{ symbol = "X", prices = { gbp = 1 } }]',
        "market.coins[0].prices.gbp: not a configured currency",
    ),
    (
        '[market]\ncoins = [{ symbol = "BTC", ids = { bitstamp = "btc" } }]',
        "market.coins[0].ids.bitstamp: unknown provider",
    ),
    ('[market]\ncoins = [{ symbol = "<b>" }]', "market.coins[0].symbol: expected a ticker symbol"),
    ("[market]\ncoins = []", "market.coins: expected at least one coin"),
    ('[market]\ncurrencies = ["usd", "xyz"]', "market.currencies[1]: unknown currency 'xyz'"),
    ('[market]\ncurrencies = ["usd", "USD"]', "market.currencies[1]: duplicate currency 'usd'"),
    ('[providers.coingecko]\nplan = "gold"', "providers.coingecko.plan: expected one of demo, pro, got 'gold'"),
    (
        '[providers.coingecko]\nbase_url = "ftp://x"',
        "providers.coingecko.base_url: expected an http:// or https:// URL",
    ),
    ("[providers.bitstamp]\nbase_url = 'https://x'", "providers.bitstamp: unknown provider"),
    ('[cache]\nurl = "memcached://x"', "cache.url: expected memory:// or redis://"),
    ("[server]\nport = 70000", "server.port: expected 1 to 65535, got 70000"),
    ('[server]\nlog_format = "xml"', "server.log_format: expected one of text, json, got 'xml'"),
    ('[widget]\ntheme = "pink"', "widget.theme: expected one of light, dark, auto, got 'pink'"),
    ('[widget]\nlocale = "xx_YY"', "widget.locale: unknown locale 'xx_YY'"),
    ('[widget]\ncss_file = "missing.css"', "widget.css_file: no such file"),
    ("[history]\npath = 5", "history.path: expected a string, got 5"),
    ('[history]\nbackfill = "yes"', "history.backfill: expected true or false, got 'yes'"),
    ('[history]\npath = "."', "history.path: expected a file name, got the directory"),
    ("market = 3", "market: expected a table, got 3"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[m.split(":")[0] for _, m in BAD_CONFIGS])
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_unknown_symbol_points_to_resolve(tmp_path):
    with pytest.raises(ConfigError, match=r"ticker resolve NOSUCHCOIN"):
        settings_from(tmp_path, '[market]\ncoins = ["NOSUCHCOIN"]')


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[market\ncoins = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path / "bad.toml")


def test_api_key_comes_from_the_named_environment_variable(tmp_path, monkeypatch):
    settings = settings_from(tmp_path, '[providers.coingecko]\napi_key_env = "MY_CG_KEY"')
    assert settings.provider("coingecko").api_key() is None
    monkeypatch.setenv("MY_CG_KEY", "secret-123")
    assert settings.provider("coingecko").api_key() == "secret-123"


# -- operator help: "did you mean", every error at once, warnings ---------------------------------------------

KNOWN = "(known: coingecko, coinpaprika, kraken, coinbase, binance, geckoterminal, defillama)"
ISO = "(use ISO 4217 codes in current use such as usd, eur, or btc, eth, sats)"
DID_YOU_MEAN = [
    ('[market]\ncurencies = ["usd"]', "market.curencies: unknown key; did you mean market.currencies?"),
    ("[pollers]\ninterval_seconds = 60", "pollers: unknown key; did you mean poller?"),
    (
        '[market]\ncoins = [{ symbol = "BTC", max_jump = 5 }]',
        "market.coins[0].max_jump: unknown key; did you mean market.coins[0].max_jump_pct?",
    ),
    (
        '[market]\ncoins = [{ symbol = "X", prise = 1 }]',
        "market.coins[0].prise: unknown key; did you mean market.coins[0].price?",
    ),
    (
        '[providers.coingecko]\napi_key = "x"',
        "providers.coingecko.api_key: unknown key; did you mean providers.coingecko.api_key_env?",
    ),
    (
        "[providers.coingeko]",
        f"providers.coingeko: unknown provider {KNOWN}; did you mean providers.coingecko?",
    ),
    (
        '[market]\ncoins = [{ symbol = "ETH", ids = { krakn = "ETHUSD" } }]',
        f"market.coins[0].ids.krakn: unknown provider {KNOWN}; did you mean market.coins[0].ids.kraken?",
    ),
    (
        '[poller]\nproviders = ["coingeko"]',
        f"poller.providers[0]: unknown provider 'coingeko' {KNOWN}; did you mean 'coingecko'?",
    ),
    (
        '[market]\ncurrencies = ["usd", "eurr"]',
        f"market.currencies[1]: unknown currency 'eurr' {ISO}; did you mean 'eur'?",
    ),
    (
        '[market]\ncurrencies = ["usd", "satts"]',
        f"market.currencies[1]: unknown currency 'satts' {ISO}; did you mean 'sats'?",
    ),
    (
        '[market]\ncurrencies = ["usd"]\ncoins = [{ symbol = "X", prices = { usdd = 1 } }]',
        "market.coins[0].prices.usdd: not a configured currency (market.currencies: usd); did you mean 'usd'?",
    ),
    ('[widget]\ntheme = "drak"', "widget.theme: expected one of light, dark, auto, got 'drak'; did you mean 'dark'?"),
    (
        '[widget]\nlayout = "tickr"',
        "widget.layout: expected one of list, compact, ticker, table, got 'tickr'; did you mean 'ticker'?",
    ),
    (
        '[widget]\nlocale = "de_DEE"',
        "widget.locale: unknown locale 'de_DEE' (examples: en_US, de_DE, fr_FR, ja_JP); did you mean 'de_DE'?",
    ),
    (
        '[providers.coingecko]\nplan = "demoo"',
        "providers.coingecko.plan: expected one of demo, pro, got 'demoo'; did you mean 'demo'?",
    ),
    ('[server]\nlog_format = "jsn"', "server.log_format: expected one of text, json, got 'jsn'; did you mean 'json'?"),
    ("[history]\nbackfil = false", "history.backfil: unknown key; did you mean history.backfill?"),
    ('[histroy]\npath = ""', "histroy: unknown key; did you mean history?"),
]


def test_history_path_is_relative_to_the_config_file_and_empty_turns_it_off(tmp_path):
    assert settings_from(tmp_path).history.path == tmp_path / "ticker-history.sqlite3"
    assert settings_from(tmp_path, '[history]\npath = "data/h.db"').history.path == tmp_path / "data" / "h.db"
    off = settings_from(tmp_path, '[history]\npath = ""\nbackfill = false').history
    assert off.path is None and off.backfill is False


@pytest.mark.parametrize(("text", "message"), DID_YOU_MEAN, ids=[m.split(":")[0] for _, m in DID_YOU_MEAN])
def test_unknown_keys_and_values_name_the_closest_known_one(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert caught.value.errors == (message,)


def test_nothing_close_suggests_nothing(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, '[widget]\ntheme = "pink"\nzzz = 1')
    assert caught.value.errors == (
        "widget.theme: expected one of light, dark, auto, got 'pink'",
        "widget.zzz: unknown key",
    )


def test_every_error_is_reported_at_once_one_line_each(tmp_path):
    """A bad key does not hide the next one, in the same section or another, nor a bad coin the next coin."""
    text = """
[market]
curencies = ["usd"]
coins = ["BTC", "NOSUCHCOIN", 5, "BTC", { symbol = "<b>", name = 3 }, "ETH"]
[poller]
interval_seconds = 0
timeout_seconds = "10"
providers = ["coingecko", "bitstamp"]
[widget]
theme = "pink"
css_file = "missing.css"
"""
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert caught.value.errors == (
        "market.curencies: unknown key; did you mean market.currencies?",
        "market.coins[1]: unknown symbol 'NOSUCHCOIN'; give its provider ids (ids = { coingecko = \"...\" }) "
        "or run `ticker resolve NOSUCHCOIN` to find them",
        "market.coins[2]: expected a table, got 5",
        "market.coins[3]: duplicate coin BTC (already market.coins[0])",
        "market.coins[4].symbol: expected a ticker symbol such as BTC, got '<b>'",
        "poller.interval_seconds: expected a number at least 1, got 0.0",
        "poller.timeout_seconds: expected a number, got '10'",
        "poller.providers[1]: unknown provider 'bitstamp' (known: coingecko, coinpaprika, kraken, coinbase, "
        "binance, geckoterminal, defillama)",
        "widget.theme: expected one of light, dark, auto, got 'pink'",
        f"widget.css_file: no such file {str(tmp_path / 'missing.css')!r}",
    )
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_a_bad_provider_list_does_not_make_every_coin_an_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, '[poller]\nproviders = ["krakn"]')
    assert len(caught.value.errors) == 1 and caught.value.errors[0].startswith("poller.providers[0]: unknown")


def test_currencies_are_those_in_current_use(tmp_path):
    """ISO 4217 codes some territory uses today (CLDR), plus btc, eth and sats: not DEM, HRK or gold."""
    for code in ("dem", "hrk", "xau", "vef"):
        with pytest.raises(ConfigError, match=rf"market.currencies\[1\]: unknown currency '{code}'"):
            settings_from(tmp_path, f'[market]\ncurrencies = ["usd", "{code}"]')
    settings = settings_from(tmp_path, '[market]\ncurrencies = ["jpy", "KWD", "chf", "pkr", "ves", "sats", "btc"]')
    assert settings.market.currencies == ("jpy", "kwd", "chf", "pkr", "ves", "sats", "btc")


def test_every_provider_says_which_currencies_it_quotes_in():
    for name, cls in PROVIDERS.items():
        assert cls.CURRENCIES is None or "usd" in cls.CURRENCIES, name
    assert PROVIDERS["kraken"].CURRENCIES == PROVIDERS["coinbase"].CURRENCIES == PROVIDERS["binance"].CURRENCIES
    assert PROVIDERS["kraken"].CURRENCIES == {"usd"}
    assert {"eur", "jpy", "kwd", "pkr", "sats", "btc", "eth"} <= (PROVIDERS["coingecko"].CURRENCIES or set())
    assert "afn" not in (PROVIDERS["coingecko"].CURRENCIES or {"afn"})


def test_a_currency_no_configured_provider_quotes_in_is_a_warning(tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncoins = ["BTC", "ETH"]\ncurrencies = ["usd", "eur", "afn"]\n[poller]\nproviders = ["kraken"]',
    )
    assert settings.market.unserved_currencies == {"eur", "afn"}
    assert settings.warnings == (
        "market.currencies[1]: no configured provider (kraken) quotes in 'eur', so live coins show as unavailable "
        "in it; coingecko and coinpaprika would: add it to poller.providers",
        "market.currencies[2]: no configured provider (kraken) quotes in 'afn', so live coins show as unavailable "
        "in it",
    )
    served = settings_from(tmp_path, '[market]\ncurrencies = ["usd", "eur", "pkr", "sats"]')
    assert served.market.unserved_currencies == frozenset() and served.warnings == ()
    assert default_settings().market.unserved_currencies == frozenset() and default_settings().warnings == ()


def test_only_static_coins_need_no_provider_for_a_currency(tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncurrencies = ["usd", "eur"]\ncoins = [{ symbol = "SITE", prices = { usd = 1.5, eur = 1.25 } }]\n'
        '[poller]\nproviders = ["kraken"]',
    )
    assert settings.market.unserved_currencies == frozenset() and settings.warnings == ()


def test_a_static_coin_without_a_price_in_a_configured_currency_is_a_warning(tmp_path):
    settings = settings_from(
        tmp_path,
        '[market]\ncurrencies = ["usd", "eur", "jpy"]\n'
        'coins = ["BTC", { symbol = "OPENVC", price = 0.0042 }, { symbol = "SITE", prices = { usd = 1, jpy = 150 } }]',
    )
    assert settings.warnings == (
        "market.coins[1]: static coin OPENVC has no price in eur, jpy, so it shows as unavailable there; "
        "give prices = { usd = 0.0042, eur = ..., jpy = ... }",
        "market.coins[2]: static coin SITE has no price in eur, so it shows as unavailable there; "
        "give prices = { usd = 1, jpy = 150, eur = ... }",
    )


def test_a_coin_without_an_id_is_named_by_its_place_in_the_file_beside_other_errors(tmp_path):
    with pytest.raises(ConfigError) as caught:
        settings_from(
            tmp_path,
            '[market]\ncoins = [5, "BTC", "NEO", { symbol = "X", prices = { gbp = 1 } }]\n'
            '[poller]\nproviders = ["kraken"]',
        )
    assert caught.value.errors == (
        "market.coins[0]: expected a table, got 5",
        "market.coins[3].prices.gbp: not a configured currency (market.currencies: usd)",
        'market.coins[2]: NEO has no id for the configured providers (kraken); add ids = { kraken = "..." } '
        "or run `ticker resolve NEO`",
    )


def test_live_streams_are_off_by_default_and_configurable(tmp_path):
    default = settings_from(tmp_path)
    assert default.live.enabled is False
    assert default.live.providers == ("kraken", "coinbase", "binance")
    assert default.live.max_updates_per_second == 4
    assert default.provider("kraken").stream_url is None
    on = settings_from(
        tmp_path,
        '[live]\nenabled = true\nproviders = ["binance"]\nmax_updates_per_second = 1.5\n'
        '[providers.binance]\nstream_url = "ws://127.0.0.1:9/binance"\n',
    )
    assert (on.live.enabled, on.live.providers, on.live.max_updates_per_second) == (True, ("binance",), 1.5)
    assert on.provider("binance").stream_url == "ws://127.0.0.1:9/binance"


def test_bad_live_settings_name_their_keys(tmp_path):
    text = """
[live]
enabled = "yes"
providers = ["krakn", "binance", "binance", "coingecko"]
max_updates_per_second = 0
[providers.kraken]
stream_url = "https://ws.kraken.com/v2"
"""
    with pytest.raises(ConfigError) as caught:
        settings_from(tmp_path, text)
    assert caught.value.errors == (
        "providers.kraken.stream_url: expected a ws:// or wss:// URL, got 'https://ws.kraken.com/v2'",
        "live.enabled: expected true or false, got 'yes'",
        "live.providers[0]: 'krakn' has no stream (streams: kraken, coinbase, binance); did you mean 'kraken'?",
        "live.providers[2]: duplicate provider 'binance'",
        "live.providers[3]: 'coingecko' has no stream (streams: kraken, coinbase, binance)",
        "live.max_updates_per_second: expected a number greater than 0, got 0.0",
    )


def test_live_with_no_providers_is_a_warning(tmp_path):
    settings = settings_from(tmp_path, "[live]\nenabled = true\nproviders = []\n")
    assert settings.warnings == (
        "live.enabled: live.providers is empty, so no stream will connect; list kraken, coinbase or binance",
    )
