"""Emails about money: the customer's receipt and the sellers' "new order"."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mass_mail
from django.template.loader import render_to_string

from marketplace.models import Order


def order_paid_notify(*, order_id: int) -> int:
    """Send the receipt and one "new order" email per seller; returns how many were sent."""
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
}


def payout_notify(*, payout_id: int, event: str) -> int:
    """Tell the seller a payout was sent, paid, or failed (with why and what happens next)."""
    from django.core.mail import send_mail

    from payments.models import Payout

    payout = Payout.objects.select_related("seller__user").get(pk=payout_id)
    body = render_to_string("payments/email/payout.txt", {"payout": payout, "event": event})
    return send_mail(
        PAYOUT_SUBJECTS[event],
        body,
        settings.DEFAULT_FROM_EMAIL,
        [payout.seller.user.email],
    )
