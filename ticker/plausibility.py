"""The plausibility gate: every rule that decides whether a provider's number may enter a snapshot.

The poller (and anything else that writes quotes) passes each quote through one `Gate`:

1. `screen`, rules about the quote alone. Rejected (the coin stays missing, so the next provider is
   asked for it): a price that is not a finite positive number, or whose USD equivalent lies
   outside [1e-12, 1e7] (fiat through the dated table in rates.py; btc, eth and sats through
   BTC's and ETH's USD price from the same batch, else the last known, else the table's
   fallback). A change (1 h, 24 h, 7 d, 30 d) that is not finite, below -100 % or above +1,000,000 %
   becomes None (the price stays). A market cap or 24 h volume that is not a finite positive number,
   and a rank that is not a whole number from 1 up, become None. A time in the future becomes the
   fetch time.
2. `admit`, the rule about the quote against the last good one: a price that moves more than
   `max_jump_pct` from a last good price that is still fresh is held (the last good price stays
   and ages) until a second provider's quote in the same round, or a quote of the next round,
   lies within 5 % of it. A coin's own `max_jump_pct` overrides the global one; 0 turns it off.

A rejection or the start of a hold is one WARNING (once a day per coin and kind, through logs.py's
"once" filter); per-round repeats are not logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeGuard

from ticker.models import Coin, Quote
from ticker.rates import CRYPTO_UNITS, FALLBACK_USD_PRICES, usd_value

logger = logging.getLogger(__name__)

Pair = tuple[str, str]  # (symbol, currency)

USD_MIN, USD_MAX = 1e-12, 1e7  # a price's USD equivalent must lie in this range
CHANGE_MIN, CHANGE_MAX = -100.0, 1_000_000.0  # percent; outside it the change alone becomes None
CONFIRM_PCT = 5.0  # a held jump is confirmed by a quote within this many percent of it
REFERENCES = {"BTC": "btc", "ETH": "eth"}  # coins whose USD price converts btc, eth and sats


@dataclass(frozen=True)
class _Candidate:
    """A held quote and the round it arrived in."""

    quote: Quote
    round: int


class Gate:
    """Screens quotes and holds implausible jumps; one per poller (the holds span rounds).

    `max_jump_pct`: the global limit in percent (None or 0: off), overridden per coin by
    `Coin.max_jump_pct`. `stale_after`: seconds after which a last good price no longer holds
    back a jump (None: it always does). `confirm_same_source`: whether the same source's quote a round
    later confirms a held jump (the poller's rule); live streams pass False: a stream that disagrees with
    the last good price is confirmed only by another source (another stream, or the poller's next price).
    """

    def __init__(
        self,
        coins: Iterable[Coin],
        *,
        max_jump_pct: float | None,
        stale_after: float | None,
        confirm_same_source: bool = True,
    ) -> None:
        self._limits: dict[str, float | None] = {
            coin.symbol: max_jump_pct if coin.max_jump_pct is None else coin.max_jump_pct for coin in coins
        }
        self._default_limit = max_jump_pct
        self._same_source = confirm_same_source
        self._stale_after = stale_after
        self._usd: dict[str, float] = dict(FALLBACK_USD_PRICES)  # "btc"/"eth" -> USD price
        self._held: dict[Pair, dict[str, _Candidate]] = {}  # by pair, the latest held quote of each source
        self._round = 0

    def begin_round(self, known: Iterable[Quote]) -> None:
        """Start a round with the last known quotes (BTC's and ETH's convert btc, eth and sats).

        Quotes held in the previous round may now be confirmed by this round's; older ones expire.
        """
        self._round += 1
        for quote in known:
            self._learn(quote)
        for pair, held in list(self._held.items()):
            recent = {source: c for source, c in held.items() if c.round >= self._round - 1}
            if recent:
                self._held[pair] = recent
            else:
                del self._held[pair]

    # -- rule 1: the quote alone --------------------------------------------------------------

    def screen(self, quotes: Iterable[Quote], now: datetime) -> list[Quote]:
        """The quotes that may be used, cleaned (change and time); each rejected one is logged.

        BTC's and ETH's fiat prices in the batch are learnt first, so btc/eth/sats quotes of the same
        batch are converted with this round's prices.
        """
        batch = list(quotes)
        for quote in batch:
            if quote.symbol in REFERENCES and quote.currency not in CRYPTO_UNITS and _positive(quote.price):
                self._learn(quote)
        return [clean for clean in (self._screen(quote, now) for quote in batch) if clean is not None]

    def _screen(self, quote: Quote, now: datetime) -> Quote | None:
        if not _positive(quote.price):
            self._reject(quote, "not a positive number")
            return None
        usd = self.usd_value(quote.price, quote.currency)
        if usd is not None and not USD_MIN <= usd <= USD_MAX:
            self._reject(quote, f"about {usd:.3g} USD, outside 1e-12 to 1e7 USD")
            return None
        updated = quote.updated_at if quote.updated_at is not None and quote.updated_at <= now else now
        return replace(
            quote,
            price=float(quote.price),
            change_24h_pct=_change(quote, "24h", quote.change_24h_pct),
            change_1h_pct=_change(quote, "1h", quote.change_1h_pct),
            change_7d_pct=_change(quote, "7d", quote.change_7d_pct),
            change_30d_pct=_change(quote, "30d", quote.change_30d_pct),
            market_cap=_figure(quote.market_cap),
            volume_24h=_figure(quote.volume_24h),
            rank=quote.rank if _rank(quote.rank) else None,
            updated_at=updated,
        )

    def usd_value(self, price: float, currency: str) -> float | None:
        """`price` in `currency` as approximate US dollars; None for a currency without a rate."""
        return usd_value(price, currency, btc_usd=self._usd["btc"], eth_usd=self._usd["eth"])

    def _learn(self, quote: Quote) -> None:
        coin = REFERENCES.get(quote.symbol)
        if coin is None or quote.currency in CRYPTO_UNITS or not _positive(quote.price):
            return
        usd = self.usd_value(quote.price, quote.currency)
        if usd is not None and USD_MIN <= usd <= USD_MAX:
            self._usd[coin] = usd

    @staticmethod
    def _reject(quote: Quote, why: str) -> None:
        logger.warning(
            "%s: rejecting %s/%s price %.40r (%s)",
            quote.source,
            quote.symbol,
            quote.currency,
            quote.price,
            why,
            extra={"once": (quote.source, quote.symbol, quote.currency, "rejected")},
        )

    # -- rule 2: the quote against the last good one -------------------------------------------

    def admit(self, quote: Quote, last_good: Quote | None, now: datetime) -> Quote | None:
        """The quote to store for this pair (the given one, or a held one it confirms), or None: held.

        `quote` must have passed `screen`. A None answer means the last good price stays; the caller
        asks the next provider, whose quote may confirm this one in the same round.
        """
        pair = (quote.symbol, quote.currency)
        limit = self._limits.get(quote.symbol, self._default_limit)
        if not limit or last_good is None or self._stale(last_good, now):
            self._held.pop(pair, None)
            return quote
        jump = abs(quote.price - last_good.price) / last_good.price * 100
        held = self._held.setdefault(pair, {})
        if jump <= limit:
            held.pop(quote.source, None)  # this source is back in line: its earlier jump is void
            if not held:
                del self._held[pair]
            return quote
        for candidate in held.values():
            later = candidate.round < self._round and self._same_source
            if (later or candidate.quote.source != quote.source) and _close(candidate.quote.price, quote.price):
                del self._held[pair]
                accepted = quote if later else candidate.quote
                logger.info(
                    "%s/%s: new price %.8g (%s) confirmed by %s%s; accepted",
                    quote.symbol,
                    quote.currency,
                    accepted.price,
                    accepted.source,
                    quote.source,
                    " a round later" if later else "",
                )
                return accepted
        if not held:
            logger.warning(
                "%s/%s jumped %.0f%% (%s says %.8g; max_jump_pct %g): holding the last good price %.8g (%s) "
                "until a second source or the next round confirms it",
                quote.symbol,
                quote.currency,
                jump,
                quote.source,
                quote.price,
                limit,
                last_good.price,
                last_good.source,
                extra={"once": (quote.symbol, quote.currency, "held")},
            )
        held[quote.source] = _Candidate(quote, self._round)
        return None

    def holding(self) -> frozenset[Pair]:
        """The pairs whose last good price is being held against an unconfirmed jump."""
        return frozenset(self._held)

    def _stale(self, quote: Quote, now: datetime) -> bool:
        return (
            self._stale_after is not None
            and quote.updated_at is not None
            and (now - quote.updated_at).total_seconds() > self._stale_after
        )


def _change(quote: Quote, span: str, change: float | None) -> float | None:
    """The change in percent as a float, or None (logged once a day when it is a finite number out of range)."""
    if change is None:
        return None
    if _number(change) and CHANGE_MIN <= change <= CHANGE_MAX:
        return float(change)
    if _number(change) and math.isfinite(change):
        logger.warning(
            "%s: %s/%s: ignoring %s change %.6g%% (outside -100%% to +1,000,000%%); the price is kept",
            quote.source,
            quote.symbol,
            quote.currency,
            span,
            change,
            extra={"once": (quote.source, quote.symbol, quote.currency, f"change {span}")},
        )
    return None


def _figure(value: object) -> float | None:
    """A market cap or volume as a float if it is a finite positive number, else None (unknown)."""
    return float(value) if _number(value) and math.isfinite(value) and value > 0 else None


def _rank(value: object) -> TypeGuard[int]:
    """A whole number from 1 up (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value: object) -> TypeGuard[float]:
    """A real float (ints too, if a float can hold them); not a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _positive(price: object) -> bool:
    return _number(price) and math.isfinite(price) and price > 0


def _close(a: float, b: float) -> bool:
    """b within CONFIRM_PCT of a."""
    return abs(b - a) <= a * CONFIRM_PCT / 100
