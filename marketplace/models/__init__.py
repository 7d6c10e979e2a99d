from marketplace.models.cart import CartItem
from marketplace.models.catalog import Category, Product
from marketplace.models.orders import Order, OrderLine, SellerOrder

__all__ = ["CartItem", "Category", "Order", "OrderLine", "Product", "SellerOrder"]
