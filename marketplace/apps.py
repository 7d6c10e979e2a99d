from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    """The shop domain: categories, products and the storefront pages."""

    name = "marketplace"
    verbose_name = "Marketplace"
