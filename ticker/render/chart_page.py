"""The chart widget's HTML: one coin's history as an inline SVG with its numbers as text.

What the reader gets, all in the locale's language and formats: the latest price and the change over
the range, a range switch (plain links), the line and area (chart.py), the first, latest, high and low
values with when they were (UTC), and one catalog sentence that sums the chart up for screen readers.
Fewer than MIN_POINTS points: a short message instead of a line. The inline CSS and JS are constants
(the CSP allows them by hash); the crosshair script reads the points from data- attributes.

When a value was: a point (first, latest) stands at the end of its bucket, or at the snapshot's time for
the bucket still open (ticker/history/points.py); a high or low happened somewhere in its bucket, so it
is shown as that bucket's span ("Nov 27 18:00–18:30 UTC"), or its day, or its days.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2
from babel.dates import format_interval, format_skeleton, format_time
from babel.units import format_unit
from markupsafe import Markup

from ticker.history.base import RANGES
from ticker.history.points import chart_points
from ticker.models import Candle, Coin
from ticker.render.chart import PAD, geometry, svg
from ticker.render.formatting import (
    CRYPTO_UNITS,
    change_direction,
    currency_digits,
    display_decimal,
    format_change,
    format_price,
)
from ticker.render.i18n import Language, language, templates
from ticker.render.widget import ARROWS, N_, TEMPLATES, _static, csp_hash
from ticker.web.query import ChartOptions

DAY = 86_400
MIN_POINTS = 2  # fewer: "not enough history" instead of a line

# The range switch: each range's length as a CLDR unit (narrow on the link, long in its title); "max" is a word.
RANGE_UNITS: Mapping[str, tuple[int, str]] = {
    "24h": (24, "duration-hour"),
    "7d": (7, "duration-day"),
    "30d": (30, "duration-day"),
    "1y": (1, "duration-year"),
}
# Translators: the chart's range link that shows all recorded history.
ALL_HISTORY = N_("All")
# The screen reader's summary of a chart, one whole sentence per range.
SUMMARIES: Mapping[str, str] = {
    "24h": N_("%(name)s, last 24 hours: from %(first)s to %(last)s, high %(high)s, low %(low)s"),
    "7d": N_("%(name)s, last 7 days: from %(first)s to %(last)s, high %(high)s, low %(low)s"),
    "30d": N_("%(name)s, last 30 days: from %(first)s to %(last)s, high %(high)s, low %(low)s"),
    "1y": N_("%(name)s, last 12 months: from %(first)s to %(last)s, high %(high)s, low %(low)s"),
    "max": N_("%(name)s since %(date)s: from %(first)s to %(last)s, high %(high)s, low %(low)s"),
}
# Translators: the labels of the chart's four figures (the first price of the range, the latest, the highest
# and the lowest).
STAT_LABELS = (N_("Start"), N_("Latest"), N_("High"), N_("Low"))


@dataclass(frozen=True)
class RangeLink:
    label: str  # "7d" (CLDR narrow)
    title: str  # "7 days"
    url: str
    current: bool


@dataclass(frozen=True)
class Stat:
    label: str
    value: str  # the price as shown
    full: str | None  # every digit, where `value` abbreviates (0.0₅712)
    when: str


class ChartRenderer:
    """Renders /widget/chart; its CSS and JS are constants allowed by hash, like the widget's."""

    CSS = _static("theme.css") + _static("chart.css")  # the widget's themes and custom properties, then the chart's
    JS = _static("chart.js")
    STYLE_HASH = csp_hash(CSS)
    SCRIPT_HASH = csp_hash(JS)

    def _environment(self, locale: str) -> jinja2.Environment:
        return templates(locale, TEMPLATES)

    def document(
        self,
        coin: Coin,
        options: ChartOptions,
        candles: Sequence[Candle],
        *,
        now: float,
        links: Mapping[str, str],
        demo: bool = False,
        css_url: str | None = None,
    ) -> str:
        """The page for `coin`'s `candles` (oldest first, as the store gave them) in `options`; `links`: each
        range's URL; `now`: the snapshot's time (Unix seconds), where the open bucket's point stands;
        `css_url`: the operator's own stylesheet (widget.css_file), linked after ours."""
        lang = language(options.locale)
        context: dict[str, object] = {
            "lang": lang.tag,
            "dir": lang.dir,
            "options": options,
            "coin": coin,
            "title": lang.gettext("%(name)s price chart") % {"name": coin.name},
            "ranges": range_links(links, options.range, lang),
            "demo": demo,
            "css_url": css_url,
            "chart": None,
        }
        points = chart_points(candles, now)
        if len(points) >= MIN_POINTS:
            context["chart"] = self._chart(coin, options, candles, points, lang)
        return (
            self._environment(options.locale)
            .get_template("chart.html")
            .render(context, css=Markup(self.CSS), js=Markup(self.JS))
        )

    def _chart(
        self,
        coin: Coin,
        options: ChartOptions,
        candles: Sequence[Candle],
        points: Sequence[tuple[int, float]],
        lang: Language,
    ) -> dict[str, object]:
        currency, numbers = options.currency, lang.numbers
        seconds = min(candle.seconds for candle in candles)
        high = max(candles, key=lambda c: c.high)
        low = min(candles, key=lambda c: c.low)
        (first_at, first), (last_at, last) = points[0], points[-1]
        shape = geometry(points, low.low, high.high)

        def price(value: float) -> str:
            return format_price(value, currency, numbers)

        summary = lang.gettext(SUMMARIES[options.range]) % {
            "name": coin.name,
            "date": day_text(first_at - (1 if seconds >= DAY else 0), lang),  # the Start's day
            "first": price(first),
            "last": price(last),
            "high": price(high.high),
            "low": price(low.low),
        }
        change = (last - first) / first * 100
        direction = change_direction(change)
        labels = [lang.gettext(label) for label in STAT_LABELS]
        stats = [
            stat(labels[0], first, currency, numbers, moment_text(first_at, seconds, lang)),
            stat(labels[1], last, currency, numbers, moment_text(last_at, seconds, lang)),
            stat(labels[2], high.high, currency, numbers, bucket_text(high, lang)),
            stat(labels[3], low.low, currency, numbers, bucket_text(low, lang)),
        ]
        return {
            "svg": Markup(svg(shape, summary)),
            "latest": stats[1],
            "change": format_change(change, numbers),
            "direction": direction,
            "arrow": ARROWS[direction],
            "stats": stats,
            "axis": (axis_text(first_at, seconds, numbers), axis_text(last_at, seconds, numbers)),
            "scale": (price(shape.high), price(shape.low)),
            "data": crosshair_data(points, currency, numbers, shape.low, shape.high, with_time=seconds < DAY),
        }


