"""Whole payment flows on the local processor, through the same webhook code as Stripe."""

import json
import re
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.urls import reverse
from django.utils import timezone

from accounts.models import Seller
from marketplace.models import Order, Product
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.collection.expiry import orders_expire_unpaid
from payments.collection.onboarding import seller_onboarding_start
from payments.collection.refunds import refund_create, refund_submit
from payments.collection.webhooks import webhook_receive
from payments.ledger.balances import seller_balance
from payments.models import (
    LedgerTransaction,
    LocalEvent,
    LocalPaymentIntent,
    LocalPayout,
    LocalRefund,
    LocalTransfer,
    PaymentAttempt,
    Refund,
    WebhookEvent,
)
from payments.processors.base import CardDeclined, TemporaryProcessorError, WebhookSignatureError
from payments.processors.local import (
    CARD_DECLINED,
    CARD_REQUIRES_ACTION,
    CARD_SUCCEEDS,
    SIGNATURE_HEADER,
    LocalProcessor,
    processing_fee,
    sign,
)
from payments.tasks import local_event_deliver
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import pay_again_from_a_stale_tab

pytestmark = pytest.mark.django_db

local = LocalProcessor()


@pytest.fixture
def order(customer, seller, other_seller):
    CommissionRuleFactory(percentage_bps=1000)
    a = ProductFactory(seller=seller, price_minor=2000, stock=5)
    b = ProductFactory(seller=other_seller, price_minor=1000, stock=5)
    return place_order(customer=customer, cart_items=[CartItem(a.pk, 1), CartItem(b.pk, 2)])


def test_a_card_payment_is_paid_through_the_webhook_and_split_in_the_ledger(
    run, order, seller, other_seller, mailoutbox
):
    attempt = run(payment_start, order=order)
    assert attempt.processor == "local" and attempt.processor_payment_id.startswith("pi_local_")

    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert seller_balance(seller=seller, currency="USD").pending == 1800
    assert seller_balance(seller=other_seller, currency="USD").pending == 1800
    event = WebhookEvent.objects.get(type="payment_intent.succeeded")
    assert (event.status, event.attempts) == ("processed", 1)
    assert "Local-Signature" not in event.headers
    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.SUCCEEDED
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        [order.customer.email, seller.user.email, other_seller.user.email]
    )
    assert ledger_check().ok


def test_the_processor_fee_of_the_payment_is_recorded(run, order):
    from payments.ledger.balances import platform_balance

    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)

    assert platform_balance(currency="USD").processor_fees == processing_fee(4000)


def test_a_decline_then_another_card_pays_the_same_order_once(run, order):
    first = run(payment_start, order=order)
    with pytest.raises(CardDeclined, match=re.escape("Your card was declined.")):
        run(local.payment_confirm, payment_id=first.processor_payment_id, card_number=CARD_DECLINED)
    first.refresh_from_db()
    assert first.status == PaymentAttempt.Status.FAILED

    second = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=second.processor_payment_id, card_number=CARD_SUCCEEDS)

    assert second.number == 2
    first.refresh_from_db()
    assert first.status == PaymentAttempt.Status.CANCELED  # a stale tab cannot pay it
    assert LocalPaymentIntent.objects.get(pk=first.processor_payment_id).status == "canceled"
    assert Order.objects.count() == 1
    assert Order.objects.get().status == Order.Status.PAID
    assert ledger_check().ok


def test_a_card_that_needs_confirmation_is_paid_once_confirmed(run, order):
    attempt = run(payment_start, order=order)
    run(
        local.payment_confirm,
        payment_id=attempt.processor_payment_id,
        card_number=CARD_REQUIRES_ACTION,
    )
    assert Order.objects.get().status == Order.Status.AWAITING_PAYMENT

    run(local.payment_authenticate, payment_id=attempt.processor_payment_id, approve=True)

    assert Order.objects.get().status == Order.Status.PAID


def test_a_timeout_after_the_processor_created_the_payment_does_not_create_two(
    run, order, settings
):
    settings.PAYMENTS_LOCAL_FAULTS = {"payment_create": "timeout_after"}
    with pytest.raises(TemporaryProcessorError):
        run(payment_start, order=order)
    assert LocalPaymentIntent.objects.count() == 1

    settings.PAYMENTS_LOCAL_FAULTS = {}
    attempt = run(payment_start, order=order)

    assert LocalPaymentIntent.objects.count() == 1
    assert attempt.processor_payment_id == LocalPaymentIntent.objects.get().id
    assert PaymentAttempt.objects.count() == 1


