"""Webhooks for integrators: endpoints, signed deliveries, retries and the log.

Publishing (``webhook_event_publish``) only writes ``WebhookDelivery`` rows, in
the transaction of the change it announces, and queues their sending for
after the commit: the money path never waits for an integrator's server, and
an event is sent if and only if its change was committed.

Each delivery is POSTed as JSON ``{"id", "type", "created", "data"}`` with

    Marketplace-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    Marketplace-Event: <type>
    Marketplace-Delivery: <event id>

A receiver recomputes the HMAC over the timestamp, a dot and the raw body
with its endpoint's secret, compares in constant time, refuses timestamps
older than five minutes, and deduplicates by event id: delivery is at least
once. A 2xx answer ends it; anything else (or no answer in 10 seconds) is
retried with exponential backoff, up to ``MAX_ATTEMPTS`` attempts. Every
attempt is logged with the status code and the start of the answer.

Endpoints must be HTTPS on a public address; ``OUTBOUND_WEBHOOKS_ALLOW_LOCAL``
allows plain HTTP and private addresses (development and tests only).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from accounts.models import Seller, User
from accounts.roles import is_operator, seller_for
from marketplace.errors import InvalidRequest, NotFound
from marketplace.task_queue import enqueue_on_commit
from payments.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from payments.models.outbound_webhooks import EVENT_TYPES

EVENT_NAMES = {name for name, _ in EVENT_TYPES}
MAX_ATTEMPTS = 8
TIMEOUT = (3.05, 10)
RESPONSE_LOG_CHARS = 1000
SIGNATURE_HEADER = "Marketplace-Signature"


class TemporaryDeliveryError(Exception):
    """The receiver did not answer 2xx; the delivery is retried later."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def _address_error(url: str) -> str | None:
    """Why we refuse to send to ``url``, or None."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "The address has a port that does not exist."
    allow_local = settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL
    if parts.scheme != "https" and not (allow_local and parts.scheme == "http"):
        return "Webhook endpoints must use https://."
    if not parts.hostname:
        return "The address has no host."
    if allow_local:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return f"{parts.hostname} does not resolve."
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            return "Webhook endpoints must be on a public address."
    return None


def webhook_endpoint_create(
    *,
    owner: User,
    url: str,
    events: Iterable[str],
    description: str = "",
    seller: Seller | None = None,
) -> WebhookEndpoint:
    """Register an endpoint. A seller's endpoint is for their own events; only an
    operator may register one for every event (no seller)."""
    events = sorted(set(events))
    unknown = set(events) - EVENT_NAMES
    if not events or unknown:
        raise InvalidRequest(f"Choose events among {', '.join(sorted(EVENT_NAMES))}.")
    own_seller = seller_for(owner)
    if seller is None and not is_operator(owner):
        if own_seller is None:
            raise InvalidRequest("Only sellers and operators can register webhook endpoints.")
        seller = own_seller
    if seller is not None and not is_operator(owner) and seller != own_seller:
        raise NotFound("No such seller.")
    problem = _address_error(url)
    if problem:
        raise InvalidRequest(problem)
    return WebhookEndpoint.objects.create(
        owner=owner,
        seller=seller,
        url=url,
        events=events,
        description=description[:200],
        secret=f"whsec_{secrets.token_urlsafe(32)}",
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's address, events, description, or switch it off and on."""
    if events is not None:
        events = sorted(set(events))
        if not events or set(events) - EVENT_NAMES:
            raise InvalidRequest(f"Choose events among {', '.join(sorted(EVENT_NAMES))}.")
        endpoint.events = events
    if url is not None:
        problem = _address_error(url)
        if problem:
            raise InvalidRequest(problem)
        endpoint.url = url
    if description is not None:
        endpoint.description = description[:200]
    if is_active is not None:
        endpoint.is_active = is_active
    endpoint.save()
    return endpoint


def _sees_everything(endpoint: WebhookEndpoint) -> bool:
    """A platform-wide endpoint gets events only while its owner is an operator."""
    return endpoint.seller_id is None and is_operator(endpoint.owner)


def webhook_event_publish(
    *, event_type: str, data_for: Any, sellers: Iterable[int]
) -> list[WebhookDelivery]:
    """Record one delivery per active endpoint that wants ``event_type`` and may see it
    (platform-wide endpoints, and the endpoints of the ``sellers`` concerned).

    ``data_for(seller_id | None)`` builds the payload an endpoint sees: the whole
    event for a platform-wide endpoint, the seller's part for a seller's.
    """
    assert event_type in EVENT_NAMES, event_type
    concerned = set(sellers)
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(
            is_active=True, owner__is_active=True
        ).select_related("owner")
        if event_type in endpoint.events
        and (endpoint.seller_id in concerned or _sees_everything(endpoint))
    ]
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            endpoint_id=endpoint.pk,
            event_id=event_id,
            event_type=event_type,
            payload=data_for(endpoint.seller_id),
        )
        for endpoint in endpoints
    )
    from payments.tasks import webhook_delivery_task

    for delivery in deliveries:
        enqueue_on_commit(webhook_delivery_task, delivery.pk)
    return deliveries


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery:
    """POST one delivery once and log the answer. Raises ``TemporaryDeliveryError`` when
    it should be tried again; after ``MAX_ATTEMPTS`` it is marked failed instead."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.status in (WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED):
        return delivery
    endpoint = delivery.endpoint
    body = json.dumps(
        {
            "id": str(delivery.event_id),
            "type": delivery.event_type,
            "created": int(delivery.created_at.timestamp()),
            "data": delivery.payload,
        },
        separators=(",", ":"),
    ).encode()
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Marketplace-Webhooks/1",
        SIGNATURE_HEADER: sign(endpoint.secret, now, body),
        "Marketplace-Event": delivery.event_type,
        "Marketplace-Delivery": str(delivery.event_id),
    }
    status_code, answer, error = None, "", ""
    started = time.monotonic()
    problem = _address_error(endpoint.url) if endpoint.is_active else "The endpoint is disabled."
    if problem:
        error = problem
    else:
        try:
            response = requests.post(
                endpoint.url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
            )
            status_code, answer = response.status_code, response.text[:RESPONSE_LOG_CHARS]
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:255]
    WebhookAttempt.objects.create(
        delivery=delivery,
        status_code=status_code,
        response_body=answer,
        error=error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    delivery.attempts += 1
    if status_code is not None and 200 <= status_code < 300:
        delivery.status, delivery.delivered_at = WebhookDelivery.Status.SUCCEEDED, timezone.now()
    elif delivery.attempts >= MAX_ATTEMPTS or problem:
        delivery.status = WebhookDelivery.Status.FAILED
    else:
        delivery.status = WebhookDelivery.Status.RETRYING
    delivery.save(update_fields=["attempts", "status", "delivered_at"])
    if delivery.status == WebhookDelivery.Status.RETRYING:
        raise TemporaryDeliveryError(error or f"Answered {status_code}")
    return delivery


def webhook_endpoint_test(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a ``ping`` to the endpoint now and return the delivery with its logged answer."""
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_type="ping",
        payload={"message": "A test from the marketplace.", "endpoint": endpoint.pk},
    )
    try:
        return webhook_delivery_attempt(delivery_id=delivery.pk)
    except TemporaryDeliveryError:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
        delivery.refresh_from_db()
        return delivery


def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again (an operator or the owner asked)."""
    from payments.tasks import webhook_delivery_task

    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, attempts=0
    )
    enqueue_on_commit(webhook_delivery_task, delivery.pk)
    delivery.refresh_from_db()
    return delivery
