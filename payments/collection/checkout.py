"""Paying for an order at the processor.

An order is paid only when the processor says so through its event
(``payment_intent.succeeded``), never on the browser's word. Each try is a
``PaymentAttempt`` with its own idempotency key, ``payment-<order>-<n>``: a
retry after a timeout reuses the key, so the processor charges once; a new
card after a decline is a new attempt on the same order.

Delayed-notification payments (bank debits: the local processor's test IBANs,
Stripe's ``sepa_debit``, ``us_bank_account``) are *processing* for days
(``payment_processing``): the order stays awaiting payment with its stock
reserved, is not expired, and nothing is posted until ``payment_succeeded``
(the hold period starts then). One that fails after processing cancels the
order (``payment_failed``); a declined card still lets the customer try again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketplace.kernel.errors import InvalidRequest, InvalidState
from marketplace.models import Order
from marketplace.orders import order_cancel
from payments.collection.captures import duplicate_payment_fee_recorded, order_payment_captured
from payments.ledger.locks import order_lock
from payments.models import PaymentAttempt
from payments.processors import get_processor
from payments.processors.base import (
    CardDeclined,
    InvalidProcessorRequest,
    Payment,
    PaymentProcessor,
    PaymentStatus,
)
from payments.processors.local import BANK_DEBIT, LocalProcessor

logger = logging.getLogger(__name__)

Status = PaymentAttempt.Status
# What a processor status means for an attempt that has not succeeded yet.
ATTEMPT_STATUS = {
    PaymentStatus.REQUIRES_ACTION: Status.REQUIRES_ACTION,
    PaymentStatus.PROCESSING: Status.PROCESSING,
    PaymentStatus.CANCELED: Status.CANCELED,
}
# Payment methods whose outcome is known only days later (delayed notification).
DELAYED_METHOD_TYPES = frozenset(
    {"bank_debit", "sepa_debit", "us_bank_account", "bacs_debit", "au_becs_debit", "acss_debit"}
)


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


def attempt_update_from(
    attempt: PaymentAttempt, payment: Payment, *, method_type: str = ""
) -> PaymentAttempt:
    """Reflect what the browser-side confirmation returned; success waits for the event.

    The processor's event may have been processed already (it is delivered as
    soon as the processor commits), so the row is changed only while it is not
    succeeded or cancelled (one conditional UPDATE, atomic in itself), and a recorded
    success is never overwritten: the attempt is then read again as it is.
    ``method_type`` (how the customer paid) is recorded with it when given.
    """
    changes: dict[str, Any] = {}
    if payment.status == PaymentStatus.REQUIRES_PAYMENT_METHOD and payment.failure_message:
        changes = {"status": Status.FAILED, "failure_message": payment.failure_message}
    elif payment.status == PaymentStatus.SUCCEEDED:
        changes = {"status": Status.PROCESSING}  # until the processor's event is processed
    elif payment.status in ATTEMPT_STATUS:
        changes = {"status": ATTEMPT_STATUS[payment.status]}
    if method_type:
        changes["payment_method_type"] = method_type
    changes["updated_at"] = timezone.now()
    over = [Status.SUCCEEDED, Status.CANCELED]
    if changes.get("status") == Status.PROCESSING:
        over.append(Status.FAILED)  # a debit that failed already (its event came first)
    changed = (
        PaymentAttempt.objects.filter(pk=attempt.pk).exclude(status__in=over).update(**changes)
    )
    if not changed:
        return PaymentAttempt.objects.get(pk=attempt.pk)
    for name, value in changes.items():
        setattr(attempt, name, value)
    return attempt


@transaction.atomic
def payment_succeeded(
    *, payment_id: str, processor_name: str, method_type: str = ""
) -> Order | None:
    """The processor's word that a payment succeeded: re-read it, then record the capture once.

    The capture is posted now, whatever the method: a bank debit that was processing
    for days is paid (``paid_at``, the start of the sellers' hold period) when it
    succeeds, not when it was confirmed. ``method_type`` (from the event) is recorded
    on the attempt when it was not known yet."""
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
    attempt.payment_method_type = attempt.payment_method_type or method_type[:30]
    attempt.save(update_fields=["status", "failure_message", "payment_method_type", "updated_at"])
    return order


@transaction.atomic
def payment_processing(*, payment_id: str, processor_name: str, method_type: str = "") -> None:
    """The processor's word that a payment is processing (a bank debit under way, for
    days): the attempt shows it, with how the customer paid. Nothing is posted and the
    order stays awaiting payment (its stock reserved) until ``payment_succeeded``.
    Events arrive in any order: the attempt changes only while the processor still says
    processing and the attempt is neither over (succeeded, failed, cancelled) nor
    changed already."""
    found = PaymentAttempt.objects.filter(
        processor=processor_name, processor_payment_id=payment_id
    ).first()
    if found is None:
        logger.warning("No payment attempt for %s payment %s", processor_name, payment_id)
        return
    order_lock(found.order_id)  # the lock order of every payment path: order, attempt
    attempt = PaymentAttempt.objects.select_for_update().get(pk=found.pk)
    if attempt.status not in (Status.CREATED, Status.REQUIRES_ACTION, Status.PROCESSING):
        return
    processor = get_processor(processor_name)
    payment = processor.payment_get(payment_id=payment_id)
    if payment.status != PaymentStatus.PROCESSING:
        return  # settled meanwhile: its own event tells
    if not (attempt.payment_method_type or method_type):
        # Stripe's event does not say (automatic payment methods): ask the processor.
        method_type = _method_type_at(processor, payment_id)
    attempt.status = Status.PROCESSING
    attempt.payment_method_type = attempt.payment_method_type or method_type[:30]
    attempt.save(update_fields=["status", "payment_method_type", "updated_at"])


@dataclass(frozen=True, slots=True)
class PaymentFailure:
    """What ``payment_failed`` did: the attempt failed and, for a delayed payment (a
    bank debit) that failed after processing, whether the order was cancelled now."""

    attempt: PaymentAttempt
    order_cancelled: bool


@transaction.atomic
def payment_failed(
    *, payment_id: str, processor_name: str, message: str, method_type: str = ""
) -> PaymentFailure | None:
    """The processor's word that a try failed.

    A declined card: the attempt is failed and the customer may try another card.
    A delayed payment (a bank debit, ``DELAYED_METHOD_TYPES``, known from the attempt
    or the event's ``method_type``) that fails, days later: the order is cancelled and
    its stock returned (``order_cancel``), nothing having been posted; under the order's
    lock, the order's state is checked again: a paid or cancelled order is left alone.
    The caller tells the customer (once). Returns None when nothing changed.
    """

    found = PaymentAttempt.objects.filter(
        processor=processor_name, processor_payment_id=payment_id
    ).first()
    if found is None or found.status == Status.SUCCEEDED:
        return None
    order = order_lock(found.order_id)  # the order first, then the attempt
    attempt = PaymentAttempt.objects.select_for_update().get(pk=found.pk)
    if attempt.status in (Status.SUCCEEDED, Status.CANCELED):
        return None
    # Events arrive in any order: believe the processor's current state.
    payment = get_processor(processor_name).payment_get(payment_id=payment_id)
    if payment.status != PaymentStatus.REQUIRES_PAYMENT_METHOD:
        return None
    attempt.status = Status.FAILED
    attempt.failure_message = (
        message[:255] or payment.failure_message[:255] or "The payment failed."
    )
    attempt.payment_method_type = attempt.payment_method_type or method_type[:30]
    attempt.save(update_fields=["status", "failure_message", "payment_method_type", "updated_at"])
    cancelled = False
    if (
        attempt.payment_method_type in DELAYED_METHOD_TYPES
        and order.status == Order.Status.AWAITING_PAYMENT
        and not order.payment_attempts.filter(status=Status.SUCCEEDED).exists()
    ):
        order_cancel(order=order)
        cancelled = True
    return PaymentFailure(attempt=attempt, order_cancelled=cancelled)


def local_card_pay(*, attempt: PaymentAttempt, card_number: str) -> PaymentAttempt:
    """The local processor's card form: confirm the payment with a test card.

    Raises ``CardDeclined`` with a message for the customer; the attempt then
    shows as failed and the customer can try another card.
    """

    if attempt.processor != "local":
        raise InvalidState("This payment is confirmed in the processor's own form.")
    try:
        payment = LocalProcessor().payment_confirm(
            payment_id=attempt.processor_payment_id, card_number=card_number
        )
    except CardDeclined as exc:
        _attempt_failed(attempt, exc.message)
        raise
    # A payment already processing (a bank debit) is answered as it is: not a card.
    method = "card" if payment.status != PaymentStatus.PROCESSING else ""
    return attempt_update_from(attempt, payment, method_type=method)


def payment_return(*, order: Order, payment_id: str) -> PaymentAttempt | None:
    """The customer is back from the processor's page (Stripe's ``return_url``, after a
    redirect method, a bank debit's mandate or a card): the open attempt of ``order``
    paid with ``payment_id`` shows the processor's current word (``processing`` for a
    bank debit, with its method), before its event arrives. Nothing is paid on this:
    only the processor's event pays. None when no open attempt has that payment."""
    attempt = order.payment_attempts.filter(
        processor_payment_id=payment_id, status__in=PaymentAttempt.OPEN
    ).last()
    if attempt is None or not payment_id:
        return None
    processor = get_processor(attempt.processor)
    payment = processor.payment_get(payment_id=payment_id)
    processing = payment.status == PaymentStatus.PROCESSING
    method_type = _method_type_at(processor, payment_id) if processing else ""
    return attempt_update_from(attempt, payment, method_type=method_type)


