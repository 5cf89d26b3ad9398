"""SqliteHistory: the default history store, one SQLite file (`history.path`).

Schema version 1 (in PRAGMA user_version), both data tables WITHOUT ROWID:

    series(id, symbol, currency)                         one row per coin and currency
    ticks(at, series, price)                             the raw tier, key (at, series)
    buckets(tier, start, series, open, high, low, close, first_s, last_s)
                                                         tier = its length in seconds, key (tier, start, series);
                                                         index buckets_by_series (series, tier, start)

The tiers and their ages are rollup.py's. `append` is one transaction: each new quote (INSERT OR IGNORE
into ticks) is upserted into its bucket of every tier with rollup.merge's rule written in SQL, so there
is nothing to roll up later; `prune` deletes what is past its tier's age, forgets removed coins and
hands freed pages back (auto_vacuum = INCREMENTAL). Both tables are keyed by time first, so a round's
rows of every coin lie together and a round rewrites a few pages, not a few per coin (the index gains
one entry per coin only when a bucket begins): measured, 24 KB of WAL a round at 11 coins and 315 KB at
250 (keyed by coin first: 100 KB and 2.7 MB). Reads of one coin go through the index; the raw tier is
searched by time, within an hour of `at`.

Size (bench/history_store.py, a quote a minute, every bucket filled): 1.13 MB per coin and currency once
a year is recorded (ticks 48 h, 5-minute buckets 14 days, hourly a year, daily), then 27 KB more a year;
the tests hold a year and a half to 1.3 MB.

stdlib sqlite3, off the event loop: one connection, used by one worker thread at a time (anyio.to_thread
under a lock), WAL journal, synchronous = NORMAL. Every sqlite3 failure is raised as HistoryError.

Migrations: MIGRATIONS[v] brings a file from version v to v + 1, in one transaction with the new
user_version. Version 0 is a file without our tables (new, or written by a ticker before this store):
1 creates them and imports, once, the hourly points the snapshot file kept until then (its "history"
key, in the default currency), so a chart starts with the week the old sparkline had.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio

from ticker.exceptions import HistoryError
from ticker.history import rollup
from ticker.history.base import Tick
from ticker.history.rollup import TIERS, Bucket, Tier
from ticker.models import Candle

logger = logging.getLogger(__name__)

T = TypeVar("T")
SCHEMA_VERSION = 1
RAW_REACH = 3600.0  # price_at looks for raw quotes at most this far from `at` (buckets reach further)
Legacy = Callable[[], Sequence[Tick]]  # the points to import when a file is created (version 0 -> 1)

UPSERT = """
INSERT INTO buckets (tier, start, series, open, high, low, close, first_s, last_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tier, start, series) DO UPDATE SET
    open = CASE WHEN excluded.first_s < first_s THEN excluded.open ELSE open END,
    first_s = MIN(first_s, excluded.first_s),
    high = MAX(high, excluded.high),
    low = MIN(low, excluded.low),
    close = CASE WHEN excluded.last_s >= last_s THEN excluded.close ELSE close END,
    last_s = MAX(last_s, excluded.last_s)
