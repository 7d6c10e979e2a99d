"""Orders below the money: an order's row lock and cancelling an order never paid.

``payments`` builds on these (an unpaid order expires, a bank debit fails) and
``marketplace.services`` on both (a paid seller order cancelled is refunded there).
Nothing here moves money, so nothing here imports ``payments``. The order's lock is
step 1 of the lock order every money service follows (``payments/ledger/locks.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.db.models import F

from marketplace.kernel.errors import InvalidState
from marketplace.models import Order, OrderLine, Product, SellerOrder


def order_lock(order_id: int) -> Order:
    """The order, read under its lock (``FOR NO KEY UPDATE`` of its row only)."""
    return Order.objects.select_for_update(no_key=True, of=("self",)).get(pk=order_id)


def stock_return(lines: Sequence[OrderLine]) -> None:
    """Put the quantities of ``lines`` back in stock, products in id order."""
    for line in sorted(lines, key=lambda line: line.product_id):
        Product.objects.filter(pk=line.product_id).update(stock=F("stock") + line.quantity)


@transaction.atomic
def order_cancel(*, order: Order) -> Order:
    """Cancel an order that was never paid and put its stock back. Safe to repeat."""
    order = order_lock(order.pk)
    if order.status == Order.Status.CANCELLED:
        return order
    if order.status != Order.Status.AWAITING_PAYMENT:
        raise InvalidState("A paid order is not cancelled but refunded.")
    stock_return(list(order.lines.all()))
    order.status = Order.Status.CANCELLED
    order.save(update_fields=["status"])
    order.seller_orders.update(status=SellerOrder.Status.CANCELLED)
    return order
