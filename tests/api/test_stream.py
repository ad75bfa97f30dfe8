"""The Server-Sent Events stream: replay, live following, resumption, the end, access control."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test import Client
from django.urls import resolve
from rest_framework.authtoken.models import Token

from sessions_app import services
from sessions_app.cache import SessionCache, stream_key
from sessions_app.models import DeliberationSession, Status
from sessions_app.services import NewEvent
from tests.factories import SessionFactory
from tests.processes import free_port, start_web

pytestmark = pytest.mark.django_db(transaction=True)

STREAM_TIMEOUT = 10.0


# -- a small SSE client over the ASGI application ----------------------------------------------


@dataclass
class Frame:
    """One SSE block: an event (id, event, data) or a comment."""

    id: str | None = None
    event: str | None = None
    data: str | None = None
    retry: str | None = None
    comment: str | None = None

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.data or "null")


def parse_frames(text: str) -> tuple[list[Frame], str]:
    """Complete SSE blocks in `text`, and the unfinished rest."""
    frames = []
    *blocks, rest = text.split("\n\n")
    for block in blocks:
        frame = Frame()
        for line in block.split("\n"):
            if line.startswith(":"):
                frame.comment = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                frame.data = value if frame.data is None else f"{frame.data}\n{value}"
            elif name in ("id", "event", "retry"):
                setattr(frame, name, value)
        frames.append(frame)
    return frames, rest


@dataclass
class StreamReader:
    """Accumulates frames from a byte stream and answers questions about them."""

    frames: list[Frame] = field(default_factory=list)
    _rest: str = ""

    def feed(self, chunk: bytes) -> None:
        new, self._rest = parse_frames(self._rest + chunk.decode())
        self.frames.extend(new)

    @property
    def events(self) -> list[Frame]:
        return [f for f in self.frames if f.event is not None]

    @property
    def comments(self) -> list[str]:
        return [f.comment for f in self.frames if f.comment is not None]

    def sequences(self) -> list[int]:
        return [int(f.id) for f in self.events]


class AsgiStream:
    """One GET to the ASGI application, read as it streams; `close()` disconnects."""

    def __init__(self, path: str, headers: dict[str, str] | None = None) -> None:
        url = urlsplit(path)
        raw_headers = [(b"host", b"testserver"), (b"accept", b"text/event-stream")]
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url.path,
            "raw_path": url.path.encode(),
            "query_string": url.query.encode(),
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.reader = StreamReader()
        self.body = b""
        self.finished = asyncio.Event()
        self._disconnect = asyncio.Event()
        self._sent_request = False
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> dict[str, Any]:
        if not self._sent_request:
            self._sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            self.body += chunk
            self.reader.feed(chunk)
            if not message.get("more_body", False):
                self.finished.set()
        self._progress.set()

    async def start(self) -> AsgiStream:
        self._task = asyncio.create_task(asgi_application()(self.scope, self._receive, self._send))
        await self.until(lambda: self.status is not None, "the response to start")
        return self

    async def until(
        self, condition: Callable[[], bool], what: str, timeout: float = STREAM_TIMEOUT
    ):
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or (self._task is not None and self._task.done() and not condition()):
                if self._task is not None and self._task.done() and self._task.exception():
                    raise self._task.exception()
                raise AssertionError(f"timed out waiting for {what}; got {self.body!r}")
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)

    async def until_events(self, count: int) -> list[Frame]:
        await self.until(lambda: len(self.reader.events) >= count, f"{count} events")
        return self.reader.events

    async def until_finished(self) -> None:
        await self.until(self.finished.is_set, "the end of the stream")
        assert self._task is not None
        await asyncio.wait_for(self._task, STREAM_TIMEOUT)

    async def close(self) -> None:
        self._disconnect.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, STREAM_TIMEOUT)


def asgi_application() -> Callable[..., Awaitable[None]]:
    """The production entry point (bo1site.asgi), as the ASGI server calls it."""
    from bo1site.asgi import application

    return application


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 60))


def db(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    return sync_to_async(func, thread_sensitive=False)


# -- fixtures and writers -----------------------------------------------------------------------


@pytest.fixture
def token(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def auth(token) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def running(user) -> DeliberationSession:
    return SessionFactory(user=user, status=Status.RUNNING)


def contribution(n: int, round_number: int = 1) -> NewEvent:
    return NewEvent(
        "contribution",
        {
            "round": round_number,
            "persona_code": f"p{n}",
            "persona_name": f"Persona {n}",
            "content": f"Point number {n}.\nWith a second line.",
            "sub_problem_index": 0,
        },
    )


def record(session_id: str, *events: NewEvent) -> None:
    services.session_record_progress(session_id=session_id, events=events)


def finish(session_id: str, to: str = Status.COMPLETED) -> None:
    terminal = {
        Status.COMPLETED: NewEvent(
            "complete",
            {"synthesis": "Do it.", "total_cost": "0.01", "total_tokens": 10, "stop_reason": "x"},
        ),
        Status.FAILED: NewEvent("error", {"code": "provider_error", "message": "boom"}),
        Status.KILLED: NewEvent("killed", {"reason": "test"}),
    }[to]
    services.session_transition(session_id=session_id, to=to, events=[terminal])


def stream_path(session: DeliberationSession, query: str = "") -> str:
    return f"/api/v1/sessions/{session.id}/stream{query}"


# -- replay and framing -------------------------------------------------------------------------


def test_replays_every_event_in_order_with_sse_framing_and_ends_after_complete(running, auth):
    record(running.id, NewEvent("session_started", {}), contribution(1), contribution(2))
    finish(running.id)

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    events = stream.reader.events
    assert [e.event for e in events] == [
        "session_started",
        "contribution",
        "contribution",
        "complete",
    ]
    assert stream.reader.sequences() == [1, 2, 3, 4]
    stored = list(running.events.order_by("sequence"))
    for frame, event in zip(events, stored, strict=True):
        assert frame.payload == {
            "sequence": event.sequence,
            "event_type": event.event_type,
            "data": event.data,
            "created_at": event.created_at.isoformat(),
        }
    # Multi-line content travels as one JSON line, so each frame has exactly one data line.
    assert "With a second line" in events[1].payload["data"]["content"]
    assert stream.body.count(b"\ndata: ") == 4


def test_last_event_id_resumes_after_that_event(running, auth):
    record(running.id, *(contribution(n) for n in range(1, 6)))
    finish(running.id)

    async def scenario():
        resumed = await AsgiStream(stream_path(running), {**auth, "Last-Event-ID": "3"}).start()
        await resumed.until_finished()
        # Last-Event-ID wins over ?after=: EventSource keeps the URL it was opened with.
        both = await AsgiStream(
            stream_path(running, "?after=1"), {**auth, "Last-Event-ID": "4"}
        ).start()
        await both.until_finished()
        after = await AsgiStream(stream_path(running, "?after=5"), auth).start()
        await after.until_finished()
        return resumed, both, after

    resumed, both, after = run(scenario)
    assert resumed.reader.sequences() == [4, 5, 6]
    assert both.reader.sequences() == [5, 6]
    assert after.reader.sequences() == [6]


def test_invalid_after_is_400(running, auth):
    async def scenario():
        stream = await AsgiStream(stream_path(running, "?after=-1"), auth).start()
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert stream.status == 400
    assert "after" in json.loads(stream.body)


def test_replays_from_postgresql_when_the_redis_entries_are_gone(running, auth, clean_redis):
    record(running.id, contribution(1), contribution(2))
    finish(running.id)
    assert clean_redis.exists(stream_key(running.id))
    SessionCache.purge(running.id)
    assert SessionCache.keys_for(running.id) == []

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert stream.reader.sequences() == [1, 2, 3]
    assert stream.reader.events[-1].event == "complete"


@pytest.mark.parametrize(
    ("status", "terminal"), [(Status.FAILED, "error"), (Status.KILLED, "killed")]
)
def test_stream_ends_after_error_or_killed(running, auth, status, terminal):
    record(running.id, contribution(1))
    finish(running.id, status)

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert [e.event for e in stream.reader.events] == ["contribution", terminal]


def test_a_finished_session_ends_at_once_and_a_reconnect_gets_204(user, auth):
    # Failed without an error event (e.g. an operator marked it): nothing terminal to wait for.
    session = SessionFactory(user=user, status=Status.RUNNING)
    record(session.id, contribution(1))
    services.session_transition(session_id=session.id, to=Status.FAILED)

    async def scenario():
        stream = await AsgiStream(stream_path(session), auth).start()
        await stream.until_finished()
        again = await AsgiStream(stream_path(session), {**auth, "Last-Event-ID": "1"}).start()
        await again.until_finished()
        return stream, again

    stream, again = run(scenario)
    assert stream.status == 200 and stream.reader.sequences() == [1]
    assert again.status == 204 and again.body == b""


# -- live following -----------------------------------------------------------------------------


def test_follows_new_events_live_until_complete(running, auth):
    record(running.id, contribution(1))

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await stream.until_events(1)
        started = time.monotonic()
        await db(record)(running.id, contribution(2))
        await stream.until_events(2)
        first_latency = time.monotonic() - started
        await db(record)(running.id, contribution(3), contribution(4, round_number=2))
        await stream.until_events(4)
        assert not stream.finished.is_set()
        await db(finish)(running.id)
        await stream.until_finished()
        return stream, first_latency

    stream, latency = run(scenario)
    assert stream.reader.sequences() == [1, 2, 3, 4, 5]
    assert stream.reader.events[-1].event == "complete"
    assert latency < 3.0


def test_two_streams_of_one_session_at_different_positions_both_get_everything(running, auth):
    record(running.id, contribution(1), contribution(2), contribution(3))

    async def scenario():
        ahead = await AsgiStream(stream_path(running), auth).start()
        await ahead.until_events(3)
        behind = await AsgiStream(stream_path(running, "?after=1"), auth).start()
        await behind.until_events(2)
        await db(record)(running.id, contribution(4))
        await db(finish)(running.id)
        await ahead.until_finished()
        await behind.until_finished()
        return ahead, behind

    ahead, behind = run(scenario)
    assert ahead.reader.sequences() == [1, 2, 3, 4, 5]
    assert behind.reader.sequences() == [2, 3, 4, 5]


def test_an_event_missing_from_redis_is_read_from_postgresql(running, auth):
    record(running.id, contribution(1))

    def record_without_redis(session_id: str, event: NewEvent) -> None:
        with mock.patch.object(SessionCache, "append_events"):
            record(session_id, event)

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await stream.until_events(1)
        await db(record_without_redis)(running.id, contribution(2))
        await db(record)(running.id, contribution(3))  # Redis has 1 and 3: a gap
        await stream.until_events(3)
        await stream.close()
        return stream

    stream = run(scenario)
    assert stream.reader.sequences() == [1, 2, 3]


def test_keepalive_comments_come_at_the_configured_interval(running, auth, settings):
    settings.BO1_STREAM_KEEPALIVE_SECONDS = 0.2

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await stream.until(lambda: len(stream.reader.comments) >= 2, "two keep-alives")
        await stream.close()
        return stream

    stream = run(scenario)
    assert stream.reader.comments[:2] == ["keep-alive", "keep-alive"]
    assert stream.reader.frames[0].retry == "3000"


def test_the_keepalive_check_delivers_a_final_event_missing_from_redis(running, auth, settings):
    settings.BO1_STREAM_KEEPALIVE_SECONDS = 0.3

    def finish_without_redis(session_id: str) -> None:
        with mock.patch.object(SessionCache, "append_events"):
            finish(session_id)

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await db(finish_without_redis)(running.id)
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert [e.event for e in stream.reader.events] == ["complete"]


def test_polls_postgresql_while_redis_is_down(running, auth, settings):
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings.CACHES = caches
    settings.BO1_STREAM_POLL_SECONDS = 0.2

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        await db(record)(running.id, contribution(1))
        await stream.until_events(1)
        await db(finish)(running.id)
        await stream.until_finished()
        return stream

    stream = run(scenario)
    assert stream.reader.sequences() == [1, 2]


def test_a_client_that_disconnects_is_forgotten(running, auth):
    from sessions_app.api.stream import stream_hub

    async def scenario():
        stream = await AsgiStream(stream_path(running), auth).start()
        hub = stream_hub()
        await stream.until(lambda: hub.subscription_count == 1, "the subscription")
        await stream.close()
        return hub.subscription_count

    assert run(scenario) == 0


# -- access control -----------------------------------------------------------------------------


def _status_of(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async def scenario():
        stream = await AsgiStream(path, headers).start()
        await stream.until_finished()
        return stream.status, stream.headers, stream.body

    return run(scenario)


def test_without_credentials_is_401(running):
    status, headers, body = _status_of(stream_path(running), {})
    assert status == 401
    assert headers["www-authenticate"] == "Token"
    assert json.loads(body)["detail"]


def test_a_bad_token_is_401(running):
    status, _, _ = _status_of(stream_path(running), {"Authorization": "Token nope"})
    assert status == 401


def test_another_users_session_is_404(running, other_user):
    other_token = Token.objects.create(user=other_user).key
    status, _, body = _status_of(stream_path(running), {"Authorization": f"Token {other_token}"})
    assert status == 404
    assert json.loads(body) == {"detail": "No such session."}


def test_missing_and_deleted_sessions_are_404(user, auth):
    deleted = SessionFactory(user=user, status=Status.DELETED)
    missing = "bo1_00000000-0000-4000-8000-000000000000"
    assert _status_of(f"/api/v1/sessions/{missing}/stream", auth)[0] == 404
    assert _status_of(stream_path(deleted), auth)[0] == 404


def test_the_dashboard_login_cookie_is_accepted(running, user):
    record(running.id, contribution(1))
    finish(running.id)
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    status, _, body = _status_of(stream_path(running), {"Cookie": cookie})
    assert status == 200
    assert b"event: complete" in body


def test_the_schema_documents_the_stream_as_text_event_stream(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/sessions/{session_id}/stream"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"401", "404"} <= set(operation["responses"])
    names = {p["name"] for p in operation["parameters"]}
    assert {"after", "Last-Event-ID", "session_id"} <= names


# -- the real server ----------------------------------------------------------------------------


@pytest.mark.slow
def test_the_production_server_streams_replay_live_events_and_keepalives(running, token):
    record(running.id, contribution(1))
    web, base = start_web(BO1_STREAM_KEEPALIVE_SECONDS="0.5")
    reader = StreamReader()
    try:
        with httpx.Client(base_url=base, timeout=STREAM_TIMEOUT) as client:
            headers = {"Authorization": f"Token {token}", "Accept": "text/event-stream"}
            with client.stream("GET", stream_path(running), headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert response.headers["x-accel-buffering"] == "no"
                chunks = response.iter_raw()
                live_written = done = False
                deadline = time.monotonic() + 30
                for chunk in chunks:
                    reader.feed(chunk)
                    if reader.sequences() == [1] and not live_written:
                        record(running.id, contribution(2))
                        live_written = True
                    if len(reader.sequences()) == 2 and reader.comments and not done:
                        finish(running.id)
                        done = True
                    assert time.monotonic() < deadline, reader.frames
    finally:
        web.stop()
    assert reader.sequences() == [1, 2, 3]
    assert reader.events[-1].event == "complete"
    assert "keep-alive" in reader.comments


async def _open_raw_stream(port: int, path: str, token: str) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    return reader, writer


async def _read_until(reader: asyncio.StreamReader, marker: bytes, seen: bytearray) -> None:
    while marker not in seen:
        chunk = await reader.read(65536)
        if not chunk:
            raise AssertionError(f"stream closed before {marker!r}: {bytes(seen)[-300:]!r}")
        seen += chunk


def _stream_connections_to_test_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.slow
def test_one_server_process_holds_500_streams_and_keeps_answering(user, token):
    streams = 500
    sessions = [SessionFactory(user=user, status=Status.RUNNING) for _ in range(5)]
    for session in sessions:
        record(session.id, contribution(1))
    port = free_port()
    web, base = start_web(port=port)
    api_headers = {"Authorization": f"Token {token}"}

    async def scenario():
        opened = await asyncio.gather(
            *(
                _open_raw_stream(port, stream_path(sessions[i % len(sessions)]), token)
                for i in range(streams)
            )
        )
        seen = [bytearray() for _ in opened]
        await asyncio.gather(
            *(_read_until(r, b"id: 1\n", s) for (r, _), s in zip(opened, seen, strict=True))
        )
        # With every stream open, the API still answers quickly, and PostgreSQL is not
        # holding a connection per stream.
        async with httpx.AsyncClient(base_url=base, headers=api_headers, timeout=10) as client:
            timings = []
            for _ in range(10):
                started = time.monotonic()
                response = await client.get("/api/v1/sessions", params={"limit": 20})
                assert response.status_code == 200
                timings.append(time.monotonic() - started)
        connections = await db(_stream_connections_to_test_database)()
        # One live event reaches all 500, then the end.
        for session in sessions:
            await db(record)(session.id, contribution(2))
        await asyncio.gather(
            *(_read_until(r, b"id: 2\n", s) for (r, _), s in zip(opened, seen, strict=True))
        )
        for session in sessions:
            await db(finish)(session.id)
        await asyncio.gather(
            *(_read_until(r, b"event: complete", s) for (r, _), s in zip(opened, seen, strict=True))
        )
        for _, writer in opened:
            writer.close()
        return sorted(timings), connections

    try:
        timings, connections = run(scenario)
    finally:
        web.stop()
    assert timings[len(timings) // 2] < 0.5, timings  # median
    assert connections < 40, connections


def test_the_stream_is_a_real_drf_view_that_authenticates_with_drf(running, user):
    """DRF's dispatch serves it (no stand-in for the schema): its authentication classes, its
    permission and its exception handler decide, and a success is a streaming response."""
    from rest_framework.test import APIRequestFactory, force_authenticate

    from sessions_app.api.stream import SessionStreamView

    view = SessionStreamView.as_view()
    factory = APIRequestFactory()
    anonymous = view(factory.get(stream_path(running)), session_id=running.id)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    request = factory.get(stream_path(running), HTTP_ACCEPT="text/event-stream")
    force_authenticate(request, user=user)
    response = view(request, session_id=running.id)
    assert response.status_code == 200 and response.streaming and response.is_async
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert resolve(stream_path(running)).func.cls is SessionStreamView
