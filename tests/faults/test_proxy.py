"""The fault proxy itself: it forwards, cuts (reset or blackhole) and restores."""

from __future__ import annotations

import socket
import time

import pytest
import redis as redis_lib

from tests.faults.wiring import REAL_REDIS_URL, redis_proxy_for_tests, via


@pytest.fixture
def proxied():
    proxy = redis_proxy_for_tests()
    client = redis_lib.Redis.from_url(
        via(proxy, REAL_REDIS_URL), socket_timeout=0.5, socket_connect_timeout=0.5, retry=None
    )
    yield proxy, client
    client.close()
    proxy.stop()


def test_it_forwards_until_cut_and_again_after_restore(proxied):
    proxy, client = proxied
    assert client.ping() and proxy.connections == 1
    proxy.cut()
    began = time.monotonic()
    with pytest.raises(redis_lib.ConnectionError):
        client.ping()
    assert time.monotonic() - began < 0.5  # a reset is immediate, like a server that went away
    assert proxy.connections == 0
    proxy.restore()
    assert client.ping()


def test_a_blackhole_swallows_bytes_until_the_client_times_out(proxied):
    proxy, client = proxied
    client.set("bo1:proxy-test", "before")
    proxy.cut("blackhole")
    began = time.monotonic()
    with pytest.raises(redis_lib.TimeoutError):
        client.set("bo1:proxy-test", "during")
    assert time.monotonic() - began >= 0.4
    proxy.restore()
    assert client.get("bo1:proxy-test") == b"before"  # nothing got through while cut
    client.delete("bo1:proxy-test")


def test_new_connections_are_refused_while_cut(proxied):
    proxy, _ = proxied
    proxy.cut()

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16)

    with pytest.raises(ConnectionResetError):
        if not talk():  # a reset may also surface as an orderly close, depending on timing
            raise ConnectionResetError("closed without an answer")