"""
COLUMNS = "start, open, high, low, close, first_s, last_s"
NEAREST_BEFORE = "SELECT at, price FROM ticks WHERE at <= ? AND at >= ? AND series = ? ORDER BY at DESC LIMIT 1"
NEAREST_AFTER = "SELECT at, price FROM ticks WHERE at > ? AND at <= ? AND series = ? ORDER BY at LIMIT 1"


def _create_v1(db: Database, legacy: Legacy | None) -> None:
    for statement in (
        """CREATE TABLE series (
            id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, currency TEXT NOT NULL, UNIQUE (symbol, currency))""",
        """CREATE TABLE ticks (
            at REAL NOT NULL, series INTEGER NOT NULL, price REAL NOT NULL, PRIMARY KEY (at, series)
        ) WITHOUT ROWID""",
        """CREATE TABLE buckets (
            tier INTEGER NOT NULL, start INTEGER NOT NULL, series INTEGER NOT NULL,
            open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
            first_s INTEGER NOT NULL, last_s INTEGER NOT NULL, PRIMARY KEY (tier, start, series)
        ) WITHOUT ROWID""",
        "CREATE INDEX buckets_by_series ON buckets (series, tier, start)",
    ):
        db.conn.execute(statement)  # not executescript: it would commit the migration's transaction
    if legacy is not None:
        ticks = legacy()
        db.write_ticks(ticks)
        if ticks:
            logger.info("history: imported %d hourly points from the snapshot file", len(ticks))


MIGRATIONS: dict[int, Callable[[Database, Legacy | None], None]] = {0: _create_v1}


class Database:
    """The synchronous side: one connection, called from one thread at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._ids: dict[tuple[str, str], int] = {}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def migrate(self, path: Path, legacy: Legacy | None) -> None:
        if self._version() == 0 and self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise HistoryError(f"{path}: an SQLite file ticker did not write; give history.path another name")
        self.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a file without tables
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        while True:
            with self.transaction():
                version = self._version()  # read again inside: another process may have migrated meanwhile
                if version > SCHEMA_VERSION:
                    raise HistoryError(
                        f"{path}: history schema {version} was written by a newer ticker; this one reads "
                        f"up to {SCHEMA_VERSION}"
                    )
                if version == SCHEMA_VERSION:
                    return
                MIGRATIONS[version](self, legacy)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
                logger.info("history: %s migrated to schema %d", path, version + 1)

    def _version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def series_id(self, symbol: str, currency: str, *, create: bool) -> int | None:
        key = (symbol, currency)
        if key not in self._ids:
            row = self.conn.execute("SELECT id FROM series WHERE symbol = ? AND currency = ?", key).fetchone()
            if row is None and not create:
                return None
            if row is None:
                row = (self.conn.execute("INSERT INTO series (symbol, currency) VALUES (?, ?)", key).lastrowid,)
            self._ids[key] = int(row[0])
        return self._ids[key]

    # ----------------------------------------------------------------- writes

    def write_ticks(self, ticks: Sequence[Tick]) -> None:
        """Inside a transaction: new quotes into ticks and their buckets."""
        upserts: list[tuple[Any, ...]] = []
        for tick in ticks:
            if not tick.valid:
                continue
            sid = self.series_id(tick.symbol, tick.currency, create=True)
            cursor = self.conn.execute("INSERT OR IGNORE INTO ticks VALUES (?, ?, ?)", (tick.at, sid, tick.price))
            if cursor.rowcount == 1:  # not a duplicate
                upserts += [_row(sid, t, rollup.tick_bucket(tick.at, tick.price, t.seconds)) for t in TIERS]
        self.conn.executemany(UPSERT, upserts)

    def append(self, ticks: Sequence[Tick]) -> None:
        with self.transaction():
            self.write_ticks(ticks)

    def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        with self.transaction():
            sid = self.series_id(symbol, currency, create=False)
            kept = rollup.backfill(candles, None if sid is None else self._earliest(sid))
            if kept:
                sid = self.series_id(symbol, currency, create=True)
                rows = [_row(sid, tier, b) for c in kept for tier, b in rollup.candle_buckets(c)]
                self.conn.executemany(UPSERT, rows)
        return len(kept)

    def prune(self, keep: Collection[str], now: float) -> None:
        with self.transaction():
            for (symbol, _currency), sid in self._all_series().items():
                if symbol in keep:
                    continue
                newest = self._buckets("start >= 0 ORDER BY start DESC LIMIT 1", sid, TIERS[-1])
                if not newest or newest[0].close_at <= now - rollup.FORGET_AFTER:
                    for sql in ("DELETE FROM ticks WHERE series = ?", "DELETE FROM buckets WHERE series = ?"):
                        self.conn.execute(sql, (sid,))
                    self.conn.execute("DELETE FROM series WHERE id = ?", (sid,))
            self.conn.execute("DELETE FROM ticks WHERE at < ?", (now - rollup.RAW_KEEP,))
            for tier in TIERS:
                cutoff = rollup.expired(tier, now)
                if cutoff is not None:
                    self.conn.execute("DELETE FROM buckets WHERE tier = ? AND start < ?", (tier.seconds, cutoff))
            self._ids.clear()
        self.conn.execute("PRAGMA incremental_vacuum")

    def _all_series(self) -> dict[tuple[str, str], int]:
        return {(s, c): int(i) for i, s, c in self.conn.execute("SELECT id, symbol, currency FROM series")}

    # ----------------------------------------------------------------- reads

    def candles(self, symbol: str, currency: str, range_name: str, now: float) -> list[Candle]:
        sid = self.series_id(symbol, currency, create=False)
        chart = rollup.plan(range_name, now, None if sid is None else self._earliest(sid))
        if sid is None or chart is None:
            return []
        rows = {
            tier.seconds: self._buckets("start > ? AND start <= ? ORDER BY start", sid, tier, chart.after(tier), now)
            for tier in chart.tiers
        }
        return rollup.assemble(chart, rows)

    def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        sid = self.series_id(symbol, currency, create=False)
        if sid is None or not math.isfinite(at):
            return None
        points: list[tuple[float, float]] = []
        reach = min(tolerance, RAW_REACH)  # ticks are keyed by time: look for them near `at` only
        for sql, bound in ((NEAREST_BEFORE, at - reach), (NEAREST_AFTER, at + reach)):
            points += [(float(a), float(p)) for a, p in self.conn.execute(sql, (at, bound, sid))]
        for tier in TIERS:
            # The bucket holding `at`, the one before (its close may be nearer) and the one after.
            for where in ("start <= ? ORDER BY start DESC LIMIT 2", "start > ? ORDER BY start LIMIT 1"):
                points += [(b.close_at, b.close) for b in self._buckets(where, sid, tier, at)]
        return rollup.nearest(points, at, tolerance)

    def earliest(self, symbol: str, currency: str) -> float | None:
        sid = self.series_id(symbol, currency, create=False)
        return None if sid is None else self._earliest(sid)

    def _earliest(self, sid: int) -> float | None:
        first = self._buckets("start >= 0 ORDER BY start LIMIT 1", sid, TIERS[-1])  # every point is in a day
        return float(first[0].start + first[0].first) if first else None

    def _buckets(self, where: str, sid: int, tier: Tier, *args: float) -> list[Bucket]:
        sql = f"SELECT {COLUMNS} FROM buckets INDEXED BY buckets_by_series WHERE series = ? AND tier = ? AND {where}"
        return [Bucket(*row) for row in self.conn.execute(sql, (sid, tier.seconds, *args))]


