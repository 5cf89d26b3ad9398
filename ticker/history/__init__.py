"""Price history: ticker's own series of every coin in every currency, for charts and changes over time.

- base.py: Tick, RANGES, MAX_POINTS and the HistoryStore protocol every backend follows.
- rollup.py: the resolution scheme (tiers, bucket arithmetic, exact merging, chart plans), in one place.
- sqlite.py: the default, one SQLite file; redis.py: in Redis (cache.url = redis://), for every instance;
  memory.py: in process and bounded (Redis's buffer while it is away, a demo, tests).
- sparkline.py: the hourly points kept inside the snapshot for the widget's sparklines.

`open_history(settings)` picks the backend. Backends load lazily, so importing sparkline stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ticker.config import Settings
    from ticker.history.base import HistoryStore
    from ticker.history.memory import MemoryHistory
    from ticker.history.redis import RedisHistory
    from ticker.history.sqlite import SqliteHistory

    def _every_backend_is_a_store(a: MemoryHistory, b: SqliteHistory, c: RedisHistory) -> list[HistoryStore]:
        return [a, b, c]  # mypy checks each against the protocol


async def open_history(settings: Settings, *, redis: Redis | None = None) -> HistoryStore | None:
    """The store the settings ask for, open: in Redis when cache.url is redis:// (`redis`: a client to share,
    such as the snapshot store's; else one is made and closed with the store), else the SQLite file at
    history.path (created and migrated; a new file imports the snapshot file's hourly points once), else
    None (history.path = "": history off). Raises HistoryError when the file cannot be used."""
    if settings.cache.shared:
        from ticker.history.redis import RedisHistory
        from ticker.redis_store import REDIS_TIMEOUT

        if redis is not None:
            return RedisHistory(redis, settings.cache.namespace)
        from redis.asyncio import Redis

        client = Redis.from_url(settings.cache.url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        return RedisHistory(client, settings.cache.namespace, owns_client=True)
    if settings.history.path is None:
        return None
    from ticker.history.sqlite import SqliteHistory, legacy_snapshot_points

    legacy = legacy_snapshot_points(settings.cache.snapshot_path, settings.market.default_currency)
    return await SqliteHistory.open(settings.history.path, legacy=legacy)
