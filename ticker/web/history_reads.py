"""HistoryReads: the history store as visitors' requests see it, read at most once per snapshot.

The store is async (SQLite off the event loop, Redis over the network), while responses are rendered
once per snapshot and variant and then served as bytes (response_cache.py). This sits between them:
each series and range (symbol, currency, range) is read at most once per snapshot version; requests
that want it while it is being read wait for that same read; the result is kept until the version
changes. The window of a read ends at the snapshot's time (`now`), so every instance sharing one
snapshot draws the same chart.

If a read fails, the last good read of that series is served (logged once until reads work again);
with none, Unavailable (a 503). The cache is bounded: keys are validated against the config before
they get here, and an LRU cap keeps it small besides.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ticker.history.base import HistoryStore
from ticker.models import Candle
from ticker.web.query import _
from ticker.web.response_cache import Unavailable

logger = logging.getLogger(__name__)

MAX_READS = 1024  # series x ranges kept
Key = tuple[str, str, str]  # (symbol, currency, range)
UNREADABLE = _("price history cannot be read just now")  # a catalog message: the chart's error page translates it


@dataclass(frozen=True)
class Read:
    """What one read gave: buckets oldest first, the time the window ended at (Unix seconds), and the
    snapshot version it was read for."""

    candles: tuple[Candle, ...]
    now: float
    version: int


class HistoryReads:
    """Reads of `store` for visitors: `enabled` says history is configured at all; `store` is set once it is
    open (runtime.py's lifespan; a test passes one), None before that or when opening failed."""

    def __init__(
        self,
        version: Callable[[], int],
        now: Callable[[], float],
        *,
        enabled: bool,
        store: HistoryStore | None = None,
        limit: int = MAX_READS,
    ) -> None:
        self._version = version
        self._now = now
        self.enabled = enabled
        self.store = store
        self._limit = limit
        self._cache: OrderedDict[Key, Read] = OrderedDict()
        self._pending: dict[Key, anyio.Event] = {}
        self._failing = False
        self.reads = 0  # store reads made, for tests and the benchmark

    async def candles(self, symbol: str, currency: str, range_name: str) -> Read:
        """The buckets of a range ending at the snapshot's time; raises Unavailable when the store cannot be
        read and nothing was read before."""
        key = (symbol, currency, range_name)
        while True:
            version = self._version()
            cached = self._cache.get(key)
            if cached is not None and cached.version == version:
                return cached
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()  # another request is reading it: use that read
        done = self._pending[key] = anyio.Event()
        try:
            return await self._read(key, version, cached)
        finally:
            del self._pending[key]
            done.set()

    async def _read(self, key: Key, version: int, cached: Read | None) -> Read:
        store = self.store
        if store is None:
            raise Unavailable(UNREADABLE)
        now = self._now()
        try:
            candles = await store.candles(*key, now)
        except Exception as err:  # any store failure: the last good read, else a 503, never a 500
            if not self._failing:
                logger.warning("history: cannot read %s %s %s: %s", *key, err)
            self._failing = True
            if cached is not None:
                return cached
            raise Unavailable(UNREADABLE) from err
        if self._failing:
            logger.info("history: reads work again")
        self._failing = False
        self.reads += 1
        read = Read(tuple(candles), now, version)
        self._cache[key] = read
        self._cache.move_to_end(key)
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return read
