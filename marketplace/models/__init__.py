from marketplace.models.catalog import Category, Product
from marketplace.models.orders import Order, OrderLine, SellerOrder

__all__ = ["Category", "Order", "OrderLine", "Product", "SellerOrder"]