def test_duplicate_and_late_deliveries_change_nothing(run, order):
    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    event = LocalEvent.objects.get(type="payment_intent.succeeded")

    run(local_event_deliver, event.id)
    run(local_event_deliver, event.id)
    # A failure event delivered after the success (out of order) is ignored too.
    failed = LocalEvent.objects.create(
        id="evt_local_late",
        type="payment_intent.payment_failed",
        data={"id": attempt.processor_payment_id, "last_payment_error": {"message": "x"}},
    )
    run(local_event_deliver, failed.id)

    assert WebhookEvent.objects.filter(event_id=event.id).count() == 1
    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.SUCCEEDED
    assert Order.objects.get().status == Order.Status.PAID
    assert ledger_check().ok


def test_an_unknown_event_type_is_stored_and_ignored(run):
    payload = json.dumps(
        {"id": "evt_x", "type": "customer.created", "created": 1, "data": {"object": {"id": "c"}}}
    ).encode()

    stored = run(
        webhook_receive,
        processor_name="local",
        payload=payload,
        headers={SIGNATURE_HEADER: sign(payload)},
    )

    stored.refresh_from_db()
    assert stored.status == WebhookEvent.Status.IGNORED


def test_a_bad_signature_is_refused_and_nothing_is_stored(client):
    payload = json.dumps({"id": "evt_y", "type": "payment_intent.succeeded"}).encode()

    with pytest.raises(WebhookSignatureError):
        webhook_receive(
            processor_name="local", payload=payload, headers={SIGNATURE_HEADER: sign(b"other")}
        )
    response = client.post(
        reverse("payments:webhook", args=["local"]),
        payload,
        content_type="application/json",
        headers={SIGNATURE_HEADER: "t=1,v1=deadbeef"},
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid signature"}
    assert not WebhookEvent.objects.exists()


def test_the_webhook_endpoint_stores_a_signed_event_and_answers_200(client, eager_celery):
    payload = json.dumps(
        {"id": "evt_z", "type": "customer.created", "created": 1, "data": {"object": {}}}
    ).encode()

    response = client.post(
        reverse("payments:webhook", args=["local"]),
        payload,
        content_type="application/json",
        headers={SIGNATURE_HEADER: sign(payload)},
    )

    assert response.status_code == 200
    assert response.json()["received"] == "evt_z"
    assert WebhookEvent.objects.get().payload == payload.decode()


def test_an_old_signature_is_refused():
    payload = b'{"id":"evt_old","type":"t","created":1,"data":{"object":{}}}'
    old = int(timezone.now().timestamp()) - 600

    with pytest.raises(WebhookSignatureError, match="too old"):
        local.webhook_parse(
            payload=payload, headers={SIGNATURE_HEADER: sign(payload, timestamp=old)}
        )


def test_a_refund_goes_through_the_processor_and_reaches_the_ledger_on_its_event(
    run, order, seller
):
    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    line = order.lines.get(seller_order__seller=seller)
    refund = refund_create(order=order, order_line=line, amount_minor=500)

    refund = run(refund_submit, refund=refund)

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.processor_refund_id.startswith("re_local_")
    assert seller_balance(seller=seller, currency="USD").pending == 1800 - 450
    assert ledger_check().ok


def test_a_seller_onboards_and_is_enabled_by_the_account_event(run, seller):
    link = run(
        seller_onboarding_start,
        seller=seller,
        refresh_url="/sell/payouts/",
        return_url="/sell/payouts/return/",
    )
    seller.refresh_from_db()
    assert seller.payout_status == Seller.PayoutStatus.ONBOARDING
    assert link.url.startswith(f"/payments/local/onboarding/{seller.payout_account_id}/")

    run(local.account_complete_onboarding, account_id=seller.payout_account_id)

    seller.refresh_from_db()
    assert seller.payout_status == Seller.PayoutStatus.ENABLED


def test_unpaid_orders_expire_and_release_their_stock(run, order, settings):
    settings.PAYMENTS_ORDER_EXPIRY_MINUTES = 30
    attempt = run(payment_start, order=order)
    later = timezone.now() + timezone.timedelta(minutes=31)

    assert orders_expire_unpaid(now=later) == 1

    assert Order.objects.get().status == Order.Status.CANCELLED
    assert sorted(Product.objects.values_list("stock", flat=True)) == [5, 5]
    assert LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id).status == "canceled"


