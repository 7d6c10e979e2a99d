"""The worked example of docs/money.md, checked to the cent.

Rule: platform default 10% + 0.30 USD per line.
Acme sells 2 teapots at 24.99 and a mug at 8.50; Rival a print at 35.00.

line      gross   10% (half-up)  + 0.30  commission  seller share
teapots   49.98   5.00           0.30    5.30        44.68
mug        8.50   0.85           0.30    1.15         7.35
print     35.00   3.50           0.30    3.80        31.20
total     93.48                          10.25       Acme 52.03, Rival 31.20

Then 10.00 of the teapot line is refunded. It is split in proportion to what
is left of the line's commission (5.30) and seller share (44.68):
10.00 × 5.30 / 49.98 = 1.0604 and 10.00 × 44.68 / 49.98 = 8.9396; the
floors 1.06 + 8.93 leave one cent, which goes to the larger remainder, the
seller's: commission 1.06, Acme 8.94.
"""

import pytest
from django.core.management import call_command

from marketplace.models import Order
from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import order_payment_captured
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.balances import platform_balance, seller_balance
from tests.factories import CommissionRuleFactory, ProductFactory, SellerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def example(customer):
    CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")
    acme, rival = SellerFactory(display_name="Acme"), SellerFactory(display_name="Rival")
    teapot = ProductFactory(seller=acme, title="Teapot", price_minor=2499, stock=2)
    mug = ProductFactory(seller=acme, title="Mug", price_minor=850, stock=1)
    print_ = ProductFactory(seller=rival, title="Print", price_minor=3500, stock=1)
    order = place_order(
        customer=customer,
        cart_items=[CartItem(teapot.pk, 2), CartItem(mug.pk, 1), CartItem(print_.pk, 1)],
    )
    return order, acme, rival


def test_the_sale(example):
    order, acme, rival = example

    order_payment_captured(order=order)

    lines = {
        line.title: (line.gross_minor, line.commission_minor, line.seller_share_minor)
        for line in order.lines.all()
    }
    assert lines == {
        "Teapot": (4998, 530, 4468),
        "Mug": (850, 115, 735),
        "Print": (3500, 380, 3120),
    }
    assert seller_balance(seller=acme, currency="USD").pending == 5203
    assert seller_balance(seller=rival, currency="USD").pending == 3120
    platform = platform_balance(currency="USD")
    assert (platform.cash_at_processor, platform.commission_earned) == (9348, 1025)


def test_the_partial_refund(example, capsys):
    order, acme, rival = example
    order_payment_captured(order=order)
    teapots = order.lines.get(title="Teapot")

    refund = refund_create(order=order, order_line=teapots, amount_minor=1000)
    refund_mark_succeeded(refund=refund)

    part = refund.lines.get()
    assert (part.amount_minor, part.seller_amount_minor, part.commission_amount_minor) == (
        1000,
        894,
        106,
    )
    assert seller_balance(seller=acme, currency="USD").pending == 5203 - 894
    assert seller_balance(seller=rival, currency="USD").pending == 3120
    platform = platform_balance(currency="USD")
    assert (platform.cash_at_processor, platform.commission_earned) == (8348, 919)
    order.refresh_from_db()
    assert (order.status, order.refunded_minor) == (Order.Status.PARTIALLY_REFUNDED, 1000)

    # The rest of the line: exactly the rest of its commission and share.
    rest = refund_create(order=order, order_line=teapots)
    refund_mark_succeeded(refund=rest)
    teapots.refresh_from_db()
    assert (teapots.refunded_commission_minor, teapots.refunded_seller_minor) == (530, 4468)

    call_command("check_ledger")
    assert "The ledger is consistent." in capsys.readouterr().out
