"""The fake exchange speaks each exchange's documented messages (tests/fake_exchange.py cites the pages)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as sync_connect

from tests.fake_exchange import FakeExchange


async def receive(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def receive_until(ws: ClientConnection, kind: str, key: str = "type", timeout: float = 2.0) -> Any:
    """The next message whose `key` is `kind` (heartbeats and others in between skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if isinstance(message, dict) and message.get(key) == kind:
                return message


@pytest.fixture
async def fake() -> Any:
    async with FakeExchange(heartbeat_seconds=0.05, subscribe_deadline=0.3) as exchange:
        yield exchange


async def test_kraken_v2_acks_snapshots_updates_pongs_and_refusals(fake: FakeExchange) -> None:
    fake.tick("kraken", "BTC/USD", 90000.0, 1.5)
    fake.refuse_pair("kraken", "XYZ/USD")
    async with connect(fake.url("kraken")) as ws:
        status = await receive(ws)
        assert status["channel"] == "status" and status["data"][0]["system"] == "online"
        subscribe = {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "XYZ/USD"]}}
        await ws.send(json.dumps({**subscribe, "req_id": 7}))
        error = await receive(ws)
        assert error["success"] is False and error["symbol"] == "XYZ/USD" and error["req_id"] == 7
        ack = await receive(ws)
        assert ack["success"] is True and ack["result"] == {"channel": "ticker", "snapshot": True, "symbol": "BTC/USD"}
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["data"][0]["last"] == 90000.0 and snapshot["data"][0]["change_pct"] == 1.5
        fake.tick("kraken", "BTC/USD", 90100.0, 1.6)
        update = await receive_until(ws, "ticker", key="channel")
        assert update["type"] == "update" and update["data"][0]["last"] == 90100.0
        assert await receive_until(ws, "heartbeat", key="channel") == {"channel": "heartbeat"}
        await ws.send(json.dumps({"method": "ping", "req_id": 9}))
        pong = await receive_until(ws, "pong", key="method")
        assert pong["req_id"] == 9
    assert fake.connections("kraken")[0].pairs == ["BTC/USD"]


async def test_coinbase_subscriptions_tickers_heartbeats_and_a_failed_subscribe(fake: FakeExchange) -> None:
    fake.tick("coinbase", "BTC-USD", 90000.0, 2.0)
    async with connect(fake.url("coinbase")) as ws:
        await ws.send(
            json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["ticker", "heartbeat"]})
        )
        subscriptions = await receive(ws)
        assert subscriptions == {
            "type": "subscriptions",
            "channels": [
                {"name": "ticker", "product_ids": ["BTC-USD"]},
                {"name": "heartbeat", "product_ids": ["BTC-USD"]},
            ],
        }
        ticker = await receive_until(ws, "ticker")
        assert ticker["product_id"] == "BTC-USD" and ticker["price"] == "90000"
        opened = float(ticker["open_24h"])
        assert (90000.0 - opened) / opened * 100 == pytest.approx(2.0, abs=1e-6)
        beat = await receive_until(ws, "heartbeat")
        assert beat["product_id"] == "BTC-USD"
    fake.refuse_pair("coinbase", "XYZ-USD")
    async with connect(fake.url("coinbase")) as ws:
        await ws.send(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD", "XYZ-USD"], "channels": ["ticker"]}))
        error = await receive(ws)
        assert error == {"type": "error", "message": "Failed to subscribe", "reason": "XYZ-USD is not a valid product"}
    assert fake.connections("coinbase")[1].pairs == []  # the whole message failed


async def test_coinbase_closes_a_connection_that_does_not_subscribe(fake: FakeExchange) -> None:
    async with connect(fake.url("coinbase")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 2.0)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_binance_combined_and_raw_streams(fake: FakeExchange) -> None:
    async with connect(fake.url("binance") + "/stream?streams=btcusdt@miniTicker/xyzusdt@miniTicker") as ws:
        await asyncio.sleep(0.05)
        fake.tick("binance", "BTCUSDT", 90000.0, -1.0)
        message = await receive(ws)
        assert message["stream"] == "btcusdt@miniTicker"
        data = message["data"]
        assert data["e"] == "24hrMiniTicker" and data["s"] == "BTCUSDT" and data["c"] == "90000"
        assert (90000.0 - float(data["o"])) / float(data["o"]) * 100 == pytest.approx(-1.0, abs=1e-6)
    async with connect(fake.url("binance") + "/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@miniTicker"], "id": 1}))
        assert await receive(ws) == {"result": None, "id": 1}
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ETH USDT"], "id": 2}))
        assert await receive(ws) == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 2}
        fake.tick("binance", "ethusdt", 3000.0)
        assert (await receive(ws))["s"] == "ETHUSDT"  # raw: not wrapped
        with pytest.raises(ConnectionClosed) as closed:
            for n in range(10):  # over the limit of 5 incoming messages a second
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10 + n}))
            while True:
                await asyncio.wait_for(ws.recv(), 2.0)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_handshakes_refused_with_429_and_retry_after(fake: FakeExchange) -> None:
    fake.refuse_handshakes("binance", 429, retry_after="7")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(fake.url("binance") + "/ws"):
            pass
    assert refused.value.response.status_code == 429
    assert refused.value.response.headers["Retry-After"] == "7"
    assert [r.status for r in fake.attempts("binance")] == [429]


def test_driven_from_another_thread() -> None:
    with FakeExchange() as fake, sync_connect(fake.url("kraken")) as ws:
        assert json.loads(ws.recv(2))["channel"] == "status"
        ws.send(json.dumps({"method": "subscribe", "params": {"channel": "ticker", "symbol": ["ETH/USD"]}}))
        assert json.loads(ws.recv(2))["success"] is True
        fake.tick("kraken", "ETH/USD", 3001.5, 0.5)
        assert json.loads(ws.recv(2))["data"][0]["last"] == 3001.5
        assert len(fake.connections("kraken", open_only=True)) == 1
        fake.drop("kraken", code=1013, reason="Try Again Later")
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # heartbeats may come first
                ws.recv(2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
