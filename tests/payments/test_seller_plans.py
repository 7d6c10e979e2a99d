"""Seller plans: validation, billing once per period, prorated changes, debts netted."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from marketplace.kernel.errors import InvalidRequest
from payments.checks import ledger_check
from payments.ledger.balances import platform_balance, seller_balance
from payments.models import (
    AuditRecord,
    LedgerAccount,
    LedgerTransaction,
    SellerPlan,
    SellerPlanCharge,
    SellerPlanChoice,
)
from payments.revenue.plans import (
    billing_period,
    pro_rata,
    seller_plan_bill,
    seller_plan_change,
    seller_plan_change_preview,
    seller_plan_save,
    seller_plans_bill,
)
from tests.factories import SellerPlanFactory

pytestmark = pytest.mark.django_db

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)
DEC_16 = datetime(2026, 12, 16, tzinfo=UTC)  # 16 of December's 31 days left
JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)


def _available(seller, currency="USD"):
    return seller_balance(seller=seller, currency=currency).available


def _plan_fees(currency="USD"):
    accounts = LedgerAccount.objects.filter(
        seller__isnull=True, kind="plan_fees", currency=currency
    ).with_balance()
    return -sum(account.balance for account in accounts)


def test_the_billing_period_is_the_calendar_month_in_the_sites_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    start, end = billing_period(datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # Dec 1, 01:00 JST

    assert start == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 31, 15, 0, tzinfo=UTC)


def test_pro_rata_rounds_half_up():
    assert pro_rata(1, 1, 2) == 1  # 0.5 -> 1
    assert pro_rata(2900, 16 * 86400, 31 * 86400) == 1497  # 1496.77
    assert pro_rata(5, 1, 4) == 1  # 1.25 -> 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"monthly_fee_minor": -1}, "monthly_fee_minor"),
        ({"monthly_fee_minor": 12.5}, "monthly_fee_minor"),
        ({"commission_bps": 10_001}, "commission_bps"),
        ({"currency": "XXX"}, "currency"),
    ],
)
def test_a_bad_plan_is_refused_and_nothing_is_saved(operator, changes, field):
    plan = SellerPlan(name="Pro", currency="USD", monthly_fee_minor=2900, commission_bps=500)
    for name, value in changes.items():
        setattr(plan, name, value)

    with pytest.raises(ValidationError) as error:
        seller_plan_save(plan=plan, by=operator, reason="launch")

    assert field in error.value.message_dict
    assert not SellerPlan.objects.exists()
    assert not AuditRecord.objects.exists()


def test_saving_a_plan_is_audited(operator):
    plan = seller_plan_save(
        plan=SellerPlan(name="Pro", currency="USD", monthly_fee_minor=2900, commission_bps=500),
        by=operator,
        reason="launch",
    )

    record = AuditRecord.objects.get()
    assert (record.action, record.actor, record.reason) == ("created", operator, "launch")
    assert record.changes["monthly_fee_minor"] == [None, 2900]
    assert plan.pk


def test_a_chosen_plan_keeps_its_currency(seller, operator):
    plan = SellerPlanFactory()
    seller_plan_change(seller=seller, plan=plan, by=seller.user, at=DEC_1)
    plan.currency = "EUR"

    with pytest.raises(ValidationError):
        seller_plan_save(plan=plan, by=operator)


def test_a_plan_in_another_currency_is_refused_and_nothing_is_saved(seller):
    plan = SellerPlanFactory(currency="EUR")

    with pytest.raises(InvalidRequest, match="EUR"):
        seller_plan_change(seller=seller, plan=plan, by=seller.user, at=DEC_16)

    assert not SellerPlanChoice.objects.exists()
    assert not SellerPlanCharge.objects.exists()
    assert not LedgerTransaction.objects.exists()


def test_a_seller_cannot_choose_a_plan_that_is_not_offered_but_an_operator_can(seller, operator):
    plan = SellerPlanFactory(is_offered=False)

    with pytest.raises(InvalidRequest, match="not offered"):
        seller_plan_change(seller=seller, plan=plan, by=seller.user, at=DEC_16)
    assert not SellerPlanChoice.objects.exists()

    choice = seller_plan_change(seller=seller, plan=plan, by=operator, at=DEC_16)
    assert choice.chosen_by == operator


def test_billing_charges_the_monthly_fee_once_per_period(seller):
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory(), started_at=DEC_1)

    assert seller_plans_bill(now=DEC_1) == 1
    assert seller_plans_bill(now=DEC_16) == 0
    assert seller_plan_bill(seller=seller, at=DEC_16).amount_minor == 2900

    charge = SellerPlanCharge.objects.get()
    assert (charge.kind, charge.amount_minor, charge.period_start, charge.period_end) == (
        "charge",
        2900,
        DEC_1,
        JAN_1,
    )
    assert charge.ledger_transaction.kind == "plan_fee"
    assert charge.ledger_transaction.description == f"Plan fee — {charge.plan.name}, December 2026"
    assert _available(seller) == -2900  # a debt: the next payout nets it
    assert _plan_fees() == 2900
    assert seller_plans_bill(now=JAN_1) == 1
    assert _available(seller) == -5800


def test_a_free_plan_records_its_charge_with_no_ledger_transaction(seller):
    SellerPlanChoice.objects.create(
        seller=seller, plan=SellerPlanFactory(monthly_fee_minor=0, commission_bps=1000)
    )

    seller_plans_bill()

    charge = SellerPlanCharge.objects.get()
    assert (charge.amount_minor, charge.ledger_transaction) == (0, None)
    assert not LedgerTransaction.objects.exists()


def test_a_seller_on_no_plan_is_not_billed(seller):
    assert seller_plan_bill(seller=seller, at=DEC_1) is None
    assert seller_plans_bill(now=DEC_1) == 0


def test_choosing_a_first_plan_mid_month_charges_the_rest_of_the_month(seller):
    choice = seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user, at=DEC_16)

    charge = SellerPlanCharge.objects.get()
    assert (charge.choice, charge.amount_minor, charge.period_start) == (choice, 1497, DEC_16)
    assert _available(seller) == -1497
    # The hourly billing finds the period charged.
    assert seller_plans_bill(now=DEC_16) == 0


def test_changing_plan_mid_month_credits_the_unused_part_and_charges_the_new_plan(seller):
    basic = SellerPlanFactory(name="Basic", monthly_fee_minor=1000)
    pro = SellerPlanFactory(name="Pro", monthly_fee_minor=2900)
    SellerPlanChoice.objects.create(seller=seller, plan=basic, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)

    preview = seller_plan_change_preview(seller=seller, plan=pro, at=DEC_16)
    seller_plan_change(seller=seller, plan=pro, by=seller.user, at=DEC_16)

    credit = SellerPlanCharge.objects.get(kind="credit")
    new = SellerPlanCharge.objects.get(kind="charge", plan=pro)
    assert (credit.plan, credit.amount_minor) == (basic, 516)  # 1000 * 16/31 = 516.1
    assert credit.ledger_transaction.kind == "plan_fee_credit"
    assert new.amount_minor == 1497
    assert (preview.credit_minor, preview.charge_minor, preview.catch_up_minor) == (516, 1497, 0)
    assert preview.net_minor == 1497 - 516
    assert _available(seller) == -(1000 - 516 + 1497)
    assert _plan_fees() == 1000 - 516 + 1497
    old = SellerPlanChoice.objects.get(plan=basic)
    assert old.ended_at == DEC_16
    assert SellerPlanChoice.objects.get(ended_at__isnull=True).plan == pro


def test_a_change_before_the_periods_billing_bills_the_old_plan_first(seller):
    basic = SellerPlanFactory(name="Basic", monthly_fee_minor=1000)
    SellerPlanChoice.objects.create(seller=seller, plan=basic, started_at=DEC_1)

    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user, at=DEC_16)

    kept = SellerPlanCharge.objects.get(plan=basic, kind="charge").amount_minor
    credited = SellerPlanCharge.objects.get(plan=basic, kind="credit").amount_minor
    assert (kept, credited) == (1000, 516)


def test_choosing_the_current_plan_again_changes_nothing(seller):
    plan = SellerPlanFactory()
    first = seller_plan_change(seller=seller, plan=plan, by=seller.user, at=DEC_16)
    transactions = LedgerTransaction.objects.count()

    again = seller_plan_change(seller=seller, plan=plan, by=seller.user, at=DEC_16)

    assert again == first
    assert SellerPlanChoice.objects.count() == 1
    assert LedgerTransaction.objects.count() == transactions


def test_a_change_before_the_current_plan_started_is_refused(seller):
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user, at=DEC_16)

    with pytest.raises(InvalidRequest):
        seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user, at=DEC_1)
    assert SellerPlanChoice.objects.count() == 1


def test_the_ledger_check_accepts_a_debt_made_by_plan_fees(seller):
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory(), started_at=DEC_1)
    seller_plans_bill(now=DEC_1)

    report = ledger_check()

    assert report.problems == []
    assert platform_balance(currency="USD").currency == "USD"
