"""The workers' daily retention job: `purge_sessions` once per BO1_PURGE_INTERVAL, one worker."""

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections

logger = logging.getLogger(__name__)

# Each worker checks this often whether it is its turn; a claim in Redis picks one worker.
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
    """Runs the retention job in a worker, beside (not inside) the periodic repair's passes."""

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
