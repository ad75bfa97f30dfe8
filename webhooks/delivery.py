"""Sending an endpoint's deliveries: in order, signed per Standard Webhooks, retried on a
schedule with jitter, and the endpoint disabled when it has failed for too long."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from observability import logs, metrics

from . import sender, signing
from .models import Delivery, DeliveryStatus, Endpoint

logger = logging.getLogger(__name__)

# Deliveries one task sends to one endpoint before it hands over (other endpoints' turn).
BATCH = 100
# Each retry's wait is the schedule's, times a random factor within 1 ± JITTER.
JITTER = 0.2


def retry_schedule() -> list[float]:
    return list(settings.BO1_WEBHOOK_RETRY_SCHEDULE)


def retry_delay(attempts: int) -> float | None:
    """Seconds before the next attempt after `attempts` failed ones; None when it is the last."""
    schedule = retry_schedule()
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def endpoint_deliver_due(*, endpoint_id: int, limit: int = BATCH) -> int:
    """Send this endpoint's due deliveries oldest first, one at a time; returns attempts made.

    The endpoint's row is locked (FOR NO KEY UPDATE, so new deliveries can still be recorded)
    for each attempt: one sender per endpoint at a time, which keeps the order. A failed head
    waits for its retry and holds back the later ones. A worker killed mid-attempt leaves the
    delivery pending, and the next pass sends it again with the same webhook-id.
    """
    attempts = 0
    while attempts < limit:
        with transaction.atomic():
            endpoint = (
                Endpoint.objects.select_for_update(no_key=True, skip_locked=True)
                .filter(pk=endpoint_id, enabled=True)
                .first()
            )
            if endpoint is None:  # gone, disabled, or another worker is sending to it
                return attempts
            head = (
                Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.PENDING)
                .order_by("id")
                .first()
            )
            now = timezone.now()
            if head is None or head.next_attempt_at > now:
                return attempts
            with logs.bound(session_id=head.session_id):
                _attempt(endpoint, head, now)
        attempts += 1
    return attempts


def _attempt(endpoint: Endpoint, delivery: Delivery, now: datetime) -> sender.AttemptResult:
    timestamp = int(now.timestamp())
    headers = signing.signed_headers(
        endpoint.signing_secrets(now), delivery.webhook_id, timestamp, delivery.payload
    )
    result = sender.post(
        endpoint.url, headers, delivery.payload, timeout=settings.BO1_WEBHOOK_TIMEOUT
    )
    done = timezone.now()
    delivery.attempts += 1
    delivery.last_attempt_at = done
    delivery.last_response_status = result.status
    delivery.last_response_body = result.body
    delivery.last_error = result.error[:1000]
    if result.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = done
        outcome = "delivered"
        if endpoint.failing_since is not None:
            endpoint.failing_since = None
            endpoint.save(update_fields=["failing_since"])
        logger.info(
            "Webhook %s (%s) delivered to endpoint %s: HTTP %s",
            delivery.webhook_id, delivery.event_type, endpoint.pk, result.status,
        )  # fmt: skip
    else:
        delay = retry_delay(delivery.attempts)
        if delay is None:
            delivery.status = DeliveryStatus.FAILED
            outcome = "failed"
        else:
            delivery.next_attempt_at = done + timedelta(seconds=delay)
            outcome = "retry"
        if result.refused:
            outcome = "refused" if delay is not None else "failed"
        logger.warning(
            "Webhook %s (%s) to endpoint %s failed (attempt %d): %s%s",
            delivery.webhook_id, delivery.event_type, endpoint.pk, delivery.attempts,
            result.error, "" if delay is None else f"; next attempt in {delay:.1f} s",
        )  # fmt: skip
        _note_failure(endpoint, done, result.error)
    delivery.save()
    metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
    return result


def _note_failure(endpoint: Endpoint, now: datetime, error: str) -> None:
    """Remember since when an endpoint fails; one failing for too long is disabled."""
    if endpoint.failing_since is None:
        endpoint.failing_since = now
        endpoint.save(update_fields=["failing_since"])
        return
    limit = timedelta(seconds=settings.BO1_WEBHOOK_DISABLE_AFTER)
    if now - endpoint.failing_since < limit:
        return
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Every delivery failed since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
        f"({_duration(now - endpoint.failing_since)}); the last error was: {error}"
    )[:1000]
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    logger.warning("Webhook endpoint %s disabled: %s", endpoint.pk, endpoint.disabled_reason)


def _duration(span: timedelta) -> str:
    if span >= timedelta(days=1):
        return f"{span.total_seconds() / 86400:.1f} days"
    if span >= timedelta(hours=1):
        return f"{span.total_seconds() / 3600:.1f} hours"
    return f"{span.total_seconds():.0f} seconds"