def test_backfill_stores_and_processes_events_that_never_arrived(run, order):
    from django.core.management import call_command

    attempt = payment_start(order=order)
    # Confirm without letting the delivery run: the event is "lost".
    local.payment_confirm(payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    assert not WebhookEvent.objects.exists()

    run(call_command, "webhooks_backfill", "--days", "1")
    run(call_command, "webhooks_backfill", "--days", "1")

    assert WebhookEvent.objects.filter(type="payment_intent.succeeded").count() == 1
    assert Order.objects.get().status == Order.Status.PAID


def test_an_operator_reprocesses_a_failed_event(run, order, operator_client):
    attempt = run(payment_start, order=order)
    # Make processing fail once: the order's payment cannot be read back.
    with (
        mock.patch(
            "payments.processors.local.LocalProcessor.payment_get",
            side_effect=TemporaryProcessorError("down"),
        ),
        # The task fails and asks Celery for a retry with backoff.
        pytest.raises(Retry),
    ):
        run(
            local.payment_confirm,
            payment_id=attempt.processor_payment_id,
            card_number=CARD_SUCCEEDS,
        )
    failed = WebhookEvent.objects.get(type="payment_intent.succeeded")
    assert (failed.status, failed.last_error) == ("failed", "TemporaryProcessorError: down")

    run(
        operator_client.post,
        reverse("admin:payments_webhookevent_changelist"),
        {"action": "reprocess", "_selected_action": [failed.pk]},
    )

    failed.refresh_from_db()
    assert failed.status == "processed" and failed.attempts == 2
    assert Order.objects.get().status == Order.Status.PAID


def test_the_local_processor_pages_are_off_when_stripe_is_configured(client, settings):
    settings.PAYMENTS_PROCESSOR = "stripe"
    payload = b'{"id":"evt_l","type":"t","created":1,"data":{"object":{}}}'

    response = client.post(
        reverse("payments:webhook", args=["local"]),
        payload,
        content_type="application/json",
        headers={SIGNATURE_HEADER: sign(payload)},
    )

    assert response.status_code == 404
    assert client.get(reverse("payments:local_onboarding", args=["acct_x"])).status_code == 404
    assert not WebhookEvent.objects.exists()


def test_the_card_form_never_turns_a_recorded_success_back_to_processing(run, order):
    from payments.collection.checkout import local_card_pay

    attempt = run(payment_start, order=order)
    # The success event is delivered and processed inside the confirmation itself.
    run(local_card_pay, attempt=attempt, card_number=CARD_SUCCEEDS)

    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.SUCCEEDED


def test_a_refund_that_could_not_reach_the_processor_is_sent_again(run, order, settings):
    from payments.collection.refunds import refunds_submit_pending

    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    refund = refund_create(order=order, amount_minor=500)
    settings.PAYMENTS_LOCAL_FAULTS = {"refund_create": "unavailable"}
    with pytest.raises(TemporaryProcessorError):
        run(refund_submit, refund=refund)
    assert Refund.objects.get().status == Refund.Status.PENDING

    settings.PAYMENTS_LOCAL_FAULTS = {}
    assert run(refunds_submit_pending, older_than_seconds=0) == 1

    assert Refund.objects.get().status == Refund.Status.SUCCEEDED
    assert ledger_check().ok


def test_a_second_payment_of_a_paid_order_is_refunded(run, order):
    first = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=first.processor_payment_id, card_number=CARD_SUCCEEDS)
    # A second payment for the same order appears at the processor (a stale tab).
    pay_again_from_a_stale_tab(run, order)

    duplicate = PaymentAttempt.objects.get(number=2)
    assert duplicate.status == PaymentAttempt.Status.CANCELED
    assert LocalRefund.objects.get().amount_minor == order.total_minor
    assert LedgerTransaction.objects.filter(kind="payment_captured").count() == 1
    assert ledger_check().ok


def test_a_late_failure_event_does_not_fail_a_payment_that_succeeded(run, order):
    from payments.collection.checkout import payment_failed

    attempt = run(payment_start, order=order)

    LocalPaymentIntent.objects.filter(pk=attempt.processor_payment_id).update(status="succeeded")
    payment_failed(payment_id=attempt.processor_payment_id, processor_name="local", message="late")

    attempt.refresh_from_db()
    assert attempt.status != PaymentAttempt.Status.FAILED


