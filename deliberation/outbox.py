"""Writes a worker could not make yet: kept in order, mirrored to Redis, applied exactly once.

Each op is one PostgreSQL transaction (events + fields, or a status change with its events).
Events carry idempotency keys, so applying an op again after an ambiguous failure adds nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection

from sessions_app.cache import REDIS_ERRORS, redis_client
from sessions_app.models import Status
from sessions_app.redis_keys import OUTBOX_PATTERN, outbox_key, session_id_from_outbox_key
from sessions_app.services import (
    IllegalTransition,
    NewEvent,
    SessionNotFound,
    session_record_progress,
    session_transition,
)

logger = logging.getLogger(__name__)


@dataclass
class OutboxOp:
    kind: str  # "progress" or "transition"
    events: list[NewEvent] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    pause_reason: str = ""

    @classmethod
    def progress(cls, events: list[NewEvent], fields: dict[str, Any]) -> OutboxOp:
        return cls("progress", list(events), dict(fields))

    @classmethod
    def transition(
        cls, status: str, pause_reason: str, events: list[NewEvent], fields: dict[str, Any]
    ) -> OutboxOp:
        return cls("transition", list(events), dict(fields), status, pause_reason)

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "events": [[e.event_type, dict(e.data), e.idempotency_key] for e in self.events],
                "fields": self.fields,
                "status": self.status,
                "pause_reason": self.pause_reason,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> OutboxOp:
        data = json.loads(raw)
        events = [NewEvent(t, d, k) for t, d, k in data["events"]]
        return cls(data["kind"], events, data["fields"], data["status"], data["pause_reason"])

    def apply(self, session_id: str) -> bool:
        """Write this op; False when the session's status refuses it (paused, killed...)."""
        if self.kind == "progress":
            written = session_record_progress(
                session_id=session_id, events=self.events, fields=self.fields
            )
            return written is not None
        try:
            session_transition(
                session_id=session_id,
                to=self.status,
                expected=(Status.RUNNING,),
                pause_reason=self.pause_reason,
                events=self.events,
                fields=self.fields,
            )
        except IllegalTransition:
            return False
        return True


class Outbox:
    """The ordered writes of one session's run."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.pending: deque[OutboxOp] = deque(self._load_mirror())
        self.mirrored = bool(self.pending)
        self.last_refusal: str | None = None  # "database" or "status"

    def put(self, op: OutboxOp) -> None:
        self.pending.append(op)

    def flush(self) -> bool:
        """Apply kept ops in order; True when none is left."""
        self.last_refusal = None
        applied = 0
        while self.pending:
            op = self.pending[0]
            try:
                accepted = op.apply(self.session_id)
            except SessionNotFound:
                accepted = False
            # InterfaceError is not a DatabaseError: it is what a connection the server dropped
            # raises on its next use ("connection already closed").
            except (DatabaseError, InterfaceError) as exc:
                self.last_refusal = "database"
                logger.warning(
                    "PostgreSQL refused a write for session %s (%d kept): %s",
                    self.session_id,
                    len(self.pending),
                    exc,
                )
                self._reset_connection()
                self._save_mirror()
                return False
            if not accepted:
                # The session moved on without us (killed, paused, deleted): drop the rest.
                self.last_refusal = "status"
                self.pending.clear()
                self._save_mirror()
                return False
            self.pending.popleft()
            applied += 1
        if self.mirrored:  # these writes had been kept: say so, and clear the Redis copy
            logger.info("Applied %d kept writes for session %s", applied, self.session_id)
            self._save_mirror()
        return True

    def _reset_connection(self) -> None:
        with contextlib.suppress(DatabaseError, InterfaceError):
            connection.close()

    def _load_mirror(self) -> list[OutboxOp]:
        try:
            raw = redis_client().lrange(outbox_key(self.session_id), 0, -1)
        except REDIS_ERRORS:
            return []
        return [OutboxOp.from_json(item) for item in raw]

    def _save_mirror(self) -> None:
        """Keep the Redis copy equal to what is pending, for a worker or reconcile after us."""
        key = outbox_key(self.session_id)
        try:
            pipe = redis_client().pipeline()
            pipe.delete(key)
            if self.pending:
                pipe.rpush(key, *(op.to_json() for op in self.pending))
                pipe.expire(key, int(settings.SESSION_CACHE_TTL))
            pipe.execute()
            self.mirrored = bool(self.pending)
        except REDIS_ERRORS as exc:
            logger.warning("Outbox mirror for session %s not saved: %s", self.session_id, exc)


def sessions_with_kept_writes() -> list[str]:
    """Ids of sessions that have an outbox mirrored in Redis."""
    try:
        keys = redis_client().scan_iter(match=OUTBOX_PATTERN)
        return [session_id_from_outbox_key(k.decode()) for k in keys]
    except REDIS_ERRORS:
        return []