def _row(sid: int | None, tier: Tier, b: Bucket) -> tuple[Any, ...]:
    return (tier.seconds, b.start, sid, b.open, b.high, b.low, b.close, b.first, b.last)


class SqliteHistory:
    """The history store in one SQLite file; open it with `await SqliteHistory.open(path)`."""

    def __init__(self, db: Database, path: Path) -> None:
        self._db: Database | None = db
        self.path = path
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path, *, legacy: Legacy | None = None) -> SqliteHistory:
        """Open (or create and migrate) the file; `legacy` gives the points to import into a new file.
        Raises HistoryError naming the file when it cannot be used."""
        db = await anyio.to_thread.run_sync(_connect, path, legacy)
        return cls(db, path)

    async def append(self, ticks: Sequence[Tick]) -> None:
        await self._run(lambda db: db.append(ticks))

    async def add_candles(self, symbol: str, currency: str, candles: Sequence[Candle]) -> int:
        return await self._run(lambda db: db.add_candles(symbol, currency, candles))

    async def candles(self, symbol: str, currency: str, range: str, now: float) -> list[Candle]:
        return await self._run(lambda db: db.candles(symbol, currency, range, now))

    async def price_at(self, symbol: str, currency: str, at: float, tolerance: float) -> float | None:
        return await self._run(lambda db: db.price_at(symbol, currency, at, tolerance))

    async def earliest(self, symbol: str, currency: str) -> float | None:
        return await self._run(lambda db: db.earliest(symbol, currency))

    async def prune(self, keep: Collection[str], now: float) -> None:
        await self._run(lambda db: db.prune(keep, now))

    async def close(self) -> None:
        async with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                await anyio.to_thread.run_sync(db.conn.close)

    async def _run(self, call: Callable[[Database], T]) -> T:
        async with self._lock:
            db = self._db
            if db is None:
                raise HistoryError(f"{self.path}: the history store is closed")
            try:
                return await anyio.to_thread.run_sync(call, db)
            except sqlite3.Error as err:
                raise HistoryError(f"{self.path}: {err}") from err


def _connect(path: Path, legacy: Legacy | None) -> Database:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as err:
        raise HistoryError(f"{path}: cannot open the history file ({err})") from err
    try:
        db = Database(conn)
        db.migrate(path, legacy)
        return db
    except sqlite3.DatabaseError as err:
        conn.close()
        raise HistoryError(f"{path}: cannot use the history file ({err})") from err
    except BaseException:
        conn.close()
        raise


def legacy_snapshot_points(snapshot_path: Path | None, currency: str) -> Legacy:
    """The hourly (hour, price) points of the snapshot file's "history" key, as ticks in `currency` (the
    default currency they were recorded in); damaged entries are left out, a missing file gives none."""

    def read() -> list[Tick]:
        if snapshot_path is None:
            return []
        try:
            history = json.loads(snapshot_path.read_bytes()).get("history", {})
        except (OSError, ValueError, AttributeError):
            return []
        ticks = []
        for symbol, points in history.items() if isinstance(history, dict) else ():
            for point in points if isinstance(points, list) else ():
                match point:
                    case [int(hour), int() | float() as price] if isinstance(symbol, str):
                        ticks.append(Tick(symbol, currency, float(hour * 3600), float(price)))
        return ticks

    return read
