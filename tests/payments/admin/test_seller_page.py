"""The seller's page in the operator console: balances, the payout policy in effect,
recent payouts, disputes and ledger entries, all in money, and the seller's history,
in a number of queries that does not grow with the seller's activity."""

import pytest
from django.urls import reverse

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.ledger.audit import audit_record
from payments.models import Dispute, DisputeLine, Payout, PayoutPolicy
from tests.factories import SellerFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


def _page(client, seller):
    response = client.get(reverse("admin:accounts_seller_change", args=[seller.pk]))
    assert response.status_code == 200
    return response.text


def test_the_page_shows_balances_reserve_and_a_debt_in_money(operator_client, month_of_trading):
    seller = month_of_trading  # 72.00 paid out, 45.00 pending
    PayoutPolicy.objects.create(seller=seller, reserve_bps=1000, reserve_days=90)
    first = seller.seller_orders.order_by("pk").first().order
    refund_mark_succeeded(refund=refund_create(order=first, amount_minor=1000))  # after payout

    page = _page(operator_client, seller)

    row = page[page.index('<th scope="row">USD</th>') :].split("</tr>")[0]
    cells = [cell.split("</td>")[0] for cell in row.split("<td>")[1:]]
    # available (none: they owe), pending, in transit, reserve (10% of 72.00 released), debt
    assert cells == ["$0.00", "$45.00", "$0.00", "$7.20", "$9.00"]
    assert "7200" not in page and "4500" not in page


def test_the_page_shows_the_policy_in_words_and_links_it(operator_client, seller):
    policy = PayoutPolicy.objects.create(
        seller=seller,
        schedule="weekly",
        weekday=0,
        hold_days=7,
        reserve_bps=1000,
        reserve_days=90,
        minimums={"USD": 2500},
    )

    page = _page(operator_client, seller)

    assert "weekly on Mondays, 7-day hold, 10% reserve for 90 days, minimum $25.00" in page
    assert reverse("admin:payments_payoutpolicy_change", args=[policy.pk]) in page
    assert "Own payout policy" in page


def test_a_seller_without_a_policy_follows_the_default(operator_client, seller):
    page = _page(operator_client, seller)

    assert "Platform default</a> (no own payout policy)" in page
    assert "daily, 7-day hold, no reserve, no minimum" in page


def test_the_page_lists_payouts_disputes_and_ledger_entries_linked(operator_client, seller):
    order = paid_order([(seller, 10000, 1)])
    payout = Payout.objects.create(
        seller=seller, currency="USD", amount_minor=12345, period="2026-11-01", status="held"
    )
    dispute = Dispute.objects.create(
        order=order,
        processor="local",
        processor_dispute_id="dp_1",
        amount_minor=10000,
        currency="USD",
    )
    DisputeLine.objects.create(
        dispute=dispute,
        order_line=order.lines.get(),
        amount_minor=10000,
        seller_amount_minor=9000,
        commission_amount_minor=1000,
    )

    page = _page(operator_client, seller)

    assert reverse("admin:payments_payout_change", args=[payout.pk]) in page
    assert "$123.45" in page and "Held by an operator" in page
    assert reverse("admin:payments_dispute_change", args=[dispute.pk]) in page
    assert "$90.00" in page  # the seller's part of the dispute
    sale = order.seller_orders.get().seller_share_minor
    txn = seller.ledger_accounts.get(kind="pending").entries.get().transaction_id
    assert reverse("admin:payments_ledgertransaction_change", args=[txn]) in page
    assert f"${sale / 100:.2f}" in page


def test_the_page_shows_the_sellers_history(operator_client, operator, seller):
    audit_record(target=seller, action="freeze", by=operator, reason="Chargebacks", via="admin")

    page = _page(operator_client, seller)

    assert "Chargebacks" in page and "operator@example.com" in page


def _busy(seller, operator, size, history=3):
    """``size`` sales in each of three currencies, ``size`` payouts and ``size``
    disputes, and ``history`` records in the seller's history."""
    orders = []
    for currency in ("USD", "EUR", "JPY"):
        seller.default_currency = currency
        for _ in range(size):
            orders.append(paid_order([(seller, 5000, 1)]))
    for n in range(size):
        Payout.objects.create(
            seller=seller, currency="USD", amount_minor=100 + n, period=f"p{n}", status="paid"
        )
    for n in range(history):
        audit_record(target=seller, action="note", by=operator, reason=f"note {n}")
    for n, order in enumerate(orders[:size]):
        dispute = Dispute.objects.create(
            order=order,
            processor="local",
            processor_dispute_id=f"dp_{seller.pk}_{n}",
            amount_minor=5000,
            currency=order.currency,
        )
        DisputeLine.objects.create(
            dispute=dispute,
            order_line=order.lines.get(),
            amount_minor=5000,
            seller_amount_minor=4500,
            commission_amount_minor=500,
        )
    seller.default_currency = "USD"
    seller.save()
    PayoutPolicy.objects.create(seller=seller, reserve_bps=500, minimums={"USD": 100})
    return seller


def test_the_page_runs_the_same_queries_however_busy_the_seller_is(
    operator_client, operator, count_queries
):
    quiet = _busy(SellerFactory(), operator, 1)
    busy = _busy(SellerFactory(), operator, 25)  # 75 sales in 3 currencies, 25 payouts
    _page(operator_client, quiet)  # warm caches (content types)

    few = count_queries(lambda: _page(operator_client, quiet))
    many = count_queries(lambda: _page(operator_client, busy))

    assert few == many == 14


def test_the_history_costs_the_same_queries_however_long_it_is(
    operator_client, operator, count_queries
):
    short = _busy(SellerFactory(), operator, 1, history=1)
    long = _busy(SellerFactory(), operator, 1, history=25)
    _page(operator_client, short)

    assert count_queries(lambda: _page(operator_client, short)) == count_queries(
        lambda: _page(operator_client, long)
    )


def test_where_a_sellers_money_goes_cannot_be_typed_in_the_admin(operator_client, seller):
    seller.payout_account_id, seller.bank_account_number = "acct_local_1", "GB33BUKB2020"
    seller.save()
    url = reverse("admin:accounts_seller_change", args=[seller.pk])
    page = operator_client.get(url)
    form = page.context["adminform"].form

    for name in ("payout_account_id", "payout_status", "bank_account_number"):
        assert name not in form.fields, name
    operator_client.post(
        url,
        {
            "user": seller.user_id,
            "display_name": seller.display_name,
            "slug": seller.slug,
            "country": seller.country,
            "default_currency": seller.default_currency,
            "payout_account_id": "acct_attacker",
            "bank_account_number": "XX00ATTACKER",
        },
    )
    seller.refresh_from_db()
    assert (seller.payout_account_id, seller.bank_account_number) == (
        "acct_local_1",
        "GB33BUKB2020",
    )
