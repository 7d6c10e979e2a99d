"""When a sale's earnings become available and which payout pays them."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from marketplace.models import SellerOrder
from payments.models import PayoutPolicy
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.payouts.settlement import payout_failed
from payments.reporting.earnings_schedule import (
    STATE_AVAILABLE,
    STATE_IN_PAYOUT,
    STATE_NOTHING,
    STATE_ON_HOLD,
    STATE_UNTIL_DELIVERED,
    when_paid,
)
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


# A Wednesday afternoon: after that day's 06:00 payout run.
WEDNESDAY_2PM = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)


def sold_at(seller, customer, at):
    with time_machine.travel(at, tick=False):
        order = paid_order([(seller, 2500, 1)], customer=customer)
    return SellerOrder.objects.select_related("order").get(order=order)


@pytest.fixture
def sale(seller, customer):
    CommissionRuleFactory(percentage_bps=1000, active_from=WEDNESDAY_2PM - timedelta(days=1))
    enable_payouts(seller)
    return sold_at(seller, customer, WEDNESDAY_2PM)


def when(sale, now):
    sale = SellerOrder.objects.select_related("order").get(pk=sale.pk)
    return when_paid(seller_orders=[sale], now=now)[sale.pk]


def local_day(at):
    return timezone.localdate(at)


def test_a_new_sale_is_available_after_the_hold_and_paid_the_next_payout_day(sale):
    paid_at = sale.order.paid_at

    found = when(sale, paid_at)

    available = local_day(paid_at + timedelta(days=7))  # the default hold, daily payouts
    assert (found.state, found.available_on) == (STATE_ON_HOLD, available)
    assert found.payout_on == available + timedelta(days=1)
    assert found.text == (
        f"Waiting: available on {available:%a} {available.day} {available:%b %Y}, expected in"
        f" the payout of {found.payout_on:%a} {found.payout_on.day} {found.payout_on:%b %Y}."
    )


def test_money_due_before_the_morning_run_is_paid_by_that_run(sale, seller, customer, settings):
    settings.PAYMENTS_PAYOUT_RUN_HOUR = 6
    PayoutPolicy.objects.create(seller=seller, schedule="weekly", weekday=0, hold_days=7)
    early_monday = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    late_monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    early = when(sold_at(seller, customer, early_monday), early_monday)
    late = when(sold_at(seller, customer, late_monday), late_monday)

    assert (early.available_on, early.payout_on) == (date(2026, 3, 9), date(2026, 3, 9))
    assert (late.available_on, late.payout_on) == (date(2026, 3, 9), date(2026, 3, 16))


def test_a_weekly_schedule_pays_on_its_weekday(sale, seller):
    PayoutPolicy.objects.create(seller=seller, schedule="weekly", weekday=4, hold_days=3)

    found = when(sale, sale.order.paid_at)

    available = local_day(sale.order.paid_at + timedelta(days=3))
    assert found.available_on == available
    assert found.payout_on.weekday() == 4
    assert available < found.payout_on <= available + timedelta(days=7)


def test_release_on_delivery_waits_for_the_delivery(sale, seller):
    PayoutPolicy.objects.create(seller=seller, release_on_delivery=True)

    assert when(sale, sale.order.paid_at).state == STATE_UNTIL_DELIVERED
    delivered = sale.order.paid_at + timedelta(days=2)
    SellerOrder.objects.filter(pk=sale.pk).update(
        status="delivered", shipped_at=delivered, delivered_at=delivered
    )
    found = when(sale, delivered)
    assert (found.state, found.available_on) == (STATE_ON_HOLD, local_day(delivered))


def test_once_a_payout_claims_the_earnings_that_payout_is_named(sale, seller):
    later = sale.order.paid_at + timedelta(days=8)
    run_payouts(now=later)

    found = when(sale, later)

    payout = seller.payouts.get()
    assert (found.state, found.payout) == (STATE_IN_PAYOUT, payout)
    assert found.available_on == local_day(later)
    assert found.text == f"In payout #{payout.pk} (scheduled)."


def test_a_payout_whose_transfer_was_refused_gives_the_earnings_back_to_the_next_payout(
    sale, seller
):
    later = sale.order.paid_at + timedelta(days=8)
    run_payouts(now=later)
    payout_failed(payout=seller.payouts.get(), reason="The account cannot receive transfers.")

    found = when(sale, later)

    assert (found.state, found.payout) == (STATE_AVAILABLE, None)
    assert found.payout_on == local_day(later) + timedelta(days=1)


def test_a_payout_whose_bank_payout_failed_keeps_the_earnings(sale, seller):
    """After its transfer the money is in the seller's processor account: the sale stays
    in that payout, whose bank payout the next run sends again."""
    later = sale.order.paid_at + timedelta(days=8)
    run_payouts(now=later)
    payout = payout_send(payout=seller.payouts.get())
    payout_failed(payout=payout, reason="The bank account was closed.")

    found = when(sale, later)

    assert found.payout == payout and found.state != STATE_AVAILABLE


def test_frozen_payouts_say_why_there_is_no_date(sale, seller):
    PayoutPolicy.objects.create(seller=seller, frozen=True, frozen_reason="Fraud review")

    found = when(sale, sale.order.paid_at)

    assert found.payout_on is None
    assert found.text.endswith("your payouts are paused; we will write to you.")


def test_a_sale_refunded_before_its_hold_ended_has_nothing_to_pay(sale):
    from payments.collection.refunds import refund_create, refund_mark_succeeded

    refund_mark_succeeded(refund=refund_create(order=sale.order))

    found = when(sale, sale.order.paid_at)
    assert found.state == STATE_NOTHING
    assert found.text == "Refunded before payout: nothing to pay."


def test_many_sales_are_read_in_a_fixed_number_of_queries(
    seller, customer, django_assert_num_queries
):
    CommissionRuleFactory(percentage_bps=1000)
    for _ in range(2):
        paid_order([(seller, 1000, 1)], customer=customer)
    few = list(SellerOrder.objects.select_related("order"))
    # Two for the policies, one for the ledger entries (with their payouts), one for the
    # clawbacks of their refunds.
    with django_assert_num_queries(4) as captured:
        when_paid(seller_orders=few)
    for _ in range(10):
        paid_order([(seller, 1000, 1)], customer=customer)
    many = list(SellerOrder.objects.select_related("order"))
    with django_assert_num_queries(len(captured)):
        assert len(when_paid(seller_orders=many)) == 12
