from marketplace.models.cart import CartItem
from marketplace.models.catalog import Category, Product
from marketplace.models.checkout import CheckoutSubmission
from marketplace.models.deferred_tasks import DeferredTask
from marketplace.models.idempotency import IdempotencyRecord
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
