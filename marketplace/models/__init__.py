from marketplace.models.catalog import Category, Product

__all__ = ["Category", "Product"]
