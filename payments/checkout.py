"""Paying for an order at the processor.

An order is paid only when the processor says so through its event
(``payment_intent.succeeded``), never on the browser's word. Each try is a
``PaymentAttempt`` with its own idempotency key, ``payment-<order>-<n>``: a
retry after a timeout reuses the key, so the processor charges once; a new
card after a decline is a new attempt on the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketplace.errors import InvalidState
from marketplace.models import Order
from payments.captures import duplicate_payment_fee_recorded, order_payment_captured
from payments.locks import order_lock
from payments.models import PaymentAttempt
from payments.processors import get_processor
from payments.processors.base import CardDeclined, Payment, PaymentStatus

logger = logging.getLogger(__name__)

Status = PaymentAttempt.Status
# What a processor status means for an attempt that has not succeeded yet.
ATTEMPT_STATUS = {
    PaymentStatus.REQUIRES_ACTION: Status.REQUIRES_ACTION,
    PaymentStatus.PROCESSING: Status.PROCESSING,
    PaymentStatus.CANCELED: Status.CANCELED,
}


def payment_start(*, order: Order) -> PaymentAttempt:
    """The attempt to pay ``order`` with: the open one, or a new one at the processor.

    The attempt row is committed before the processor is called, so a timeout
    leaves a row whose key the next call reuses.
    """
    return _payment_start(order)[0]


def _payment_start(order: Order) -> tuple[PaymentAttempt, Payment | None]:
    """``payment_start``, with the processor's answer when it was asked (else None)."""
    with transaction.atomic():
        attempt = payment_attempt_open(order=order_lock(order.pk))
    return payment_attempt_submit(attempt=attempt, customer_email=order.customer.email)


def payment_attempt_open(*, order: Order) -> PaymentAttempt:
    """The first half of ``payment_start``, inside the caller's transaction (which must
    commit before ``payment_attempt_submit``), with ``order`` read under its lock
    (``order_lock``, or the caller's own ``select_for_update(no_key=True)``): its open
    attempt, or a new one. One query reads every attempt of the order (a handful).
    Raises ``InvalidState`` when the order is not waiting for a payment."""
    locked = order
    if locked.status != Order.Status.AWAITING_PAYMENT:
        raise InvalidState(f"Order #{locked.pk} is not waiting for a payment.")
    attempts = list(PaymentAttempt.objects.filter(order=locked))  # by number
    attempt = next((a for a in reversed(attempts) if a.status in PaymentAttempt.OPEN), None)
    if attempt is None:
        processor = get_processor()
        attempt = PaymentAttempt.objects.create(
            order=locked,
            number=len(attempts) + 1,
            processor=processor.name,
            amount_minor=locked.total_minor,
            currency=locked.currency,
            idempotency_key=f"payment-{locked.pk}-{len(attempts) + 1}",
        )
    return attempt


def payment_attempt_submit(
    *, attempt: PaymentAttempt, customer_email: str
) -> tuple[PaymentAttempt, Payment | None]:
    """The second half of ``payment_start``, after the attempt row is committed: create
    the payment at the processor under the attempt's idempotency key (unless it was
    created already) and keep its id; a new try first cancels the order's failed
    payments at the processor (outside any transaction: no lock is held while the
    processor answers). Returns the processor's answer when it was asked."""
    if attempt.processor_payment_id:
        return attempt, None
    if attempt.number > 1:
        _cancel_failed_attempts(
            list(PaymentAttempt.objects.filter(order_id=attempt.order_id, status=Status.FAILED))
        )
    payment = get_processor(attempt.processor).payment_create(
        amount_minor=attempt.amount_minor,
        currency=attempt.currency,
        transfer_group=f"order-{attempt.order_id}",
        customer_email=customer_email,
        metadata={"order_id": str(attempt.order_id), "attempt_id": str(attempt.pk)},
        idempotency_key=attempt.idempotency_key,
    )
    PaymentAttempt.objects.filter(pk=attempt.pk).update(
        processor_payment_id=payment.id, client_secret=payment.client_secret
    )
    attempt.processor_payment_id, attempt.client_secret = payment.id, payment.client_secret
    return attempt, payment


def attempt_update_from(attempt: PaymentAttempt, payment: Payment) -> PaymentAttempt:
    """Reflect what the browser-side confirmation returned; success waits for the event.

    The processor's event may have been processed already (it is delivered as
    soon as the processor commits), so the row is changed only while it is not
    succeeded or cancelled (one conditional UPDATE, atomic in itself), and a recorded
    success is never overwritten: the attempt is then read again as it is.
    """
    changes: dict[str, Any] = {}
    if payment.status == PaymentStatus.REQUIRES_PAYMENT_METHOD and payment.failure_message:
        changes = {"status": Status.FAILED, "failure_message": payment.failure_message}
    elif payment.status == PaymentStatus.SUCCEEDED:
        changes = {"status": Status.PROCESSING}  # until the processor's event is processed
    elif payment.status in ATTEMPT_STATUS:
        changes = {"status": ATTEMPT_STATUS[payment.status]}
    changes["updated_at"] = timezone.now()
    changed = (
        PaymentAttempt.objects.filter(pk=attempt.pk)
        .exclude(status__in=(Status.SUCCEEDED, Status.CANCELED))
        .update(**changes)
    )
    if not changed:
        return PaymentAttempt.objects.get(pk=attempt.pk)
    for name, value in changes.items():
        setattr(attempt, name, value)
    return attempt


