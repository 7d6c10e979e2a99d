"""Which commission applies to an order line, and what it takes.

Precedence (one rule, frozen on the line at order time):

1. A rule scoped to the line's PRODUCT or its SELLER (negotiated terms) wins.
2. Else, if the seller's plan at the order's time (the ``SellerPlanChoice``
   started at or before it and not ended by then) has ``commission_bps``, the
   line takes that percentage only: no fixed fee, minimum or maximum (source
   "plan", the plan recorded on the line).
3. Else the most specific of the product's category, that category's parent
   and the platform default; if that rule has volume tiers, the tier that
   holds the seller's trailing 30-day sales in the line's currency replaces
   the rule's percentage, its fixed fee, minimum and maximum still apply
   (source "tier", the sales recorded on the line). Sales exactly at a tier's
   ``up_to`` belong to the next tier.

Among the rules active at the moment of the order and valid for the line's
currency, within one level a rule for the line's currency beats a rule for
all currencies, then the most recently started rule wins.

Trailing 30-day sales of a seller in a currency, at the moment ``at``: the
gross of the seller's order lines in that currency whose order was paid in
``[at - 30 days, at)`` (orders awaiting payment or cancelled were never paid
and do not count), less what has been refunded or is being refunded of those
lines (their ``refunded_minor`` reservation; a failed refund releases it).

Computation, per line: the percentage of the gross (half-up at the minor
unit) plus the fixed fee, raised to the minimum and capped at the maximum,
and never more than the gross, so a seller's share is never negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Exists, F, OuterRef, Q, Sum

from accounts.models import User
from marketplace.kernel.money import percentage
from marketplace.models import Order, OrderLine
from payments.ledger.audit import audited_save
from payments.models import CommissionRule, SellerPlan, SellerPlanChoice, VolumeTier

if TYPE_CHECKING:
    from marketplace.models import Product

TRAILING_SALES_DAYS = 30
SOURCE_RULE = "rule"
SOURCE_TIER = "tier"
SOURCE_PLAN = "plan"
# Levels of ``_specificity`` that are negotiated terms: they beat a seller's plan.
_NEGOTIATED_LEVELS = (4, 5)


@dataclass(frozen=True, slots=True)
class CommissionTerms:
    """The numbers of a rule, as snapshotted on an order line."""

    percentage_bps: int = 0
    fixed_fee_minor: int = 0
    minimum_minor: int | None = None
    maximum_minor: int | None = None

    @classmethod
    def of(cls, rule: CommissionRule | None) -> CommissionTerms:
        if rule is None:
            return cls()
        return cls(
            percentage_bps=rule.percentage_bps,
            fixed_fee_minor=rule.fixed_fee_minor,
            minimum_minor=rule.minimum_minor,
            maximum_minor=rule.maximum_minor,
        )

    def commission_on(self, gross_minor: int) -> int:
        commission = percentage(gross_minor, self.percentage_bps) + self.fixed_fee_minor
        if self.minimum_minor is not None:
            commission = max(commission, self.minimum_minor)
        if self.maximum_minor is not None:
            commission = min(commission, self.maximum_minor)
        return min(max(commission, 0), gross_minor)


@dataclass(frozen=True, slots=True)
class CommissionChoice:
    """What a line's commission comes from: the rule (None for a plan or no rule), the
    terms actually applied, the source, the tier sales and the plan."""

    rule: CommissionRule | None
    terms: CommissionTerms
    source: str = SOURCE_RULE
    tier_sales_minor: int | None = None
    plan: SellerPlan | None = None


@dataclass(frozen=True, slots=True)
class LineSplit:
    gross_minor: int
    commission_minor: int
    seller_share_minor: int
    rule: CommissionRule | None
    terms: CommissionTerms
    source: str = SOURCE_RULE
    tier_sales_minor: int | None = None
    plan: SellerPlan | None = None


def line_split(
    *,
    unit_price_minor: int,
    quantity: int,
    rule: CommissionRule | None = None,
    choice: CommissionChoice | None = None,
) -> LineSplit:
    """Gross, commission and seller share of one line; the parts add up to the gross.
    ``choice`` (from ``CommissionRuleBook.choice_for``) carries the precedence's outcome;
    a bare ``rule`` applies that rule's own terms."""
    gross = unit_price_minor * quantity
    if choice is None:
        choice = CommissionChoice(rule, CommissionTerms.of(rule))
    commission = choice.terms.commission_on(gross)
    return LineSplit(
        gross,
        commission,
        gross - commission,
        choice.rule,
        choice.terms,
        choice.source,
        choice.tier_sales_minor,
        choice.plan,
    )


