"""What a scrape returns: this process tree's metrics, and the outbox counted in PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from . import multiprocess

logger = logging.getLogger(__name__)

OUTBOX = "bo1_outbox_pending"


class _Source(Collector):
    """The process's own metrics (or all processes' in multiprocess mode)."""

    def __init__(self) -> None:
        self._source: CollectorRegistry | MultiProcessCollector
        if multiprocess.enabled():
            self._source = MultiProcessCollector(None)
        else:
            self._source = REGISTRY

    def collect(self) -> Iterable[Metric]:
        return self._source.collect()


class _WithOutbox(Collector):
    """Adds the webhook outbox (read at scrape time) to the bo1_outbox_pending family."""

    def __init__(self, source: Collector, count_pending: Callable[[], int]) -> None:
        self._source = source
        self._count_pending = count_pending

    def collect(self) -> Iterable[Metric]:
        families = list(self._source.collect())
        try:
            pending = self._count_pending()
        except Exception as exc:  # PostgreSQL away: the other metrics still answer
            logger.warning("Webhook outbox not counted for /metrics: %s", exc)
            return families
        family = next((f for f in families if f.name == OUTBOX), None)
        if family is None:
            family = GaugeMetricFamily(OUTBOX, "Writes waiting in an outbox.", labels=["outbox"])
            families.append(family)
        family.samples = [s for s in family.samples if s.labels.get("outbox") != "webhooks"]
        family.add_sample(OUTBOX, {"outbox": "webhooks"}, float(pending))
        return families


def web_registry() -> CollectorRegistry:
    """The web server's registry: every gunicorn process, and the webhook outbox."""
    from webhooks.selectors import deliveries_pending_count

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WithOutbox(_Source(), deliveries_pending_count))
    return registry


def worker_registry() -> CollectorRegistry:
    """The worker's registry: its main process and every pool process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Source())
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
