"""Webhooks we send to integrators (inbound processor webhooks are ``WebhookEvent``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models

from payments.webhook_secrets import secret_decrypt, secret_encrypt

EVENT_TYPES = [
    ("order.paid", "An order was paid"),
    ("refund.created", "A refund was created"),
    ("payout.sent", "A payout was sent"),
    ("payout.paid", "A payout reached the bank"),
    ("payout.failed", "A payout failed before its transfer; the money is available again"),
    ("payout.bank_failed", "A bank payout was refused or failed; the money waits to be sent again"),
    ("payout.returned", "A paid payout was returned by the seller's bank"),
]


class WebhookEndpoint(models.Model):
    """An integrator's HTTPS address and the events it wants, signed with its secret.

    A seller's endpoint gets the events about that seller; an endpoint without
    a seller (operators only) gets every event.
    """

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    seller = models.ForeignKey(
        "accounts.Seller",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhook_endpoints",
        help_text="Empty: every event on the platform (operators only).",
    )
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text='Event types to send, e.g. ["payout.paid"].')
    secret_encrypted = models.TextField(
        editable=False, blank=True, help_text="The signing secret, Fernet-encrypted."
    )
    previous_secret_encrypted = models.TextField(
        editable=False, blank=True, help_text="The secret before the last rotation, encrypted."
    )
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Until then deliveries are also signed with it."
    )
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.url

    @property
    def secret(self) -> str:
        """The current signing secret, decrypted."""
        return secret_decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_encrypted = secret_encrypt(value)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a delivery at ``now``: the current one, then the one
        before the last rotation while its overlap window lasts."""
        live = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret_encrypted and expires is not None and now < expires:
            live.append(secret_decrypt(self.previous_secret_encrypted))
        return live


class WebhookDelivery(models.Model):
    """One event for one endpoint, written in the same transaction as the change it
    announces (an outbox), then sent by a Celery task until it is answered 2xx."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        RETRYING = "retrying", "Failed, will retry"
        FAILED = "failed", "Failed, gave up"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["endpoint", "event_id"], name="payments_webhookdelivery_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery and what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=255, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"Attempt on {self.delivery_id}: {self.status_code or self.error}"
