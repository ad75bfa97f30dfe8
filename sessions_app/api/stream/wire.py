"""The Server-Sent Events wire format: frames, keep-alives, and where a client resumes."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.http import HttpRequest

from bo1site.serving import jsoncodec

# EventSource waits this long before it reconnects after a dropped connection.
RECONNECT_MS = 3000
RETRY_FRAME = f"retry: {RECONNECT_MS}\n\n"
KEEPALIVE_FRAME = ": keep-alive\n\n"


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


def requested_position(request: HttpRequest) -> tuple[int | None, bool]:
    """Where to resume, and whether this is a reconnect: Last-Event-ID (sent by EventSource
    when it reconnects), else ?after=, else the start. None when ?after= is not a number."""
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
