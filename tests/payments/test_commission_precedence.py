"""The commission precedence of issue 19, frozen on each line at order time: a product
or seller rule (negotiated) wins; else the seller's plan's percentage; else the
category/default rule, its volume tier chosen by the seller's trailing 30-day sales."""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import Order
from marketplace.orders import order_cancel
from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import order_payment_captured
from payments.collection.refunds import refund_create
from payments.models import SellerPlanChoice
from payments.revenue.commission import CommissionRuleBook, trailing_sales
from payments.revenue.volume_tiers import volume_tiers_save
from tests.factories import (
    CategoryFactory,
    CommissionRuleFactory,
    ProductFactory,
    SellerPlanFactory,
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
