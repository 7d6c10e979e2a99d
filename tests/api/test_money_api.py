"""The money API: who may see and do what, and that each call does what the admin does."""

import pytest
from django.urls import reverse

from payments.models import (
    AuditRecord,
    CommissionRule,
    LedgerEntry,
    Payout,
    PayoutPolicy,
    PayoutRun,
    VolumeTier,
)
from payments.payouts.holds import seller_order_hold_release
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(seller, other_seller, customer, other_customer, operator):
    """Both sellers with 90.00 available and a payout each; every role's user."""
    CommissionRuleFactory(percentage_bps=1000)
    payouts = {}
    for who in (seller, other_seller):
        enable_payouts(who)
        order = paid_order([(who, 10000, 1)], customer=customer)
        seller_order_hold_release(seller_order=order.seller_orders.get())
        payouts[who.slug] = Payout.objects.create(
            seller=who, currency="USD", amount_minor=9000, period="p", status="scheduled"
        )
    return {
        "users": {
            "anonymous": None,
            "customer": customer,
            "other_customer": other_customer,
            "seller": seller.user,
            "other_seller": other_seller.user,
            "operator": operator,
        },
        "payouts": payouts,
    }


def test_a_seller_lists_only_their_own_payouts_and_ledger(world, api_as, seller):
    client = api_as(seller.user)

    payouts = client.get(reverse("api:payout-list")).json()["data"]
    entries = client.get(reverse("api:ledger-entry-list")).json()["data"]

    assert {p["seller"] for p in payouts} == {"acme"}
    assert entries and {e["seller"] for e in entries} == {"acme"}


def test_a_payout_shows_its_breakdown(world, api_as, seller, operator, run):
    from payments.payouts.runs import run_payouts

    Payout.objects.all().delete()
    run(run_payouts)
    payout = Payout.objects.get(seller=seller)

    body = api_as(seller.user).get(reverse("api:payout-detail", args=[payout.pk])).json()

    assert body["amount_minor"] == 9000
    assert sum(item["amount_minor"] for item in body["breakdown"]) == 9000
    assert {item["kind"] for item in body["breakdown"]} == {"hold_released"}


def test_operators_hold_and_approve_through_the_same_services(world, api_as, operator):
    payout = world["payouts"]["acme"]
    client = api_as(operator)

    held = client.post(
        reverse("api:payout-hold", args=[payout.pk]), {"reason": "KYC"}, format="json"
    )
    again = client.post(reverse("api:payout-hold", args=[payout.pk]), {}, format="json")
    approve = client.post(reverse("api:payout-approve", args=[payout.pk]), format="json")

    assert held.status_code == 200 and held.json()["status"] == "held"
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    assert approve.status_code == 409
    assert list(AuditRecord.objects.values_list("action", "reason", "via")) == [
        ("hold", "KYC", "api")
    ]


def test_the_creator_of_a_payout_cannot_approve_it(world, api_as, operator):
    payout = world["payouts"]["acme"]
    Payout.objects.filter(pk=payout.pk).update(status="awaiting_approval", created_by=operator)

    response = api_as(operator).post(reverse("api:payout-approve", args=[payout.pk]))

    assert response.status_code == 409
    assert "cannot approve" in response.json()["detail"]


def test_a_payout_run_by_api_dry_runs_then_runs_once_per_key(world, api_as, operator, run):
    Payout.objects.all().delete()
    client = api_as(operator)
    url = reverse("api:payout-run-list")

    dry = client.post(url, {"dry_run": True}, format="json")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert {p["seller"] for p in dry.json()["planned"]} == {"acme", "rival"}
    assert not Payout.objects.exists() and not PayoutRun.objects.exists()

    first = run(client.post, url, {}, format="json", HTTP_IDEMPOTENCY_KEY="run-1")
    replay = run(client.post, url, {}, format="json", HTTP_IDEMPOTENCY_KEY="run-1")

    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert PayoutRun.objects.get().trigger == "api"
    assert Payout.objects.filter(status="paid").count() == 2


