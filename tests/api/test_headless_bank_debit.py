"""Headless checkout by bank debit: the confirm call takes a test IBAN (exactly one of
``card_number`` and ``iban``), the payment reads ``processing`` with its method until
the debit settles, then the order is paid (or cancelled if the debit fails)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import Order
from payments.models import LedgerTransaction, PaymentAttempt
from payments.processors.local import IBAN_FAILS, IBAN_SUCCEEDS, local_debits_settle
from tests.api.test_headless_checkout import buyer, order, payment_url, post, products  # noqa: F401

pytestmark = pytest.mark.django_db


def test_an_iban_confirms_a_processing_payment_read_until_paid(run, buyer, order):  # noqa: F811
    post(run, buyer, payment_url(order.pk))

    confirmed = post(run, buyer, payment_url(order.pk, "confirm"), {"iban": IBAN_SUCCEEDS})

    assert confirmed.status_code == 200, confirmed.json()
    body = confirmed.json()
    assert (body["status"], body["payment_method_type"]) == ("processing", "bank_debit")
    assert body["order_status"] == "awaiting_payment" and body["next_action"] is None
    assert buyer.get(payment_url(order.pk)).json()["status"] == "processing"
    assert not LedgerTransaction.objects.exists()

    run(local_debits_settle, now=timezone.now() + timedelta(days=4))

    read = buyer.get(payment_url(order.pk)).json()
    assert (read["order_status"], read["status"]) == ("paid", "succeeded")
    assert read["payment_method_type"] == "bank_debit"


def test_a_failing_iban_ends_with_the_order_cancelled(run, buyer, order):  # noqa: F811
    post(run, buyer, payment_url(order.pk))
    post(run, buyer, payment_url(order.pk, "confirm"), {"iban": IBAN_FAILS})

    run(local_debits_settle, now=timezone.now() + timedelta(days=4))

    read = buyer.get(payment_url(order.pk)).json()
    assert (read["order_status"], read["status"]) == ("cancelled", "failed")
    assert "insufficient funds" in read["failure_message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"card_number": "4242 4242 4242 4242", "iban": IBAN_SUCCEEDS},
        {"card_number": "", "iban": "  "},
    ],
    ids=["neither", "both", "blank"],
)
def test_exactly_one_of_card_and_iban_or_a_400_with_nothing_changed(run, buyer, order, body):  # noqa: F811
    post(run, buyer, payment_url(order.pk))

    refused = post(run, buyer, payment_url(order.pk, "confirm"), body)

    assert refused.status_code == 400, refused.json()
    assert refused["Content-Type"].startswith("application/problem+json")
    assert order.payment_attempts.get().status == PaymentAttempt.Status.CREATED
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT


def test_an_iban_that_is_not_a_test_one_is_refused_with_its_param(run, buyer, order):  # noqa: F811
    post(run, buyer, payment_url(order.pk))

    refused = post(run, buyer, payment_url(order.pk, "confirm"), {"iban": "DE89370400440532013000"})

    assert refused.status_code == 402
    assert (refused.json()["code"], refused.json()["param"]) == ("invalid_iban", "iban")
    assert order.payment_attempts.get().status == PaymentAttempt.Status.CREATED