def tier_for(tiers: Iterable[VolumeTier], sales_minor: int) -> VolumeTier | None:
    """The tier whose band ``[from, up_to)`` holds ``sales_minor`` (at ``up_to``: the next)."""
    for tier in tiers:
        if tier.from_minor <= sales_minor and (
            tier.up_to_minor is None or sales_minor < tier.up_to_minor
        ):
            return tier
    return None


def trailing_sales(*, seller_ids: Iterable[int], currency: str, at: datetime) -> dict[int, int]:
    """Each seller's trailing 30-day sales in ``currency`` at ``at`` (module docstring),
    from one grouped query; a seller with none is absent (0)."""

    ids = sorted(set(seller_ids))
    if not ids:
        return {}
    rows = (
        OrderLine.objects.filter(
            seller_order__seller_id__in=ids,
            order__currency=currency,
            order__paid_at__gte=at - timedelta(days=TRAILING_SALES_DAYS),
            order__paid_at__lt=at,
        )
        .exclude(order__status__in=(Order.Status.AWAITING_PAYMENT, Order.Status.CANCELLED))
        .values_list("seller_order__seller_id")
        .annotate(total=Sum(F("gross_minor") - F("refunded_minor")))
        .order_by()
    )
    return {int(seller_id): int(total or 0) for seller_id, total in rows}


def _specificity(rule: CommissionRule, product: Product) -> tuple[int, int] | None:
    """(level, currency-specific) of a rule for a product, or None if it does not apply."""
    Scope = CommissionRule.Scope
    category = product.category
    if rule.scope == Scope.PRODUCT and rule.product_id == product.pk:
        level = 5
    elif rule.scope == Scope.SELLER and rule.seller_id == product.seller_id:
        level = 4
    elif rule.scope == Scope.CATEGORY and rule.category_id == product.category_id:
        level = 3
    elif (
        rule.scope == Scope.CATEGORY
        and category.parent_id is not None
        and rule.category_id == category.parent_id
    ):
        level = 2
    elif rule.scope == Scope.DEFAULT:
        level = 1
    else:
        return None
    return level, 1 if rule.currency else 0


