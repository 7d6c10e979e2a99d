"""Webhook events as received: stored raw, once per processor and event id."""

from __future__ import annotations

from django.db import models


class WebhookEvent(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (unknown type)"
        FAILED = "failed", "Failed"

    processor = models.CharField(max_length=20)
    event_id = models.CharField(max_length=100)
    type = models.CharField(max_length=80, db_index=True)
    account = models.CharField(max_length=60, blank=True, help_text="Connected account, if any.")
    livemode = models.BooleanField(default=False)
    payload = models.TextField(help_text="The body exactly as received.")
    headers = models.JSONField(default=dict, help_text="Request headers, without the signature.")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["processor", "event_id"], name="payments_webhookevent_once_per_processor"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.processor} {self.type} {self.event_id}"
