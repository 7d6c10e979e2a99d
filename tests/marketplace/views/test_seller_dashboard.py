"""The seller's earnings dashboard: balances, this month, the series, the terms."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import PayoutPolicy
from payments.payouts.holds import seller_order_hold_release
from payments.reporting.earnings import commission_terms_for, earnings_series, seller_debt
from payments.reporting.earnings_schedule import next_payout_estimate
from tests.factories import CommissionRuleFactory
from tests.marketplace.seller_scenarios import refund_after_payout
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


# The second sale ($60.75 to the seller) leaves its hold on Wed 18 Mar at 03:00.
BEFORE_ITS_RELEASE_DAY = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)  # next run: 18 Mar 06:00


WELL_BEFORE = datetime(2026, 3, 13, 12, 0, tzinfo=UTC)  # next run: 14 Mar 06:00


def test_the_series_has_every_day_and_todays_net_earnings(month_of_trading):
    days = earnings_series(seller=month_of_trading, currency="USD", days=30).daily

    assert len(days) == 30
    assert days[-1].earned == 13500 - 1800
    assert sum(d.earned for d in days[:-1]) == 0


def test_the_weekly_series_has_a_year_of_weeks_starting_on_mondays(month_of_trading):
    weeks = earnings_series(seller=month_of_trading, currency="USD", weeks=52).weekly

    today = timezone.localdate()
    assert len(weeks) == 52
    assert all(w.start.weekday() == 0 for w in weeks)
    assert weeks[-1].start <= today < weeks[-1].start + timedelta(days=7)
    assert weeks[-1].earned == 13500 - 1800
    assert sum(w.earned for w in weeks[:-1]) == 0


def test_earnings_fall_in_the_day_and_week_they_were_made(seller, customer):
    forty_days_ago = timezone.now() - timedelta(days=40)
    with time_machine.travel(forty_days_ago, tick=False):
        CommissionRuleFactory(percentage_bps=1000)
        paid_order([(seller, 10000, 1)], customer=customer)

    days = earnings_series(seller=seller, currency="USD", days=30).daily
    weeks = earnings_series(seller=seller, currency="USD", weeks=52).weekly

    assert sum(d.earned for d in days) == 0  # older than the 30 days
    week_of = timezone.localdate(forty_days_ago)
    week_of -= timedelta(days=week_of.weekday())
    assert {w.start: w.earned for w in weeks if w.earned} == {week_of: 9000}


def test_a_refund_after_the_hold_counts_against_earnings_too(seller, customer):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 10000, 1)], customer=customer)
    seller_order_hold_release(seller_order=order.seller_orders.get())
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=10000))

    assert sum(d.earned for d in earnings_series(seller=seller, currency="USD").daily) == 0
    assert sum(w.earned for w in earnings_series(seller=seller, currency="USD").weekly) == 0


def test_the_terms_are_the_sellers_own_rule_else_the_default(seller):
    default = CommissionRuleFactory(percentage_bps=1000)
    assert commission_terms_for(seller=seller, currency="USD") == default
    own = CommissionRuleFactory(scope="seller", seller=seller, percentage_bps=700)
    assert commission_terms_for(seller=seller, currency="USD") == own


def test_the_dashboard_shows_balances_this_month_and_the_chart(seller_client, month_of_trading):
    page = seller_client.get(reverse("marketplace:seller_dashboard")).text

    assert "$45.00" in page  # pending: the 50.00 sale's share
    assert "$72.00 this month" in page  # the first order's share, less its refund, paid
    assert "Earned in the last 30 days: $117.00" in page
    assert "Earned in the last 52 weeks: $117.00" in page
    assert page.count("<svg") == 2 and "Commission on your sales: 10% per line" in page


def test_the_dashboard_runs_the_same_queries_with_more_history(
    seller_client, seller, count_queries
):
    CommissionRuleFactory(percentage_bps=1000)
    url = reverse("marketplace:seller_dashboard")

    def measure(orders):
        for _ in range(orders):
            paid_order([(seller, 1000, 1)])
        seller_client.get(url)
        return count_queries(lambda: seller_client.get(url))

    assert measure(10) == measure(200)


def test_customers_do_not_get_a_dashboard(client, customer):
    client.force_login(customer)
    assert client.get(reverse("marketplace:seller_dashboard")).status_code in (302, 403)


def test_a_loss_is_drawn_below_the_zero_axis_scaled_by_its_size():
    from datetime import date

    from marketplace.views.seller_dashboard import PLOT_HEIGHT, PLOT_TOP, _chart
    from payments.reporting.earnings import PeriodEarnings

    chart = _chart(
        [
            PeriodEarnings(date(2026, 1, 1), 3000),
            PeriodEarnings(date(2026, 1, 2), -1000),
            PeriodEarnings(date(2026, 1, 3), 0),
        ],
        "USD",
    )

    gain, loss, nothing = chart["bars"]
    assert chart["zero_y"] == PLOT_TOP + PLOT_HEIGHT * 3 / 4  # 30.00 above, 10.00 below
    assert (gain["y"], gain["height"]) == (PLOT_TOP, PLOT_HEIGHT * 3 / 4)
    assert (loss["y"], loss["height"], loss["negative"]) == (chart["zero_y"], 35, True)
    assert loss["y"] + loss["height"] == PLOT_TOP + PLOT_HEIGHT  # inside the plot
    assert nothing["height"] == 0 and not nothing["label"]
    # The vertical axis: the largest gain, zero, the largest loss.
    assert [text for _, text in chart["y_ticks"]] == ["$30.00", "$0.00", "-$10.00"]
    # Few bars: each says its value, above a gain and below a loss.
    assert (gain["label"], loss["label"]) == ("$30.00", "-$10.00")
    assert gain["label_y"] < gain["y"] and loss["label_y"] > loss["y"] + loss["height"]
    assert not chart["empty"]


def test_a_chart_with_one_day_of_history_keeps_its_axes_and_labels():
    from datetime import date, timedelta

    from marketplace.views.seller_dashboard import PLOT_TOP, _chart
    from payments.reporting.earnings import PeriodEarnings

    start = date(2026, 1, 1)
    days = [PeriodEarnings(start + timedelta(days=i), 0) for i in range(29)]
    days.append(PeriodEarnings(start + timedelta(days=29), 11700))

    chart = _chart(days, "USD")

    assert [text for _, text in chart["y_ticks"]] == ["$120.00", "$0.00"]
    assert chart["x_labels"][0] == (chart["bars"][-1]["label_x"], "30 Jan")  # today named
    assert len(chart["x_labels"]) == 6  # about a week apart
    today = chart["bars"][-1]
    assert today["label"] == "$117.00" and today["y"] > PLOT_TOP  # room to the top tick
    assert chart["rows"] == [("Fri 30 Jan 2026", "$117.00")]


def test_a_chart_with_no_history_keeps_its_axes_and_says_so():
    from datetime import date, timedelta

    from marketplace.views.seller_dashboard import PLOT_HEIGHT, PLOT_TOP, _chart
    from payments.reporting.earnings import PeriodEarnings

    days = [PeriodEarnings(date(2026, 1, 1) + timedelta(days=i), 0) for i in range(30)]

    chart = _chart(days, "USD")

    assert chart["empty"] and chart["rows"] == []
    assert chart["y_ticks"] == [(PLOT_TOP + PLOT_HEIGHT, "$0.00")]
    assert len(chart["x_labels"]) == 6


def test_many_bars_label_only_the_highest_and_the_lowest():
    from datetime import date, timedelta

    from marketplace.views.seller_dashboard import _chart
    from payments.reporting.earnings import PeriodEarnings

    values = [100 * (i % 7) - 150 for i in range(30)]
    days = [PeriodEarnings(date(2026, 1, 1) + timedelta(days=i), v) for i, v in enumerate(values)]

    labels = [bar["label"] for bar in _chart(days, "USD")["bars"] if bar["label"]]

    assert labels == ["-$1.50", "$4.50"]


def test_the_chart_formats_each_figure_and_date_once_for_the_template():
    from datetime import date

    from django.utils import translation

    from marketplace.views.seller_dashboard import _chart
    from payments.reporting.earnings import PeriodEarnings

    weeks = [
        PeriodEarnings(date(2026, 1, 5), 150000),
        PeriodEarnings(date(2026, 1, 12), 0),
        PeriodEarnings(date(2026, 1, 19), -2500),
    ]
    chart = _chart(weeks, "JPY", "week")

    assert [bar["title"] for bar in chart["bars"]] == [
        "Week of 5 Jan: ¥150,000",
        "Week of 12 Jan: ¥0",
        "Week of 19 Jan: -¥2,500",
    ]
    assert chart["rows"] == [("Mon 5 Jan 2026", "¥150,000"), ("Mon 19 Jan 2026", "-¥2,500")]
    assert (chart["total_shown"], chart["top_shown"], chart["since"]) == (
        "¥147,500",
        "¥150,000",
        "5 Jan 2026",
    )
    days = _chart([PeriodEarnings(date(2026, 1, 5), -1)], "KWD", "day")
    assert days["bars"][0]["title"] == "5 Jan: -KWD0.001"
    with translation.override("fr"):  # dates and amounts in the active language
        assert _chart(weeks, "EUR", "day")["rows"][0] == ("lun 5 Jan 2026", "1\u202f500,00\xa0€")


def test_the_chart_coordinates_are_not_localized(seller_client, month_of_trading, settings):
    from marketplace.views.seller_dashboard import CHART_HEIGHT, CHART_WIDTH

    settings.USE_THOUSAND_SEPARATOR = True
    page = seller_client.get(reverse("marketplace:seller_dashboard")).text

    assert f'viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}"' in page
    assert 'width="8.1"' in page and 'width="8,1"' not in page  # a week's bar


def test_one_query_reads_the_balances_and_what_was_paid_since(
    month_of_trading, django_assert_num_queries
):
    from payments.ledger.balances import seller_balance, seller_balances
    from payments.reporting.earnings import paid_out_since
    from payments.reporting.periods import day_start

    month_start = day_start(timezone.localdate().replace(day=1))
    with django_assert_num_queries(1):
        balances = seller_balances(seller=month_of_trading, paid_since=month_start)
    with django_assert_num_queries(1):
        usd = seller_balance(seller=month_of_trading, currency="USD")

    assert set(balances) == {"USD"}
    balance, paid_this_month = balances["USD"]
    assert balance == usd and usd.paid_out == 7200
    assert paid_this_month == 7200
    assert paid_this_month == paid_out_since(
        seller=month_of_trading, currency="USD", since=month_start
    )
    tomorrow = timezone.now() + timedelta(days=1)
    assert seller_balances(seller=month_of_trading, paid_since=tomorrow)["USD"][1] == 0
    assert seller_balance(seller=month_of_trading, currency="EUR").total_owed == 0


def test_the_debt_is_explained_with_the_payout_it_came_after(run, seller):
    history = refund_after_payout(run, seller)

    debt = seller_debt(seller=seller, currency="USD", available=-3150)

    assert debt.amount == 3150
    assert debt.text == (
        f"You owe $31.50 from a refund after payout #{history.payout.pk}; it will be taken"
        " from your next sales before anything is paid out."
    )
    assert seller_debt(seller=seller, currency="USD", available=0) is None


def test_the_estimate_counts_pending_money_released_before_the_next_payout(run, seller):
    refund_after_payout(run, seller)

    soon = next_payout_estimate(
        seller=seller, currency="USD", available=-3150, now=BEFORE_ITS_RELEASE_DAY
    )
    early = next_payout_estimate(seller=seller, currency="USD", available=-3150, now=WELL_BEFORE)

    assert (str(soon.day), soon.releasing, soon.amount) == ("2026-03-18", 6075, 6075 - 3150)
    assert soon.explanation == "$60.75 pending becomes available by then, less the $31.50 you owe"
    assert (str(early.day), early.releasing, early.amount) == ("2026-03-14", 0, 0)
    assert early.explanation == (
        "the $60.75 pending is still in its hold then, less the $31.50 you owe"
    )


def test_a_weekly_schedule_pays_what_is_released_by_its_day(run, seller):
    refund_after_payout(run, seller)
    PayoutPolicy.objects.create(seller=seller, schedule="weekly", weekday=4)  # Fridays

    found = next_payout_estimate(seller=seller, currency="USD", available=-3150, now=WELL_BEFORE)

    assert (str(found.day), found.amount) == ("2026-03-20", 2925)


def test_the_estimate_takes_off_the_rolling_reserve_and_says_a_manual_schedule(run, seller):
    refund_after_payout(run, seller)
    policy = PayoutPolicy.objects.create(seller=seller, reserve_bps=1000, reserve_days=30)

    found = next_payout_estimate(
        seller=seller, currency="USD", available=-3150, now=BEFORE_ITS_RELEASE_DAY
    )
    assert found.reserve == 923  # 10 % of the $92.25 released in the window: both sales
    assert found.amount == 6075 - 3150 - found.reserve
    policy.schedule = "manual"
    policy.save()
    manual = next_payout_estimate(
        seller=seller, currency="USD", available=-3150, now=BEFORE_ITS_RELEASE_DAY
    )
    assert (manual.day, manual.amount) == (None, 0)
    assert manual.no_payout_day == "paid when the team makes a payout for you"


def test_the_dashboard_says_what_is_owed_and_what_the_next_payout_pays(run, seller, seller_client):
    history = refund_after_payout(run, seller)

    with time_machine.travel(BEFORE_ITS_RELEASE_DAY, tick=False):
        page = seller_client.get(reverse("marketplace:seller_dashboard")).content.decode()
        payouts = seller_client.get(reverse("marketplace:seller_payouts")).content.decode()

    owed = f"You owe $31.50 from a refund after payout #{history.payout.pk}"
    for text in (page, payouts):
        assert owed in text and "-$31.50" in text and "$60.75" in text
        assert "Wednesday 18 March</strong>" in text
        assert "$60.75 pending becomes available by then, less the $31.50 you owe" in text
    assert "about <strong>$29.25</strong>" in page


def test_the_dashboard_runs_the_same_queries_with_a_debt_and_more_history(
    run, seller, seller_client, count_queries
):
    refund_after_payout(run, seller)
    url = reverse("marketplace:seller_dashboard")

    def measure(orders):
        for _ in range(orders):
            paid_order([(seller, 1000, 1)])
        seller_client.get(url)
        return count_queries(lambda: seller_client.get(url))

    assert measure(5) == measure(40)
