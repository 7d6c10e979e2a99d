"""A customer's request to refund an order line, decided by its seller or an operator."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class RefundRequest(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", "Waiting for the seller"
        APPROVED = "approved", "Approved"
        DECLINED = "declined", "Declined"
        # The line was refunded in full another way (an operator's or a seller's refund)
        # while the request waited: nothing is left to decide.
        REFUNDED = "refunded", "Refunded otherwise"

    order_line = models.ForeignKey(
        "marketplace.OrderLine", on_delete=models.PROTECT, related_name="refund_requests"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=255)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.REQUESTED, db_index=True
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=255, blank=True)
    refund = models.OneToOneField(
        "payments.Refund", on_delete=models.PROTECT, null=True, blank=True, related_name="request"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["order_line"],
                condition=Q(status="requested"),
                name="payments_refundrequest_one_open_per_line",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund request #{self.pk} for line #{self.order_line_id}"
