"""Celery tasks: run a deliberation, and requeue sessions whose worker is gone."""

import logging

from celery import shared_task

from .reaper import reap_orphans
from .runner import run_session

logger = logging.getLogger(__name__)


@shared_task(name="deliberation.run_deliberation", acks_late=True, reject_on_worker_lost=True)
def run_deliberation(session_id: str) -> str:
    """Run a queued session; a second delivery finds it taken or finished and does nothing."""
    return run_session(session_id)


@shared_task(name="deliberation.reap_orphans", ignore_result=True)
def reap_orphans_task() -> int:
    return len(reap_orphans())
