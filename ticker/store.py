"""SnapshotStore: where the poller puts each snapshot and the views find it.

The hot path never awaits anything: views read `store.current`, a plain
in-process reference. In memory mode that reference is the cache (an
aiocache memory backend beside it would only hold a second copy that no
other process can read, so none is kept), and the last good snapshot is
also written to `snapshot_path` so a restart serves the last prices at once.
Sharing between instances goes through aiocache's Redis backend
(redis_store.py).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio

from ticker.models import Snapshot

logger = logging.getLogger(__name__)


class SnapshotStore:
    def __init__(self, *, snapshot_path: Path | None = None) -> None:
        self._path = snapshot_path
        self._current: Snapshot | None = None
        self._write_failing = False
        self._changed = anyio.Event()
        self.version = 0  # bumps on every put, so readers can tell a new snapshot cheaply

    @property
    def current(self) -> Snapshot | None:
        return self._current

    async def load(self) -> Snapshot | None:
        """At start: the snapshot persisted on disk, if any."""
        return await self._load_file()

    async def put(self, snapshot: Snapshot) -> None:
        # Serialising a large snapshot (1,000 coins with a week of history) takes ~100 ms: not on the loop.
        raw = await anyio.to_thread.run_sync(snapshot.to_json)
        self._set_current(snapshot)
        await self._persist_file(raw)

    async def _load_file(self) -> Snapshot | None:
        if self._path is None:
            return None
        snapshot = await anyio.to_thread.run_sync(_read_file, self._path)
        if snapshot is not None:
            self._set_current(snapshot)
        return snapshot

    async def _persist_file(self, raw: bytes) -> None:
        if self._path is not None:
            await anyio.to_thread.run_sync(self._persist, raw)

    def _set_current(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self.version += 1
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def wait_for_change(self, seen_version: int) -> None:
        """Return once the store holds a snapshot newer than `seen_version` (at once if it already does)."""
        while self.version == seen_version:
            await self._changed.wait()

    def _persist(self, raw: bytes) -> None:
        assert self._path is not None
        try:
            write_atomically(self._path, raw)
        except OSError as err:
            if not self._write_failing:
                logger.warning("cannot write snapshot file %s: %s", self._path, err)
            self._write_failing = True
            return
        if self._write_failing:
            logger.info("snapshot file %s writable again", self._path)
        self._write_failing = False


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_file(path: Path) -> Snapshot | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        logger.warning("cannot read snapshot file %s: %s", path, err)
        return None
    return _decode(raw, str(path))


def _decode(raw: Any, where: str) -> Snapshot | None:
    try:
        return Snapshot.from_json(raw)
    except (ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring a damaged snapshot in %s: %s", where, err)
        return None