def _method_type_at(processor: PaymentProcessor, payment_id: str) -> str:
    """How the payment was paid, asked of the processor; blank if it cannot say yet."""
    return processor.payment_method_type_get(payment_id=payment_id)


def local_bank_debit_pay(*, attempt: PaymentAttempt, iban: str) -> PaymentAttempt:
    """The local processor's bank debit form: confirm the payment with a test IBAN.

    The payment is then processing (the attempt too, with ``payment_method_type``
    ``bank_debit``) until it settles days later; the order stays awaiting payment.
    Raises ``CardDeclined`` (code ``invalid_iban``) for an IBAN that is not a test
    one: nothing changes, and the customer may correct it.
    """

    if attempt.processor != "local":
        raise InvalidState("This payment is confirmed in the processor's own form.")
    payment = LocalProcessor().payment_confirm_bank_debit(
        payment_id=attempt.processor_payment_id, iban=iban
    )
    return attempt_update_from(attempt, payment, method_type=BANK_DEBIT)


def local_card_authenticate(*, attempt: PaymentAttempt, approve: bool) -> PaymentAttempt:
    """The extra confirmation step of the local processor's ``requires action`` card."""

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


def order_payment_confirm(*, order: Order, card_number: str = "", iban: str = "") -> PaymentState:
    """Confirm the order's open attempt with one of the local processor's test cards or
    test IBANs (what Stripe.js does with a real card or a SEPA mandate): exactly one of
    ``card_number`` and ``iban`` (else ``InvalidRequest``). A bank debit answers
    ``processing``: read the payment until the order is paid (or cancelled, if the
    debit fails days later).

    Raises ``InvalidState`` when the order is not waiting for a payment, when no
    attempt is open (none started, or the last one failed: start a new one), when
    the attempt waits for its confirmation step (``order_payment_authenticate``),
    and with another processor, whose payments are confirmed with its own client
    library; ``CardDeclined`` when the card is declined (the attempt is then failed).
    """
    if bool(card_number.strip()) == bool(iban.strip()):
        raise InvalidRequest(
            "Give either card_number or iban, not both and not neither.", param="card_number"
        )
    attempt = _open_attempt(order)
    if attempt.processor != "local":
        raise InvalidState(
            "This payment is confirmed with Stripe.js or Stripe's mobile SDK, using its "
            "client_secret; then read the payment until the order is paid."
        )
    if attempt.status == Status.REQUIRES_ACTION:
        raise InvalidState("This payment is waiting for its confirmation step.")
    field = "iban" if iban.strip() else "card_number"
    try:
        if field == "iban":
            attempt = local_bank_debit_pay(attempt=attempt, iban=iban)
        else:
            attempt = local_card_pay(attempt=attempt, card_number=card_number)
    except CardDeclined as exc:
        # The card (or IBAN) is the request's field at fault.
        raise CardDeclined(
            exc.message,
            code=exc.code or "card_declined",
            request_id=exc.request_id,
            param=field,
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
