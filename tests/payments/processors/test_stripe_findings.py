"""Regressions of the Stripe findings, each against the strict fakes: what a live
account would have refused or done twice, before the two-step payouts.

The day-long story (``test_stripe_connect_day.py``) covers them together; these pin
each one down on its own.
"""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from payments.collection.onboarding import seller_account_sync
from payments.collection.webhooks import connected_accounts_to_backfill
from payments.models import Clawback, Payout
from payments.payouts.planning import send_delay
from payments.payouts.runs import run_payouts
from payments.payouts.sending import payout_send
from payments.processors.base import TemporaryProcessorError
from payments.processors.stripe import StripeProcessor
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.processors import stripe_fake as fake
from tests.payments.processors.stripe_fake import RecordingHTTPClient
from tests.payments.processors.stripe_server import FakeStripe

pytestmark = pytest.mark.django_db


def stripe_on(http, settings, monkeypatch) -> StripeProcessor:
    processor = StripeProcessor(
        secret_key=fake.SECRET_KEY,
        webhook_secret=fake.WEBHOOK_SECRET,
        connect_webhook_secret=fake.CONNECT_WEBHOOK_SECRET,
        api_base=fake.API_BASE,
        http_client=http,
    )
    settings.PAYMENTS_PROCESSOR = "stripe"
    monkeypatch.setattr("payments.processors._build", lambda name: processor)
    return processor


@pytest.fixture
def server(settings, monkeypatch) -> FakeStripe:
    server = FakeStripe(now=time.time())
    stripe_on(server, settings, monkeypatch)
    return server


@pytest.fixture
def earning(server, seller, settings):
    """A seller onboarded at the fake, with 90.00 available and the platform's balance
    to pay it."""
    settings.PAYMENTS_HOLD_DAYS = 0
    from tests.factories import CommissionRuleFactory

    CommissionRuleFactory(percentage_bps=1000)
    account = server.add_account(email=seller.user.email)
    seller.payout_account_id, seller.payout_status = account, "enabled"
    seller.save()
    from payments.payouts.holds import seller_order_hold_release

    order = paid_order([(seller, 10000, 1)])
    seller_order_hold_release(seller_order=order.seller_orders.get())
    server.credit_platform("usd", 10000)
    return seller


# 1. An empty source_transaction is refused by Stripe ------------------------------------------


def test_an_empty_parameter_is_never_sent(server, earning, run):
    run(run_payouts)

    transfer = next(r for r in server.requests if r.path == "/v1/transfers")
    assert "source_transaction" not in transfer.params
    assert all("" not in r.params.values() for r in server.requests)
    assert Payout.objects.get().status == Payout.Status.IN_TRANSIT


# 2. A transfers-only account is enabled without charges_enabled -------------------------------


def test_a_transfers_only_account_is_enabled(server, seller):
    account = server.add_account(email=seller.user.email, onboarded=False)
    seller.payout_account_id = account
    seller.save()
    assert seller_account_sync(processor_name="stripe", account_id=account).payout_status == (
        "onboarding"
    )

    server.complete_onboarding(account)

    synced = seller_account_sync(processor_name="stripe", account_id=account)
    assert server.get(account)["charges_enabled"] is False
    assert synced.payout_status == "enabled"


# 3. A refused bank payout does not transfer again --------------------------------------------


def test_a_refused_bank_payout_waits_in_the_connected_account(server, earning, run):
    server.refuse_payouts(earning.payout_account_id, code="account_closed")
    run(run_payouts)
    payout = Payout.objects.get()
    assert payout.status == Payout.Status.TRANSFERRED

    server.allow_payouts(earning.payout_account_id)
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=None)
    run(run_payouts)  # the next run: no new payout, the bank payout again

    payout.refresh_from_db()
    assert payout.status == Payout.Status.IN_TRANSIT
    assert len(server.objects("transfer")) == 1
    assert Payout.objects.count() == 1


# 4. Keys: a new one per attempt, a look-up before relying on an old answer ---------------------


def test_a_stored_balance_insufficient_does_not_block_the_retry(server, seller, earning, run):
    server.credit_platform("usd", -10000)  # card funds not settled yet
    run(run_payouts)
    payout = Payout.objects.get()
    assert payout.status == Payout.Status.SENDING and "processor balance" in payout.failure_reason

    server.credit_platform("usd", 10000)  # settled within the hour; Stripe keeps the error
    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())
    payout_send(payout=payout)

    payout.refresh_from_db()
    keys = [r.headers["Idempotency-Key"] for r in server.requests if r.path == "/v1/transfers"]
    assert keys == [f"payout-{payout.pk}-transfer-1", f"payout-{payout.pk}-transfer-2"]
    assert payout.status == Payout.Status.IN_TRANSIT


