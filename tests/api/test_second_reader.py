"""A second reader's attacks on the integrator API (issue 17): tenancy, secrets,
webhook addresses, idempotency and errors. Each test is an attack that must fail."""

from __future__ import annotations

import contextlib

import pytest
from django.urls import reverse

from marketplace.models import IdempotencyRecord, Order
from tests.api.shapes import SHIPPING
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mug(seller):
    return ProductFactory(seller=seller, price_minor=1000, stock=5)


def place(client, mug, **extra):
    return client.post(
        reverse("api:order-list"),
        {"items": [{"product": mug.pk, "quantity": 1}], "shipping": SHIPPING, **extra},
        format="json",
    )


@pytest.mark.parametrize(
    "metadata",
    [{"note": "a\u0000b"}, {"a\u0000b": "note"}],
    ids=["nul-in-value", "nul-in-key"],
)
def test_a_nul_character_in_metadata_is_a_400_not_a_500(api_as, customer, mug, metadata):
    """PostgreSQL's jsonb cannot hold U+0000: it must be refused like any other bad value."""
    client = api_as(customer)
    placed = place(client, mug, metadata=metadata)
    assert placed.status_code == 400, placed.content
    assert placed["Content-Type"] == "application/problem+json"
    assert placed.json()["param"].startswith("metadata")

    order = place(client, mug)
    assert order.status_code == 201
    patched = client.patch(
        reverse("api:order-detail", args=[order.json()["id"]]),
        {"metadata": metadata},
        format="json",
    )
    assert patched.status_code == 400, patched.content
    assert Order.objects.get(pk=order.json()["id"]).metadata == {}


# --- Webhook endpoints: who keeps receiving a seller's events --------------------------


def _publish_order_paid(seller):
    from payments.integrations.webhooks import webhook_event_publish

    return webhook_event_publish(
        event_type="order.paid",
        data_for=lambda seller_id: {"seller": seller_id},
        sellers=[seller.pk],
        object_type="order",
        object_id=1,
    )


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
    assert [d.endpoint_id for d in _publish_order_paid(seller)] == [endpoint.pk]

    operator.is_staff = False  # the role is taken away
    operator.save(update_fields=["is_staff"])

    assert _publish_order_paid(seller) == []


def test_the_sellers_own_endpoint_still_receives_its_events(settings, seller):
    from payments.integrations.webhooks import webhook_endpoint_create

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    assert [d.endpoint_id for d in _publish_order_paid(seller)] == [endpoint.pk]


def test_an_update_racing_a_rotation_does_not_bring_the_old_secret_back(settings, seller):
    """PATCH loads the endpoint, a rotation commits, then PATCH saves: the rotated
    secret (the one the owner was just given) must still be the one that signs."""
    from payments.integrations.webhooks import (
        webhook_endpoint_create,
        webhook_endpoint_secret_rotate,
        webhook_endpoint_update,
    )
    from payments.models import WebhookEndpoint

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    loaded_by_the_patch = WebhookEndpoint.objects.get(pk=endpoint.pk)
    _, new_secret = webhook_endpoint_secret_rotate(
        endpoint=WebhookEndpoint.objects.get(pk=endpoint.pk), expires_in_hours=1
    )

    webhook_endpoint_update(endpoint=loaded_by_the_patch, description="renamed")

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert stored.description == "renamed"
    assert stored.secret == new_secret
    assert stored.previous_secret_expires_at is not None


def test_two_rotations_from_stale_reads_keep_the_first_new_secret_in_the_overlap(settings, seller):
    """Two rotations that loaded the endpoint before either saved: the second must keep
    the first one's new secret (just handed out) as the previous one, not the original."""
    from payments.integrations.webhooks import (
        webhook_endpoint_create,
        webhook_endpoint_secret_rotate,
    )
    from payments.models import WebhookEndpoint

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    first_read = WebhookEndpoint.objects.get(pk=endpoint.pk)
    second_read = WebhookEndpoint.objects.get(pk=endpoint.pk)

    _, first = webhook_endpoint_secret_rotate(endpoint=first_read, expires_in_hours=1)
    _, second = webhook_endpoint_secret_rotate(endpoint=second_read, expires_in_hours=1)

    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert stored.secret == second
    assert stored.signing_secrets(stored.previous_secret_expires_at.replace(year=2000)) == [
        second,
        first,
    ]


# --- Errors: a malformed body is a 400, never a 500 -----------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("body", [DEEP, '{"items": ' + DEEP + "}"], ids=["array", "in-object"])
@pytest.mark.parametrize("key", [None, "deep-1"], ids=["no-key", "with-key"])
def test_json_nested_too_deeply_is_a_parse_error_not_a_500(api_as, customer, body, key):
    """Python's JSON decoder raises RecursionError (not ValueError) on deep nesting."""
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    answer = api_as(customer).post(
        reverse("api:order-list"), body, content_type="application/json", **headers
    )

    assert answer.status_code == 400, answer.content[:300]
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "parse_error"
    assert not IdempotencyRecord.objects.exists()  # refused before it ran: the key is free


