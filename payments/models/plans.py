"""Seller plans: a monthly fee for a lower commission, and what each seller chose."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from marketplace.kernel.currencies import currency_choices


class SellerPlan(models.Model):
    """A plan operators offer sellers: a monthly fee in one currency, charged from the
    seller's balance at each period's start, and optionally a commission percentage
    that replaces the platform's default and category rules for the seller's sales."""

    name = models.CharField(max_length=80)
    description = models.CharField(max_length=255, blank=True)
    currency = models.CharField(max_length=3, choices=currency_choices())
    monthly_fee_minor = models.BigIntegerField("monthly fee (minor units)", default=0)
    commission_bps = models.PositiveIntegerField(
        "commission (basis points)",
        null=True,
        blank=True,
        help_text="1000 = 10%. Blank: the commission rules apply unchanged.",
    )
    is_offered = models.BooleanField(
        "offered", default=True, help_text="Sellers can choose it on their pages."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "monthly_fee_minor", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "currency"], name="payments_sellerplan_name_currency_unique"
            ),
            models.CheckConstraint(
                condition=Q(monthly_fee_minor__gte=0),
                name="payments_sellerplan_fee_not_negative",
                violation_error_message="The monthly fee cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(commission_bps__isnull=True) | Q(commission_bps__lte=10_000),
                name="payments_sellerplan_commission_at_most_100",
                violation_error_message="The commission cannot be more than 100%%.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"


class SellerPlanChoice(models.Model):
    """A seller on a plan from ``started_at`` until ``ended_at`` (None: still on it).
    A change of plan ends the current row and starts a new one; rows are never deleted,
    so a sale's commission and a period's fee can always be traced to the plan then."""

    seller = models.ForeignKey(
        "accounts.Seller", on_delete=models.PROTECT, related_name="plan_choices"
    )
    plan = models.ForeignKey(SellerPlan, on_delete=models.PROTECT, related_name="choices")
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    chosen_by = models.ForeignKey(
        "accounts.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seller_id", "-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["seller"],
                condition=Q(ended_at__isnull=True),
                name="payments_sellerplanchoice_one_current_per_seller",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="payments_sellerplanchoice_period_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.seller} on {self.plan}"


class SellerPlanCharge(models.Model):
    """A plan fee charged from (or, on a change of plan, credited back to) a seller's
    balance for one billing period, with the ledger transaction that moved it."""

    class Kind(models.TextChoices):
        CHARGE = "charge", "Charged"
        CREDIT = "credit", "Credited (plan change)"

    seller = models.ForeignKey(
        "accounts.Seller", on_delete=models.PROTECT, related_name="plan_charges"
    )
    plan = models.ForeignKey(SellerPlan, on_delete=models.PROTECT, related_name="charges")
    choice = models.ForeignKey(SellerPlanChoice, on_delete=models.PROTECT, related_name="charges")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField(help_text="Positive; the kind says which way.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
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
        ordering = ["-period_start", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0), name="payments_sellerplancharge_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")),
                name="payments_sellerplancharge_period_in_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.plan} for {self.seller}"
