"""Live quotes shared through Redis: the lease holder publishes its hub's changes, followers apply them.

Only the lease holder runs the exchange streams (CONTRACT "Live"). Its relay
waits for the hub to change and publishes on a pub/sub channel, at most
`rate` messages a second (changes in between are coalesced):

    {"v": 1, "quotes": [Quote.to_dict(), ...], "streams": {name: StreamState.to_dict()}}

`streams` is the holder's full set of stream states. A message also goes out
when a state changes and every `heartbeat` seconds (a heartbeat with no
quotes), and the states are kept under `states_key` for three heartbeats
(`{"v": 1, "at": Unix seconds, "streams": {...}}`) so that a follower that
starts later knows them at once.

Followers subscribe, check every message strictly (anything else is skipped
and logged once) and hand it to their hub (`accept`, `set_stream`). With no
message for three heartbeats the holder is gone: the follower forgets the
streams rather than claim them up. A single instance (Redis away, each
instance runs its own streams) does neither. A Redis failure is logged once
through RedisHealth and retried after a short backoff; it never ends `run`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeGuard

import anyio
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ticker.lease import LeaseRole
from ticker.live.hub import LiveQuotes, StreamState
from ticker.models import Quote, utcnow
from ticker.redis_store import REDIS_FAILURES, RedisHealth

logger = logging.getLogger(__name__)

CHANNEL = "live"  # the pub/sub channel's name under the namespace: store.key(CHANNEL)
STATES_KEY = "live-streams"  # the holder's stream states: store.key(STATES_KEY)
VERSION = 1
HEARTBEAT_SECONDS = 5.0
SILENT_HEARTBEATS = 3  # no message for this many heartbeats: the holder is gone; also the states key's TTL
ROLE_CHECK_SECONDS = 0.25  # how often `run` asks for the role: a change takes effect within twice this
BACKOFF_SECONDS = (0.25, 4.0)  # first and longest wait before trying Redis again (doubling in between)
CLOSE_SECONDS = 1.0  # at most this long to close a subscription (a blackholed Redis must not hang a switch)


class BadMessage(ValueError):
    """A relay message that is not what a holder sends (short reason, safe to log)."""


class LiveRelay:
    def __init__(
        self,
        redis: Redis,
        channel: str,
        states_key: str,
        hub: LiveQuotes,
        *,
        rate: float,
        health: RedisHealth | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        """`redis`: a RedisSnapshotStore's `.redis`; `channel` and `states_key`: keys under the namespace
        (`store.key(CHANNEL)`, `store.key(STATES_KEY)`). `rate`: messages per second at most (> 0).
        `health`: the store's RedisHealth, so an outage is logged once per instance (default: our own).
        `heartbeat`: seconds between the holder's heartbeats."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._redis = redis
        self._channel = channel
        self._states_key = states_key
        self._hub = hub
        self._gap = 1.0 / rate
        self._health = health if health is not None else RedisHealth(monotonic=monotonic)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._heartbeat = heartbeat
        self._silence = SILENT_HEARTBEATS * heartbeat
        self._relayed: dict[str, StreamState] = {}  # the states a follower set in the hub from Redis
        self._last_heard = -math.inf  # monotonic time of the holder's last message (or its stored states)
        self._sent_version = 0  # the hub version the holder has published up to
        self._warned = False
        self.published = 0  # messages sent as holder
        self.skipped = 0  # messages refused as follower

    async def run(self, role: Callable[[], LeaseRole]) -> None:
        """Publish while `role()` is "holder", follow while "follower", idle while "single"; forever."""
        while True:
            current = role()
            work = {"holder": self._publish, "follower": self._follow}.get(current)
            if work is None:
                await self._sleep(ROLE_CHECK_SECONDS)
                continue
            self._sent_version = self._hub.version  # a new holder publishes what changes from now on
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._retrying, work)
                while role() == current:
                    await self._sleep(ROLE_CHECK_SECONDS)
                tasks.cancel_scope.cancel()
            if current == "follower":
                self._drop_relayed()

    # -- holder ---------------------------------------------------------------------------------

    async def _publish(self) -> None:
        """Publish the hub's changes, state changes and heartbeats until cancelled; raises on Redis failure."""
        hub = self._hub
        sent_states: dict[str, StreamState] | None = None  # None: publish and store the states at once
        last_beat = -math.inf
        while True:
            with anyio.move_on_after(min(ROLE_CHECK_SECONDS, self._heartbeat / 2)):
                await hub.wait_for_change(self._sent_version)
            streams = dict(hub.streams)
            beat_due = self._monotonic() - last_beat >= self._heartbeat
            if hub.version <= self._sent_version and streams == sent_states and not beat_due:
                continue
            current = hub.version
            quotes = hub.changed_since(self._sent_version)
            await self._redis.publish(self._channel, encode_message(quotes, streams))
            self._health.back()
            self.published += 1
            self._sent_version = current  # after a failure, the next message carries what this one had
            if streams != sent_states or beat_due:
                body = {"v": VERSION, "at": self._clock().timestamp(), "streams": _states_dict(streams)}
                ttl_ms = max(int(self._silence * 1000), 1)
                await self._redis.set(self._states_key, json.dumps(body, separators=(",", ":")), px=ttl_ms)
                sent_states, last_beat = streams, self._monotonic()
            await self._sleep(self._gap)  # at most `rate` messages a second; changes meanwhile coalesce

    # -- follower -------------------------------------------------------------------------------

    async def _follow(self) -> None:
        """Apply the holder's messages until cancelled; raises on Redis failure."""
        pubsub: PubSub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)  # before reading the key: no state change falls between
            raw = await self._redis.get(self._states_key)
            self._health.back()
            if raw is not None:
                try:
                    at, streams = decode_states(raw)
                except BadMessage as err:
                    self._bad(err)
                else:
                    stored = self._monotonic() - max(self._clock().timestamp() - at, 0.0)
                    if stored > self._last_heard:  # newer than the last message (before a Redis outage)
                        self._last_heard = stored
                        self._set_streams(streams)
            subscribed = self._monotonic()
            while True:
                if self._monotonic() - max(self._last_heard, subscribed) > self._silence:
                    return  # the holder is gone, or this subscription died unseen: forget (below), subscribe anew
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=ROLE_CHECK_SECONDS)
                if message is None or message.get("type") != "message":
                    continue
                self._last_heard = self._monotonic()
                try:
                    quotes, streams = decode_message(message.get("data"))
                except BadMessage as err:
                    self._bad(err)
                    continue
                self._set_streams(streams)
                self._hub.accept(quotes)
        finally:
            self._check_silence()  # also while Redis is away: a follower cannot vouch for streams it no longer hears
            with anyio.move_on_after(CLOSE_SECONDS, shield=True):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    def _check_silence(self) -> None:
        if self._relayed and self._monotonic() - self._last_heard > self._silence:
            logger.warning("no live message from the lease holder for %.0f s: its streams are gone", self._silence)
            self._drop_relayed()

    def _set_streams(self, streams: Mapping[str, StreamState]) -> None:
        """The holder's full set of stream states: names it no longer reports are forgotten."""
        if any(name not in streams for name in self._hub.streams):
            self._hub.forget_streams()
        for name, state in streams.items():
            self._hub.set_stream(name, state)
        self._relayed = dict(streams)

    def _drop_relayed(self) -> None:
        """Forget the holder's stream states, unless this instance's own streams have replaced one of them."""
        mine = self._hub.streams
        if set(mine) == set(self._relayed) and all(mine[name] is state for name, state in self._relayed.items()):
            self._hub.forget_streams()
        self._relayed = {}

    def _bad(self, err: BadMessage) -> None:
        self.skipped += 1
        if not self._warned:
            self._warned = True
            logger.warning("skipping a malformed live message from Redis (%s); further ones are counted", err)
        else:
            logger.debug("skipping a malformed live message from Redis (%s)", err)

    # -- both -----------------------------------------------------------------------------------

    async def _retrying(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` again when it ends; after a failure, wait a little longer each time (never raises)."""
        wait = BACKOFF_SECONDS[0]
        while True:
            started = self._monotonic()
            try:
                await work()
                wait = BACKOFF_SECONDS[0]
                continue  # it ended by itself (a silent subscription): start afresh at once
            except REDIS_FAILURES as err:
                self._health.lost(err)
            except Exception:
                logger.exception("live relay failed; trying again")
            if self._monotonic() - started > BACKOFF_SECONDS[1]:
                wait = BACKOFF_SECONDS[0]  # it ran a while: this is a new outage
            await self._sleep(wait)
            wait = min(wait * 2, BACKOFF_SECONDS[1])


# -- messages -------------------------------------------------------------------------------------


def encode_message(quotes: list[Quote], streams: Mapping[str, StreamState]) -> str:
    """The JSON text one relay message carries (see the module docstring)."""
    body = {"v": VERSION, "quotes": [q.to_dict() for q in quotes], "streams": _states_dict(streams)}
    return json.dumps(body, separators=(",", ":"))


def decode_message(raw: object) -> tuple[list[Quote], dict[str, StreamState]]:
    """The quotes and stream states of one message (bytes or text); raises BadMessage for anything else."""
    body = _json_object(raw)
    quotes = body.get("quotes")
    if not isinstance(quotes, list):
        raise BadMessage("quotes is not a list")
    return [_quote(item) for item in quotes], _states(body.get("streams"))


def decode_states(raw: object) -> tuple[float, dict[str, StreamState]]:
    """When the holder stored its stream states (Unix seconds), and the states; raises BadMessage otherwise."""
    body = _json_object(raw)
    at = body.get("at")
    if not _finite(at):
        raise BadMessage("at is not a time")
    return float(at), _states(body.get("streams"))


def _json_object(raw: object) -> dict[str, Any]:
    if not isinstance(raw, bytes | str):
        raise BadMessage("not text")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadMessage("not JSON") from None
    if not isinstance(body, dict):
        raise BadMessage("not a JSON object")
    if body.get("v") != VERSION or isinstance(body.get("v"), bool):
        raise BadMessage(f"unknown version {str(body.get('v'))[:20]!r}")
    return body


_TEXT_FIELDS = ("symbol", "currency", "source")
_NUMBER_FIELDS = ("change_24h_pct", "change_1h_pct", "change_7d_pct", "change_30d_pct", "market_cap", "volume_24h")


def _quote(item: object) -> Quote:
    """One quote as Quote.to_dict wrote it, with every field of the right type and every number finite."""
    if not isinstance(item, dict):
        raise BadMessage("a quote is not an object")
    for name in _TEXT_FIELDS:
        if not isinstance(item.get(name), str) or not item[name]:
            raise BadMessage(f"a quote's {name} is not text")
    price = item.get("price")
    if not _finite(price) or price <= 0:
        raise BadMessage(f"{item['symbol'][:20]!r}: price is not a positive number")
    for name in _NUMBER_FIELDS:
        if item.get(name) is not None and not _finite(item[name]):
            raise BadMessage(f"{item['symbol'][:20]!r}: {name} is not a number")
    rank = item.get("rank")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 1):
        raise BadMessage(f"{item['symbol'][:20]!r}: rank is not a positive whole number")
    updated = item.get("updated_at")
    if updated is not None and not isinstance(updated, str):
        raise BadMessage(f"{item['symbol'][:20]!r}: updated_at is not a time")
    try:
        return Quote.from_dict(item)
    except (ValueError, TypeError, KeyError):
        raise BadMessage(f"{item['symbol'][:20]!r}: updated_at is not a time") from None


def _states(value: object) -> dict[str, StreamState]:
    if not isinstance(value, dict):
        raise BadMessage("streams is not an object")
    states: dict[str, StreamState] = {}
    for name, data in value.items():
        if not isinstance(data, dict) or not isinstance(data.get("since"), str):
            raise BadMessage(f"stream {str(name)[:20]!r} is not a state")
        coins = data.get("coins", [])
        if not isinstance(coins, list) or not all(isinstance(c, str) for c in coins):
            raise BadMessage(f"stream {str(name)[:20]!r}: coins is not a list of symbols")
        try:
            states[name] = StreamState.from_dict(data)
        except (ValueError, KeyError, TypeError):
            raise BadMessage(f"stream {str(name)[:20]!r} is not a state") from None
    return states


def _states_dict(streams: Mapping[str, StreamState]) -> dict[str, Any]:
    return {name: state.to_dict() for name, state in streams.items()}


def _finite(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
