"""Counts committed status changes (bo1_session_transitions_total) in the process that made them."""

from typing import Any

from django.db import transaction
from django.dispatch import receiver

from sessions_app.signals import session_status_changed

from . import metrics


@receiver(session_status_changed, dispatch_uid="observability.count_transition")
def count_transition(sender: Any, new_status: str, **kwargs: Any) -> None:
    transaction.on_commit(lambda: metrics.SESSION_TRANSITIONS.labels(new_status).inc())
