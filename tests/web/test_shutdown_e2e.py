"""SIGTERM with open event streams: every stream gets its proper end, and the service stops at once.

uvicorn waits for open connections before it runs the lifespan shutdown, so streams must be ended
from the server's own shutdown; otherwise it cancels them after its graceful timeout (an ERROR line,
a traceback, clients left with an incomplete chunked body). The clients here keep reading until the
server closes each stream: a client that leaves before the signal would hide exactly that.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.service import Service, free_port, write_config

pytestmark = pytest.mark.e2e

STREAMS = 3
no_redis = shutil.which("redis-server") is None


def read_until_closed(lines: Iterator[str]) -> str:
    """Reads a held stream to its end: "clean" after the final empty chunk, else what went wrong."""
    try:
        for _ in lines:
            pass
    except httpx.HTTPError as err:  # RemoteProtocolError: incomplete chunked read; ReadTimeout: never ended
        return f"{type(err).__name__}: {err}"
    return "clean"


def first_event(lines: Iterator[str]) -> str:
    for line in lines:
        if line == "event: prices":
            data = next(lines)
            assert data.startswith('data: {"currency":'), data
            return data
    raise AssertionError("the stream ended before its first event")


@pytest.mark.parametrize(
    "workers",
    [1, pytest.param(2, marks=pytest.mark.skipif(no_redis, reason="--workers needs redis-server"))],
)
def test_sigterm_ends_every_open_stream_cleanly_within_two_seconds(tmp_path, upstream, request, workers):
    cache = 'snapshot_path = "state/snapshot.json"'
    if workers > 1:
        redis_url = request.getfixturevalue("redis_server").url
        cache = f'url = "{redis_url}"\nnamespace = "shutdown"\n{cache}'
    service = Service(write_config(tmp_path, upstream, interval=1, cache=cache), free_port(), "--workers", str(workers))
    try:
        service.wait_ready()
        with contextlib.ExitStack() as held:
            streams = []
            for _ in range(STREAMS):
                client = held.enter_context(httpx.Client(timeout=5))  # one connection per stream
                response = held.enter_context(client.stream("GET", f"{service.url}/api/v1/stream"))
                assert response.status_code == 200
                lines = response.iter_lines()
                first_event(lines)
                streams.append(lines)
            service.proc.send_signal(signal.SIGTERM)  # every stream is still held open here
            signalled = time.monotonic()
            endings = [read_until_closed(lines) for lines in streams]
            code = service.proc.wait(timeout=10)
            elapsed = time.monotonic() - signalled
    finally:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait()
        service.client.close()
    log = service.log.read_text()
    assert endings == ["clean"] * STREAMS, log
    assert code == 0, log
    assert elapsed < 2.0, f"stopped after {elapsed:.2f} s\n{log}"
    for word in ("ERROR", "Traceback", "Cancel"):
        assert word not in log, log
