"""Payment attempts: each try to pay an order at the processor."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class PaymentAttempt(models.Model):
    """One processor payment for an order. A declined card is followed by a new
    attempt on the same order, never by a second order."""

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        REQUIRES_ACTION = "requires_action", "Needs the customer's confirmation"
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    OPEN = (Status.CREATED, Status.REQUIRES_ACTION, Status.PROCESSING)

    order = models.ForeignKey(
        "marketplace.Order", on_delete=models.PROTECT, related_name="payment_attempts"
    )
    number = models.PositiveIntegerField()
    processor = models.CharField(max_length=20)
    processor_payment_id = models.CharField(max_length=100, blank=True)
    client_secret = models.CharField(max_length=200, blank=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.CREATED, db_index=True
    )
    failure_message = models.CharField(max_length=255, blank=True)
    # How the customer paid, as the processor names it ("card", "sepa_debit",
    # "us_bank_account", "bank_debit" for the local processor's, ...): blank until known.
    payment_method_type = models.CharField(max_length=30, blank=True, db_default="")
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "number"], name="payments_paymentattempt_number_per_order"
            ),
            models.UniqueConstraint(
                fields=["processor", "processor_payment_id"],
                condition=~Q(processor_payment_id=""),
                name="payments_paymentattempt_processor_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment {self.number} of order #{self.order_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN
