"""One exchange stream kept alive: connect, subscribe, read ticks into the hub, and replace the connection
when it drops, goes silent or sends nonsense.

`StreamConnection` runs one `ExchangeFeed` (feed.py) for a set of pairs (the stream's pair name -> our
symbol) over `websockets.asyncio.client.connect`, with WebSocket pings every 20 s (a dead peer is noticed
within about 40 s), a `feed.silence_seconds` deadline on frames, and `feed.ping()` every
`feed.ping_seconds`. Every frame goes through `feed.parse`; ticks go to `LiveQuotes.apply` (synchronous and
cheap: nothing here waits on a reader).

The stream is "up" once a connection carries its first `Subscribed` or `Ticks` (not at TCP connect), and
"down" with a short reason on any loss: the close code and reason, the handshake's HTTP status, silence,
a malformed frame, a refused subscription, "stopped". Logs: one line per change (WARNING down, INFO up);
during a long outage no line per attempt, only "still down after N attempts" at most every 10 minutes.

Waits between connections: full-jitter exponential backoff (uniform in [0, min(cap, base * 2**n)), base
1 s, cap 60 s, n the failures in a row; n starts again after a connection stayed up 60 s), raised to a
floor where the exchange said more:

- a refused handshake's `Retry-After` (delta-seconds or an HTTP date; 429 and 418 are Binance's "too many
  connections" and IP ban, and Cloudflare's in front of Kraken and Coinbase), capped at 15 min; a 429
  without one waits at least 60 s, a 418 5 min. Other statuses (5xx, 403) without it: backoff.
- `FeedError.retry_after` (the feed's reading of an exchange error, e.g. Kraken v2's rate-limit errors):
  honoured, capped at 15 min.
- close 1013 (try again later): at least 30 s. Close 1008 (policy violation; how Binance and Coinbase end
  a client that breaks a limit, e.g. Coinbase's "no subscribe within 5 s" or a slow consumer): at least
  10 s, and the failure count grows, so repeats back off to the cap (Binance bans IPs that keep getting
  disconnected). Close 1001 (going away: Binance's 24 h connection lifetime, server restarts) and 1012
  (service restart): plain backoff, which after a long-lived connection is under a second.
- a connection that ends within 60 s of opening counts as a failure (backoff grows), so an exchange that
  accepts and then drops us at once is not hammered.

A `Refused(pair)` drops that pair for good (logged once; the poller serves its coin); the others go on.
When no pair is left the stream ends ("no pair accepted"). `Refused(None)` replaces the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ticker import __version__
from ticker.live.feed import ExchangeFeed, FeedError, Heartbeat, Refused, Subscribed, Ticks
from ticker.live.hub import LiveQuotes, StreamState
from ticker.models import utcnow
from ticker.providers.session import retry_after_seconds

log = logging.getLogger(__name__)

USER_AGENT = f"ticker/{__version__} (self-hosted price widget)"
BACKOFF_BASE = 1.0  # seconds
BACKOFF_CAP = 60.0
STABLE_AFTER = 60.0  # a connection up this long resets the backoff
RETRY_AFTER_CAP = 900.0  # the longest an exchange's Retry-After or error may hold us
QUIET_LOG_SECONDS = 600.0  # "still down" at most this often
QUIET_UP_SECONDS = 5.0  # see _stream: a URL-subscribed stream open this long without an error is up
MAX_FRAME_BYTES = 1 << 20  # a ticker frame is a few kB; a snapshot of many pairs well under this
# Floors for statuses and close codes that ask us to wait (see the module docstring).
STATUS_FLOOR = {429: 60.0, 418: 300.0}
CLOSE_FLOOR = {1013: 30.0, 1008: 10.0}


def backoff_delay(
    failures: int, rand: Callable[[], float], base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP
) -> float:
    """Full-jitter backoff in seconds: uniform in [0, min(cap, base * 2**failures)); `rand()` in [0, 1)."""
    ceiling = min(cap, base * 2.0 ** min(failures, 64))
    return rand() * ceiling


@dataclass(frozen=True)
class _Loss:
    """How one connection ended: a short reason, and the least wait the exchange asked for (seconds)."""

    reason: str
    floor: float = 0.0
    final: bool = False  # nothing left to stream: do not reconnect


class _Stop(Exception):
    pass


class StreamConnection:
    """Keeps one exchange stream connected and feeding `hub` until `stop()`.

    `feed_factory()` makes a fresh feed for each connection. `url`: the exchange's base URL (the feed may
    add the pairs). `pairs`: the stream's pair name -> our coin symbol. `clock` gives UTC times (states,
    `received`), `monotonic` seconds (uptime, log throttling), `sleep` waits between connections, and
    `random` ([0, 1)) the backoff's jitter.
    """

    def __init__(
        self,
        feed_factory: Callable[[], ExchangeFeed],
        url: str,
        pairs: Mapping[str, str],
        hub: LiveQuotes,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        user_agent: str = USER_AGENT,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        stable_after: float = STABLE_AFTER,
        open_timeout: float = 10.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
    ) -> None:
        self._factory = feed_factory
        self._url = url
        self._pairs = dict(pairs)
        self._hub = hub
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._random = random
        self._user_agent = user_agent
        self._base = backoff_base
        self._cap = backoff_cap
        self._stable_after = stable_after
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._name = feed_factory().name
        self._state: StreamState | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.failures = 0  # failed connections in a row
        self.attempts = 0  # connections tried, in all
        self.last_wait: float | None = None  # the last wait between connections (seconds)
        self.subscribed: set[str] = set()  # the pairs the exchange confirmed on the current connection

    @property
    def name(self) -> str:
        return self._name

    @property
    def pairs(self) -> Mapping[str, str]:
        """The pairs still streamed (refused ones left out)."""
        return self._pairs

    def stop(self) -> None:
        """End `run_forever` (within a second: it closes the socket with 1001 "going away" and a short timeout)
        and mark the stream down ("stopped"). Safe to call from the event loop's thread at any time, also before
        it starts."""
        self._stopping = True
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()

    async def run_forever(self) -> None:
        """Connect, stream and reconnect until `stop()` (or cancellation, which also marks the stream down)."""
        self._task = asyncio.current_task()
        try:
            await self._loop()
        except asyncio.CancelledError:
            self._mark_stopped()
            if not self._stopping:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            self._task = None
        if self._stopping:
            self._mark_stopped()

    # -- the loop -------------------------------------------------------------------------------

    async def _loop(self) -> None:
        self._set(StreamState("down", self._clock(), self._coins(), "connecting"))
        quiet_until = 0.0
        while not self._stopping:
            feed = self._factory()
            feed.reset()
            self.subscribed = set()
            self.attempts += 1
            started = self._monotonic()
            try:
                loss, was_up = await self._connection(feed)
            except Exception as err:  # a bug in a feed or the hub: logged, and the stream carries on
                if not self._in_outage():
                    log.exception("stream %s failed", self._name)
                loss, was_up = _Loss(f"internal error: {type(err).__name__}"), False
            if self._stopping:
                return
            if was_up and self._monotonic() - started >= self._stable_after:
                self.failures = 0
            if self._in_outage():
                assert self._state is not None
                self._set(StreamState("down", self._state.since, self._coins(), loss.reason))
                if self._monotonic() >= quiet_until:
                    log.warning(
                        "stream %s still down after %d attempts: %s", self._name, self.failures + 1, loss.reason
                    )
                    quiet_until = self._monotonic() + QUIET_LOG_SECONDS
            else:
                log.warning("stream %s down: %s", self._name, loss.reason)
                self._set(StreamState("down", self._clock(), self._coins(), loss.reason))
                quiet_until = self._monotonic() + QUIET_LOG_SECONDS
            if loss.final:
                return
            wait = max(loss.floor, backoff_delay(self.failures, self._random, self._base, self._cap))
            self.failures += 1
            self.last_wait = wait
            await self._sleep(wait)

    def _in_outage(self) -> bool:
        """Down after a failed connection (not up, not just started)."""
        return self._state is not None and self._state.state == "down" and self._state.reason != "connecting"

    async def _connection(self, feed: ExchangeFeed) -> tuple[_Loss, bool]:
        """One connection from handshake to loss: how it ended, and whether it was ever up."""
        up = False
        try:
            async with connect(
                feed.url(self._url, list(self._pairs)),
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                ping_timeout=self._ping_timeout,
                close_timeout=0.5,
                max_size=MAX_FRAME_BYTES,
                max_queue=64,
                user_agent_header=self._user_agent,
            ) as ws:
                try:
                    loss = await self._stream(ws, feed)
                except asyncio.CancelledError:
                    await _going_away(ws)
                    raise
                up = loss[1]
                with contextlib.suppress(Exception):
                    await ws.close(1000, "replaced")
                return loss
        except InvalidStatus as err:
            status = err.response.status_code
            asked = retry_after_seconds(err.response.headers.get("Retry-After"), now=self._clock())
            floor = min(asked, RETRY_AFTER_CAP) if asked is not None else STATUS_FLOOR.get(status, 0.0)
            return _Loss(f"handshake refused: HTTP {status}", floor), False
        except ConnectionClosed as err:
            return _closed(err), up
        except (InvalidURI, InvalidHandshake) as err:
            return _Loss(f"handshake failed: {_short(str(err))}"), False
        except TimeoutError:
            return _Loss("connect timed out"), False
        except OSError as err:
            host = urlsplit(self._url).hostname or self._url
            return _Loss(f"connect failed: cannot reach {host} ({_short(err.strerror or str(err))})"), False

    async def _stream(self, ws: ClientConnection, feed: ExchangeFeed) -> tuple[_Loss, bool]:
        """Subscribe, then read frames until the connection must end."""
        up = False
        frames = feed.subscribe(list(self._pairs))
        for index, out in enumerate(frames):
            if index:
                await asyncio.sleep(feed.send_spacing)
            await ws.send(out)
        loop = asyncio.get_running_loop()
        last_frame = loop.time()
        next_ping = last_frame + feed.ping_seconds if feed.ping_seconds else None
        # Pairs named in the URL (Binance) are acknowledged by nothing: such a stream is up at its first good
        # frame, or once it has stayed open and error-free this long (a quiet market), never at the handshake
        # alone (a server that accepts and then sends garbage would flap up and down).
        quiet_up = None if frames else last_frame + QUIET_UP_SECONDS
        try:
            while True:
                now = loop.time()
                if quiet_up is not None and now >= quiet_up:
                    quiet_up = None
                    if not up:
                        self.subscribed.update(self._pairs)
                        up = self._mark_up()
                deadline = last_frame + feed.silence_seconds
                if now >= deadline:
                    return _Loss(f"silent for {feed.silence_seconds:g} s"), up
                if next_ping is not None and now >= next_ping:
                    ping = feed.ping()
                    if ping is not None:
                        await ws.send(ping)
                    next_ping = now + (feed.ping_seconds or 0.0)
                    continue
                wake = deadline if next_ping is None else min(deadline, next_ping)
                if quiet_up is not None:
                    wake = min(wake, quiet_up)
                try:
                    async with asyncio.timeout(wake - now):
                        frame = await ws.recv()
                except TimeoutError:
                    continue
                last_frame = loop.time()
                try:
                    events = feed.parse(frame, self._pairs, self._clock())
                except FeedError as err:
                    floor = min(err.retry_after, RETRY_AFTER_CAP) if err.retry_after is not None else 0.0
                    return _Loss(_short(err.reason), max(floor, 0.0)), up
                for event in events:
                    if isinstance(event, Ticks):
                        if not up:
                            up = self._mark_up()
                        if event.quotes:
                            self._hub.apply(event.quotes)
                    elif isinstance(event, Subscribed):
                        self.subscribed.update(event.pairs)
                        if not up:
                            up = self._mark_up()
                    elif isinstance(event, Refused):
                        if event.pair is None:
                            return _Loss(f"subscription refused: {_short(event.reason)}"), up
                        if self._refuse(event.pair, event.reason):
                            return _Loss("no pair accepted", final=True), up
                        if feed.refusal_voids_subscription:
                            return _Loss(f"{_short(event.pair)} refused; subscribing again without it"), up
                    elif isinstance(event, Heartbeat):
                        pass
        except ConnectionClosed as err:
            return _closed(err), up

    # -- states ---------------------------------------------------------------------------------

    def _refuse(self, pair: str, reason: str) -> bool:
        """Drop a refused pair (once); True when none is left."""
        symbol = self._pairs.pop(pair, None)
        if symbol is not None:
            log.warning("stream %s refused %s (%s): %s is left to the poller", self._name, pair, _short(reason), symbol)
            if self._state is not None and self._state.state == "up":
                self._set(StreamState("up", self._state.since, self._coins()))
        return not self._pairs

    def _mark_up(self) -> bool:
        again = " again" if self._in_outage() else ""
        log.info("stream %s up%s (%d coins)", self._name, again, len(self._pairs))
        self._set(StreamState("up", self._clock(), self._coins()))
        return True

    def _mark_stopped(self) -> None:
        """Down, "stopped", unless the hub shows a state this connection did not set: a follower's hub takes
        the lease holder's states from the relay as its own streams stop, and those must stay."""
        if self._state is None or self._state.reason != "stopped":
            log.info("stream %s stopped", self._name)
            since = self._state.since if self._in_outage() and self._state is not None else self._clock()
            stopped = StreamState("down", since, self._coins(), "stopped")
            if self._hub.streams.get(self._name) is self._state:
                self._set(stopped)
            else:
                self._state = stopped

    def _set(self, state: StreamState) -> None:
        self._state = state
        self._hub.set_stream(self._name, state)

    def _coins(self) -> tuple[str, ...]:
        return tuple(sorted(set(self._pairs.values())))


async def _going_away(ws: ClientConnection) -> None:
    """Close with 1001 (going away) while being cancelled (stop, shutdown): the exchange sees a proper close,
    not the 1011 (internal error) the connection's context manager sends on an exception. Shielded from the
    cancellation; bounded by the connection's close_timeout."""
    with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
        await ws.close(1001, "going away")


def _closed(err: ConnectionClosed) -> _Loss:
    """A loss from a closed connection: the exchange's close code and reason, or an abrupt drop."""
    frame = err.rcvd
    if frame is None:
        if err.sent is None:
            return _Loss("connection lost")
        return _Loss(f"closed: {err.sent.code} {_short(err.sent.reason)}".rstrip())
    reason = f"closed by exchange: {frame.code}"
    if frame.reason:
        reason += f" {_short(frame.reason)}"
    return _Loss(reason, CLOSE_FLOOR.get(frame.code, 0.0))


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