def test_a_dispute_closed_before_it_was_opened_is_retried_until_it_can_apply(run, order):
    from payments.collection.webhooks import webhook_event_process
    from payments.models import Dispute

    attempt = run(payment_start, order=order)
    run(local.payment_confirm, payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    dispute = {
        "object": "dispute",
        "id": "dp_local_early",
        "payment_intent": attempt.processor_payment_id,
        "amount": order.total_minor,
        "currency": "usd",
        "reason": "fraudulent",
    }
    closed = LocalEvent.objects.create(
        id="evt_closed", type="charge.dispute.closed", data=dispute | {"status": "won"}
    )
    opened = LocalEvent.objects.create(
        id="evt_opened", type="charge.dispute.created", data=dispute | {"status": "needs_response"}
    )
    with pytest.raises(Retry):
        run(local_event_deliver, closed.id)
    run(local_event_deliver, opened.id)

    stored = WebhookEvent.objects.get(event_id="evt_closed")
    run(webhook_event_process, webhook_event_id=stored.pk)

    assert Dispute.objects.get().status == Dispute.Status.WON
    assert ledger_check().ok


def test_expiry_records_a_payment_whose_event_was_lost(run, order, settings):
    attempt = run(payment_start, order=order)
    # Paid at the processor, but the event never arrives.
    local.payment_confirm(payment_id=attempt.processor_payment_id, card_number=CARD_SUCCEEDS)
    later = timezone.now() + timezone.timedelta(minutes=settings.PAYMENTS_ORDER_EXPIRY_MINUTES + 1)

    assert run(orders_expire_unpaid, now=later) == 0

    assert Order.objects.get().status == Order.Status.PAID


@pytest.mark.django_db
def test_the_one_statement_read_answers_as_the_orm_reads_did():
    """``_payout_made_and_held`` against ``LocalPayout...exists()`` and
    ``account_balance``: no rows at all, reversals, failed payouts, another currency,
    another account, and keys and accounts that would break a string-built query."""
    processor = LocalProcessor()

    def both(key: str, account: str, currency: str):
        orm = (
            LocalPayout.objects.filter(idempotency_key=key).exists(),
            processor.account_balance(account_id=account, currency=currency),
        )
        return LocalProcessor._payout_made_and_held(key, account, currency), orm

    raw, orm = both("k-1", "acct_a", "USD")
    assert raw == orm == (False, 0)  # nothing at all: no NULL, no error

    for n, (destination, currency, amount, reversed_) in enumerate(
        [
            ("acct_a", "USD", 9000, 0),
            ("acct_a", "USD", 5000, 1200),
            ("acct_a", "EUR", 700, 0),
            ("acct_b", "USD", 100000, 0),
            ("x' OR '1'='1", "USD", 3, 0),
        ]
    ):
        LocalTransfer.objects.create(
            id=f"tr_{n}",
            amount_minor=amount,
            currency=currency,
            destination=destination,
            reversed_minor=reversed_,
            idempotency_key=f"t-{n}",
        )
    for n, (account, currency, amount, status) in enumerate(
        [
            ("acct_a", "USD", 4000, "paid"),
            ("acct_a", "USD", 2500, "failed"),
            ("acct_a", "USD", 1000, "in_transit"),
            ("acct_a", "EUR", 200, "paid"),
        ]
    ):
        LocalPayout.objects.create(
            id=f"po_{n}",
            account=account,
            amount_minor=amount,
            currency=currency,
            status=status,
            idempotency_key=f"k-{n}",
        )

    cases = [
        ("k-0", "acct_a", "USD"),  # made; 9000 + 3800 - 4000 - 1000
        ("k-1", "acct_a", "USD"),  # a failed one was made with this key too
        ("k-9", "acct_a", "EUR"),
        ("k-9", "acct_b", "USD"),
        ("k-9", "acct_c", "USD"),
        ("x' OR '1'='1", "acct_a", "USD"),  # no key matches: not "made"
        ("k-9", "x' OR '1'='1", "USD"),  # only its own 3
        ("k-9", "acct_%", "USD"),  # no LIKE: nothing
    ]
    for key, account, currency in cases:
        raw, orm = both(key, account, currency)
        assert raw == orm, (key, account, currency)
    assert both("k-0", "acct_a", "USD")[0] == (True, 7800)
    assert both("k-9", "x' OR '1'='1", "USD")[0] == (False, 3)
