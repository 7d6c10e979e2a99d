"""Finding 2: the site's Pay button racing a cancel through the API. The order ends
cancelled, and the customer gets the order page with a message, not a 500."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from marketplace.models import Order
from marketplace.orders import order_cancel
from marketplace.services.orders import CartItem, place_order
from payments.collection.checkout import payment_attempt_open
from payments.ledger.locks import order_lock
from payments.models import PaymentAttempt
from tests.concurrency import race
from tests.factories import ProductFactory


def unpaid_order(customer):
    mug = ProductFactory(price_minor=1250, currency="USD", stock=5)
    return place_order(customer=customer, cart_items=[CartItem(mug.pk, 1)])


@pytest.mark.django_db
def test_an_order_cancelled_between_the_page_and_the_payment_is_shown_not_a_500(
    customer_client, customer, monkeypatch
):
    order = unpaid_order(customer)

    def cancelled_first(*, order):
        # What POST /api/v1/orders/{id}/cancel/ does meanwhile (on PostgreSQL the page's
        # read under the order's lock makes it wait: the race test below).
        order_cancel(order=order)
        return payment_attempt_open(order=order_lock(order.pk))

    monkeypatch.setattr("marketplace.views.checkout.payment_attempt_open", cancelled_first)

    response = customer_client.post(
        reverse("marketplace:order_pay", args=[order.pk]), {"card_number": "4242424242424242"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("marketplace:order_detail", args=[order.pk])
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"Order #{order.pk} is not waiting for a payment."
    ]
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert not PaymentAttempt.objects.filter(order=order).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pay_and_an_api_cancel_at_once_end_cancelled_with_the_order_page(customer):
    order = unpaid_order(customer)
    client = Client()
    client.force_login(customer)
    url = reverse("marketplace:order_pay", args=[order.pk])

    # The cancel holds the order's lock while the Pay request runs: the page read the
    # order as awaiting payment, and payment_start meets it cancelled.
    outcome = race(
        lambda: order_cancel(order=order),
        lambda: client.post(url, {"card_number": "4242424242424242"}),
    )

    response = outcome.get("value")
    assert response is not None, outcome
    assert response.status_code == 302
    assert response["Location"] == reverse("marketplace:order_detail", args=[order.pk])
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert not PaymentAttempt.objects.filter(order=order).exists()
