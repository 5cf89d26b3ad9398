"""The history backends the shared behaviour tests run over: memory, SQLite, and Redis (a real redis-server, e2e)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer, require_redis_server
from ticker.history.memory import MemoryHistory
from ticker.history.redis import RedisHistory
from ticker.history.sqlite import SqliteHistory

BACKENDS = ["memory", "sqlite", pytest.param("redis", marks=pytest.mark.e2e)]


async def open_backend(kind: str, tmp_path: Path) -> tuple[Any, RedisServer | None]:
    if kind == "memory":
        return MemoryHistory(), None
    if kind == "sqlite":
        return await SqliteHistory.open(tmp_path / "history.sqlite3"), None
    require_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    return RedisHistory(Redis.from_url(server.url), "test", owns_client=True), server


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An empty history store of each backend."""
    history, server = await open_backend(request.param, tmp_path)
    yield history
    await history.close()
    if server is not None:
        server.stop()
