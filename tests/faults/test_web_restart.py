"""The web server restarted while a client follows a session live: the client reconnects with
Last-Event-ID, as EventSource does, and receives every event exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from rest_framework.authtoken.models import Token

from sessions_app.models import SessionEvent, Status
from tests.deliberation.test_worker import create_and_start, row, wait_until
from tests.faults.wiring import REAL_BROKER_URL
from tests.processes import ManagedProcess, free_port, start_web, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@dataclass
class SSEClient:
    """A minimal EventSource: remembers the last event id and sends it when it reconnects."""

    base: str
    headers: dict[str, str]
    last_event_id: str | None = None
    received: list[tuple[int, str, dict]] = field(default_factory=list)
    connections: int = 0
    ended: bool = False

    def follow(self, session_id: str) -> bool:
        """Read one connection; True when the stream ended normally (after a terminal event)."""
        headers = {**self.headers, "Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        self.connections += 1
        url = f"{self.base}/api/v1/sessions/{session_id}/stream"
        try:
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(5, read=30)) as r:
                if r.status_code == 204:
                    return True
                assert r.status_code == 200, r.status_code
                for frame in self._frames(r.iter_lines()):
                    self.last_event_id = frame["id"]
                    self.received.append((int(frame["id"]), frame["event"], frame["data"]))
            return True
        except httpx.TransportError:
            return False  # the server went away mid-stream, or is not back yet

    def follow_to_the_end(self, session_id: str, seconds: float = 120) -> None:
        """Reconnect (after EventSource's pause) until the stream ends or time runs out."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.follow(session_id):
                self.ended = True
                return
            time.sleep(0.5)

    @staticmethod
    def _frames(lines: Iterator[str]) -> Iterator[dict]:
        frame: dict = {}
        for line in lines:
            if not line:
                if "id" in frame and "data" in frame:
                    yield frame
                frame = {}
            elif line.startswith(":"):
                continue  # keep-alive comment
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                frame[name] = json.loads(value) if name == "data" else value


def restart_web(process: ManagedProcess, port: int) -> ManagedProcess:
    process.kill_hard()  # a crash: no goodbye to the open stream
    restarted, _ = start_web(port=port)
    return restarted


def test_a_client_streaming_through_a_web_server_restart_misses_nothing(api, user):
    token = Token.objects.get(user=user).key
    worker = start_worker(
        name="stream-worker",
        BO1_OFFLINE_LATENCY_MS="150",
        BO1_LEASE_TTL="5",
        CELERY_BROKER_URL=REAL_BROKER_URL,
    )
    port = free_port()
    web, base = start_web(port=port)
    client = SSEClient(base, {"Authorization": f"Token {token}"})
    try:
        session_id = create_and_start(api, max_rounds=3)
        reader = threading.Thread(target=client.follow_to_the_end, args=(session_id,))
        reader.start()
        wait_until(lambda: len(client.received) >= 5, timeout=60, what="the first live events")
        web = restart_web(web, port)  # the deliberation goes on while the server is down
        reader.join(timeout=150)
        assert client.ended, "the stream never reached its end"
        wait_until(lambda: row(session_id).status == Status.COMPLETED, what="completed")
    finally:
        web.stop()
        worker.stop()

    stored = list(SessionEvent.objects.filter(session_id=session_id).order_by("sequence"))
    sequences = [sequence for sequence, _, _ in client.received]
    assert sequences == [e.sequence for e in stored] == list(range(1, len(stored) + 1))
    assert [event for _, event, _ in client.received] == [e.event_type for e in stored]
    assert client.received[-1][1] == "complete"
    assert client.connections >= 2
