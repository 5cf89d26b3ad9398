"""Running uvicorn so that a stop ends open event streams first, in one process or in each of N workers.

On SIGTERM uvicorn waits (up to its graceful timeout) for open connections and only then runs the
lifespan shutdown. An event stream stays open until its client leaves, so an event set in the
lifespan reaches it too late: uvicorn cancels it, logs an ERROR with a traceback, and the client is
left with an incomplete chunked body. TickerServer sets the app's closing event (handed over in the
lifespan state) as its shutdown begins: each stream sends its final chunk and its connection closes
at once.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import socket
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

import anyio
import uvicorn
from uvicorn.supervisors import Multiprocess, multiprocess

from ticker.web.stream import CLOSING_STATE

logger = logging.getLogger(__name__)
OPEN_FILES_WANTED = 65536  # each event-stream client holds a socket: room for thousands of them


class TickerServer(uvicorn.Server):
    """uvicorn's Server that ends the app's event streams before it waits for connections to close."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        closing = self.lifespan.state.get(CLOSING_STATE)
        if isinstance(closing, anyio.Event):
            closing.set()
        await super().shutdown(sockets)


class _Worker(multiprocess.Process):
    """A --workers process that runs TickerServer; the spawned child gets this class by unpickling it."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = TickerServer(config=self.config)
        return self._server


def run(config: uvicorn.Config) -> bool:
    """What `uvicorn.run` does for one process or `config.workers`, with TickerServer; False if it never started."""
    raise_open_file_limit()
    if config.workers > 1:
        sock = config.bind_socket()
        with _workers_are(_Worker):
            Multiprocess(config, sockets=[sock]).run()  # it stops on SIGTERM/SIGINT and exits normally
        return True
    # uvicorn re-raises the stop signal once it has shut down cleanly; for SIGTERM the process would then
    # end as killed by a signal (status -15). A requested stop that went well is a normal exit.
    signal.signal(signal.SIGTERM, _stopped)
    server = TickerServer(config)
    try:
        server.run()
    except KeyboardInterrupt:  # SIGINT, re-raised the same way
        pass
    return server.started


def raise_open_file_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise this process's soft limit on open files towards `wanted` (never above the hard limit): many
    systems start services at a soft 1024, which 1,000 open event streams would exhaust. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as err:
            logger.warning(
                "cannot raise the open-file limit from %d to %d (%s): at most about %d clients", soft, target, err, soft
            )
    if soft != resource.RLIM_INFINITY and soft < 4096:
        logger.info("open-file limit %d: at most about %d event-stream clients (raise `ulimit -n`)", soft, soft - 100)
    return soft


def _stopped(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


@contextlib.contextmanager
def _workers_are(worker: type[multiprocess.Process]) -> Iterator[None]:
    """Multiprocess builds its workers (at start, on restart, on SIGTTIN) from its module's `Process`."""
    original = multiprocess.Process
    multiprocess.Process = worker  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]
