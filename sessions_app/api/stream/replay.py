"""The stream's reads from PostgreSQL, on a few long-lived threads of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from vocabulary import FINISHED_STATUSES

from ...models import DeliberationSession
from ...selectors import session_events_after

T = TypeVar("T")

REPLAY_PAGE = 500
# Streams touch PostgreSQL only through these threads: however many streams are open, a process
# holds at most this many database connections for them, and none per waiting stream. They are
# not the request threads, so a burst of replays never queues the API's requests behind it.
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
