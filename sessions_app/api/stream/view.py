"""GET /api/v1/sessions/{id}/stream: replay from PostgreSQL, then follow the Redis stream live.

The view is a plain DRF view: DRF's authentication classes, permission and exception handler
decide who may open a stream, on the request threads like every API call. What it returns is a
streaming response whose body is an async generator, which the ASGI server runs on its event
loop; no thread waits while a stream is open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from vocabulary import TERMINAL_EVENTS

from ...selectors import sessions_visible_to
from ..negotiation import JSONErrorsOnly
from ..views import error_responses
from .hub import poll_seconds, stream_hub
from .replay import REPLAY_PAGE, db_call, stored_events_after
from .wire import KEEPALIVE_FRAME, RETRY_FRAME, LiveEvent, requested_position, sse_frame

logger = logging.getLogger(__name__)


def keepalive_seconds() -> float:
    return float(settings.BO1_STREAM_KEEPALIVE_SECONDS)


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
    yield RETRY_FRAME
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


class SessionStreamView(APIView):
    """A session's events as Server-Sent Events; errors are JSON, whatever the Accept header."""

    http_method_names = ["get"]
    content_negotiation_class = JSONErrorsOnly

    @extend_schema(
        operation_id="sessions_stream",
        summary="Follow a session live (Server-Sent Events)",
        description=(
            "Replays the session's events after `Last-Event-ID` (or `?after=`, or from the "
            "start), then sends each new event as it happens: `id: <sequence>`, "
            "`event: <event_type>`, `data: {sequence, event_type, data, created_at}`. A "
            "`: keep-alive` comment comes every 15 seconds. The stream ends after "
            f"{', '.join(f'`{name}`' for name in sorted(TERMINAL_EVENTS))}; a reconnect to a "
            "finished session with nothing left to send gets 204."
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
    def get(self, request: Request, session_id: str) -> HttpResponse | Response:
        after, resuming = requested_position(request)
        if after is None:
            return Response({"after": ["A non-negative integer is required."]}, status=400)
        # Another user's session is 404, like a missing one.
        if not sessions_visible_to(request.user).filter(pk=session_id).exists():
            raise NotFound("No such session.")
        if resuming:
            stored = stored_events_after(session_id, after)
            if stored.finished and not stored.events:
                # Tells EventSource to stop reconnecting.
                return HttpResponse(status=204, headers={"Cache-Control": "no-cache"})
        # The charset given outright: otherwise each frame's encoding looks it up in the header
        # again with a regular expression.
        response = StreamingHttpResponse(
            session_events(session_id, after),
            content_type="text/event-stream; charset=utf-8",
            charset="utf-8",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
