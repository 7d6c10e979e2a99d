"""Seller plans: validation, billing once per period, prorated changes, debts netted."""

import importlib
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from marketplace.kernel.errors import InvalidRequest
from payments.checks import ledger_check
from payments.ledger.balances import platform_balance, seller_balance
from payments.models import (
    AuditRecord,
    LedgerAccount,
    LedgerTransaction,
    Payout,
    SellerPlan,
    SellerPlanCharge,
    SellerPlanChoice,
)
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.revenue.plans import (
    billing_period,
    pro_rata,
    seller_plan_bill,
    seller_plan_change,
    seller_plan_change_preview,
    seller_plan_save,
    seller_plans_bill,
)
from payments.tasks import listings_renew_due_task, seller_plans_bill_task
from tests.factories import CommissionRuleFactory, SellerPlanFactory
from tests.money_helpers import enable_payouts, paid_order

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


migration = importlib.import_module("payments.migrations.0036_plans_billing_schedule")


DEC_11 = datetime(2026, 12, 11, tzinfo=UTC)


DEC_21 = datetime(2026, 12, 21, tzinfo=UTC)


def _half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


def _paid_for_plans(seller):
    """What the seller's plan charges less credits come to."""
    total = 0
    for charge in SellerPlanCharge.objects.filter(seller=seller):
        total += charge.amount_minor if charge.kind == "charge" else -charge.amount_minor
    return total


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


