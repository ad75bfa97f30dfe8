"""The repair job: applies kept writes, rewrites stale hot entries, requeues sessions whose worker
is gone. `manage.py reconcile_sessions` runs it once; every worker runs it periodically.
"""

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from sessions_app.cache import SessionCache
from sessions_app.models import DeliberationSession, Status
from sessions_app.services import session_counts_fold
from sessions_app.snapshots import session_snapshot
from vocabulary import ACTIVE_STATUSES, RUNNABLE_STATUSES

from .lease import lease_alive
from .outbox import Outbox, sessions_with_kept_writes
from .services import enqueue_run

logger = logging.getLogger(__name__)

# Fields whose disagreement means a hot entry is wrong, not merely a little behind.
COMPARED = ("status", "phase", "round_number", "total_cost", "synthesis", "pause_reason")
BATCH = 500
# A queued session normally starts within seconds; one older than this lost its message.
QUEUED_GRACE = timedelta(seconds=60)


@dataclass
class ReconcileReport:
    applied: list[str] = field(default_factory=list)  # sessions whose kept writes were applied
    repaired: list[str] = field(default_factory=list)  # hot entries rewritten from PostgreSQL
    requeued: list[str] = field(default_factory=list)  # sessions queued again for a worker
    folded: int = 0  # count changes moved into the per-user counters (housekeeping)
    dry_run: bool = False

    @property
    def changed(self) -> int:
        return len(self.applied) + len(self.repaired) + len(self.requeued)


def _apply_kept_writes(report: ReconcileReport) -> None:
    for session_id in sessions_with_kept_writes():
        if lease_alive(session_id):
            continue  # its worker is alive and will apply them itself
        if not report.dry_run:
            outbox = Outbox(session_id)
            if not outbox.flush() and outbox.last_refusal == "database":
                continue  # still kept, in order; the next pass tries again
        report.applied.append(session_id)


def _repair_hot_entries(report: ReconcileReport, *, every_entry: bool) -> None:
    if every_entry:
        ids = SessionCache.hot_session_ids()
    else:  # the periodic pass looks only at sessions that are still moving
        ids = list(
            DeliberationSession.objects.filter(status__in=ACTIVE_STATUSES).values_list(
                "id", flat=True
            )
        )
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        hot = SessionCache.get_many(batch)
        sessions = list(DeliberationSession.objects.filter(pk__in=batch))
        # An entry whose session PostgreSQL no longer has (purged while Redis was away) would
        # keep answering reads for a session that does not exist: it goes.
        for ghost in set(hot) - {session.id for session in sessions}:
            report.repaired.append(ghost)
            if not report.dry_run:
                SessionCache.delete(ghost)
        for session in sessions:
            entry = hot.get(session.id)
            if entry is None or lease_alive(session.id):
                continue  # a running worker's entry may lead PostgreSQL on purpose
            snapshot = session_snapshot(session)
            if any(entry.get(name) != snapshot.get(name) for name in COMPARED):
                report.repaired.append(session.id)
                if not report.dry_run:
                    SessionCache.set(session.id, snapshot)


def orphaned_sessions() -> list[str]:
    """Running sessions with no live lease, and queued ones that waited too long."""
    grace = timedelta(seconds=int(settings.BO1_LEASE_TTL))
    now = timezone.now()
    candidates = DeliberationSession.objects.filter(status__in=RUNNABLE_STATUSES).values_list(
        "id", "status", "status_changed_at", "last_activity_at"
    )
    orphans = []
    for session_id, status, changed_at, active_at in candidates:
        last_sign = max(filter(None, (changed_at, active_at)))
        waited = QUEUED_GRACE if status == Status.QUEUED else grace
        if now - last_sign < waited:
            continue
        if lease_alive(session_id) is False:
            orphans.append(session_id)
    return orphans


def _requeue_orphans(report: ReconcileReport) -> None:
    for session_id in orphaned_sessions():
        report.requeued.append(session_id)
        if not report.dry_run:
            logger.warning("Session %s has no live worker; queueing it again", session_id)
            enqueue_run(session_id)


def reconcile_sessions(*, dry_run: bool = False, every_entry: bool = True) -> ReconcileReport:
    """Apply kept writes, repair hot entries that disagree with PostgreSQL, requeue orphans,
    and fold the count changes into the per-user counters.

    `every_entry=False` (the periodic pass) checks only the entries of unfinished sessions.
    """
    report = ReconcileReport(dry_run=dry_run)
    _apply_kept_writes(report)
    _repair_hot_entries(report, every_entry=every_entry)
    _requeue_orphans(report)
    if not dry_run:
        report.folded = session_counts_fold()
    if report.changed:
        logger.info(
            "Reconcile%s: %d kept-write sessions, %d hot entries, %d requeued",
            " (dry run)" if dry_run else "",
            len(report.applied),
            len(report.repaired),
            len(report.requeued),
        )
    return report


class ReconcileThread(threading.Thread):
    """The periodic repair: `reconcile_sessions(every_entry=False)` at once, then every
    BO1_REAPER_INTERVAL seconds, in each worker process."""

    def __init__(self) -> None:
        super().__init__(name="bo1-reconcile", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = max(int(settings.BO1_REAPER_INTERVAL), 1)
        while True:
            try:
                close_old_connections()
                reconcile_sessions(every_entry=False)
            except DatabaseError as exc:
                logger.warning("Reconcile skipped a pass: %s", exc)
            except Exception:  # the repair must outlive any single bad pass
                logger.exception("Reconcile pass failed")
            if self.stopping.wait(interval):
                return