def test_a_lost_answer_is_looked_up_not_sent_again_after_24_hours(server, earning, run):
    server.fail_after_next("POST", "/v1/transfers", times=3)  # every SDK retry too
    run(run_payouts)
    payout = Payout.objects.get()
    assert payout.status == Payout.Status.SENDING
    server.advance(25 * 3600)  # Stripe has forgotten the key

    Payout.objects.filter(pk=payout.pk).update(next_attempt_at=timezone.now())
    payout_send(payout=payout)

    payout.refresh_from_db()
    assert payout.status == Payout.Status.IN_TRANSIT
    assert len(server.objects("transfer")) == 1
    assert payout.steps.get(kind="transfer", attempt=2).outcome == "adopted"


# 5. A refund after the transfer is clawed back ------------------------------------------------


def test_a_refund_after_the_transfer_reverses_it_up_to_what_is_held(server, earning, run):
    from payments.collection.refunds import refund_create, refund_mark_succeeded

    server.refuse_payouts(earning.payout_account_id, code="account_closed")
    run(run_payouts)
    payout = Payout.objects.get()
    order = earning.seller_orders.get().order

    refund = refund_create(order=order, amount_minor=3000)
    run(refund_mark_succeeded, refund=refund)

    clawback = Clawback.objects.get()
    assert (clawback.status, clawback.amount_minor) == ("reversed", 2700)
    payout.refresh_from_db()
    assert (payout.clawed_back_minor, payout.bank_amount_minor) == (2700, 6300)
    assert server.available("usd", account=earning.payout_account_id) == 6300


# 6. A payout.failed after payout.paid is not ignored ------------------------------------------


def test_a_paid_payout_that_fails_later_is_paid_out_again(server, earning, run, client):
    from payments.payouts.settlement import payout_sync

    run(run_payouts)
    payout = Payout.objects.get()
    server.payout_paid(payout.processor_payout_id)
    run(
        payout_sync,
        processor_name="stripe",
        processor_payout_id=payout.processor_payout_id,
        status="paid",
        metadata={},
    )
    server.payout_failed(payout.processor_payout_id)
    run(
        payout_sync,
        processor_name="stripe",
        processor_payout_id=payout.processor_payout_id,
        status="failed",
        metadata={},
        message="Returned",
    )

    payout.refresh_from_db()
    assert payout.status == Payout.Status.TRANSFERRED
    assert server.available("usd", account=earning.payout_account_id) == 9000


# 7. Connect events are backfilled per account -------------------------------------------------


def test_the_backfill_lists_the_accounts_it_waits_for(server, earning, other_seller, run):
    run(run_payouts)
    enable_payouts(other_seller)  # a seller with nothing under way

    accounts = connected_accounts_to_backfill(
        since=timezone.now() - timezone.timedelta(days=1), processor_name="stripe"
    )

    assert accounts == [earning.payout_account_id]


# 8. A PaymentIntent answer without latest_charge keeps its id ---------------------------------


def test_a_payment_intent_without_latest_charge_is_read(settings, monkeypatch):
    http = RecordingHTTPClient()
    processor = stripe_on(http, settings, monkeypatch)
    body = fake.payment_intent()
    del body["latest_charge"], body["client_secret"]
    http.respond(body)

    payment = processor.payment_create(
        amount_minor=1250,
        currency="USD",
        transfer_group="order-7",
        customer_email="buyer@example.com",
        metadata={"order_id": "7"},
        idempotency_key="payment-7-1",
    )

    assert (payment.id, payment.charge_id, payment.client_secret) == ("pi_3PaYmEnT7", "", "")


def test_an_answer_missing_a_required_field_is_a_temporary_error(settings, monkeypatch):
    http = RecordingHTTPClient()
    processor = stripe_on(http, settings, monkeypatch)
    body = fake.transfer()
    del body["destination"]
    http.respond(body)

    with pytest.raises(TemporaryProcessorError, match="Unexpected answer"):
        processor.transfer_create(
            amount_minor=1000,
            currency="USD",
            destination="acct_1SeLLeR3",
            transfer_group="payout-1",
            metadata={},
            idempotency_key="payout-1-transfer-1",
        )


# Rate: a run's sends are spread below the processor's write limit ------------------------------


def test_a_runs_sends_are_paced_below_the_write_limit(settings, monkeypatch, db):
    settings.PAYMENTS_PROCESSOR_WRITES_PER_SECOND = 25  # Stripe's test mode
    delays = [send_delay(slot) for slot in range(10_000)]

    per_second: dict[int, int] = {}
    for delay in delays:
        per_second[int(delay)] = per_second.get(int(delay), 0) + 1
    assert max(per_second.values()) * 2 <= 25  # two writes a payout
    assert delays[-1] == pytest.approx(9999 / 12)  # 10,000 payouts in under 14 minutes
