"""Writes of the import: users matched or created, and one whole session per transaction."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from bo1site.serving.db.prepared import PreparedInsert
from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent, Status
from sessions_app.snapshots import session_snapshot

from .events import event_data
from .mapping import Merged
from .models import ImportedSession, SessionVote
from .values import BrokenRecord

logger = logging.getLogger(__name__)

Outcome = Literal["imported", "updated", "unchanged"]


@contextlib.contextmanager
def commits_without_waiting() -> Iterator[None]:
    """This thread's connection commits without waiting for the WAL flush, while inside.

    A crash of PostgreSQL mid-import may lose the last few sessions committed (never part of
    one: each is still atomic); a rerun brings them back. No other connection is affected.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:  # the connection broke (Ctrl-C inside a query): nothing to reset
            connection.close()


def user_for_email(*, email: str, dry_run: bool = False) -> tuple[User | None, bool]:
    """Our user with this email (any case); a missing one is created. Returns (user, created).

    A created user has the email as username and an unusable password: they choose one through
    the usual password reset. In a dry run nothing is created and (None, True) says it would be.
    """
    model = get_user_model()
    matches = list(model.objects.filter(email__iexact=email).order_by("id")[:2])
    if len(matches) > 1:
        raise BrokenRecord(f"user {email}: more than one of our users has this email")
    if matches:
        return matches[0], False
    if model.objects.filter(username__iexact=email).exists():
        raise BrokenRecord(f"user {email}: the username is taken by a user with another email")
    if dry_run:
        return None, True
    user = model(username=email, email=email)
    user.set_unusable_password()
    user.save()
    logger.debug("Created user %s for imported sessions (no password yet)", email)
    return user, True


def _votes(merged: Merged, session: DeliberationSession) -> list[SessionVote]:
    return [
        SessionVote(
            session=session,
            source_id=vote["source_id"],
            sub_problem_index=vote.get("sub_problem_index"),
            persona_code=vote["persona_code"],
            persona_name=vote.get("persona_name") or "",
            recommendation=vote["recommendation"],
            reasoning=vote.get("reasoning") or "",
            confidence=Decimal(vote["confidence"]) if vote.get("confidence") is not None else None,
            conditions=vote.get("conditions") or [],
            weight=Decimal(vote["weight"]) if vote.get("weight") is not None else None,
            created_at=vote["created_at"],
        )
        for vote in merged.votes
    ]


# Each table's INSERT, compiled once by the ORM (bo1site/serving/db/prepared.py); a session's
# rows are bound into it and sent together.
INSERTS = {
    model: PreparedInsert(f"bo1_import_{model._meta.db_table}", model)
    for model in (DeliberationSession, SessionVote, ImportedSession)
}
EVENT_COLUMNS = ("session_id", "sequence", "event_type", "data", "idempotency_key", "created_at")


def _events_sql(cursor: Any, session_id: str, first: int, events: list[Any]) -> bytes:
    """The INSERT of a session's events into SessionEvent's table, values bound by psycopg2.

    The same rows bulk_create writes, without a model instance per event: three million events
    through the ORM's field conversions cost more CPU than the whole rest of an import.
    """
    meta = SessionEvent._meta
    names = ", ".join(str(meta.get_field(c).column) for c in EVENT_COLUMNS)  # type: ignore[union-attr]
    row = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    values: list[Any] = []
    for offset, event in enumerate(events):
        values += (
            session_id,
            first + offset,
            event.event_type,
            orjson.dumps(event_data(event)).decode(),
            event.key,
            event.timestamp,
        )
    statement = f"INSERT INTO {meta.db_table} ({names}) VALUES " + ", ".join([row] * len(events))  # noqa: S608
    return bytes(cursor.mogrify(statement, values))


def _statements(objs: list[Any], events: tuple[str, int, list[Any]] | None = None) -> str:
    """Model instances, then events, as one batch of INSERT statements with their values bound."""
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg2's own cursor under Django's wrapper (for mogrify)
        parts = [INSERTS[type(obj)].statement(obj, raw) for obj in objs]
        if events is not None and events[2]:
            parts.insert(1, _events_sql(raw, *events))  # after the session they reference
    return b";".join(parts).decode()


def _execute(sql: str) -> None:
    """Run a batch of statements in one round trip: on its own (autocommit) PostgreSQL runs
    them as one transaction, and inside a transaction they are part of it."""
    with connection.cursor() as cursor:
        cursor.execute(sql)


@dataclass(frozen=True)
class NewSession:
    """A new session's rows as one batch of statements, ready to send, and its hot entry."""

    session_id: str
    sql: str
    snapshot: dict[str, Any]
    events: int
    votes: int


def imported_session_prepare(*, merged: Merged, user: User) -> NewSession:
    """Everything a new session writes, built without touching the database: the session, its
    votes, its provenance and its events as INSERT statements."""
    session = DeliberationSession(id=merged.id, user=user, **merged.fields)
    session.last_sequence = len(merged.events)
    votes = _votes(merged, session)
    record = ImportedSession(session=session, **_provenance(merged))
    # The session first: the others reference it (the statements run in order).
    sql = _statements([session, *votes, record], events=(merged.id, 1, merged.events))
    return NewSession(merged.id, sql, session_snapshot(session), len(merged.events), len(votes))


