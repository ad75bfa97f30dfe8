"""Celery tasks: run a deliberation."""

from celery import shared_task

from .runner import run_session


@shared_task(name="deliberation.run_deliberation", acks_late=True, reject_on_worker_lost=True)
def run_deliberation(session_id: str) -> str:
    """Run a queued session; a second delivery finds it taken or finished and does nothing."""
    return run_session(session_id)
