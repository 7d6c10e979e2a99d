"""Admin for webhooks to integrators: endpoints (with a test button) and deliveries."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from payments.admin.base import ReadOnlyInline, ReadOnlyWithActionsAdmin
from payments.integrations.webhooks import (
    webhook_delivery_retry,
    webhook_endpoint_test,
    webhook_endpoint_update,
)
from payments.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from payments.webhook_secrets import secret_hint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyWithActionsAdmin):
    """Endpoints are registered by their owners (API); here they are seen, switched off
    and tested. The signing secret is never shown, only its end; its owner rotates it
    through the API, the only place it is shown."""

    list_display = ("url", "owner", "seller", "events", "is_active", "created_at")
    fields = (
        "url",
        "owner",
        "seller",
        "events",
        "description",
        "is_active",
        "secret_hint",
        "previous_secret_expires_at",
        "created_at",
    )
    readonly_fields = ("secret_hint",)
    list_filter = ("is_active",)
    search_fields = ("url", "owner__email", "seller__slug")
    list_select_related = ("owner", "seller")
    actions = ("send_test", "disable")

    @admin.display(description="secret")
    def secret_hint(self, endpoint: WebhookEndpoint) -> str:
        return secret_hint(endpoint.secret_encrypted)

    @admin.action(description="Send a test event (ping) now")
    def send_test(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            delivery = webhook_endpoint_test(endpoint=endpoint)
            attempt = delivery.log.first()
            answer = attempt.status_code or attempt.error if attempt else "no attempt"
            level = messages.SUCCESS if delivery.status == "succeeded" else messages.WARNING
            self.message_user(request, f"{endpoint.url}: {answer}", level=level)

    @admin.action(description="Switch the selected endpoints off")
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:

        for endpoint in queryset:
            webhook_endpoint_update(endpoint=endpoint, is_active=False)
        self.message_user(request, f"{queryset.count()} endpoint(s) switched off.")


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ("at", "status_code", "error", "duration_ms", "response_body")
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyWithActionsAdmin):
    list_display = ("created_at", "event_type", "endpoint", "status", "attempts", "delivered_at")
    list_filter = ("status", "event_type")
    search_fields = ("=event_id", "endpoint__url")
    list_select_related = ("endpoint",)
    inlines = [WebhookAttemptInline]
    actions = ("redeliver",)

    @admin.action(description="Send the selected deliveries again")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset:
            webhook_delivery_retry(delivery=delivery)
        self.message_user(request, f"{queryset.count()} delivery(ies) queued again.")
