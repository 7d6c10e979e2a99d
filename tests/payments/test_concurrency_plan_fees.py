"""Plan and listing fees under concurrency, on PostgreSQL with real connections: billing
twice at once charges once; a plan change racing the billing charges the month once and
prorates once; a plan fee racing a payout run never lets the payout take the fee."""

import pytest

from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import ListingCharge, Payout, SellerPlanCharge, SellerPlanChoice
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.revenue.listing_fees import listings_renew_due, product_listing_charge
from payments.revenue.plans import seller_plan_change, seller_plans_bill
from tests.factories import (
    CommissionRuleFactory,
    ListingFeeFactory,
    ProductFactory,
    SellerPlanFactory,
)
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.test_concurrency_money import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def together(*works):
    """Each work on its own thread and connection, released at the same moment."""
    return run_together(len(works), *works)


def test_billing_twice_at_once_charges_once(seller, other_seller):
    for who in (seller, other_seller):
        SellerPlanChoice.objects.create(seller=who, plan=SellerPlanFactory())

    results = together(seller_plans_bill, seller_plans_bill, seller_plans_bill)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 2
    assert SellerPlanCharge.objects.count() == 2
    fee = SellerPlanCharge.objects.get(seller=seller).amount_minor
    assert seller_balance(seller=seller, currency="USD").available == -fee
    assert ledger_check().problems == []


def test_a_plan_change_racing_the_billing_charges_the_month_once(seller):
    basic = SellerPlanFactory(monthly_fee_minor=1000)
    pro = SellerPlanFactory(monthly_fee_minor=2900)
    SellerPlanChoice.objects.create(seller=seller, plan=basic)

    results = together(
        seller_plans_bill, lambda: seller_plan_change(seller=seller, plan=pro, by=seller.user)
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    # Whichever came first, the basic plan was charged for the month once and credited
    # once, and the pro plan charged once.
    assert SellerPlanCharge.objects.filter(plan=basic, kind="charge").count() == 1
    assert SellerPlanCharge.objects.filter(plan=basic, kind="credit").count() <= 1
    assert SellerPlanCharge.objects.filter(plan=pro, kind="charge").count() == 1
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan == pro
    assert ledger_check().problems == []


def test_two_plan_changes_at_once_leave_one_current_plan(seller):
    plans = [SellerPlanFactory(), SellerPlanFactory(monthly_fee_minor=100)]

    results = together(
        *(lambda p=p: seller_plan_change(seller=seller, plan=p, by=seller.user) for p in plans)
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert SellerPlanChoice.objects.filter(ended_at__isnull=True).count() == 1
    assert ledger_check().problems == []


def test_a_plan_fee_racing_a_payout_run_never_overpays(seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())  # 9000 available
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory(monthly_fee_minor=2900))

    results = together(seller_plans_bill, run_payouts)

    assert not [r for r in results if isinstance(r, Exception)], results
    paid = sum(p.amount_minor for p in Payout.objects.all())
    fee = SellerPlanCharge.objects.get().amount_minor  # prorated: the plan started today
    available = seller_balance(seller=seller, currency="USD").available
    # Whichever ran first: the payout took what was available then (all of it, or what
    # the fee left), and the fee came out of the rest or left a debt the next payout nets.
    assert paid in (9000, 9000 - fee)
    assert available == 9000 - fee  # the payout is scheduled: sending it moves the money
    assert ledger_check().problems == []


def test_renewing_listings_twice_at_once_charges_once(seller):
    from datetime import UTC, datetime, timedelta

    ListingFeeFactory(listing_days=1)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    product = ProductFactory(seller=seller)
    product_listing_charge(product=product, at=start)
    later = start + timedelta(days=1, hours=1)

    results = together(lambda: listings_renew_due(now=later), lambda: listings_renew_due(now=later))

    assert sorted(results) == [0, 1], results
    assert ListingCharge.objects.count() == 2
    assert ledger_check().problems == []