def test_a_plan_fee_debt_is_netted_from_the_next_payout(run, seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_plan_change(seller=seller, plan=SellerPlanFactory(), by=seller.user)
    fee = SellerPlanCharge.objects.get().amount_minor
    assert seller_balance(seller=seller, currency="USD").available == -fee  # a debt

    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run(run_payouts)

    payout = Payout.objects.get()
    share = order.lines.get().seller_share_minor  # 9500: the plan's 5 % commission
    assert payout.amount_minor == share - fee
    assert seller_balance(seller=seller, currency="USD").available == 0
    assert ledger_check().problems == []


def test_no_payout_while_the_fee_debt_is_larger_than_what_is_available(run, seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_plan_change(
        seller=seller, plan=SellerPlanFactory(monthly_fee_minor=10**8), by=seller.user
    )
    order = paid_order([(seller, 1000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())

    run(run_payouts)

    assert not Payout.objects.exists()
    assert ledger_check().problems == []


def test_a_seller_on_a_plan_pays_the_plans_lower_commission_on_the_next_sale(seller):
    CommissionRuleFactory(percentage_bps=1000)
    plan = SellerPlanFactory(commission_bps=500)
    seller_plan_change(seller=seller, plan=plan, by=seller.user)

    order = paid_order([(seller, 10000, 1)])

    line = order.lines.get()
    assert line.commission_minor == 500
    assert line.seller_share_minor == 9500
    assert line.commission_source == "plan"
    assert line.seller_plan == plan
    assert ledger_check().problems == []


def test_the_schedules_bill_plans_hourly_and_renew_listings_daily():
    PeriodicTask.objects.filter(name__in=[name for name, *_ in migration.SCHEDULES]).delete()

    migration.create(apps, None)
    migration.create(apps, None)  # twice: still one of each

    plans = PeriodicTask.objects.get(task="payments.tasks.seller_plans_bill_task")
    listings = PeriodicTask.objects.get(task="payments.tasks.listings_renew_due_task")
    assert (plans.interval.every, plans.interval.period) == (1, "hours")
    assert (listings.interval.every, listings.interval.period) == (1, "days")


def test_the_tasks_call_the_services(seller):
    SellerPlanChoice.objects.create(seller=seller, plan=SellerPlanFactory())

    assert seller_plans_bill_task() == 1
    assert seller_plans_bill_task() == 0
    assert listings_renew_due_task() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("currency", "old_fee", "new_fee", "credit", "charge"),
    [
        # 21 of December's 31 days left on the 11th: fee * 21 / 31, half-up.
        ("JPY", 3000, 1000, 2032, 677),  # 2032.26, 677.42
        ("USD", 2900, 999, 1965, 677),  # 1964.52, 676.74
        ("KWD", 29500, 7250, 19984, 4911),  # 19983.87, 4911.29
    ],
)
def test_proration_figures_are_exact_in_each_currency(
    utc, seller, currency, old_fee, new_fee, credit, charge
):
    seller.default_currency = currency
    seller.save()
    old = SellerPlanFactory(currency=currency, monthly_fee_minor=old_fee)
    new = SellerPlanFactory(currency=currency, monthly_fee_minor=new_fee)
    SellerPlanChoice.objects.create(
        seller=seller, plan=old, started_at=datetime(2026, 11, 15, tzinfo=UTC)
    )
    assert seller_plan_bill(seller=seller, at=DEC_1).amount_minor == old_fee

    seller_plan_change(seller=seller, plan=new, by=seller.user, at=DEC_11)

    got = {
        (c.plan_id, c.kind): c.amount_minor for c in SellerPlanCharge.objects.filter(seller=seller)
    }
    assert got == {
        (old.pk, "charge"): old_fee,
        (old.pk, "credit"): credit,
        (new.pk, "charge"): charge,
    }
    assert credit == _half_up(Fraction(old_fee * 21, 31))
    assert charge == _half_up(Fraction(new_fee * 21, 31))
    assert seller_balance(seller=seller, currency=currency).available == (
        -(old_fee - credit + charge)
    )
    assert ledger_check().problems == []


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_a_month_there_and_back_charges_each_span_once_and_billing_adds_nothing(
    utc, seller, currency
):
    """A -> B on the 11th, B -> A on the 21st: the seller pays A for 10 + 11 days and B
    for 10 days (each within a minor unit per piece); billing again that month charges
    nothing more; January's billing charges A's whole fee once."""
    seller.default_currency = currency
    seller.save()
    a = SellerPlanFactory(currency=currency, monthly_fee_minor=2999)
    b = SellerPlanFactory(currency=currency, monthly_fee_minor=12345)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1 - timedelta(days=3))
    seller_plans_bill(now=DEC_1 + timedelta(hours=1))
    seller_plan_change(seller=seller, plan=b, by=seller.user, at=DEC_11)
    seller_plan_change(seller=seller, plan=a, by=seller.user, at=DEC_21)

    assert seller_plans_bill(now=DEC_21 + timedelta(days=5)) == 0
    assert seller_plan_bill(seller=seller, at=DEC_21 + timedelta(days=6)).kind == "charge"
    exact = Fraction(2999 * 21 + 12345 * 10, 31)
    assert abs(_paid_for_plans(seller) - exact) <= 3
    assert SellerPlanCharge.objects.count() == 5  # A, A credit, B, B credit, A again

    assert seller_plans_bill(now=JAN_1 + timedelta(hours=1)) == 1
    assert seller_plans_bill(now=JAN_1 + timedelta(hours=2)) == 0
    january = SellerPlanCharge.objects.get(period_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert (january.plan, january.amount_minor) == (a, 2999)
    assert ledger_check().problems == []


@pytest.mark.django_db
def test_a_change_in_a_month_not_yet_billed_charges_the_old_plan_once(utc, seller):
    """Billing has not run for January when the seller changes plan on the 1st at noon:
    the old plan is charged for January (caught up) and credited for the rest, once;
    billing later does not charge January again."""
    a = SellerPlanFactory(monthly_fee_minor=3100)
    b = SellerPlanFactory(monthly_fee_minor=6200)
    SellerPlanChoice.objects.create(seller=seller, plan=a, started_at=DEC_1)
    seller_plans_bill(now=DEC_1)
    noon = JAN_1 + timedelta(hours=12)

    seller_plan_change(seller=seller, plan=b, by=seller.user, at=noon)
    assert seller_plans_bill(now=noon + timedelta(hours=1)) == 0

    january = SellerPlanCharge.objects.filter(period_end=datetime(2027, 2, 1, tzinfo=UTC))
    assert sorted((c.plan_id, c.kind, c.amount_minor) for c in january) == sorted(
        [(a.pk, "charge", 3100), (a.pk, "credit", 3050), (b.pk, "charge", 6100)]
    )


@pytest.mark.django_db
def test_a_fee_charged_while_a_payout_is_open_is_netted_from_the_next(run, seller):
    """The payout was planned before the fee, which is charged before it is sent: no
    overpayment, and what the seller is paid in all is what they earned less the fee."""
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    first = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=first.seller_orders.get())
    run_payouts(sellers=[seller])  # scheduled, not sent yet
    payout = Payout.objects.get()
    seller_plan_change(seller=seller, plan=SellerPlanFactory(commission_bps=None), by=seller.user)
    fee = SellerPlanCharge.objects.get().amount_minor
    payout_send(payout=payout)

    second = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=second.seller_orders.get())
    Payout.objects.update(created_at=timezone.now() - timedelta(days=2))
    run_payouts(sellers=[seller], now=timezone.now() + timedelta(days=1))

    shares = sum(o.lines.get().seller_share_minor for o in (first, second))
    # The open payout no longer fits at sending (the fee came first): it is cancelled,
    # not sent, and the next run pays both sales less the fee.
    kept = Payout.objects.exclude(status__in=("cancelled", "failed"))
    paid = sum(p.amount_minor for p in kept)
    assert paid == shares - fee
    assert ledger_check().problems == []


@pytest.mark.django_db
def test_proration_counts_the_daylight_saving_hour(settings, seller):
    """New York's November 2026 has 30 days and one hour (clocks go back on the 1st):
    a change at noon local on the 16th leaves 14.5 days of a 30-day-and-an-hour month."""
    settings.TIME_ZONE = "America/New_York"
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    a = SellerPlanFactory(monthly_fee_minor=0)
    b = SellerPlanFactory(monthly_fee_minor=2900)
    SellerPlanChoice.objects.create(
        seller=seller, plan=a, started_at=datetime(2026, 10, 1, tzinfo=UTC)
    )
    at = datetime(2026, 11, 16, 12, tzinfo=zone)

    seller_plan_change(seller=seller, plan=b, by=seller.user, at=at)

    month = 30 * 86_400 + 3600
    left = int((datetime(2026, 12, 1, tzinfo=zone) - at).total_seconds())
    assert left == 14 * 86_400 + 12 * 3600
    charge = SellerPlanCharge.objects.get(plan=b)
    assert charge.amount_minor == _half_up(Fraction(2900 * left, month)) == 1400  # 1399.72
