"""Which commission rule applies to an order line, and what it takes.

Resolution: among the rules active at the moment of the order and valid for
the line's currency, the most specific wins: product, then seller, then the
product's category, then that category's parent, then the platform default.
Within one level a rule for the line's currency beats a rule for all
currencies, then the most recently started rule wins.

Computation, per line: ``percentage`` of the gross (half-up at the minor
unit) plus the fixed fee, raised to the minimum and capped at the maximum,
and never more than the gross, so a seller's share is never negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q

from accounts.models import User
from payments.models import CommissionRule
from payments.money import percentage

if TYPE_CHECKING:
    from marketplace.models import Product


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
class LineSplit:
    gross_minor: int
    commission_minor: int
    seller_share_minor: int
    rule: CommissionRule | None
    terms: CommissionTerms


def line_split(*, unit_price_minor: int, quantity: int, rule: CommissionRule | None) -> LineSplit:
    """Gross, commission and seller share of one line; the parts add up to the gross."""
    gross = unit_price_minor * quantity
    terms = CommissionTerms.of(rule)
    commission = terms.commission_on(gross)
    return LineSplit(gross, commission, gross - commission, rule, terms)


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
    """The rules that can apply to a set of products, loaded in one query."""

    def __init__(self, *, products: Iterable[Product], currency: str, at: datetime) -> None:
        products = list(products)
        category_ids = {p.category_id for p in products} | {
            p.category.parent_id for p in products if p.category.parent_id
        }
        self._rules = list(
            CommissionRule.objects.filter(
                Q(active_from__lte=at),
                Q(active_until__isnull=True) | Q(active_until__gt=at),
                Q(currency="") | Q(currency=currency),
                Q(scope=CommissionRule.Scope.DEFAULT)
                | Q(category_id__in=category_ids)
                | Q(seller_id__in={p.seller_id for p in products})
                | Q(product_id__in={p.pk for p in products}),
            )
        )

    def rule_for(self, product: Product) -> CommissionRule | None:
        best: tuple[tuple[int, int, datetime, int], CommissionRule] | None = None
        for rule in self._rules:
            specificity = _specificity(rule, product)
            if specificity is None:
                continue
            key = (*specificity, rule.active_from, rule.pk)
            if best is None or key > best[0]:
                best = (key, rule)
        return best[1] if best else None


def commission_rule_save(
    *, rule: CommissionRule, by: User | None = None, reason: str = "", via: str = "code"
) -> CommissionRule:
    """Validate and save a rule, recording who changed what and why: the scope names
    exactly its target, amounts are not negative, amounts need a currency, the minimum
    is not above the maximum, the period is in order (the model's constraints,
    checked before writing). Orders keep the terms they were placed with."""
    from payments.audit import audited_save

    audited_save(instance=rule, by=by, reason=reason, via=via)
    return rule
