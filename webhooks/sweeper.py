"""The periodic pass that sends what was recorded but not sent (broker outage, killed worker)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, close_old_connections

from .services import deliveries_enqueue_due

logger = logging.getLogger(__name__)


class SweeperThread(threading.Thread):
    """Every BO1_WEBHOOK_SWEEP_INTERVAL seconds, queue a sender for each endpoint with work due."""

    def __init__(self) -> None:
        super().__init__(name="bo1-webhook-sweeper", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = max(float(settings.BO1_WEBHOOK_SWEEP_INTERVAL), 0.1)
        while not self.stopping.wait(interval):
            try:
                close_old_connections()
                deliveries_enqueue_due()
            except DatabaseError as exc:
                logger.warning("Webhook sweep skipped: %s", exc)
            except Exception:  # the sweeper must outlive any single bad pass
                logger.exception("Webhook sweep failed")
