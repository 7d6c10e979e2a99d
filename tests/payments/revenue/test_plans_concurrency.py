"""Plan and listing fees under concurrency, on PostgreSQL with real connections: billing
twice at once charges once; a plan change racing the billing charges the month once and
prorates once; a plan fee racing a payout run never lets the payout take the fee."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from marketplace.models import Product
from marketplace.services import orders as order_services
from marketplace.services import products as product_services
from marketplace.services.products import product_set_active
from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import ListingCharge, Payout, SellerPlanCharge, SellerPlanChoice
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
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


DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)


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


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_activations_of_one_product_at_once_charge_one_listing(seller):
    ListingFeeFactory(listing_days=30, amount_minor=70)
    product = ProductFactory(seller=seller, is_active=False)

    def activate():
        mine = Product.objects.get(pk=product.pk)
        return product_set_active(product=mine, seller=seller, active=True)

    results = together(activate, activate, activate)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert ListingCharge.objects.filter(product=product).count() == 1
    assert seller_balance(seller=seller, currency="USD").available == -70
    assert ledger_check().problems == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_plan_change_racing_the_monthly_billing_at_the_period_start(utc, seller):
    """Billing for January and a change on January 1st at once: January's old-plan fee
    is charged once and credited once; the total is the prorated figure whatever the
    order."""
    a = SellerPlanFactory(monthly_fee_minor=3100)
    b = SellerPlanFactory(monthly_fee_minor=6200)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)
    noon = JAN_1 + timedelta(hours=12)

    results = together(
        lambda: seller_plans_bill(now=noon),
        lambda: seller_plan_change(seller=seller, plan=b, by=seller.user, at=noon),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    january = SellerPlanCharge.objects.filter(period_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert sorted((c.plan_id, c.kind, c.amount_minor) for c in january) == sorted(
        [(a.pk, "charge", 3100), (a.pk, "credit", 3050), (b.pk, "charge", 6100)]
    )
    assert ledger_check().problems == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_changes_to_different_plans_at_once_prorate_once_each(utc, seller):
    a = SellerPlanFactory(monthly_fee_minor=3100)
    b = SellerPlanFactory(monthly_fee_minor=6200)
    c = SellerPlanFactory(monthly_fee_minor=310)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)

    results = together(
        lambda: seller_plan_change(seller=seller, plan=b, by=seller.user),
        lambda: seller_plan_change(seller=seller, plan=c, by=seller.user),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    # Each choice is charged at most once and credited at most once.
    for choice in SellerPlanChoice.objects.all():
        kinds = list(SellerPlanCharge.objects.filter(choice=choice).values_list("kind", flat=True))
        assert kinds.count("charge") <= 1 and kinds.count("credit") <= 1, kinds
    assert SellerPlanChoice.objects.filter(ended_at__isnull=True).count() == 1
    assert ledger_check().problems == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_listing_a_product_again_while_its_seller_cancels_an_order_does_not_deadlock(
    seller, monkeypatch
):
    CommissionRuleFactory(percentage_bps=1000)
    ListingFeeFactory(listing_days=30, amount_minor=50)
    order = paid_order([(seller, 1000, 1)])
    seller_order = order.seller_orders.get()
    product = Product.objects.get(pk=order.lines.get().product_id)
    Product.objects.filter(pk=product.pk).update(is_active=False, listed_until=None)
    product_saved, money_locked = threading.Event(), threading.Event()
    real_refund_create, real_listed = order_services.refund_create, product_services._listed

    def refund_create(**kwargs):
        refund = real_refund_create(**kwargs)  # the seller's money lock is held now
        money_locked.set()
        product_saved.wait(3)
        return refund

    def listed(product):
        product_saved.set()  # the product row is locked by its UPDATE now
        money_locked.wait(3)
        return real_listed(product)

    monkeypatch.setattr(order_services, "refund_create", refund_create)
    monkeypatch.setattr(product_services, "_listed", listed)

    def cancel():
        return order_services.seller_order_cancel(seller_order=seller_order, by=seller.user)

    def activate():
        mine = Product.objects.get(pk=product.pk)
        return product_set_active(product=mine, seller=seller, active=True)

    results = together(cancel, activate)
    connection.close()

    assert not [r for r in results if isinstance(r, Exception)], results
    assert ListingCharge.objects.filter(product=product).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_plan_fee_racing_a_payout_being_sent_never_overpays(seller):
    """A payout of 90.00 made, then the month's fee and the sending at once: either the
    payout goes first (sent in full, the fee a debt) or the fee does (the payout no longer
    fits and is cancelled); never 90.00 sent with the fee also taken from it unnoticed."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run_payouts(sellers=[seller])
    payout = Payout.objects.get()
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory(monthly_fee_minor=2900))

    results = together(seller_plans_bill, lambda: payout_send(payout=payout))

    assert not [r for r in results if isinstance(r, Exception)], results
    payout.refresh_from_db()
    fee = SellerPlanCharge.objects.get().amount_minor
    available = seller_balance(seller=seller, currency="USD").available
    sent = 0 if payout.status == "cancelled" else payout.amount_minor
    assert sent in (0, 9000), payout.status
    assert sent + available == 9000 - fee  # what was sent plus what is left (or owed)
    assert ledger_check().problems == []
