"""The benchmark's paced load: wrk's threads spread a fixed rate evenly instead of firing together.

A paced run stands for requests arriving one by one at a given rate. When wrk's two threads each
paced their own half on the same schedule, the requests came in pairs at the same instant, and
every paced latency included the cost of sharing the machine with its twin.
"""

import socket
import statistics
import threading
import time

import pytest

from scripts.bench.load import run_wrk

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


class ArrivalRecorder:
    """A keep-alive HTTP server on a free port that notes when each request arrives."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:  # GET requests: no body
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    with self._lock:
                        self.arrivals.append(time.monotonic())
                    conn.sendall(RESPONSE)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def recorder():
    server = ArrivalRecorder()
    yield server
    server.close()


@pytest.mark.parametrize("rate", [100.0, 500.0])  # the create's and the list's paced rates
def test_a_paced_run_spreads_its_requests_evenly_over_time(recorder, rate):
    result = run_wrk(
        f"http://127.0.0.1:{recorder.port}", ["/"], seconds=3, connections=8, rate=rate
    )

    assert result.errors == 0
    assert 0.8 * 3 * rate <= result.requests <= 1.1 * 3 * rate
    gaps = [b - a for a, b in zip(recorder.arrivals, recorder.arrivals[1:], strict=False)]
    interval = 1 / rate
    # Evenly spread, each request comes about one interval after the one before. Two threads on
    # the same schedule would put half of the gaps near zero and the other half near 2 intervals.
    # (wrk's timers tick in whole milliseconds: a slot off that tick, or a delay cut short by
    # it, sends requests up to 2 ms early, and at 500 requests/s a fifth of the gaps came out
    # shorter than half the interval.)
    close_together = [gap for gap in gaps if gap < 0.5 * interval]
    assert len(close_together) < 0.05 * len(gaps), sorted(gaps)[: len(gaps) // 2 : 10]
    assert 0.8 * interval <= statistics.median(gaps) <= 1.2 * interval


def test_random_arrivals_keep_the_rate_with_exponential_gaps(recorder):
    rate = 100.0
    result = run_wrk(
        f"http://127.0.0.1:{recorder.port}",
        ["/"],
        seconds=3,
        connections=8,
        rate=rate,
        random_arrivals=True,
    )

    assert result.errors == 0
    assert 0.75 * 3 * rate <= result.requests <= 1.25 * 3 * rate
    gaps = [b - a for a, b in zip(recorder.arrivals, recorder.arrivals[1:], strict=False)]
    mean = statistics.fmean(gaps)
    assert 0.75 / rate <= mean <= 1.25 / rate
    # A Poisson process: gaps spread like an exponential (standard deviation about the mean),
    # where evenly spaced arrivals vary by a small fraction of the interval...
    assert 0.7 <= statistics.stdev(gaps) / mean <= 1.3
    # ...and one gap in 1 - exp(-1/4) = 22% is shorter than a quarter of the mean, where
    # requests paced in pairs would make it one in two.
    short = [gap for gap in gaps if gap < 0.25 / rate]
    assert 0.1 * len(gaps) <= len(short) <= 0.38 * len(gaps)
