"""Operator admin pages added for running the business: revenue report, commission
preview, seller page with policy and balances; all as an operator, not a superuser."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import CommissionRule, PayoutPolicy
from payments.reporting.revenue import revenue_report
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def books(seller):
    """100.00 sold at 10% with a 0.30 fee; 20.00 of it refunded."""
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 10000, 1)], fee=30)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=2000))
    return order


def test_the_revenue_report_adds_up_from_the_ledger(books):
    (row,) = revenue_report(period="day")

    assert (row.currency, row.sales, row.refunds) == ("USD", 10000, 2000)
    assert (row.commission, row.processor_fees, row.net) == (800, 30, 770)


def test_the_report_groups_by_month_and_honours_the_dates(books, seller):
    paid_order([(seller, 5000, 1)])
    now = timezone.now()

    (month,) = revenue_report(period="month")

    assert month.sales == 15000 and month.period == timezone.localdate(now).replace(day=1)
    assert revenue_report(start=now + timedelta(days=1)) == []
    assert revenue_report(end=now - timedelta(days=1)) == []


def test_operators_see_the_revenue_report_page(operator_client, books):
    url = reverse("admin:payments_revenuereport_changelist")

    page = operator_client.get(url)
    monthly = operator_client.get(url, {"period": "month"})
    bad = operator_client.get(url, {"period": "day", "start": "2026-12-31", "end": "2026-01-01"})

    assert page.status_code == 200
    assert "$7.70" in page.text and "<svg" in page.text
    assert monthly.status_code == 200
    assert bad.status_code == 200 and "must not be after" in bad.text


def test_a_commission_rule_page_previews_what_it_takes(operator_client):
    rule = CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")

    page = operator_client.get(reverse("admin:payments_commissionrule_change", args=[rule.pk]))

    assert "On a $49.99 line: commission $5.30, seller $44.69" in page.text


def test_the_seller_page_shows_balances_in_money(operator_client, seller, books):
    url = reverse("admin:accounts_seller_change", args=[seller.pk])
    page = operator_client.get(url)

    assert page.status_code == 200
    assert "$72.00" in page.text  # pending, in the balances table


def test_an_operator_freezes_a_seller_in_admin_and_a_freeze_needs_a_reason(operator_client, seller):
    url = reverse("admin:payments_payoutpolicy_add")
    base = {
        "seller": seller.pk,
        "method": "processor",
        "schedule": "daily",
        "weekday": 0,
        "month_day": 1,
        "hold_days": 7,
        "reserve": "0",
        "reserve_days": 90,
        "frozen": "on",
        "change_reason": "Chargebacks above 1%",
    }

    refused = operator_client.post(url, {**base, "frozen_reason": ""})
    bad_amount = operator_client.post(url, {**base, "frozen_reason": "x", "minimums_0": "1.555"})
    saved = operator_client.post(url, {**base, "frozen_reason": "Chargeback review"})

    assert refused.status_code == 200 and "Say why" in refused.text
    assert bad_amount.status_code == 200
    assert "USD amounts have at most 2 decimal places" in bad_amount.text
    assert saved.status_code == 302
    assert PayoutPolicy.objects.get(seller=seller).frozen_reason == "Chargeback review"
    assert CommissionRule.objects.count() == 0


def test_the_report_shows_what_was_paid_to_sellers(run, seller):
    from payments.payouts.holds import seller_order_hold_release
    from payments.payouts.runs import run_payouts
    from tests.money_helpers import enable_payouts

    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_order_hold_release(seller_order=paid_order([(seller, 10000, 1)]).seller_orders.get())
    run(run_payouts)

    (row,) = revenue_report(period="day")

    assert (row.sales, row.payouts, row.net) == (10000, 9000, 1000)
