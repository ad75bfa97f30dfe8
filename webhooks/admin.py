"""The operators' view of webhook endpoints and deliveries; secrets are never shown."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import Delivery, Endpoint

SECRET_FIELDS = ("secret", "previous_secret")


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("id", "url", "user", "enabled", "failing_since", "disabled_at", "created_at")
    list_filter = ("enabled",)
    search_fields = ("url", "user__username", "description")
    exclude = SECRET_FIELDS
    readonly_fields = (
        "user",
        "url",  # changed through the API only, where the address check runs
        "failing_since",
        "disabled_at",
        "disabled_reason",
        "previous_secret_expires_at",
        "created_at",
        "updated_at",
    )
    list_select_related = ("user",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # endpoints are registered by their owners through the API (the secret)


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "event_type",
        "session_id",
        "endpoint",
        "status",
        "attempts",
        "last_response_status",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event_type")
    search_fields = ("session_id", "webhook_id", "endpoint__url")
    list_select_related = ("endpoint",)
    actions = ["redeliver"]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.action(description="Redeliver the selected deliveries (same webhook-id)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = 0
        for delivery in queryset.select_related("endpoint"):
            services.delivery_redeliver(delivery=delivery)
            count += 1
        self.message_user(request, f"{count} deliveries queued again.", messages.SUCCESS)
