"""What a scrape returns: this process tree's metrics, and what the stores say at that moment."""

from __future__ import annotations

import logging
from collections.abc import Iterable

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


class _AtScrape(Collector):
    """The source's metrics, and what is read from the stores when Prometheus scrapes.

    bo1_outbox_pending{outbox="webhooks"} is counted in PostgreSQL (one indexed count), the
    endpoints by state in one grouped query, and bo1_store_up says whether PostgreSQL and Redis
    answered. A store that does not answer leaves its figures out; the scrape still succeeds.
    """

    def __init__(self, source: Collector) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        from sessions_app.cache import redis_client
        from webhooks.selectors import deliveries_pending_count, endpoints_by_state

        families = list(self._source.collect())
        up = GaugeMetricFamily(
            "bo1_store_up",
            "1 when the store answered this scrape, 0 when it did not.",
            labels=["store"],
        )
        try:
            pending = deliveries_pending_count()
            states = endpoints_by_state()
        except Exception as exc:  # PostgreSQL away: the other metrics still answer
            logger.warning("PostgreSQL not read for /metrics: %s", exc)
            up.add_metric(["postgresql"], 0)
        else:
            up.add_metric(["postgresql"], 1)
            outbox = next((f for f in families if f.name == OUTBOX), None)
            if outbox is None:
                outbox = GaugeMetricFamily(
                    OUTBOX, "Writes waiting in an outbox.", labels=["outbox"]
                )
                families.append(outbox)
            outbox.samples = [s for s in outbox.samples if s.labels.get("outbox") != "webhooks"]
            outbox.add_sample(OUTBOX, {"outbox": "webhooks"}, float(pending))
            endpoints = GaugeMetricFamily(
                "bo1_webhook_endpoints",
                "Webhook endpoints by state: ok, failing (its last attempts failed), disabled.",
                labels=["state"],
            )
            for state in ("ok", "failing", "disabled"):
                endpoints.add_metric([state], states.get(state, 0))
            families.append(endpoints)
        try:
            redis_client().ping()
        except Exception as exc:
            logger.warning("Redis did not answer for /metrics: %s", exc)
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
        families.append(up)
        return families


def web_registry() -> CollectorRegistry:
    """The web server's registry: every gunicorn process, and the webhook outbox."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_AtScrape(_Source()))
    return registry


def worker_registry() -> CollectorRegistry:
    """The worker's registry: its main process and every pool process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Source())
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
