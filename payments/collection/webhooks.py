"""Incoming processor events: verify, store once, answer fast, process in a task.

``webhook_receive`` is what the HTTP endpoint (and the local processor's
delivery task) calls: it verifies the signature, stores the raw event once
per processor and event id (a concurrent duplicate meets the unique
constraint and is dropped), and queues its processing after the commit.

``webhook_event_process`` routes by event type through ``HANDLERS``. Handlers
re-read the object from the processor rather than trusting the event's
snapshot or the order of delivery, and every one of them is idempotent, so an
event processed twice or out of order changes nothing more.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.task_queue import enqueue, enqueue_on_commit
from payments.collection.checkout import payment_failed, payment_processing, payment_succeeded
from payments.collection.disputes import dispute_closed, dispute_opened
from payments.collection.onboarding import seller_account_sync
from payments.collection.refunds import refund_sync
from payments.models import Payout, WebhookEvent
from payments.payouts.settlement import payout_sync
from payments.processors import get_processor
from payments.processors.base import ProcessorEvent, arrival_on

logger = logging.getLogger(__name__)

SIGNATURE_HEADERS = {"stripe-signature", "local-signature"}
Handler = Callable[[str, ProcessorEvent], None]


def payment_method_type_of(data: Mapping[str, Any]) -> str:
    """How the customer paid, as a PaymentIntent's event tells it (blank if it does not):
    the charge's ``payment_method_details.type`` (an expanded ``latest_charge``), the
    failed try's ``last_payment_error.payment_method.type``, an expanded
    ``payment_method``'s ``type``, or the intent's ``payment_method_types`` when it
    names one method only (with automatic payment methods it lists every enabled one)."""

    def field(value: Any, *path: str) -> Any:
        for name in path:
            value = value.get(name) if isinstance(value, Mapping) else None
        return value

    for found in (
        field(data, "latest_charge", "payment_method_details", "type"),
        field(data, "last_payment_error", "payment_method", "type"),
        field(data, "payment_method", "type"),
    ):
        if isinstance(found, str) and found:
            return found
    types = data.get("payment_method_types")
    if isinstance(types, list) and len(types) == 1 and isinstance(types[0], str):
        return types[0]
    return ""


def _payment_succeeded(processor: str, event: ProcessorEvent) -> None:

    order = payment_succeeded(
        payment_id=str(event.data["id"]),
        processor_name=processor,
        method_type=payment_method_type_of(event.data),
    )
    if order is not None:
        enqueue_on_commit("payments.tasks.order_paid_notify_task", order.pk)


def _payment_processing(processor: str, event: ProcessorEvent) -> None:

    payment_processing(
        payment_id=str(event.data["id"]),
        processor_name=processor,
        method_type=payment_method_type_of(event.data),
    )


def _payment_failed(processor: str, event: ProcessorEvent) -> None:

    error = event.data.get("last_payment_error") or {}
    failure = payment_failed(
        payment_id=str(event.data["id"]),
        processor_name=processor,
        message=str(error.get("message", "")) if isinstance(error, Mapping) else "",
        method_type=payment_method_type_of(event.data),
    )
    if failure is not None and failure.order_cancelled:
        enqueue_on_commit(
            "payments.tasks.order_payment_failed_notify_task", failure.attempt.order_id
        )


def _refund_updated(processor: str, event: ProcessorEvent) -> None:

    refund_sync(
        processor_name=processor, processor_refund_id=str(event.data["id"]), data=event.data
    )


def _account_updated(processor: str, event: ProcessorEvent) -> None:

    seller_account_sync(processor_name=processor, account_id=str(event.data["id"]))


def _dispute_created(processor: str, event: ProcessorEvent) -> None:

    dispute_opened(
        processor_name=processor,
        processor_dispute_id=str(event.data["id"]),
        payment_id=str(event.data.get("payment_intent") or ""),
        amount_minor=int(event.data["amount"]),
        reason=str(event.data.get("reason") or ""),
    )


def _dispute_closed(processor: str, event: ProcessorEvent) -> None:

    status = str(event.data.get("status", ""))
    if status in ("won", "lost"):
        dispute = dispute_closed(
            processor_name=processor,
            processor_dispute_id=str(event.data["id"]),
            won=status == "won",
        )
        if dispute is None:
            # Arrived before the dispute's "created" event: fail, to be retried later.
            raise LookupError(f"Dispute {event.data['id']} is not recorded yet.")


def _payout_updated(processor: str, event: ProcessorEvent) -> None:

    metadata = event.data.get("metadata") or {}
    payout_sync(
        processor_name=processor,
        processor_payout_id=str(event.data["id"]),
        status=str(event.data.get("status", "")),
        metadata={str(k): str(v) for k, v in metadata.items()}
        if isinstance(metadata, Mapping)
        else {},
        message=str(event.data.get("failure_message") or ""),
        arrival_on=arrival_on(event.data.get("arrival_date")),
    )


HANDLERS: dict[str, Handler] = {
    "payout.paid": _payout_updated,
    "payout.failed": _payout_updated,
    "payout.canceled": _payout_updated,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.processing": _payment_processing,
    "payment_intent.payment_failed": _payment_failed,
    "refund.updated": _refund_updated,
    "refund.created": _refund_updated,
    "charge.refund.updated": _refund_updated,
    "account.updated": _account_updated,
}


def webhook_receive(
    *, processor_name: str, payload: bytes, headers: Mapping[str, str], endpoint: str = "platform"
) -> WebhookEvent:
    """Verify and store an event once; raises ``WebhookSignatureError`` for a bad signature."""
    event = get_processor(processor_name).webhook_parse(
        payload=payload, headers=headers, endpoint=endpoint
    )
    kept_headers = {k: v for k, v in headers.items() if k.lower() not in SIGNATURE_HEADERS}
    try:
        with transaction.atomic():
            stored = WebhookEvent.objects.create(
                processor=processor_name,
                event_id=event.id,
                type=event.type,
                account=event.account,
                livemode=event.livemode,
                payload=payload.decode(),
                headers=kept_headers,
            )
            _enqueue_on_commit(stored.pk)
            return stored
    except IntegrityError:
        return WebhookEvent.objects.get(processor=processor_name, event_id=event.id)


def _enqueue_on_commit(webhook_event_id: int) -> None:
    enqueue_on_commit("payments.tasks.webhook_event_process_task", webhook_event_id)


def webhook_events_sweep(*, older_than_minutes: int = 5) -> int:
    """Queue again the stored events still waiting to be processed after
    ``older_than_minutes``: their task was lost between the commit and the publish (a
    killed web process, a broker that took the message and then lost it). Failed
    events are not swept: their task retries them, then operators reprocess them."""
    cutoff = timezone.now() - timedelta(minutes=older_than_minutes)
    waiting = WebhookEvent.objects.filter(
        status=WebhookEvent.Status.RECEIVED, received_at__lt=cutoff
    ).values_list("pk", flat=True)
    return sum(
        enqueue("payments.tasks.webhook_event_process_task", pk) for pk in waiting.iterator()
    )


def webhook_event_process(*, webhook_event_id: int) -> WebhookEvent:
    """Process a stored event once. A failure is kept on the row and raised for a retry."""
    with transaction.atomic():
        stored = WebhookEvent.objects.select_for_update().get(pk=webhook_event_id)
        if stored.status in (WebhookEvent.Status.PROCESSED, WebhookEvent.Status.IGNORED):
            return stored
        handler = HANDLERS.get(stored.type)
        stored.attempts += 1
        if handler is None:
            stored.status = WebhookEvent.Status.IGNORED
            stored.processed_at = timezone.now()
            stored.save(update_fields=["status", "attempts", "processed_at"])
            return stored
        event = _event_from(stored)
        try:
            with transaction.atomic():
                handler(stored.processor, event)
        except Exception as exc:
            logger.exception("Processing %s failed", stored)
            stored.status = WebhookEvent.Status.FAILED
            stored.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            stored.save(update_fields=["status", "attempts", "last_error"])
            failure: Exception | None = exc
        else:
            stored.status = WebhookEvent.Status.PROCESSED
            stored.last_error = ""
            stored.processed_at = timezone.now()
            stored.save(update_fields=["status", "attempts", "last_error", "processed_at"])
            failure = None
    if failure is not None:
        raise failure
    return stored


def webhook_event_reprocess(*, webhook_event_id: int) -> None:
    """Operators: queue a failed event again (admin action)."""
    WebhookEvent.objects.filter(pk=webhook_event_id, status=WebhookEvent.Status.FAILED).update(
        status=WebhookEvent.Status.RECEIVED
    )
    _enqueue_on_commit(webhook_event_id)


def _event_from(stored: WebhookEvent) -> ProcessorEvent:
    body: dict[str, Any] = json.loads(stored.payload)
    return ProcessorEvent(
        id=stored.event_id,
        type=stored.type,
        created=datetime.fromtimestamp(int(body.get("created", 0)), tz=UTC),
        livemode=stored.livemode,
        data=dict(body.get("data", {}).get("object", {})),
        account=stored.account,
        previous_attributes=dict(body.get("data", {}).get("previous_attributes") or {}),
    )


# What the Connect endpoint handles: listed per connected account by the backfill.
CONNECT_EVENT_TYPES = ("payout.paid", "payout.failed", "payout.canceled", "account.updated")
# How long after it was paid a bank payout can still be returned: its account is listed
# for that long whatever the backfill's window (Stripe: a paid payout can fail within
# five business days, https://docs.stripe.com/payouts).
RETURN_WINDOW_DAYS = 10


def webhooks_backfill(*, since: datetime, processor_name: str | None = None) -> int:
    """Store and queue the processor's events since ``since`` that we never received:
    the platform's, and those of each connected account we are waiting to hear from
    (Stripe lists a connected account's events only with its ``Stripe-Account``)."""
    processor = get_processor(processor_name)
    added = _store_backfilled(processor.name, processor.events_list(since=since))
    for account in connected_accounts_to_backfill(since=since, processor_name=processor.name):
        events = processor.events_list(since=since, account=account, types=CONNECT_EVENT_TYPES)
        added += _store_backfilled(processor.name, events)
    return added


def connected_accounts_to_backfill(*, since: datetime, processor_name: str) -> list[str]:
    """Accounts whose events would change something: with a payout not settled yet or
    paid within the return window (a paid payout can still fail), or still being
    onboarded."""

    Status = Payout.Status
    returns_since = min(since, timezone.now() - timedelta(days=RETURN_WINDOW_DAYS))
    waiting = Payout.objects.filter(processor=processor_name).filter(
        Q(status__in=(Status.SENDING, Status.TRANSFERRED, Status.IN_TRANSIT))
        | Q(status=Status.PAID, paid_at__gte=returns_since)
    )
    onboarding = Seller.objects.filter(
        payout_status__in=(Seller.PayoutStatus.ONBOARDING, Seller.PayoutStatus.RESTRICTED)
    ).exclude(payout_account_id="")
    accounts = set(
        Seller.objects.filter(pk__in=waiting.values("seller_id"))
        .exclude(payout_account_id="")
        .values_list("payout_account_id", flat=True)
    )
    accounts.update(onboarding.values_list("payout_account_id", flat=True))
    return sorted(accounts)


def _store_backfilled(processor_name: str, events: Iterable[ProcessorEvent]) -> int:
    added = 0
    for event in events:
        body = {
            "id": event.id,
            "type": event.type,
            "created": int(event.created.timestamp()),
            "livemode": event.livemode,
            "account": event.account or None,
            "data": {"object": dict(event.data)},
        }
        with transaction.atomic():
            stored, created = WebhookEvent.objects.get_or_create(
                processor=processor_name,
                event_id=event.id,
                defaults={
                    "type": event.type,
                    "account": event.account,
                    "livemode": event.livemode,
                    "payload": json.dumps(body),
                    "headers": {"X-Backfilled": "true"},
                },
            )
            if created:
                added += 1
                _enqueue_on_commit(stored.pk)
    return added
