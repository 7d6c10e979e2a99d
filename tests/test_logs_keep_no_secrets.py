"""No card number, security code, password, API token, webhook signature or processor
key reaches the logs, at any level, through the payment flow and its neighbours:
paying by card on the site (with the webhook that marks the order paid), a declined
card, a wrong password and a lockout, API calls with a good and a bad token, and
Stripe webhooks with a good and a forged signature."""

import json
import logging

import pytest
from django.urls import reverse

from accounts.tokens import api_token_create
from marketplace.models import Order
from payments.processors.stripe import StripeProcessor
from tests.factories import CommissionRuleFactory, ProductFactory
from tests.payments.processors import stripe_fake as fake
from tests.payments.processors.stripe_fake import RecordingHTTPClient

pytestmark = pytest.mark.django_db

CARD = "4242424242424242"
DECLINED = "4000000000000002"
CVC = "737"
PASSWORD_TRIED = "correct-horse-battery-wrong"
SHIPPING = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


@pytest.fixture
def every_log(caplog):
    """Every record of every logger, from DEBUG up, as the text a log handler writes."""
    caplog.set_level(logging.DEBUG)

    def text() -> str:
        return "\n".join(
            f"{record.getMessage()} {record.args!r} {record.__dict__!r}"
            for record in caplog.records
        )

    return text


def spaced(number: str) -> list[str]:
    return [number, " ".join(number[i : i + 4] for i in range(0, 16, 4))]


def test_paying_by_card_logs_no_card_data(client, customer, seller, run, every_log):
    CommissionRuleFactory(percentage_bps=1000)
    product = ProductFactory(seller=seller, price_minor=2500, stock=5)
    client.force_login(customer)
    client.post(reverse("marketplace:cart_add"), {"product": product.pk, "quantity": 1})
    checkout = reverse("marketplace:checkout", args=["USD"])
    token = client.get(checkout).context["form"]["submission_token"].value()
    client.post(checkout, SHIPPING | {"submission_token": token})
    order = Order.objects.get()
    pay = reverse("marketplace:order_pay", args=[order.pk])

    run(client.post, pay, {"card_number": spaced(DECLINED)[1], "expiry": "12/34", "cvc": CVC})
    run(client.post, pay, {"card_number": spaced(CARD)[1], "expiry": "12/34", "cvc": CVC})

    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    logged = every_log()
    assert logged  # the flow does log (tasks, webhooks): the test reads real output
    for secret in [*spaced(CARD), *spaced(DECLINED), f"cvc': '{CVC}"]:
        assert secret not in logged


def test_a_wrong_password_and_a_lockout_log_no_password(client, every_log):
    for _ in range(6):
        client.post(
            reverse("accounts:login"),
            {"username": "maya@example.com", "password": PASSWORD_TRIED},
            REMOTE_ADDR="203.0.113.9",
        )

    logged = every_log()
    assert "maya@example.com" in logged  # the failures are logged, for monitoring
    assert PASSWORD_TRIED not in logged


def test_api_tokens_are_not_logged_good_or_bad(client, customer, every_log):
    token = api_token_create(user=customer, name="ci").raw
    bad = token[:-4] + "xxxx"

    assert client.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
    assert client.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Token {bad}").status_code == 401

    logged = every_log()
    assert token not in logged and bad not in logged


def test_stripe_webhook_signatures_and_keys_are_not_logged(
    client, settings, monkeypatch, every_log
):
    processor = StripeProcessor(
        secret_key=fake.SECRET_KEY,
        webhook_secret=fake.WEBHOOK_SECRET,
        connect_webhook_secret=fake.CONNECT_WEBHOOK_SECRET,
        api_base=fake.API_BASE,
        http_client=RecordingHTTPClient(),
    )
    settings.PAYMENTS_PROCESSOR = "stripe"
    monkeypatch.setattr("payments.processors._build", lambda name: processor)
    body = json.dumps(fake.event(id="evt_1Logs", type="charge.updated")).encode()
    good = fake.sign(body, fake.WEBHOOK_SECRET)
    forged = fake.sign(body, "whsec_someone_else")
    url = reverse("payments:webhook", kwargs={"processor": "stripe"})

    accepted = client.post(url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=good)
    refused = client.post(url, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=forged)

    assert (accepted.status_code, refused.status_code) == (200, 400)
    logged = every_log()
    for secret in (good, forged, fake.WEBHOOK_SECRET, fake.SECRET_KEY):
        assert secret not in logged
