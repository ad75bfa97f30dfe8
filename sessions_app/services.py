"""Writes to the session store: PostgreSQL first, then Redis once the transaction commits."""

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from bo1site.serving.db.prepared import Param, PreparedInsert, PreparedQuery

from .cache import SessionCache
from .models import FINISHED_STATUSES, DeliberationSession, PauseReason, SessionEvent, Status
from .signals import session_status_changed
from .snapshots import session_snapshot

logger = logging.getLogger(__name__)

# The lifecycle (DESIGN.md): from-status -> the statuses it may move to.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.CREATED: frozenset({Status.QUEUED, Status.KILLED, Status.DELETED}),
    Status.QUEUED: frozenset({Status.RUNNING, Status.FAILED, Status.KILLED, Status.DELETED}),
    Status.RUNNING: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.KILLED, Status.PAUSED, Status.DELETED}
    ),
    Status.PAUSED: frozenset({Status.QUEUED, Status.KILLED, Status.DELETED}),
    Status.COMPLETED: frozenset({Status.DELETED}),
    Status.FAILED: frozenset({Status.DELETED}),
    Status.KILLED: frozenset({Status.DELETED}),
    Status.DELETED: frozenset(),
}

# Fields a transition or a progress update may set besides the status itself.
PROGRESS_FIELDS = frozenset(
    {
        "phase",
        "round_number",
        "personas",
        "contribution_count",
        "clarification_question",
        "total_cost",
        "cost_limit",
        "total_tokens",
        "costs_by_phase",
        "synthesis_text",
        "final_recommendation",
        "error",
        "checkpoint",
        "last_activity_at",
        "problem_context",
    }
)


class SessionNotFound(Exception):
    """No such session (or not this user's)."""


class IllegalTransition(Exception):
    """The session's status does not allow the requested change."""

    def __init__(self, session_id: str, current: str, requested: str) -> None:
        self.session_id, self.current, self.requested = session_id, current, requested
        super().__init__(f"Session {session_id} is '{current}'; it cannot become '{requested}'.")


class SessionConflict(IllegalTransition):
    """Someone else changed the status between our read and our write."""


def _assign(session: DeliberationSession, name: str, value: Any) -> None:
    """Set a field on the in-memory row as the database will read it back (e.g. "1.5" → Decimal)."""
    field = DeliberationSession._meta.get_field(name)
    setattr(session, name, field.to_python(value))  # type: ignore[union-attr]


def can_transition(current: str, requested: str) -> bool:
    return requested in TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True)
class NewEvent:
    """An event to append; `idempotency_key` makes a retried append a no-op."""

    event_type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None


# The INSERT of a new session, compiled once and prepared per connection
# (bo1site/serving/db/prepared.py).
SESSION_INSERT = PreparedInsert("bo1_session_insert", DeliberationSession)


