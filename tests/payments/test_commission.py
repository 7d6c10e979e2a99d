from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from payments.models import CommissionRule
from payments.revenue.commission import CommissionRuleBook, CommissionTerms, line_split
from tests.factories import CategoryFactory, CommissionRuleFactory, ProductFactory, SellerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("terms", "gross", "commission"),
    [
        (CommissionTerms(1000, 30), 4998, 530),  # 499.8 -> 500, + 30
        (CommissionTerms(1000, 30), 850, 115),
        (CommissionTerms(1000, 0, minimum_minor=100), 500, 100),  # raised to the minimum
        (CommissionTerms(2000, 0, maximum_minor=1500), 100_000, 1500),  # capped
        (CommissionTerms(0, 500), 300, 300),  # never more than the line
        (CommissionTerms(10_000), 999, 999),
        (CommissionTerms(), 999, 0),
    ],
)
def test_commission_terms(terms, gross, commission):
    assert terms.commission_on(gross) == commission


def test_line_split_parts_add_up():
    split = line_split(unit_price_minor=2499, quantity=2, rule=None)

    assert (split.gross_minor, split.commission_minor, split.seller_share_minor) == (4998, 0, 4998)


def book_for(product, currency="USD", at=None):
    return CommissionRuleBook(products=[product], currency=currency, at=at or timezone.now())


def test_the_most_specific_rule_wins():
    parent = CategoryFactory()
    category = CategoryFactory(parent=parent)
    seller = SellerFactory()
    product = ProductFactory(category=category, seller=seller)
    other = ProductFactory()
    default = CommissionRuleFactory(scope="default")
    by_parent = CommissionRuleFactory(scope="category", category=parent)
    by_category = CommissionRuleFactory(scope="category", category=category)
    by_seller = CommissionRuleFactory(scope="seller", seller=seller)
    by_product = CommissionRuleFactory(scope="product", product=product)

    assert book_for(product).rule_for(product) == by_product
    by_product.delete()
    assert book_for(product).rule_for(product) == by_seller
    by_seller.delete()
    assert book_for(product).rule_for(product) == by_category
    by_category.delete()
    assert book_for(product).rule_for(product) == by_parent
    by_parent.delete()
    assert book_for(product).rule_for(product) == default
    assert book_for(other).rule_for(other) == default


def test_a_rule_for_the_line_currency_beats_one_for_all_currencies():
    product = ProductFactory()
    CommissionRuleFactory(scope="default", currency="")
    usd = CommissionRuleFactory(scope="default", currency="USD", fixed_fee_minor=30)
    CommissionRuleFactory(scope="default", currency="EUR", fixed_fee_minor=25)

    assert book_for(product, "USD").rule_for(product) == usd


def test_only_rules_active_at_the_order_time_apply():
    product = ProductFactory()
    now = timezone.now()
    CommissionRuleFactory(
        scope="default", active_from=now - timedelta(days=10), active_until=now - timedelta(days=1)
    )
    current = CommissionRuleFactory(scope="default", active_from=now - timedelta(days=1))
    CommissionRuleFactory(scope="default", active_from=now + timedelta(days=1))

    assert book_for(product, at=now).rule_for(product) == current


def test_with_no_rule_the_platform_takes_nothing():
    product = ProductFactory()

    assert book_for(product).rule_for(product) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"scope": "seller"}, "Choose exactly the target the scope names."),
        ({"percentage_bps": 10_001}, "The percentage cannot be more than 100%."),
        ({"fixed_fee_minor": 30}, "A fixed fee, minimum or maximum needs a currency."),
        (
            {"currency": "USD", "minimum_minor": 500, "maximum_minor": 100},
            "The minimum cannot be more than the maximum.",
        ),
        ({"currency": "USD", "fixed_fee_minor": -1}, "cannot be negative"),
    ],
)
def test_invalid_rules_are_refused(fields, message):
    rule = CommissionRule(**({"scope": "default", "percentage_bps": 1000} | fields))

    with pytest.raises(ValidationError, match=message):
        rule.full_clean()
