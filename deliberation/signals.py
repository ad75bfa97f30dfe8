"""Worker life-cycle hooks: the periodic repair (reconcile) and the retention job start and stop
with the worker."""

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from .reconcile import ReconcileThread
from .retention_job import RetentionThread

logger = logging.getLogger(__name__)
_repair: ReconcileThread | None = None
_retention: RetentionThread | None = None


@worker_ready.connect(dispatch_uid="deliberation.start_reconcile")
def start_reconcile(**kwargs: Any) -> None:
    global _repair, _retention
    _repair = ReconcileThread()
    _repair.start()
    _retention = RetentionThread()
    _retention.start()
    logger.info("Periodic reconcile and retention job started")


@worker_shutdown.connect(dispatch_uid="deliberation.stop_reconcile")
def stop_reconcile(**kwargs: Any) -> None:
    for thread in (_repair, _retention):
        if thread is not None:
            thread.stopping.set()
