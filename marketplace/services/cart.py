"""The cart: what a customer means to buy, before any price is fixed.

A visitor's cart is kept in their session, a signed-in customer's in the
database; ``cart_merge`` folds the first into the second at login. The cart
stores only products and quantities: prices are read from the catalog each
time it is shown and again, authoritatively, when the order is placed. Each
currency's group shows the customer's service fee in force for that currency
(payments/revenue/service_fees.py) and the total with it, before paying.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import Seller, User
from marketplace.kernel.errors import ApplicationError, InvalidRequest
from marketplace.models import CartItem, CheckoutSubmission, Order, Product
from marketplace.services.orders import CartItem as OrderItem
from marketplace.services.orders import ShippingAddress, place_order
from payments.models import ServiceFee
from payments.revenue.service_fees import (
    service_fee_amount,
    service_fee_annotations,
    service_fee_from_row,
)

SESSION_KEY = "cart"


class CartStorage:
    """Quantities per product id, for a visitor's session or a signed-in user."""

    def __init__(
        self, *, user: User | None = None, session: MutableMapping[str, Any] | None = None
    ):
        if (user is None) == (session is None):
            raise ValueError("A cart belongs to a user or to a session.")
        self.user, self.session = user, session
        self._read: dict[int, int] | None = None  # the user's, as read and changed since

    def quantities(self) -> dict[int, int]:
        if self.user is not None:
            if self._read is None:
                self._read = dict(
                    CartItem.objects.filter(user=self.user).values_list("product_id", "quantity")
                )
            return dict(self._read)
        assert self.session is not None
        return {int(pid): int(qty) for pid, qty in self.session.get(SESSION_KEY, {}).items()}

    def set(self, product_id: int, quantity: int) -> None:
        if self.user is not None:
            if quantity:
                # One upsert (INSERT ... ON CONFLICT DO UPDATE), safe against a second
                # tab adding the same product at the same instant.
                CartItem.objects.bulk_create(
                    [CartItem(user=self.user, product_id=product_id, quantity=quantity)],
                    update_conflicts=True,
                    unique_fields=["user", "product"],
                    update_fields=["quantity"],
                )
            else:
                CartItem.objects.filter(user=self.user, product_id=product_id).delete()
            if self._read is not None:  # what this request read, with its own change
                self._read.pop(product_id, None)
                if quantity:
                    self._read[product_id] = quantity
            return
        assert self.session is not None
        cart = dict(self.session.get(SESSION_KEY, {}))
        if quantity:
            cart[str(product_id)] = quantity
        else:
            cart.pop(str(product_id), None)
        self.session[SESSION_KEY] = cart

    def remove(self, product_ids: list[int]) -> None:
        if self.user is not None:
            CartItem.objects.filter(user=self.user, product_id__in=product_ids).delete()
            self._read = None
            return
        for product_id in product_ids:
            self.set(product_id, 0)

    def count(self) -> int:
        return sum(self.quantities().values())


@dataclass
class CartLine:
    product: Product
    quantity: int

    @property
    def subtotal_minor(self) -> int:
        return self.product.price_minor * self.quantity

    @property
    def available(self) -> bool:
        return self.product.is_active and self.product.stock >= self.quantity


@dataclass
class SellerGroup:
    seller: Seller
    lines: list[CartLine] = field(default_factory=list)

    @property
    def subtotal_minor(self) -> int:
        return sum(line.subtotal_minor for line in self.lines)


@dataclass
class CurrencyGroup:
    """One checkout: the cart's products in one currency, grouped by seller."""

    currency: str
    sellers: list[SellerGroup] = field(default_factory=list)
    service_fee: ServiceFee | None = None  # in force for the currency now

    @property
    def subtotal_minor(self) -> int:
        """The lines at today's prices."""
        return sum(group.subtotal_minor for group in self.sellers)

    @property
    def service_fee_minor(self) -> int:
        """The service fee the order would take (``place_order`` fixes it)."""
        return service_fee_amount(self.service_fee, self.subtotal_minor)

    @property
    def total_minor(self) -> int:
        """What the customer would pay: the lines and the service fee."""
        return self.subtotal_minor + self.service_fee_minor

    @property
    def lines(self) -> list[CartLine]:
        return [line for group in self.sellers for line in group.lines]

    @property
    def count(self) -> int:
        """Units in this group (the header's cart count, summed over groups)."""
        return sum(line.quantity for line in self.lines)

    @property
    def can_check_out(self) -> bool:
        return all(line.available for line in self.lines) and self.subtotal_minor > 0


def cart_contents(storage: CartStorage, *, with_fees: bool = True) -> list[CurrencyGroup]:
    """The cart grouped by currency, then seller, at today's catalog prices (one query
    for a user's cart, its items with their products and sellers; two for a visitor's),
    each currency with its service fee in force, read in the same statement (a
    subquery per row) unless ``with_fees`` is off."""
    fees: dict[str, ServiceFee | None] = {}
    if storage.user is not None:
        items = CartItem.objects.filter(user=storage.user).select_related("product__seller")
        if with_fees:
            items = items.annotate(**service_fee_annotations("product__currency"))
        quantities = {item.product_id: item.quantity for item in items}
        products = [item.product for item in items]
        if with_fees:
            for item in items:
                fees[item.product.currency] = service_fee_from_row(item, item.product.currency)
    else:
        quantities = storage.quantities()
        query = Product.objects.select_related("seller").filter(pk__in=quantities)
        if with_fees:
            query = query.annotate(**service_fee_annotations("currency"))
        products = list(query)
        if with_fees:
            for product in products:
                fees[product.currency] = service_fee_from_row(product, product.currency)
    currencies: OrderedDict[str, OrderedDict[int, SellerGroup]] = OrderedDict()
    for product in sorted(products, key=lambda p: (p.currency, p.seller.display_name, p.title)):
        sellers = currencies.setdefault(product.currency, OrderedDict())
        group = sellers.setdefault(product.seller_id, SellerGroup(product.seller))
        group.lines.append(CartLine(product, quantities[product.pk]))
    return [
        CurrencyGroup(currency, list(sellers.values()), fees.get(currency))
        for currency, sellers in currencies.items()
    ]


