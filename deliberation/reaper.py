"""Finds sessions whose worker is gone (no live lease) and queues them again."""

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from sessions_app.models import DeliberationSession, Status
from vocabulary import RUNNABLE_STATUSES

from .lease import lease_alive

logger = logging.getLogger(__name__)

# A queued session normally starts within seconds; one older than this lost its message.
QUEUED_GRACE = timedelta(seconds=60)


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


def reap_orphans() -> list[str]:
    """Queue every orphaned session again; the task picks it up from its last checkpoint."""
    from .services import enqueue_run

    orphans = orphaned_sessions()
    for session_id in orphans:
        logger.warning("Session %s has no live worker; queueing it again", session_id)
        enqueue_run(session_id)
    return orphans


# The retention job (sessions_app.retention) runs once per BO1_PURGE_INTERVAL across all workers;
# each worker checks this often whether it is its turn.
RETENTION_JOB = "purge_sessions"
RETENTION_CHECK_SECONDS = 300


def run_retention_job() -> bool:
    """Run the retention purge when no worker ran it in the last BO1_PURGE_INTERVAL."""
    from sessions_app.cache import claim_job
    from sessions_app.retention import sessions_purge_expired

    if not claim_job(RETENTION_JOB, int(settings.BO1_PURGE_INTERVAL)):
        return False
    sessions_purge_expired()
    return True


class RetentionThread(threading.Thread):
    """Runs the daily retention job in a worker, beside (not inside) the reaper's short passes."""

    def __init__(self) -> None:
        super().__init__(name="bo1-retention", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        check = min(RETENTION_CHECK_SECONDS, max(int(settings.BO1_PURGE_INTERVAL), 1))
        while True:
            try:
                close_old_connections()
                run_retention_job()
            except DatabaseError as exc:
                logger.warning("Retention job skipped: %s", exc)
            except Exception:  # one bad pass must not end the job for the worker's life
                logger.exception("Retention job failed")
            if self.stopping.wait(check):
                return


class ReaperThread(threading.Thread):
    """Runs the repair (reconcile) now and then every BO1_REAPER_INTERVAL seconds in a worker."""

    def __init__(self) -> None:
        super().__init__(name="bo1-reaper", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = max(int(settings.BO1_REAPER_INTERVAL), 1)
        while True:
            try:
                from .reconcile import reconcile_sessions

                close_old_connections()
                reconcile_sessions(every_entry=False)
            except DatabaseError as exc:
                logger.warning("Reaper skipped a pass: %s", exc)
            except Exception:  # the reaper must outlive any single bad pass
                logger.exception("Reaper pass failed")
            if self.stopping.wait(interval):
                return
