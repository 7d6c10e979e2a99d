from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from marketplace.models import Order
from marketplace.orders import order_cancel
from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import order_payment_captured
from payments.collection.refunds import refund_create
from payments.models import CommissionRule, SellerPlanChoice
from payments.revenue.commission import (
    CommissionRuleBook,
    CommissionTerms,
    line_split,
    trailing_sales,
)
from payments.revenue.volume_tiers import volume_tiers_save
from tests.factories import (
    CategoryFactory,
    CommissionRuleFactory,
    ProductFactory,
    SellerFactory,
    SellerPlanFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def on_plan(seller, plan, started_at=None, ended_at=None):
    return SellerPlanChoice.objects.create(
        seller=seller,
        plan=plan,
        started_at=started_at or timezone.now() - timedelta(days=1),
        ended_at=ended_at,
    )


def order_of(customer, product, quantity=1, at=None):
    return place_order(customer=customer, cart_items=[CartItem(product.pk, quantity)], at=at)


def sold(customer, seller, gross, at):
    """A paid sale of ``gross`` by ``seller`` at ``at``."""
    product = ProductFactory(seller=seller, price_minor=gross, stock=1)
    order = order_of(customer, product, at=at)
    order_payment_captured(order=order, captured_at=at)
    return order


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


def test_a_plan_replaces_the_category_and_default_rules(customer, seller):
    category = CategoryFactory()
    CommissionRuleFactory(percentage_bps=1000)
    CommissionRuleFactory(scope="category", category=category, percentage_bps=1500)
    plan = SellerPlanFactory(commission_bps=500)
    on_plan(seller, plan)
    line = order_of(customer, ProductFactory(seller=seller, category=category, price_minor=10_000))
    line = line.lines.get()
    assert (line.commission_minor, line.rule_percentage_bps) == (500, 500)
    assert (line.commission_source, line.seller_plan_id, line.commission_rule_id) == (
        "plan",
        plan.pk,
        None,
    )


def test_a_negotiated_seller_or_product_rule_beats_the_plan(customer, seller):
    on_plan(seller, SellerPlanFactory(commission_bps=500))
    CommissionRuleFactory(scope="seller", seller=seller, percentage_bps=300)
    line = order_of(customer, ProductFactory(seller=seller, price_minor=10_000)).lines.get()
    assert (line.commission_minor, line.commission_source, line.seller_plan_id) == (
        300,
        "rule",
        None,
    )
    product = ProductFactory(seller=seller, price_minor=10_000)
    CommissionRuleFactory(scope="product", product=product, percentage_bps=200)
    line = order_of(customer, product).lines.get()
    assert (line.commission_minor, line.commission_source) == (200, "rule")


def test_a_plan_without_a_commission_leaves_the_rules(customer, seller):
    on_plan(seller, SellerPlanFactory(commission_bps=None))
    rule = CommissionRuleFactory(percentage_bps=1000)
    line = order_of(customer, ProductFactory(seller=seller, price_minor=10_000)).lines.get()
    assert (line.commission_minor, line.commission_rule_id, line.commission_source) == (
        1000,
        rule.pk,
        "rule",
    )


def test_the_plan_at_the_orders_time_applies_not_a_later_or_ended_one(customer, seller):
    CommissionRuleFactory(percentage_bps=1000)
    now = timezone.now()
    on_plan(
        seller,
        SellerPlanFactory(commission_bps=500),
        now - timedelta(days=10),
        now - timedelta(days=5),
    )
    on_plan(seller, SellerPlanFactory(commission_bps=200), now + timedelta(days=1))
    line = order_of(customer, ProductFactory(seller=seller, price_minor=10_000)).lines.get()
    assert (line.commission_minor, line.commission_source) == (1000, "rule")
    earlier = order_of(
        customer, ProductFactory(seller=seller, price_minor=10_000), at=now - timedelta(days=7)
    ).lines.get()
    assert (earlier.commission_minor, earlier.commission_source) == (500, "plan")


def test_trailing_sales_count_paid_orders_of_30_days_less_refunds(customer, seller, other_seller):
    now = timezone.now()
    sold(customer, seller, 10_000, now - timedelta(days=2))
    refunded = sold(customer, seller, 4_000, now - timedelta(days=29))
    refund_create(order=refunded, amount_minor=1_500)
    sold(customer, seller, 7_000, now - timedelta(days=31))  # too old
    order_of(customer, ProductFactory(seller=seller, price_minor=9_000))  # awaiting payment
    cancelled = order_of(customer, ProductFactory(seller=seller, price_minor=8_000))
    order_cancel(order=cancelled)
    sold(customer, other_seller, 3_000, now - timedelta(days=1))
    jpy = ProductFactory(seller=seller, price_minor=500, currency="JPY", stock=1)
    order_payment_captured(order=order_of(customer, jpy), captured_at=now - timedelta(days=1))
    assert Order.objects.filter(status=Order.Status.CANCELLED).count() == 1
    sales = trailing_sales(seller_ids=[seller.pk, other_seller.pk], currency="USD", at=now)
    assert sales == {seller.pk: 10_000 + 4_000 - 1_500, other_seller.pk: 3_000}


def test_a_seller_crossing_a_tier_gets_the_lower_rate_next_and_old_lines_keep_theirs(
    customer, seller
):
    now = timezone.now()
    rule = CommissionRuleFactory(
        percentage_bps=1000, currency="USD", active_from=now - timedelta(days=60)
    )
    volume_tiers_save(rule=rule, tiers=[(0, 100_000, 1000), (100_000, None, 600)])
    first = sold(customer, seller, 60_000, now - timedelta(days=3)).lines.get()
    assert (first.commission_minor, first.commission_source, first.tier_sales_minor) == (
        6_000,
        "tier",
        0,
    )
    second = sold(customer, seller, 40_000, now - timedelta(days=2)).lines.get()
    assert (second.rule_percentage_bps, second.tier_sales_minor) == (1000, 60_000)
    # Sales now exactly at the first tier's top (100 000): the next tier.
    third = order_of(customer, ProductFactory(seller=seller, price_minor=10_000)).lines.get()
    assert (third.commission_minor, third.rule_percentage_bps, third.tier_sales_minor) == (
        600,
        600,
        100_000,
    )
    assert third.commission_rule_id == rule.pk
    # Frozen: changing the tiers changes no line already placed.
    volume_tiers_save(rule=rule, tiers=[(0, None, 2000)])
    first.refresh_from_db()
    third.refresh_from_db()
    assert (first.commission_minor, third.commission_minor) == (6_000, 600)


def test_the_rule_book_is_a_constant_number_of_queries(
    customer, seller, other_seller, django_assert_num_queries
):
    rule = CommissionRuleFactory(percentage_bps=1000, currency="USD")
    volume_tiers_save(rule=rule, tiers=[(0, 100_000, 1000), (100_000, None, 600)])
    products = [ProductFactory(seller=s) for s in (seller, other_seller) for _ in range(3)]
    for product in products:
        product.category  # noqa: B018 (loaded, as place_order loads it)
    with django_assert_num_queries(4):  # rules, tiers, plans; then sales once for all
        book = CommissionRuleBook(products=products, currency="USD", at=timezone.now())
        choices = [book.choice_for(product) for product in products]
    assert {choice.source for choice in choices} == {"tier"}


def test_a_plan_beats_volume_tiers_and_no_sales_are_read_for_it(
    customer, seller, django_assert_num_queries
):
    rule = CommissionRuleFactory(percentage_bps=1000, currency="USD")
    volume_tiers_save(rule=rule, tiers=[(0, 100, 900), (100, None, 100)])
    plan = SellerPlanFactory(commission_bps=450)
    on_plan(seller, plan)
    product = ProductFactory(seller=seller, price_minor=10_000)
    product.category  # noqa: B018 (loaded, as place_order loads it)
    with django_assert_num_queries(2):  # rules, plans: no tiers, no sales
        choice = CommissionRuleBook(
            products=[product], currency="USD", at=timezone.now()
        ).choice_for(product)
    assert (choice.source, choice.terms.percentage_bps, choice.plan) == ("plan", 450, plan)


def test_a_plan_without_commission_leaves_the_tier_and_a_seller_rule_beats_the_plan():
    from payments.models import SellerPlan, SellerPlanChoice

    rule = CommissionRuleFactory(currency="USD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, None, 700)])
    plain, cheap = (SellerFactory(default_currency="USD") for _ in range(2))
    no_rate = SellerPlan.objects.create(name="Basic", currency="USD", monthly_fee_minor=0)
    low = SellerPlan.objects.create(
        name="Pro", currency="USD", monthly_fee_minor=2_900, commission_bps=500
    )
    from datetime import UTC, datetime

    since = datetime(2020, 1, 1, tzinfo=UTC)
    SellerPlanChoice.objects.create(seller=plain, plan=no_rate, started_at=since)
    SellerPlanChoice.objects.create(seller=cheap, plan=low, started_at=since)
    CommissionRuleFactory(
        scope=CommissionRule.Scope.SELLER, seller=cheap, currency="", percentage_bps=1500
    )
    products = [
        ProductFactory(seller=s, price_minor=1_000, stock=1, currency="USD") for s in (plain, cheap)
    ]
    order = place_order(customer=UserFactory(), cart_items=[CartItem(p.pk, 1) for p in products])
    by_seller = {
        line.product.seller_id: (line.commission_source, line.rule_percentage_bps)
        for line in order.lines.select_related("product")
    }
    assert by_seller == {plain.pk: ("tier", 700), cheap.pk: ("rule", 1500)}


def test_trailing_sales_count_paid_lines_of_30_days_in_the_currency_less_refunds():
    from datetime import timedelta

    from django.utils import timezone

    rule = CommissionRuleFactory(currency="USD", percentage_bps=1000)
    volume_tiers_save(rule=rule, tiers=[(0, 5_000, 1000), (5_000, None, 500)])
    seller = SellerFactory(default_currency="USD")
    now = timezone.now()

    def sale(price, *, days_ago=None, currency="USD"):
        product = ProductFactory(seller=seller, price_minor=price, stock=1, currency=currency)
        order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])
        if days_ago is not None:
            order_payment_captured(order=order, captured_at=now - timedelta(days=days_ago))
        return order

    sale(9_000, days_ago=31)  # too old
    sale(9_000)  # awaiting payment
    sale(9_000, days_ago=1, currency="EUR")  # another currency
    partly = sale(4_000, days_ago=29)
    refund_create(order=partly, amount_minor=1_000)  # pending: counts as refunded
    sale(2_000, days_ago=0)  # paid a moment ago
    order = sale(1_000)
    line = order.lines.get()
    assert line.tier_sales_minor == 3_000 + 2_000
    assert (line.commission_source, line.rule_percentage_bps) == ("tier", 500)
