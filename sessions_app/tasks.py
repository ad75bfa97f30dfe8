"""Celery tasks of the store: the background half of an account deletion."""

from celery import shared_task

from .accounts import PURGE_ACCOUNT_TASK, account_purge


@shared_task(name=PURGE_ACCOUNT_TASK, acks_late=True, ignore_result=True)
def purge_account(user_id: int) -> int:
    """Delete a closed account's sessions, events, Redis keys and row; safe to run twice."""
    return account_purge(user_id=user_id).sessions
