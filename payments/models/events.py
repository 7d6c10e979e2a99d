"""The events integrators can list and catch up on (``GET /api/v1/events/``)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Event(models.Model):
    """Something that happened, as the outbound webhooks announce it, recorded in the
    transaction of the change whether or not an endpoint listens.

    One event id has one row per audience: the platform-wide payload (``seller``
    empty, what operators see) and one row per seller concerned with that seller's
    part (what the seller sees). Kept 30 days (``events_prune``).
    """

    event_id = models.UUIDField(
        db_index=True, help_text="The public id: the webhook body's id and Marketplace-Delivery."
    )
    type = models.CharField(max_length=40)
    seller = models.ForeignKey(
        "accounts.Seller",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: the platform-wide payload (operators).",
    )
    object_type = models.CharField(max_length=20, help_text="order, refund or payout")
    object_id = models.PositiveBigIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "seller"],
                condition=Q(seller__isnull=False),
                name="payments_event_once_per_seller",
            ),
            models.UniqueConstraint(
                fields=["event_id"],
                condition=Q(seller__isnull=True),
                name="payments_event_once_platform_wide",
            ),
        ]
        indexes = [
            models.Index(fields=["seller", "-id"], name="payments_event_seller_newest"),
            models.Index(fields=["object_type", "object_id"], name="payments_event_object"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
