"""The poller: the only code that asks upstream for prices, and the only writer of snapshots.

One round asks the providers in failover order for every coin and currency
still missing, merges what came back over the last snapshot (so a failed
coin keeps its last good quote and ages honestly), and puts the result in
the store. Every quote passes the plausibility gate (plausibility.py) first:
a rejected or held quote leaves its coin missing, so the next provider is
asked for it in the same round. A quote already older than `stale_after`
when it arrives counts as missing too; it is used only if no provider has a
newer one, and never replaces a newer quote we hold. Providers that asked us to wait, or keep failing, are skipped
(providers/manners.py); their coins come from the next provider meanwhile.
State changes (failure, recovery, failover) are logged once, never once per
round. Before the gate, a provider's hourly market data (rank, 1h/7d/30d
changes) joins its quotes while it is at most two hours old (market.py);
after it, the history recorder fills the changes still missing from ours.

Scheduling runs on the monotonic clock: rounds start every interval from the
first, a round that overruns skips the starts it missed (no backlog), and a
step of the wall clock changes nothing. Each provider gets at most
`timeout` seconds of a round (its session refuses requests after that and
cuts the one in flight), so a round with P providers lasts at most P × timeout.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType

import anyio

from ticker.exceptions import ProviderError
from ticker.history.recorder import HistoryRecorder
from ticker.history.sparkline import record
from ticker.market import with_market
from ticker.models import Coin, Quote, SavedManners, Snapshot, utcnow
from ticker.plausibility import Gate
from ticker.providers import Provider
from ticker.providers.manners import Manners
from ticker.providers.session import OFFLINE_HINT, unreachable_host
from ticker.store import SnapshotStore
from ticker.tokens import converted
from ticker.top import CoinList, TopRanking

logger = logging.getLogger(__name__)

Pair = tuple[str, str]  # (symbol, currency)


class Poller:
    def __init__(
        self,
        providers: Sequence[Provider],
        store: SnapshotStore,
        coins: Sequence[Coin] | CoinList,
        currencies: Sequence[str],
        *,
        interval: float,
        timeout: float | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        max_jump_pct: float | None = 50.0,
        stale_after: float | None = 300.0,
        random_fraction: Callable[[], float] = random.random,
        history: HistoryRecorder | None = None,
        ranking: TopRanking | None = None,
        live: Callable[[], Mapping[Pair, Quote]] | None = None,
    ) -> None:
        """`coins`: a fixed list, or a CoinList whose "top:N" coins come from `ranking` (else from the last
        snapshot's `top`, so a restart during an outage keeps the list). `live`: the pairs the exchange
        streams carry now, with their gated quotes (LiveQuotes.covered); the round takes those and asks
        providers only for the rest."""
        self._providers = list(providers)
        self._history = history
        self._store = store
        self._list = coins if isinstance(coins, CoinList) else CoinList(coins)
        self._ranking = ranking
        self._live = live
        self._top: tuple[Coin, ...] = ()
        self._coins = [coin for coin in self._list.configured if not coin.is_static]
        self._currencies = list(currencies)
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._stale_after = stale_after
        self._gate = Gate(self._coins, max_jump_pct=max_jump_pct, stale_after=stale_after)
        self._manners: dict[str, Manners] = {}
        for provider in self._providers:
            session = provider.session
            self._manners[provider.name] = (
                session.manners
                if session is not None
                else Manners(
                    provider.name,
                    interval=interval,
                    random_fraction=random_fraction,
                    monotonic=monotonic,
                    wall=lambda: clock().timestamp(),
                )
            )
        self._reserve_budgets()
        self._sources: dict[str, str] = {}
        self._missing_logged: frozenset[str] = frozenset()
        self._offline_logged = False
        self.rounds = 0

    def _reserve_budgets(self) -> None:
        """What the price rounds need of each budget window (for the coins polled now): side work leaves it."""
        for provider in self._providers:
            session = provider.session
            if session is not None and session.budget is not None:
                supported = sum(1 for coin in self._coins if provider.supports(coin))
                per_round = math.ceil(supported / provider.batch_size) if supported else 0
                session.reserve = session.budget.reserve_for(per_round, self._interval)

    def _follow_ranking(self, previous: Snapshot | None) -> None:
        """Poll the "top:N" coins of the latest ranking (or of the last snapshot until one arrives)."""
        if not self._list.dynamic:
            return
        latest = self._ranking.latest if self._ranking is not None else None
        top = latest if latest is not None else (previous.top if previous is not None else ())
        if top == self._top:
            return
        self._top = top
        self._coins = [coin for coin in self._list.resolve(top) if not coin.is_static]
        self._reserve_budgets()
        if self._history is not None:
            self._history.follow([coin.symbol for coin in self._coins])

    @property
    def coins(self) -> tuple[Coin, ...]:
        """The coins polled now, static ones included, in display order."""
        return self._list.resolve(self._top)

    def manners(self, name: str) -> Manners:
        return self._manners[name]

    def restore_manners(self, saved: Mapping[str, SavedManners], *, instances: int = 1) -> None:
        """Take over holds and budget use saved by an earlier run or another instance (a lease handover).

        `instances`: how many instances poll on their own (Redis away) and so split each budget; 1 = all of it.
        """
        for provider in self._providers:
            session = provider.session
            if session is None:
                continue
            if provider.name in saved:
                session.restore(saved[provider.name])
            if session.budget is not None:
                session.budget.share(instances)

    def saved_manners(self) -> dict[str, SavedManners]:
        return {p.name: p.session.saved() for p in self._providers if p.session is not None}

    async def run_forever(self) -> None:
        """Poll now, then every interval on the monotonic clock; only cancellation ends it."""
        due = self._monotonic()
        while True:
            try:
                await self.run_once()
            except Exception:
                logger.exception("poll round failed unexpectedly; keeping the last snapshot")
            due = next_start(due, self._interval, self._monotonic())
            await self._sleep(max(due - self._monotonic(), 0.0))

    async def run_once(self) -> Snapshot:
        """One price round; while it runs, and until the next one is due, side requests leave the sessions'
        pacing slots to it (UpstreamSession.in_round, next_round)."""
        started = self._monotonic()
        sessions = [p.session for p in self._providers if p.session is not None]
        for session in sessions:
            session.in_round = True
        try:
            return await self._round(started)
        finally:
            for session in sessions:
                session.in_round = False
                session.next_round = started + self._interval

    async def _round(self, started: float) -> Snapshot:
        now = self._clock()
        previous = self._store.current
        self._follow_ranking(previous)
        wanted: set[Pair] = {(coin.symbol, cur) for coin in self._coins for cur in self._currencies}
        quotes = {pair: quote for pair, quote in (previous.quotes.items() if previous else ()) if pair in wanted}
        self._gate.begin_round(quotes.values())
        missing = set(wanted)
        late: dict[Pair, Quote] = {}  # stale on arrival: kept only if no provider has a newer quote
        accepted: list[Quote] = []
        self._take_live(quotes, accepted, missing)
        for provider in self._providers:
            manners = self._manners[provider.name]
            coins = [
                c
                for c in self._coins
                if provider.supports(c) and any((c.symbol, cur) in missing for cur in self._currencies)
            ]
            if not coins or not manners.may_ask():
                continue
            currencies = [cur for cur in self._currencies if any((c.symbol, cur) in missing for c in coins)]
            got = await self._fetch(provider, manners, coins, currencies)
            if got is None:
                continue
            # A provider's hourly market data (rank, changes) joins its quotes here while fresh (market.py).
            asked = [with_market(q, now) for q in got if (q.symbol, q.currency) in missing]
            for quote in self._gate.screen(asked, now):
                pair = (quote.symbol, quote.currency)
                if pair not in missing:
                    continue  # the same pair twice in one answer: the first one counts
                if self._arrived_stale(quote, now):
                    if pair not in late or _newer(quote, late[pair]):
                        late[pair] = quote
                    continue  # counts as missing: the next provider is asked
                held = quotes.get(pair)
                if held is not None and _newer(held, quote):
                    missing.discard(pair)
                    continue  # a fallback's older price never replaces a newer one we hold
                admitted = self._gate.admit(quote, held, now)
                if admitted is None:
                    continue  # an unconfirmed jump: the last good price stays; the next provider may confirm
                missing.discard(pair)
                quotes[pair] = admitted
                accepted.append(admitted)
        for pair, quote in sorted(late.items()):
            held = quotes.get(pair)
            if pair not in missing or (held is not None and not _newer(quote, held)):
                continue
            admitted = self._gate.admit(quote, held, now)
            if admitted is not None:  # old, but the newest there is: kept, and it shows as stale
                quotes[pair] = admitted
                accepted.append(admitted)
        self._convert_tokens(quotes, accepted, missing, now)
        self._log_sources(quotes, wanted - missing)
        self._log_missing(missing - self._gate.holding())
        self._log_offline()
        statuses = {name: manners.status() for name, manners in self._manners.items()}
        sparklines = previous.history if previous else {}
        if self._history is None:
            sparklines = record(sparklines, accepted, self._currencies[0])
        else:  # every accepted quote into the store; changes a provider left out and sparklines from it
            for quote in await self._history.record(accepted, now):
                quotes[(quote.symbol, quote.currency)] = quote
            sparklines = await self._history.sparklines(sparklines, now)
        snapshot = Snapshot(
            now,
            MappingProxyType(quotes),
            MappingProxyType(statuses),
            history=sparklines,
            icons=_icons(previous.icons if previous else {}, accepted),
            manners=MappingProxyType(self.saved_manners()),
            top=self._top,
        )
        await self._store.put(snapshot)
        self.rounds += 1
        logger.debug(
            "round %d: %d of %d prices fresh (%s), %.3f s",
            self.rounds,
            len(wanted) - len(missing),
            len(wanted),
            ", ".join(f"{name} {status.state}" for name, status in statuses.items()),
            self._monotonic() - started,
        )
        return snapshot

    def _take_live(self, quotes: dict[Pair, Quote], accepted: list[Quote], missing: set[Pair]) -> None:
        """The pairs a stream carries (already gated by the live hub) join the round as they are; a stream
        that went down or quiet carries none, so its coins are asked of the providers in this round."""
        if self._live is None:
            return
        for pair, quote in self._live().items():
            if pair not in missing:
                continue
            missing.discard(pair)
            held = quotes.get(pair)
            if held is None or not _newer(held, quote):
                quotes[pair] = quote
                accepted.append(quote)

    def _convert_tokens(
        self, quotes: dict[Pair, Quote], accepted: list[Quote], missing: set[Pair], now: datetime
    ) -> None:
        """Price tokens in currencies other than usd through BTC's prices of this round (tokens.py), gated."""
        fresh = {(q.symbol, q.currency): q for q in accepted}
        for quote in self._gate.screen(converted(self._coins, fresh, missing), now):
            pair = (quote.symbol, quote.currency)
            admitted = self._gate.admit(quote, quotes.get(pair), now)
            if admitted is not None:
                missing.discard(pair)
                quotes[pair] = admitted
                accepted.append(admitted)

    async def _fetch(
        self, provider: Provider, manners: Manners, coins: list[Coin], currencies: list[str]
    ) -> list[Quote] | None:
        """One provider's quotes, within its share of the round's time; None (recorded) on failure."""
        session = provider.session
        if session is not None and self._timeout is not None:
            session.deadline = self._monotonic() + self._timeout
        try:
            got = await provider.fetch(coins, currencies)
        except ProviderError as err:
            manners.failed(err)
            return None
        except Exception as err:
            if manners.failures == 0:
                logger.exception("provider %s failed unexpectedly", provider.name)
            manners.failed(ProviderError(provider.name, f"unexpected {type(err).__name__}: {err}"))
            return None
        finally:
            if session is not None:
                session.deadline = None
        manners.succeeded()
        return got

    def _arrived_stale(self, quote: Quote, now: datetime) -> bool:
        """Older than stale_after already when it arrived: as good as missing while another provider may be newer."""
        return (
            self._stale_after is not None
            and quote.updated_at is not None
            and (now - quote.updated_at).total_seconds() > self._stale_after
        )

    def _log_sources(self, quotes: dict[Pair, Quote], fresh: set[Pair]) -> None:
        """One line when coins move to another provider (failover) or back."""
        sources = {symbol: quotes[(symbol, cur)].source for symbol, cur in sorted(fresh)}
        moved: dict[str, list[str]] = {}
        for symbol, source in sources.items():
            before = self._sources.get(symbol)
            if before is not None and before != source:
                moved.setdefault(f"{before} -> {source}", []).append(symbol)
        self._sources.update(sources)
        for change, symbols in moved.items():
            logger.info("failover: %s now from %s", ", ".join(symbols), change)

    def _log_missing(self, missing: set[Pair]) -> None:
        symbols = frozenset(symbol for symbol, _ in missing)
        if symbols == self._missing_logged:
            return
        if symbols:
            logger.warning("no fresh price this round for %s", ", ".join(sorted(symbols)))
        else:
            logger.info("fresh prices for every coin again")
        self._missing_logged = symbols

    def _log_offline(self) -> None:
        """Once per outage, when every provider asked failed to connect (each named its host as it failed)."""
        asked = [m for m in self._manners.values() if m.asked]
        offline = bool(asked) and all(m.failures and unreachable_host(m.last_error or "") for m in asked)
        if offline and not self._offline_logged:
            logger.warning(OFFLINE_HINT)
        self._offline_logged = offline


def next_start(due: float, interval: float, now: float) -> float:
    """The next round's start after the one `due`: on the interval's grid, skipping starts already missed."""
    due += interval
    if due <= now:
        due += math.ceil((now - due) / interval) * interval
    return due


def _icons(known: Mapping[str, str], quotes: Iterable[Quote]) -> Mapping[str, str]:
    """Upstream icon URLs by symbol, for the icon cache to download once."""
    icons = dict(known)
    for quote in quotes:
        if quote.icon_url and quote.icon_url.startswith(("https://", "http://")) and len(quote.icon_url) <= 500:
            icons.setdefault(quote.symbol, quote.icon_url)
    return MappingProxyType(icons)


def _newer(held: Quote, fresh: Quote) -> bool:
    return held.updated_at is not None and fresh.updated_at is not None and held.updated_at > fresh.updated_at
