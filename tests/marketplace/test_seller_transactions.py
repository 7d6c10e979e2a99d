"""A seller's transactions page: their ledger as a readable, filterable history."""

import pytest
from django.urls import reverse

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import Payout
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.reporting.seller_history import history_rows, seller_transactions
from tests.factories import CommissionRuleFactory
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
