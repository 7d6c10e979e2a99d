"""Emails about money: the customer's receipt and the sellers' "new order", payouts.

Each email is about one event and is sent once, even when its task is
delivered twice (at-least-once queues, a worker that died after sending): the
event's key is written (``SentNotification``, unique) in the same transaction
as the email is handed to the mail server. A second delivery that runs
meanwhile waits on the key and then finds it; one that fails to send rolls
the key back, so the retry sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from marketplace.models import Order
from payments.models import PaymentAttempt, Payout, Refund, RefundRequest, SentNotification


def send_once(key: str, send: Callable[[], int]) -> int:
    """Call ``send`` (returns how many emails went out) unless the email keyed ``key``
    was sent already; returns what ``send`` returned, or 0."""
    try:
        with transaction.atomic():
            SentNotification.objects.create(key=key)
            return send()
    except IntegrityError:
        return 0  # sent already (or by a concurrent delivery that committed first)


def order_paid_notify(*, order_id: int) -> int:
    """Send the receipt and one "new order" email per seller, once; returns how many
    were sent."""
    return send_once(f"order:{order_id}:paid", lambda: _order_paid_send(order_id))


def _order_paid_send(order_id: int) -> int:
    order = (
        Order.objects.select_related("customer")
        .prefetch_related("seller_orders__seller__user", "seller_orders__lines")
        .get(pk=order_id)
    )
    messages = [
        (
            f"Your receipt for order #{order.pk}",
            render_to_string("payments/email/receipt.txt", {"order": order}),
            settings.DEFAULT_FROM_EMAIL,
            [order.customer.email],
        )
    ]
    for seller_order in order.seller_orders.all():
        messages.append(
            (
                f"New order #{order.pk}",
                render_to_string("payments/email/new_order.txt", {"seller_order": seller_order}),
                settings.DEFAULT_FROM_EMAIL,
                [seller_order.seller.user.email],
            )
        )
    return send_mass_mail(messages, fail_silently=False)


def order_payment_failed_notify(*, order_id: int) -> int:
    """Tell the customer that their delayed payment (a bank debit) failed days after it
    was made, and that the order was cancelled for it, once; returns how many were sent
    (0 unless the order is cancelled)."""
    return send_once(
        f"order:{order_id}:payment_failed", lambda: _order_payment_failed_send(order_id)
    )


def _order_payment_failed_send(order_id: int) -> int:

    order = Order.objects.select_related("customer").get(pk=order_id)
    if order.status != Order.Status.CANCELLED:
        return 0
    attempt = PaymentAttempt.objects.filter(order=order).order_by("number").last()
    return _send(
        f"Your payment for order #{order.pk} failed",
        "payments/email/payment_failed.txt",
        {"order": order, "attempt": attempt},
        order.customer.email,
    )


PAYOUT_SUBJECTS = {
    "sent": "Your payout is on its way",
    "paid": "Your payout has arrived",
    "failed": "Your payout did not go through",
    "bank_refused": "Your payout could not be sent to your bank",
    "bank_failed": "Your payout did not reach your bank",
    "returned": "Your bank returned your payout",
}
# Events operators hear of too (settings.ADMINS), with what the seller was told.
OPERATOR_SUBJECTS = {
    "bank_refused": "Payout #{pk}: the processor refused the bank payout",
    "bank_failed": "Payout #{pk}: the bank payout failed",
    "returned": "Payout #{pk}: returned by the seller's bank after it was paid",
    "attention": "Payout #{pk} needs attention",
}


def payout_notify(*, payout_id: int, event: str) -> int:
    """Tell the seller a payout was sent, paid, or failed (with why and what happens
    next), once per payout and event."""
    return send_once(f"payout:{payout_id}:{event}", lambda: _payout_send(payout_id, event))


def _payout_send(payout_id: int, event: str) -> int:
    from django.core.mail import mail_admins, send_mail

    payout = Payout.objects.select_related("seller__user").get(pk=payout_id)
    sent = 0
    if event in PAYOUT_SUBJECTS:
        body = render_to_string("payments/email/payout.txt", {"payout": payout, "event": event})
        sent += send_mail(
            PAYOUT_SUBJECTS[event], body, settings.DEFAULT_FROM_EMAIL, [payout.seller.user.email]
        )
    if event in OPERATOR_SUBJECTS and settings.ADMINS:
        body = render_to_string(
            "payments/email/payout_operators.txt", {"payout": payout, "event": event}
        )
        mail_admins(OPERATOR_SUBJECTS[event].format(pk=payout.pk), body, fail_silently=False)
        sent += 1
    return sent


def refund_succeeded_notify(*, refund_id: int) -> int:
    """Tell the customer what they get back and each seller in the refund what it
    takes from their share, once each (a key per recipient: a retry after a failed
    send sends only what did not go). Returns how many were sent."""

    refund = (
        Refund.objects.select_related("order__customer")
        .prefetch_related("lines__order_line__seller_order__seller__user")
        .get(pk=refund_id)
    )
    if refund.status != Refund.Status.SUCCEEDED:
        return 0
    lines = list(refund.lines.all())
    sent = send_once(
        f"refund:{refund.pk}:customer",
        lambda: _send(
            f"Your refund for order #{refund.order_id}",
            "payments/email/refund_customer.txt",
            {"refund": refund, "lines": lines},
            refund.order.customer.email,
        ),
    )
    for seller, its_lines in _by_seller(lines):
        sent += send_once(
            f"refund:{refund.pk}:seller:{seller.pk}",
            partial(_seller_refund_send, refund, seller, its_lines),
        )
    return sent


def refund_request_declined_notify(*, request_id: int) -> int:
    """Tell the customer that their refund request was declined and why, and the
    line's seller that it was, once each. Returns how many were sent."""

    request = RefundRequest.objects.select_related(
        "order_line__order", "order_line__seller_order__seller__user", "requested_by", "decided_by"
    ).get(pk=request_id)
    if request.status != RefundRequest.Status.DECLINED:
        return 0
    seller = request.order_line.seller_order.seller
    context = {"request": request, "line": request.order_line, "seller": seller}
    order_id = request.order_line.order_id
    sent = send_once(
        f"refund_request:{request.pk}:declined:customer",
        lambda: _send(
            f"Your refund request for order #{order_id}",
            "payments/email/refund_request_declined_customer.txt",
            context,
            request.requested_by.email,
        ),
    )
    sent += send_once(
        f"refund_request:{request.pk}:declined:seller",
        lambda: _send(
            f"Refund request on order #{order_id} declined",
            "payments/email/refund_request_declined_seller.txt",
            context,
            seller.user.email,
        ),
    )
    return sent


def _seller_refund_send(refund: Any, seller: Any, lines: list[Any]) -> int:
    return _send(
        f"A refund on order #{refund.order_id}",
        "payments/email/refund_seller.txt",
        {
            "refund": refund,
            "seller": seller,
            "lines": lines,
            "amount_minor": sum(rl.amount_minor for rl in lines),
            "seller_minor": sum(rl.seller_amount_minor for rl in lines),
            "commission_minor": sum(rl.commission_amount_minor for rl in lines),
        },
        seller.user.email,
    )


def _send(subject: str, template: str, context: dict[str, Any], to: str) -> int:
    from django.core.mail import send_mail

    body = render_to_string(template, context)
    return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)


def _by_seller(lines: list[Any]) -> list[tuple[Any, list[Any]]]:
    """The refund's lines grouped by seller, in the order they come."""
    groups: dict[int, tuple[Any, list[Any]]] = {}
    for refund_line in lines:
        seller = refund_line.order_line.seller_order.seller
        groups.setdefault(seller.pk, (seller, []))[1].append(refund_line)
    return list(groups.values())