def session_create(
    *,
    user: User,
    problem_statement: str,
    problem_context: dict[str, Any] | None = None,
    max_rounds: int = 6,
    idempotency_key: str | None = None,
) -> tuple[DeliberationSession, bool]:
    """Create a session in PostgreSQL, then its hot entry; returns (session, created).

    With an idempotency key already used by this user, the existing session is returned.
    """
    if idempotency_key:
        existing = DeliberationSession.objects.filter(
            user=user, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return existing, False
    session = DeliberationSession(
        user=user,
        problem_statement=problem_statement,
        problem_context=problem_context or {},
        max_rounds=max_rounds,
        idempotency_key=idempotency_key or None,
    )
    # Outside a transaction the INSERT is atomic on its own (with the trigger that counts it):
    # one round trip instead of BEGIN, INSERT, COMMIT. Inside one, a savepoint keeps the
    # caller's transaction usable when a concurrent retry wins the idempotency key.
    in_transaction = transaction.get_connection().in_atomic_block
    try:
        with transaction.atomic() if in_transaction else contextlib.nullcontext():
            SESSION_INSERT.insert(session)
    except IntegrityError:
        if idempotency_key:  # a concurrent retry won the race: answer with its session
            return DeliberationSession.objects.get(
                user=user, idempotency_key=idempotency_key
            ), False
        raise

    def write_hot_entry() -> None:
        if SessionCache.set(session.id, session_snapshot(session)):
            logger.info(
                "Created session: %s for user: %s (saved to both Redis and PostgreSQL)",
                session.id,
                session.user_id,
            )
        else:
            logger.warning(
                "Created session: %s for user: %s (saved to PostgreSQL; Redis write skipped)",
                session.id,
                session.user_id,
            )

    transaction.on_commit(write_hot_entry)
    return session, True


def _append_events(
    session: DeliberationSession, events: Iterable[NewEvent], now: Any
) -> list[SessionEvent]:
    """Insert events after the session's last sequence; the caller holds the row lock."""
    events = list(events)
    keys = [e.idempotency_key for e in events if e.idempotency_key]
    seen = set(
        SessionEvent.objects.filter(session=session, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
        if keys
        else ()
    )
    rows = []
    for event in events:
        if event.idempotency_key and event.idempotency_key in seen:
            continue
        seen.add(event.idempotency_key)
        session.last_sequence += 1
        rows.append(
            SessionEvent(
                session=session,
                sequence=session.last_sequence,
                event_type=event.event_type,
                data=dict(event.data),
                idempotency_key=event.idempotency_key,
                created_at=now,
            )
        )
    if rows:
        SessionEvent.objects.bulk_create(rows)
    return rows


def _after_commit_publish(
    session: DeliberationSession, rows: list[SessionEvent], *, with_entry: bool
) -> None:
    """After commit: the new events go to the live stream, and the hot entry is rewritten."""
    snapshot = session_snapshot(session) if with_entry else None
    payload = [event_payload(row) for row in rows]

    def publish() -> None:
        SessionCache.append_events(session.id, payload, entry=snapshot)

    transaction.on_commit(publish)


def event_payload(event: SessionEvent) -> dict[str, Any]:
    """An event as the API and the stream carry it."""
    return {
        "sequence": event.sequence,
        "event_type": event.event_type,
        "data": event.data,
        "created_at": event.created_at.isoformat(),
    }


def session_transition(
    *,
    session_id: str,
    to: str,
    expected: Iterable[str] | None = None,
    pause_reason: str = "",
    events: Iterable[NewEvent] = (),
    fields: Mapping[str, Any] | None = None,
) -> DeliberationSession:
    """The one place a status changes: checks the transition, guards against a concurrent change.

    `expected` narrows the statuses the caller accepts to start from; `events` are appended in
    the same transaction; `fields` are progress fields written with the status.
    """
    updates = dict(fields or {})
    unknown = set(updates) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"session_transition cannot set {sorted(unknown)}")
    with transaction.atomic():
        try:
            session = DeliberationSession.objects.select_for_update().get(pk=session_id)
        except DeliberationSession.DoesNotExist:
            raise SessionNotFound(session_id) from None
        old = session.status
        if (expected is not None and old not in set(expected)) or not can_transition(old, to):
            raise IllegalTransition(session_id, old, to)
        now = timezone.now()
        updates.update(status=to, status_changed_at=now, updated_at=now)
        updates["pause_reason"] = pause_reason if to == Status.PAUSED else ""
        if to == Status.PAUSED and pause_reason not in PauseReason.values:
            raise ValueError(f"pause_reason must be one of {PauseReason.values}")
        if to == Status.RUNNING and session.started_at is None:
            updates["started_at"] = now
        if to in FINISHED_STATUSES and to != Status.DELETED and session.completed_at is None:
            updates["completed_at"] = now
        if to != Status.PAUSED or pause_reason != PauseReason.CLARIFICATION:
            updates.setdefault("clarification_question", "")
        for name, value in updates.items():
            _assign(session, name, value)
        rows = _append_events(session, events, now)
        # The row lock makes this guard redundant today; it keeps the contract if the lock goes.
        changed = (
            DeliberationSession.objects.filter(pk=session_id, status=old).update(
                last_sequence=session.last_sequence, **updates
            )
            == 1
        )
        if not changed:
            raise SessionConflict(session_id, old, to)
        session_status_changed.send(
            sender=DeliberationSession, session_id=session_id, old_status=old, new_status=to
        )
        if rows:  # the signal's receiver refreshes the entry itself
            _after_commit_publish(session, rows, with_entry=False)
    logger.info("Updated session %s status to '%s' in PostgreSQL", session_id, to)
    return session


# Each engine step locks its session's row. The checkpoint grows with the transcript and is
# only ever written by a progress update, never read, so it stays out of the locked read; the
# query is compiled once (bo1site/serving/db/prepared.py): building it through the ORM on every
# step cost more CPU than PostgreSQL spends answering it.
PROGRESS_LOCK = PreparedQuery(
    "bo1_session_lock",
    lambda: (
        DeliberationSession.objects.select_for_update()
        .defer("checkpoint")
        .filter(pk=Param("session_id"))
    ),
)


def _lock_for_progress(session_id: str) -> DeliberationSession:
    """The session's row, locked until the transaction ends."""
    session = PROGRESS_LOCK.first(session_id=session_id)
    if session is None:
        raise SessionNotFound(session_id)
    return session


def session_record_progress(
    *,
    session_id: str,
    events: Iterable[NewEvent] = (),
    fields: Mapping[str, Any] | None = None,
    require_status: Iterable[str] = (Status.RUNNING,),
) -> list[SessionEvent] | None:
    """Append events and progress fields in one transaction, only while the status allows it.

    Returns the events written (already-written idempotency keys are skipped), or None when the
    session is no longer in one of `require_status` (it was paused, killed or deleted meanwhile).
    """
    updates = dict(fields or {})
    unknown = set(updates) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"session_record_progress cannot set {sorted(unknown)}")
    with transaction.atomic():
        session = _lock_for_progress(session_id)
        if session.status not in set(require_status):
            return None
        now = timezone.now()
        rows = _append_events(session, events, now)
        updates["updated_at"] = now
        if rows:
            updates.setdefault("last_activity_at", now)
        for name, value in updates.items():
            _assign(session, name, value)
        DeliberationSession.objects.filter(pk=session_id).update(
            last_sequence=session.last_sequence, **updates
        )
        _after_commit_publish(session, rows, with_entry=True)
    return rows