@transaction.atomic
def payment_succeeded(*, payment_id: str, processor_name: str) -> Order | None:
    """The processor's word that a payment succeeded: re-read it, then record the capture once."""
    found = PaymentAttempt.objects.filter(
        processor=processor_name, processor_payment_id=payment_id
    ).first()
    if found is None:
        logger.warning("No payment attempt for %s payment %s", processor_name, payment_id)
        return None
    # The order first, then the attempt: the lock order of every payment path.
    order = order_lock(found.order_id)
    attempt = PaymentAttempt.objects.select_for_update().get(pk=found.pk)
    if attempt.status == Status.SUCCEEDED:
        return None  # recorded already
    processor = get_processor(processor_name)
    payment = processor.payment_get(payment_id=payment_id)
    if payment.status != PaymentStatus.SUCCEEDED:
        return None  # a stale or early event; the next one will tell
    already_paid = order.payment_attempts.filter(status=Status.SUCCEEDED).exclude(pk=attempt.pk)
    if order.status == Order.Status.CANCELLED or already_paid.exists():
        # Paid after the order expired, or paid a second time (a stale tab):
        # the order takes one payment only, so this one goes back.
        reason = "order_expired" if order.status == Order.Status.CANCELLED else "duplicate"
        processor.refund_create(
            payment_id=payment_id,
            amount_minor=payment.amount_minor,
            metadata={"order_id": str(order.pk), "reason": reason},
            idempotency_key=f"refund-{reason}-{attempt.pk}",
        )
        attempt.status = Status.CANCELED
        attempt.failure_message = (
            "Paid after the order had expired; the payment was refunded."
            if reason == "order_expired"
            else "The order was paid already; this second payment was refunded."
        )
        attempt.save(update_fields=["status", "failure_message", "updated_at"])
        duplicate_payment_fee_recorded(attempt=attempt, fee_minor=payment.fee_minor or 0)
        return None
    order_payment_captured(
        order=order, processor_fee_minor=payment.fee_minor or 0, captured_at=timezone.now()
    )
    attempt.status, attempt.failure_message = Status.SUCCEEDED, ""
    attempt.save(update_fields=["status", "failure_message", "updated_at"])
    return order


@transaction.atomic
def payment_failed(*, payment_id: str, processor_name: str, message: str) -> None:
    """The processor's word that a try failed: the customer may try another card."""
    attempt = (
        PaymentAttempt.objects.select_for_update()
        .filter(processor=processor_name, processor_payment_id=payment_id)
        .first()
    )
    if attempt is None or attempt.status == Status.SUCCEEDED:
        return
    # Events arrive in any order: believe the processor's current state.
    payment = get_processor(processor_name).payment_get(payment_id=payment_id)
    if payment.status != PaymentStatus.REQUIRES_PAYMENT_METHOD:
        return
    attempt.status = Status.FAILED
    attempt.failure_message = message[:255] or "The payment failed."
    attempt.save(update_fields=["status", "failure_message", "updated_at"])


def local_card_pay(*, attempt: PaymentAttempt, card_number: str) -> PaymentAttempt:
    """The local processor's card form: confirm the payment with a test card.

    Raises ``CardDeclined`` with a message for the customer; the attempt then
    shows as failed and the customer can try another card.
    """
    from payments.processors.local import LocalProcessor

    if attempt.processor != "local":
        raise InvalidState("This payment is confirmed in the processor's own form.")
    try:
        payment = LocalProcessor().payment_confirm(
            payment_id=attempt.processor_payment_id, card_number=card_number
        )
    except CardDeclined as exc:
        _attempt_failed(attempt, exc.message)
        raise
    return attempt_update_from(attempt, payment)


def local_card_authenticate(*, attempt: PaymentAttempt, approve: bool) -> PaymentAttempt:
    """The extra confirmation step of the local processor's ``requires action`` card."""
    from payments.processors.local import LocalProcessor

    if attempt.processor != "local":
        raise InvalidState("This payment is confirmed in the processor's own form.")
    try:
        payment = LocalProcessor().payment_authenticate(
            payment_id=attempt.processor_payment_id, approve=approve
        )
    except CardDeclined as exc:
        _attempt_failed(attempt, exc.message)
        raise
    return attempt_update_from(attempt, payment)


def _attempt_failed(attempt: PaymentAttempt, message: str) -> None:
    with transaction.atomic():
        current = PaymentAttempt.objects.select_for_update().get(pk=attempt.pk)
        if current.status != Status.SUCCEEDED:
            current.status, current.failure_message = Status.FAILED, message[:255]
            current.save(update_fields=["status", "failure_message", "updated_at"])


