from django.apps import AppConfig


class MarketplaceConfig(AppConfig):
    """The shop domain: categories, products and the storefront pages."""

    name = "marketplace"
    verbose_name = "Marketplace"

    def ready(self) -> None:
        # Tasks are queued by name: see payments/apps.py.
        from django.contrib.auth.signals import user_logged_in

        import marketplace.tasks  # noqa: F401
        from marketplace.signals import merge_cart_at_login

        user_logged_in.connect(merge_cart_at_login, dispatch_uid="marketplace.merge_cart")
