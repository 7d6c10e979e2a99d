"""Commission rules: how much of each order line the platform keeps."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from marketplace.kernel.currencies import SUPPORTED_CURRENCIES, currency_choices, format_amount

# (from, up to or None for no top, basis points), amounts in the rule's minor units.
TierSpec = tuple[int, int | None, int]


def tier_money(minor: int, currency: str) -> str:
    """An amount of a tier in its money (in minor units for a currency not traded)."""
    return format_amount(minor, currency) if currency in SUPPORTED_CURRENCIES else str(minor)


def tiers_text(tiers: Sequence[TierSpec], currency: str) -> str:
    """The tiers in words, as the rule's history shows them: "$0.00 to $1,000.00: 10%;
    $1,000.00 and up: 7.5%" ("none" for no tiers)."""
    if not tiers:
        return "none"
    parts = []
    for start, top, bps in tiers:
        band = (
            f"{tier_money(start, currency)} and up"
            if top is None
            else f"{tier_money(start, currency)} to {tier_money(top, currency)}"
        )
        parts.append(f"{band}: {(Decimal(bps) / 100).normalize():f}%")
    return "; ".join(parts)


class CommissionRule(models.Model):
    """A percentage and/or fixed fee per line, with an optional minimum and maximum.

    The most specific active rule wins: product, then seller, then category
    (the product's own category, then its parent), then the platform default.
    A rule with a fixed fee, minimum or maximum is for one currency; a rule
    with only a percentage and no currency applies to every currency.
    """

    class Scope(models.TextChoices):
        DEFAULT = "default", "Platform default"
        CATEGORY = "category", "Category"
        SELLER = "seller", "Seller"
        PRODUCT = "product", "Product"

    name = models.CharField(max_length=120, blank=True)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    category = models.ForeignKey(
        "marketplace.Category", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    seller = models.ForeignKey(
        "accounts.Seller", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    product = models.ForeignKey(
        "marketplace.Product", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    percentage_bps = models.PositiveIntegerField(
        "percentage (basis points)", default=0, help_text="1000 = 10%."
    )
    fixed_fee_minor = models.BigIntegerField("fixed fee per line (minor units)", default=0)
    minimum_minor = models.BigIntegerField("minimum per line (minor units)", null=True, blank=True)
    maximum_minor = models.BigIntegerField("maximum per line (minor units)", null=True, blank=True)
    currency = models.CharField(
        max_length=3,
        choices=currency_choices(),
        blank=True,
        help_text="Needed with a fixed fee, minimum or maximum; blank applies to all currencies.",
    )
    active_from = models.DateTimeField(default=timezone.now)
    active_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scope", "-active_from", "-id"]
        indexes = [models.Index(fields=["scope", "active_from"], name="commission_scope_from_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        scope="default",
                        category__isnull=True,
                        seller__isnull=True,
                        product__isnull=True,
                    )
                    | Q(
                        scope="category",
                        category__isnull=False,
                        seller__isnull=True,
                        product__isnull=True,
                    )
                    | Q(
                        scope="seller",
                        category__isnull=True,
                        seller__isnull=False,
                        product__isnull=True,
                    )
                    | Q(
                        scope="product",
                        category__isnull=True,
                        seller__isnull=True,
                        product__isnull=False,
                    )
                ),
                name="payments_commissionrule_scope_target",
                violation_error_message="Choose exactly the target the scope names.",
            ),
            models.CheckConstraint(
                condition=Q(percentage_bps__lte=10_000),
                name="payments_commissionrule_percentage_at_most_100",
                violation_error_message="The percentage cannot be more than 100%%.",
            ),
            models.CheckConstraint(
                condition=Q(fixed_fee_minor__gte=0)
                & (Q(minimum_minor__isnull=True) | Q(minimum_minor__gte=0))
                & (Q(maximum_minor__isnull=True) | Q(maximum_minor__gte=0)),
                name="payments_commissionrule_amounts_not_negative",
                violation_error_message="Fees, minimum and maximum cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(minimum_minor__isnull=True)
                | Q(maximum_minor__isnull=True)
                | Q(minimum_minor__lte=models.F("maximum_minor")),
                name="payments_commissionrule_minimum_at_most_maximum",
                violation_error_message="The minimum cannot be more than the maximum.",
            ),
            models.CheckConstraint(
                condition=~Q(currency="")
                | Q(fixed_fee_minor=0, minimum_minor__isnull=True, maximum_minor__isnull=True),
                name="payments_commissionrule_amounts_need_currency",
                violation_error_message="A fixed fee, minimum or maximum needs a currency.",
            ),
            models.CheckConstraint(
                condition=Q(active_until__isnull=True)
                | Q(active_until__gt=models.F("active_from")),
                name="payments_commissionrule_period_in_order",
                violation_error_message="The rule must end after it starts.",
            ),
        ]

    def __str__(self) -> str:
        if self.name:
            return self.name
        target = self.product or self.seller or self.category
        where = f" on {target}" if target else ""
        return f"{self.get_scope_display()}{where}: {self.terms_text}"

    @property
    def terms_text(self) -> str:
        """The terms in words: "10% + $0.30"."""

        parts = [f"{(Decimal(self.percentage_bps) / 100).normalize():f}%"]
        if self.fixed_fee_minor:
            parts.append(f"+ {format_amount(self.fixed_fee_minor, self.currency)}")
        return " ".join(parts)


class VolumeTier(models.Model):
    """One band of a rule's volume tiers: while the seller's sales over the trailing 30
    days (in the rule's currency) are from ``from_minor`` up to, not including,
    ``up_to_minor`` (None: no upper end), the rule takes ``percentage_bps`` instead of
    its own percentage. A rule's tiers start at 0 and leave no gaps and no overlaps
    (checked by the service that saves them)."""

    rule = models.ForeignKey(CommissionRule, on_delete=models.CASCADE, related_name="tiers")
    from_minor = models.BigIntegerField("sales from (minor units)")
    up_to_minor = models.BigIntegerField("sales up to (minor units)", null=True, blank=True)
    percentage_bps = models.PositiveIntegerField("percentage (basis points)")

    class Meta:
        ordering = ["rule_id", "from_minor"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "from_minor"], name="payments_volumetier_one_start_per_rule"
            ),
            models.CheckConstraint(
                condition=Q(from_minor__gte=0),
                name="payments_volumetier_from_not_negative",
                violation_error_message="A tier starts at zero or more.",
            ),
            models.CheckConstraint(
                condition=Q(up_to_minor__isnull=True) | Q(up_to_minor__gt=models.F("from_minor")),
                name="payments_volumetier_band_in_order",
                violation_error_message="A tier must end above where it starts.",
            ),
            models.CheckConstraint(
                condition=Q(percentage_bps__lte=10_000),
                name="payments_volumetier_percentage_at_most_100",
                violation_error_message="The percentage cannot be more than 100%%.",
            ),
        ]

    def __str__(self) -> str:
        return tiers_text(
            [(self.from_minor, self.up_to_minor, self.percentage_bps)], self.rule.currency
        )
