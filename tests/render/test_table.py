"""The table layout (`layout=table&columns=...`) and several currencies in one widget (`currency=usd,eur`)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import FULL_CONFIG, NOW, full_snapshot, quote, settings_from, snapshot_of
from ticker.config import load_settings
from ticker.config.settings import VISITOR_LOCALES
from ticker.models import ProviderStatus, Snapshot
from ticker.render.board import Board, Row
from ticker.render.widget import Page, WidgetRenderer
from ticker.web.query import WidgetOptions

ALL = "rank,price,change_1h,change_24h,change_7d,change_30d,market_cap,volume_24h,sparkline"


@pytest.fixture
def settings(tmp_path):
    return settings_from(tmp_path, FULL_CONFIG)


def market_snapshot() -> Snapshot:
    """FULL_CONFIG's states, BTC with every market figure (ETH's all unknown, as a provider may leave them)."""
    snap = full_snapshot()
    quotes = dict(snap.quotes)
    btc = quotes[("BTC", "usd")]
    quotes[("BTC", "usd")] = replace(
        btc, change_1h_pct=-0.2, change_7d_pct=3.456, change_30d_pct=0.001, market_cap=1.8e12, volume_24h=45.2e9, rank=1
    )
    quotes[("BTC", "eur")] = replace(quotes[("BTC", "eur")], market_cap=1.66e12, volume_24h=41.7e9, rank=1)
    return Snapshot(NOW, quotes, snap.providers)


def table_rows(html: str) -> dict[str, str]:
    return {m.group(1): m.group(0) for m in re.finditer(r'<tr(?: class="tk-stale")? data-k="(\w+)">.*?</tr>', html)}


def headers(html: str) -> list[str]:
    head = re.search(r"<thead>(.*?)</thead>", html, re.S)
    assert head
    return re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", head.group(1))


def cells(row: str) -> list[str]:
    return re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)


def shown(cell: str) -> str:
    """What a cell shows on screen (the sr-only text removed)."""
    return re.sub(r"<[^>]+>", "", re.sub(r'<span class="sr-only">.*?</span>', "", cell))


def spoken(cell: str) -> str:
    """What a screen reader reads: the sr-only text, else the visible text."""
    sr = re.search(r'<span class="sr-only">(.*?)</span>', cell)
    return sr.group(1) if sr else re.sub(r"<[^>]+>", "", cell)


async def test_default_columns_are_price_and_24h_change_in_a_real_table(make_client, settings):
    html = (await (await make_client(settings, market_snapshot())).get("/widget?layout=table")).text
    assert "<table" in html and "<li " not in html and "<li>" not in html
    assert [shown(h) for h in headers(html)] == ["Coin", "Price", "24h"]
    assert [spoken(h) for h in headers(html)] == ["Coin", "Price", "Change over 24 hours"]
    btc = table_rows(html)["BTC"]
    assert btc.count('<th scope="row"') == 1 and "Bitcoin" in btc
    assert [shown(c) for c in cells(btc)[1:]] == ["$90,917.04", "▲ 1.64%"]
    assert spoken(cells(btc)[2]) == "up 1.64 percent" and "tk-up" in re.findall(r"<td[^>]*>", btc)[1]


async def test_every_column_in_the_order_asked_with_rank_before_the_coin(make_client, settings):
    html = (await (await make_client(settings, market_snapshot())).get(f"/widget?layout=table&columns={ALL}")).text
    assert [shown(h) for h in headers(html)] == [
        "#", "Coin", "Price", "1h", "24h", "7d", "30d", "Market cap", "24h volume", "Last 7 days",
    ]  # fmt: skip
    btc = [shown(c) for c in cells(table_rows(html)["BTC"])]
    assert btc[0] == "1" and btc[2:9] == ["$90,917.04", "▼ 0.20%", "▲ 1.64%", "▲ 3.46%", "0.00%", "$1.8T", "$45.2B"]
    btc_row = table_rows(html)["BTC"]
    assert "up 3.46 percent" in btc_row and "down 0.20 percent" in btc_row and ">unchanged<" in btc_row
    assert "1.8 trillion US dollars" in btc_row and "45.2 billion US dollars" in btc_row


async def test_unknown_figures_show_the_unknown_mark_never_zero(make_client, settings):
    html = (await (await make_client(settings, market_snapshot())).get(f"/widget?layout=table&columns={ALL}")).text
    rows = table_rows(html)
    eth = [shown(c) for c in cells(rows["ETH"])]  # stale, with a price but no market figures
    assert eth[0] == "—" and eth[2].startswith("$3,021.55") and "as of" in eth[2]
    assert eth[3] == eth[5] == eth[6] == eth[7] == eth[8] == "—" and eth[4] == "▼ 2.31%"
    assert 'class="tk-stale"' in rows["ETH"]
    xno = [shown(c) for c in cells(rows["XNO"])]  # never fetched
    assert set(xno[:1] + xno[2:9]) == {"—"}
    unknown_rows = [rows["ETH"], rows["XNO"], rows["ARRR"]]
    assert not any(re.fullmatch(r"[$€]?0([.,]0+)?%?", shown(c)) for row in unknown_rows for c in cells(row))
    assert ">unknown<" in rows["XNO"] and ">unavailable<" in rows["XNO"]


@pytest.mark.parametrize(
    ("locale", "cap", "volume"),
    [("en_US", "$1.8T", "$45.2B"), ("de_DE", "1,8\xa0Bio.\xa0$", "45,2\xa0Mrd.\xa0$"), ("ja_JP", "$1.8兆", "$452億")],
)
async def test_large_figures_are_compact_cldr_numbers(make_client, settings, locale, cap, volume):
    url = f"/widget?layout=table&columns=market_cap,volume_24h&locale={locale}"
    html = (await (await make_client(settings, market_snapshot())).get(url)).text
    assert [shown(c) for c in cells(table_rows(html)["BTC"])][1:] == [cap, volume]


async def test_several_currencies_repeat_only_the_price_column(make_client, settings):
    url = "/widget?layout=table&currency=usd,eur&columns=price,change_24h,market_cap"
    html = (await (await make_client(settings, market_snapshot())).get(url)).text
    assert [shown(h) for h in headers(html)] == ["Coin", "USD", "EUR", "24h", "Market cap"]
    assert [spoken(h) for h in headers(html)][1:3] == ["Price in US dollars", "Price in euros"]
    btc = [shown(c) for c in cells(table_rows(html)["BTC"])]
    assert btc[1:] == ["$90,917.04", "€84,123.55", "▲ 1.64%", "$1.8T"]  # the change and cap in the first currency
    eth = [spoken(c) for c in cells(table_rows(html)["ETH"])]
    assert eth[2] == "euros unavailable"


async def test_the_list_shows_each_price_in_each_currency_and_says_them(make_client, settings):
    html = (await (await make_client(settings, market_snapshot())).get("/widget?currency=eur,usd")).text
    btc = re.search(r'<li data-k="BTC">.*?</li>', html)
    assert btc and "€84,123.55" in btc.group(0) and "$90,917.04" in btc.group(0)
    assert btc.group(0).index("€84,123.55") < btc.group(0).index("$90,917.04")
    assert "Bitcoin, 84,123.55 euros, up 1.70 percent in 24 hours, 90,917.04 US dollars" in btc.group(0)


@pytest.mark.parametrize(
    "url",
    [
        "/widget?layout=table&columns=price,bogus",
        "/widget?layout=table&columns=",
        "/widget/fragment?layout=table&columns=marketcap",
        "/widget?layout=compact&currency=usd,eur",
        "/widget?layout=ticker&currency=usd,eur",
        "/widget?currency=usd,eur,usd,gbp",
        "/widget?layout=table&currency=usd,xyz",
        "/widget?layout=table&currency=usd,eur,btc,eth",
    ],
)
async def test_bad_table_and_currency_queries_are_a_400_page(make_client, settings, url):
    response = await (await make_client(settings, market_snapshot())).get(url)
    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    assert "<table" not in response.text


async def test_a_400_speaks_the_visitors_language(make_client, settings):
    response = await (await make_client(settings, market_snapshot())).get(
        "/widget?layout=ticker&currency=usd,eur&locale=de_DE"
    )
    assert response.status_code == 400 and 'lang="de"' in response.text and "Ticker" not in response.text.split(":")[0]
    assert "currency" in response.text and "list, table" in response.text


@pytest.mark.parametrize("url", ["/api/v1/prices?currency=usd,eur", "/api/v1/prices/BTC?currency=usd,eur"])
async def test_json_stays_one_currency(make_client, settings, url):
    response = await (await make_client(settings, market_snapshot())).get(url)
    assert response.status_code == 400 and "currency" in response.json()["error"]


async def test_the_fragment_carries_the_same_rows_for_in_place_refresh(make_client, settings):
    client = await make_client(settings, market_snapshot())
    page = (await client.get(f"/widget?layout=table&currency=usd,eur&columns={ALL}")).text
    src = re.search(r'data-src="([^"]+)"', page)
    assert src and "columns=rank,price," in src.group(1) and "currency=usd,eur" in src.group(1)
    fragment = (await client.get(src.group(1).replace("&amp;", "&"))).text
    assert fragment.startswith("<section") and table_rows(fragment) == table_rows(page)


async def test_the_table_is_a_config_layout_too(make_client, tmp_path):
    settings = settings_from(tmp_path, FULL_CONFIG + '[widget]\nlayout = "table"\n')
    html = (await (await make_client(settings, market_snapshot())).get("/widget")).text
    assert "<table" in html and "layout-table" in html


async def test_sparkline_column_draws_the_week_and_reads_its_change(make_client, settings):
    hist = {"BTC": tuple((490000 + i, 90000.0 + i * 10) for i in range(168))}
    snap = Snapshot(NOW, market_snapshot().quotes, {"coingecko": ProviderStatus("ok", NOW)}, history=hist)
    html = (await (await make_client(settings, snap)).get("/widget?layout=table&columns=price,sparkline")).text
    btc = cells(table_rows(html)["BTC"])
    assert "<svg" in btc[2] and spoken(btc[2]) == "up 1.86 percent"  # 90,000 to 91,670
    assert shown(cells(table_rows(html)["ETH"])[2]) == "—"


@pytest.mark.parametrize(
    ("columns", "limit"),
    [
        ("rank,price,change_24h,market_cap,volume_24h", 16),
        ("price,change_1h,change_24h,change_7d,change_30d", 16),
        ("price,change_24h,change_7d,market_cap,sparkline", 19),  # eleven inline SVG lines: about 4.3 KB
    ],
)
async def test_eleven_coins_in_five_columns_weigh_under_16_kb(make_client, tmp_path, columns, limit):
    settings = settings_from(tmp_path, "")  # the 11 default coins
    snap = snapshot_of(
        *(
            replace(quote(c.symbol, 1234.5678, change=-1.23), market_cap=1.2e11, volume_24h=3.4e9, rank=i + 1,
                    change_7d_pct=5.5, sparkline_7d=None)
            for i, c in enumerate(settings.market.coins)
        )
    )  # fmt: skip
    hist = {c.symbol: tuple((490000 + i, 1000.0 + (i * 37) % 101) for i in range(168)) for c in settings.market.coins}
    snap = Snapshot(NOW, snap.quotes, {}, history=hist)
    response = await (await make_client(settings, snap)).get(f"/widget?layout=table&columns={columns}")
    assert response.status_code == 200 and len(table_rows(response.text)) == 11
    assert len(response.content) < limit * 1024, len(response.content)


any_number = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e26, 1e308, 5e-324, -0.0, 0.0, 1e5])
RENDERER = WidgetRenderer(load_settings(None))


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    price=any_number | st.none(),
    figures=st.lists(any_number | st.none(), min_size=6, max_size=6),
    rank=st.integers(-3, 10_000) | st.none(),
    currencies=st.lists(st.sampled_from(["usd", "eur", "jpy", "kwd", "btc", "sats"]), min_size=1, max_size=3),
    locale=st.sampled_from(sorted(VISITOR_LOCALES)),
)
def test_no_figure_can_take_the_table_down(price, figures, rank, currencies, locale):
    """Any numbers in any column and currency: every row has one cell per column, nothing reads nan, inf or
    -0.0, and a figure that is no market figure (negative, not finite) shows the unknown mark."""
    change_1h, change_7d, change_30d, cap, volume, change = figures
    bad = Row("NEO", "Neo", price, change, NOW, "coingecko", False, (), False, change_1h, change_7d, change_30d,
              cap, volume, rank)  # fmt: skip
    good = Row("BTC", "Bitcoin", 90917.04, 1.64, NOW, "coingecko", False)
    boards = [Board(currency, NOW, (bad, good)) for currency in currencies]
    options = WidgetOptions("auto", "table", locale, False, False, tuple(ALL.split(",")))
    html = RENDERER.document(boards[0], options, now=NOW, page=Page(), others=boards[1:])
    rows = table_rows(html)
    width = len(ALL.split(",")) + len(currencies)  # the coin's header cell, then one cell per column and currency
    assert [len(cells(row)) for row in rows.values()] == [width, width]
    shown_cells = [shown(c) for c in cells(rows["NEO"])]
    assert not any(re.search(r"nan|inf|-0[.,]0", text, re.I) for text in shown_cells)
    if cap is None or not math.isfinite(cap) or cap < 0:
        assert shown_cells[7 + len(currencies) - 1] == "—"


async def test_embed_js_passes_columns_and_sizes_a_table(make_client, settings):
    js = (await (await make_client(settings, market_snapshot())).get("/embed.js")).text
    assert '"sparkline","columns"]' in js and 'l=="table"?' in js
