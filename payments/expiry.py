"""Orders left unpaid are cancelled and their stock released."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from marketplace.models import Order
from marketplace.services.orders import order_cancel
from payments.models import PaymentAttempt
from payments.processors import get_processor
from payments.processors.base import InvalidProcessorRequest, ProcessorError

logger = logging.getLogger(__name__)


def orders_expire_unpaid(*, now: datetime | None = None) -> int:
    """Cancel every order still awaiting payment after ``PAYMENTS_ORDER_EXPIRY_MINUTES``.

    Its open payments are cancelled at the processor first; an order whose
    payment cannot be cancelled (it is succeeding) is left for its event.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.PAYMENTS_ORDER_EXPIRY_MINUTES)
    expired = 0
    for order in Order.objects.filter(
        status=Order.Status.AWAITING_PAYMENT, created_at__lt=cutoff
    ).order_by("pk"):
        try:
            for attempt in order.payment_attempts.filter(status__in=PaymentAttempt.OPEN):
                if attempt.processor_payment_id:
                    get_processor(attempt.processor).payment_cancel(
                        payment_id=attempt.processor_payment_id,
                        idempotency_key=f"cancel-{attempt.idempotency_key}",
                    )
                PaymentAttempt.objects.filter(pk=attempt.pk).update(
                    status=PaymentAttempt.Status.CANCELED
                )
        except InvalidProcessorRequest:
            logger.info("Order #%s is being paid; not expiring it", order.pk)
            continue
        except ProcessorError:
            logger.warning("Could not cancel the payment of order #%s; trying later", order.pk)
            continue
        order_cancel(order=order)
        expired += 1
    return expired
