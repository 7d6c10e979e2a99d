"""Orders left unpaid are cancelled and their stock released."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from marketplace.kernel.errors import ApplicationError
from marketplace.models import Order
from marketplace.orders import order_cancel
from payments.collection.checkout import DELAYED_METHOD_TYPES, payment_succeeded
from payments.models import PaymentAttempt
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest, ProcessorError

logger = logging.getLogger(__name__)


def orders_expire_unpaid(*, now: datetime | None = None) -> int:
    """Cancel every order still awaiting payment after ``PAYMENTS_ORDER_EXPIRY_MINUTES``.

    Every payment of the order is cancelled at the processor first. One that
    cannot be cancelled because it succeeded (its event was lost or is late)
    is recorded now, from the processor's own state, and the order is kept.

    An order whose delayed payment (a bank debit) is processing is skipped: the
    debit takes days, the stock stays reserved for it, and its outcome decides
    (paid, or cancelled by ``payment_failed``). A processing payment whose attempt
    does not know it yet (its event is late) cannot be cancelled at the processor
    either (``InvalidProcessorRequest``): the order is kept too.
    """

    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.PAYMENTS_ORDER_EXPIRY_MINUTES)
    expired = 0
    debits_processing = PaymentAttempt.objects.filter(
        status=PaymentAttempt.Status.PROCESSING, payment_method_type__in=DELAYED_METHOD_TYPES
    ).values("order_id")
    for order in (
        Order.objects.filter(status=Order.Status.AWAITING_PAYMENT, created_at__lt=cutoff)
        .exclude(pk__in=debits_processing)
        .order_by("pk")
    ):
        try:
            paid = False
            for attempt in order.payment_attempts.exclude(
                status__in=[PaymentAttempt.Status.CANCELED, PaymentAttempt.Status.SUCCEEDED]
            ):
                if attempt.processor_payment_id:
                    try:
                        get_processor(attempt.processor).payment_cancel(
                            payment_id=attempt.processor_payment_id,
                            idempotency_key=f"cancel-{attempt.idempotency_key}",
                        )
                    except InvalidProcessorRequest:
                        payment_succeeded(
                            payment_id=attempt.processor_payment_id,
                            processor_name=attempt.processor,
                        )
                        paid = True
                        continue
                PaymentAttempt.objects.filter(pk=attempt.pk).update(
                    status=PaymentAttempt.Status.CANCELED
                )
            if paid:
                continue
            order_cancel(order=order)
        except (ProcessorError, ApplicationError):
            logger.warning("Order #%s could not be expired now; trying later", order.pk)
            continue
        expired += 1
    return expired
