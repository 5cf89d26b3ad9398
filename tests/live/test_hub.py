"""The live hub: ticks gated like polled quotes, merged over what the poller knew, owned by one stream."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import anyio
import pytest

from tests.conftest import NOW, FakeClock, snapshot_of
from ticker.live.hub import LiveQuotes, StreamState
from ticker.models import Coin, Quote, Snapshot

BTC = Coin("BTC", "Bitcoin")
ETH = Coin("ETH", "Ethereum")


def tick(symbol: str, price: float, source: str = "kraken", *, at=NOW, change: float | None = 1.0) -> Quote:
    return Quote(symbol, "usd", price, change, at, source)


def make_hub(clock: FakeClock, snapshot: Snapshot | None = None, *, interval: float = 60) -> LiveQuotes:
    hub = LiveQuotes(
        [BTC, ETH],
        preference=["kraken", "coinbase", "binance"],
        snapshot=lambda: snapshot,
        interval=interval,
        clock=clock,
        monotonic=clock.monotonic,
    )
    for name in ("kraken", "coinbase", "binance"):
        hub.set_stream(name, StreamState("up", NOW, ("BTC", "ETH")))
    return hub


def test_a_tick_changes_price_change_time_and_source_and_keeps_the_market_figures():
    clock = FakeClock()
    polled = replace(
        Quote("BTC", "usd", 90000.0, 1.0, NOW - timedelta(seconds=30), "coingecko"),
        market_cap=1.8e12,
        volume_24h=4.5e10,
        rank=1,
        change_7d_pct=3.0,
    )
    hub = make_hub(clock, snapshot_of(polled))
    changed = hub.apply([tick("BTC", 90100.5, change=1.2)])
    assert [(q.price, q.change_24h_pct, q.source, q.updated_at) for q in changed] == [(90100.5, 1.2, "kraken", NOW)]
    assert (changed[0].market_cap, changed[0].volume_24h, changed[0].rank, changed[0].change_7d_pct) == (
        1.8e12,
        4.5e10,
        1,
        3.0,
    )
    assert hub.version == 1
    assert hub.changed_since(0) == changed
    assert hub.changed_since(1) == []
    assert hub.changed_since(0, "eur") == []


def test_a_tick_that_moves_nothing_refreshes_the_time_without_a_new_version():
    clock = FakeClock()
    hub = make_hub(clock)
    hub.apply([tick("BTC", 90000.0)])
    clock.advance(5)
    assert hub.apply([tick("BTC", 90000.0, at=clock())]) == []
    assert hub.version == 1
    assert hub.latest()[("BTC", "usd")].updated_at == clock()


def test_implausible_ticks_never_reach_the_quotes():
    clock = FakeClock()
    hub = make_hub(clock)
    assert hub.apply([tick("BTC", -1.0), tick("BTC", float("nan")), tick("BTC", 5e9)]) == []
    assert hub.latest() == {}
    changed = hub.apply([tick("BTC", 90000.0, change=5e7)])  # an absurd change alone becomes unknown
    assert changed[0].price == 90000.0 and changed[0].change_24h_pct is None


def test_a_jump_one_stream_alone_reports_is_left_to_the_poller_until_another_source_settles_it():
    """A stream never confirms its own jump: while held, the pair is not carried (the poller serves it, and
    pages show the poller's price); once the poller's price agrees, the stream's ticks are taken again."""
    clock = FakeClock()
    snapshot = [snapshot_of(Quote("BTC", "usd", 90000.0, 1.0, NOW - timedelta(seconds=5), "coingecko"))]
    hub = LiveQuotes(
        [BTC], preference=["kraken"], snapshot=lambda: snapshot[0], interval=10, clock=clock, monotonic=clock.monotonic
    )
    hub.set_stream("kraken", StreamState("up", NOW, ("BTC",)))
    hub.apply([tick("BTC", 90000.0)])
    assert set(hub.covered()) == {("BTC", "usd")}
    assert hub.apply([tick("BTC", 200000.0, at=clock())]) == []  # +122 %: held
    assert hub.covered() == {}  # the poller asks the providers for BTC again
    clock.advance(11)
    assert hub.apply([tick("BTC", 201000.0, at=clock())]) == []  # a round later, the same stream: still held
    polled = snapshot_of(Quote("BTC", "usd", 90050.0, 1.0, clock(), "coingecko"))  # the poller's next round
    assert hub.newer_than(polled) == {}  # pages show the poller's price, not the stream's older one
    # The providers agree with the new level: the poller's snapshot has it, and the stream's ticks count again.
    snapshot[0] = snapshot_of(Quote("BTC", "usd", 200500.0, 1.0, clock(), "coingecko"))
    clock.advance(1)
    changed = hub.apply([tick("BTC", 201100.0, at=clock())])
    assert [q.price for q in changed] == [201100.0]
    assert set(hub.covered()) == {("BTC", "usd")}


def test_a_jump_confirmed_by_a_second_stream_is_taken_at_once():
    clock = FakeClock()
    hub = make_hub(clock)
    hub.apply([tick("BTC", 90000.0)])
    hub.set_stream("kraken", StreamState("down", NOW, ("BTC",), "dropped"))
    assert hub.apply([tick("BTC", 200000.0, "coinbase")]) == []
    assert [q.price for q in hub.apply([tick("BTC", 199000.0, "binance")])] == [200000.0]


def test_the_preferred_stream_owns_a_pair_while_it_is_up_and_ticking():
    clock = FakeClock()
    hub = make_hub(clock, interval=60)
    hub.apply([tick("BTC", 90000.0, "kraken")])
    assert hub.apply([tick("BTC", 90050.0, "binance")]) == []  # kraken has it
    assert hub.latest()[("BTC", "usd")].source == "kraken"
    hub.set_stream("kraken", StreamState("down", NOW, ("BTC",), "silent for 45 s"))
    assert [q.source for q in hub.apply([tick("BTC", 90050.0, "binance")])] == ["binance"]
    # Kraken back: it takes the pair again with its next tick.
    hub.set_stream("kraken", StreamState("up", NOW, ("BTC",)))
    assert [q.source for q in hub.apply([tick("BTC", 90020.0, "kraken")])] == ["kraken"]
    # A preferred stream that went quiet on the pair (up, no tick for an interval) leaves it to the next.
    clock.advance(61)
    assert [q.source for q in hub.apply([tick("BTC", 90070.0, "binance", at=clock())])] == ["binance"]


def test_covered_pairs_are_those_of_up_streams_that_ticked_within_an_interval():
    clock = FakeClock()
    hub = make_hub(clock, interval=60)
    hub.apply([tick("BTC", 90000.0), tick("ETH", 3000.0, "coinbase")])
    assert set(hub.covered()) == {("BTC", "usd"), ("ETH", "usd")}
    hub.set_stream("coinbase", StreamState("down", NOW, ("ETH",), "closed 1006"))
    assert set(hub.covered()) == {("BTC", "usd")}
    clock.advance(61)
    assert hub.covered() == {}
    hub.forget_streams()
    assert hub.streams == {}


def test_followers_take_the_holders_quotes_in_the_order_it_sent_them():
    """The holder's preferred stream may take a pair back from an exchange whose clock runs ahead: the
    follower shows what the holder chose, whatever the exchanges' own times say."""
    clock = FakeClock()
    hub = make_hub(clock)
    hub.accept([tick("BTC", 90100.0, "binance", at=NOW)])
    preferred = tick("BTC", 91234.5, "kraken", at=NOW - timedelta(milliseconds=300))
    hub.accept([preferred])
    assert hub.latest()[("BTC", "usd")] == preferred
    assert [q.price for q in hub.changed_since(1)] == [91234.5]


def test_newer_than_lists_what_a_page_made_from_the_snapshot_lacks():
    clock = FakeClock()
    old = Quote("BTC", "usd", 90000.0, 1.0, NOW - timedelta(seconds=30), "coingecko")
    hub = make_hub(clock, snapshot_of(old))
    hub.apply([tick("BTC", 90100.0), tick("ETH", 3000.0)])
    assert set(hub.newer_than(snapshot_of(old))) == {("BTC", "usd"), ("ETH", "usd")}
    assert hub.newer_than(snapshot_of(*hub.latest().values())) == {}


async def test_wait_for_change_wakes_readers_on_a_new_version():
    clock = FakeClock()
    hub = make_hub(clock)
    woke: list[int] = []

    async def reader() -> None:
        await hub.wait_for_change(0)
        woke.append(hub.version)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(reader)
        await anyio.sleep(0.01)
        assert woke == []
        hub.apply([tick("BTC", 90000.0)])
        with anyio.fail_after(1):
            while not woke:
                await anyio.sleep(0.001)
    assert woke == [1]


def test_stream_states_round_trip_and_bad_ones_are_refused():
    state = StreamState("down", NOW, ("BTC", "ETH"), "closed 1013 try again later")
    assert StreamState.from_dict(state.to_dict()) == state
    with pytest.raises(ValueError):
        StreamState.from_dict({"state": "sideways", "since": "2026-11-27T18:20:00Z"})


def test_a_carried_pairs_live_quote_wins_over_the_snapshot_whatever_the_exchanges_clocks_say():
    clock = FakeClock()
    binance = Quote("BTC", "usd", 90917.04, 1.0, NOW, "binance")  # the snapshot's, stamped by Binance's clock
    hub = make_hub(clock, snapshot_of(binance))
    hub.apply([tick("BTC", 91234.5, "kraken", at=NOW - timedelta(milliseconds=400))])  # Kraken's clock
    assert [q.price for q in hub.newer_than(snapshot_of(binance)).values()] == [91234.5]
    # The stream went down: the snapshot's quote (the poller's, newer) is what pages show again.
    hub.set_stream("kraken", StreamState("down", NOW, ("BTC",), "connection lost"))
    assert hub.newer_than(snapshot_of(binance)) == {}


def test_a_tick_whose_change_was_refused_shows_no_change_not_the_previous_sources():
    clock = FakeClock()
    polled = Quote("BTC", "usd", 90000.0, 1.64, NOW - timedelta(seconds=30), "coingecko")
    hub = make_hub(clock, snapshot_of(polled))
    changed = hub.apply([tick("BTC", 90100.0, change=1e9)])  # an absurd change: refused by the gate
    assert (changed[0].price, changed[0].change_24h_pct) == (90100.0, None)
