"""Server-Sent Events for one session: replay from PostgreSQL, then follow its Redis stream live."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from bo1site import jsoncodec
from vocabulary import FINISHED_STATUSES, TERMINAL_EVENTS

from ..cache import REDIS_ERRORS, stream_key
from ..models import DeliberationSession
from ..selectors import session_events_after, sessions_visible_to
from .views import error_responses

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPLAY_PAGE = 500
# How long the shared reader blocks in XREAD; a session whose stream starts meanwhile joins the
# next read, so this bounds the extra delay of its first live events.
HUB_BLOCK_MS = 1000
HUB_READ_COUNT = 500
# A subscriber that falls this far behind drops Redis entries and catches up from PostgreSQL.
MAX_PENDING = 1000
RECONNECT_MS = 3000
# Streams touch PostgreSQL only through these threads: however many streams are open, a process
# holds at most this many database connections for them, and none per waiting stream.
DB_THREADS = 8
# Unlike per-request threads, these live as long as the process, so they may keep a connection
# between calls (whatever CONN_MAX_AGE says for requests); it is replaced when it breaks or ages.
DB_CONNECTION_MAX_AGE = 300.0
_db_executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="sse-db")
_db_thread = threading.local()


def _run_with_connection(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    conn = connections[DEFAULT_DB_ALIAS]
    opened_at = getattr(_db_thread, "opened_at", 0.0)
    if conn.connection is not None and time.monotonic() - opened_at > DB_CONNECTION_MAX_AGE:
        conn.close()
    before = conn.connection
    try:
        result = func(*args, **kwargs)
    except DatabaseError:
        conn.close()  # never reuse a connection that failed: the next call opens a fresh one
        raise
    if conn.connection is not None and conn.connection is not before:
        _db_thread.opened_at = time.monotonic()
    return result


async def db_call(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ORM code in one of the stream threads."""
    return await sync_to_async(_run_with_connection, thread_sensitive=False, executor=_db_executor)(
        func, *args, **kwargs
    )


def keepalive_seconds() -> float:
    return float(settings.BO1_STREAM_KEEPALIVE_SECONDS)


def poll_seconds() -> float:
    return float(settings.BO1_STREAM_POLL_SECONDS)


def sse_frame(event: dict[str, Any]) -> str:
    """One event in the SSE wire format; its JSON holds no raw newline."""
    event_type = str(event["event_type"]).replace("\r", " ").replace("\n", " ")
    data = jsoncodec.dumps(event).decode().lstrip()
    return f"id: {event['sequence']}\nevent: {event_type}\ndata: {data}\n\n"


class LiveEvent(dict[str, Any]):
    """An event the hub read from Redis: all its watchers send one frame, rendered once."""

    @cached_property
    def frame(self) -> str:
        return sse_frame(self)


KEEPALIVE_FRAME = ": keep-alive\n\n"


# -- the shared Redis reader --------------------------------------------------------------------


