"""Kraken spot public REST: a keyless exchange fallback for the coins Kraken lists, in USD.

One `GET /0/public/Ticker?pair=A,B,...` per batch prices every supported
coin with its last trade (`c[0]`). The coin table stores the pair to *query*
(`XBTUSD`); Kraken answers under its canonical pair name (`XXBTZUSD`), so
each entry is matched back to its pair by, in order: a key learnt for that
pair, the verified keys below, the exact name, and the legacy-code rule
(8 letters, `X`/`Z` class prefix on both 4-letter asset codes: `XXBTZUSD` is
`XBTUSD`). A single-pair answer with one USD entry is that pair's (and the
key is learnt), so a pair no rule matches is asked alone once.

No 24 h change: Kraken's `o` is today's opening price, "today" starting at
00:00 UTC, so `(c - o) / o` is the change since UTC midnight, not the rolling
24 h change the contract promises everywhere, and nothing in the same reply
is a price from 24 h ago (its 24 h columns are volume, VWAP, trade count,
low and high). `change_24h_pct` is therefore None. Kraken gives no quote time
either; the poller stamps the fetch time.

Errors arrive with HTTP 200 as `{"error": ["EQuery:Unknown asset pair"]}`,
and a multi-pair call fails whole when any one pair is unknown. So that one
delisted coin cannot take the others down, the pairs of such a batch are
asked once more alone (a second apart, never-priced pairs first, stopping
when the budget or Kraken says so); a pair unknown on its own is skipped for
a day, logged once, then asked alone again. Rate-limit errors carry a
`retry_after` of a minute, since Kraken sends none.

Candles (backfill): `GET /0/public/OHLC?pair=&interval=<minutes>&since=<unix s>` gives
`{"error": [], "result": {"<result key>": [[time, open, high, low, close, vwap, volume,
count], ...], "last": <id>}}`, time in Unix seconds (a number), prices as strings. It
returns at most the 720 most recent entries whatever `since` says (720 hours = 30 days
hourly, 720 days daily), and the last entry is the bucket still open, which `window`
drops (docs.kraken.com/api-reference/market-data/get-ohlc-data).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from ticker.exceptions import ProviderError
from ticker.models import Candle, Coin, Quote
from ticker.providers.base import UpstreamProvider
from ticker.providers.parsing import candle, ignored, number, window
from ticker.providers.session import UpstreamSession

if TYPE_CHECKING:
    from ticker.providers.base import ProviderSettings

logger = logging.getLogger(__name__)

BASE_URL = "https://api.kraken.com/0/public"
CURRENCY = "usd"  # the table gives USD pairs; other currencies fail over to the next provider
UNKNOWN_PAIR_SKIP_SECONDS = 24 * 3600.0
RATE_LIMIT_RETRY_SECONDS = 60.0  # Kraken: restricted "for a few seconds (or possibly longer)"; it sends no Retry-After
PROBE_SPACING_SECONDS = 1.0  # Kraken: public calls at one a second or less stay within the limits

# Query name -> result key, as seen in real replies (docs/upstream notes); the rules cover the rest.
KNOWN_RESULT_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "XBTUSD": "XXBTZUSD",
        "ETHUSD": "XETHZUSD",
        "XMRUSD": "XXMRZUSD",
        "LTCUSD": "XLTCZUSD",
        "XDGUSD": "XDGUSD",
        "DOGEUSD": "XDGUSD",
        "ADAUSD": "ADAUSD",
    }
)

# Bucket seconds -> /OHLC `interval` in minutes, the documented set.
OHLC_INTERVALS: Mapping[int, int] = MappingProxyType(
    {minutes * 60: minutes for minutes in (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)}
)

_UNKNOWN_PAIR = "equery:unknownassetpair"
_RATE_LIMITED = (  # squashed prefixes of the errors that mean "slow down"
    "eapi:ratelimitexceeded",
    "egeneral:toomanyrequests",
    "eservice:throttled",
    "egeneral:temporarylockout",
)
_MESSAGE_CHARS = 160


class Kraken(UpstreamProvider):
    """Keyless: public market data takes no key, so there is one plan."""

    BASE_URLS: ClassVar[dict[str, str]] = {"public": BASE_URL}
    CURRENCIES: ClassVar[frozenset[str] | None] = frozenset({CURRENCY})  # USD pairs only
    RATE_LIMIT_HOLD: ClassVar[float] = RATE_LIMIT_RETRY_SECONDS
    REQUEST_SPACING: ClassVar[float] = PROBE_SPACING_SECONDS

    @staticmethod
    def default_limits(settings: ProviderSettings) -> tuple[float, float | None]:
        """30/min, no monthly cap.

        Public calls are throttled per IP with no published figure; Kraken's
        support pages call one a second or less safe. Half that leaves room
        for others on the same IP, and still fits a round (one request) plus
        isolating an unknown pair (at most `batch_size` more) in one minute.
        """
        return 30.0, None

    name = "kraken"
    batch_size = 20  # small on purpose: isolating an unknown pair costs one request per pair of its batch

    def __init__(self, session: UpstreamSession, settings: ProviderSettings) -> None:
        super().__init__(session, settings)
        self._url = f"{self._base_url}/Ticker"
        self._priced: set[str] = set()  # pairs Kraken has answered: probed last
        self._keys: dict[str, str] = {}  # pair -> result key, learnt from single-pair answers

    def supports(self, coin: Coin) -> bool:
        pair = coin.ids.get(self.name)
        return pair is not None and _is_usd_pair(pair)

    async def fetch(self, coins: Sequence[Coin], currencies: Sequence[str]) -> list[Quote]:
        if CURRENCY not in currencies:
            return []
        by_pair = {coin.ids[self.name]: coin for coin in coins if self.supports(coin)}
        quarantine = self._session.quarantine
        due = [pair for pair in by_pair if not quarantine.skipped(pair)]
        batch = [pair for pair in due if pair not in quarantine]
        retest = [pair for pair in due if pair in quarantine]
        entries: dict[str, Any] = {}
        try:
            probe: list[str] = []
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                got = await self._ticker(chunk, by_pair)
                entries |= got
                if len(chunk) > 1:
                    probe.extend(pair for pair in chunk if pair not in got)
            probe.sort(key=lambda pair: pair in self._priced)  # stable: a cut-short isolation resumes where it stopped
            for pair in probe + retest:  # the session spaces them a second apart
                entries |= await self._ticker([pair], by_pair)
        except ProviderError as err:
            if not entries:
                raise
            logger.info("kraken: %s; keeping the %d prices already fetched", err.message, len(entries))
        quotes = []
        for pair, coin in by_pair.items():
            if pair in entries and (quote := self._quote(coin, entries[pair])) is not None:
                quotes.append(quote)
        return quotes

    async def _ticker(self, pairs: list[str], by_pair: Mapping[str, Coin]) -> dict[str, Any]:
        """One /Ticker call: its entries by queried pair; {} when it only says some pair is unknown."""
        body = await self._session.get_json(
            self._url, params={"pair": ",".join(pairs)}, headers=self._headers, check=self._check
        )
        unknown = [e for e in body.get("error", []) if _squash(str(e)).startswith(_UNKNOWN_PAIR)]
        result = body.get("result")
        if not result:
            if not unknown:
                raise ProviderError(self.name, f"empty /Ticker result for {len(pairs)} pair(s) and no error")
            if len(pairs) == 1:
                self._mark_unknown(pairs[0], by_pair[pairs[0]])
            return {}
        matched = self._match(pairs, result)
        for pair in matched:
            self._priced.add(pair)
            if self._session.quarantine.release(pair):
                logger.info("kraken: %s: pair %s is known again", by_pair[pair].symbol, pair)
        if len(pairs) == 1 and not matched:
            logger.warning(
                "kraken: %s: no entry for pair %s in the answer (keys: %s)",
                by_pair[pairs[0]].symbol,
                pairs[0],
                _short(", ".join(result)),
            )
        return matched

    def _check(self, body: Any) -> None:
        """Kraken reports errors inside a 200: raise for all but "unknown pair" (a rate limit holds the provider)."""
        if not isinstance(body, dict):
            raise ProviderError(self.name, f"unexpected /Ticker response ({type(body).__name__})")
        errors = body.get("error", [])
        result = body.get("result")
        if not isinstance(errors, list) or not (result is None or isinstance(result, dict)):
            raise ProviderError(self.name, "unexpected /Ticker response (no error list and result object)")
        failures = [str(e) for e in errors if not str(e).startswith("W")]
        if len(failures) < len(errors):
            logger.debug("kraken: warnings: %s", [e for e in errors if str(e).startswith("W")])
        others = [e for e in failures if not _squash(e).startswith(_UNKNOWN_PAIR)]
        if others:
            limited = any(_squash(e).startswith(_RATE_LIMITED) for e in others)
            raise ProviderError(
                self.name,
                _short(f"API error: {'; '.join(others)}"),
                status=200,
                retry_after=RATE_LIMIT_RETRY_SECONDS if limited else None,
            )

    def _match(self, pairs: list[str], result: Mapping[str, Any]) -> dict[str, Any]:
        matched: dict[str, Any] = {}
        for pair in pairs:
            key = self._key_for(pair, result)
            if key is not None:
                matched[pair] = result[key]
        if len(pairs) == 1 and not matched and len(result) == 1:
            [key] = result
            if _is_usd_pair(key):  # the only entry of a one-pair answer is that pair's, if its quote fits
                self._keys[pairs[0]] = key
                matched[pairs[0]] = result[key]
        return matched

    def _key_for(self, pair: str, result: Mapping[str, Any]) -> str | None:
        for key in (self._keys.get(pair), KNOWN_RESULT_KEYS.get(pair.upper()), pair):
            if key is not None and key in result:
                return key
        plain = _plain(pair)
        return next((key for key in result if _plain(key) == plain), None)

    def _mark_unknown(self, pair: str, coin: Coin) -> None:
        first = self._session.quarantine.skip(pair, UNKNOWN_PAIR_SKIP_SECONDS)
        self._priced.discard(pair)
        if first:
            logger.warning(
                "kraken: %s: Kraken does not know pair %s (delisted or misspelt?); asking again in 24 h",
                coin.symbol,
                pair,
            )
        else:
            logger.debug("kraken: %s: pair %s still unknown", coin.symbol, pair)

    def has_candles(self, coin: Coin, currency: str) -> bool:
        return currency == CURRENCY and self.supports(coin)

    async def candles(self, coin: Coin, currency: str, seconds: int, since: int, until: int) -> list[Candle]:
        """One side request to /OHLC: up to the 720 most recent buckets after `since` (see the module doc)."""
        minutes = OHLC_INTERVALS.get(seconds)
        if minutes is None or not self.has_candles(coin, currency):
            raise ValueError(f"kraken: no {seconds} s candles for {coin.symbol}/{currency}")
        pair = coin.ids[self.name]
        body = await self._session.get_json(
            f"{self._base_url}/OHLC",
            params={"pair": pair, "interval": str(minutes), "since": str(since)},
            headers=self._headers,
            side=True,
            check=self._check_ohlc,
        )
        where = f"{coin.symbol}/{CURRENCY}"
        parsed = []
        for row in self._ohlc_rows(pair, body["result"]):
            if isinstance(row, list) and len(row) >= 5:
                parsed.append(candle(self.name, where, row[0], seconds, row[1:5]))
            else:
                ignored(self.name, where, f"off-schema candle {row!r:.80}", kind="candle")
        return window((c for c in parsed if c is not None), since, until)

    def _check_ohlc(self, body: Any) -> None:
        """Every error in an /OHLC body fails the request (an unknown pair too); a rate limit holds Kraken."""
        errors = body.get("error", []) if isinstance(body, dict) else None
        if not isinstance(errors, list):
            raise ProviderError(self.name, f"unexpected /OHLC response ({type(body).__name__} without an error list)")
        failures = [str(e) for e in errors if not str(e).startswith("W")]
        if failures:
            limited = any(_squash(e).startswith(_RATE_LIMITED) for e in failures)
            raise ProviderError(
                self.name,
                _short(f"API error: {'; '.join(failures)}"),
                status=200,
                retry_after=RATE_LIMIT_RETRY_SECONDS if limited else None,
            )
        if not isinstance(body.get("result"), dict):
            raise ProviderError(self.name, "unexpected /OHLC response (no result object)")

    def _ohlc_rows(self, pair: str, result: Mapping[str, Any]) -> list[Any]:
        """The rows under `pair`'s result key (matched as for /Ticker); `last` is not a pair."""
        entries = {key: value for key, value in result.items() if key != "last"}
        key = self._key_for(pair, entries)
        if key is None and len(entries) == 1 and _is_usd_pair(only := next(iter(entries))):
            key = only
        if key is None:
            raise ProviderError(
                self.name, _short(f"/OHLC answer has no entry for pair {pair} (keys: {', '.join(entries)})")
            )
        rows = entries[key]
        if not isinstance(rows, list):
            raise ProviderError(self.name, f"unexpected /OHLC entry for {pair} ({type(rows).__name__})")
        return rows

    def _quote(self, coin: Coin, entry: Any) -> Quote | None:
        last = entry.get("c") if isinstance(entry, dict) else None
        price = number(last[0]) if isinstance(last, list) and last else None
        if price is None:
            ignored(
                self.name, f"{coin.symbol}/usd", f"entry without a numeric last price ({entry!r:.60})", kind="price"
            )
            return None
        return Quote(coin.symbol, CURRENCY, price, None, None, self.name)


def _plain(name: str) -> str:
    """`XXBTZUSD` -> `XBTUSD`: drops the class prefixes of Kraken's legacy 4-letter asset codes."""
    name = name.upper()
    if len(name) == 8 and name[0] in "XZ" and name[4] in "XZ":
        return name[1:4] + name[5:]
    return name


def _is_usd_pair(pair: str) -> bool:
    return pair.upper().endswith("USD")


def _squash(error: str) -> str:
    """Kraken spells the same error with and without spaces (`EService: Throttled`)."""
    return "".join(error.split()).lower()


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 1] + "…"
