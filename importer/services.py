"""Writes of the import: users matched or created, and one whole session per transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone

from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, SessionEvent
from sessions_app.snapshots import session_snapshot

from .mapping import BrokenRecord, Merged, event_data
from .models import ImportedSession, SessionVote

logger = logging.getLogger(__name__)

Outcome = Literal["imported", "updated", "unchanged"]


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


def _insert_sql(cursor: Any, objs: list[Any]) -> bytes:
    """The ORM's own INSERT of these model instances, as SQL with its values bound.

    The ORM converts every field (JSON, decimals, times) as for save(); only the round trips
    are saved: a new session's rows go to PostgreSQL in one statement batch.
    """
    model = type(objs[0])
    # As save() does: no auto id, and no generated column (PostgreSQL computes it).
    fields = [
        f
        for f in model._meta.concrete_fields
        if f is not model._meta.auto_field and not getattr(f, "generated", False)
    ]
    query = InsertQuery(model)
    query.insert_values(fields, objs, raw=False)
    compiler = query.get_compiler(connection=connection)
    return b";".join(cursor.mogrify(sql, params) for sql, params in compiler.as_sql())


EVENT_COLUMNS = ("session_id", "sequence", "event_type", "data", "idempotency_key", "created_at")


def _events_sql(cursor: Any, session_id: str, first: int, events: list[Any]) -> bytes:
    """The INSERT of a session's events into SessionEvent's table, values bound by psycopg2.

    The same rows bulk_create writes, without a model instance per event: three million events
    through the ORM's field conversions cost more CPU than the whole rest of an import.
    """
    meta = SessionEvent._meta
    names = ", ".join(str(meta.get_field(c).column) for c in EVENT_COLUMNS)  # type: ignore[union-attr]
    values = b",".join(
        cursor.mogrify(
            "(%s, %s, %s, %s, %s, %s)",
            (
                session_id,
                first + offset,
                event.event_type,
                orjson.dumps(event_data(event)).decode(),
                event.key,
                event.timestamp,
            ),
        )
        for offset, event in enumerate(events)
    )
    return f"INSERT INTO {meta.db_table} ({names}) VALUES ".encode() + values  # noqa: S608


def _insert(objs: list[Any], events: tuple[str, int, list[Any]] | None = None) -> None:
    """Insert model instances (of one or more models), then events, in a single round trip."""
    groups: dict[type, list[Any]] = {}
    for obj in objs:
        groups.setdefault(type(obj), []).append(obj)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg2's own cursor under Django's wrapper
        parts = [_insert_sql(raw, group) for group in groups.values()]
        if events is not None and events[2]:
            parts.insert(1, _events_sql(raw, *events))  # after the session they reference
        cursor.execute(b";".join(parts).decode())


@dataclass(frozen=True)
class Prior:
    """What a batch lookup found here for a session before its transaction."""

    exists: bool
    fingerprint: str | None = None
    event_keys: frozenset[str] = frozenset()


def imported_session_write(
    *, merged: Merged, user: User | None, dry_run: bool = False, prior: Prior | None = None
) -> tuple[Outcome, int]:
    """Write one session, its events and votes in one transaction; returns (outcome, new events).

    A session seen before is updated only when its source changed since (the fingerprint), and
    only events not yet here are appended after the existing ones. In a dry run the same reads
    are made and nothing is written. `prior` (the caller looked up a whole batch at once) skips
    the per-session lookups: a session known to be new is inserted straight away (one created
    meanwhile still fails its insert), and one whose source and events are all known already is
    unchanged without a transaction.
    """
    fingerprint = merged.fingerprint
    if (
        prior is not None
        and prior.exists
        and prior.fingerprint == fingerprint
        and all(e.key in prior.event_keys for e in merged.events)
    ):
        return "unchanged", 0
    maybe_existing = prior is None or prior.exists
    with transaction.atomic():
        existing = (
            DeliberationSession.objects.select_for_update()
            .filter(pk=merged.id)
            .only("id", "user_id", "last_sequence")
            .first()
            if maybe_existing
            else None
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
        changed = record is None or record.fingerprint != fingerprint
        if not changed and not new_events:
            return "unchanged", 0
        outcome: Outcome = "imported" if existing is None else "updated"
        if dry_run:
            return outcome, len(new_events)
        assert user is not None
        provenance = {
            "source_user_id": merged.source_user_id,
            "source_status": merged.source_status,
            "source_phase": merged.source_phase,
            "stores": merged.stores,
            "fingerprint": fingerprint,
        }
        if existing is None:
            session = DeliberationSession(id=merged.id, user=user, **merged.fields)
            session.last_sequence = len(new_events)
            # The session first: the others reference it (the statements run in order).
            _insert(
                [session, *_votes(merged, session), ImportedSession(session=session, **provenance)],
                events=(merged.id, 1, new_events),
            )
        else:
            session = existing
            updates: dict[str, Any] = dict(merged.fields) if changed else {}
            updates["last_sequence"] = existing.last_sequence + len(new_events)
            DeliberationSession.objects.filter(pk=merged.id).update(**updates)
            if new_events:
                _insert([], events=(merged.id, existing.last_sequence + 1, new_events))
            if changed:
                SessionVote.objects.filter(session_id=merged.id).delete()
                SessionVote.objects.bulk_create(_votes(merged, session))
                ImportedSession.objects.filter(session_id=merged.id).update(
                    **provenance, last_imported_at=timezone.now()
                )
        # The Redis entry is written through as for any other session, once this commits.
        snapshot = session_snapshot(session) if existing is None else None
        transaction.on_commit(lambda: _write_hot_entry(merged.id, snapshot))
    return outcome, len(new_events)


def _write_hot_entry(session_id: str, snapshot: dict[str, Any] | None) -> None:
    if snapshot is None:  # an update: the row as committed
        session = DeliberationSession.objects.filter(pk=session_id).first()
        if session is None:
            return
        snapshot = session_snapshot(session)
    SessionCache.set(session_id, snapshot)
