"""Each payout in four figures (gross, fees, refunds, net) from its breakdown, adding up to
its amount exactly; the payout pages show them with the bank account and arrival date."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import Payout, PayoutPolicy
from payments.payouts.breakdown import payout_bank_last4, payout_figures
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory
from tests.marketplace.seller_scenarios import refund_after_payout
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


def adds_up(figures):
    return figures.gross - figures.fees - figures.refunds + figures.other == figures.net


def test_a_payout_of_sales_with_fees_and_a_partial_refund_adds_up(run, seller, settings):
    settings.PAYMENTS_PROCESSOR_FEE_PAYER = "sellers"
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    first = paid_order([(seller, 10000, 1), (seller, 2500, 2)], fee=330)
    second = paid_order([(seller, 4000, 1)])
    refund_mark_succeeded(refund=refund_create(order=first, amount_minor=2000))  # before release
    for order in (first, second):
        seller_order_hold_release(seller_order=order.seller_orders.get())
    run(run_payouts)
    payout = Payout.objects.get()

    figures = payout_figures(payouts=[payout])[payout.pk]

    assert figures.gross == 10000 + 5000 + 4000
    assert figures.fees == 1900 + 330  # 10 % commission, the processor's fee
    assert figures.refunds == 1800  # the seller's part of the 20.00 refund
    assert figures.other == 0
    assert figures.gross - figures.fees - figures.refunds == figures.net == payout.amount_minor


def test_a_refund_after_a_payout_is_in_the_next_payouts_refunds(run, seller):
    history = refund_after_payout(run, seller)
    with time_machine.travel(datetime(2026, 3, 19, 6, 0, tzinfo=UTC), tick=False):
        run(run_payouts)
    later = seller.payouts.exclude(pk=history.payout.pk).get()

    found = payout_figures(payouts=[history.payout, later])

    first, second = found[history.payout.pk], found[later.pk]
    assert (first.gross, first.fees, first.refunds, first.net) == (3500, 350, 0, 3150)
    assert (second.gross, second.fees, second.refunds, second.net) == (6750, 675, 3150, 2925)
    assert first.other == second.other == 0
    assert all(f.gross - f.fees - f.refunds == f.net for f in found.values())
    assert later.amount_minor == second.net


def test_a_reserve_kept_back_and_released_later_is_other(run, seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    PayoutPolicy.objects.create(seller=seller, reserve_bps=1000, reserve_days=30)
    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    run(run_payouts)
    run(run_payouts, now=datetime.now(UTC) + timedelta(days=31))
    first, second = Payout.objects.order_by("pk")

    found = payout_figures(payouts=[first, second])

    one, two = found[first.pk], found[second.pk]
    assert (one.gross, one.other, one.net) == (10000, -900, 8100)  # 10 % kept back
    assert (two.gross, two.other, two.net) == (0, 900, 900)  # then released
    assert all(adds_up(f) for f in found.values())


def test_the_bank_account_is_the_processors_else_the_profiles_for_a_manual_payout(seller):
    seller.bank_account_number = "GB00 1234 5678 4321"
    processor = Payout(seller=seller, method="processor", bank_last4="6789")
    manual = Payout(seller=seller, method="manual")
    unknown = Payout(seller=seller, method="processor")

    assert payout_bank_last4(processor, seller) == "6789"
    assert payout_bank_last4(manual, seller) == "4321"
    assert payout_bank_last4(unknown, seller) == ""


def test_the_pages_show_the_figures_the_bank_account_and_the_arrival(run, seller, seller_client):
    history = refund_after_payout(run, seller)
    payout = history.payout
    Payout.objects.filter(pk=payout.pk).update(bank_last4="6789", arrival_on="2026-03-12")
    open_one = Payout.objects.create(
        seller=seller, currency="USD", amount_minor=500, period="later", status="scheduled"
    )

    listing = seller_client.get(reverse("marketplace:seller_payouts")).content.decode()
    detail = seller_client.get(
        reverse("marketplace:seller_payout_detail", args=[payout.pk])
    ).content.decode()
    waiting = seller_client.get(
        reverse("marketplace:seller_payout_detail", args=[open_one.pk])
    ).content.decode()

    for page in (listing, detail):
        assert "$35.00" in page and "−$3.50" in page and "$31.50" in page  # gross, fees, net
        assert "6789" in page and "12 Mar 2026" in page
    assert "Gross" in listing and "Arrives" in listing
    assert "pending" in waiting and "Bank account</dt><dd>—" in waiting


def test_the_payouts_page_runs_the_same_queries_with_more_payouts(
    run, seller, seller_client, count_queries
):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    url = reverse("marketplace:seller_payouts")
    day = [0]

    def measure(payouts):
        for _ in range(payouts):
            day[0] += 1
            order = paid_order([(seller, 1000, 1), (seller, 700, 2)])
            refund_mark_succeeded(refund=refund_create(order=order, amount_minor=300))
            seller_order_hold_release(seller_order=order.seller_orders.get())
            run(run_payouts, now=datetime.now(UTC) + timedelta(days=day[0]))
        seller_client.get(url)
        return count_queries(lambda: seller_client.get(url))

    assert measure(3) == measure(12)
    assert seller.payouts.count() == 15


def test_the_payout_page_runs_the_same_queries_with_more_entries(
    run, seller, seller_client, count_queries
):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)

    def measure(sales, when):
        for _ in range(sales):
            order = paid_order([(seller, 1000, 1), (seller, 700, 2)])
            seller_order_hold_release(seller_order=order.seller_orders.get())
        run(run_payouts, now=when)
        url = reverse("marketplace:seller_payout_detail", args=[seller.payouts.latest("pk").pk])
        seller_client.get(url)
        return count_queries(lambda: seller_client.get(url))

    now = datetime.now(UTC)
    assert measure(2, now) == measure(20, now + timedelta(days=1))
