"""Side work: metadata and icons run beside the poller, on their own schedule and time budget."""

from __future__ import annotations

import anyio
import pytest

from tests.conftest import FakeClock
from ticker.exceptions import ProviderError
from ticker.models import Coin
from ticker.side_work import METADATA_RETRY_SECONDS, SideWork

BTC = Coin("BTC", "Bitcoin", {"alpha": "bitcoin"})


class Source:
    """A provider with metadata; `outcomes` says what each refresh does (None: succeed)."""

    name = "alpha"
    batch_size = 100
    session = None
    metadata_every = 86400.0

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.asked = 0

    def supports(self, coin: Coin) -> bool:
        return True

    async def fetch(self, coins, currencies):
        return []

    async def refresh_metadata(self, coins, currency) -> None:
        self.asked += 1
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


def side_work(source: Source, clock: FakeClock, **kwargs) -> SideWork:
    return SideWork(
        [source],
        [BTC],
        "usd",
        icons=None,
        current=lambda: None,
        interval=60,
        time_budget=30,
        monotonic=clock.monotonic,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("failure", "wait"),
    [
        (ProviderError("alpha", "held for 20 s more", retry_after=20, held=True), 60),  # at least an interval
        (ProviderError("alpha", "HTTP 429", status=429, retry_after=300), 300),  # Retry-After
        (ProviderError("alpha", "budget left over by price rounds spent", retry_after=90, over_budget=True), 90),
        (ProviderError("alpha", "HTTP 500", status=500), METADATA_RETRY_SECONDS),  # anything else: an hour
    ],
)
async def test_a_refresh_that_could_not_be_done_is_tried_again_when_it_may(failure, wait):
    clock = FakeClock()
    source = Source(failure)
    work = side_work(source, clock)
    await work.run_once()
    clock.advance(wait - 1)
    await work.run_once()
    assert source.asked == 1
    clock.advance(1)
    await work.run_once()
    assert source.asked == 2


async def test_a_done_refresh_waits_its_period():
    clock = FakeClock()
    source = Source()
    work = side_work(source, clock)
    await work.run_once()
    clock.advance(86400 - 1)
    await work.run_once()
    assert source.asked == 1
    clock.advance(1)
    await work.run_once()
    assert source.asked == 2


async def test_a_source_with_no_coins_yet_is_asked_once_its_coins_arrive():
    # "top:N" before the poller's first ranked round: the list holds none of the source's coins yet. Marking
    # that pass done left rank and 1h/7d/30d changes unknown for an hour (seen in tests/test_market_e2e.py).
    clock = FakeClock()
    source = Source()
    coins: list[Coin] = [Coin("OPENVC", "OpenVoiceCoin", {"geckoterminal": "bsc:0x01"})]
    work = SideWork(
        [source],
        lambda: coins,
        "usd",
        icons=None,
        current=lambda: None,
        interval=60,
        time_budget=30,
        monotonic=clock.monotonic,
    )
    await work.run_once()
    assert source.asked == 0
    coins.append(BTC)
    clock.advance(60)
    await work.run_once()
    assert source.asked == 1


async def test_a_pass_is_cut_off_after_its_time_budget():
    class Hanging(Source):
        async def refresh_metadata(self, coins, currency) -> None:
            await anyio.sleep(10)

    work = SideWork([Hanging()], [BTC], "usd", icons=None, current=lambda: None, interval=60, time_budget=0.05)
    with anyio.fail_after(2):
        await work.run_once()
    assert work.passes == 1


async def test_only_the_instance_that_polls_does_side_work():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 4:
            raise anyio.get_cancelled_exc_class()

    source = Source()
    work = side_work(source, FakeClock(), sleep=sleep, active=lambda: False)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await work.run_forever()
    assert source.asked == 0 and slept[0] == 30  # half an interval after a round: prices go first
