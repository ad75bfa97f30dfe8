"""The web server's worker: uvicorn under gunicorn, with connections shared fairly between workers.

Gunicorn's workers all wait on one listening socket, and uvicorn's accept loop takes every
connection that is waiting when it wakes. Clients that open a few keep-alive connections at once
(a reverse proxy, a load generator, a browser) can therefore all land on one worker process,
which then does all their work on one core while the other workers idle: with 8 connections and
2 workers, the list endpoint was measured at about half its throughput in runs where that
happened. This worker accepts one connection at a time and, the more connections it already
holds, the longer it waits before taking the next, so an idler worker takes it instead (the
same idea as nginx's `accept_mutex` and `multi_accept off`). A worker alone still accepts every
connection; it only pauses for a moment between them.

Measured (docs/PERFORMANCE-HISTORY.md, "Fair accept"): with the stock worker, 8 connections
opened together were split 8/0, 7/1 or 6/2 between 2 processes in about a third of the runs,
which capped the list near 400 requests/s and sent its paced p50 to 15-21 ms in those runs; with
this one the split was 4/4 in every measured run. Wired in by the Procfile's `web:` line
(`--worker-class bo1site.serving.worker.FairUvicornWorker`), which the Dockerfile and
docker-compose.yml repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import sys
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

logger = logging.getLogger(__name__)

# Seconds a worker waits before its next accept, per connection it already holds, and at most:
# long enough for an idle worker to wake and take the next connection of a burst (0.2 ms was
# not, on 2 cores), short enough that a worker alone accepts a burst of 1,000 in about 2 s.
PAUSE_PER_CONNECTION = 0.0005
MAX_PAUSE = 0.002
# After an accept error such as EMFILE, wait this long before trying again.
ERROR_PAUSE = 0.1


class FairAcceptor:
    """Accepts connections on one listening socket, one per wake-up, yielding to idler workers."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, server: Server):
        self._loop = loop
        self._sock = sock
        self._server = server
        self._protocol = functools.partial(
            server.config.http_protocol_class,
            config=server.config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
        )
        self._resume: asyncio.TimerHandle | None = None
        self._closed = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as exc:  # EMFILE, ENFILE, ENOBUFS...: back off, keep serving
            logger.error("Accept failed: %s", exc)
            self._pause(ERROR_PAUSE)
            return
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.create_task(self._serve(conn))
        held = len(self._server.server_state.connections)
        if held:
            self._pause(min(MAX_PAUSE, held * PAUSE_PER_CONNECTION))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol, conn)  # type: ignore[arg-type]
        except OSError as exc:  # the client left before its transport was set up
            logger.debug("Connection dropped at setup: %s", exc)
            conn.close()

    def _pause(self, seconds: float) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._resume = self._loop.call_later(seconds, self._listen)

    def _listen(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        self._closed = True
        if self._resume is not None:
            self._resume.cancel()
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._sock.fileno())


class FairServer(Server):
    """uvicorn's server, accepting through FairAcceptor instead of asyncio's own accept loop."""

    def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
        super().__init__(config=config)
        self._listening = sockets
        self._acceptors: list[FairAcceptor] = []

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # Lifespan and state as uvicorn sets them up, with no asyncio servers of its own...
        await super().startup(sockets=[])
        # ...then our acceptors on gunicorn's listening sockets.
        loop = asyncio.get_running_loop()
        self._acceptors = [FairAcceptor(loop, sock, self) for sock in self._listening]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        await super().shutdown(sockets)


class FairUvicornWorker(UvicornWorker):
    """`--worker-class bo1site.serving.worker.FairUvicornWorker`: see the module docstring."""

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = FairServer(config=self.config, sockets=self.sockets)
        self._install_sigquit_handler()
        await server.serve(sockets=[])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
