from __future__ import annotations

import logging
import os

from tests.conftest import NOW, quote, snapshot_of
from ticker.models import ProviderStatus, Snapshot
from ticker.store import SnapshotStore


def sample() -> Snapshot:
    snap = snapshot_of(quote("BTC", 90917.04), quote("ARRR", 0.00001234, change=None))
    return Snapshot(
        snap.generated_at,
        snap.quotes,
        {"coingecko": ProviderStatus("ok", NOW)},
        history={"BTC": ((493000, 90000.5), (493001, 90917.04))},
        icons={"BTC": "https://assets.example/btc.png"},
    )


async def test_put_makes_the_snapshot_current():
    store = SnapshotStore()
    assert store.current is None
    await store.put(sample())
    assert store.current == sample()


async def test_snapshot_survives_a_restart_through_the_file(tmp_path):
    path = tmp_path / "state" / "snap.json"
    await SnapshotStore(snapshot_path=path).put(sample())
    restarted = SnapshotStore(snapshot_path=path)
    loaded = await restarted.load()
    assert loaded == sample() and restarted.current == sample()
    assert loaded.quote("ARRR", "usd").price == 0.00001234
    assert loaded.quote("BTC", "usd").updated_at == quote("BTC", 1).updated_at  # honest age after restart
    assert [p.name for p in path.parent.iterdir()] == ["snap.json"]  # no temp files left behind


async def test_a_damaged_file_is_ignored_with_a_warning(tmp_path, caplog):
    path = tmp_path / "snap.json"
    path.write_bytes(sample().to_json()[:50])
    with caplog.at_level(logging.WARNING):
        assert await SnapshotStore(snapshot_path=path).load() is None
    assert "ignoring a damaged snapshot" in caplog.text


async def test_no_file_yet_is_fine(tmp_path):
    assert await SnapshotStore(snapshot_path=tmp_path / "none.json").load() is None


async def test_an_unwritable_path_is_logged_once_and_serving_goes_on(tmp_path, caplog):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    store = SnapshotStore(snapshot_path=blocked / "snap.json")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            await store.put(sample())
    assert store.current == sample()
    assert caplog.text.count("cannot write snapshot file") == 1


async def test_replacing_the_file_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "snap.json"
    store = SnapshotStore(snapshot_path=path)
    await store.put(sample())
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    await store.put(Snapshot(NOW))
    assert path.read_bytes() == before  # the old file stays whole
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]