def imported_session_insert(new: NewSession) -> None:
    """Write a prepared new session in one round trip (one transaction), then its hot entry.

    A session created here meanwhile makes the whole batch fail (IntegrityError).
    """
    _execute(new.sql)
    transaction.on_commit(lambda: SessionCache.set(new.session_id, new.snapshot))


@dataclass(frozen=True)
class Prior:
    """What a batch lookup found here for a session before its transaction."""

    exists: bool
    fingerprint: str | None = None
    event_keys: frozenset[str] = frozenset()
    stores: str = ""  # the stores the session came from last time ("postgres+redis", ...)
    owner_id: int | None = None  # our user it belongs to
    deleted_here: bool = False  # imported once, then deleted here for good


def _seen_whole(stores_before: str, merged: Merged) -> bool:
    """Whether this merge read every store the session was found in last time."""
    return set(filter(None, stores_before.split("+"))) <= set(merged.stores.split("+"))


def imported_session_write(
    *, merged: Merged, user: User | None, dry_run: bool = False, prior: Prior | None = None
) -> tuple[Outcome, int]:
    """Write one session, its events and votes in one transaction; returns (outcome, new events).

    A session seen before is updated only when its source changed since (the fingerprint), and
    only events not yet here are appended after the existing ones. Its fields are updated only
    when this run found it in every store it was found in last time: a run given one URL, or one
    after the old Redis keys expired, sees half of such a session and only adds its new events.
    One its user deleted here stays deleted whatever the source says. In a dry run the same reads
    are made and nothing is written. `prior` (the caller looked up a whole batch at once) skips
    the per-session lookups: a session known to be new is inserted straight away (one created
    meanwhile still fails its insert), and one whose source and events are all known already is
    unchanged without a transaction.
    """
    fingerprint = merged.fingerprint
    if (
        prior is not None
        and prior.exists
        and (prior.fingerprint == fingerprint or not _seen_whole(prior.stores, merged))
        and all(e.key in prior.event_keys for e in merged.events)
    ):
        return "unchanged", 0
    if prior is not None and not prior.exists:  # known to be new: no lookup, one round trip
        if not dry_run:
            assert user is not None
            imported_session_insert(imported_session_prepare(merged=merged, user=user))
        return "imported", len(merged.events)
    with transaction.atomic():
        existing = (
            DeliberationSession.objects.select_for_update()
            .filter(pk=merged.id)
            .only("id", "user_id", "last_sequence", "status")
            .first()
        )
        record = ImportedSession.objects.filter(session_id=merged.id).first() if existing else None
        if existing is not None and record is None:
            raise BrokenRecord("a session with this id already exists here and was not imported")
        if existing is not None and user is not None and existing.user_id != user.pk:
            raise BrokenRecord("already imported for another user")
        keys = [e.key for e in merged.events]
        known: set[str] = set()
        if existing is not None and keys:
            known = {
                key
                for key in SessionEvent.objects.filter(
                    session_id=merged.id, idempotency_key__in=keys
                ).values_list("idempotency_key", flat=True)
                if key
            }
        new_events = [e for e in merged.events if e.key not in known]
        changed = record is None or (
            record.fingerprint != fingerprint and _seen_whole(record.stores, merged)
        )
        if not changed and not new_events:
            return "unchanged", 0
        outcome: Outcome = "imported" if existing is None else "updated"
        if dry_run:
            return outcome, len(new_events)
        assert user is not None
        if existing is None:
            imported_session_insert(imported_session_prepare(merged=merged, user=user))
            return outcome, len(new_events)
        updates: dict[str, Any] = dict(merged.fields) if changed else {}
        if existing.status == Status.DELETED:  # deleted here by its user: it stays deleted,
            # and its deletion stays its last activity (retention counts from updated_at)
            for name in ("status", "status_changed_at", "updated_at"):
                updates.pop(name, None)
        updates["last_sequence"] = existing.last_sequence + len(new_events)
        DeliberationSession.objects.filter(pk=merged.id).update(**updates)
        if new_events:
            _execute(_statements([], events=(merged.id, existing.last_sequence + 1, new_events)))
        if changed:
            SessionVote.objects.filter(session_id=merged.id).delete()
            SessionVote.objects.bulk_create(_votes(merged, existing))
            ImportedSession.objects.filter(session_id=merged.id).update(
                **_provenance(merged), last_imported_at=timezone.now()
            )
        # The Redis entry is written through as for any other session, once this commits.
        transaction.on_commit(lambda: SessionCache.refresh(merged.id))
    return outcome, len(new_events)


def _provenance(merged: Merged) -> dict[str, Any]:
    """Where the session came from, and the digest that tells a rerun whether it changed."""
    return {
        "source_user_id": merged.source_user_id,
        "source_status": merged.source_status,
        "source_phase": merged.source_phase,
        "stores": merged.stores,
        "fingerprint": merged.fingerprint,
    }
