"""A TCP proxy the fault tests put between the project and a store, to cut and restore it.

    proxy = FaultProxy("127.0.0.1", 5432).start()   # listens on 127.0.0.1:<free port>
    proxy.cut()          # every open connection is reset, new ones are reset on accept
    proxy.cut("blackhole")  # open connections go silent, new ones are accepted and ignored
    proxy.cut("drop")    # the kernel drops every packet to and from the proxy's port
    proxy.restore()      # new connections are forwarded again

The listening socket stays open while cut, so the port can never be taken by someone else and
restore() needs no re-bind. "reset" looks to clients like a server that went away (connection
reset / refused at once); "blackhole" like a server that hangs (its kernel still acknowledges
every byte); "drop" like a network partition: nothing is acknowledged, not even a connection
attempt, so only the client's TCP timeouts tell. "drop" needs root and nftables' `nft`
(`make test` installs it); its rule is a table of its own, named after the port.
"""

from __future__ import annotations

import contextlib
import logging
import select
import shutil
import socket
import struct
import subprocess
import threading
from typing import Literal

logger = logging.getLogger(__name__)

Mode = Literal["reset", "blackhole", "drop"]
CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN: the peer sees 'connection reset', as after a crash."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Pipe:
    """One client connection and its upstream twin, pumped by one thread."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.silenced = threading.Event()  # blackhole: stop forwarding, keep the sockets open
        self.closed = threading.Event()

    def run(self) -> None:
        peers = {self.client: self.upstream, self.upstream: self.client}
        try:
            while not self.closed.is_set():
                if (
                    self.silenced.is_set()
                ):  # hold the bytes: nobody hears anything, as in a partition
                    self.closed.wait(0.1)
                    continue
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                if self.silenced.is_set():
                    continue  # cut while we waited: these bytes must not get through
                for sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return  # one side was reset or closed (by us or by the peer)
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            _reset(self.client)
            _reset(self.upstream)
            self.proxy._forget(self)


class FaultProxy:
    """Forwards 127.0.0.1:<port> to a target; cut() and restore() switch the link off and on."""

    def __init__(self, target_host: str, target_port: int, name: str = "proxy") -> None:
        self.target = (target_host, target_port)
        self.name = name
        self.mode: Mode | None = None  # None while forwarding
        self.accepted = 0
        self._pipes: set[_Pipe] = set()
        self._held: list[socket.socket] = []  # accepted while blackholed
        self._dropping = False  # an nftables rule drops this port's packets
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"{name}-accept", daemon=True
        )

    # -- control ------------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    @property
    def is_cut(self) -> bool:
        return self.mode is not None

    def cut(self, mode: Mode = "reset") -> None:
        """Take the link down: open connections are reset (or silenced), new ones fail."""
        with self._lock:
            self.mode = mode
            pipes = list(self._pipes)
        if mode == "drop":
            self._drop_packets()
        for pipe in pipes:
            if mode in ("blackhole", "drop"):
                pipe.silenced.set()
            else:
                pipe.close()
        logger.info("%s cut (%s): %d connections affected", self.name, mode, len(pipes))

    def restore(self) -> None:
        """Bring the link back: new connections are forwarded; silenced ones are dropped."""
        with self._lock:
            self.mode = None
            pipes = [p for p in self._pipes if p.silenced.is_set()]
            held, self._held = self._held, []
        self._pass_packets()
        for pipe in pipes:  # a partition that heals leaves these half-dead: end them cleanly
            pipe.close()
        for sock in held:
            _reset(sock)
        logger.info("%s restored", self.name)

    def stop(self) -> None:
        self._pass_packets()
        self._stopping.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pipes = list(self._pipes)
            held, self._held = self._held, []
        for pipe in pipes:
            pipe.close()
        for sock in held:
            _reset(sock)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pipes)

    def url(self, scheme: str, path: str = "", auth: str = "") -> str:
        """A URL for the proxied service, e.g. url("redis", "/14")."""
        return f"{scheme}://{auth}127.0.0.1:{self.port}{path}"

    # -- internals ----------------------------------------------------------------------------
    @property
    def _nft_table(self) -> str:
        return f"bo1_fault_{self.port}"

    def _drop_packets(self) -> None:
        nft = shutil.which("nft")
        if nft is None:
            raise RuntimeError("cut('drop') needs nftables: apt-get install nftables")
        rules = f"""
        table inet {self._nft_table} {{
            chain output {{
                type filter hook output priority -150; policy accept;
                tcp dport {self.port} drop
                tcp sport {self.port} drop
            }}
        }}
        """
        subprocess.run([nft, "-f", "-"], input=rules, text=True, check=True, capture_output=True)
        self._dropping = True

    def _pass_packets(self) -> None:
        if self._dropping:
            command = ["nft", "delete", "table", "inet", self._nft_table]
            subprocess.run(command, check=False, capture_output=True)
            self._dropping = False

    def _forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            mode = self.mode
            if mode == "reset":
                _reset(client)
                continue
            if mode in ("blackhole", "drop"):
                with self._lock:
                    self._held.append(client)
                continue
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=3)
        except OSError as exc:
            logger.warning("%s cannot reach %s:%s: %s", self.name, *self.target, exc)
            _reset(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe = _Pipe(self, client, upstream)
        with self._lock:
            if self.mode is not None:  # cut while we were connecting
                _reset(client)
                _reset(upstream)
                return
            self._pipes.add(pipe)
        threading.Thread(target=pipe.run, name=f"{self.name}-pipe", daemon=True).start()
