"""The web server's worker class: keep-alive connections opened together are shared by workers."""

import http.client
import os
import signal
import threading
from collections import Counter

import psutil
import pytest

from tests.processes import start_web

CONNECTIONS = 8


def holders(server_pid: int, client_ports: set[int]) -> Counter:
    """How many of the client's connections each worker process holds."""
    held: Counter = Counter()
    for worker in psutil.Process(server_pid).children():
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port in client_ports:
                held[worker.pid] += 1
    return held


def open_together(base: str, count: int) -> list[http.client.HTTPConnection]:
    """`count` keep-alive connections opened at the same moment, each with one request answered."""
    host, port = base.removeprefix("http://").split(":")
    conns = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(count)]
    barrier = threading.Barrier(count)

    def connect(conn: http.client.HTTPConnection) -> None:
        barrier.wait()
        conn.connect()

    threads = [threading.Thread(target=connect, args=(c,)) for c in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in conns:
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        response.read()
        assert response.status == 200
    return conns


def spread(web, base: str) -> list[int]:
    """Open 8 connections at once; how many each worker took, fewest first."""
    conns = open_together(base, CONNECTIONS)
    try:
        held = holders(web.pid, {c.sock.getsockname()[1] for c in conns})
    finally:
        for conn in conns:
            conn.close()
    assert sum(held.values()) == CONNECTIONS
    return sorted(held.values())


@pytest.mark.django_db(transaction=True)
def test_connections_opened_together_are_spread_over_the_workers():
    """Stock uvicorn workers were seen to take 8/0 or 7/1 (one core does all the work)."""
    web, base = start_web(workers=2)
    try:
        # Both workers have booted once each has taken a connection.
        for _ in range(20):
            if len(spread(web, base)) == 2:
                break
        spreads = [spread(web, base) for _ in range(5)]
        fair = [s for s in spreads if len(s) == 2 and s[0] >= 2]
        assert len(fair) >= 4, spreads
    finally:
        web.stop()


@pytest.mark.django_db(transaction=True)
def test_a_lone_worker_accepts_a_burst_and_stops_cleanly():
    web, base = start_web(workers=1)
    try:
        conns = open_together(base, 40)
        assert sum(holders(web.pid, {c.sock.getsockname()[1] for c in conns}).values()) == 40
        for conn in conns:
            conn.close()
        os.killpg(web.pid, signal.SIGTERM)
        assert web.proc.wait(timeout=15) == 0
        assert "Traceback" not in web.log()
    finally:
        web.stop()
