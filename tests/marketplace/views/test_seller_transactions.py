"""A seller's transactions page: their ledger as a readable, filterable history."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import LedgerAccount, Payout
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.reporting.seller_history import history_rows, running_balances, seller_transactions
from tests.factories import CommissionRuleFactory
from tests.marketplace.seller_scenarios import ledger_rows, page_rows, refund_after_payout
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(run, seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 10000, 1), (other_seller, 5000, 1)])
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=2000))
    seller_order_hold_release(seller_order=order.seller_orders.get(seller=seller))
    run(run_payouts)
    return order


URL = "marketplace:seller_transactions"


def account_balance(seller, kind):
    account = LedgerAccount.objects.get(seller=seller, kind=kind, currency="USD")
    return -account.balance_minor


def make_history(run, seller, orders, start):
    """``orders`` sales a day apart, each released, with a payout run every fifth day."""
    for i in range(orders):
        with time_machine.travel(start + timedelta(days=i), tick=False):
            order = paid_order([(seller, 1000 + i, 1), (seller, 500, 2)])
            seller_order_hold_release(seller_order=order.seller_orders.get())
            if i % 5 == 4:
                run(run_payouts)


def test_each_transaction_says_what_it_did_to_the_balance(history, seller):
    rows = history_rows(list(seller_transactions(seller=seller, currency="USD")))

    by_label = {row.label: row for row in rows}
    assert by_label["Sale"].change == 9000
    assert by_label["Sale"].order_id == history.pk
    assert by_label["Refund"].change == -1200  # the seller's part of 20.00 over two lines
    assert by_label["Refund"].order_id == history.pk
    assert by_label["Earnings available"].change == 0
    assert by_label["Earnings available"].moved == 7800
    assert by_label["Payout paid"].change == -7800
    assert by_label["Payout paid"].payout_id == Payout.objects.get().pk
    assert sum(row.change for row in rows) == 0  # everything earned has been paid out


def test_the_page_filters_by_kind_and_links_payouts(seller_client, history):
    url = reverse("marketplace:seller_transactions")

    everything = seller_client.get(url).text
    refunds = seller_client.get(url, {"kind": "refund", "currency": "USD"}).text
    bad = seller_client.get(url, {"start": "soon"})

    assert "Payout #" in everything and f"Order #{history.pk}" in everything
    assert "Refund" in refunds and "Payout #" not in refunds
    assert bad.status_code == 400


def test_another_sellers_transactions_are_not_listed(client, history, other_seller):
    client.force_login(other_seller.user)
    page = client.get(reverse("marketplace:seller_transactions")).text
    assert "Payout #" not in page  # only Acme was paid


def test_the_page_runs_the_same_queries_with_more_history(seller_client, seller, count_queries):
    CommissionRuleFactory(percentage_bps=1000)
    url = reverse("marketplace:seller_transactions")

    def measure(orders):
        for _ in range(orders):
            order = paid_order([(seller, 1000, 1), (seller, 500, 1)])
            seller_order_hold_release(seller_order=order.seller_orders.get())
        seller_client.get(url)
        return count_queries(lambda: seller_client.get(url))

    assert measure(10) == measure(40)


def test_a_sale_links_its_order_and_says_which_payout_paid_it(seller_client, history, seller):
    seller_order = history.seller_orders.get(seller=seller)
    payout = Payout.objects.get()

    page = seller_client.get(reverse("marketplace:seller_transactions")).text

    detail = reverse("marketplace:seller_order_detail", args=[seller_order.pk])
    assert f'<a href="{detail}">Order #{history.pk}</a>' in page
    assert f"Paid in payout #{payout.pk} on " in page


def test_after_a_refund_after_a_payout_each_row_shows_the_true_balances(run, seller, seller_client):
    history = refund_after_payout(run, seller)

    response = seller_client.get(reverse(URL))

    rows = [row for row, _ in response.context["rows"]]
    assert [row.label for row in rows] == [
        "Refund",
        "Sale",
        f"Payout #{history.payout.pk} paid to your bank",
        "Earnings available",
        "Sale",
    ]
    assert page_rows(response) == list(reversed(ledger_rows(seller)))
    newest = rows[0]
    assert (newest.pending_after, newest.available_after) == (6075, -3150)
    assert newest.pending_after == account_balance(seller, "pending")
    assert newest.available_after == account_balance(seller, "available")
    payout = rows[2]  # sent and paid: one row, its net effect
    assert (payout.available, payout.in_transit, payout.change) == (-3150, 0, -3150)
    assert len(payout.transactions) == 2
    html = response.content.decode()
    assert html.count(f"Payout #{history.payout.pk} paid to your bank") == 1
    assert "-$31.50" in html and "$60.75" in html


def test_a_payout_on_its_way_is_one_row_holding_its_amount_in_transit(seller):
    from payments.ledger.posting import seller_account
    from payments.payouts.planning import PlannedPayout, payout_create
    from payments.payouts.sending import payout_send

    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    order = paid_order([(seller, 1000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    available = seller_account(seller, LedgerAccount.Kind.AVAILABLE, "USD")
    plan = PlannedPayout(seller, "USD", 10**9, "p-1", "scheduled")
    payout = payout_send(payout=payout_create(plan, account=available, run=None, by=None))

    rows = running_balances(seller=seller, currency="USD")[0:50]

    top = rows[0]
    assert top.payout_id == payout.pk
    assert top.label in (
        f"Payout #{payout.pk} on its way to your bank",
        f"Payout #{payout.pk} paid to your bank",
    )
    assert top.available_after == account_balance(seller, "available") == 0


def test_the_balances_are_right_on_the_second_page_and_under_a_filter(run, seller, seller_client):
    start = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    CommissionRuleFactory(percentage_bps=1000, active_from=start - timedelta(days=1))
    enable_payouts(seller)
    make_history(run, seller, 30, start)  # 60 sales and releases, 6 payouts
    expected = list(reversed(ledger_rows(seller)))
    assert len(expected) == 66

    first = seller_client.get(reverse(URL))
    second = seller_client.get(reverse(URL), {"page": 2})
    sales = seller_client.get(reverse(URL), {"kind": "payment_captured", "page": 1})
    payouts = seller_client.get(reverse(URL), {"kind": "payout_paid"})

    assert page_rows(first) == expected[:50]
    assert page_rows(second) == expected[50:]
    balances = dict((key, rest) for key, *rest in [(k, p, a) for k, p, a in expected])
    assert all(balances[key] == [p, a] for key, p, a in page_rows(sales))
    assert len(page_rows(sales)) == 30
    assert [key[0] for key, _, _ in page_rows(payouts)] == ["payout"] * 6
    assert all(balances[key] == [p, a] for key, p, a in page_rows(payouts))


def test_a_date_range_counts_the_rows_before_it_in_the_balances(run, seller):
    from payments.reporting.periods import days_between

    start = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    CommissionRuleFactory(percentage_bps=1000, active_from=start - timedelta(days=1))
    enable_payouts(seller)
    make_history(run, seller, 10, start)
    since, until = days_between(start.date() + timedelta(days=3), start.date() + timedelta(days=5))

    shown = running_balances(seller=seller, currency="USD", since=since, until=until)[0:50]

    expected = {key: (p, a) for key, p, a in ledger_rows(seller)}
    assert shown and all(
        expected[("payout", r.payout_id) if r.payout_id else ("txn", r.transactions[0].pk)]
        == (r.pending_after, r.available_after)
        for r in shown
    )
    assert all(since <= row.at < until for row in shown)


def test_the_page_runs_the_same_queries_with_more_history_and_payouts(
    run, seller, seller_client, count_queries
):
    start = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    CommissionRuleFactory(percentage_bps=1000, active_from=start - timedelta(days=1))
    enable_payouts(seller)
    url = reverse(URL)

    def measure(orders, page=1):
        make_history(run, seller, orders, start + timedelta(days=seller.payouts.count() * 5))
        seller_client.get(url, {"page": page})
        return count_queries(lambda: seller_client.get(url, {"page": page}))

    assert measure(10) == measure(30) == measure(0, page=2)
