from marketplace.models.cart import CartItem
from marketplace.models.catalog import Category, Product
from marketplace.models.deferred_tasks import DeferredTask
from marketplace.models.idempotency import IdempotencyRecord
from marketplace.models.orders import Order, OrderLine, SellerOrder

__all__ = [
    "CartItem",
    "Category",
    "DeferredTask",
    "IdempotencyRecord",
    "Order",
    "OrderLine",
    "Product",
    "SellerOrder",
]
