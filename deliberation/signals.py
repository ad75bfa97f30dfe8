"""Worker life-cycle hooks: the reaper and the retention job start with the worker."""

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from .reaper import ReaperThread, RetentionThread

logger = logging.getLogger(__name__)
_reaper: ReaperThread | None = None
_retention: RetentionThread | None = None


@worker_ready.connect(dispatch_uid="deliberation.start_reaper")
def start_reaper(**kwargs: Any) -> None:
    global _reaper, _retention
    _reaper = ReaperThread()
    _reaper.start()
    _retention = RetentionThread()
    _retention.start()
    logger.info("Reaper and retention job started")


@worker_shutdown.connect(dispatch_uid="deliberation.stop_reaper")
def stop_reaper(**kwargs: Any) -> None:
    for thread in (_reaper, _retention):
        if thread is not None:
            thread.stopping.set()
