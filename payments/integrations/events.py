"""Events integrators can list (``GET /api/v1/events/``), resend and catch up on.

Every announced change records its event (``events_record``), in the change's own
transaction, whether or not an endpoint listens: one row with the platform-wide
payload and one per seller concerned with that seller's part, under one event id
(the id the webhook deliveries carry). Events are kept ``RETENTION`` (30 days).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from accounts.roles import is_operator, seller_for
from marketplace.kernel.errors import InvalidRequest, NotFound
from marketplace.kernel.task_queue import enqueue_on_commit
from payments.models import Event, WebhookDelivery, WebhookEndpoint

RETENTION = timedelta(days=30)

Payload = dict[str, Any]


def events_record(
    *,
    event_type: str,
    data_for: Callable[[int | None], Payload],
    sellers: Iterable[int],
    object_type: str,
    object_id: int,
) -> tuple[uuid.UUID, dict[int | None, Payload]]:
    """Record one event: the platform-wide row (``data_for(None)``) and one row per
    concerned seller (``data_for(seller_id)``). Returns the event id and the payload
    of each audience (``None``: platform-wide)."""
    event_id = uuid.uuid4()
    now = timezone.now()
    payloads: dict[int | None, Payload] = {None: data_for(None)}
    for seller_id in sorted(set(sellers)):
        payloads[seller_id] = data_for(seller_id)
    Event.objects.bulk_create(
        Event(
            event_id=event_id,
            type=event_type,
            seller_id=seller_id,
            object_type=object_type,
            object_id=object_id,
            data=data,
            created_at=now,
        )
        for seller_id, data in payloads.items()
    )
    return event_id, payloads


def events_visible_to(user: User) -> Q:
    """Operators see platform-wide events; a seller sees their own seller's events."""
    if is_operator(user):
        return Q(seller__isnull=True)
    seller = seller_for(user)
    if seller is None:
        return Q(pk__in=[])
    return Q(seller=seller)


def endpoint_sees_everything(endpoint: WebhookEndpoint) -> bool:
    """A platform-wide endpoint gets events only while its owner is an operator."""
    return endpoint.seller_id is None and is_operator(endpoint.owner)


def endpoint_sees_its_seller(endpoint: WebhookEndpoint) -> bool:
    """A seller's endpoint gets that seller's events only while its owner is that seller
    or an operator (an operator may register one for a seller): an owner who lost the
    role stops receiving them."""
    if endpoint.seller_id is None:
        return False
    own = seller_for(endpoint.owner)
    return (own is not None and own.pk == endpoint.seller_id) or is_operator(endpoint.owner)


def event_resend(*, actor: User, event: Event, endpoint_id: int) -> WebhookDelivery:
    """Queue ``event`` again to one endpoint: the caller's own (operators: any) that
    is switched on, wants the event's type and may see it (a seller's endpoint gets
    its seller's part; a platform-wide endpoint the whole event). An earlier delivery
    of the event to that endpoint is reset to pending and sent again."""
    endpoints = WebhookEndpoint.objects.select_related("owner__seller")
    if not is_operator(actor):
        endpoints = endpoints.filter(owner=actor)
    endpoint = endpoints.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", param="endpoint")
    if not endpoint.is_active:
        raise InvalidRequest("This endpoint is switched off.", param="endpoint")
    if event.type not in endpoint.events:
        raise InvalidRequest(f"This endpoint does not subscribe to {event.type}.", param="endpoint")
    if not (endpoint_sees_everything(endpoint) or endpoint_sees_its_seller(endpoint)):
        raise InvalidRequest("This endpoint may not receive events.", param="endpoint")
    sees = Q(seller__isnull=True) if endpoint.seller_id is None else Q(seller=endpoint.seller_id)
    audience = Event.objects.filter(sees, event_id=event.event_id).first()
    if audience is None:
        raise InvalidRequest("This endpoint may not see this event.", param="endpoint")
    with transaction.atomic():
        delivery, created = WebhookDelivery.objects.select_for_update().get_or_create(
            endpoint=endpoint,
            event_id=audience.event_id,
            defaults={"event_type": audience.type, "payload": audience.data},
        )
        if not created:
            delivery.status, delivery.attempts, delivery.delivered_at = (
                WebhookDelivery.Status.PENDING,
                0,
                None,
            )
            delivery.save(update_fields=["status", "attempts", "delivered_at"])
        enqueue_on_commit("payments.tasks.webhook_delivery_task", delivery.pk)
    return delivery


def webhook_retention_apply(*, now: datetime | None = None) -> int:
    """Daily housekeeping: events older than 30 days are deleted, and a secret kept
    after a rotation is dropped once its overlap window has ended. Returns how many
    events were deleted."""
    now = now or timezone.now()
    WebhookEndpoint.objects.filter(previous_secret_expires_at__lte=now).update(
        previous_secret_encrypted="", previous_secret_expires_at=None
    )
    deleted, _ = Event.objects.filter(created_at__lt=now - RETENTION).delete()
    return deleted
