"""Headless checkout: an order paid through the API (``/api/v1/orders/{id}/payment/…``).

Local processor: its events are delivered by tasks queued after commit, run here
by the ``run`` fixture (eager Celery, on-commit callbacks executed), as a worker
would. Stripe: the real adapter against the strict stateful fake (``FakeStripe``),
nothing leaves the process.
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from marketplace.models import Order
from payments.checks import ledger_check
from payments.models import LedgerEntry, LedgerTransaction, LocalPaymentIntent, PaymentAttempt
from payments.processors.local import CARD_DECLINED, CARD_REQUIRES_ACTION
from tests.api.shapes import SHIPPING
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.money_helpers import pay_by_card

pytestmark = pytest.mark.django_db

CARD_PAYS = "4242 4242 4242 4242"


def payment_url(order_id, step=""):
    names = {"": "api:order-payment", "confirm": "api:order-payment-confirm"}
    names["authenticate"] = "api:order-payment-authenticate"
    return reverse(names[step], args=[order_id])


@pytest.fixture
def products(seller, other_seller, category):
    CommissionRuleFactory(percentage_bps=1000)
    return [
        ProductFactory(seller=seller, category=category, title="Mug", price_minor=1250, stock=5),
        ProductFactory(
            seller=other_seller, category=category, title="Vase", price_minor=4000, stock=5
        ),
    ]


@pytest.fixture
def buyer(api_as, customer):
    return api_as(customer)


@pytest.fixture
def order(buyer, products):
    """An order of a mug (Acme) and a vase (Rival), placed through the API."""
    items = [{"product": product.pk, "quantity": 1} for product in products]
    response = buyer.post(
        reverse("api:order-list"), {"items": items, "shipping": SHIPPING}, format="json"
    )
    assert response.status_code == 201, response.json()
    return Order.objects.get(pk=response.json()["id"])


def post(run, client, url, body=None, **headers):
    """A POST whose queued tasks (the processor's events) run once it commits."""
    return run(client.post, url, body or {}, format="json", **headers)


def captures_of(order):
    return LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.PAYMENT_CAPTURED, reference_id=str(order.pk)
    ).count()


# --- Local processor ------------------------------------------------------------------


def test_an_order_is_started_confirmed_and_read_until_paid(run, buyer, order):
    started = post(run, buyer, payment_url(order.pk))
    confirmed = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})
    read = buyer.get(payment_url(order.pk))

    assert started.status_code == 200
    intent = LocalPaymentIntent.objects.get()
    assert started.json() == {
        "order": order.pk,
        "order_status": "awaiting_payment",
        "status": "created",
        "payment_method_type": "",
        "processor": "local",
        "payment_intent": intent.id,
        "client_secret": intent.client_secret,
        "next_action": None,
        "amount_minor": 5250,
        "currency": "USD",
        "failure_message": "",
    }
    # Confirmed: paid at the processor; the order waits for the processor's event.
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "processing"
    assert confirmed.json()["payment_method_type"] == "card"
    assert read.status_code == 200
    assert read.json()["order_status"] == "paid"
    assert read.json()["status"] == "succeeded"
    assert read.json()["next_action"] is None
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert captures_of(order) == 1
    assert ledger_check().ok


def test_starting_again_resumes_the_open_attempt(run, buyer, order):
    first = post(run, buyer, payment_url(order.pk)).json()
    again = post(run, buyer, payment_url(order.pk)).json()

    assert again == first
    assert PaymentAttempt.objects.filter(order=order).count() == 1
    assert LocalPaymentIntent.objects.count() == 1


