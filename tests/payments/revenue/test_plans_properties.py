"""Property tests of plan and listing fees in JPY, USD and KWD: proration loses and
invents no minor unit, a month of plan changes charges what each plan earned for the
seconds it was current, and fee postings balance."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import LedgerEntry, SellerPlanCharge, SellerPlanChoice
from payments.revenue.listing_fees import listings_renew_due, product_listing_charge
from payments.revenue.plans import (
    _credit_for_change,
    billing_period,
    pro_rata,
    seconds_between,
    seller_plan_change,
    seller_plans_bill,
)
from tests.factories import ListingFeeFactory, ProductFactory, SellerFactory, SellerPlanFactory

pytestmark = pytest.mark.django_db

CURRENCIES = ["JPY", "USD", "KWD"]
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
PERIOD = 31 * 86_400
FEES = st.integers(0, 100_000_000)


@given(
    fee=FEES,
    covered_from=st.integers(0, PERIOD - 1),
    change=st.integers(0, PERIOD),
)
def test_what_is_kept_and_what_is_credited_add_up_to_the_charge_exactly(fee, covered_from, change):
    start, end = billing_period(DEC_1)
    since = start + timedelta(seconds=covered_from)
    amount = pro_rata(fee, seconds_between(since, end), PERIOD)
    charge = SellerPlanCharge(
        seller_id=1, plan_id=1, choice_id=1, amount_minor=amount, currency="USD",
        period_start=since, period_end=end, kind="charge",
    )  # fmt: skip

    credit = _credit_for_change(charge, start + timedelta(seconds=max(change, covered_from)))

    credited = credit.amount_minor if credit else 0
    kept = amount - credited
    assert 0 <= credited <= amount and kept >= 0
    assert kept + credited == amount
    assert 0 <= amount <= fee


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    currency=st.sampled_from(CURRENCIES),
    fees=st.lists(st.integers(0, 10_000_000), min_size=3, max_size=3),
    changes=st.lists(st.integers(1, PERIOD - 1), min_size=2, max_size=2, unique=True),
)
def test_a_month_with_two_plan_changes_charges_what_each_plan_earned(currency, fees, changes):
    """charges - credits of each plan == its fee for the seconds it was current, within
    one minor unit per rounding (a charge and a credit: 1 each, half-up)."""
    with transaction.atomic():
        seller = SellerFactory(default_currency=currency)
        plans = [SellerPlanFactory(currency=currency, monthly_fee_minor=fee) for fee in fees]
        SellerPlanChoice.objects.create(seller=seller, plan=plans[0], started_at=DEC_1)
        seller_plans_bill(now=DEC_1)
        t1, t2 = sorted(changes)
        seller_plan_change(seller=seller, plan=plans[1], by=None, at=DEC_1 + timedelta(seconds=t1))
        seller_plan_change(seller=seller, plan=plans[2], by=None, at=DEC_1 + timedelta(seconds=t2))
        spans = [(0, t1), (t1, t2), (t2, PERIOD)]

        total = 0
        for plan, (a, b) in zip(plans, spans, strict=True):
            net = sum(
                c.amount_minor if c.kind == "charge" else -c.amount_minor
                for c in SellerPlanCharge.objects.filter(plan=plan)
            )
            exact = plan.monthly_fee_minor * (b - a) / PERIOD
            assert abs(net - exact) <= 1, (plan.monthly_fee_minor, a, b, net)
            total += net
        assert seller_balance(seller=seller, currency=currency).available == -total
        assert ledger_check().problems == []
        transaction.set_rollback(True)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    currency=st.sampled_from(CURRENCIES),
    amount=st.integers(0, 10_000_000),
    days=st.integers(1, 60),
    renewals=st.integers(0, 3),
)
def test_listing_fee_postings_sum_to_the_charges(currency, amount, days, renewals):
    with transaction.atomic():
        seller = SellerFactory(default_currency=currency)
        ListingFeeFactory(currency=currency, amount_minor=amount, listing_days=days)
        product = ProductFactory(seller=seller, currency=currency)
        product_listing_charge(product=product, at=DEC_1)
        for n in range(1, renewals + 1):
            listings_renew_due(now=DEC_1 + timedelta(days=days * n))

        charged = (renewals + 1) * amount
        entries = LedgerEntry.objects.filter(transaction_kind="listing_fee")
        assert sum(e.amount_minor for e in entries) == 0
        assert sum(e.amount_minor for e in entries if e.amount_minor > 0) == charged
        assert seller_balance(seller=seller, currency=currency).available == -charged
        assert ledger_check().problems == []
        transaction.set_rollback(True)
