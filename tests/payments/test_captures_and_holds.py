from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.models import Order, SellerOrder
from marketplace.orders import order_cancel
from marketplace.services.orders import CartItem, place_order
from payments.collection.captures import order_payment_captured
from payments.ledger.balances import platform_balance, seller_balance
from payments.ledger.posting import seller_account
from payments.models import LedgerEntry, LedgerTransaction
from payments.payouts.holds import holds_release_due, seller_order_hold_release
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ten_percent():
    CommissionRuleFactory(percentage_bps=1000)


def test_capture_marks_the_order_paid_and_splits_every_line(seller, other_seller):
    order = paid_order([(seller, 1000, 2), (other_seller, 500, 1)])

    assert order.status == Order.Status.PAID and order.paid_at is not None
    assert set(order.seller_orders.values_list("status", flat=True)) == {"paid"}
    txn = LedgerTransaction.objects.get(idempotency_key=f"payment:{order.pk}")
    assert txn.kind == "payment_captured"
    # Every entry but the processor's names the order line it comes from.
    assert txn.entries.filter(order_line__isnull=True).count() == 1
    assert seller_balance(seller=seller, currency="USD").pending == 1800
    assert seller_balance(seller=other_seller, currency="USD").pending == 450
    assert platform_balance(currency="USD").commission_earned == 250


def test_capturing_twice_records_it_once(seller):
    order = paid_order([(seller, 1000, 1)])

    again = order_payment_captured(order=order)

    assert again.idempotency_key == f"payment:{order.pk}"
    assert LedgerTransaction.objects.count() == 1
    assert seller_balance(seller=seller, currency="USD").pending == 900


def test_a_cancelled_order_cannot_be_captured(seller, customer):
    product = ProductFactory(seller=seller)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    order_cancel(order=order)

    with pytest.raises(InvalidState):
        order_payment_captured(order=order)
    assert not LedgerTransaction.objects.exists()


@pytest.mark.parametrize("fee", [-1, 10**9, 1.5])
def test_a_bad_fee_is_refused(seller, customer, fee):
    product = ProductFactory(seller=seller)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])

    with pytest.raises(InvalidRequest):
        order_payment_captured(order=order, processor_fee_minor=fee)
    assert Order.objects.get(pk=order.pk).status == Order.Status.AWAITING_PAYMENT


def test_the_platform_bears_the_processor_fee_by_default(seller):
    paid_order([(seller, 1000, 1)], fee=59)

    platform = platform_balance(currency="USD")
    assert (platform.cash_at_processor, platform.processor_fees) == (941, 59)
    assert seller_balance(seller=seller, currency="USD").pending == 900


def test_sellers_can_bear_the_fee_in_proportion_to_their_shares(settings, seller, other_seller):
    settings.PAYMENTS_PROCESSOR_FEE_PAYER = "sellers"

    paid_order([(seller, 2000, 1), (other_seller, 1000, 1)], fee=100)

    # Shares 1800 and 900: the fee splits 67 / 33 (largest remainder).
    assert seller_balance(seller=seller, currency="USD").pending == 1800 - 67
    assert seller_balance(seller=other_seller, currency="USD").pending == 900 - 33
    assert platform_balance(currency="USD").processor_fees == 0


def test_hold_release_moves_pending_to_available_once(seller):
    order = paid_order([(seller, 1000, 3)])
    seller_order = order.seller_orders.get()

    seller_order_hold_release(seller_order=seller_order)
    seller_order_hold_release(seller_order=seller_order)

    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.pending, balance.available) == (0, 2700)
    assert LedgerTransaction.objects.filter(kind="hold_released").count() == 1


def test_an_unpaid_order_has_nothing_to_release(seller, customer):
    product = ProductFactory(seller=seller)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])

    with pytest.raises(InvalidState):
        seller_order_hold_release(seller_order=order.seller_orders.get())


def test_holds_are_released_after_the_hold_period(settings, seller, other_seller):
    settings.PAYMENTS_HOLD_DAYS = 7
    old = paid_order([(seller, 1000, 1)])
    Order.objects.filter(pk=old.pk).update(paid_at=timezone.now() - timedelta(days=8))
    paid_order([(other_seller, 1000, 1)])

    assert holds_release_due() == 1
    assert holds_release_due() == 0
    assert seller_balance(seller=seller, currency="USD").available == 900
    assert seller_balance(seller=other_seller, currency="USD").available == 0


def test_holds_can_be_released_on_delivery(settings, seller):
    settings.PAYMENTS_RELEASE_ON_DELIVERY = True
    order = paid_order([(seller, 1000, 1)])
    assert holds_release_due() == 0

    SellerOrder.objects.filter(order=order).update(
        status=SellerOrder.Status.DELIVERED, delivered_at=timezone.now()
    )

    assert holds_release_due() == 1
    assert seller_balance(seller=seller, currency="USD").available == 900


def test_hold_release_entries_name_their_order_lines(seller):
    order = paid_order([(seller, 1000, 1), (seller, 200, 1)])

    seller_order_hold_release(seller_order=order.seller_orders.get())

    released = LedgerEntry.objects.filter(transaction__kind="hold_released")
    assert set(released.values_list("order_line__order", flat=True)) == {order.pk}
    assert released.count() == 4


def test_a_fee_borne_by_sellers_leaves_with_the_hold_release(settings, seller):
    settings.PAYMENTS_PROCESSOR_FEE_PAYER = "sellers"
    order = paid_order([(seller, 1000, 1)], fee=50)

    seller_order_hold_release(seller_order=order.seller_orders.get())

    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.pending, balance.available) == (0, 850)


def test_a_capture_retried_with_its_fee_records_the_fee_once(seller, customer):
    product = ProductFactory(seller=seller, price_minor=1000)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    order_payment_captured(order=order)

    order_payment_captured(order=order, processor_fee_minor=59)
    order_payment_captured(order=order, processor_fee_minor=10**9)  # the fee is known already

    assert platform_balance(currency="USD").processor_fees == 59
    assert LedgerTransaction.objects.filter(kind="processor_fee").count() == 1


def test_an_unknown_account_kind_is_refused(seller):
    with pytest.raises(InvalidRequest):
        seller_account(seller, "savings", "USD")
