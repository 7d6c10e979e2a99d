"""The payment page's bank debit form, and what the order page and the order list say
while a debit is processing, once it is paid, and once it failed (test client, local
processor)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketplace.models import Order
from marketplace.services.orders import CartItem, place_order
from payments.models import LocalPaymentIntent, PaymentAttempt
from payments.processors.local import IBAN_FAILS, IBAN_SUCCEEDS, local_debits_settle
from tests.factories import CommissionRuleFactory, ProductFactory

pytestmark = pytest.mark.django_db

DEBIT = {"method": "bank_debit", "debit-iban": "AT61 1904 3002 3457 3201", "debit-mandate": "on"}


@pytest.fixture
def order(customer, seller):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, title="Teapot", price_minor=2500, stock=3)
    return place_order(customer=customer, cart_items=[CartItem(product.pk, 1)])


@pytest.fixture
def pay(client, customer, order):
    client.force_login(customer)
    return reverse("marketplace:order_pay", args=[order.pk])


def page(client, order):
    return client.get(reverse("marketplace:order_detail", args=[order.pk])).content.decode()


def test_the_payment_page_offers_card_and_bank_debit_with_the_test_ibans(client, pay):
    html = client.get(pay).content.decode()

    assert "Card</h2>" in html and "Bank debit (IBAN)</h2>" in html
    assert 'name="method" value="bank_debit"' in html and 'name="debit-iban"' in html
    assert 'for="id_debit-iban"' in html and 'for="id_card_number"' in html
    assert "AT61\N{NO-BREAK SPACE}1904" in html and "Test IBANs" in html


def test_paying_by_bank_debit_shows_processing_then_paid(client, pay, order, run):
    response = run(client.post, pay, DEBIT)

    assert response.url == reverse("marketplace:order_detail", args=[order.pk])
    attempt = order.payment_attempts.get()
    assert (attempt.status, attempt.payment_method_type) == ("processing", "bank_debit")
    html = page(client, order)
    assert "Payment processing" in html and "bank debits take a few days" in html
    assert "hx-get" in html  # the live status keeps looking
    listing = client.get(reverse("marketplace:order_list")).content.decode()
    assert "Payment processing — bank debits take a few days" in listing
    # Back to the payment page: nothing to pay while the debit is under way.
    assert client.get(pay).url == reverse("marketplace:order_detail", args=[order.pk])

    run(local_debits_settle, now=timezone.now() + timedelta(days=4))

    assert "Your payment was received on" in page(client, order)


def test_a_failed_debit_shows_payment_failed_order_cancelled(client, pay, order, run):
    run(client.post, pay, DEBIT | {"debit-iban": IBAN_FAILS})

    run(local_debits_settle, now=timezone.now() + timedelta(days=4))

    html = page(client, order)
    assert "Payment failed — order cancelled." in html and "insufficient funds" in html
    listing = client.get(reverse("marketplace:order_list")).content.decode()
    assert "Payment failed — order cancelled" in listing


@pytest.mark.parametrize(
    ("posted", "field", "message"),
    [
        ({"debit-iban": "AT61 1904 3002 3457 3209"}, "iban", "Enter a valid IBAN"),
        ({"debit-iban": ""}, "iban", "This field is required."),
        ({"debit-iban": "DE89 3704 0044 0532 0130 00"}, "iban", "test IBANs"),
        ({"debit-mandate": ""}, "mandate", "Tick the box to authorise the debit."),
    ],
    ids=["check-digits", "missing", "not-a-test-iban", "no-mandate"],
)
def test_a_wrong_debit_form_shows_the_field_error_and_changes_nothing(
    client, pay, order, run, posted, field, message
):
    response = run(client.post, pay, DEBIT | posted)

    assert response.status_code == 200
    form = response.context["debit_form"]
    assert message in " ".join(form.errors[field])
    assert message in response.content.decode()
    assert not response.context["form"].is_bound  # the card form is left alone
    attempt = order.payment_attempts.get()
    assert attempt.status == PaymentAttempt.Status.CREATED
    intent = LocalPaymentIntent.objects.get(pk=attempt.processor_payment_id)
    assert intent.status == "requires_payment_method"
    order.refresh_from_db()
    assert order.status == Order.Status.AWAITING_PAYMENT


def test_the_card_form_still_pays_without_a_method_field(client, pay, order, run):
    card = {"card_number": "4242 4242 4242 4242", "expiry": "12/34", "cvc": "123"}

    run(client.post, pay, card)

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert order.payment_attempts.get().payment_method_type == "card"


def test_the_iban_is_read_in_any_case_and_spacing(client, pay, order, run):
    run(client.post, pay, DEBIT | {"debit-iban": IBAN_SUCCEEDS.lower()})

    assert order.payment_attempts.get().status == PaymentAttempt.Status.PROCESSING


def test_a_processing_debit_is_looked_at_again_every_half_minute(client, pay, order, run):
    run(client.post, pay, DEBIT)

    live = client.get(
        reverse("marketplace:order_detail", args=[order.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()

    assert 'hx-trigger="load delay:30s"' in live and "Payment processing" in live