class Subscription:
    """One open stream's inbox: events the hub read from Redis, and a wake-up flag.

    The stream waits on one bare future with a timer: a thousand streams wake for every event
    batch, and `asyncio.wait_for` on an `asyncio.Event` costs a task and two more futures per
    wait.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.overflowed = False
        self._events: list[dict[str, Any]] = []
        self._ready = False
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, event: dict[str, Any]) -> None:
        if len(self._events) >= MAX_PENDING:
            self.overflowed = True
        else:
            self._events.append(event)
        self.nudge()

    def nudge(self) -> None:
        self._ready = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until something is delivered or nudged, or `timeout` seconds have passed."""
        if self._ready or timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _settle, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def take(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        self._ready = False
        return events


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class StreamHub:
    """Follows every session streamed by this process with one XREAD BLOCK on one connection.

    Open streams cost no Redis connection each; the hub keeps a cursor per session and fans each
    entry out to the subscriptions of that session. There is one hub per event loop, which under
    the ASGI server means one per process.
    """

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._client: aioredis.Redis | None = None
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._cursors: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        # False while Redis cannot be read: subscriptions then poll PostgreSQL instead.
        self.available = True

    def subscribe(self, session_id: str, after: int) -> Subscription:
        subscription = Subscription(session_id)
        self._subscriptions.setdefault(session_id, set()).add(subscription)
        # A late joiner that is behind pulls the cursor back; the others drop the repeats.
        self._cursors[session_id] = min(self._cursors.get(session_id, after), after)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow(), name="sse-hub")
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscriptions = self._subscriptions.get(subscription.session_id)
        if subscriptions is None:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._subscriptions[subscription.session_id]
            self._cursors.pop(subscription.session_id, None)

    @property
    def subscription_count(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            connect_timeout = float(settings.REDIS_SOCKET_TIMEOUT)
            self._client = aioredis.Redis.from_url(
                self._redis_url,
                decode_responses=True,
                socket_connect_timeout=connect_timeout,
                # A blocking read legitimately waits HUB_BLOCK_MS before answering.
                socket_timeout=HUB_BLOCK_MS / 1000 + max(connect_timeout, 1.0) + 2,
                health_check_interval=30,
            )
        return self._client

    async def _follow(self) -> None:
        try:
            while self._subscriptions:
                try:
                    await self._read_once()
                except REDIS_ERRORS as exc:
                    self._set_available(False, exc)
                    await asyncio.sleep(poll_seconds())
                except Exception:  # never let the reader die: streams would silently stall
                    logger.exception("Event stream reader failed; retrying")
                    self._set_available(False, None)
                    await asyncio.sleep(poll_seconds())
        finally:
            self._task = None
            client, self._client = self._client, None
            if client is not None:
                await client.aclose()

    def _set_available(self, available: bool, exc: BaseException | None) -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            logger.info("Redis is readable again; live event streams follow it")
        else:
            logger.warning("Redis unreadable (%s); event streams poll PostgreSQL", exc)
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.nudge()

    async def _read_once(self) -> None:
        started = dict(self._cursors)
        keys = {stream_key(session_id): session_id for session_id in started}
        reply = await self._redis().xread(
            {key: f"{started[session_id]}-0" for key, session_id in keys.items()},
            count=HUB_READ_COUNT,
            block=HUB_BLOCK_MS,
        )
        self._set_available(True, None)
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        for key, entries in items:
            session_id = keys.get(key)
            if session_id is None:
                continue
            newest = started[session_id]
            for _entry_id, fields in entries:
                try:
                    event = LiveEvent(jsoncodec.loads(fields["event"]))
                    newest = max(newest, int(event["sequence"]))
                except (KeyError, TypeError, ValueError):
                    # The subscriber sees a gap and reads the event from PostgreSQL.
                    logger.warning("Skipping malformed stream entry %s in %s", _entry_id, key)
                    continue
                for subscription in self._subscriptions.get(session_id, ()):
                    subscription.deliver(event)
            # Only advance a cursor nobody pulled back while this read was in flight.
            if self._cursors.get(session_id) == started[session_id]:
                self._cursors[session_id] = newest


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = weakref.WeakKeyDictionary()


def stream_hub() -> StreamHub:
    """This event loop's hub (connections belong to a loop, so each loop has its own)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = StreamHub(settings.CACHES["default"]["LOCATION"])
    return hub


# -- reads from PostgreSQL ----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvents:
    """What PostgreSQL holds after a sequence number, and whether more can ever come."""

    events: list[dict[str, Any]]
    finished: bool
    last_sequence: int


def stored_events_after(session_id: str, after: int) -> StoredEvents:
    """The session's events after `after` (one page), read after its status."""
    row = (
        DeliberationSession.objects.filter(pk=session_id)
        .values_list("status", "last_sequence")
        .first()
    )
    if row is None:  # purged meanwhile
        return StoredEvents(events=[], finished=True, last_sequence=after)
    status, last_sequence = row
    events = (
        session_events_after(session_id=session_id, after=after, limit=REPLAY_PAGE)
        if last_sequence > after
        else []
    )
    return StoredEvents(events, status in FINISHED_STATUSES, last_sequence)


# -- the view -----------------------------------------------------------------------------------


def _json_error(status: int, detail: str, **headers: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status, headers=headers)


def open_stream(
    request: HttpRequest, session_id: str, after: int, resuming: bool
) -> HttpResponse | None:
    """Authenticate as the API does (token, then login cookie); None when the stream may start.

    Another user's session is 404, like a missing one. A reconnect (`resuming`) to a finished
    session with nothing left to send is 204, which tells EventSource to stop reconnecting.
    """
    authenticators = [auth() for auth in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    drf_request = Request(request, authenticators=authenticators)
    challenge = authenticators[0].authenticate_header(drf_request) if authenticators else None
    auth_headers = {"WWW-Authenticate": challenge} if challenge else {}
    try:
        user = drf_request.user
    except APIException as exc:
        return _json_error(exc.status_code, str(exc.detail), **auth_headers)
    if not user or not user.is_authenticated:
        return _json_error(401, "Authentication credentials were not provided.", **auth_headers)
    if not sessions_visible_to(user).filter(pk=session_id).exists():
        return _json_error(404, "No such session.")
    if resuming:
        stored = stored_events_after(session_id, after)
        if stored.finished and not stored.events:
            return HttpResponse(status=204, headers={"Cache-Control": "no-cache"})
    return None


def requested_position(request: HttpRequest) -> tuple[int | None, bool]:
    """Where to resume, and whether this is a reconnect: Last-Event-ID (sent by EventSource
    when it reconnects), else ?after=, else the start."""
    after = request.GET.get("after", "0").strip() or "0"
    if not is_sequence(after):  # refused even beside a Last-Event-ID: the URL must be valid
        return None, False
    last_event_id = request.headers.get("Last-Event-ID", "").strip()
    if is_sequence(last_event_id):
        return int(last_event_id), True
    return int(after), False


def is_sequence(text: str) -> bool:
    # ASCII only: "²".isdigit() is true, and int("²") raises.
    return text.isascii() and text.isdigit()


class Cursor:
    """The last sequence number sent, and whether the stream is over."""

    def __init__(self, session_id: str, after: int) -> None:
        self.session_id = session_id
        self.last = after
        self.over = False
        self.database_failing = False

    def frame(self, event: dict[str, Any]) -> str:
        self.last = event["sequence"]
        self.over = event["event_type"] in TERMINAL_EVENTS
        return event.frame if isinstance(event, LiveEvent) else sse_frame(event)

    async def from_database(self) -> AsyncIterator[str]:
        """Everything PostgreSQL has after `last`, page by page, up to a terminal event."""
        while True:
            try:
                stored = await db_call(stored_events_after, self.session_id, self.last)
            except DatabaseError as exc:
                # The stream stays open and polls until PostgreSQL answers again.
                if not self.database_failing:
                    logger.warning("Stream of %s cannot read PostgreSQL: %s", self.session_id, exc)
                self.database_failing = True
                return
            self.database_failing = False
            for event in stored.events:
                yield self.frame(event)
                if self.over:
                    return
            if stored.finished and self.last >= stored.last_sequence:
                self.over = True
                return
            if len(stored.events) < REPLAY_PAGE:
                return


async def session_events(session_id: str, after: int) -> AsyncIterator[str]:
    """The event stream: replay from PostgreSQL, then live from Redis, never skipping a number."""
    cursor = Cursor(session_id, after)
    yield f"retry: {RECONNECT_MS}\n\n"
    async for frame in cursor.from_database():
        yield frame
    if cursor.over:
        return

    hub = stream_hub()
    subscription = hub.subscribe(session_id, cursor.last)
    loop = asyncio.get_running_loop()
    keepalive_at = loop.time() + keepalive_seconds()
    poll_at = loop.time() + poll_seconds()
    try:
        while True:
            polling = not hub.available or cursor.database_failing
            deadline = min(keepalive_at, poll_at) if polling else keepalive_at
            await subscription.wait(deadline - loop.time())
            read_database = subscription.overflowed
            subscription.overflowed = False
            for event in sorted(subscription.take(), key=lambda e: e["sequence"]):
                if event["sequence"] <= cursor.last:
                    continue
                if event["sequence"] != cursor.last + 1:
                    read_database = True  # Redis lost or trimmed some; PostgreSQL has them all
                    break
                yield cursor.frame(event)
                if cursor.over:
                    return
            now = loop.time()
            if polling and now >= poll_at:
                read_database = True
            keepalive_due = now >= keepalive_at
            # Each keep-alive also asks PostgreSQL: an event whose Redis copy was skipped, or a
            # deletion, must not leave the stream waiting for ever.
            if read_database or keepalive_due:
                poll_at = now + poll_seconds()
                async for frame in cursor.from_database():
                    yield frame
                if cursor.over:
                    return
            if keepalive_due:
                keepalive_at = loop.time() + keepalive_seconds()
                yield KEEPALIVE_FRAME
    finally:
        hub.unsubscribe(subscription)


async def session_stream(request: HttpRequest, session_id: str) -> HttpResponseBase:
    """GET /api/v1/sessions/{id}/stream: the session's events as Server-Sent Events."""
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    after, resuming = requested_position(request)
    if after is None:
        return JsonResponse({"after": ["A non-negative integer is required."]}, status=400)
    refused = await db_call(open_stream, request, session_id, after, resuming)
    if refused is not None:
        return refused
    # The charset given outright: otherwise each frame's encoding looks it up in the header again
    # with a regular expression (1.7 -> 0.25 us per frame).
    response = StreamingHttpResponse(
        session_events(session_id, after),
        content_type="text/event-stream; charset=utf-8",
        charset="utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


class SessionStreamView(APIView):
    """The stream's OpenAPI description; requests are served by the async `session_stream`."""

    @extend_schema(
        operation_id="sessions_stream",
        summary="Follow a session live (Server-Sent Events)",
        description=(
            "Replays the session's events after `Last-Event-ID` (or `?after=`, or from the "
            "start), then sends each new event as it happens: `id: <sequence>`, "
            "`event: <event_type>`, `data: {sequence, event_type, data, created_at}`. A "
            "`: keep-alive` comment comes every 15 seconds. The stream ends after `complete`, "
            "`error` or `killed`; a reconnect to a finished session with nothing left to send "
            "gets 204."
        ),
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0},
                OpenApiParameter.QUERY,
                description="Replay events after this sequence number (default 0).",
            ),
            OpenApiParameter(
                "Last-Event-ID",
                str,
                OpenApiParameter.HEADER,
                description="Set by EventSource on reconnect; takes precedence over `after`.",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                OpenApiTypes.STR, "The event stream, in the text/event-stream format."
            ),
            204: OpenApiResponse(description="The session is finished; nothing is left to send."),
            **error_responses(400, 401, 404, 503),
        },
    )
    def get(self, request: Request, session_id: str) -> HttpResponseBase:
        raise NotImplementedError("served by session_stream")

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        async def view(request: HttpRequest, session_id: str) -> HttpResponseBase:
            return await session_stream(request, session_id)

        # What DRF's as_view leaves on its views: the schema generator looks for these.
        view.cls = cls  # type: ignore[attr-defined]
        view.initkwargs = initkwargs  # type: ignore[attr-defined]
        return view
