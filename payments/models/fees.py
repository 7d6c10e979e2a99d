"""Fees beyond commission: a fee per product listed, and a service fee per order."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from marketplace.kernel.currencies import currency_choices


class ListingFee(models.Model):
    """A fee per product listed or renewed, for the platform default or one category
    (the category's fee wins), in one currency. A listing lasts ``listing_days``."""

    class Scope(models.TextChoices):
        DEFAULT = "default", "Platform default"
        CATEGORY = "category", "Category"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    category = models.ForeignKey(
        "marketplace.Category", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    currency = models.CharField(max_length=3, choices=currency_choices())
    amount_minor = models.BigIntegerField("fee per listing (minor units)")
    listing_days = models.PositiveIntegerField(default=30)
    active_from = models.DateTimeField(default=timezone.now)
    active_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scope", "currency", "-active_from", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="default", category__isnull=True)
                | Q(scope="category", category__isnull=False),
                name="payments_listingfee_scope_target",
                violation_error_message="Choose a category for a category's fee, none otherwise.",
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0),
                name="payments_listingfee_amount_not_negative",
                violation_error_message="The fee cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(listing_days__gte=1),
                name="payments_listingfee_days_positive",
                violation_error_message="A listing lasts at least one day.",
            ),
            models.CheckConstraint(
                condition=Q(active_until__isnull=True) | Q(active_until__gt=F("active_from")),
                name="payments_listingfee_period_in_order",
                violation_error_message="The fee must end after it starts.",
            ),
        ]

    def __str__(self) -> str:
        where = f" on {self.category}" if self.category_id else ""
        return f"Listing fee{where} ({self.currency})"


class ListingCharge(models.Model):
    """A listing fee charged from a seller's balance for one product's listing period."""

    class Kind(models.TextChoices):
        LISTED = "listed", "Listed"
        RENEWED = "renewed", "Renewed"

    product = models.ForeignKey(
        "marketplace.Product", on_delete=models.PROTECT, related_name="listing_charges"
    )
    seller = models.ForeignKey(
        "accounts.Seller", on_delete=models.PROTECT, related_name="listing_charges"
    )
    fee = models.ForeignKey(ListingFee, on_delete=models.PROTECT, related_name="charges")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    listed_from = models.DateTimeField()
    listed_until = models.DateTimeField()
    ledger_transaction = models.ForeignKey(
        "payments.LedgerTransaction",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-listed_from", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0), name="payments_listingcharge_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(listed_until__gt=F("listed_from")),
                name="payments_listingcharge_period_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.product}"


class ServiceFee(models.Model):
    """What the customer pays the platform per order, on top of the lines: a percentage
    of the lines' total and/or a fixed amount, in one currency, kept by the platform
    and refunded pro rata with the lines."""

    name = models.CharField(max_length=80, default="Service fee")
    currency = models.CharField(max_length=3, choices=currency_choices())
    percentage_bps = models.PositiveIntegerField(
        "percentage (basis points)", default=0, help_text="100 = 1%."
    )
    fixed_fee_minor = models.BigIntegerField("fixed fee per order (minor units)", default=0)
    active_from = models.DateTimeField(default=timezone.now)
    active_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "-active_from", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(percentage_bps__lte=10_000),
                name="payments_servicefee_percentage_at_most_100",
                violation_error_message="The percentage cannot be more than 100%%.",
            ),
            models.CheckConstraint(
                condition=Q(fixed_fee_minor__gte=0),
                name="payments_servicefee_fixed_not_negative",
                violation_error_message="The fixed fee cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(active_until__isnull=True) | Q(active_until__gt=F("active_from")),
                name="payments_servicefee_period_in_order",
                violation_error_message="The fee must end after it starts.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"
