"""The shop's tables: the catalog, carts, checkouts and orders. The kernel's two tables
(``DeferredTask``, ``IdempotencyRecord``) are models of this app too, defined in
``marketplace.kernel.models`` and imported here so Django finds them."""

from marketplace.kernel.models import DeferredTask, IdempotencyRecord
from marketplace.models.cart import CartItem
from marketplace.models.catalog import Category, Product
from marketplace.models.checkout import CheckoutSubmission
from marketplace.models.orders import Order, OrderLine, SellerOrder

__all__ = [
    "CartItem",
    "Category",
    "CheckoutSubmission",
    "DeferredTask",
    "IdempotencyRecord",
    "Order",
    "OrderLine",
    "Product",
    "SellerOrder",
]
