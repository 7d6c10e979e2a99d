"""Regression tests for problems a second reader found in the payouts and API code."""

from datetime import datetime

import pytest
from django.urls import reverse

from marketplace.kernel.errors import InvalidState
from payments.ledger.posting import Posting, ledger_post, seller_account
from payments.models import Payout, PayoutPolicy, WebhookDelivery, WebhookEndpoint
from payments.payouts.controls import payout_approve, payout_hold, payout_release, payout_retry
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.planning import PlannedPayout, payout_create
from payments.payouts.runs import run_payouts
from payments.payouts.settlement import payout_failed
from payments.processors.base import BalanceTransaction
from payments.reporting.reconciliation import Reconciliation, _theirs
from tests.factories import CommissionRuleFactory, UserFactory
from tests.money_helpers import enable_payouts, paid_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def earning(seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    seller_order_hold_release(seller_order=paid_order([(seller, 10000, 1)]).seller_orders.get())
    return seller


def test_holding_and_releasing_never_skips_the_second_operators_approval(run, earning, operator):
    PayoutPolicy.objects.create(seller=earning, approval_thresholds={"USD": 1000})
    run(run_payouts, started_by=operator)
    payout = Payout.objects.get()

    run(payout_hold, payout=payout, by=operator, reason="Check")
    released = run(payout_release, payout=payout, by=operator)

    assert released.status == "awaiting_approval"
    with pytest.raises(InvalidState):
        payout_approve(payout=payout, by=operator)
    approved = run(payout_approve, payout=payout, by=UserFactory(is_staff=True))
    assert approved.status == "scheduled"


def test_a_retry_follows_the_freeze_and_the_reserve(run, earning, operator):
    policy = PayoutPolicy.objects.create(seller=earning, reserve_bps=5000)
    payout = run_payouts().created[0]  # not sent: its task runs after a commit
    assert payout.amount_minor == 4500
    payout_failed(payout=payout, reason="Bank said no")

    policy.frozen, policy.frozen_reason = True, "Fraud review"
    policy.save()
    with pytest.raises(InvalidState, match="frozen"):
        payout_retry(payout=payout, by=operator)

    policy.frozen = False
    policy.save()
    retried = run(payout_retry, payout=payout, by=operator)
    assert retried.amount_minor == 4500  # the reserve stays kept back


def test_a_stale_plan_is_cut_to_what_is_left_under_the_lock(earning):
    Payout.objects.create(
        seller=earning, currency="USD", amount_minor=6000, period="other", status="scheduled"
    )
    plan = PlannedPayout(earning, "USD", 9000, "manual-x", "scheduled")

    created = payout_create(
        plan, account=seller_account(earning, "available", "USD"), run=None, by=None
    )

    assert created.amount_minor == 3000


def test_a_dry_run_nets_what_the_seller_owes(seller, settings, run):
    settings.PAYMENTS_HOLD_DAYS = 0
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    ledger_post(
        kind="adjustment",
        idempotency_key="adjustment:debt",
        reference_type="note",
        reference_id="1",
        postings=[
            Posting(seller_account(seller, "available", "USD"), 500),
            Posting(seller_account(seller, "pending", "USD"), -500),
        ],
    )
    seller_order = paid_order([(seller, 10000, 1)]).seller_orders.get()
    seller_order_hold_release(seller_order=seller_order)
    ledger_post(  # the 500 of pending moves out again, so only the debt remains
        kind="adjustment",
        idempotency_key="adjustment:debt-2",
        reference_type="note",
        reference_id="2",
        postings=[
            Posting(seller_account(seller, "pending", "USD"), 500),
            Posting(seller_account(seller, "available", "USD"), -500),
        ],
    )
    paid_order([(seller, 10000, 1)])  # due, not released

    dry = run_payouts(dry_run=True)
    real = run(run_payouts)

    assert [p.amount_minor for p in dry.planned] == [p.amount_minor for p in real.planned]


def test_a_platform_wide_endpoint_stops_when_its_owner_is_no_longer_an_operator(
    run, operator, seller, settings
):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    WebhookEndpoint.objects.create(
        owner=operator, url="http://127.0.0.1:9/x", events=["order.paid"], secret="s"
    )
    operator.groups.clear()

    paid_order([(seller, 1000, 1)])

    assert not WebhookDelivery.objects.exists()


def test_a_dispute_fee_at_the_processor_is_a_difference():
    report = Reconciliation(since=datetime(2026, 1, 1), until=datetime(2026, 1, 2))
    fee_charged = BalanceTransaction(
        id="txn_1",
        type="adjustment",
        amount_minor=-5000,
        fee_minor=1500,
        net_minor=-6500,
        currency="USD",
        source="du_1",
        created=datetime(2026, 1, 1),
    )

    theirs = _theirs([fee_charged], report)

    assert theirs[("dispute_fee", "du_1", "USD")] == -1500


@pytest.mark.parametrize(
    ("name", "kwargs", "body"),
    [
        (
            "api:webhook-endpoint-list",
            {},
            {"url": "https://example.com:99999/", "events": ["order.paid"]},
        ),
        (
            "api:product-list",
            {},
            {
                "title": "X",
                "category": "books",
                "price_minor": 2**62,
                "currency": "USD",
                "stock": 1,
            },
        ),
    ],
)
def test_bad_input_is_a_400_not_a_500(api_as, seller, category, name, kwargs, body):
    response = api_as(seller.user).post(reverse(name, kwargs=kwargs), body, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize("name", ["api:revenue-report", "api:reconciliation"])
def test_far_future_dates_are_a_400(api_as, operator, name):
    response = api_as(operator).get(reverse(name), {"start": "9999-12-01", "end": "9999-12-31"})
    assert response.status_code == 400


def test_validation_errors_of_the_whole_request_are_non_field_errors(api_as, operator):
    response = api_as(operator).post(
        reverse("api:commission-rule-list"),
        {"scope": "seller", "percentage_bps": 100},
        format="json",
    )
    assert response.status_code == 400
    assert "non_field_errors" in response.json()["errors"]


def test_a_server_error_is_kept_under_its_idempotency_key_as_stripe_does(
    api_as, operator, monkeypatch
):
    """The work may have committed before the failure: the same key answers the same
    500 (nothing runs twice); a new key runs the request again."""
    client = api_as(operator)
    client.raise_request_exception = False
    url = reverse("api:payout-run-list")

    def boom(**kwargs):
        raise RuntimeError("a bug after the work")

    monkeypatch.setattr("payments.api.views.run_payouts", boom)
    assert client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 500
    monkeypatch.undo()
    replay = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert replay.status_code == 500
    assert replay["Idempotent-Replayed"] == "true"
    assert client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k2").status_code == 201
