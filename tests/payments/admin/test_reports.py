"""Operator admin pages added for running the business: revenue report, commission
preview, seller page with policy and balances; all as an operator, not a superuser."""

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from payments.admin.reports import MIN_SLOTS, PLOT_HEIGHT, SLOT, revenue_charts
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import CommissionRule, PayoutPolicy
from payments.reporting.revenue import RevenueRow, revenue_report
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order


@pytest.fixture
def books(seller):
    """100.00 sold at 10% with a 0.30 fee; 20.00 of it refunded."""
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 10000, 1)], fee=30)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=2000))
    return order


URL = "admin:payments_revenuereport_changelist"


def _row(day, net, currency="USD"):
    """A row whose net (commission less fees) is ``net``."""
    return RevenueRow(
        period=day, currency=currency, sales=0, refunds=0, commission=net, processor_fees=0
    )


@pytest.mark.django_db
def test_the_revenue_report_adds_up_from_the_ledger(books):
    (row,) = revenue_report(period="day")

    assert (row.currency, row.sales, row.refunds) == ("USD", 10000, 2000)
    assert (row.commission, row.processor_fees, row.net) == (800, 30, 770)


@pytest.mark.django_db
def test_the_report_groups_by_month_and_honours_the_dates(books, seller):
    paid_order([(seller, 5000, 1)])
    now = timezone.now()

    (month,) = revenue_report(period="month")

    assert month.sales == 15000 and month.period == timezone.localdate(now).replace(day=1)
    assert revenue_report(start=now + timedelta(days=1)) == []
    assert revenue_report(end=now - timedelta(days=1)) == []


@pytest.mark.django_db
def test_operators_see_the_revenue_report_page(operator_client, books):
    url = reverse("admin:payments_revenuereport_changelist")

    page = operator_client.get(url)
    monthly = operator_client.get(url, {"period": "month"})
    bad = operator_client.get(url, {"period": "day", "start": "2026-12-31", "end": "2026-01-01"})

    assert page.status_code == 200
    assert "$7.70" in page.text and "<svg" in page.text
    assert monthly.status_code == 200
    assert bad.status_code == 200 and "must not be after" in bad.text


@pytest.mark.django_db
def test_a_commission_rule_page_previews_what_it_takes(operator_client):
    rule = CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")

    page = operator_client.get(reverse("admin:payments_commissionrule_change", args=[rule.pk]))

    assert "On a $49.99 line: commission $5.30, seller $44.69" in page.text


@pytest.mark.django_db
def test_the_seller_page_shows_balances_in_money(operator_client, seller, books):
    url = reverse("admin:accounts_seller_change", args=[seller.pk])
    page = operator_client.get(url)

    assert page.status_code == 200
    assert "$72.00" in page.text  # pending, in the balances table


@pytest.mark.django_db
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


@pytest.mark.django_db
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


def test_a_negative_net_hangs_below_the_zero_axis_scaled_to_its_size():
    first = date(2026, 3, 2)
    (chart,) = revenue_charts(
        [_row(first, 1000), _row(first + timedelta(days=1), -500)],
        period="day",
        first=first,
        last=first + timedelta(days=1),
    )

    up, down = chart.bars
    assert (up.height, down.height) == (round(PLOT_HEIGHT * 1000 / 1500), PLOT_HEIGHT // 3)
    assert up.y + up.height == chart.zero_y == down.y
    assert (up.negative, down.negative) == (False, True)
    assert down.label_y > down.y + down.height  # its label is under it
    assert up.label_y < up.y
    assert (up.label, down.label) == ("$10.00", "-$5.00")
    assert [tick.label for tick in chart.ticks] == ["$10.00", "$0.00", "-$5.00"]


def test_periods_without_money_keep_their_place_on_the_axis():
    first = date(2026, 3, 1)
    (chart,) = revenue_charts(
        [_row(first + timedelta(days=3), 250)],
        period="day",
        first=first,
        last=first + timedelta(days=6),
    )

    assert [bar.period.day for bar in chart.bars] == [1, 2, 3, 4, 5, 6, 7]
    assert [bar.net for bar in chart.bars] == [None, None, None, 250, None, None, None]
    assert chart.empty_periods == 6
    assert chart.width >= chart.left + MIN_SLOTS * SLOT  # the axis is drawn wide enough
    assert chart.bars[3].height == PLOT_HEIGHT and chart.bars[0].height == 0


def test_with_no_money_at_all_the_zero_axis_sits_at_the_bottom():
    day = date(2026, 3, 1)

    (chart,) = revenue_charts([_row(day, 0)], period="day", first=day, last=day)

    (bar,) = chart.bars
    assert bar.height == 0 and bar.label == "$0.00"
    assert chart.zero_y == chart.bars[0].label_y + 4  # its label sits on the axis
    assert [tick.label for tick in chart.ticks] == ["$0.00"]


def test_weeks_and_months_start_on_their_first_day_and_currencies_share_the_axis():
    rows = [_row(date(2026, 1, 1), 100, "EUR"), _row(date(2026, 3, 1), 300, "JPY")]

    eur, jpy = revenue_charts(rows, period="month", first=None, last=None)
    (week,) = revenue_charts(
        [_row(date(2026, 3, 2), 100)],
        period="week",
        first=date(2026, 3, 4),
        last=date(2026, 3, 20),
    )

    assert [bar.period for bar in eur.bars] == [date(2026, m, 1) for m in (1, 2, 3)]
    assert [bar.period for bar in jpy.bars] == [bar.period for bar in eur.bars]
    assert (jpy.bars[2].label, eur.bars[0].label) == ("¥300", "€1.00")
    assert [bar.new_group for bar in eur.bars] == [True, False, False]  # the year, once
    assert [bar.period for bar in week.bars] == [date(2026, 3, d) for d in (2, 9, 16)]


def test_no_rows_no_chart():
    assert revenue_charts([], period="day", first=None, last=None) == []


@pytest.mark.django_db
def test_the_report_page_labels_every_bar_and_keeps_the_table(operator_client, seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 10000, 1)], fee=30)  # net 10.00 - 0.30
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=10000))
    today = timezone.localdate()

    page = operator_client.get(reverse(URL), {"period": "day", "start": today, "end": today})

    html = page.content.decode()
    (chart,) = page.context["charts"]
    (bar,) = chart.bars
    assert bar.net == -30 and bar.negative  # commission given back, the fee kept
    assert 'role="img"' in html and f"<title>{today:%-d} {today:%b} {today:%Y}: -$0.30" in html
    assert ">-$0.30</text>" in html  # the bar's value label
    assert f">{today.day}</text>" in html  # and its period
    assert "<table>" in html and "Revenue per day" in html
    assert 'class="scroll-x" tabindex="0"' in html  # a wide chart scrolls by keyboard too


@pytest.mark.django_db
def test_the_report_page_says_so_when_nothing_moved(operator_client):
    page = operator_client.get(reverse(URL), {"period": "day", "start": "2020-01-01"})

    assert page.status_code == 200
    assert page.context["charts"] == []
    assert "Nothing to chart: no money moved in this period." in page.content.decode()
