"""Worker life-cycle hooks: the reaper starts with the worker."""

import logging
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from .reaper import ReaperThread

logger = logging.getLogger(__name__)
_reaper: ReaperThread | None = None


@worker_ready.connect(dispatch_uid="deliberation.start_reaper")
def start_reaper(**kwargs: Any) -> None:
    global _reaper
    _reaper = ReaperThread()
    _reaper.start()
    logger.info("Reaper started")


@worker_shutdown.connect(dispatch_uid="deliberation.stop_reaper")
def stop_reaper(**kwargs: Any) -> None:
    if _reaper is not None:
        _reaper.stopping.set()
