"""The checkout form places one order, however often it is submitted.

Each time the form is shown it carries a one-time token; the order is written
with it (``CheckoutSubmission``, unique token), so a second submit of the same
form, after the first or at the same instant, shows the first order instead of
placing another.
"""

import secrets
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from marketplace.kernel.errors import OutOfStock
from marketplace.models import CartItem, CheckoutSubmission, Order, Product
from marketplace.services.cart import FORM_EXPIRED, CartStorage, checkout_submit
from marketplace.services.orders import ShippingAddress
from tests.concurrency import race
from tests.factories import ProductFactory, UserFactory

SHIPPING = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
CHECKOUT = reverse("marketplace:checkout", args=["USD"])


@pytest.fixture
def teapot(seller):
    return ProductFactory(seller=seller, title="Teapot", price_minor=2500, stock=10)


def fill_cart(user, product, quantity=2):
    CartItem.objects.create(user=user, product=product, quantity=quantity)


def shown_form(client):
    """The checkout form as the page gives it to a browser: the address typed in, and
    the page's hidden one-time token."""
    form = client.get(CHECKOUT).context["form"]
    return SHIPPING | {"submission_token": form["submission_token"].value()}


def stock(product):
    return Product.objects.get(pk=product.pk).stock


@pytest.mark.django_db
def test_submitting_the_same_form_twice_places_one_order_and_shows_it_twice(
    customer_client, customer, teapot
):
    fill_cart(customer, teapot)
    form = shown_form(customer_client)

    first = customer_client.post(CHECKOUT, form)
    second = customer_client.post(CHECKOUT, form)  # the back button, or a late double click

    order = Order.objects.get()
    assert first.status_code == second.status_code == 302
    assert first.url == second.url == reverse("marketplace:order_pay", args=[order.pk])
    assert stock(teapot) == 8
    assert CheckoutSubmission.objects.get().order == order


@pytest.mark.django_db
def test_resubmitting_an_old_form_after_filling_the_cart_again_places_nothing(
    customer_client, customer, teapot
):
    """The token names the submit, not the cart: the old form shows the old order and
    the new cart waits for a checkout of its own."""
    fill_cart(customer, teapot)
    form = shown_form(customer_client)
    first = customer_client.post(CHECKOUT, form)
    fill_cart(customer, teapot, 1)

    again = customer_client.post(CHECKOUT, form)

    assert again.url == first.url
    assert Order.objects.count() == 1
    assert stock(teapot) == 8
    assert CartItem.objects.get(user=customer).quantity == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    [None, "", "not a token", "x" * 43 + "=", secrets.token_urlsafe(32) + "A", "é" * 43],
    ids=["missing", "empty", "garbled", "bad-character", "too-long", "not-ascii"],
)
def test_a_missing_or_garbled_token_is_a_form_error_and_writes_nothing(
    customer_client, customer, teapot, token
):
    fill_cart(customer, teapot)
    data = SHIPPING if token is None else SHIPPING | {"submission_token": token}

    response = customer_client.post(CHECKOUT, data)

    assert response.status_code == 200
    form = response.context["form"]
    assert form.non_field_errors() == [FORM_EXPIRED]
    assert FORM_EXPIRED in response.content.decode()
    assert not Order.objects.exists()
    assert not CheckoutSubmission.objects.exists()
    assert stock(teapot) == 10
    assert CartItem.objects.get(user=customer).quantity == 2
    # The form comes back with the address kept and a fresh token: submitting it works.
    again = {name: form[name].value() for name in form.fields}
    assert again["submission_token"] != token and again["line1"] == SHIPPING["line1"]
    placed = customer_client.post(CHECKOUT, again | {"line2": ""})
    assert placed.url == reverse("marketplace:order_pay", args=[Order.objects.get().pk])


@pytest.mark.django_db
def test_another_customers_token_does_not_reveal_their_order(client, customer, teapot):
    fill_cart(customer, teapot)
    client.force_login(customer)
    alices_form = shown_form(client)
    client.post(CHECKOUT, alices_form)
    alices_order = Order.objects.get()
    bob = UserFactory()
    fill_cart(bob, teapot, 1)
    client.force_login(bob)

    response = client.post(CHECKOUT, alices_form)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [FORM_EXPIRED]
    assert reverse("marketplace:order_pay", args=[alices_order.pk]) not in (
        response.content.decode()
    )
    assert list(Order.objects.all()) == [alices_order]
    assert stock(teapot) == 8
    # Bob's own checkout goes through with the fresh token the page gave him.
    fresh = response.context["form"]["submission_token"].value()
    assert fresh != alices_form["submission_token"]
    placed = client.post(CHECKOUT, alices_form | {"submission_token": fresh})
    bobs_order = Order.objects.get(customer=bob)
    assert placed.url == reverse("marketplace:order_pay", args=[bobs_order.pk])
    assert stock(teapot) == 7


@pytest.mark.django_db
def test_a_token_whose_checkout_failed_can_be_used_again(customer, teapot):
    """Nothing is written when the order is refused, the token included."""
    fill_cart(customer, teapot)
    Product.objects.filter(pk=teapot.pk).update(stock=1)
    submit = {
        "storage": CartStorage(user=customer),
        "customer": customer,
        "currency": "USD",
        "shipping": ShippingAddress(**SHIPPING),
        "submission_token": secrets.token_urlsafe(32),
    }

    with pytest.raises(OutOfStock):
        checkout_submit(**submit)
    assert not CheckoutSubmission.objects.exists()
    Product.objects.filter(pk=teapot.pk).update(stock=10)

    order = checkout_submit(**submit)

    assert CheckoutSubmission.objects.get().order == order
    assert stock(teapot) == 8


def post_together(clients, data):
    """POST the same form from each client, all released at the same moment (real
    threads, each with its own database connection); returns responses or errors."""
    barrier, results, lock = threading.Barrier(len(clients)), [], threading.Lock()

    def submit(client):
        try:
            barrier.wait(10)
            result = client.post(CHECKOUT, data)
        except Exception as exc:
            result = exc
        finally:
            connection.close()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=submit, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_double_click_at_the_same_instant_places_one_order(customer, teapot):
    fill_cart(customer, teapot)
    form = SHIPPING | {"submission_token": secrets.token_urlsafe(32)}

    responses = post_together([logged_in(customer), logged_in(customer)], form)

    order = Order.objects.get()  # exactly one
    pay = reverse("marketplace:order_pay", args=[order.pk])
    assert [(r.status_code, r.url) for r in responses] == [(302, pay), (302, pay)], responses
    assert stock(teapot) == 8
    assert CheckoutSubmission.objects.get().order == order
    assert not CartItem.objects.filter(user=customer).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_submit_that_waits_for_the_first_one_shows_the_first_order(customer, teapot):
    """The first submit's transaction is still open when the second arrives: the second
    reads the cart still full, waits for the first to commit, then finds its order."""
    fill_cart(customer, teapot)
    form = SHIPPING | {"submission_token": secrets.token_urlsafe(32)}
    first_client, second_client = logged_in(customer), logged_in(customer)
    first = {}

    outcome = race(
        lambda: first.setdefault("response", first_client.post(CHECKOUT, form)),
        lambda: second_client.post(CHECKOUT, form),
    )

    order = Order.objects.get()
    pay = reverse("marketplace:order_pay", args=[order.pk])
    assert "error" not in outcome, outcome
    assert first["response"].url == outcome["value"].url == pay
    assert stock(teapot) == 8
