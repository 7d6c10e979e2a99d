"""The order's admin page: money as money, each seller's part with everything that
touched it linked, a constant number of queries; the ledger search finds all of an
order's transactions; the refund requests list."""

import re

import pytest
from django.urls import reverse

from marketplace.services.orders import CartItem, place_order
from payments.collection.disputes import dispute_opened
from payments.collection.refund_requests import refund_request_create
from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import LedgerTransaction
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory, ProductFactory, UserFactory
from tests.money_helpers import enable_payouts, pay_by_card

pytestmark = pytest.mark.django_db


def _order(run, customer, sellers, lines_each=1, price=2500):
    products = [
        ProductFactory(seller=seller, title=f"{seller.display_name} item {n}", price_minor=price)
        for seller in sellers
        for n in range(lines_each)
    ]
    placed = place_order(customer=customer, cart_items=[CartItem(p.pk, 1) for p in products])
    return pay_by_card(run, placed)


@pytest.fixture
def busy_order(run, customer, seller, other_seller):
    """Acme's part refunded in part after it was paid out; Rival's part disputed."""
    CommissionRuleFactory(percentage_bps=1000, fixed_fee_minor=30, currency="USD")
    enable_payouts(seller)
    order = _order(run, customer, [seller, other_seller], lines_each=2, price=3549)
    seller_order_hold_release(seller_order=order.seller_orders.get(seller=seller))
    run(run_payouts)
    line = order.lines.filter(seller_order__seller=seller).first()
    run(refund_mark_succeeded, refund=refund_create(order=order, order_line=line, amount_minor=500))
    return order


def _page(client, order):
    return client.get(reverse("admin:marketplace_order_change", args=[order.pk]))


def test_the_order_page_shows_money_as_money_and_no_minor_unit(operator_client, busy_order):
    page = _page(operator_client, busy_order)

    assert page.status_code == 200
    html = page.content.decode()
    text = re.sub(r"\s+", " ", html)
    assert "_minor" not in html and "_bps" not in html
    busy_order.refresh_from_db()
    for raw in (busy_order.total_minor, busy_order.commission_minor, 3549, 500):
        assert not re.search(rf">\s*{raw}\s*<", html), raw
    assert '<div class="readonly">$141.96</div>' in html  # the total
    assert '<div class="readonly">$5.00</div>' in html  # refunded
    # Each line: its commission rule in words, linked to the rule.
    assert re.search(
        r'<a href="/admin/payments/commissionrule/\d+/change/">10% \+ \$0\.30</a>', html
    )
    assert '<th scope="row">Sold</th><td>$70.98</td>' in text
    assert "Acme · seller order" in text and "Rival · seller order" in text


def test_each_seller_part_links_its_refunds_payouts_disputes_and_transactions(
    run, operator_client, busy_order, other_seller
):
    attempt = busy_order.payment_attempts.get(status="succeeded")
    run(
        dispute_opened,
        processor_name="local",
        processor_dispute_id="dp_9",
        payment_id=attempt.processor_payment_id,
        amount_minor=1000,
    )
    refund = busy_order.refunds.get()
    payout = busy_order.seller_orders.get(seller__slug="acme").seller.payouts.get()
    dispute = busy_order.disputes.get()

    page = _page(operator_client, busy_order)

    html = page.content.decode()
    assert reverse("admin:payments_refund_change", args=[refund.pk]) in html
    assert reverse("admin:payments_payout_change", args=[payout.pk]) in html
    assert reverse("admin:payments_dispute_change", args=[dispute.pk]) in html
    acme, rival = page.context["seller_parts"]
    assert list(acme.refunds) == [refund.pk] and not rival.refunds
    assert list(acme.payouts) == [payout.pk] and not rival.payouts
    assert list(rival.disputes) == [dispute.pk]
    kinds = {txn.kind for txn in acme.transactions.values()}
    assert {"payment_captured", "hold_released", "refund", "payout_sent"} <= kinds
    for txn in acme.transactions.values():
        assert reverse("admin:payments_ledgertransaction_change", args=[txn.pk]) in html
    assert "dispute_opened" in {txn.kind for txn in rival.transactions.values()}


