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

After a secret rotation (``webhook_endpoint_secret_rotate``) the signature header
carries one ``v1=`` per live secret, the new one first, until the old one's
overlap window ends; a receiver accepts the delivery if any ``v1`` matches.
Secrets are stored encrypted (``payments.webhook_secrets``). Every published
event is also recorded (``payments.integrations.events``), whether or not an endpoint
listens, so integrators can list what they missed and have it sent again.

Endpoints must be HTTPS on a public address; ``OUTBOUND_WEBHOOKS_ALLOW_LOCAL``
allows plain HTTP and private addresses (development and tests only). The rule
is ``payments/integrations/addresses.py``; it is checked at registration and again
at each delivery, which connects to the address it checked and never follows
a redirect (``payments/integrations/transport.py``). A refused address fails the
delivery at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

import requests
from django.db import transaction
from django.utils import timezone

from accounts.models import Seller, User
from accounts.roles import is_operator, seller_for
from marketplace.kernel.errors import InvalidRequest, NotFound
from marketplace.kernel.task_queue import enqueue_on_commit
from payments.integrations.addresses import RefusedAddress, webhook_address_check
from payments.integrations.events import (
    Payload,
    endpoint_sees_everything,
    endpoint_sees_its_seller,
    events_record,
)
from payments.integrations.transport import webhook_post
from payments.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from payments.models.outbound_webhooks import EVENT_TYPES
from payments.webhook_secrets import secret_encrypt, secret_generate

EVENT_NAMES = {name for name, _ in EVENT_TYPES}
MAX_ATTEMPTS = 8
TIMEOUT = (3.05, 10)
RESPONSE_LOG_CHARS = 1000
SIGNATURE_HEADER = "Marketplace-Signature"
ROTATION_OVERLAP_MAX_HOURS = 168


class TemporaryDeliveryError(Exception):
    """The receiver did not answer 2xx; the delivery is retried later."""


