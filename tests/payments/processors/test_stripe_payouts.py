"""A payout through Stripe Connect end to end, against recorded Stripe shapes: the run
sends a transfer and a connected-account payout, and the Connect endpoint's signed
``payout.paid`` / ``payout.failed`` events settle it, once however often they come."""

import json

import pytest
from django.urls import reverse

from payments.checks import ledger_check
from payments.ledger.balances import seller_balance
from payments.models import LedgerTransaction, Payout
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from payments.processors.stripe import StripeProcessor
from tests.factories import CommissionRuleFactory
from tests.money_helpers import paid_order
from tests.payments.processors import stripe_fake as fake
from tests.payments.processors.stripe_fake import RecordingHTTPClient

pytestmark = pytest.mark.django_db
ACCOUNT = "acct_1SeLLeR3"


@pytest.fixture
def http(settings, monkeypatch):
    """Stripe is the configured processor; its HTTP answers are recorded shapes."""
    http = RecordingHTTPClient()
    processor = StripeProcessor(
        secret_key=fake.SECRET_KEY,
        webhook_secret=fake.WEBHOOK_SECRET,
        connect_webhook_secret=fake.CONNECT_WEBHOOK_SECRET,
        api_base=fake.API_BASE,
        http_client=http,
    )
    settings.PAYMENTS_PROCESSOR = "stripe"
    monkeypatch.setattr("payments.processors._build", lambda name: processor)
    return http


@pytest.fixture
def sent(run, http, seller):
    """A 90.00 payout to the seller's Stripe account, sent and in transit."""
    CommissionRuleFactory(percentage_bps=1000)
    seller.payout_account_id, seller.payout_status = ACCOUNT, "enabled"
    seller.save()
    seller_order_hold_release(seller_order=paid_order([(seller, 10000, 1)]).seller_orders.get())
    http.respond(fake.transfer(amount=9000, destination=ACCOUNT))
    http.respond(fake.payout(amount=9000, status="pending", metadata={"payout_id": "1"}))

    run(run_payouts)

    return Payout.objects.get()


def test_the_run_transfers_then_pays_out_on_the_connected_account(sent, http):
    transfer, payout = http.requests
    assert (transfer.path, payout.path) == ("/v1/transfers", "/v1/payouts")
    assert transfer.params["amount"] == payout.params["amount"] == "9000"
    assert transfer.params["destination"] == ACCOUNT
    assert "source_transaction" not in transfer.params  # never sent empty
    assert transfer.params["transfer_group"] == f"payout-{sent.pk}"
    assert transfer.headers["Idempotency-Key"] == f"payout-{sent.pk}-transfer-1"
    assert payout.headers["Idempotency-Key"] == f"payout-{sent.pk}-bank-1"
    assert payout.params["metadata[attempt]"] == "1"
    assert payout.headers["Stripe-Account"] == ACCOUNT
    assert (sent.status, sent.processor, sent.processor_payout_id) == (
        "in_transit",
        "stripe",
        "po_1PaYoUt9",
    )


def _deliver(client, run, status, event_id):
    body = json.dumps(
        fake.event(
            id=event_id,
            type=f"payout.{status}",
            account=ACCOUNT,
            data={
                "object": fake.payout(amount=9000, status=status, metadata={"payout_id": "1"}),
                "previous_attributes": {"status": "in_transit"},
            },
        )
    ).encode()
    url = reverse("payments:webhook_connect", kwargs={"processor": "stripe"})
    return run(
        client.post,
        url,
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=fake.sign(body, fake.CONNECT_WEBHOOK_SECRET),
    )


def test_a_connect_payout_paid_event_settles_the_payout_once(client, run, sent, seller):
    assert _deliver(client, run, "paid", "evt_1PaId").status_code == 200
    assert _deliver(client, run, "paid", "evt_1PaId").status_code == 200
    assert _deliver(client, run, "paid", "evt_1PaIdAgain").status_code == 200

    sent.refresh_from_db()
    assert sent.status == "paid"
    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.available, balance.in_transit, balance.paid_out) == (0, 0, 9000)
    assert LedgerTransaction.objects.filter(kind="payout_paid").count() == 1
    assert ledger_check().ok


def test_a_connect_payout_failed_event_leaves_the_money_in_the_connected_account(
    client, run, sent, seller
):
    """The transfer happened: a failed bank payout must not make the money available
    again (the next run would transfer it a second time); it waits in the seller's
    processor account for the next bank payout."""
    assert _deliver(client, run, "failed", "evt_1FaIl").status_code == 200
    assert _deliver(client, run, "paid", "evt_1LaTePaId").status_code == 200

    sent.refresh_from_db()
    assert sent.status == "transferred"
    assert sent.processor_transfer_id == "tr_1SeLLeR3"
    balance = seller_balance(seller=seller, currency="USD")
    assert (balance.available, balance.in_transit, balance.paid_out) == (0, 9000, 0)
    assert ledger_check().ok


def test_an_unsigned_connect_event_changes_nothing(client, run, sent):
    url = reverse("payments:webhook_connect", kwargs={"processor": "stripe"})
    response = client.post(url, b"{}", content_type="application/json")

    assert response.status_code == 400
    sent.refresh_from_db()
    assert sent.status == "in_transit"
