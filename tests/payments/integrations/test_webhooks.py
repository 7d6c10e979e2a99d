"""Webhooks to integrators, delivered over real HTTP to a receiver on 127.0.0.1."""

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from marketplace.kernel.errors import InvalidRequest
from payments.collection.refunds import refund_create
from payments.integrations.webhooks import (
    MAX_ATTEMPTS,
    TemporaryDeliveryError,
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhook_endpoint_test,
)
from payments.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from payments.payouts.holds import seller_order_hold_release
from payments.payouts.runs import run_payouts
from tests.factories import CommissionRuleFactory
from tests.money_helpers import enable_payouts, paid_order
from tests.payments.integrations.helpers import publish_order_paid

pytestmark = pytest.mark.django_db


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers ``status``."""

    def __init__(self):
        self.requests = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"thanks" if receiver.status < 300 else b"try later")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    server = Receiver()
    yield server
    server.server.shutdown()


def verify(secret, headers, body):
    stamp, signature = (
        part.split("=", 1)[1] for part in headers["Marketplace-Signature"].split(",")
    )
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def test_a_sellers_endpoint_gets_its_own_signed_events_once_committed(
    run, receiver, seller, other_seller, operator
):
    CommissionRuleFactory(percentage_bps=1000)
    mine = webhook_endpoint_create(
        owner=seller.user, url=receiver.url, events=["order.paid", "refund.created"]
    )
    everything = webhook_endpoint_create(
        owner=operator, url=receiver.url + "/all", events=["order.paid"]
    )

    order = run(paid_order, [(seller, 1000, 1), (other_seller, 3000, 1)])
    run(refund_create, order=order, amount_minor=500)

    by_path = {}
    for headers, body in receiver.requests:
        by_path.setdefault(headers["Marketplace-Event"], []).append((headers, body))
    events = receiver.events()
    assert sorted(e["type"] for e in events) == ["order.paid", "order.paid", "refund.created"]
    assert all(
        verify(mine.secret, h, b) or verify(everything.secret, h, b) for h, b in receiver.requests
    )
    seller_view = next(
        e for e in events if e["type"] == "order.paid" and len(e["data"]["seller_orders"]) == 1
    )
    assert seller_view["data"]["seller_orders"][0]["seller"] == "acme"
    assert seller_view["data"]["total_minor"] is None  # the other seller's part is not shown
    platform_view = next(
        e for e in events if e["type"] == "order.paid" and len(e["data"]["seller_orders"]) == 2
    )
    assert platform_view["data"]["total_minor"] == 4000
    assert WebhookDelivery.objects.filter(status="succeeded").count() == 3


def test_nothing_is_sent_for_a_change_that_rolled_back(
    eager_celery, django_capture_on_commit_callbacks, receiver, seller
):
    from django.db import transaction

    webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        paid_order([(seller, 1000, 1)])
        raise RuntimeError("the checkout failed after the capture")

    assert receiver.requests == [] and not WebhookDelivery.objects.exists()


def test_payout_events_reach_the_seller(run, receiver, seller):
    CommissionRuleFactory(percentage_bps=1000)
    enable_payouts(seller)
    webhook_endpoint_create(
        owner=seller.user, url=receiver.url, events=["payout.sent", "payout.paid"]
    )
    seller_order_hold_release(seller_order=paid_order([(seller, 10000, 1)]).seller_orders.get())

    run(run_payouts)

    assert [e["type"] for e in receiver.events()] == ["payout.sent", "payout.paid"]
    assert receiver.events()[1]["data"]["amount_minor"] == 9000


def test_a_failing_receiver_is_retried_then_given_up_with_every_answer_logged(receiver, seller):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="order.paid", payload={}
    )
    receiver.status = 503

    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(TemporaryDeliveryError):
            webhook_delivery_attempt(delivery_id=delivery.pk)
    final = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert (final.status, final.attempts) == ("failed", MAX_ATTEMPTS)
    log = WebhookAttempt.objects.filter(delivery=delivery)
    assert log.count() == MAX_ATTEMPTS and {a.status_code for a in log} == {503}
    assert log.first().response_body == "try later"


def test_the_test_button_pings_and_reports_the_answer(receiver, seller):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["payout.paid"])

    delivery = webhook_endpoint_test(endpoint=endpoint)

    assert delivery.status == "succeeded" and receiver.events()[0]["type"] == "ping"
    assert delivery.log.get().status_code == 200


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.com/hook", "https"),
        ("https://127.0.0.1/hook", "public address"),
        ("https://10.1.2.3/hook", "public address"),
    ],
)
def test_endpoints_must_be_https_on_a_public_address(seller, url, message):
    with pytest.raises(InvalidRequest, match=message):
        webhook_endpoint_create(owner=seller.user, url=url, events=["order.paid"])


def test_only_operators_register_platform_wide_endpoints(receiver, customer, seller, other_seller):
    with pytest.raises(InvalidRequest):
        webhook_endpoint_create(owner=customer, url=receiver.url, events=["order.paid"])
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    assert endpoint.seller == seller  # a seller's endpoint is always for their own events
    with pytest.raises(InvalidRequest):
        webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["nonsense"])


def test_the_webhook_endpoints_api(receiver, seller, other_seller, operator):
    from rest_framework.test import APIClient

    from accounts.tokens import api_token_create

    def client_for(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='t').raw}")
        return client

    url = reverse("api:webhook-endpoint-list")
    created = client_for(seller.user).post(
        url, {"url": receiver.url, "events": ["payout.paid"]}, format="json"
    )
    endpoint_id = created.json()["id"]
    tested = client_for(seller.user).post(reverse("api:webhook-endpoint-test", args=[endpoint_id]))
    log = client_for(seller.user).get(
        reverse("api:webhook-endpoint-deliveries", args=[endpoint_id])
    )
    theirs = client_for(other_seller.user).get(
        reverse("api:webhook-endpoint-detail", args=[endpoint_id])
    )
    everyone = client_for(operator).get(url).json()["data"]
    bad = client_for(seller.user).post(url, {"url": "ftp://x", "events": []}, format="json")

    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    assert created.json()["seller"] == "acme"
    assert tested.json()["status"] == "succeeded"
    assert log.json()["data"][0]["log"][0]["status_code"] == 200
    assert theirs.status_code == 404
    assert [e["id"] for e in everyone] == [endpoint_id]
    assert bad.status_code == 400


def test_operators_test_and_redeliver_from_the_admin(operator_client, receiver, seller, run):
    endpoint = webhook_endpoint_create(owner=seller.user, url=receiver.url, events=["order.paid"])
    operator_client.post(
        reverse("admin:payments_webhookendpoint_changelist"),
        {"action": "send_test", "_selected_action": [endpoint.pk]},
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="order.paid", payload={}, status="failed"
    )
    run(
        operator_client.post,
        reverse("admin:payments_webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )

    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert [e["type"] for e in receiver.events()] == ["ping", "order.paid"]
    page = operator_client.get(reverse("admin:payments_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and "thanks" in page.text


def test_a_platform_wide_endpoint_stops_when_its_owner_is_no_longer_an_operator(
    run, operator, seller, settings
):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    WebhookEndpoint.objects.create(
        owner=operator, url="http://127.0.0.1:9/x", events=["order.paid"], secret="s"
    )
    operator.groups.clear()

    paid_order([(seller, 1000, 1)])

    assert not WebhookDelivery.objects.exists()


def test_a_former_operators_endpoint_for_a_seller_stops_receiving_its_events(
    settings, operator, seller
):
    """An operator may register an endpoint for a seller's events; once they are no
    longer an operator (nor that seller), the seller's events must stop going to it,
    as they do for a platform-wide endpoint."""
    from payments.integrations.webhooks import webhook_endpoint_create

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=operator, url="http://127.0.0.1:9/x", events=["order.paid"], seller=seller
    )
    assert [d.endpoint_id for d in publish_order_paid(seller)] == [endpoint.pk]

    operator.is_staff = False  # the role is taken away
    operator.save(update_fields=["is_staff"])

    assert publish_order_paid(seller) == []


def test_the_sellers_own_endpoint_still_receives_its_events(settings, seller):
    from payments.integrations.webhooks import webhook_endpoint_create

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    assert [d.endpoint_id for d in publish_order_paid(seller)] == [endpoint.pk]
