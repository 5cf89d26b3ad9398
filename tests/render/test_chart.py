"""The chart widget's drawing and page: geometry inside the viewBox for any series, the numbers and dates a
reader sees (first, latest, high, low, localized, UTC), the range links, the accessible summary, the
message for too little history, the crosshair's data, and the size bound at 500 points."""

from __future__ import annotations

import html
import math
import random
import re

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import NOW
from ticker.history.base import MAX_POINTS
from ticker.models import Candle, Coin
from ticker.render.chart import HEIGHT, PAD, WIDTH, geometry
from ticker.render.chart_page import ChartRenderer, run_lengths
from ticker.render.widget import WidgetRenderer, _static
from ticker.web.query import ChartOptions

T0 = int(NOW.timestamp())  # 2026-11-27 18:20 UTC, a whole 5 minutes
BTC = Coin("BTC", "Bitcoin")
HALF_HOUR = 1800


def options(range_name: str = "7d", currency: str = "usd", locale: str = "en_US", **more) -> ChartOptions:
    return ChartOptions(BTC, currency, range_name, more.get("theme", "light"), locale, more.get("transparent", False))


def links() -> dict[str, str]:
    return {name: f"/widget/chart?coin=BTC&range={name}" for name in ("24h", "7d", "30d", "1y", "max")}


def week(closes: list[float], *, seconds: int = HALF_HOUR) -> list[Candle]:
    """Aligned buckets, the last one holding T0 (so its point stands at T0), each with a wick of 1 % above and
    below its close."""
    start = T0 // seconds * seconds - (len(closes) - 1) * seconds
    return [Candle(start + i * seconds, seconds, c, c * 1.01, c * 0.99, c) for i, c in enumerate(closes)]


def page(candles: list[Candle], opts: ChartOptions | None = None, **kwargs) -> str:
    return ChartRenderer().document(BTC, opts or options(), candles, now=T0, links=links(), **kwargs)


def path_coords(d: str) -> list[tuple[int, int]]:
    """The absolute coordinates of "M0,150l2,-3 2-5" (a moveto, then relative steps)."""
    head, _, tail = d.partition("l")
    x, y = (int(v) for v in head[1:].split(","))
    coords = [(x, y)]
    for dx, dy in re.findall(r"(-?\d+),?(-?\d+)", tail):
        x, y = x + int(dx), y + int(dy)
        coords.append((x, y))
    return coords


# --------------------------------------------------------------------------- geometry

prices = st.floats(min_value=1e-12, max_value=1e15, allow_nan=False, allow_infinity=False)
series = st.lists(st.tuples(st.integers(0, 2**40), prices), min_size=2, max_size=MAX_POINTS)


@hypothesis_settings(max_examples=150, deadline=None)
@given(series)
def test_any_positive_series_draws_inside_the_viewbox_with_no_nan(points):
    shape = geometry(points)
    assert len(shape.coords) == len(points)
    assert all(0 <= x <= WIDTH and 0 <= y <= HEIGHT for x, y in shape.coords)
    assert "nan" not in shape.line.lower() and "inf" not in shape.line.lower()
    assert path_coords(shape.line) == list(shape.coords)  # relative steps add up to the rounded positions
    assert shape.area.startswith(shape.line) and shape.area.endswith(f"V{HEIGHT}H{shape.coords[0][0]}Z")
    xs = [x for x, _ in shape.coords]
    assert xs == sorted(xs) and (xs[0], xs[-1]) == ((0, WIDTH) if len({t for t, _ in points}) > 1 else (0, 0))


