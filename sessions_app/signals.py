"""Keeps the Redis hot entry in step with PostgreSQL when a session changes status."""

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal, receiver

from .cache import SessionCache

logger = logging.getLogger(__name__)

# Sent by services.session_transition (QuerySet.update fires no post_save) with
# session_id, old_status and new_status.
session_status_changed = Signal()


@receiver(session_status_changed, dispatch_uid="sessions_app.refresh_hot_entry")
def refresh_hot_entry_on_commit(sender: Any, session_id: str, **kwargs: Any) -> None:
    """Refresh the hot entry once the change is committed, never for a rolled-back one."""
    transaction.on_commit(lambda: SessionCache.refresh(session_id))
