from __future__ import annotations

import logging
import os
from dataclasses import replace

from tests.conftest import NOW, quote, snapshot_of
from ticker.models import ProviderStatus, Snapshot
from ticker.store import SnapshotStore


def sample() -> Snapshot:
    market = {"market_cap": 1815092365248.12, "volume_24h": 31260929299.52, "rank": 1, "change_30d_pct": 6.7312}
    snap = snapshot_of(replace(quote("BTC", 90917.04), **market), quote("ARRR", 0.00001234, change=None))
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
    btc, arrr = loaded.quote("BTC", "usd"), loaded.quote("ARRR", "usd")
    assert (btc.market_cap, btc.volume_24h, btc.rank, btc.change_30d_pct) == (
        1815092365248.12,
        31260929299.52,
        1,
        6.7312,
    )
    assert (arrr.market_cap, arrr.volume_24h, arrr.rank) == (None, None, None)  # unknown stays unknown, never 0
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


def test_a_snapshot_saved_before_the_market_fields_loads_with_them_unknown():
    data = sample().to_dict()
    for saved in data["quotes"]:
        for key in ("market_cap", "volume_24h", "rank"):
            del saved[key]
    btc = Snapshot.from_dict(data).quote("BTC", "usd")
    assert btc.price == 90917.04 and (btc.market_cap, btc.volume_24h, btc.rank) == (None, None, None)