class CommissionRuleBook:
    """What can decide the commission of a set of products, in a constant number of
    queries for any cart: the rules, each marked whether it has tiers (one), the
    sellers' plans at the order's time (one), and, only when a winning rule has tiers,
    the tiers of every such rule (one) and the trailing sales of the cart's sellers
    (one grouped query), each on first need."""

    def __init__(self, *, products: Iterable[Product], currency: str, at: datetime) -> None:
        products = list(products)
        self._currency = currency
        self._at = at
        category_ids = {p.category_id for p in products} | {
            p.category.parent_id for p in products if p.category.parent_id
        }
        seller_ids = {p.seller_id for p in products}
        self._seller_ids = seller_ids
        self._rules = list(
            CommissionRule.objects.filter(
                Q(active_from__lte=at),
                Q(active_until__isnull=True) | Q(active_until__gt=at),
                Q(currency="") | Q(currency=currency),
                Q(scope=CommissionRule.Scope.DEFAULT)
                | Q(category_id__in=category_ids)
                | Q(seller_id__in=seller_ids)
                | Q(product_id__in={p.pk for p in products}),
            ).annotate(has_tiers=Exists(VolumeTier.objects.filter(rule=OuterRef("pk"))))
        )
        self._tiers: dict[int, list[VolumeTier]] | None = None
        self._plans: dict[int, SellerPlan] = (
            {
                choice.seller_id: choice.plan
                for choice in SellerPlanChoice.objects.filter(
                    Q(ended_at__isnull=True) | Q(ended_at__gt=at),
                    seller_id__in=seller_ids,
                    started_at__lte=at,
                )
                .select_related("plan")
                .order_by("seller_id", "started_at", "pk")
            }
            if seller_ids
            else {}
        )
        self._sales: dict[int, int] | None = None

    def rule_for(self, product: Product) -> CommissionRule | None:
        """The most specific rule for the product, ignoring plans (see ``choice_for``)."""
        return self._best(product, levels=None)

    def _best(self, product: Product, levels: tuple[int, ...] | None) -> CommissionRule | None:
        best: tuple[tuple[int, int, datetime, int], CommissionRule] | None = None
        for rule in self._rules:
            specificity = _specificity(rule, product)
            if specificity is None or (levels is not None and specificity[0] not in levels):
                continue
            key = (*specificity, rule.active_from, rule.pk)
            if best is None or key > best[0]:
                best = (key, rule)
        return best[1] if best else None

    def _tiers_of(self, rule: CommissionRule) -> list[VolumeTier]:
        if not getattr(rule, "has_tiers", False):
            return []
        if self._tiers is None:
            # Every rule of the book that has tiers at once: one query.
            self._tiers = {}
            for tier in VolumeTier.objects.filter(
                rule_id__in=[r.pk for r in self._rules if getattr(r, "has_tiers", False)]
            ).order_by("rule_id", "from_minor"):
                self._tiers.setdefault(tier.rule_id, []).append(tier)
        return self._tiers.get(rule.pk, [])

    def _sales_of(self, seller_id: int) -> int:
        if self._sales is None:
            # Every seller of the cart at once: one query however many lines have tiers.
            self._sales = trailing_sales(
                seller_ids=self._seller_ids, currency=self._currency, at=self._at
            )
        return self._sales.get(seller_id, 0)

    def choice_for(self, product: Product) -> CommissionChoice:
        """The commission of a line of ``product``, by the precedence of the module
        docstring."""
        negotiated = self._best(product, levels=_NEGOTIATED_LEVELS)
        if negotiated is not None:
            return CommissionChoice(negotiated, CommissionTerms.of(negotiated))
        plan = self._plans.get(product.seller_id)
        if plan is not None and plan.commission_bps is not None:
            return CommissionChoice(
                None, CommissionTerms(percentage_bps=plan.commission_bps), SOURCE_PLAN, plan=plan
            )
        rule = self._best(product, levels=None)
        terms = CommissionTerms.of(rule)
        tiers = self._tiers_of(rule) if rule is not None else []
        if rule is None or not tiers:
            return CommissionChoice(rule, terms)
        sales = self._sales_of(product.seller_id)
        tier = tier_for(tiers, sales)
        if tier is None:  # tiers saved by the service start at 0: cannot happen
            return CommissionChoice(rule, terms)
        return CommissionChoice(
            rule,
            replace(terms, percentage_bps=tier.percentage_bps),
            SOURCE_TIER,
            tier_sales_minor=sales,
        )


def commission_rule_save(
    *, rule: CommissionRule, by: User | None = None, reason: str = "", via: str = "code"
) -> CommissionRule:
    """Validate and save a rule, recording who changed what and why: the scope names
    exactly its target, amounts are not negative, amounts need a currency, the minimum
    is not above the maximum, the period is in order (the model's constraints,
    checked before writing), and a rule with volume tiers keeps its currency (its
    tiers measure sales in it) and stays a default or category rule. Orders keep the
    terms they were placed with."""
    from django.core.exceptions import ValidationError

    if rule.pk is not None and rule.tiers.exists():
        saved_currency, saved_scope = CommissionRule.objects.values_list("currency", "scope").get(
            pk=rule.pk
        )
        if rule.currency != saved_currency:
            raise ValidationError(
                {
                    "currency": "This rule has volume tiers, measured in its currency: "
                    "delete the tiers and save first, then change the currency."
                }
            )
        if rule.scope != saved_scope and rule.scope in ("seller", "product"):
            raise ValidationError(
                {
                    "scope": "This rule has volume tiers, which apply to default and "
                    "category rules only: delete the tiers first."
                }
            )
    audited_save(instance=rule, by=by, reason=reason, via=via)
    return rule