def session_soft_delete(*, session_id: str) -> DeliberationSession:
    """Hide a session from lists; its rows stay in PostgreSQL. An unfinished one is killed first."""
    with transaction.atomic():
        current = DeliberationSession.objects.filter(pk=session_id).values_list("status", flat=True)
        if current and current[0] not in FINISHED_STATUSES:
            session_transition(
                session_id=session_id,
                to=Status.KILLED,
                events=[NewEvent("killed", {"reason": "deleted"})],
            )
        return session_transition(session_id=session_id, to=Status.DELETED)


def session_cache_refresh(*, session_id: str) -> dict[str, Any] | None:
    """Rewrite a session's hot entry from PostgreSQL; returns the snapshot written."""
    return SessionCache.refresh(session_id)


def session_counts_fold() -> int:
    """Fold the per-connection count changes into the per-user counters; returns the rows moved.

    The list's total is exact with or without it; folding keeps the changes few, so the count
    stays a handful of rows. The periodic repair runs it.
    """
    with connection.cursor() as cursor:
        cursor.callproc("session_counts_fold")
        return int(cursor.fetchone()[0])


def session_purge(*, session_id: str) -> None:
    """Remove a session for good from both stores (verification data, tests, operators)."""
    DeliberationSession.objects.filter(pk=session_id).delete()
    SessionCache.purge(session_id)
