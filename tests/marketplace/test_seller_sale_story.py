"""A sale's line tells its whole story, read from the ledger: paid in which payout, and a
refund after that payout, taken from the next payout or back from the transfer."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from marketplace.models import SellerOrder
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import Clawback
from payments.reporting.earnings_schedule import STATE_DISPUTED, STATE_IN_PAYOUT, when_paid
from tests.factories import CommissionRuleFactory
from tests.marketplace.seller_scenarios import REFUND, refund_after_payout
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


def story(order, now=None):
    seller_order = SellerOrder.objects.select_related("order").get(order=order)
    return when_paid(seller_orders=[seller_order], now=now or REFUND)[seller_order.pk]


def day(value):
    return f"{value:%a} {value.day} {value:%b %Y}"


def test_a_sale_refunded_after_its_payout_says_paid_then_refunded_from_the_next_payout(run, seller):
    history = refund_after_payout(run, seller)

    found = story(history.first)

    assert found.state == STATE_IN_PAYOUT and found.payout == history.payout
    assert found.text == (
        f"Paid in payout #{history.payout.pk} on {day(found.paid_on)}; $31.50 refunded after"
        " that, taken from your next payout."
    )
    assert "Nothing to pay" not in found.text


def test_the_sale_still_in_its_hold_says_when_it_becomes_available(run, seller):
    history = refund_after_payout(run, seller)

    assert story(history.second).text == (
        "Waiting: available on Wed 18 Mar 2026, expected in the payout of Wed 18 Mar 2026."
    )


def test_the_refund_is_named_with_the_payout_that_netted_it(run, seller):
    history = refund_after_payout(run, seller)
    with time_machine.travel(datetime(2026, 3, 19, 6, 0, tzinfo=UTC), tick=False):
        from payments.payouts.runs import run_payouts

        run(run_payouts)  # the second sale's $60.75, less the $31.50 owed
    later = seller.payouts.exclude(pk=history.payout.pk).get()
    assert later.amount_minor == 6075 - 3150

    found = story(history.first)

    assert found.text.endswith(f"$31.50 refunded after that, taken from payout #{later.pk}.")


def test_a_refund_taken_back_from_the_transfer_says_so(run, seller):
    history = refund_after_payout(run, seller)
    refund_id = history.first.refunds.get().pk
    Clawback.objects.filter(reason_id=refund_id).update(
        status=Clawback.Status.REVERSED, amount_minor=3150
    )

    assert story(history.first).text.endswith(
        f"$31.50 refunded after that, taken back from payout #{history.payout.pk}'s transfer."
    )
    Clawback.objects.filter(reason_id=refund_id).update(amount_minor=1000)
    assert story(history.first).text.endswith(
        f"$10.00 taken back from payout #{history.payout.pk}'s transfer, $21.50 taken from"
        " your next payout."
    )


def test_a_refund_before_the_payout_leaves_nothing_to_pay(seller, customer):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 2000, 1)], customer=customer)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=1000))

    assert story(order, now=order.paid_at).text.startswith("Waiting: available on ")
    assert story(order, now=order.paid_at).text.endswith("; $9.00 refunded before payout.")

    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=1000))
    assert story(order, now=order.paid_at).text == "Refunded before payout: nothing to pay."


def test_a_disputed_sale_says_how_much_is_held_then_what_was_lost(run, seller, customer):
    from marketplace.services.orders import CartItem, place_order
    from payments.collection.checkout import payment_start
    from payments.models import Dispute
    from payments.processors.local import CARD_DISPUTED, LocalProcessor
    from tests.factories import ProductFactory

    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=2000, stock=1)
    order = place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])
    attempt = run(payment_start, order=order)
    local = LocalProcessor()
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_DISPUTED)
    order.refresh_from_db()

    found = story(order, now=order.paid_at + timedelta(days=1))
    assert found.state == STATE_DISPUTED
    assert found.text == "Disputed: $18.00 held until it is decided."

    run(local.dispute_close, dispute_id=Dispute.objects.get().processor_dispute_id, won=False)
    assert story(order, now=order.paid_at + timedelta(days=1)).text == (
        "Lost in a dispute: $18.00 taken back, nothing to pay."
    )


def test_the_pages_tell_the_story(run, seller, seller_client):
    history = refund_after_payout(run, seller)
    seller_order = history.first.seller_orders.get()
    expected = f"Paid in payout #{history.payout.pk} on "

    detail = seller_client.get(reverse("marketplace:seller_order_detail", args=[seller_order.pk]))
    orders = seller_client.get(reverse("marketplace:seller_orders"), {"show": "all"})
    transactions = seller_client.get(reverse("marketplace:seller_transactions"))

    for page in (detail, orders, transactions):
        text = page.content.decode()
        assert expected in text
        assert "$31.50 refunded after that, taken from your next payout" in text
        assert "Nothing to pay" not in text
