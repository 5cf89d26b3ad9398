from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from tests.conftest import CG, fixture_bytes, fixture_json
from tests.service import Service, free_port, run_ticker, wait_until, write_config
from ticker.cli import main


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "ticker.toml"
    path.write_text(
        '[market]\ncoins = ["BTC", "ARRR", { symbol = "OPENVC", name = "OpenVoiceCoin", price = 0.0042 }]\n'
        '[poller]\nproviders = ["coingecko"]\n[cache]\nsnapshot_path = ""\n'
    )
    return path


def test_check_config_prints_how_each_coin_resolved(config, capsys):
    assert main(["check-config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{config}: OK" in out
    assert "BTC     Bitcoin        bitcoin" in out
    assert "ARRR    Pirate Chain   pirate-chain" in out
    assert "OPENVC  OpenVoiceCoin  static: 0.0042 usd" in out


def test_bad_config_is_one_line_on_stderr_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[poller]\ninterval_seconds = -5\n")
    assert main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("ticker: config error: poller.interval_seconds: expected a number at least 1, got -5.0\n")


def test_serve_refuses_several_workers_without_a_shared_cache(config, capsys):
    assert main(["serve", "--config", str(config), "--workers", "2"]) == 2
    assert "several workers need a shared cache" in capsys.readouterr().err


def test_config_comes_from_ticker_config_when_no_flag(config, monkeypatch, capsys):
    monkeypatch.setenv("TICKER_CONFIG", str(config.parent / "missing.toml"))
    assert main(["fetch"]) == 2
    assert "missing.toml: cannot read config file" in capsys.readouterr().err


def test_fetch_prints_what_each_provider_returned(config, coingecko, capsys):
    assert main(["fetch", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "coingecko: 2 prices" in out
    assert "BTC   usd       $90,917.04  +1.64%" in out
    assert "ARRR  usd       $0.1412     +12.50%" in out
    assert "2026-11-27T18:19:31Z  coingecko" in out


def test_fetch_exits_1_when_no_provider_answered(config, respx_mock, capsys):
    respx_mock.get(f"{CG}/coins/markets").respond(429, headers={"retry-after": "60"})
    respx_mock.get(f"{CG}/simple/price").respond(429, json=fixture_json("coingecko_error_429.json"))
    assert main(["fetch", "--config", str(config)]) == 1
    assert "coingecko: failed: HTTP 429: You've exceeded the Rate Limit" in capsys.readouterr().out


def test_fetch_obeys_a_hold_the_running_service_saved(tmp_path, respx_mock, capsys):
    from datetime import UTC, datetime, timedelta

    from tests.conftest import quote, snapshot_of
    from ticker.models import SavedManners

    config = tmp_path / "ticker.toml"
    config.write_text('[market]\ncoins = ["BTC"]\n[poller]\nproviders = ["coingecko"]\n')
    until = datetime.now(UTC) + timedelta(seconds=300)
    held = snapshot_of(quote("BTC", 1.0))
    held = type(held)(held.generated_at, held.quotes, manners={"coingecko": SavedManners(until, "HTTP 429: slow down")})
    (tmp_path / "ticker-snapshot.json").write_bytes(held.to_json())
    route = respx_mock.get(f"{CG}/simple/price").respond(200, json={})
    assert main(["fetch", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"coingecko: not asked: held for (299|300) s more \(HTTP 429: slow down\)", out), out
    assert not route.called


def test_resolve_lists_candidates_and_a_config_line(config, respx_mock, capsys):
    rows = fixture_json("coingecko_coins_markets_fixture.json")
    eth = [
        dict(rows[1]),
        dict(rows[1], id="ethereum-wormhole", name="Ethereum (Wormhole)", market_cap=1000, market_cap_rank=900),
    ]
    route = respx_mock.get(f"{CG}/coins/markets").respond(200, json=eth)
    assert main(["resolve", "eth", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert route.calls.last.request.url.params["symbols"] == "eth"
    assert out.index("ethereum ") < out.index("ethereum-wormhole")
    assert 'config: { symbol = "ETH", ids = { coingecko = "ethereum" } }' in out


# -- operator help --------------------------------------------------------------------------------------------


def test_check_config_prints_every_error_one_line_each(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[market]\ncurencies = ["usd"]\ncoins = ["BTC", "BTC"]\n[poller]\ninterval_seconds = -5\n')
    assert main(["check-config", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "ticker: config error: market.curencies: unknown key; did you mean market.currencies?",
        "ticker: config error: market.coins[1]: duplicate coin BTC (already market.coins[0])",
        "ticker: config error: poller.interval_seconds: expected a number at least 1, got -5.0",
    ]


def test_serve_prints_every_config_error_too(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[widget]\ntheme = "drak"\nlayout = "tickr"\n')
    assert main(["serve", "--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "ticker: config error: widget.theme: expected one of light, dark, auto, got 'drak'; did you mean 'dark'?",
        "ticker: config error: widget.layout: expected one of list, compact, ticker, table, got 'tickr'; "
        "did you mean 'ticker'?",
    ]


WARNED = """[market]
coins = ["BTC", { symbol = "SITE", price = 1.5 }]
currencies = ["usd", "eur"]
[poller]
providers = ["kraken"]
"""
WARNINGS = [
    "market.currencies[1]: no configured provider (kraken) quotes in 'eur', so live coins show as unavailable in it; "
    "coingecko and coinpaprika would: add it to poller.providers",
    "market.coins[1]: static coin SITE has no price in eur, so it shows as unavailable there; "
    "give prices = { usd = 1.5, eur = ... }",
]


def test_check_config_prints_warnings_on_stderr_and_exits_0(tmp_path, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text(WARNED)
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}: OK" in captured.out
    assert captured.err.splitlines() == [f"warning: {w}" for w in WARNINGS]


def test_serve_logs_the_warnings_as_it_starts(tmp_path, capsys, monkeypatch):
    import ticker.web.server

    started = []
    monkeypatch.setattr(ticker.web.server, "run", lambda config: started.append(config) or True)
    path = tmp_path / "ticker.toml"
    path.write_text(WARNED + '[cache]\nsnapshot_path = ""\n')
    assert main(["serve", "--config", str(path), "--port", str(free_port())]) == 0
    assert started
    warned = [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line]
    assert [line.split(": ", 1)[1] for line in warned] == [f"config: {w}" for w in WARNINGS]


@pytest.fixture
def taken_port():
    """A loopback port another server is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_serve_on_a_port_in_use_is_one_line_that_suggests_port(config, taken_port, capsys):
    assert main(["serve", "--config", str(config), "--port", str(taken_port)]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"ticker: 127.0.0.1:{taken_port} is already in use (another ticker or server?); "
        "choose a free port with --port\n"
    )


@pytest.mark.e2e
def test_serve_on_a_port_in_use_ends_at_once_with_one_line(tmp_path, upstream, taken_port):
    """The real command: no "listening on", no uvicorn [Errno 98], no upstream round, a non-zero exit."""
    config = write_config(tmp_path, upstream, 1)
    result = run_ticker("serve", "--config", str(config), "--port", str(taken_port), timeout=30)
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"ticker: 127.0.0.1:{taken_port} is already in use (another ticker or server?); choose a free port with --port"
    ]
    assert upstream.coingecko.requests == 0


def _no_such_host(request: httpx.Request) -> httpx.Response:
    """What httpx raises when DNS has no answer (offline): a ConnectError caused by socket.gaierror."""
    try:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    except socket.gaierror as err:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from err


def test_fetch_offline_names_each_host_once_and_suggests_demo(tmp_path, respx_mock, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text(
        '[market]\ncoins = ["BTC", "ETH"]\n[poller]\nproviders = ["coingecko", "kraken"]\n[cache]\nsnapshot_path = ""\n'
    )
    respx_mock.route(host="api.coingecko.com").mock(side_effect=_no_such_host)
    respx_mock.route(host="api.kraken.com").mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    assert main(["fetch", "--config", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "coingecko: failed: cannot reach api.coingecko.com (name not found)",
        "kraken: failed: cannot reach api.kraken.com (connection refused)",
        "no provider could be reached: check the network (DNS, firewall, proxy), or try `ticker serve --demo`",
    ]


def test_fetch_suggests_nothing_about_the_network_when_a_host_answered(tmp_path, respx_mock, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text(
        '[market]\ncoins = ["BTC"]\n[poller]\nproviders = ["coingecko", "kraken"]\n[cache]\nsnapshot_path = ""\n'
    )
    respx_mock.route(host="api.coingecko.com").mock(side_effect=_no_such_host)
    respx_mock.route(host="api.kraken.com").respond(500)
    assert main(["fetch", "--config", str(path)]) == 1
    assert "--demo" not in capsys.readouterr().out


def test_fetch_says_how_to_set_a_coingecko_key_when_it_wants_one(config, respx_mock, capsys):
    respx_mock.get(f"{CG}/simple/price").respond(401, content=fixture_bytes("coingecko_error_10002.constructed.json"))
    assert main(["fetch", "--config", str(config)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "coingecko: failed: HTTP 401: API Key Missing; CoinGecko wants an API key: get a free demo key at "
        'coingecko.com/en/api, set providers.coingecko.api_key_env = "COINGECKO_API_KEY" and the environment '
        "variable COINGECKO_API_KEY to the key"
    ]


def test_a_refused_key_of_the_wrong_kind_is_named_without_the_key(tmp_path, respx_mock, capsys, monkeypatch):
    monkeypatch.setenv("MY_CG_KEY", "CG-secret-demo-key")
    path = tmp_path / "ticker.toml"
    path.write_text(
        '[market]\ncoins = ["BTC"]\n[poller]\nproviders = ["coingecko"]\n[cache]\nsnapshot_path = ""\n'
        '[providers.coingecko]\nplan = "pro"\napi_key_env = "MY_CG_KEY"\n'
    )
    body = fixture_bytes("coingecko_error_10011.constructed.json")  # sent with HTTP 400, not 401
    respx_mock.get("https://pro-api.coingecko.com/api/v3/simple/price").respond(400, content=body)
    assert main(["fetch", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("coingecko: failed: HTTP 400: If you are using Demo API key, please change your root URL")
    assert out.endswith(
        "; CoinGecko refused the key in $MY_CG_KEY: check it, and that it is a pro key "
        '(providers.coingecko.plan = "pro")\n'
    )
    assert "CG-secret-demo-key" not in out


@pytest.mark.e2e
def test_service_offline_names_each_host_once_and_suggests_demo(tmp_path):
    """Every request fails to connect: the log names each unreachable host once and suggests --demo once."""
    dead = [free_port(), free_port()]  # nothing listens there: connection refused
    config = tmp_path / "ticker.toml"
    config.write_text(f"""
[market]
coins = ["BTC"]
[poller]
interval_seconds = 1
timeout_seconds = 1
providers = ["coingecko", "coinpaprika"]
[providers.coingecko]
base_url = "http://127.0.0.1:{dead[0]}/api/v3"
requests_per_minute = 600
[providers.coinpaprika]
base_url = "http://127.0.0.1:{dead[1]}/v1"
requests_per_minute = 600
requests_per_month = 100000000
[cache]
snapshot_path = ""
""")
    service = Service(config, free_port())
    try:
        wait_until(lambda: "or try `ticker serve --demo`" in service.log.read_text(), 15, "the offline hint")
        time.sleep(3)  # more rounds, all failing: nothing new is logged
    finally:
        service.stop()
    lines = service.log.read_text().splitlines()
    assert "Traceback" not in "\n".join(lines)
    warned = [line for line in lines if " WARNING " in line or " ERROR " in line]
    for port in dead:  # (side work's metadata retry, an INFO line an hour, may repeat the reason)
        named = [line for line in warned if f"127.0.0.1:{port}" in line]
        assert len(named) == 1 and f"cannot reach 127.0.0.1:{port} (connection refused)" in named[0], lines
    hints = [line for line in lines if "--demo" in line]
    assert len(hints) == 1 and " WARNING " in hints[0] and "check the network" in hints[0], lines


@pytest.mark.e2e
def test_service_log_says_once_how_to_set_a_coingecko_key(tmp_path, upstream):
    upstream.coingecko.fail_with(
        401, fixture_bytes("coingecko_error_10002.constructed.json"), {"content-type": "application/json"}
    )
    config = write_config(tmp_path, upstream, 1, market='[market]\ncoins = ["BTC"]')
    service = Service(config, free_port())
    try:
        wait_until(lambda: upstream.coingecko.requests >= 1, 15, "a request to CoinGecko")
        time.sleep(2.5)  # more rounds: CoinGecko stays held (401: an hour), nothing new is logged
    finally:
        service.stop()
    lines = service.log.read_text().splitlines()
    hints = [line for line in lines if "api_key_env" in line]
    assert len(hints) == 1, lines
    assert " WARNING " in hints[0] and "HTTP 401: API Key Missing" in hints[0]
    assert (
        'set providers.coingecko.api_key_env = "COINGECKO_API_KEY" and the environment variable COINGECKO_API_KEY'
        in hints[0]
    )
    assert upstream.coingecko.requests == 1


WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"


def test_resolve_a_token_shows_what_each_dex_source_says(config, respx_mock, capsys):
    gt = respx_mock.get(f"https://api.geckoterminal.com/api/v2/networks/eth/tokens/{WETH}").respond(
        200, content=fixture_bytes("geckoterminal_token.constructed.json")
    )
    llama = respx_mock.get(f"https://coins.llama.fi/prices/current/ethereum:{WETH}").respond(
        200, content=fixture_bytes("defillama_prices_current.constructed.json")
    )
    checksummed = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert main(["resolve", f"ETH:{checksummed}", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert gt.called and llama.called
    assert "geckoterminal: Wrapped Ether (WETH), price $2,472.55, liquidity $897,342,937.86" in out
    assert "defillama: WETH, price $2,472.61, confidence 0.99" in out
    assert f'config: {{ symbol = "WETH", name = "Wrapped Ether", chain = "eth", address = "{checksummed}" }}' in out


def test_resolve_an_unknown_token_says_so_per_source_and_exits_1(config, respx_mock, capsys):
    respx_mock.get(f"https://api.geckoterminal.com/api/v2/networks/bsc/tokens/{WETH}").respond(
        404, content=fixture_bytes("geckoterminal_error_404.constructed.json")
    )
    respx_mock.get(f"https://coins.llama.fi/prices/current/bsc:{WETH}").respond(
        200, content=fixture_bytes("defillama_prices_current_unknown.constructed.json")
    )
    assert main(["resolve", f"bsc:{WETH}", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert f"geckoterminal: no token at bsc:{WETH}" in out and f"defillama: no token at bsc:{WETH}" in out


@pytest.mark.parametrize(
    ("target", "error"),
    [("bnb:0x1", "unknown chain 'bnb'"), ("eth:0x12", "expected 0x followed by 40 hex digits on eth")],
)
def test_resolve_a_malformed_token_is_one_line_and_exit_2(config, respx_mock, capsys, target, error):
    assert main(["resolve", target, "--config", str(config)]) == 2
    assert error in capsys.readouterr().err


# --- ticker history -----------------------------------------------------------------------------------------


@pytest.fixture
def history_config(tmp_path):
    path = tmp_path / "ticker.toml"
    path.write_text('[market]\ncoins = ["BTC", "ETH"]\ncurrencies = ["usd", "eur"]\n[cache]\nsnapshot_path = ""\n')
    return path


def hourly_csv(path, hours: int, *, currency: str = "") -> list[tuple[int, float]]:
    """A series on whole hours up to the last one, written as unix_seconds,price[,currency] with a header."""
    last = int(time.time()) // 3600 * 3600 - 3600
    quotes = [(last - 3600 * i, 90_000.0 + i * 12.5) for i in reversed(range(hours))]
    suffix = f",{currency}" if currency else ""
    path.write_text("unix_seconds,price,currency\n" + "".join(f"{at},{price}{suffix}\n" for at, price in quotes))
    return quotes


def test_history_imports_a_series_then_prints_it_as_a_table_and_as_csv(history_config, tmp_path, capsys):
    quotes = hourly_csv(tmp_path / "btc.csv", 72)
    assert main(["history", "BTC", "--import", str(tmp_path / "btc.csv"), "--config", str(history_config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported 72 points of BTC (72 in usd), ") and out.count("Z") == 2
    assert main(["history", "btc", "--range", "24h", "--config", str(history_config)]) == 0
    table = capsys.readouterr().out.splitlines()
    shown = len(table) - 2
    assert table[0] == f"BTC in usd, 24h: {shown} points, the last price of each bucket"
    assert 24 <= shown <= 25  # hourly quotes in 24 hours, the oldest bucket reaching into the range included
    assert table[1].split() == ["time", "(UTC)", "price", "(usd)"]
    at, price = quotes[-1]  # a 5-minute bucket's close stands at its end
    assert table[-1] == f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(at + 300))}  ${price:,.2f}"
    assert main(["history", "BTC", "--range", "7d", "--csv", "--config", str(history_config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "unix_seconds,price,currency" and len(lines) == 73
    assert lines[1:] == [f"{at // 1800 * 1800 + 1800},{price!r},usd" for at, price in quotes]  # 30-min buckets


def test_history_csv_output_is_import_input_a_bucket_later(history_config, tmp_path, capsys):
    """Each point stands at its bucket's end, which is the next bucket's start: imported again, the same closes
    land one bucket later (README, "Command line")."""
    hourly_csv(tmp_path / "btc.csv", 30, currency="eur")
    assert main(["history", "BTC", "--import", str(tmp_path / "btc.csv"), "--config", str(history_config)]) == 0
    capsys.readouterr()
    assert main(["history", "BTC", "--currency", "eur", "--csv", "--config", str(history_config)]) == 0
    exported = capsys.readouterr().out
    (tmp_path / "again").mkdir()
    other = tmp_path / "again" / "ticker.toml"
    other.write_text(history_config.read_text())
    (tmp_path / "export.csv").write_text(exported)
    assert main(["history", "BTC", "--import", str(tmp_path / "export.csv"), "--config", str(other)]) == 0
    capsys.readouterr()
    assert main(["history", "BTC", "--currency", "eur", "--csv", "--config", str(other)]) == 0
    again = [line.split(",") for line in capsys.readouterr().out.splitlines()[1:]]
    before = [line.split(",") for line in exported.splitlines()[1:]]
    assert [price for _, price, _ in again] == [price for _, price, _ in before]
    assert [int(at) for at, _, _ in again] == [int(at) + 1800 for at, _, _ in before]


def test_history_import_reports_every_bad_line_and_writes_nothing(history_config, tmp_path, capsys):
    now = int(time.time())
    lines = [
        "# my own series",
        f"{now - 60},90000",
        "yesterday,90000",
        f"{now * 1000},90000",
        f"{now - 120},-5",
        f"{now - 180},90000,jpy",
        f"{now - 60},90100",
        f"{now - 240},1,2,3",
        f"{now + 3600},90000",
        f"{now - 300},1e12",
        f"{now - 360},0.5,eur",
    ]
    (tmp_path / "bad.csv").write_text("\n".join(lines) + "\n")
    assert main(["history", "BTC", "--import", str(tmp_path / "bad.csv"), "--config", str(history_config)]) == 1
    err = capsys.readouterr().err.splitlines()
    file = tmp_path / "bad.csv"
    assert err == [
        f"ticker: {file}: line 3: time 'yesterday' is not a positive number of Unix seconds",
        f"ticker: {file}: line 4: time {now * 1000} looks like milliseconds; give Unix seconds",
        f"ticker: {file}: line 5: price '-5' is not a positive number",
        f"ticker: {file}: line 6: unknown currency 'jpy'; configured: usd, eur",
        f"ticker: {file}: line 7: time {now - 60} in usd is already on line 2",
        f"ticker: {file}: line 8: expected unix_seconds,price[,currency], got 4 fields",
        f"ticker: {file}: line 9: time {now + 3600} lies in the future",
        f"ticker: {file}: line 10: price 1e12 usd is not a plausible price of a coin",
        f"ticker: 8 bad line(s) in {file}; nothing imported",
    ]
    assert main(["history", "BTC", "--range", "24h", "--config", str(history_config)]) == 0
    assert capsys.readouterr().out == "no history of BTC in usd for 24h yet\n"  # the good lines were not written


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["history", "DOGE"], 2, "ticker: unknown coin 'DOGE'; configured: BTC, ETH\n"),
        (
            ["history", "BTC", "--currency", "jpy"],
            2,
            "ticker: --currency: unknown currency 'jpy'; configured: usd, eur\n",
        ),
        (["history", "BTC", "--import", "missing.csv"], 1, "ticker: cannot read missing.csv: [Errno 2] No such file"),
    ],
)
def test_history_errors_are_one_line_with_an_exit_code(history_config, capsys, args, code, message):
    assert main([*args, "--config", str(history_config)]) == code
    assert capsys.readouterr().err.startswith(message)


def test_history_off_says_how_to_turn_it_on(tmp_path, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text('[market]\ncoins = ["BTC"]\n[history]\npath = ""\n')
    assert main(["history", "BTC", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        'ticker: history is off (history.path = "" in the config); set history.path to keep it\n'
    )
    assert not list(tmp_path.glob("*.sqlite3"))


def test_history_an_unusable_store_is_exit_1(tmp_path, capsys):
    (tmp_path / "foreign.sqlite3").write_bytes(b"not a database at all" * 100)
    path = tmp_path / "ticker.toml"
    path.write_text('[market]\ncoins = ["BTC"]\n[history]\npath = "foreign.sqlite3"\n')
    assert main(["history", "BTC", "--config", str(path)]) == 1
    assert capsys.readouterr().err.startswith("ticker: history: ")


def test_check_config_shows_which_stream_carries_which_coin(tmp_path, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text(
        '[market]\ncoins = ["BTC", "NEO", "XMR", "WAVES"]\n[live]\nenabled = true\n'
        '[providers.binance]\nstream_url = "ws://127.0.0.1:9/binance"\n'
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("live streams (usd; preference order; at most 4 updates/s per client):")
    assert out[start + 1 :] == [
        "  kraken: BTC, XMR (wss://ws.kraken.com/v2)",
        "  coinbase: BTC (wss://ws-feed.exchange.coinbase.com)",
        "  binance: BTC, NEO (ws://127.0.0.1:9/binance)",
        "  polled only: WAVES",
    ]


def test_live_without_usd_is_a_warning_and_shows_no_streams(tmp_path, capsys):
    path = tmp_path / "ticker.toml"
    path.write_text('[market]\ncurrencies = ["eur"]\n[live]\nenabled = true\n')
    assert main(["check-config", str(path)]) == 0
    captured = capsys.readouterr()
    assert "live streams" not in captured.out
    assert captured.err.splitlines() == [
        "warning: live.enabled: the exchange streams quote usd only, which is not in market.currencies: no stream "
        'will connect; add "usd" to market.currencies or turn live off'
    ]
