"""Request validation and response shapes of the webhooks API."""

from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from sessions_app.api.serializers import StrictCharField

from ..addresses import AddressNotAllowed, check_url
from ..models import Delivery, DeliveryStatus, Endpoint, EventType

MAX_ENDPOINTS_PER_USER = 20
NO_NUL = RegexValidator(r"^[^\x00]*$", "Must not contain NUL characters.")
# What the schema says of a webhook URL, and what is checked before the address check: http or
# https, a host name or IPv4 address (no credentials, no IPv6 literal), an optional port, then
# the characters a URI may hold (anything else percent-encoded).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
_REST = r"(?:[/?#](?:[A-Za-z0-9\-._~:/?#@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)?"
URL_SHAPE = RegexValidator(
    rf"^https?://{_LABEL}(?:\.{_LABEL})*\.?(?::{_PORT})?{_REST}$",
    "Enter an http or https URL with a host name (no credentials), e.g. https://example.com/hook.",
)


class EventTypesField(serializers.ListField):
    """A list of event types whose errors are messages of the field, not a map per item."""

    def to_internal_value(self, data: object) -> list[str]:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            raise serializers.ValidationError(
                [
                    f"Item {index}: {' '.join(str(m) for m in messages)}"
                    for index, messages in exc.detail.items()
                ]
            ) from None


class EndpointWriteSerializer(serializers.Serializer):
    url = StrictCharField(
        max_length=2000,
        help_text="An http or https URL whose host resolves to public addresses.",
        trim_whitespace=False,
        validators=[URL_SHAPE],
    )
    events = EventTypesField(
        child=serializers.ChoiceField(choices=EventType.choices),
        required=False,
        allow_empty=False,
        min_length=1,
        max_length=len(EventType.values),
        help_text="The events to send; every event when omitted.",
    )
    description = StrictCharField(
        required=False, allow_blank=True, max_length=500, default="", validators=[NO_NUL]
    )

    def validate_url(self, value: str) -> str:
        url = value
        try:
            check_url(url)
        except AddressNotAllowed as exc:
            raise serializers.ValidationError(str(exc)) from None
        return url


class EndpointUpdateSerializer(EndpointWriteSerializer):
    url = StrictCharField(
        max_length=2000, required=False, trim_whitespace=False, validators=[URL_SHAPE]
    )
    description = StrictCharField(
        required=False, allow_blank=True, max_length=500, validators=[NO_NUL]
    )
    enabled = serializers.BooleanField(
        required=False, help_text="Set true to enable an endpoint that was disabled."
    )


class EndpointSerializer(serializers.ModelSerializer):
    url = serializers.CharField(read_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EventType.choices))

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "events",
            "description",
            "enabled",
            "failing_since",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class EndpointWithSecretSerializer(EndpointSerializer):
    """The only answers that show the secret: the one that created it and a rotation."""

    secret = serializers.CharField(
        read_only=True, help_text="whsec_ and base64: the signing key. Shown only this once."
    )

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class EndpointListSerializer(serializers.Serializer):
    webhooks = EndpointSerializer(many=True)
    count = serializers.IntegerField()


class DeliverySerializer(serializers.ModelSerializer):
    next_attempt_at = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "webhook_id",
            "event_type",
            "session_id",
            "status",
            "attempts",
            "last_response_status",
            "last_error",
            "next_attempt_at",
            "last_attempt_at",
            "delivered_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_next_attempt_at(self, delivery: Delivery) -> str | None:
        if delivery.status != DeliveryStatus.PENDING:
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


class DeliveryListSerializer(serializers.Serializer):
    deliveries = DeliverySerializer(many=True)
    count = serializers.IntegerField()


class DeliveryQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=100, default=50, required=False)
