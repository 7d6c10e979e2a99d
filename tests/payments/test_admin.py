import re

import pytest
from django.urls import reverse

from payments.collection.refunds import refund_create, refund_mark_succeeded
from payments.models import CommissionRule, LedgerTransaction
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def books(seller):
    CommissionRuleFactory(percentage_bps=1000)
    order = paid_order([(seller, 1000, 2)], fee=30)
    refund_mark_succeeded(refund=refund_create(order=order, amount_minor=500))
    return order


@pytest.mark.parametrize(
    "url_name",
    [
        "admin:payments_commissionrule_changelist",
        "admin:payments_commissionrule_add",
        "admin:payments_ledgertransaction_changelist",
        "admin:payments_ledgeraccount_changelist",
        "admin:payments_ledgerentry_changelist",
        "admin:payments_refund_changelist",
        "admin:marketplace_order_changelist",
        "admin:payments_payout_changelist",
        "admin:payments_payoutpolicy_changelist",
        "admin:payments_webhookevent_changelist",
        "admin:payments_refundrequest_changelist",
        "admin:payments_dispute_changelist",
    ],
)
def test_operators_see_the_money_pages(operator_client, books, url_name):
    assert operator_client.get(reverse(url_name)).status_code == 200


def test_an_order_page_shows_its_seller_orders_and_lines(operator_client, books):
    response = operator_client.get(reverse("admin:marketplace_order_change", args=[books.pk]))

    assert response.status_code == 200
    [part] = response.context["seller_parts"]
    [line] = part.lines
    assert (line.gross_minor, line.commission_minor, line.seller_share_minor) == (2000, 200, 1800)
    html = re.sub(r"\s+", " ", response.content.decode())
    assert "Acme · seller order" in html  # the seller order's seller
    assert "<td>$20.00</td>" in html and "<td>$2.00</td> <td>$18.00</td>" in html
    assert not re.search(r">\s*1800\s*<", html)


def test_ledger_rows_are_read_only_in_the_admin(operator_client, books):
    txn = LedgerTransaction.objects.first()

    page = operator_client.get(reverse("admin:payments_ledgertransaction_change", args=[txn.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert operator_client.get(reverse("admin:payments_ledgertransaction_add")).status_code == 403
    response = operator_client.post(
        reverse("admin:payments_ledgertransaction_delete", args=[txn.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    assert LedgerTransaction.objects.filter(pk=txn.pk).exists()


def test_an_operator_adds_a_commission_rule_and_bad_rules_are_refused(operator_client, seller):
    url = reverse("admin:payments_commissionrule_add")
    base = {
        "name": "Acme special",
        "scope": "seller",
        "seller": seller.pk,
        "percentage": "5",
        "fixed_fee": "",
        "currency": "",
        "active_from": "2026-01-01T00:00:00",
        "change_reason": "Acme's volume deal",
    }

    bad = operator_client.post(url, base | {"fixed_fee": "0.30"})
    assert bad.status_code == 200
    assert "a fixed fee, minimum or maximum needs one." in bad.content.decode()
    assert not CommissionRule.objects.exists()

    good = operator_client.post(url, base)
    assert good.status_code == 302
    rule = CommissionRule.objects.get()
    assert (rule.seller, rule.percentage_bps, rule.fixed_fee_minor) == (seller, 500, 0)


def test_customers_get_nothing_of_the_money_admin(customer_client, books):
    response = customer_client.get(reverse("admin:payments_ledgertransaction_changelist"))

    assert response.status_code == 302


def test_an_operator_holds_a_payout_from_the_admin_with_a_reason(operator_client, operator, seller):
    from payments.models import AuditRecord, Payout

    payout = Payout.objects.create(
        seller=seller, currency="USD", amount_minor=500, period="p", status="scheduled"
    )

    operator_client.post(
        reverse("admin:payments_payout_changelist"),
        {"action": "hold", "_selected_action": [payout.pk], "reason": "Address check"},
    )

    payout.refresh_from_db()
    assert payout.status == "held"
    assert list(AuditRecord.objects.values_list("action", "reason", "actor", "via")) == [
        ("hold", "Address check", operator.pk, "admin")
    ]