def _cancel_failed_attempts(failed_attempts: list[PaymentAttempt]) -> None:
    """Before a new try, cancel the earlier failed payments at the processor, so a
    stale browser tab cannot pay them; one that succeeded meanwhile is left to its event."""
    from payments.processors.base import InvalidProcessorRequest

    for failed in failed_attempts:
        if not failed.processor_payment_id:
            continue
        try:
            get_processor(failed.processor).payment_cancel(
                payment_id=failed.processor_payment_id,
                idempotency_key=f"cancel-{failed.idempotency_key}",
            )
        except InvalidProcessorRequest:
            continue
        PaymentAttempt.objects.filter(pk=failed.pk).update(status=Status.CANCELED)


# --- Paying through the API: the client confirms, then reads until paid --------------


@dataclass(frozen=True, slots=True)
class PaymentState:
    """An order's payment as an API client sees it: the attempt, and what the customer
    must do before it can go on (the processor's ``next_action``; None when nothing)."""

    attempt: PaymentAttempt
    next_action: Mapping[str, Any] | None = None


def order_payment_start(*, order: Order) -> PaymentState:
    """Start, or resume, paying ``order`` for a client that confirms the payment itself.

    The same attempt as the site's (``payment_start``): the open one, or a new one
    after a failed one. ``next_action`` is the processor's current word on it (a
    resumed attempt is read again at the processor, since the customer may have
    confirmed it meanwhile). Raises ``InvalidState`` when the order is not waiting
    for a payment.
    """
    attempt, payment = _payment_start(order)
    return PaymentState(attempt, _next_action(attempt, payment))


def order_payment_get(*, order: Order) -> PaymentState | None:
    """The latest attempt to pay ``order`` (None before the first) and, while it is
    open, the processor's ``next_action``. The order is paid only once the
    processor's event is processed: read the order's status, not the attempt's."""
    attempt = order.payment_attempts.order_by("number").last()
    if attempt is None:
        return None
    return PaymentState(attempt, _next_action(attempt, None))


def order_payment_confirm(*, order: Order, card_number: str) -> PaymentState:
    """Confirm the order's open attempt with one of the local processor's test cards
    (what Stripe.js does with a real card).

    Raises ``InvalidState`` when the order is not waiting for a payment, when no
    attempt is open (none started, or the last one failed: start a new one), when
    the attempt waits for its confirmation step (``order_payment_authenticate``),
    and with another processor, whose payments are confirmed with its own client
    library; ``CardDeclined`` when the card is declined (the attempt is then failed).
    """
    attempt = _open_attempt(order)
    if attempt.processor != "local":
        raise InvalidState(
            "This payment is confirmed with Stripe.js or Stripe's mobile SDK, using its "
            "client_secret; then read the payment until the order is paid."
        )
    if attempt.status == Status.REQUIRES_ACTION:
        raise InvalidState("This payment is waiting for its confirmation step.")
    try:
        attempt = local_card_pay(attempt=attempt, card_number=card_number)
    except CardDeclined as exc:
        # The card is the request's field at fault.
        raise CardDeclined(
            exc.message,
            code=exc.code or "card_declined",
            request_id=exc.request_id,
            param="card_number",
        ) from exc
    return PaymentState(attempt, _next_action(attempt, None))


def order_payment_authenticate(*, order: Order, approve: bool) -> PaymentState:
    """The customer's answer to the confirmation step (3-D Secure) of the order's
    attempt that asks for one: approved, it pays; refused, ``CardDeclined`` and the
    attempt is failed. Raises ``InvalidState`` when no attempt waits for this step."""
    attempt = _open_attempt(order)
    if attempt.status != Status.REQUIRES_ACTION:
        raise InvalidState("This payment is not waiting for a confirmation.")
    attempt = local_card_authenticate(attempt=attempt, approve=approve)
    return PaymentState(attempt, _next_action(attempt, None))


def _open_attempt(order: Order) -> PaymentAttempt:
    if order.status != Order.Status.AWAITING_PAYMENT:
        raise InvalidState(f"Order #{order.pk} is not waiting for a payment.")
    attempt = order.payment_attempts.filter(status__in=PaymentAttempt.OPEN).last()
    if attempt is None or not attempt.processor_payment_id:
        raise InvalidState("No payment is open for this order: start one first.")
    return attempt


def _next_action(attempt: PaymentAttempt, payment: Payment | None) -> Mapping[str, Any] | None:
    """What the processor asks of the customer for an open attempt (``payment`` if it
    was just read, else read now); None for an attempt that is over."""
    if attempt.status not in PaymentAttempt.OPEN or not attempt.processor_payment_id:
        return None
    if payment is None:
        payment = get_processor(attempt.processor).payment_get(
            payment_id=attempt.processor_payment_id
        )
    return payment.next_action
