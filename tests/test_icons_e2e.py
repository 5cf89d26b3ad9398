"""The real `ticker serve`: icon hosts that hang never delay a price round (issue 10, item 4)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fake_upstream import FakeUpstream
from tests.service import Service, free_port, wait_until

pytestmark = pytest.mark.e2e

COINS = 250


class SilentHost:
    """Accepts every connection and never answers: the worst icon CDN (each request waits out its deadline)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._server.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in [*self._held, self._server]:
            conn.close()


@pytest.fixture
def silent_host() -> Iterator[SilentHost]:
    host = SilentHost()
    yield host
    host.close()


def test_price_rounds_keep_their_interval_while_every_icon_hangs(tmp_path, silent_host):
    with FakeUpstream() as upstream:
        upstream.coingecko.prices = {f"coin-{i:03d}": {"usd": (1.0 + i, 0.5)} for i in range(COINS)}
        upstream.icon_origin = silent_host.origin
        coins = ",\n  ".join(
            f'{{ symbol = "C{i:03d}", name = "Coin {i}", ids = {{ coingecko = "coin-{i:03d}" }} }}'
            for i in range(COINS)
        )
        config = tmp_path / "ticker.toml"
        # A 3 s deadline: a round that awaited even one hanging icon would come three intervals late.
        config.write_text(f"""
[market]
coins = [
  {coins}
]
currencies = ["usd"]
[poller]
interval_seconds = 1
timeout_seconds = 3
providers = ["coingecko"]
[providers.coingecko]
base_url = "{upstream.coingecko_url}"
requests_per_minute = 600
[cache]
snapshot_path = "state/snapshot.json"
""")
        service = Service(config, free_port())
        try:
            service.wait_ready()
            # The first pass of side work fetches the icon URLs, the next round carries them, the pass
            # after that starts downloading them: from then on icon requests hang.
            wait_until(lambda: silent_host.connections, 15, "an icon request reaches the silent host")
            started = time.monotonic()
            time.sleep(6)
            rounds = [t for t, path, _ in upstream.coingecko.log if path == "/api/v3/simple/price" and t >= started]
            gaps = [b - a for a, b in zip(rounds, rounds[1:], strict=False)]
            print(
                f"\n{len(rounds)} price rounds in 6 s while icons hang ({silent_host.connections} icon connections "
                f"held open); longest gap {max(gaps, default=0):.2f} s"
            )
            assert len(rounds) >= 3, rounds  # one a second expected; 2x margin
            body = service.get("/api/v1/prices").json()
            assert len(body["coins"]) == COINS and all(coin["price"] is not None for coin in body["coins"])
            assert service.get("/icons/C000").headers["content-type"] == "image/svg+xml"  # the monogram meanwhile
        finally:
            assert service.stop() < 2.5  # shutdown within 2 s, hanging icon downloads included
        assert "Traceback" not in service.log.read_text()