def sign(keys: str | Sequence[str], timestamp: int, body: bytes) -> str:
    """The signature header: the timestamp, then one ``v1`` per secret, in order."""
    signed = f"{timestamp}.".encode() + body
    parts = [f"t={timestamp}"]
    for key in [keys] if isinstance(keys, str) else keys:
        parts.append(f"v1={hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()}")
    return ",".join(parts)


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
    webhook_address_check(url)  # RefusedAddress / UnresolvableHost: 400s naming "url"
    return WebhookEndpoint.objects.create(
        owner=owner,
        seller=seller,
        url=url,
        events=events,
        description=description[:200],
        secret_encrypted=secret_encrypt(secret_generate()),
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    events: Iterable[str] | None = None,
    description: str | None = None,
    is_active: bool | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's address, events, description, or switch it off and on.
    Only the fields given are written, so a secret rotated meanwhile is kept."""
    changed: dict[str, object] = {}
    if events is not None:
        events = sorted(set(events))
        if not events or set(events) - EVENT_NAMES:
            raise InvalidRequest(f"Choose events among {', '.join(sorted(EVENT_NAMES))}.")
        changed["events"] = events
    if url is not None:
        webhook_address_check(url)
        changed["url"] = url
    if description is not None:
        changed["description"] = description[:200]
    if is_active is not None:
        changed["is_active"] = is_active
    for name, value in changed.items():
        setattr(endpoint, name, value)
    if changed:
        endpoint.save(update_fields=list(changed))
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their log: what was still queued for
    it is not sent (the delivery task finds nothing to send)."""
    endpoint.delete()


def webhook_endpoint_secret_rotate(
    *, endpoint: WebhookEndpoint, expires_in_hours: int = 24
) -> tuple[WebhookEndpoint, str]:
    """Give the endpoint a new signing secret and return it (the only time it is shown
    with creation). The old secret keeps signing deliveries, next to the new one, for
    ``expires_in_hours`` (0 to 168; 0 drops it at once), so the receiver can switch
    without losing a delivery; a secret kept from an earlier rotation is dropped."""
    if not 0 <= expires_in_hours <= ROTATION_OVERLAP_MAX_HOURS:
        raise InvalidRequest(
            f"Choose between 0 and {ROTATION_OVERLAP_MAX_HOURS} hours.", param="expires_in_hours"
        )
    new = secret_generate()
    with transaction.atomic():
        # Re-read under the row lock: a rotation that committed meanwhile is built
        # upon (its new secret, just handed out, becomes the previous one).
        locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if expires_in_hours:
            endpoint.previous_secret_encrypted = locked.secret_encrypted
            endpoint.previous_secret_expires_at = timezone.now() + timedelta(hours=expires_in_hours)
        else:
            endpoint.previous_secret_encrypted, endpoint.previous_secret_expires_at = "", None
        endpoint.secret_encrypted = secret_encrypt(new)
        endpoint.save(
            update_fields=[
                "secret_encrypted",
                "previous_secret_encrypted",
                "previous_secret_expires_at",
            ]
        )
    return endpoint, new


def webhook_event_publish(
    *,
    event_type: str,
    data_for: Callable[[int | None], Payload],
    sellers: Iterable[int],
    object_type: str,
    object_id: int,
) -> list[WebhookDelivery]:
    """Record the event (always, even when no endpoint listens) and one delivery per
    active endpoint that wants ``event_type`` and may see it (platform-wide endpoints,
    and the endpoints of the ``sellers`` concerned), in one transaction: the event
    exists, and is sent, if and only if the change that announces it commits.

    ``data_for(seller_id | None)`` builds the payload an audience sees: the whole
    event platform-wide, the seller's part for a seller. ``object_type`` and
    ``object_id`` name what the event is about (``order`` 12), for filtering.
    """
    assert event_type in EVENT_NAMES, event_type
    # Inside the caller's transaction no savepoint: nothing here is caught and retried,
    # so a failure rolls back the caller's change with it, as it should.
    with transaction.atomic(savepoint=False):
        event_id, payloads = events_record(
            event_type=event_type,
            data_for=data_for,
            sellers=sellers,
            object_type=object_type,
            object_id=object_id,
        )
        endpoints = [
            endpoint
            for endpoint in WebhookEndpoint.objects.filter(
                is_active=True, owner__is_active=True
            ).select_related("owner__seller")
            if event_type in endpoint.events
            and (
                (endpoint.seller_id in payloads and endpoint_sees_its_seller(endpoint))
                or endpoint_sees_everything(endpoint)
            )
        ]
        if not endpoints:
            return []
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                endpoint_id=endpoint.pk,
                event_id=event_id,
                event_type=event_type,
                payload=payloads[endpoint.seller_id],
            )
            for endpoint in endpoints
        )
        for delivery in deliveries:
            enqueue_on_commit("payments.tasks.webhook_delivery_task", delivery.pk)
    return deliveries


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """POST one delivery once and log the answer. Raises ``TemporaryDeliveryError`` when
    it should be tried again; after ``MAX_ATTEMPTS`` it is marked failed instead.
    Returns None, sending nothing, when the delivery is gone (its endpoint was deleted).
    Signed with every live secret of the endpoint (two during a rotation's overlap)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return None
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
        SIGNATURE_HEADER: sign(endpoint.signing_secrets(timezone.now()), now, body),
        "Marketplace-Event": delivery.event_type,
        "Marketplace-Delivery": str(delivery.event_id),
    }
    status_code, answer, error = None, "", ""
    started = time.monotonic()
    problem = None if endpoint.is_active else "The endpoint is disabled."
    if problem:
        error = problem
    else:
        try:  # the address is checked again on what the host resolves to now, and pinned
            response = webhook_post(endpoint.url, body=body, headers=headers, timeout=TIMEOUT)
            status_code, answer = response.status_code, response.text[:RESPONSE_LOG_CHARS]
        except RefusedAddress as exc:  # final: the delivery fails, it is not retried
            error = problem = exc.message[:255]
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
        return webhook_delivery_attempt(delivery_id=delivery.pk) or delivery
    except TemporaryDeliveryError:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
        delivery.refresh_from_db()
        return delivery


def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send a failed delivery again (an operator or the owner asked)."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, attempts=0
    )
    enqueue_on_commit("payments.tasks.webhook_delivery_task", delivery.pk)
    delivery.refresh_from_db()
    return delivery
