"""Retention: sessions past their keeping time go for good, in small batches, legal holds kept.

A session is due when its last write (`updated_at`) is older than BO1_RETENTION_DAYS (unset:
never), or when it was soft-deleted more than BO1_DELETED_RETENTION_DAYS ago. A session under
legal hold is never due. Purging removes the row, its events and every Redis key it has.
"""

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from .cache import SessionCache
from .models import DeliberationSession, SessionEvent, Status

logger = logging.getLogger(__name__)


@dataclass
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove), by count."""

    expired: int = 0  # past BO1_RETENTION_DAYS
    deleted: int = 0  # soft-deleted longer than BO1_DELETED_RETENTION_DAYS
    events: int = 0
    redis_keys: int = 0
    held: int = 0  # due but kept: under legal hold
    dry_run: bool = False

    @property
    def sessions(self) -> int:
        return self.expired + self.deleted


def _days(name: str) -> int | None:
    value = getattr(settings, name)
    if value is None:
        return None
    if int(value) < 1:
        raise ImproperlyConfigured(f"{name} must be a whole number of days of at least 1")
    return int(value)


def due_condition(now: datetime) -> Q:
    """Sessions that retention deletes, legal hold aside."""
    due = Q(pk__in=[])
    deleted_days = _days("BO1_DELETED_RETENTION_DAYS")
    if deleted_days is not None:
        due |= Q(status=Status.DELETED, status_changed_at__lt=now - timedelta(days=deleted_days))
    retention_days = _days("BO1_RETENTION_DAYS")
    if retention_days is not None:
        due |= Q(updated_at__lt=now - timedelta(days=retention_days))
    return due


def sessions_due(now: datetime) -> QuerySet[DeliberationSession]:
    return DeliberationSession.objects.filter(due_condition(now), legal_hold=False)


# Unless told otherwise, a purge sleeps after each batch twice as long as the batch took: it then
# takes at most a third of one core (its own and PostgreSQL's work together), and the requests
# being answered meanwhile keep the rest of the machine.
PAUSE_PER_BATCH_SECOND = 2.0


def _batches(ids: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def sessions_delete_for_good(
    session_ids: Iterable[str],
    *,
    report: PurgeReport,
    only: Q | None = None,
    batch_size: int | None = None,
    pause: float | None = None,
) -> None:
    """Delete sessions, their events and their Redis keys, a small batch per transaction.

    Between batches it sleeps `pause` seconds, or (None) twice as long as the batch took.

    `only` is checked again inside each batch's transaction, with the rows locked, so a session
    that was put under legal hold (or written to) since it was chosen is left alone. Rows
    another transaction holds are skipped; the next pass takes them.
    """
    size = max(int(batch_size or settings.BO1_PURGE_BATCH), 1)
    for batch in _batches(list(session_ids), size):
        started = time.monotonic()
        with transaction.atomic():
            rows = DeliberationSession.objects.filter(pk__in=batch, legal_hold=False)
            if only is not None:
                rows = rows.filter(only)
            doomed = list(
                rows.select_for_update(skip_locked=True, of=("self",))
                .order_by()
                .values_list("id", "status")
            )
            ids = [session_id for session_id, _ in doomed]
            if ids:
                # One DELETE each (no row is loaded): events first, as their foreign key asks.
                report.events += SessionEvent.objects.filter(session_id__in=ids).delete()[0]
                DeliberationSession.objects.filter(pk__in=ids).only("id").delete()
        report.deleted += sum(1 for _, status in doomed if status == Status.DELETED)
        report.expired += sum(1 for _, status in doomed if status != Status.DELETED)
        if ids:
            removed = SessionCache.purge_many(ids)
            report.redis_keys += removed or 0
        # Leave the machine to the requests between batches.
        time.sleep(
            PAUSE_PER_BATCH_SECOND * (time.monotonic() - started) if pause is None else pause
        )


def sessions_purge_expired(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    batch_size: int | None = None,
    pause: float | None = None,
) -> PurgeReport:
    """Apply the retention policy once; logs what went, by count."""
    now = now or timezone.now()
    report = PurgeReport(dry_run=dry_run)
    due = due_condition(now)
    report.held = DeliberationSession.objects.filter(due, legal_hold=True).count()
    if dry_run:
        counted = sessions_due(now)
        report.events = SessionEvent.objects.filter(session__in=counted.values("pk")).count()
        # One pass over the due sessions counts them by kind and their Redis keys by name.
        rows = counted.order_by().values_list("id", "status").iterator(chunk_size=1000)
        while batch := list(itertools.islice(rows, 1000)):
            report.deleted += sum(1 for _, status in batch if status == Status.DELETED)
            report.expired += sum(1 for _, status in batch if status != Status.DELETED)
            report.redis_keys += SessionCache.count_keys(i for i, _ in batch) or 0
    else:
        ids = list(sessions_due(now).order_by().values_list("id", flat=True))
        sessions_delete_for_good(ids, report=report, only=due, batch_size=batch_size, pause=pause)
    logger.info(
        "Retention%s: %d sessions purged (%d past BO1_RETENTION_DAYS, %d soft-deleted), "
        "%d events, %d Redis keys; %d due sessions kept under legal hold",
        " (dry run)" if dry_run else "",
        report.sessions,
        report.expired,
        report.deleted,
        report.events,
        report.redis_keys,
        report.held,
    )
    return report


def session_legal_hold_set(*, session_ids: Iterable[str], held: bool, by: User) -> int:
    """Place sessions under legal hold or release them, recording who and when; returns how many
    changed."""
    changed = (
        DeliberationSession.objects.filter(pk__in=list(session_ids))
        .exclude(legal_hold=held)
        .update(legal_hold=held, legal_hold_by=by, legal_hold_at=timezone.now())
    )
    logger.info(
        "Legal hold %s on %d sessions by user %s", "placed" if held else "released", changed, by.pk
    )
    return changed