def cart_set_quantity(*, storage: CartStorage, product: Product, quantity: int) -> int:
    """Put ``quantity`` of a product in the cart (0 removes it); never more than is in stock."""
    if quantity < 0 or quantity > settings.ORDER_MAX_QUANTITY:
        raise InvalidRequest(f"Choose a quantity from 0 to {settings.ORDER_MAX_QUANTITY}.")
    if quantity and not product.is_active:
        raise InvalidRequest(f"“{product.title}” is no longer for sale.")
    if quantity > product.stock:
        raise InvalidRequest(
            f"Only {product.stock} of “{product.title}” left."
            if product.stock
            else f"“{product.title}” is out of stock."
        )
    storage.set(product.pk, quantity)
    return quantity


def cart_add(*, storage: CartStorage, product: Product, quantity: int = 1) -> int:
    """Add to what is already in the cart."""
    if quantity < 1 or quantity > settings.ORDER_MAX_QUANTITY:
        raise InvalidRequest(f"Choose a quantity from 1 to {settings.ORDER_MAX_QUANTITY}.")
    current = storage.quantities().get(product.pk, 0)
    if current + quantity > settings.ORDER_MAX_QUANTITY:
        raise InvalidRequest(
            f"At most {settings.ORDER_MAX_QUANTITY} of one product fit in the cart; "
            f"it has {current} of “{product.title}” already."
        )
    return cart_set_quantity(storage=storage, product=product, quantity=current + quantity)


def cart_order_items(storage: CartStorage, currency: str) -> list[OrderItem]:
    """The items of one currency, for ``place_order``."""
    # The items only: ``place_order`` fixes the fee.
    groups = cart_contents(storage, with_fees=False)
    group = next((g for g in groups if g.currency == currency), None)
    if group is None:
        raise InvalidRequest(f"Your cart has nothing in {currency}.")
    return [OrderItem(line.product.pk, line.quantity) for line in group.lines]


@transaction.atomic
def cart_merge(*, session: MutableMapping[str, Any], user: User) -> None:
    """At login: add the visitor's cart to the user's (quantities add up, capped by stock)."""
    visitor = CartStorage(session=session).quantities()
    if not visitor:
        return
    mine = CartStorage(user=user)
    saved = mine.quantities()
    for product in Product.objects.filter(pk__in=visitor, is_active=True):
        quantity = min(saved.get(product.pk, 0) + visitor[product.pk], product.stock)
        if quantity > 0:
            mine.set(product.pk, quantity)
    session.pop(SESSION_KEY, None)


@transaction.atomic
def cart_checkout(
    *,
    storage: CartStorage,
    customer: User,
    currency: str,
    shipping: ShippingAddress,
    metadata: Mapping[str, Any] | None = None,
) -> Order:
    """Place an order for the cart's items in one currency, then take them out of the
    cart; both or neither (``place_order`` decides prices and stock, checks ``metadata``)."""
    return _checkout(storage, customer, currency, shipping, metadata)


def _checkout(storage, customer, currency, shipping, metadata=None) -> Order:
    """``cart_checkout``, in the caller's transaction."""
    items = cart_order_items(storage, currency)
    order = place_order(customer=customer, cart_items=items, shipping=shipping, metadata=metadata)
    storage.remove([item.product_id for item in items])
    return order


FORM_EXPIRED = "This form has expired; please submit it again."


def _submitted_order(*, customer: User, submission_token: str) -> Order | None:
    """The order the form with this token placed, if it placed one; another customer's
    token is refused without saying whether it exists."""
    submission = (
        CheckoutSubmission.objects.select_related("order").filter(token=submission_token).first()
    )
    if submission is None:
        return None
    if submission.customer_id != customer.pk:
        raise InvalidRequest(FORM_EXPIRED, code="expired")
    return submission.order


def checkout_submit(
    *,
    storage: CartStorage,
    customer: User,
    currency: str,
    shipping: ShippingAddress,
    submission_token: str,
) -> Order:
    """``cart_checkout`` for the checkout form, once per form: the form's one-time token
    is written with the order under a unique index, so a second submit of the same
    form (back button, double click, or at the same instant: it waits for the first
    to commit, then fails on the index and rolls back) places nothing and returns the
    first order. Another customer's token is refused as an expired form; a token that
    placed nothing (the order was refused) can be used again.

    The token is looked up only when placing fails (one query less for every order):
    a second submit finds the cart empty (or whatever else is refused now), or places
    again and fails on the index; either way everything it did is rolled back and the
    first order is the answer.
    """
    try:
        with transaction.atomic():
            order = _checkout(storage, customer, currency, shipping)
            CheckoutSubmission.objects.create(
                token=submission_token, customer=customer, order=order
            )
    except IntegrityError:
        # This form placed its order already (maybe at the same instant): everything
        # above rolled back (stock, order, cart).
        earlier = _submitted_order(customer=customer, submission_token=submission_token)
        if earlier is None:
            raise
        return earlier
    except ApplicationError:
        earlier = _submitted_order(customer=customer, submission_token=submission_token)
        if earlier is None:
            raise
        return earlier
    return order