def test_a_declined_card_then_a_good_one_pays_once_with_two_attempts(run, buyer, order):
    post(run, buyer, payment_url(order.pk))
    declined = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_DECLINED})
    after_decline = buyer.get(payment_url(order.pk)).json()
    retry_same = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})
    restarted = post(run, buyer, payment_url(order.pk))
    paid = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})

    assert declined.status_code == 402
    assert declined["Content-Type"] == "application/problem+json"
    assert declined.json()["code"] == "card_declined"
    assert declined.json()["param"] == "card_number"
    assert declined.json()["detail"] == "Your card was declined."
    assert after_decline["status"] == "failed"
    assert after_decline["failure_message"] == "Your card was declined."
    assert after_decline["order_status"] == "awaiting_payment"
    # The failed attempt is over: a new one is started, as on the site.
    assert retry_same.status_code == 409 and retry_same.json()["code"] == "invalid_state"
    assert restarted.status_code == 200 and restarted.json()["status"] == "created"
    assert restarted.json()["payment_intent"] != after_decline["payment_intent"]
    assert paid.status_code == 200
    attempts = list(order.payment_attempts.order_by("number").values_list("status", flat=True))
    assert attempts == [PaymentAttempt.Status.CANCELED, PaymentAttempt.Status.SUCCEEDED]
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert captures_of(order) == 1


def test_a_number_that_is_not_a_test_card_is_refused_with_its_param(run, buyer, order):
    post(run, buyer, payment_url(order.pk))

    refused = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": "4111 1111"})

    assert refused.status_code == 402
    assert refused.json()["code"] == "invalid_number"
    assert refused.json()["param"] == "card_number"
    assert order.payment_attempts.get().status == PaymentAttempt.Status.FAILED
    assert captures_of(order) == 0


def test_the_3d_secure_card_asks_for_a_confirmation_then_pays(run, buyer, order):
    post(run, buyer, payment_url(order.pk))
    confirmed = post(
        run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_REQUIRES_ACTION}
    )
    waiting = buyer.get(payment_url(order.pk)).json()
    approved = post(run, buyer, payment_url(order.pk, "authenticate"), {"approve": True})

    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "requires_action"
    assert confirmed.json()["next_action"] == {
        "type": "local_authenticate",
        "url": f"/api/v1/orders/{order.pk}/payment/authenticate/",
    }
    assert waiting["next_action"] == confirmed.json()["next_action"]
    assert waiting["order_status"] == "awaiting_payment"
    assert approved.status_code == 200
    assert approved.json()["next_action"] is None
    assert buyer.get(payment_url(order.pk)).json()["order_status"] == "paid"
    assert captures_of(order) == 1


def test_a_refused_3d_secure_confirmation_fails_the_attempt(run, buyer, order):
    post(run, buyer, payment_url(order.pk))
    post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_REQUIRES_ACTION})
    refused = post(run, buyer, payment_url(order.pk, "authenticate"), {"approve": False})
    again = post(run, buyer, payment_url(order.pk, "authenticate"), {"approve": True})

    assert refused.status_code == 402
    assert refused.json()["code"] == "payment_intent_authentication_failure"
    read = buyer.get(payment_url(order.pk)).json()
    assert read["status"] == "failed" and read["order_status"] == "awaiting_payment"
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT
    assert captures_of(order) == 0


@pytest.mark.parametrize("approve", ["true", 1, "yes", None])
def test_the_confirmation_answer_is_a_json_boolean(run, buyer, order, approve):
    post(run, buyer, payment_url(order.pk))
    post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_REQUIRES_ACTION})

    response = post(run, buyer, payment_url(order.pk, "authenticate"), {"approve": approve})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "approve" in response.json()["errors"]
    assert order.payment_attempts.get().status == PaymentAttempt.Status.REQUIRES_ACTION


def test_someone_elses_order_is_not_found(run, api_as, other_customer, order):
    stranger = api_as(other_customer)
    post(run, stranger, payment_url(order.pk))  # would start a payment if it were theirs

    answers = [
        post(run, stranger, payment_url(order.pk)),
        stranger.get(payment_url(order.pk)),
        post(run, stranger, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS}),
        post(run, stranger, payment_url(order.pk, "authenticate"), {"approve": True}),
    ]

    assert [answer.status_code for answer in answers] == [404] * 4
    assert {answer.json()["code"] for answer in answers} == {"not_found"}
    assert not PaymentAttempt.objects.exists()


def test_paying_needs_a_token(api, order):
    assert api.post(payment_url(order.pk), {}, format="json").status_code == 401
    assert not PaymentAttempt.objects.exists()


