"""Writes of the webhooks app: endpoints, and the outbox of deliveries (sending them is
`delivery.py`, run by the task in `tasks.py`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Subquery
from django.utils import timezone

from sessions_app.models import DeliberationSession

from .models import (
    EVENT_FOR_STATUS,
    Delivery,
    DeliveryStatus,
    Endpoint,
    all_event_types,
    new_secret,
)
from .payloads import event_body
from .selectors import endpoints_with_due_deliveries
from .tasks import deliver_endpoint

logger = logging.getLogger(__name__)

# How long the old secret still signs after a rotation.
ROTATION_GRACE = timedelta(hours=24)


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


def deliveries_enqueue_due() -> list[int]:
    """The sweeper's pass: queue a sender for every enabled endpoint with a delivery due."""
    due = endpoints_with_due_deliveries()
    if due:
        enqueue_endpoints(due)
    return due
