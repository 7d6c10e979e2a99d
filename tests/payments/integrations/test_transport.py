"""Sending a delivery (payments/integrations/transport.py): to the address that was
checked, under the endpoint's name, never following a redirect. Everything goes
to a receiver on 127.0.0.1 (tests/receivers.py)."""

import contextlib
import datetime
import re
import ssl

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from payments.integrations.transport import RefusedAddress, webhook_post
from payments.integrations.webhooks import (
    RESPONSE_LOG_CHARS,
    TemporaryDeliveryError,
    webhook_delivery_attempt,
    webhook_endpoint_create,
)
from payments.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.receivers import Receiver

pytestmark = pytest.mark.django_db

NAME = "hooks.example.test"


def _delivery_to(seller, url):
    endpoint = webhook_endpoint_create(owner=seller.user, url=url, events=["order.paid"])
    return WebhookDelivery.objects.create(endpoint=endpoint, event_type="order.paid", payload={})


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


def test_a_delivery_connects_to_the_checked_address_under_the_endpoints_name(
    receiver, fake_dns, seller, network_guard
):
    fake_dns.add(NAME, "127.0.0.1")
    delivery = _delivery_to(seller, receiver.url_for(NAME))
    fake_dns.lookups.clear()

    result = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert result.status == "succeeded"
    (request,) = receiver.requests
    assert request.headers["Host"] == f"{NAME}:{receiver.port}"
    assert request.path == "/hooks" and request.headers["Marketplace-Event"] == "order.paid"
    assert fake_dns.lookups == [NAME]  # one lookup: checked and connected to the same answer
    assert set(network_guard.hosts()) == {"127.0.0.1"}


def test_dns_rebinding_to_a_private_address_is_refused_at_delivery(
    settings, fake_dns, seller, network_guard
):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = False
    fake_dns.add(NAME, "93.184.215.14")  # public when registered...
    delivery = _delivery_to(seller, f"https://{NAME}/hooks")
    fake_dns.add(NAME, "127.0.0.1")  # ...the local machine when delivered

    result = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert (result.status, result.attempts) == ("failed", 1)
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None
    assert attempt.error == (
        f"Webhook endpoints must be on a public address; {NAME} resolves to 127.0.0.1, "
        "which is a loopback address."
    )
    assert network_guard.connections == []


@pytest.mark.parametrize("inside", ["10.1.2.3", "64:ff9b::a9fe:a9fe", "::ffff:192.168.0.1"])
def test_rebinding_to_any_inside_address_is_refused_without_a_connection(
    settings, fake_dns, seller, network_guard, inside
):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = False
    fake_dns.add(NAME, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    delivery = _delivery_to(seller, f"https://{NAME}/hooks")
    fake_dns.add(NAME, "93.184.215.14", inside)

    result = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert result.status == "failed" and "public address" in result.log.get().error
    assert network_guard.connections == []


def test_a_redirect_is_an_answer_not_an_instruction(receiver, seller, network_guard):
    receiver.answer("/hooks", 302, {"Location": "https://93.184.215.14/stolen"})
    receiver.answer("/elsewhere", 200)
    delivery = _delivery_to(seller, receiver.url)

    with pytest.raises(TemporaryDeliveryError, match="302"):
        webhook_delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert delivery.log.get().status_code == 302
    assert [r.path for r in receiver.requests] == ["/hooks"]
    assert set(network_guard.hosts()) == {"127.0.0.1"}  # the Location was never visited


def test_a_name_that_stops_resolving_is_retried_like_a_network_failure(receiver, fake_dns, seller):
    fake_dns.add(NAME, "127.0.0.1")
    delivery = _delivery_to(seller, receiver.url_for(NAME))
    fake_dns.names.clear()

    with pytest.raises(TemporaryDeliveryError, match="does not resolve"):
        webhook_delivery_attempt(delivery_id=delivery.pk)

    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "retrying"
    assert receiver.requests == []


def test_only_the_start_of_a_long_answer_is_read_and_logged(receiver, seller):
    receiver.body = b"x" * 1_000_000
    delivery = _delivery_to(seller, receiver.url)

    webhook_delivery_attempt(delivery_id=delivery.pk)

    assert delivery.log.get().response_body == "x" * RESPONSE_LOG_CHARS


def test_an_endpoint_switched_off_behind_the_policy_is_still_checked(
    receiver, seller, settings, network_guard
):
    delivery = _delivery_to(seller, receiver.url)
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = False  # production again: 127.0.0.1 is refused
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(
        url=receiver.url.replace("http:", "https:")
    )

    result = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert result.status == "failed" and receiver.requests == []
    assert network_guard.connections == []


# --- TLS: the certificate and SNI are checked against the name, not the address ----


def _certificate(tmp_path, name):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def tls_receiver(tmp_path):
    """An HTTPS receiver on 127.0.0.1 whose certificate names ``hooks.example.test``,
    recording the SNI name each client sent."""
    cert, key = _certificate(tmp_path, NAME)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names = []
    context.sni_callback = lambda sock, server_name, ctx: server_names.append(server_name)
    server = Receiver(tls=context)
    server.ca = cert
    server.server_names = server_names
    yield server
    server.close()


def test_tls_is_verified_against_the_name_while_connecting_to_the_pinned_address(
    tls_receiver, fake_dns, network_guard
):
    fake_dns.add(NAME, "127.0.0.1")

    answer = webhook_post(
        tls_receiver.url_for(NAME),
        body=b"{}",
        headers={"Content-Type": "application/json"},
        timeout=5,
        allow_local=True,
        verify=tls_receiver.ca,
    )

    assert answer.status_code == 200 and answer.text == "thanks"
    assert tls_receiver.server_names == [NAME]
    assert tls_receiver.requests[0].headers["Host"] == f"{NAME}:{tls_receiver.port}"
    assert set(network_guard.hosts()) == {"127.0.0.1"}


def test_a_certificate_for_another_name_is_refused(tls_receiver, fake_dns):
    fake_dns.add("other.example.test", "127.0.0.1")

    with pytest.raises(requests.exceptions.SSLError, match=re.escape("other.example.test")):
        webhook_post(
            tls_receiver.url_for("other.example.test"),
            body=b"{}",
            headers={},
            timeout=5,
            allow_local=True,
            verify=tls_receiver.ca,
        )
    assert tls_receiver.requests == []


def test_the_transport_refuses_before_connecting(network_guard):
    with pytest.raises(RefusedAddress, match=re.escape("10.0.0.1")):
        webhook_post(
            "https://[64:ff9b::a00:1]/", body=b"{}", headers={}, timeout=5, allow_local=False
        )
    assert network_guard.connections == []


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
