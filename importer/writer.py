"""Writes prepared new sessions on a thread of its own while the import reads and merges the next.

An import alternates two kinds of work: Python reading and merging a session, and PostgreSQL
inserting the one before. One after the other they leave one of the two cores idle; with the
inserts on this thread they overlap (psycopg2 lets go of the GIL while PostgreSQL works). Each
session is still one transaction of its own (one batch of statements, see
services.imported_session_insert), written in the order given. The thread has its own database
connection, committing without waiting for the WAL flush like the import's.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable

from django.db import connection

from .services import NewSession, commits_without_waiting, imported_session_insert

logger = logging.getLogger(__name__)

# Sessions merged ahead of the writer at most: enough to ride out an uneven session, little memory.
DEPTH = 64
# The interpreter hands the GIL from a busy thread to a waiting one after this many seconds; the
# default (5 ms) would leave a finished insert waiting for the merge thread longer than it took.
SWITCH_INTERVAL = 0.0005

_STOP = object()


class SessionWriter:
    """`put` prepared sessions; `close` waits until every one is written (or, with `discard`,
    only the one being written). `written` is called on this thread after each commit."""

    def __init__(self, written: Callable[[NewSession], None]) -> None:
        self._written = written
        self._queue: queue.Queue[object] = queue.Queue(maxsize=DEPTH)
        self._discard = threading.Event()
        self.error: BaseException | None = None
        self._switch = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch, SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self._thread.start()

    def put(self, new: NewSession) -> None:
        """Queue a session (waits while the queue is full); raises what stopped the writer."""
        while True:
            self._raise_error()
            try:
                self._queue.put(new, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self, *, discard: bool = False) -> None:
        """Stop the thread once the queue is written (or at once, leaving the rest unwritten),
        then raise what stopped it early, if anything did."""
        if discard:
            self._discard.set()
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        sys.setswitchinterval(self._switch)
        self._raise_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _run(self) -> None:
        try:
            with commits_without_waiting():
                while not self._discard.is_set():
                    item = self._queue.get()
                    if item is _STOP:
                        break
                    assert isinstance(item, NewSession)
                    imported_session_insert(item)
                    self._written(item)
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()