def test_a_payment_is_read_only_once_started(buyer, order):
    response = buyer.get(payment_url(order.pk))

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_paid_order_cannot_be_paid_again(run, buyer, order):
    post(run, buyer, payment_url(order.pk))
    post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})

    again = post(run, buyer, payment_url(order.pk))
    confirm = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})

    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    assert confirm.status_code == 409 and confirm.json()["code"] == "invalid_state"
    assert order.payment_attempts.count() == 1
    assert captures_of(order) == 1


def test_a_cancelled_order_cannot_be_paid(run, buyer, order):
    cancelled = post(run, buyer, reverse("api:order-cancel", args=[order.pk]))

    started = post(run, buyer, payment_url(order.pk))

    assert cancelled.status_code == 200
    assert started.status_code == 409 and started.json()["code"] == "invalid_state"
    assert not PaymentAttempt.objects.exists()


def test_a_retry_with_the_same_idempotency_key_replays_the_answer(run, buyer, order):
    post(run, buyer, payment_url(order.pk))
    key = {"HTTP_IDEMPOTENCY_KEY": "confirm-order-1"}
    body = {"card_number": CARD_PAYS}

    first = post(run, buyer, payment_url(order.pk, "confirm"), body, **key)
    retry = post(run, buyer, payment_url(order.pk, "confirm"), body, **key)

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert captures_of(order) == 1


def test_a_payment_start_is_replayed_under_its_key(run, buyer, order):
    key = {"HTTP_IDEMPOTENCY_KEY": "start-order-1"}

    first = post(run, buyer, payment_url(order.pk), **key)
    retry = post(run, buyer, payment_url(order.pk), **key)

    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert PaymentAttempt.objects.count() == 1


def test_a_processor_that_does_not_answer_is_503_with_retry_after(run, buyer, order, settings):
    settings.PAYMENTS_LOCAL_FAULTS = {"payment_create": "unavailable"}

    response = post(run, buyer, payment_url(order.pk))

    assert response.status_code == 503
    assert response["Retry-After"]
    # The attempt is kept without a processor id: the retry reuses its key.
    attempt = order.payment_attempts.get()
    assert attempt.processor_payment_id == ""
    settings.PAYMENTS_LOCAL_FAULTS = {}
    assert post(run, buyer, payment_url(order.pk)).json()["payment_intent"]
    assert order.payment_attempts.count() == 1


def test_an_order_paid_through_the_api_has_the_ledger_of_one_paid_on_the_site(
    run, buyer, order, products, customer
):
    """The same items paid on the site's path (``pay_by_card``, as the payment page
    does) and through the API: the same splits and the same ledger entries."""
    on_site = Order.objects.get(
        pk=buyer.post(
            reverse("api:order-list"),
            {"items": [{"product": p.pk, "quantity": 1} for p in products], "shipping": SHIPPING},
            format="json",
        ).json()["id"]
    )
    pay_by_card(run, on_site)
    post(run, buyer, payment_url(order.pk))
    post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})

    def books(paid):
        paid.refresh_from_db()
        splits = sorted(
            paid.seller_orders.values_list(
                "seller__slug", "gross_minor", "commission_minor", "seller_share_minor"
            )
        )
        entries = sorted(
            LedgerEntry.objects.filter(
                transaction__reference_type="order", transaction__reference_id=str(paid.pk)
            ).values_list(
                "transaction_kind", "account__kind", "account__seller__slug", "amount_minor"
            )
        )
        return paid.status, paid.total_minor, splits, entries

    assert books(order) == books(on_site)
    status, total, splits, entries = books(order)
    assert status == Order.Status.PAID and total == 5250
    # 10% commission: Acme's mug 1250 → 125; Rival's vase 4000 → 400.
    assert splits == [("acme", 1250, 125, 1125), ("rival", 4000, 400, 3600)]
    assert entries
    assert ledger_check().ok


# --- Stripe ---------------------------------------------------------------------------


@pytest.fixture
def stripe_server(settings, monkeypatch):
    """Stripe is the processor, and Stripe is the strict stateful fake."""
    from tests.payments.processors.stripe_server import use_fake_stripe

    return use_fake_stripe(settings, monkeypatch, now=time.time())


