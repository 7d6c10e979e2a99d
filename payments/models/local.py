"""The ``local`` processor's own records: a simulated Stripe Connect in our database.

These tables belong to the simulated processor, not to the marketplace: the
marketplace only sees them through ``payments.processors.local``.
"""

from __future__ import annotations

import secrets

from django.db import models


def local_id(prefix: str) -> str:
    return f"{prefix}_local_{secrets.token_hex(8)}"


class LocalRecord(models.Model):
    """A record of the simulated processor, named by its processor-style id."""

    id = models.CharField(primary_key=True, max_length=40)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.id


class LocalAccount(LocalRecord):
    email = models.EmailField()
    country = models.CharField(max_length=2)
    details_submitted = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "local processor account"


class LocalPaymentIntent(LocalRecord):
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=30)
    client_secret = models.CharField(max_length=80)
    transfer_group = models.CharField(max_length=100, blank=True)
    customer_email = models.EmailField(blank=True)
    metadata = models.JSONField(default=dict)
    charge_id = models.CharField(max_length=40, blank=True)
    fee_minor = models.BigIntegerField(null=True, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    dispute_on_success = models.BooleanField(default=False)
    # "card" or "bank_debit" (a simulated SEPA/ACH debit), once confirmed.
    payment_method_type = models.CharField(max_length=20, blank=True, db_default="")
    bank_last4 = models.CharField(max_length=4, blank=True, db_default="")
    # A processing bank debit: when it settles, and whether it then succeeds or fails.
    settles_at = models.DateTimeField(null=True, blank=True, db_index=True)
    debit_fails = models.BooleanField(default=False, db_default=False)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "local processor payment"


class LocalRefund(LocalRecord):
    payment_intent = models.ForeignKey(LocalPaymentIntent, on_delete=models.PROTECT)
    amount_minor = models.BigIntegerField()
    status = models.CharField(max_length=20)
    metadata = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class LocalTransfer(LocalRecord):
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    destination = models.CharField(max_length=40)
    transfer_group = models.CharField(max_length=100, blank=True)
    source_charge = models.CharField(max_length=40, blank=True)
    reversed_minor = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class LocalTransferReversal(LocalRecord):
    transfer = models.ForeignKey(LocalTransfer, on_delete=models.PROTECT)
    amount_minor = models.BigIntegerField()
    metadata = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class LocalPayout(LocalRecord):
    account = models.CharField(max_length=40)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20)
    metadata = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class LocalEvent(LocalRecord):
    """An event the simulated processor emits, delivered through our webhook endpoint code."""

    type = models.CharField(max_length=60)
    account = models.CharField(max_length=40, blank=True)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
