"""Fulfilment: a seller marks their part of a paid order shipped, then delivered.

Delivery matters for money: a payout policy may release earnings on delivery
(``payments.payouts.policies.release_is_due``). Both steps are safe to repeat, and
only the seller who sold it (or an operator, for them) may take them.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import Seller
from marketplace.kernel.errors import InvalidState, NotFound
from marketplace.models import Order, SellerOrder

SHIPPABLE_ORDER_STATUSES = (Order.Status.PAID, Order.Status.PARTIALLY_REFUNDED)


def _locked(seller_order: SellerOrder, seller: Seller | None) -> SellerOrder:
    locked = (
        SellerOrder.objects.select_for_update(of=("self",))
        .select_related("order")
        .get(pk=seller_order.pk)
    )
    if seller is not None and locked.seller_id != seller.pk:
        raise NotFound("No such order.")
    return locked


@transaction.atomic
def seller_order_ship(
    *, seller_order: SellerOrder, seller: Seller | None, tracking_number: str = ""
) -> SellerOrder:
    """Mark a paid seller order shipped (``seller=None``: an operator does it)."""
    seller_order = _locked(seller_order, seller)
    if seller_order.shipped_at is not None:
        return seller_order
    if seller_order.order.status not in SHIPPABLE_ORDER_STATUSES or seller_order.status in (
        SellerOrder.Status.CANCELLED,
        SellerOrder.Status.REFUNDED,
    ):
        raise InvalidState("Only a paid order that is not cancelled or refunded can ship.")
    seller_order.shipped_at = timezone.now()
    seller_order.tracking_number = tracking_number.strip()[:100]
    if seller_order.status == SellerOrder.Status.PAID:
        seller_order.status = SellerOrder.Status.SHIPPED
    seller_order.save(update_fields=["shipped_at", "tracking_number", "status"])
    return seller_order


@transaction.atomic
def seller_order_deliver(*, seller_order: SellerOrder, seller: Seller | None) -> SellerOrder:
    """Mark a shipped seller order delivered; its earnings may be released on delivery."""
    seller_order = _locked(seller_order, seller)
    if seller_order.delivered_at is not None:
        return seller_order
    if seller_order.shipped_at is None:
        raise InvalidState("Mark the order shipped first.")
    seller_order.delivered_at = timezone.now()
    if seller_order.status == SellerOrder.Status.SHIPPED:
        seller_order.status = SellerOrder.Status.DELIVERED
    seller_order.save(update_fields=["delivered_at", "status"])
    return seller_order