def stat(label: str, value: float, currency: str, locale: str, when: str) -> Stat:
    shown = format_price(value, currency, locale, subscript=True)
    full = format_price(value, currency, locale)
    return Stat(label, shown, full if full != shown else None, when)


def range_links(links: Mapping[str, str], current: str, lang: Language) -> list[RangeLink]:
    """The range switch, in RANGES order: CLDR's narrow unit on the link ("7d", "7 T"), the long one as its
    title ("7 days"); "max" is the catalog's word."""
    found = []
    for name in RANGES:
        if name in RANGE_UNITS:
            count, unit = RANGE_UNITS[name]
            label = str(format_unit(count, unit, length="narrow", locale=lang.numbers))
            title = str(format_unit(count, unit, length="long", locale=lang.numbers))
        else:
            label = title = lang.gettext(ALL_HISTORY)
        found.append(RangeLink(label, title, links[name], name == current))
    return found


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


def moment_text(at: int, seconds: int, lang: Language) -> str:
    """When a point's price stood: "Nov 27 18:20 UTC" on a chart of sub-day buckets; else its day
    ("Nov 27, 2026"), the day before the bucket's end (a daily close is the price at midnight)."""
    if seconds < DAY:
        moment = _utc(at)
        date = format_skeleton("MMMd", moment, tzinfo=UTC, locale=lang.numbers)
        time = format_time(moment, "HH:mm", tzinfo=UTC, locale=lang.numbers)
        return lang.gettext("%(date)s %(time)s UTC") % {"date": date, "time": time}
    return day_text(at - 1, lang)


def day_text(at: float, lang: Language) -> str:
    return str(format_skeleton("yMMMd", _utc(at), tzinfo=UTC, locale=lang.numbers))


def bucket_text(candle: Candle, lang: Language) -> str:
    """The span a bucket covers (its high or low happened in it): "Nov 27 18:00–18:30 UTC", a day "Nov 27,
    2026", or days "Nov 5 – Dec 2, 2026"."""
    start, end = _utc(candle.start), _utc(candle.start + candle.seconds)
    if candle.seconds < DAY:
        date = format_skeleton("MMMd", start, tzinfo=UTC, locale=lang.numbers)
        time = format_interval(start, end, "Hm", tzinfo=UTC, locale=lang.numbers)
        return lang.gettext("%(date)s %(time)s UTC") % {"date": date, "time": time}
    if candle.seconds == DAY:
        return day_text(candle.start, lang)
    return str(
        format_interval(start, _utc(candle.start + candle.seconds - DAY), "yMMMd", tzinfo=UTC, locale=lang.numbers)
    )


def axis_text(at: int, seconds: int, locale: str) -> str:
    """The date under an end of the chart: "Nov 27" for charts of sub-day buckets, else "Nov 2026"."""
    return str(format_skeleton("MMMd" if seconds < DAY else "yMMM", _utc(at), tzinfo=UTC, locale=locale))


def crosshair_data(
    points: Sequence[tuple[int, float]], currency: str, locale: str, low: float, high: float, *, with_time: bool
) -> dict[str, str]:
    """The data- attributes chart.js reads: prices as displayed (p); times in minutes, the first and then the
    steps, a repeat written "step*count" (t: "29596340 30*335 20"); the prices at the plot's bottom and top
    edges (s: the band from `low` to `high` plus chart.PAD each side); the locale (l); the ISO currency (c)
    or a unit shown after the number (u); and whether dates carry a time (d)."""
    digits = currency_digits(currency)
    prices = " ".join(format(display_decimal(price, digits), "f") for _, price in points)
    minutes = [at // 60 for at, _ in points]
    steps = run_lengths([minutes[0]] + [b - a for a, b in zip(minutes, minutes[1:], strict=False)])
    band = high - low
    extend = band * PAD / (1 - 2 * PAD) if math.isfinite(band) and band > 0 else max(low, 1.0)  # flat: the middle
    data = {
        "p": prices,
        "t": steps,
        "s": f"{low - extend!r} {high + extend!r}",
        "l": locale.replace("_", "-"),
    }
    if currency in CRYPTO_UNITS:
        data["u"] = CRYPTO_UNITS[currency][0]
    else:
        data["c"] = currency.upper()
    if with_time:
        data["d"] = "1"
    return data


def run_lengths(values: Sequence[int]) -> str:
    """Integers, space-separated, a run of one value as "value*count": [5, 30, 30, 30, 2] -> "5 30*3 2"."""
    runs: list[list[int]] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return " ".join(f"{value}*{count}" if count > 1 else str(value) for value, count in runs)