def test_the_order_page_runs_the_same_queries_for_one_line_or_many(
    run, operator_client, count_queries, seller, other_seller
):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)

    def build(lines_each):
        order = _order(run, UserFactory(), [seller, other_seller], lines_each=lines_each)
        seller_order_hold_release(seller_order=order.seller_orders.get(seller=seller))
        return order

    small, large = build(1), build(6)
    run(run_payouts, sellers=[seller])  # one payout pays both
    for line in [*small.lines.all(), *large.lines.all()]:
        refund = refund_create(order=line.order, order_line=line, amount_minor=100)
        run(refund_mark_succeeded, refund=refund)
    _page(operator_client, small)  # warm caches (content types, sessions)

    queries_small = count_queries(lambda: _page(operator_client, small))
    queries_large = count_queries(lambda: _page(operator_client, large))

    assert large.lines.count() == 12
    assert queries_small == queries_large
    assert queries_small <= 30, queries_small


def test_the_ledger_search_for_an_order_finds_all_its_transactions(
    run, operator_client, busy_order, customer, seller
):
    other = _order(run, customer, [seller])
    url = reverse("admin:payments_ledgertransaction_changelist")
    acme_payout = seller.payouts.get()

    found = set(operator_client.get(url, {"q": f"order {busy_order.pk}"}).context["cl"].queryset)

    kinds = {txn.kind for txn in found}
    assert {
        "payment_captured",
        "processor_fee",
        "hold_released",
        "refund",
        "payout_sent",
    } <= kinds, kinds
    assert LedgerTransaction.objects.get(idempotency_key=f"payment:{busy_order.pk}") in found
    assert LedgerTransaction.objects.get(idempotency_key=f"payment:{other.pk}") not in found
    payout_txns = LedgerTransaction.objects.filter(
        reference_type="payout", reference_id=str(acme_payout.pk)
    )
    assert payout_txns and set(payout_txns) <= found
    same = operator_client.get(url, {"q": f"#{busy_order.pk}"}).context["cl"].queryset
    assert set(same) == found
    plain = set(operator_client.get(url, {"q": str(busy_order.pk)}).context["cl"].queryset)
    assert found <= plain
    # The order page links to that search.
    assert f"?q=order+{busy_order.pk}" in _page(operator_client, busy_order).content.decode()


def test_the_refund_requests_list_shows_order_customer_seller_amount_and_age(
    operator_client, busy_order, customer
):
    line = busy_order.lines.filter(seller_order__seller__slug="rival").first()
    request = refund_request_create(customer=customer, order_line=line, reason="Torn")

    page = operator_client.get(reverse("admin:payments_refundrequest_changelist"))

    html = re.sub(r"\s+", " ", page.content.decode())
    order_url = reverse("admin:marketplace_order_change", args=[busy_order.pk])
    assert f'<a href="{order_url}">Order #{busy_order.pk}</a>' in html
    assert "customer@example.com" in html and "Rival" in html
    assert "$35.49" in html and "Torn" in html and "Waiting for the seller" in html
    assert re.search(r'field-age">0.minutes<', html)
    assert reverse("admin:payments_refundrequest_decide", args=[request.pk, "approve"]) in html
    assert "_minor" not in html


def test_the_refund_requests_list_runs_the_same_queries_for_one_request_or_many(
    run, operator_client, count_queries, seller, other_seller
):
    CommissionRuleFactory(percentage_bps=1000)
    url = reverse("admin:payments_refundrequest_changelist")

    def requests(n):
        for _ in range(n):
            buyer = UserFactory()
            order = _order(run, buyer, [seller, other_seller])
            for line in order.lines.all():
                refund_request_create(customer=buyer, order_line=line, reason="Late")

    requests(1)
    operator_client.get(url)
    one = count_queries(lambda: operator_client.get(url))
    requests(5)
    many = count_queries(lambda: operator_client.get(url))

    assert one == many, (one, many)
