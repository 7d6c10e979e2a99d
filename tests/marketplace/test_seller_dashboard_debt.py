"""The dashboard explains a debt in words and estimates the next payout from what will be
available by its day: pending money whose hold ends before it, less the debt."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from payments.models import PayoutPolicy
from payments.reporting.earnings import seller_debt
from payments.reporting.earnings_schedule import next_payout_estimate
from tests.marketplace.seller_scenarios import refund_after_payout
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db

# The second sale ($60.75 to the seller) leaves its hold on Wed 18 Mar at 03:00.
BEFORE_ITS_RELEASE_DAY = datetime(2026, 3, 17, 12, 0, tzinfo=UTC)  # next run: 18 Mar 06:00
WELL_BEFORE = datetime(2026, 3, 13, 12, 0, tzinfo=UTC)  # next run: 14 Mar 06:00


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