def test_a_run_for_an_unknown_seller_is_a_400_and_runs_nothing(world, api_as, operator):
    response = api_as(operator).post(
        reverse("api:payout-run-list"), {"sellers": ["nobody"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"sellers": ["No seller with slug nobody."]}
    assert not PayoutRun.objects.exists()


def test_a_seller_reads_only_the_commission_rules_that_can_apply_to_them(
    world, api_as, seller, other_seller
):
    CommissionRuleFactory(scope="seller", seller=other_seller, percentage_bps=500)
    mine = CommissionRuleFactory(scope="seller", seller=seller, percentage_bps=700)

    rules = api_as(seller.user).get(reverse("api:commission-rule-list")).json()["data"]

    assert mine.pk in {r["id"] for r in rules}
    assert "rival" not in {r["seller"] for r in rules}


def test_an_operator_changes_a_rule_and_bad_changes_are_refused(world, api_as, operator):
    rule = CommissionRule.objects.get()
    client = api_as(operator)
    url = reverse("api:commission-rule-detail", args=[rule.pk])

    ok = client.patch(url, {"percentage_bps": 1200}, format="json")
    bad = client.patch(url, {"percentage_bps": 12000}, format="json")

    assert ok.status_code == 200 and ok.json()["percentage_bps"] == 1200
    assert bad.status_code == 400
    rule.refresh_from_db()
    assert rule.percentage_bps == 1200


def test_payout_policy_validation(world, api_as, operator, seller):
    client = api_as(operator)
    url = reverse("api:payout-policy-list")

    frozen = client.post(url, {"seller": "acme", "frozen": True}, format="json")
    bad_amounts = client.post(url, {"seller": "acme", "minimums": {"XXX": -5}}, format="json")
    good = client.post(
        url, {"seller": "acme", "reserve_bps": 1000, "minimums": {"USD": 500}}, format="json"
    )

    assert frozen.status_code == 400 and "frozen_reason" in frozen.json()["errors"]
    assert bad_amounts.status_code == 400 and "minimums" in bad_amounts.json()["errors"]
    assert good.status_code == 201
    assert PayoutPolicy.objects.get(seller=seller).reserve_bps == 1000


def test_balances(world, api_as, seller, operator):
    mine = api_as(seller.user).get(reverse("api:my-balance")).json()
    theirs = api_as(operator).get(reverse("api:seller-balance", args=["acme"])).json()

    assert (
        mine
        == theirs
        == [{"currency": "USD", "pending": 0, "available": 9000, "in_transit": 0, "paid_out": 0}]
    )
    missing = api_as(operator).get(reverse("api:seller-balance", args=["nobody"]))
    assert missing.status_code == 404


def test_ledger_entries_page_by_cursor_and_filter(world, api_as, operator):
    client = api_as(operator)
    url = reverse("api:ledger-entry-list")

    first = client.get(url, {"limit": 3}).json()
    second = client.get(url, {"limit": 3, "starting_after": first["data"][-1]["id"]}).json()
    released = client.get(url, {"kind": "hold_released", "seller": "acme"}).json()["data"]

    assert len(first["data"]) == 3 and first["has_more"]
    assert not {e["id"] for e in first["data"]} & {e["id"] for e in second["data"]}
    assert released and {e["transaction_kind"] for e in released} == {"hold_released"}
    assert client.get(url, {"kind": "nonsense"}).status_code == 400


@pytest.mark.parametrize(
    "endpoint",
    [
        "api:payout-list",
        "api:ledger-entry-list",
        "api:commission-rule-list",
        "api:payout-run-list",
        "api:payout-policy-list",
        "api:refund-request-list",
        "api:webhook-endpoint-list",
    ],
)
def test_list_queries_do_not_grow_with_the_page(world, api_as, operator, count_queries, endpoint):
    from payments.collection.refund_requests import refund_request_create
    from payments.models import WebhookEndpoint
    from tests.factories import SellerFactory, UserFactory

    for _ in range(6):
        extra, buyer = SellerFactory(), UserFactory()
        order = paid_order([(extra, 500, 1)], customer=buyer)
        seller_order_hold_release(seller_order=order.seller_orders.get())
        Payout.objects.create(seller=extra, currency="USD", amount_minor=450, period="p")
        CommissionRuleFactory(scope="seller", seller=extra, percentage_bps=300)
        PayoutPolicy.objects.create(seller=extra)
        PayoutRun.objects.create(trigger="api", started_by=operator)
        refund_request_create(customer=buyer, order_line=order.lines.get(), reason="No")
        WebhookEndpoint.objects.create(
            owner=extra.user, seller=extra, url="https://example.com/h", events=["order.paid"]
        )
    client = api_as(operator)
    url = reverse(endpoint)
    client.get(url)  # warm-up: token last-used stamp, sessions

    small = count_queries(lambda: client.get(url, {"limit": 2}))
    large = count_queries(lambda: client.get(url, {"limit": 50}))

    assert LedgerEntry.objects.count() > 20
    assert small == large


def test_the_revenue_report_api_is_for_operators(world, api_as, operator, seller):
    url = reverse("api:revenue-report")

    rows = api_as(operator).get(url, {"period": "month"}).json()
    bad = api_as(operator).get(url, {"start": "2026-12-02", "end": "2026-12-01"})

    assert rows[0]["sales"] == 20000 and rows[0]["commission"] == 2000 and rows[0]["net"] == 2000
    assert bad.status_code == 400
    assert api_as(seller.user).get(url).status_code == 403


def test_an_approval_of_a_payout_no_longer_covered_is_a_409_that_cancels_it(
    world, api_as, operator, seller
):
    """Money safety, finding 1, through the API: the sale behind the payout was refunded."""
    from payments.collection.refunds import refund_create, refund_mark_succeeded
    from payments.models import Refund

    payout = world["payouts"]["acme"]
    Payout.objects.filter(pk=payout.pk).update(status="awaiting_approval")
    order = seller.seller_orders.get().order
    refund_mark_succeeded(refund=refund_create(order=order))

    response = api_as(operator).post(reverse("api:payout-approve", args=[payout.pk]))

    assert response.status_code == 409
    assert response.json()["code"] == "payout_stopped"
    assert "No longer covered" in response.json()["detail"]
    payout.refresh_from_db()
    assert payout.status == "cancelled"
    assert Refund.objects.get().status == "succeeded"


def test_a_refund_request_on_a_disputed_payment_is_a_409(world, api_as, seller, customer):
    """Money safety, finding 3, through the API."""
    from payments.collection.refund_requests import refund_request_create
    from payments.models import Dispute, PaymentAttempt, RefundRequest

    order = seller.seller_orders.get().order
    line = order.lines.get()
    request = refund_request_create(customer=customer, order_line=line, reason="Broken")
    attempt = PaymentAttempt.objects.create(
        order=order,
        number=1,
        processor="local",
        processor_payment_id="pi_disputed",
        amount_minor=order.total_minor,
        currency="USD",
        status="succeeded",
        idempotency_key="payment-disputed",
    )
    Dispute.objects.create(
        order=order,
        payment_attempt=attempt,
        processor="local",
        processor_dispute_id="dp_api",
        amount_minor=order.total_minor,
        currency="USD",
    )

    response = api_as(seller.user).post(reverse("api:refund-request-approve", args=[request.pk]))

    assert response.status_code == 409
    assert response.json()["code"] == "payment_disputed"
    assert RefundRequest.objects.get().status == "requested"


@pytest.mark.parametrize(
    "body",
    [
        {"tiers": None},
        {"tiers": "x"},
        {"tiers": [None]},
        {"tiers": [{"percentage_bps": 5}]},
        {"tiers": [{"from_minor": 0, "up_to_minor": 0, "percentage_bps": 5}]},
        {},
    ],
)
def test_bad_tier_bodies_are_a_400(api_as, operator, body):
    rule = CommissionRuleFactory(currency="USD")
    response = api_as(operator).put(reverse("api:rule-tiers", args=[rule.pk]), body, format="json")
    assert response.status_code == 400, response.content
    assert not VolumeTier.objects.exists()
