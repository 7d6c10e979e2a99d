"""Refunds: money given back to a customer, allocated exactly across lines,
and across the seller's share and the platform's commission within a line."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from marketplace.kernel.currencies import format_amount


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    order = models.ForeignKey("marketplace.Order", on_delete=models.PROTECT, related_name="refunds")
    amount_minor = models.BigIntegerField(
        help_text="What the customer gets back: the lines' parts plus the service fee's part."
    )
    # The part of amount_minor that gives back the order's service fee (pro rata).
    service_fee_minor = models.BigIntegerField(default=0, db_default=0)
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    reason = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    processor = models.CharField(max_length=20, blank=True)
    processor_refund_id = models.CharField(max_length=100, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(
        default=dict,
        db_default=models.Value({}, output_field=models.JSONField()),
        blank=True,
        help_text="An integrator's own key-value pairs (payments/metadata.py has the limits).",
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0), name="payments_refund_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(service_fee_minor__gte=0, service_fee_minor__lte=F("amount_minor")),
                name="payments_refund_service_fee_within_amount",
            ),
            models.UniqueConstraint(
                fields=["processor", "processor_refund_id"],
                condition=~Q(processor_refund_id=""),
                name="payments_refund_processor_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund #{self.pk} of order #{self.order_id}"


class RefundLine(models.Model):
    """The part of a refund that comes from one order line."""

    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, related_name="lines")
    order_line = models.ForeignKey(
        "marketplace.OrderLine", on_delete=models.PROTECT, related_name="refund_lines"
    )
    amount_minor = models.BigIntegerField()
    seller_amount_minor = models.BigIntegerField()
    commission_amount_minor = models.BigIntegerField()
    dispute_seller_minor = models.BigIntegerField(
        default=0,
        help_text="Of the seller's part, what was taken from an open dispute's hold on the "
        "line (the refund resolved against the dispute).",
    )
    dispute_commission_minor = models.BigIntegerField(
        default=0, help_text="The same for the commission's part."
    )

    class Meta:
        ordering = ["refund_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["refund", "order_line"], name="payments_refundline_one_per_line"
            ),
            models.CheckConstraint(
                condition=Q(
                    amount_minor__gt=0,
                    seller_amount_minor__gte=0,
                    commission_amount_minor__gte=0,
                    amount_minor=F("seller_amount_minor") + F("commission_amount_minor"),
                ),
                name="payments_refundline_parts_add_up",
            ),
        ]

    def __str__(self) -> str:
        amount = format_amount(self.amount_minor, self.refund.currency)
        return f"{amount} of line #{self.order_line_id}"
