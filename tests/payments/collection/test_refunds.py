import re

import pytest
from django.utils import timezone

from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.models import Order, OrderLine, Product, SellerOrder
from marketplace.services.orders import CartItem, place_order, seller_order_cancel
from payments.checks import ledger_check
from payments.collection.refunds import refund_create, refund_mark_failed, refund_mark_succeeded
from payments.ledger.balances import platform_balance, seller_balance
from payments.models import Dispute, LedgerTransaction, Refund
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from tests.factories import CommissionRuleFactory, ProductFactory, ServiceFeeFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.collection.fee_helpers import balance, card_paid

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ten_percent():
    CommissionRuleFactory(percentage_bps=1000)


def refund(order, **kwargs):
    created = refund_create(order=order, **kwargs)
    refund_mark_succeeded(refund=created)
    return created


def test_a_whole_order_refund_gives_everything_back(seller, other_seller):
    order = paid_order([(seller, 1000, 1), (other_seller, 3000, 1)])

    refund(order)

    order.refresh_from_db()
    assert (order.status, order.refunded_minor) == (Order.Status.REFUNDED, 4000)
    assert set(order.seller_orders.values_list("status", flat=True)) == {"refunded"}
    assert seller_balance(seller=seller, currency="USD").pending == 0
    assert seller_balance(seller=other_seller, currency="USD").pending == 0
    platform = platform_balance(currency="USD")
    assert (platform.cash_at_processor, platform.commission_earned) == (0, 0)
    assert ledger_check().ok


def test_refunding_one_seller_part_leaves_the_others_untouched(seller, other_seller):
    order = paid_order([(seller, 1000, 1), (other_seller, 3000, 1)])
    theirs = order.seller_orders.get(seller=other_seller)

    refund(order, seller_order=theirs)

    assert seller_balance(seller=seller, currency="USD").pending == 900
    assert seller_balance(seller=other_seller, currency="USD").pending == 0
    assert SellerOrder.objects.get(order=order, seller=seller).status == "paid"
    assert Order.objects.get(pk=order.pk).status == Order.Status.PARTIALLY_REFUNDED


def test_a_partial_amount_is_spread_over_the_lines_by_what_each_has_left(seller):
    order = paid_order([(seller, 1000, 1), (seller, 3000, 1)])

    created = refund(order, amount_minor=1001)

    parts = list(created.lines.order_by("order_line_id").values_list("amount_minor", flat=True))
    assert parts == [250, 751]  # 1001 × 1000/4000 = 250.25, × 3000/4000 = 750.75


def test_over_refunding_is_refused_and_writes_nothing(seller):
    order = paid_order([(seller, 1000, 1)])
    refund(order, amount_minor=600)

    with pytest.raises(InvalidRequest, match="At most 400"):
        refund_create(order=order, amount_minor=401)

    assert Refund.objects.count() == 1
    assert Order.objects.get(pk=order.pk).refunded_minor == 600


@pytest.mark.parametrize("amount", [0, -5, 2.5])
def test_a_refund_amount_must_be_a_positive_whole_number(seller, amount):
    order = paid_order([(seller, 1000, 1)])

    with pytest.raises(InvalidRequest):
        refund_create(order=order, amount_minor=amount)
    assert not Refund.objects.exists()


def test_an_unpaid_order_cannot_be_refunded(seller, customer):
    product = ProductFactory(seller=seller)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])

    with pytest.raises(InvalidState, match=re.escape("Only a paid order can be refunded.")):
        refund_create(order=order)
    assert not Refund.objects.exists()


def test_a_line_of_another_order_matches_nothing(seller):
    order, other = paid_order([(seller, 1000, 1)]), paid_order([(seller, 500, 1)])

    with pytest.raises(InvalidRequest, match="Nothing in this order matches"):
        refund_create(order=order, order_line=other.lines.get())


def test_a_pending_refund_reserves_its_amount_until_it_fails(seller):
    order = paid_order([(seller, 1000, 1)])
    pending = refund_create(order=order, amount_minor=700)

    with pytest.raises(InvalidRequest, match="At most 300"):
        refund_create(order=order, amount_minor=301)
    # Nothing moves in the ledger until the processor confirms.
    assert not LedgerTransaction.objects.filter(kind="refund").exists()

    refund_mark_failed(refund=pending)
    refund_mark_failed(refund=pending)

    line = OrderLine.objects.get(order=order)
    assert (line.refunded_minor, line.refunded_seller_minor, line.refunded_commission_minor) == (
        0,
        0,
        0,
    )
    assert refund_create(order=order, amount_minor=1000).amount_minor == 1000
    with pytest.raises(InvalidState):
        refund_mark_succeeded(refund=pending)


def test_a_refund_succeeds_once(seller):
    order = paid_order([(seller, 1000, 1)])
    created = refund_create(order=order, amount_minor=100)

    first, second = refund_mark_succeeded(refund=created), refund_mark_succeeded(refund=created)

    assert first == second
    assert seller_balance(seller=seller, currency="USD").pending == 810
    assert LedgerTransaction.objects.filter(kind="refund").count() == 1


def test_without_refund_commission_the_platform_keeps_its_commission(settings, seller):
    settings.PAYMENTS_REFUND_COMMISSION = False
    order = paid_order([(seller, 1000, 1)])

    created = refund(order, amount_minor=950)

    part = created.lines.get()
    # The seller's 900 goes first, the commission pays the remaining 50.
    assert (part.seller_amount_minor, part.commission_amount_minor) == (900, 50)
    assert platform_balance(currency="USD").commission_earned == 50


