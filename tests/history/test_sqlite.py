"""The SQLite file: created and migrated once, reopened as it was, refused with a clear error when unusable."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from tests.conftest import settings_from
from ticker.exceptions import HistoryError
from ticker.history import open_history
from ticker.history import sqlite as sqlite_history
from ticker.history.base import Tick
from ticker.history.redis import RedisHistory
from ticker.history.rollup import DAY
from ticker.history.sqlite import SCHEMA_VERSION, SqliteHistory
from ticker.models import Candle, Snapshot

HOUR0 = 490_074  # 2025-11-27 18:00 UTC, in hours since the epoch (the old snapshot history's unit)


def old_snapshot(path, history) -> None:
    """A snapshot file as ticker wrote it before the history store: hourly (hour, price) points per symbol."""
    snapshot = Snapshot(datetime(2025, 11, 27, 18, 20, tzinfo=UTC), history=MappingProxyType(history))
    path.write_bytes(snapshot.to_json())


async def test_a_new_file_imports_the_old_snapshot_history_once(tmp_path):
    btc = tuple((HOUR0 - 167 + i, 90_000.0 + i) for i in range(168))  # the week the old sparklines had
    old_snapshot(tmp_path / "ticker-snapshot.json", {"BTC": btc, "XMR": ((HOUR0, 401.5),), "BAD": (("x", 1),)})
    settings = settings_from(tmp_path, '[market]\ncurrencies = ["eur", "usd"]\n')
    store = await open_history(settings)
    assert isinstance(store, SqliteHistory) and store.path == tmp_path / "ticker-history.sqlite3"
    now = (HOUR0 + 1) * 3600
    week = await store.candles("BTC", "eur", "7d", now)  # in the default currency, where they were recorded
    assert [(c.start, c.close) for c in week] == [(h * 3600, p) for h, p in btc]
    assert await store.price_at("XMR", "eur", HOUR0 * 3600, 0) == 401.5
    assert await store.candles("BTC", "usd", "7d", now) == []
    await store.close()

    # Reopened (even with a changed snapshot file): version 1 already, nothing imported twice.
    old_snapshot(tmp_path / "ticker-snapshot.json", {"BTC": ((HOUR0 + 1, 1.0),)})
    store = await open_history(settings)
    assert await store.candles("BTC", "eur", "7d", now) == week
    await store.close()
    with sqlite3.connect(tmp_path / "ticker-history.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_damaged_or_missing_snapshot_file_imports_nothing(tmp_path):
    (tmp_path / "ticker-snapshot.json").write_text("{not json")
    store = await open_history(settings_from(tmp_path))
    assert await store.earliest("BTC", "usd") is None
    await store.close()


async def test_a_later_schema_migrates_an_existing_file_keeping_its_data(tmp_path, monkeypatch):
    path = tmp_path / "h.sqlite3"
    store = await SqliteHistory.open(path)
    await store.append([Tick("BTC", "usd", 1_764_000_000.0, 90_917.04)])
    await store.close()

    def add_note(db, legacy):  # what a release with schema 2 would add
        db.conn.execute("CREATE TABLE notes (series INTEGER, text TEXT)")

    monkeypatch.setattr(sqlite_history, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(sqlite_history.MIGRATIONS, 1, add_note)
    store = await SqliteHistory.open(path)
    assert await store.price_at("BTC", "usd", 1_764_000_000.0, 0) == 90_917.04
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM notes").fetchone()[0] == 0


async def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "h.sqlite3"
    await (await SqliteHistory.open(path)).close()

    def broken(db, legacy):
        db.conn.execute("CREATE TABLE half (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_history, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(sqlite_history.MIGRATIONS, 1, broken)
    with pytest.raises(HistoryError, match=r"h\.sqlite3: cannot use the history file \(disk I/O error\)"):
        await SqliteHistory.open(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0


async def test_unusable_files_are_refused_naming_the_file(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(HistoryError, match="newer.sqlite3: history schema 7 was written by a newer ticker"):
        await SqliteHistory.open(newer)

    foreign = tmp_path / "blog.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE posts (id INTEGER)")
    with pytest.raises(HistoryError, match="blog.sqlite3: an SQLite file ticker did not write"):
        await SqliteHistory.open(foreign)
    with sqlite3.connect(foreign) as db:  # and left untouched
        assert [n for (n,) in db.execute("SELECT name FROM sqlite_master")] == ["posts"]

    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(HistoryError, match="garbage.sqlite3: cannot use the history file"):
        await SqliteHistory.open(garbage)

    (tmp_path / "file").write_text("")
    with pytest.raises(HistoryError, match="cannot open the history file"):
        await SqliteHistory.open(tmp_path / "file" / "h.sqlite3")  # a file where a directory should be


async def test_a_closed_store_says_so(tmp_path):
    store = await SqliteHistory.open(tmp_path / "h.sqlite3")
    await store.close()
    await store.close()  # twice is fine
    with pytest.raises(HistoryError, match="the history store is closed"):
        await store.append([Tick("BTC", "usd", 1.0, 1.0)])


async def test_add_candles_counts_what_it_kept_across_reopening(tmp_path):
    store = await SqliteHistory.open(tmp_path / "h.sqlite3")
    days = [Candle(DAY * (20_000 + d), DAY, 10.0, 11.0, 9.0, 10.5) for d in range(3)]
    assert await store.add_candles("BTC", "usd", days) == 3
    await store.close()
    store = await SqliteHistory.open(tmp_path / "h.sqlite3")
    assert await store.add_candles("BTC", "usd", days) == 0
    assert await store.earliest("BTC", "usd") == DAY * 20_000
    await store.close()


async def test_open_history_picks_the_backend_from_the_settings(tmp_path):
    assert await open_history(settings_from(tmp_path, '[history]\npath = ""\n')) is None  # off
    store = await open_history(settings_from(tmp_path, '[history]\npath = "data/prices.db"\n'))
    assert isinstance(store, SqliteHistory) and store.path == tmp_path / "data" / "prices.db"
    await store.close()
    shared = settings_from(tmp_path, '[cache]\nurl = "redis://127.0.0.1:1/0"\n[history]\npath = ""\n')
    store = await open_history(shared)  # history lives in Redis whatever history.path says
    assert isinstance(store, RedisHistory)
    await store.close()