def test_with_stripe_the_start_returns_the_client_secret_and_next_action(
    run, buyer, order, stripe_server
):
    started = post(run, buyer, payment_url(order.pk))
    confirm = post(run, buyer, payment_url(order.pk, "confirm"), {"card_number": CARD_PAYS})

    assert started.status_code == 200
    body = started.json()
    attempt = order.payment_attempts.get()
    assert body["processor"] == "stripe"
    assert body["payment_intent"] == attempt.processor_payment_id
    assert body["payment_intent"].startswith("pi_")
    assert body["client_secret"] == f"{attempt.processor_payment_id}_secret_fake"
    assert body["next_action"] is None  # a new PaymentIntent waits for a payment method
    assert body["amount_minor"] == 5250 and body["currency"] == "USD"
    # Stripe's payments are confirmed by Stripe.js with the client_secret, not here.
    assert confirm.status_code == 409
    assert "Stripe.js" in confirm.json()["detail"]


def test_with_stripe_a_resumed_payment_shows_stripes_next_action(run, buyer, order, stripe_server):
    """The customer's card asked for 3-D Secure in Stripe.js: resuming (or reading) the
    payment shows the PaymentIntent's ``next_action`` as Stripe sends it."""
    started = post(run, buyer, payment_url(order.pk)).json()
    redirect = {
        "type": "redirect_to_url",
        "redirect_to_url": {
            "url": "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1",
            "return_url": "https://shop.example/return",
        },
    }
    # What Stripe.js's confirmation leaves on the PaymentIntent.
    stripe_server._objects[started["payment_intent"]].update(
        status="requires_action", next_action=redirect
    )

    resumed = post(run, buyer, payment_url(order.pk))
    read = buyer.get(payment_url(order.pk))

    assert resumed.status_code == 200
    assert resumed.json()["payment_intent"] == started["payment_intent"]
    assert resumed.json()["next_action"] == redirect
    assert read.json()["next_action"] == redirect


def test_a_503_after_the_order_was_placed_does_not_place_it_twice_on_retry(
    api_as, customer, mug, monkeypatch
):
    from django.db import InterfaceError

    from marketplace.api.views import OrderViewSet

    real = OrderViewSet.get_queryset
    calls = {"n": 0}

    def connection_lost_once(self):
        calls["n"] += 1
        if calls["n"] == 1:  # the read after place_order committed
            raise InterfaceError("connection already closed")
        return real(self)

    monkeypatch.setattr(OrderViewSet, "get_queryset", connection_lost_once)
    client = api_as(customer)
    body = {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING}

    first = client.post(reverse("api:order-list"), body, format="json", HTTP_IDEMPOTENCY_KEY="o-1")
    retry = client.post(reverse("api:order-list"), body, format="json", HTTP_IDEMPOTENCY_KEY="o-1")

    # The 5xx is kept under its key, as Stripe keeps the result of a request that
    # started: the retry gets the same answer, and the order is not placed twice.
    assert first.status_code == 503 and first.json()["detail"]
    assert retry.status_code == 503
    assert retry["Idempotent-Replayed"] == "true"
    assert Order.objects.filter(customer=customer).count() == 1


def test_a_temporary_processor_failure_frees_its_key_for_the_retry(
    api_as, customer, mug, monkeypatch
):
    """The payment services make a processor's 503 safe to retry with the same key
    (the attempt keeps its own processor idempotency key)."""
    from payments.processors.base import TemporaryProcessorError
    from payments.processors.local import LocalProcessor

    client = api_as(customer)
    body = {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING}
    order = client.post(reverse("api:order-list"), body, format="json").json()
    url = reverse("api:order-payment", args=[order["id"]])
    real = LocalProcessor.payment_create

    def down_once(self, **kwargs):
        monkeypatch.setattr(LocalProcessor, "payment_create", real)
        raise TemporaryProcessorError("The processor timed out.")

    monkeypatch.setattr(LocalProcessor, "payment_create", down_once)
    first = client.post(url, HTTP_IDEMPOTENCY_KEY="pay-1")
    retry = client.post(url, HTTP_IDEMPOTENCY_KEY="pay-1")

    assert first.status_code == 503
    assert retry.status_code == 200, retry.json()
    assert "Idempotent-Replayed" not in retry
    assert retry.json()["payment_intent"]