def test_a_refund_after_release_comes_out_of_available_and_can_leave_a_debt(seller):
    order = paid_order([(seller, 1000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    # Pretend the 900 were paid out: available is now what later refunds take from.
    refund(order)

    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.pending, balance.available) == (0, 0)

    second = paid_order([(seller, 2000, 1)])
    seller_order_hold_release(seller_order=second.seller_orders.get())
    enable_payouts(seller)
    payout = run_payouts(sellers=[seller]).created[0]
    payout_send(payout=payout)  # the 1800 leave for the seller's bank
    refund(second, amount_minor=1000)

    balance = seller_balance(seller=seller, currency="USD")
    assert balance.available == -900  # a debt, netted against the next payout
    assert ledger_check().ok


def test_cancelling_a_seller_part_before_shipping_refunds_it_and_restocks(seller, other_seller):
    order = paid_order([(seller, 1000, 2), (other_seller, 3000, 1)])
    mine = order.seller_orders.get(seller=seller)

    created = seller_order_cancel(seller_order=mine, reason="Out of stock after all")
    refund_mark_succeeded(refund=created)
    again = seller_order_cancel(seller_order=mine)

    assert again is None
    assert created.amount_minor == 2000
    assert SellerOrder.objects.get(pk=mine.pk).status == SellerOrder.Status.CANCELLED
    assert SellerOrder.objects.get(order=order, seller=other_seller).status == "paid"
    assert Product.objects.get(seller=seller).stock == 2
    assert seller_balance(seller=seller, currency="USD").pending == 0
    assert seller_balance(seller=other_seller, currency="USD").pending == 2700
    assert Order.objects.get(pk=order.pk).status == Order.Status.PARTIALLY_REFUNDED


def test_a_shipped_part_cannot_be_cancelled(seller):
    order = paid_order([(seller, 1000, 1)])
    SellerOrder.objects.filter(order=order).update(status=SellerOrder.Status.SHIPPED)

    with pytest.raises(InvalidState, match="has shipped"):
        seller_order_cancel(seller_order=order.seller_orders.get())
    assert not Refund.objects.exists()


def test_an_unpaid_seller_part_is_cancelled_with_the_whole_order(seller, customer):
    product = ProductFactory(seller=seller)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])

    with pytest.raises(InvalidState, match="cancel the whole order"):
        seller_order_cancel(seller_order=order.seller_orders.get())


def test_a_delivered_part_stays_delivered_even_once_refunded(seller):
    order = paid_order([(seller, 1000, 1)])
    SellerOrder.objects.filter(order=order).update(
        status=SellerOrder.Status.DELIVERED, shipped_at=timezone.now(), delivered_at=timezone.now()
    )
    refund(order)

    with pytest.raises(InvalidState, match="has shipped"):
        seller_order_cancel(seller_order=order.seller_orders.get())
    assert Product.objects.get(seller=seller).stock == 0


def test_a_too_long_reason_is_refused_and_nothing_is_written(seller):
    order = paid_order([(seller, 1000, 1)])

    with pytest.raises(InvalidRequest, match="under 255 characters"):
        seller_order_cancel(seller_order=order.seller_orders.get(), reason="x" * 256)

    assert not Refund.objects.exists()
    assert SellerOrder.objects.get(order=order).status == SellerOrder.Status.PAID


def test_cancelling_again_after_the_refund_failed_refunds_what_is_still_owed(seller):
    order = paid_order([(seller, 1000, 2)])
    seller_order = order.seller_orders.get()
    refund_mark_failed(refund=seller_order_cancel(seller_order=seller_order))

    retry = seller_order_cancel(seller_order=seller_order)
    refund_mark_succeeded(refund=retry)

    assert retry.amount_minor == 2000
    assert Product.objects.get(seller=seller).stock == 2  # restocked once
    assert seller_order_cancel(seller_order=seller_order) is None
    assert ledger_check().ok


def test_when_everything_is_reserved_the_message_says_so(seller):
    order = paid_order([(seller, 1000, 1)])
    refund_create(order=order)

    with pytest.raises(InvalidRequest, match=re.escape("Everything has been refunded already.")):
        refund_create(order=order)


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_refund_reversed_then_refunded_again_gives_back_the_fee_exactly_once(currency):
    CommissionRuleFactory(percentage_bps=1000)
    ServiceFeeFactory(currency=currency, percentage_bps=333, fixed_fee_minor=1)
    order, _ = card_paid([1_001, 2_002], currency=currency)
    fee = order.service_fee_minor
    first, second = order.lines.order_by("pk")
    one = refund_create(order=order, order_line=first)
    refund_mark_succeeded(refund=one)
    refund_mark_failed(refund=one)  # the bank sent it back
    two = refund_create(order=order, order_line=second)
    three = refund_create(order=order, order_line=first)
    for refund in (two, three):
        refund_mark_succeeded(refund=refund)
    order.refresh_from_db()
    assert two.service_fee_minor + three.service_fee_minor == fee
    assert order.service_fee_refunded_minor == fee
    assert order.refunded_minor == order.total_minor
    assert order.status == Order.Status.REFUNDED
    assert balance("service_fees", currency) == 0
    assert ledger_check().ok, ledger_check().problems


def test_the_refund_counts_its_fee_part_in_what_the_order_says_was_refunded():
    ServiceFeeFactory(currency="KWD", percentage_bps=1_000, fixed_fee_minor=1)
    order, _ = card_paid([1_234, 4_321], currency="KWD")
    refund = refund_create(order=order, amount_minor=999)
    order.refresh_from_db()
    assert refund.amount_minor == 999 + refund.service_fee_minor
    assert order.refunded_minor == refund.amount_minor
    assert Refund.objects.get().service_fee_minor == order.service_fee_refunded_minor
    assert not Dispute.objects.exists()
