"""Repairs what an outage left behind: kept writes, stale hot entries, sessions without a worker."""

import logging
from dataclasses import dataclass, field

from django.core.cache import cache

from sessions_app.cache import REDIS_ERRORS, SessionCache, entry_key, redis_client
from sessions_app.models import DeliberationSession
from sessions_app.snapshots import session_snapshot
from vocabulary import ACTIVE_STATUSES

from .lease import lease_alive
from .outbox import Outbox, sessions_with_kept_writes
from .reaper import orphaned_sessions

logger = logging.getLogger(__name__)

# Fields whose disagreement means a hot entry is wrong, not merely a little behind.
COMPARED = ("status", "phase", "round_number", "total_cost", "synthesis", "pause_reason")
BATCH = 500


@dataclass
class ReconcileReport:
    applied: list[str] = field(default_factory=list)  # sessions whose kept writes were applied
    repaired: list[str] = field(default_factory=list)  # hot entries rewritten from PostgreSQL
    requeued: list[str] = field(default_factory=list)  # sessions queued again for a worker
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


def _hot_session_ids() -> list[str]:
    pattern = cache.make_key(entry_key("*"))
    prefix = len(cache.make_key(entry_key("")))
    try:
        return [k.decode()[prefix:] for k in redis_client().scan_iter(match=pattern, count=1000)]
    except REDIS_ERRORS as exc:
        logger.warning("Reconcile cannot read Redis: %s", exc)
        return []


def _repair_hot_entries(report: ReconcileReport, *, every_entry: bool) -> None:
    if every_entry:
        ids = _hot_session_ids()
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


def _requeue_orphans(report: ReconcileReport) -> None:
    from .services import enqueue_run

    for session_id in orphaned_sessions():
        report.requeued.append(session_id)
        if not report.dry_run:
            logger.warning("Session %s has no live worker; queueing it again", session_id)
            enqueue_run(session_id)


def reconcile_sessions(*, dry_run: bool = False, every_entry: bool = True) -> ReconcileReport:
    """Apply kept writes, repair hot entries that disagree with PostgreSQL, requeue orphans.

    `every_entry=False` (the periodic pass) checks only the entries of unfinished sessions.
    """
    report = ReconcileReport(dry_run=dry_run)
    _apply_kept_writes(report)
    _repair_hot_entries(report, every_entry=every_entry)
    _requeue_orphans(report)
    if report.changed:
        logger.info(
            "Reconcile%s: %d kept-write sessions, %d hot entries, %d requeued",
            " (dry run)" if dry_run else "",
            len(report.applied),
            len(report.repaired),
            len(report.requeued),
        )
    return report
