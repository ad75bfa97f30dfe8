"""Webhook endpoints per user, and the deliveries to them (the outbox the worker sends from)."""

import base64
import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32


class EventType(models.TextChoices):
    SESSION_COMPLETED = "session.completed"
    SESSION_FAILED = "session.failed"
    SESSION_KILLED = "session.killed"
    SESSION_PAUSED = "session.paused"


# The session status whose arrival announces each event.
EVENT_FOR_STATUS = {
    "completed": EventType.SESSION_COMPLETED,
    "failed": EventType.SESSION_FAILED,
    "killed": EventType.SESSION_KILLED,
    "paused": EventType.SESSION_PAUSED,
}


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of random bytes (the HMAC key)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_webhook_id() -> str:
    """The `webhook-id` of one event to one endpoint; every retry of it sends the same id."""
    return f"msg_{uuid.uuid4().hex}"


def all_event_types() -> list[str]:
    return list(EventType.values)


class Endpoint(models.Model):
    """A URL a user wants told about their sessions."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.CharField(max_length=2000)  # checked by the API (webhooks/addresses.py)
    events = ArrayField(models.CharField(max_length=40), default=all_event_types)
    description = models.CharField(max_length=500, blank=True)
    # Kept to sign; shown to the owner only in the answer that created or rotated it.
    secret = models.CharField(max_length=100, default=new_secret)
    # After a rotation the old secret also signs for a while, so receivers can switch over.
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "webhook_endpoints"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "enabled"], name="webhook_ep_user_enabled")]

    def __str__(self) -> str:
        return f"{self.url} ({self.user_id})"

    def signing_secrets(self, now=None) -> list[str]:
        """The secrets that sign a request now: the current one, and the previous one in grace."""
        now = now or timezone.now()
        keys = [self.secret]
        if self.previous_secret and (
            self.previous_secret_expires_at is None or self.previous_secret_expires_at > now
        ):
            keys.append(self.previous_secret)
        return keys


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    """One event for one endpoint: written with the status change, then sent and retried."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    webhook_id = models.CharField(max_length=40, unique=True, default=new_webhook_id)
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    session_id = models.CharField(max_length=40, db_index=True)
    # The exact body that is signed and sent, fixed when the event happened.
    payload = models.TextField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_response_body = models.TextField(blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "webhook_deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sender's question: this endpoint's oldest unsent delivery.
            models.Index(
                fields=["endpoint", "id"],
                name="webhook_dl_pending",
                condition=models.Q(status="pending"),
            ),
            # The sweeper's question: which endpoints have something due.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_dl_due",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_dl_endpoint_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.session_id} → endpoint {self.endpoint_id}"
