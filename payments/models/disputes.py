"""Disputes (chargebacks): the customer's bank takes a payment back, pending a decision."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q


class Dispute(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    order = models.ForeignKey(
        "marketplace.Order", on_delete=models.PROTECT, related_name="disputes"
    )
    processor = models.CharField(max_length=20)
    processor_dispute_id = models.CharField(max_length=100)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=100, blank=True)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["processor", "processor_dispute_id"], name="payments_dispute_once"
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0), name="payments_dispute_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.processor_dispute_id} on order #{self.order_id}"


class DisputeLine(models.Model):
    """The part of a dispute that falls on one order line: its seller's part and the commission."""

    dispute = models.ForeignKey(Dispute, on_delete=models.PROTECT, related_name="lines")
    order_line = models.ForeignKey(
        "marketplace.OrderLine", on_delete=models.PROTECT, related_name="dispute_lines"
    )
    amount_minor = models.BigIntegerField()
    seller_amount_minor = models.BigIntegerField()
    commission_amount_minor = models.BigIntegerField()

    class Meta:
        ordering = ["dispute_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    amount_minor__gt=0,
                    seller_amount_minor__gte=0,
                    commission_amount_minor__gte=0,
                    amount_minor=F("seller_amount_minor") + F("commission_amount_minor"),
                ),
                name="payments_disputeline_parts_add_up",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount_minor} of line #{self.order_line_id}"
