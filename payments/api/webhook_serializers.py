"""Serializers of webhook endpoints, their deliveries and the events API: shapes
only; the rules live in ``payments.integrations.webhooks`` and ``payments.integrations.events``."""

from __future__ import annotations

from rest_framework import serializers

from accounts.models import Seller
from marketplace.kernel.api.fields import SlugRefField, StrictIntegerField
from payments.integrations.webhooks import ROTATION_OVERLAP_MAX_HOURS
from payments.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from payments.models.outbound_webhooks import EVENT_TYPES
from payments.webhook_secrets import secret_hint

ENDPOINT_FIELDS = [
    "id",
    "url",
    "events",
    "seller",
    "description",
    "is_active",
    "secret_hint",
    "previous_secret_expires_at",
    "created_at",
]


class WebhookEndpointSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """An endpoint as lists and reads show it: the secret only as a hint."""

    seller: SlugRefField = SlugRefField(
        slug_field="slug", queryset=Seller.objects.all(), required=False, allow_null=True
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), allow_empty=False, max_length=20
    )
    url = serializers.URLField(max_length=500)
    secret_hint = serializers.SerializerMethodField(
        help_text="The end of the signing secret, to tell secrets apart (whsec_…x4Qz)."
    )

    class Meta:
        model = WebhookEndpoint
        fields = ENDPOINT_FIELDS
        read_only_fields = ["id", "secret_hint", "previous_secret_expires_at", "created_at"]

    def get_secret_hint(self, endpoint: WebhookEndpoint) -> str:
        return secret_hint(endpoint.secret_encrypted)


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """An endpoint just created or whose secret was just rotated: the only answers
    that show the signing secret."""

    secret = serializers.CharField(
        read_only=True, help_text="The signing secret (whsec_…): shown only now."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*ENDPOINT_FIELDS, "secret"]
        read_only_fields = [*WebhookEndpointSerializer.Meta.read_only_fields, "secret"]


class SecretRotationRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    expires_in_hours = StrictIntegerField(
        min_value=0,
        max_value=ROTATION_OVERLAP_MAX_HOURS,
        default=24,
        help_text="How long the old secret keeps signing next to the new one (0: not at all).",
    )


class WebhookAttemptSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = WebhookAttempt
        fields = ["at", "status_code", "response_body", "error", "duration_ms"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "payload",
            "status",
            "attempts",
            "created_at",
            "delivered_at",
            "log",
        ]
        read_only_fields = fields


class EventSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    """An event as its audience sees it: the platform-wide payload for operators, the
    seller's part for a seller (the same ``data`` as the webhook's)."""

    id = serializers.UUIDField(source="event_id", read_only=True)
    seller: SlugRefField = SlugRefField(
        slug_field="slug",
        read_only=True,
        allow_null=True,
        help_text="The seller whose part this is; null: the platform-wide event.",
    )

    class Meta:
        model = Event
        fields = ["id", "type", "object_type", "object_id", "seller", "data", "created_at"]
        read_only_fields = fields


class EventResendRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    endpoint = StrictIntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The webhook endpoint to send it to."
    )
