"""Disputes (chargebacks): the customer's bank takes a payment back, pending a decision."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from marketplace.kernel.currencies import format_amount


class Dispute(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    # A payment with a dispute in these states takes no refund: the card network
    # decides what the customer gets back (Stripe refuses with ``charge_disputed``).
    BARS_REFUNDS = (Status.OPEN, Status.LOST)

    order = models.ForeignKey(
        "marketplace.Order", on_delete=models.PROTECT, related_name="disputes"
    )
    payment_attempt = models.ForeignKey(
        "payments.PaymentAttempt",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="disputes",
        help_text="The payment disputed: the order's captured one, or a duplicate payment.",
    )
    processor = models.CharField(max_length=20)
    processor_dispute_id = models.CharField(max_length=100)
    amount_minor = models.BigIntegerField()
    # What the dispute holds of the order's service fee (the platform's alone: a lost
    # dispute takes it from the platform's service_fees account, never from a seller).
    service_fee_minor = models.BigIntegerField(default=0, db_default=0)
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
            models.CheckConstraint(
                condition=Q(service_fee_minor__gte=0, service_fee_minor__lte=F("amount_minor")),
                name="payments_dispute_service_fee_within_amount",
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
    refunded_seller_minor = models.BigIntegerField(
        default=0,
        help_text="What refunds that succeeded while the dispute was open took out of the "
        "seller's held part (the customer was repaid once, through the refund).",
    )
    refunded_commission_minor = models.BigIntegerField(
        default=0, help_text="The same for the commission's part."
    )

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
            models.CheckConstraint(
                condition=Q(
                    refunded_seller_minor__gte=0,
                    refunded_seller_minor__lte=F("seller_amount_minor"),
                    refunded_commission_minor__gte=0,
                    refunded_commission_minor__lte=F("commission_amount_minor"),
                ),
                name="payments_disputeline_refunded_within_held",
            ),
        ]

    def __str__(self) -> str:
        amount = format_amount(self.amount_minor, self.dispute.currency)
        return f"{amount} of line #{self.order_line_id}"

    @property
    def lost_seller_minor(self) -> int:
        """The seller's part that a lost dispute takes: what is still held for it."""
        return self.seller_amount_minor - self.refunded_seller_minor

    @property
    def lost_commission_minor(self) -> int:
        return self.commission_amount_minor - self.refunded_commission_minor
