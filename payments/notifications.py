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

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from marketplace.models import Order
from payments.models import SentNotification


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

    from payments.models import Payout

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
