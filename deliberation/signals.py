"""Worker life-cycle hooks: the periodic repair (reconcile) starts and stops with the worker."""

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from .reconcile import ReconcileThread

logger = logging.getLogger(__name__)
_repair: ReconcileThread | None = None


@worker_ready.connect(dispatch_uid="deliberation.start_reconcile")
def start_reconcile(**kwargs: Any) -> None:
    global _repair
    _repair = ReconcileThread()
    _repair.start()
    logger.info("Periodic reconcile started")


@worker_shutdown.connect(dispatch_uid="deliberation.stop_reconcile")
def stop_reconcile(**kwargs: Any) -> None:
    if _repair is not None:
        _repair.stopping.set()
