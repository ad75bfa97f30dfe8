"""Hooks of the webhooks app into the session store and the worker.

The store sends `session_status_changed` from inside the transaction of its one status-changing
service (sessions_app.services.session_transition). Recording the deliveries right there puts
them in that same transaction: the status change and the webhook deliveries it causes commit
together or not at all, which is what an outbox needs. The store itself knows nothing of this.
"""

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.dispatch import receiver

from sessions_app.signals import session_status_changed

from .services import deliveries_record_for_transition
from .sweeper import SweeperThread

logger = logging.getLogger(__name__)
_sweeper: SweeperThread | None = None


@receiver(session_status_changed, dispatch_uid="webhooks.record_deliveries")
def record_deliveries(sender: Any, session_id: str, new_status: str, **kwargs: Any) -> None:
    deliveries_record_for_transition(session_id=session_id, new_status=new_status)


@worker_ready.connect(dispatch_uid="webhooks.start_sweeper")
def start_sweeper(**kwargs: Any) -> None:
    global _sweeper
    _sweeper = SweeperThread()
    _sweeper.start()
    logger.info("Webhook sweeper started")


@worker_shutdown.connect(dispatch_uid="webhooks.stop_sweeper")
def stop_sweeper(**kwargs: Any) -> None:
    if _sweeper is not None:
        _sweeper.stopping.set()
