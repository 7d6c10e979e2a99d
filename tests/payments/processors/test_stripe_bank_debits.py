"""Delayed-notification payments with Stripe (SEPA Direct Debit, ACH), against the
strict stateful fake: the PaymentIntent is made with automatic payment methods;
``payment_intent.processing``, then ``succeeded`` or ``payment_failed`` (days later),
go through the same services as the local processor's, with the method read from
Stripe's payload; Stripe refuses to cancel a processing intent, and expiry copes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketplace.models import Order, Product
from marketplace.services.orders import CartItem, place_order
from payments.checks import ledger_check
from payments.collection.checkout import payment_start
from payments.collection.expiry import orders_expire_unpaid
from payments.collection.webhooks import payment_method_type_of
from payments.models import LedgerTransaction, PaymentAttempt
from payments.processors.base import InvalidProcessorRequest
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.payments.processors.stripe_server import FakeStripe, processor_on, use_fake_stripe

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(settings, monkeypatch) -> FakeStripe:
    return use_fake_stripe(settings, monkeypatch, now=time.time())


@pytest.fixture
def order(customer, seller):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=5000, stock=2)
    return place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])


class Deliveries:
    """Stripe's deliveries to our endpoint: every event not delivered yet, in order."""

    def __init__(self, client, run, server: FakeStripe) -> None:
        self.client, self.run, self.server, self.done = client, run, server, 0

    def __call__(self, *, only: str | None = None) -> None:
        while self.done < len(self.server.events):
            event = self.server.events[self.done]
            self.done += 1
            if only is not None and event["type"] != only:
                continue
            payload, headers = self.server.signed_delivery(event, "platform")
            response = self.run(
                self.client.post,
                reverse("payments:webhook", kwargs={"processor": "stripe"}),
                payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
            )
            assert response.status_code == 200, response.content


@pytest.fixture
def deliver(client, run, server):
    return Deliveries(client, run, server)


def test_the_payment_intent_offers_the_accounts_methods(run, server, order):
    attempt = run(payment_start, order=order)

    intent = server.get(attempt.processor_payment_id)

    assert intent["automatic_payment_methods"]["enabled"] is True
    assert "sepa_debit" in intent["payment_method_types"]


@pytest.mark.parametrize("method", ["sepa_debit", "us_bank_account"])
def test_a_debit_is_processing_then_paid_through_the_same_services(
    run, server, deliver, order, method
):
    attempt = run(payment_start, order=order)

    server.process_payment(attempt.processor_payment_id, method=method)
    deliver()

    attempt.refresh_from_db()
    order.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.PROCESSING
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert not LedgerTransaction.objects.exists()

    server.succeed_payment(attempt.processor_payment_id, fee=120)
    deliver()

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.PAID and order.paid_at is not None
    assert (attempt.status, attempt.payment_method_type) == ("succeeded", method)
    assert LedgerTransaction.objects.filter(kind="payment_captured").count() == 1
    assert ledger_check().ok


def test_a_debit_that_fails_after_processing_cancels_the_order(
    run, server, deliver, order, mailoutbox
):
    attempt = run(payment_start, order=order)
    server.process_payment(attempt.processor_payment_id)
    deliver()

    server.fail_payment(attempt.processor_payment_id)
    deliver()

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert (attempt.status, attempt.payment_method_type) == ("failed", "sepa_debit")
    assert "insufficient funds" in attempt.failure_message
    assert Product.objects.get().stock == 2
    assert not LedgerTransaction.objects.exists()
    assert [m.subject for m in mailoutbox] == [f"Your payment for order #{order.pk} failed"]


def test_the_failure_alone_still_cancels_when_the_processing_event_is_lost(
    run, server, deliver, order
):
    attempt = run(payment_start, order=order)
    server.process_payment(attempt.processor_payment_id)
    server.fail_payment(attempt.processor_payment_id)

    deliver(only="payment_intent.payment_failed")

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED


def test_the_processing_event_after_the_success_changes_nothing(run, server, deliver, order):
    attempt = run(payment_start, order=order)
    server.process_payment(attempt.processor_payment_id)
    server.succeed_payment(attempt.processor_payment_id)
    events = list(server.events)
    # Delivered out of order: the success first, then the processing event.
    server.events[:] = [e for e in events if e["type"] == "payment_intent.succeeded"] + [
        e for e in events if e["type"] != "payment_intent.succeeded"
    ]

    deliver()

    order.refresh_from_db()
    attempt.refresh_from_db()
    assert order.status == Order.Status.PAID and attempt.status == "succeeded"


def test_stripe_refuses_to_cancel_a_processing_intent_and_expiry_keeps_the_order(
    run, server, deliver, order
):
    attempt = run(payment_start, order=order)
    server.process_payment(attempt.processor_payment_id)

    with pytest.raises(InvalidProcessorRequest):
        processor_on(server).payment_cancel(
            payment_id=attempt.processor_payment_id, idempotency_key="cancel-x"
        )
    # Before the processing event arrives, and after.
    assert orders_expire_unpaid(now=timezone.now() + timedelta(hours=3)) == 0
    deliver()
    assert orders_expire_unpaid(now=timezone.now() + timedelta(days=3)) == 0

    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert server.get(attempt.processor_payment_id)["status"] == "processing"


def test_a_card_decline_with_stripe_keeps_the_order_for_another_try(run, server, order):
    from payments.collection.checkout import payment_failed

    attempt = run(payment_start, order=order)
    intent = server.get(attempt.processor_payment_id)
    intent["last_payment_error"] = {
        "message": "Your card was declined.",
        "payment_method": {"type": "card"},
    }

    failure = payment_failed(
        payment_id=attempt.processor_payment_id,
        processor_name="stripe",
        message="Your card was declined.",
        method_type=payment_method_type_of(intent),
    )

    order.refresh_from_db()
    assert failure is not None and not failure.order_cancelled
    assert order.status == Order.Status.AWAITING_PAYMENT


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"latest_charge": {"payment_method_details": {"type": "sepa_debit"}}}, "sepa_debit"),
        (
            {"last_payment_error": {"payment_method": {"type": "us_bank_account"}}},
            "us_bank_account",
        ),
        ({"payment_method": {"type": "card"}}, "card"),
        ({"payment_method_types": ["sepa_debit"]}, "sepa_debit"),
        ({"payment_method_types": ["card", "sepa_debit"], "latest_charge": "ch_1"}, ""),
        ({"last_payment_error": None, "payment_method": "pm_1"}, ""),
    ],
)
def test_the_payment_method_type_is_read_from_stripes_payload(data, expected):
    assert payment_method_type_of(data) == expected


def test_back_from_stripes_page_the_order_shows_the_debit_processing_at_once(
    client, run, server, order, customer
):
    attempt = run(payment_start, order=order)
    server.process_payment(attempt.processor_payment_id)  # its event not delivered yet
    client.force_login(customer)

    page = client.get(
        reverse("marketplace:order_detail", args=[order.pk]),
        {"payment_intent": attempt.processor_payment_id, "redirect_status": "processing"},
    ).content.decode()

    assert "Payment processing" in page and "bank debits take a few days" in page
    attempt.refresh_from_db()
    assert (attempt.status, attempt.payment_method_type) == ("processing", "sepa_debit")
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT


def test_a_return_naming_another_payment_changes_nothing(client, run, server, order, customer):
    attempt = run(payment_start, order=order)
    client.force_login(customer)

    client.get(reverse("marketplace:order_detail", args=[order.pk]), {"payment_intent": "pi_other"})

    attempt.refresh_from_db()
    assert attempt.status == PaymentAttempt.Status.CREATED
