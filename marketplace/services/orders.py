"""Placing and cancelling orders.

``place_order`` never trusts a price from the client: it reads every price
from the catalog, applies the commission in force by the precedence of
payments/revenue/commission.py (negotiated rule, else the seller's plan, else the
category/default rule and its volume tier) and freezes it on each line (the
percentage actually applied, its source, the tier's sales, the plan), adds the
customer's service fee for the order's currency (payments/revenue/service_fees.py:
``Order.total_minor`` is the lines plus the fee, which belongs to no line),
reserves stock with conditional updates (two customers racing for the last
unit: one order, one "out of stock"), and writes the order, its seller orders
and lines in one database transaction, or nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from accounts.models import User
from marketplace.kernel.errors import InvalidRequest, InvalidState, OutOfStock
from marketplace.kernel.money import is_whole_number
from marketplace.models import Order, OrderLine, Product, SellerOrder
from marketplace.orders import stock_return
from payments.collection.refunds import refund_create
from payments.integrations.metadata import metadata_merge
from payments.ledger.locks import order_lock
from payments.models import Refund
from payments.revenue.commission import CommissionRuleBook, line_split
from payments.revenue.service_fees import service_fee_for


@dataclass(frozen=True, slots=True)
class CartItem:
    product_id: int
    quantity: int


@dataclass(frozen=True, slots=True)
class ShippingAddress:
    name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str = ""


def _merged(cart_items: Sequence[CartItem]) -> OrderedDict[int, int]:
    """Quantities per product, validated; the same product twice is one line."""
    if not cart_items:
        raise InvalidRequest("The cart is empty.")
    quantities: OrderedDict[int, int] = OrderedDict()
    for item in cart_items:
        quantity = item.quantity
        if not is_whole_number(quantity) or quantity <= 0:
            raise InvalidRequest(f"Quantities must be whole numbers above zero, not {quantity!r}.")
        if not is_whole_number(item.product_id):
            raise InvalidRequest(f"Unknown product {item.product_id!r}.")
        quantities[item.product_id] = quantities.get(item.product_id, 0) + quantity
        if quantities[item.product_id] > settings.ORDER_MAX_QUANTITY:
            raise InvalidRequest(
                f"At most {settings.ORDER_MAX_QUANTITY} of one product can be ordered at once."
            )
    return quantities


@transaction.atomic
def place_order(
    *,
    customer: User,
    cart_items: Sequence[CartItem],
    shipping: ShippingAddress | None = None,
    at: datetime | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Order:
    """Turn a cart into an order awaiting payment, with stock reserved; see the module
    docstring. ``metadata`` (the integrator's own, payments/integrations/metadata.py) is
    checked first."""
    at = at or timezone.now()
    checked_metadata = metadata_merge({}, metadata) if metadata is not None else {}
    quantities = _merged(cart_items)
    # Lock the products in primary-key order: concurrent checkouts queue up
    # instead of deadlocking, and prices cannot change under us.
    products = {
        p.pk: p
        for p in Product.objects.select_for_update(of=("self",))
        .select_related("category", "seller")
        .filter(pk__in=quantities)
        .order_by("pk")
    }
    for product_id in quantities:
        product = products.get(product_id)
        if product is None or not product.is_active:
            raise InvalidRequest(f"Product {product_id} is not for sale.")
    currencies = {products[pid].currency for pid in quantities}
    if len(currencies) > 1:
        raise InvalidRequest(
            "One order is paid in one currency; this cart mixes "
            f"{', '.join(sorted(currencies))}. Check out each currency separately."
        )
    currency = currencies.pop()
    if not any(products[pid].price_minor for pid in quantities):
        raise InvalidRequest("There is nothing to pay for: every item in the cart is free.")

    # The rows are locked: their stock, read above, is what is there. Every line is
    # checked, then all are reserved in one conditional UPDATE (each row's own
    # quantity, and only where enough is left: it must change every row).
    for product_id in sorted(quantities):
        product, quantity = products[product_id], quantities[product_id]
        if product.stock < quantity:
            raise OutOfStock(
                f"Only {product.stock} of “{product.title}” left; you asked for {quantity}."
                if product.stock
                else f"“{product.title}” is out of stock."
            )
    wanted = Case(
        *(When(pk=pid, then=Value(quantity)) for pid, quantity in quantities.items()),
        output_field=IntegerField(),
    )
    reserved = Product.objects.filter(pk__in=quantities, stock__gte=wanted).update(
        stock=F("stock") - wanted
    )
    if reserved != len(quantities):  # cannot happen under the locks; never half-reserve
        raise OutOfStock("The stock changed while the order was placed; please try again.")

    rules = CommissionRuleBook(products=products.values(), currency=currency, at=at)
    splits = {
        pid: line_split(
            unit_price_minor=products[pid].price_minor,
            quantity=quantity,
            choice=rules.choice_for(products[pid]),
        )
        for pid, quantity in quantities.items()
    }
    lines_total = sum(s.gross_minor for s in splits.values())
    service_fee, service_fee_minor = service_fee_for(
        currency=currency, lines_total_minor=lines_total, at=at
    )
    order = Order.objects.create(
        customer=customer,
        currency=currency,
        total_minor=lines_total + service_fee_minor,
        service_fee_minor=service_fee_minor,
        service_fee=service_fee,
        commission_minor=sum(s.commission_minor for s in splits.values()),
        metadata=checked_metadata,
        **(
            {
                "shipping_name": shipping.name,
                "shipping_line1": shipping.line1,
                "shipping_line2": shipping.line2,
                "shipping_city": shipping.city,
                "shipping_postal_code": shipping.postal_code,
                "shipping_country": shipping.country,
            }
            if shipping
            else {}
        ),
    )
    by_seller: OrderedDict[int, list[int]] = OrderedDict()
    for pid in quantities:
        by_seller.setdefault(products[pid].seller_id, []).append(pid)
    seller_orders = SellerOrder.objects.bulk_create(
        SellerOrder(
            order=order,
            seller_id=seller_id,
            gross_minor=sum(splits[pid].gross_minor for pid in pids),
            commission_minor=sum(splits[pid].commission_minor for pid in pids),
            seller_share_minor=sum(splits[pid].seller_share_minor for pid in pids),
        )
        for seller_id, pids in by_seller.items()
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            seller_order=seller_order,
            product=products[pid],
            title=products[pid].title,
            unit_price_minor=products[pid].price_minor,
            quantity=quantities[pid],
            gross_minor=splits[pid].gross_minor,
            commission_minor=splits[pid].commission_minor,
            seller_share_minor=splits[pid].seller_share_minor,
            commission_rule=splits[pid].rule,
            rule_percentage_bps=splits[pid].terms.percentage_bps,
            rule_fixed_fee_minor=splits[pid].terms.fixed_fee_minor,
            rule_minimum_minor=splits[pid].terms.minimum_minor,
            rule_maximum_minor=splits[pid].terms.maximum_minor,
            commission_source=splits[pid].source,
            tier_sales_minor=splits[pid].tier_sales_minor,
            seller_plan=splits[pid].plan,
        )
        for seller_order, pids in zip(seller_orders, by_seller.values(), strict=True)
        for pid in pids
    )
    return order


@transaction.atomic
def order_metadata_update(*, order: Order, metadata: Any) -> Order:
    """Merge ``metadata`` into the order's (payments/integrations/metadata.py: a key with an empty
    value is removed; outside the limits nothing changes). Under the order's lock, so
    two updates at once both apply; it never touches money or status."""
    order = order_lock(order.pk)
    order.metadata = metadata_merge(order.metadata, metadata)
    order.save(update_fields=["metadata"])
    return order


@transaction.atomic
def seller_order_cancel(
    *, seller_order: SellerOrder, reason: str = "", by: User | None = None
) -> Refund | None:
    """Cancel one seller's part of a paid order before it ships.

    That part alone is refunded (whatever of it is not refunded or being
    refunded already) and its stock put back once; the other sellers' parts
    are untouched. Calling it again after the refund failed starts a new
    refund for what is still owed; otherwise it changes nothing.
    """
    # The order first, then its seller order: the lock order of every money path.
    order = order_lock(seller_order.order_id)
    seller_order = SellerOrder.objects.select_for_update(no_key=True, of=("self",)).get(
        pk=seller_order.pk
    )
    Status = SellerOrder.Status
    if (
        seller_order.shipped_at
        or seller_order.delivered_at
        or seller_order.status
        in (
            Status.SHIPPED,
            Status.DELIVERED,
        )
    ):
        raise InvalidState("This part of the order has shipped; ask for a refund instead.")
    if order.status == Order.Status.AWAITING_PAYMENT:
        raise InvalidState("The order is not paid yet; cancel the whole order instead.")
    if order.status == Order.Status.CANCELLED:
        raise InvalidState("The order was cancelled before payment.")
    refund = None
    if seller_order.gross_minor > seller_order.refunded_minor:
        refund = refund_create(
            order=order,
            seller_order=seller_order,
            reason=reason or "Seller's part cancelled before shipping",
            requested_by=by,
        )
    if seller_order.status != Status.CANCELLED:
        stock_return(list(seller_order.lines.all()))
        SellerOrder.objects.filter(pk=seller_order.pk).update(status=Status.CANCELLED)
    return refund
