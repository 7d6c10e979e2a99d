import re

import pytest

from marketplace.kernel.errors import InvalidRequest, OutOfStock
from marketplace.models import Order, OrderLine, Product, SellerOrder
from marketplace.orders import order_cancel
from marketplace.services.orders import CartItem, place_order
from payments.models import CommissionRule
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory, UserFactory

pytestmark = pytest.mark.django_db


def nothing_written():
    return not (
        Order.objects.exists() or SellerOrder.objects.exists() or OrderLine.objects.exists()
    )


def test_place_order_splits_by_seller_and_snapshots_the_rule(customer):
    rule = CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")
    acme, rival = SellerFactory(), SellerFactory()
    teapot = ProductFactory(seller=acme, price_minor=2499, stock=5)
    mug = ProductFactory(seller=acme, price_minor=850, stock=5)
    print_ = ProductFactory(seller=rival, price_minor=3500, stock=1)

    order = place_order(
        customer=customer,
        cart_items=[CartItem(teapot.pk, 2), CartItem(mug.pk, 1), CartItem(print_.pk, 1)],
    )

    assert (order.status, order.currency, order.total_minor, order.commission_minor) == (
        Order.Status.AWAITING_PAYMENT,
        "USD",
        9348,
        1025,
    )
    parts = {
        so.seller: (so.gross_minor, so.commission_minor, so.seller_share_minor)
        for so in order.seller_orders.all()
    }
    assert parts == {acme: (5848, 645, 5203), rival: (3500, 380, 3120)}
    line = OrderLine.objects.get(product=teapot)
    assert (line.title, line.unit_price_minor, line.quantity, line.gross_minor) == (
        teapot.title,
        2499,
        2,
        4998,
    )
    assert (line.commission_rule, line.rule_percentage_bps, line.rule_fixed_fee_minor) == (
        rule,
        1000,
        30,
    )
    assert [p.stock for p in Product.objects.order_by("pk")] == [3, 4, 0]


def test_a_later_rule_change_does_not_rewrite_the_order(customer):
    rule = CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(price_minor=1000)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])

    CommissionRule.objects.filter(pk=rule.pk).update(percentage_bps=5000)

    line = order.lines.get()
    assert (line.commission_minor, line.rule_percentage_bps) == (100, 1000)


def test_prices_come_from_the_catalog_and_the_same_product_twice_is_one_line(customer):
    product = ProductFactory(price_minor=700, stock=10)

    order = place_order(
        customer=customer, cart_items=[CartItem(product.pk, 2), CartItem(product.pk, 3)]
    )

    line = order.lines.get()
    assert (line.quantity, line.gross_minor) == (5, 3500)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "The cart is empty."),
        ([("p", 0)], "Quantities must be whole numbers above zero, not 0."),
        ([("p", -1)], "Quantities must be whole numbers above zero, not -1."),
        ([("p", 1.5)], "Quantities must be whole numbers above zero, not 1.5."),
        ([("p", 1001)], "At most 1000 of one product can be ordered at once."),
        ([(999_999, 1)], "Product 999999 is not for sale."),
        ([("inactive", 1)], "is not for sale."),
        ([("p", 1), ("eur", 1)], "One order is paid in one currency; this cart mixes EUR, USD."),
        ([("free", 2)], "There is nothing to pay for: every item in the cart is free."),
    ],
)
def test_bad_carts_are_refused_and_nothing_is_written(customer, items, message):
    products = {
        "p": ProductFactory(stock=2000),
        "inactive": ProductFactory(is_active=False),
        "eur": ProductFactory(seller=SellerFactory(default_currency="EUR"), currency="EUR"),
        "free": ProductFactory(price_minor=0),
    }
    cart = [CartItem(products[p].pk if isinstance(p, str) else p, q) for p, q in items]

    with pytest.raises(InvalidRequest, match=re.escape(message)):
        place_order(customer=customer, cart_items=cart)

    assert nothing_written()
    assert Product.objects.get(pk=products["p"].pk).stock == 2000


def test_not_enough_stock_is_refused_and_nothing_is_reserved(customer):
    plenty = ProductFactory(stock=10, title="Plenty")
    scarce = ProductFactory(stock=1, title="Last Teapot")

    with pytest.raises(
        OutOfStock, match=re.escape("Only 1 of “Last Teapot” left; you asked for 2.")
    ):
        place_order(customer=customer, cart_items=[CartItem(plenty.pk, 3), CartItem(scarce.pk, 2)])

    assert nothing_written()
    assert Product.objects.get(pk=plenty.pk).stock == 10


def test_sold_out(customer):
    product = ProductFactory(stock=0, title="Gone")

    with pytest.raises(OutOfStock, match=re.escape("“Gone” is out of stock.")):
        place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])


def test_cancelling_an_unpaid_order_puts_the_stock_back_once(customer):
    product = ProductFactory(stock=3)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 2)])

    order_cancel(order=order)
    order_cancel(order=order)

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert Product.objects.get(pk=product.pk).stock == 3
    assert set(order.seller_orders.values_list("status", flat=True)) == {"cancelled"}


def test_any_user_can_be_the_customer():
    product = ProductFactory()

    order = place_order(customer=UserFactory(), cart_items=[CartItem(product.pk, 1)])

    assert order.total_minor == product.price_minor
