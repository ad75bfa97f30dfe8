"""Reads of the webhooks app."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from .models import Delivery, DeliveryStatus, Endpoint


def endpoint_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Endpoint]:
    return Endpoint.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def endpoint_get_for_user(*, user: AbstractBaseUser, endpoint_id: int) -> Endpoint | None:
    """The endpoint when it belongs to `user`; None otherwise (the API's 404)."""
    return Endpoint.objects.filter(user_id=user.pk, pk=endpoint_id).first()


def delivery_list_for_endpoint(*, endpoint: Endpoint, limit: int = 50) -> list[Delivery]:
    """An endpoint's deliveries, newest first."""
    return list(
        Delivery.objects.filter(endpoint=endpoint)
        .defer("payload", "last_response_body")
        .order_by("-created_at", "-id")[:limit]
    )


def endpoints_with_due_deliveries() -> list[int]:
    """Enabled endpoints with a pending delivery whose time has come."""
    return list(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=timezone.now(),
            endpoint__enabled=True,
        )
        .values_list("endpoint_id", flat=True)
        .distinct()
        .order_by()
    )


def deliveries_pending_count() -> int:
    """Recorded but not yet delivered (nor given up on): the size of the outbox."""
    return Delivery.objects.filter(status=DeliveryStatus.PENDING).count()


def endpoints_by_state() -> dict[str, int]:
    """How many endpoints are ok, failing (enabled, last attempts failed) or disabled."""
    counts = Endpoint.objects.aggregate(
        ok=Count("id", filter=Q(enabled=True, failing_since__isnull=True)),
        failing=Count("id", filter=Q(enabled=True, failing_since__isnull=False)),
        disabled=Count("id", filter=Q(enabled=False)),
    )
    return {state: int(count or 0) for state, count in counts.items()}