# --- Webhook transport: a receiver that drips its answer ------------------------------


@pytest.fixture
def dripping_receiver():
    """A receiver on 127.0.0.1 that answers one byte of its status line every 0.2 s
    for about 4 s: each read gets a byte well within any read timeout."""
    import socket
    import threading
    import time

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    stop = threading.Event()

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Drip: " + b"a" * 20:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.2)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hooks"
    stop.set()
    server.close()
    thread.join(5)


def test_a_dripping_receiver_cannot_hold_a_delivery_past_its_timeout(dripping_receiver):
    """A timeout bounds each socket read; the delivery as a whole needs a deadline too,
    or a receiver dripping its answer holds the delivery worker (or the web worker of
    POST …/test/) as long as it likes."""
    import time

    import requests

    from payments.integrations.transport import webhook_post

    started = time.monotonic()
    with contextlib.suppress(requests.RequestException):
        webhook_post(dripping_receiver, body=b"{}", headers={}, timeout=1, allow_local=True)
    assert time.monotonic() - started < 2.5  # about the timeout, not the receiver's pace


# --- Tenancy: someone else's webhook endpoint ------------------------------------------


def test_someone_elses_endpoint_cannot_be_rotated_tested_read_or_moved(
    api_as, settings, seller, other_seller
):
    from payments.integrations.webhooks import webhook_endpoint_create
    from payments.models import WebhookDelivery, WebhookEndpoint

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    theirs = webhook_endpoint_create(
        owner=other_seller.user, url="http://127.0.0.1:9/x", events=["order.paid"]
    )
    mine = webhook_endpoint_create(
        owner=seller.user, url="http://127.0.0.1:9/y", events=["order.paid"]
    )
    before = theirs.secret_encrypted
    client = api_as(seller.user)

    def url(name, pk):
        return reverse(f"api:webhook-endpoint-{name}", args=[pk])

    answers = [
        client.post(url("rotate-secret", theirs.pk), {}, format="json"),
        client.post(url("test", theirs.pk), {}, format="json"),
        client.get(url("deliveries", theirs.pk)),
        client.patch(url("detail", theirs.pk), {"description": "x"}, format="json"),
        client.delete(url("detail", theirs.pk)),
    ]
    moved = client.patch(url("detail", mine.pk), {"seller": "rival"}, format="json")

    assert [a.status_code for a in answers] == [404] * 5
    theirs.refresh_from_db()
    assert theirs.secret_encrypted == before and theirs.description == ""
    assert not WebhookDelivery.objects.filter(endpoint=theirs).exists()
    assert moved.status_code in (200, 400)
    assert WebhookEndpoint.objects.get(pk=mine.pk).seller_id == seller.pk


def test_an_operator_cannot_resend_to_a_former_operators_endpoint_for_a_seller(
    api_as, settings, operator, seller
):
    from accounts.services import operator_grant
    from payments.integrations.webhooks import webhook_endpoint_create
    from payments.models import Event, WebhookDelivery
    from tests.factories import UserFactory

    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    former = operator_grant(user=UserFactory(email="former-operator@example.com"))
    endpoint = webhook_endpoint_create(
        owner=former, url="http://127.0.0.1:9/x", events=["order.paid"], seller=seller
    )
    _publish_order_paid(seller)
    former.is_staff = False
    former.save(update_fields=["is_staff"])
    event = Event.objects.get(seller__isnull=True)

    answer = api_as(operator).post(
        reverse("api:event-resend", args=[event.event_id]), {"endpoint": endpoint.pk}
    )

    assert (answer.status_code, answer.json()["param"]) == (400, "endpoint")
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1  # the one before


# --- Errors: every code the integrator API emits has its doc_url entry -----------------


@pytest.mark.parametrize(
    "code",
    [
        "resource_missing",  # marketplace/kernel/api/pagination.py
        "invalid_metadata",  # payments/integrations/metadata.py
        "webhook_address_refused",  # payments/integrations/addresses.py
        "webhook_host_unresolvable",
        "invalid_number",  # the headless checkout's DECLINED answers
        "payment_intent_authentication_failure",
    ],
)
def test_every_code_of_the_integrator_api_is_on_the_error_codes_page(api, code):
    page = api.get("/api/v1/errors/")

    assert page.status_code == 200
    assert f'id="{code}"' in page.content.decode()


# --- Idempotency: a 5xx after the work committed ---------------------------------------


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
