"""Writes of the webhooks app: endpoints, the outbox of deliveries, and sending them in order."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from observability import logs, metrics
from sessions_app.models import DeliberationSession

from . import sender, signing
from .models import (
    EVENT_FOR_STATUS,
    Delivery,
    DeliveryStatus,
    Endpoint,
    all_event_types,
    new_secret,
)
from .payloads import event_body

logger = logging.getLogger(__name__)

# Deliveries one task sends to one endpoint before it hands over (other endpoints' turn).
BATCH = 100
# How long the old secret still signs after a rotation.
ROTATION_GRACE = timedelta(hours=24)
JITTER = 0.2


def endpoint_create(
    *, user: AbstractBaseUser, url: str, events: Iterable[str] | None = None, description: str = ""
) -> Endpoint:
    """Register a URL; the caller has checked it (addresses.check_url)."""
    return Endpoint.objects.create(
        user_id=user.pk,
        url=url,
        events=sorted(set(events)) if events else all_event_types(),
        description=description,
    )


def endpoint_update(
    *,
    endpoint: Endpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> Endpoint:
    """Change an endpoint; enabling a disabled one clears why it was disabled."""
    now = timezone.now()
    if url is not None:
        endpoint.url = url
    if events is not None:
        endpoint.events = sorted(set(events)) or all_event_types()
    if description is not None:
        endpoint.description = description
    if enabled is True and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.failing_since = endpoint.disabled_at = None
        endpoint.disabled_reason = ""
        logger.info("Webhook endpoint %s enabled again", endpoint.pk)
    elif enabled is False and endpoint.enabled:
        endpoint.enabled = False
        endpoint.disabled_at = now
        endpoint.disabled_reason = "Disabled by its owner."
    endpoint.updated_at = now
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    """Remove an endpoint and its deliveries (nothing more is sent to it)."""
    endpoint.delete()


def endpoint_rotate_secret(*, endpoint: Endpoint) -> Endpoint:
    """A new secret; the old one keeps signing (as a second signature) for ROTATION_GRACE."""
    now = timezone.now()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_GRACE
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    logger.info("Webhook endpoint %s has a new secret", endpoint.pk)
    return endpoint


def deliveries_record_for_transition(*, session_id: str, new_status: str) -> list[Delivery]:
    """Record the deliveries a status change causes, in the caller's transaction (the outbox).

    One query when the owner has no endpoint for the event (the common case); the session is
    read only when there is someone to tell.
    """
    event_type = EVENT_FOR_STATUS.get(new_status)
    if event_type is None:
        return []
    owner = DeliberationSession.objects.filter(pk=session_id).values("user_id")[:1]
    endpoint_ids = list(
        Endpoint.objects.filter(
            user_id=Subquery(owner), enabled=True, events__contains=[event_type]
        ).values_list("id", flat=True)
    )
    if not endpoint_ids:
        return []
    session = DeliberationSession.objects.defer("checkpoint").get(pk=session_id)
    body = event_body(event_type, session)
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(
                endpoint_id=endpoint_id, event_type=event_type, session_id=session_id, payload=body
            )
            for endpoint_id in endpoint_ids
        ]
    )
    transaction.on_commit(lambda: enqueue_endpoints(endpoint_ids))
    return deliveries


def enqueue_endpoints(endpoint_ids: Iterable[int]) -> None:
    """Ask a worker to send now; when the broker is away the sweeper sends them later."""
    from .tasks import deliver_endpoint

    for endpoint_id in endpoint_ids:
        try:
            deliver_endpoint.apply_async((endpoint_id,), retry=False)
        except Exception as exc:  # the outbox row is committed: nothing is lost
            logger.warning(
                "Webhook delivery to endpoint %s not queued (%s); the sweeper will send it",
                endpoint_id,
                exc,
            )
            return


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send a delivery again, with its webhook-id (receivers that saw it may drop it)."""
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = timezone.now()
    delivery.delivered_at = None
    delivery.save(update_fields=["status", "next_attempt_at", "delivered_at"])
    transaction.on_commit(lambda: enqueue_endpoints([delivery.endpoint_id]))
    return delivery


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


def deliveries_enqueue_due() -> list[int]:
    """The sweeper's pass: queue a sender for every enabled endpoint with a delivery due."""
    from .selectors import endpoints_with_due_deliveries

    due = endpoints_with_due_deliveries()
    if due:
        enqueue_endpoints(due)
    return due