def test_the_highest_price_is_at_the_top_and_the_lowest_at_the_bottom():
    shape = geometry([(0, 10.0), (1, 30.0), (2, 20.0)])
    top, bottom = round(HEIGHT * PAD), round(HEIGHT * (1 - PAD))
    assert [y for _, y in shape.coords] == [bottom, top, HEIGHT // 2]
    wider = geometry([(0, 10.0), (1, 30.0)], low=5.0, high=35.0)  # the buckets' extremes widen the scale
    assert top < wider.coords[1][1] and wider.coords[0][1] < bottom
    assert (wider.low, wider.high) == (5.0, 35.0)


def test_a_flat_series_is_a_line_through_the_middle():
    assert {y for _, y in geometry([(0, 1.0), (60, 1.0), (120, 1.0)]).coords} == {HEIGHT // 2}


@pytest.mark.parametrize("bad", [[(0, 1.0)], [(0, 1.0), (1, 0.0)], [(0, 1.0), (1, math.nan)], [(0, 1.0), (1, -2.0)]])
def test_too_few_or_impossible_points_are_refused(bad):
    with pytest.raises(ValueError):
        geometry(bad)


# --------------------------------------------------------------------------- the page


def test_the_numbers_and_their_times_as_text():
    closes = [90_000.0 + 10 * i for i in range(337)]
    closes[100] = 95_000.0
    closes[200] = 85_000.0
    found = re.findall(r"<dt>(\w+)</dt><dd><b>([^<]+)</b> <small>([^<]+)</small>", page(week(closes)))
    assert found == [
        ("Start", "$90,000.00", "Nov 20 18:30 UTC"),  # the first bucket's close, at its end
        ("Latest", "$93,360.00", "Nov 27 18:20 UTC"),  # the bucket still open: as of the snapshot
        ("High", "$95,950.00", "Nov 22 20:00\u2009\u2013\u200920:30 UTC"),  # somewhere in that half hour
        ("Low", "$84,150.00", "Nov 24 22:00\u2009\u2013\u200922:30 UTC"),
    ]


def test_latest_price_and_change_over_the_range_head_the_chart():
    text = page(week([100.0, 50.0, 103.5]))
    assert '<p class="tc-now"><b>$103.50</b> <span class="tk-up">▲ 3.50%</span></p>' in text
    down = page(week([100.0, 99.0]))
    assert '<span class="tk-down">▼ 1.00%</span>' in down
    flat = page(week([100.0, 100.001]))
    assert '<span class="tk-flat">0.00%</span>' in flat  # rounds to nothing: no arrow, no colour


def test_the_summary_is_one_sentence_for_screen_readers():
    text = page(week([90_000.0, 91_000.0, 89_500.0, 92_000.0]))
    label = html.unescape(re.search(r'<svg [^>]*aria-label="([^"]*)"', text).group(1))
    assert label == "Bitcoin, last 7 days: from $90,000.00 to $92,000.00, high $92,920.00, low $88,605.00"
    assert 'role="img"' in text
    everything = page(week([1.0, 2.0], seconds=86_400), options("max"))
    label = html.unescape(re.search(r'aria-label="(Bitcoin since [^"]*)"', everything).group(1))
    assert label == "Bitcoin since Nov 26, 2026: from $1.00 to $2.00, high $2.02, low $0.99"  # the Start day


def test_daily_buckets_show_days():
    text = page(week([1.0, 2.0, 3.0], seconds=86_400), options("1y"))
    found = re.findall(r"<dt>(\w+)</dt><dd><b>([^<]+)</b> <small>([^<]+)</small>", text)
    assert [when for *_, when in found] == ["Nov 25, 2026", "Nov 27, 2026", "Nov 27, 2026", "Nov 25, 2026"]


def test_the_range_switch_is_plain_links_with_the_current_one_marked():
    text = page(week([1.0, 2.0]), options("30d"))
    nav = re.search(r'<nav class="tc-ranges" aria-label="Time period">(.*?)</nav>', text).group(1)
    found = re.findall(r'<a href="([^"]+)" title="([^"]+)"( aria-current="page")?>([^<]+)</a>', nav)
    assert [(href.split("range=")[1], title, bool(current), label) for href, title, current, label in found] == [
        ("24h", "24 hours", False, "24h"),
        ("7d", "7 days", False, "7d"),
        ("30d", "30 days", True, "30d"),
        ("1y", "1 year", False, "1y"),
        ("max", "All", False, "All"),
    ]


def test_too_little_history_is_a_short_message_instead_of_a_line():
    for candles in ([], week([90_000.0])):
        text = page(candles).split("<body>")[1].split("<script>")[0]
        assert "Not enough price history for a chart yet" in text
        assert "<svg" not in text and "<dl" not in text and "tc-fig" not in text
        assert '<nav class="tc-ranges"' in text  # another range may have more
    assert "<svg" in page(week([1.0, 2.0]))


def test_german_numbers_dates_and_words():
    closes = [90_000.0 + 10 * i for i in range(337)]
    text = page(week(closes), options(locale="de_DE", currency="eur"))
    assert '<html lang="de" dir="ltr"' in text
    assert "93.360,00\xa0€" in text and "27. Nov. 18:20 UTC" in text
    assert 'title="7 Tage"' in text  # CLDR's own unit names


def test_crosshair_data_are_the_points_as_displayed():
    closes = [0.00000712, 0.0000071234, 0.00000715]
    text = page(week(closes), options(currency="usd"))
    figure = re.search(r"<figure ([^>]*)>", text).group(1)
    data = dict(re.findall(r'data-(\w)="([^"]*)"', figure))
    assert data["p"].split() == ["0.00000712", "0.000007123", "0.00000715"]  # 4 significant digits, as shown
    assert data["t"] == f"{(T0 // HALF_HOUR * HALF_HOUR - HALF_HOUR) // 60} 30 20"  # first, then steps
    steps = [int(v) for v in data["t"].split()]
    minutes = [sum(steps[: i + 1]) for i in range(len(steps))]
    open_start = T0 // HALF_HOUR * HALF_HOUR
    assert [m * 60 for m in minutes] == [open_start - HALF_HOUR, open_start, T0]  # bucket ends; the open one: T0
    assert data["c"] == "USD" and data["l"] == "en-US" and data["d"] == "1"
    bottom, top = (float(v) for v in data["s"].split())
    assert bottom < min(c * 0.99 for c in closes) and top > max(c * 1.01 for c in closes)
    sats = page(week([1500.0, 1600.0], seconds=86_400), options("1y", currency="sats"))
    sats_data = dict(re.findall(r'data-(\w)="([^"]*)"', re.search(r"<figure ([^>]*)>", sats).group(1)))
    assert sats_data["u"] == "sats" and "c" not in sats_data and "d" not in sats_data


def test_repeated_steps_are_written_once_with_their_count():
    assert run_lengths([29_596_340, 30, 30, 30, 60, 30, 30, 20]) == "29596340 30*3 60 30*2 20"
    assert run_lengths([7]) == "7"


def test_subscript_prices_keep_every_digit_in_their_title():
    text = page(week([0.0000071234, 0.00000712]))
    assert '<b title="$0.00000712">$0.0₅712</b>' in text


def test_the_demo_label_and_an_operators_stylesheet():
    text = page(week([1.0, 2.0]), demo=True, css_url="/widget/site.css")
    assert "Demo: simulated prices, not market data" in text
    assert '<link rel="stylesheet" href="/widget/site.css">' in text
    assert "Demo:" not in page(week([1.0, 2.0]))


def test_themes_and_transparency_are_the_widgets():
    dark = page(week([1.0, 2.0]), options(theme="dark"))
    assert '<html lang="en" dir="ltr" class="theme-dark">' in dark
    assert '<meta name="color-scheme" content="dark">' in dark
    clear = page(week([1.0, 2.0]), options(theme="auto", transparent=True))
    assert 'class="theme-auto transparent"' in clear and "color-scheme" not in clear.split("<style>")[0]
    themes = _static("theme.css")  # the same custom properties and themes as the widget
    assert ".theme-dark{color-scheme:dark}" in themes and "--tk-bg:" in themes
    assert ChartRenderer.CSS.startswith(themes) and WidgetRenderer.CSS.startswith(themes)


def test_500_points_stay_under_20_kb():
    rng = random.Random(7)
    price, closes = 90_917.04, []
    for _ in range(MAX_POINTS):
        price *= 1 + rng.gauss(0, 0.01)
        closes.append(price)
    for currency, locale in (("usd", "en_US"), ("btc", "de_DE"), ("jpy", "ja")):
        scaled = [c * {"usd": 1, "btc": 1 / 90_000, "jpy": 152}[currency] for c in closes]
        text = page(week(scaled, seconds=2 * 86_400), options("max", currency=currency, locale=locale))
        assert text.count(" ") > MAX_POINTS  # every point drawn
        assert len(text.encode()) < 20 * 1024, (currency, len(text.encode()))
